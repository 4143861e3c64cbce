//! CMP (RFC 9483 over RFC 9811 HTTP) as `openssl cmp` (OpenSSL 3.0) sees it: a server with
//! `[cmp]` on, enrollments created with the JSON API to redeem, and the client's runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::command::{output_within, COMMAND_DEADLINE};
use crate::data_dir::{configure, new_dir};
use crate::server::Server;

/// A server with `[cmp] enabled = true` (default profile `tls-client`, and `personal` at
/// `/.well-known/cmp/p/personal`) on a fresh data directory.
pub struct CmpServer {
    /// The server.
    pub s: Server,
    _tmp: TempDir,
}

impl CmpServer {
    /// Starts one.
    pub fn start() -> CmpServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = new_dir(tmp.path());
        configure(
            &dir,
            &[(
                "[cmp]\nenabled = false\nprofile = \"tls-client\"\nprofiles = []",
                "[cmp]\nenabled = true\nprofile = \"tls-client\"\nprofiles = [\"personal\"]",
            )],
            "",
        );
        CmpServer {
            s: Server::serve(&dir),
            _tmp: tmp,
        }
    }

    /// Creates an enrollment with the JSON API (`POST /v1/enrollments`): its id and code.
    pub fn enrollment(&self, body: &Value) -> (String, String) {
        let r = self.s.post("/v1/enrollments", &self.s.tokens.ra, body);
        assert_eq!(r.status, 201, "POST /v1/enrollments: {r}");
        (
            r.json["id"].as_str().expect("id").to_string(),
            r.json["code"].as_str().expect("code").to_string(),
        )
    }

    /// `GET /v1/enrollments/{id}` as the RA.
    pub fn enrollment_state(&self, id: &str) -> Value {
        let r = self
            .s
            .get(&format!("/v1/enrollments/{id}"), Some(&self.s.tokens.ra));
        assert_eq!(r.status, 200, "GET /v1/enrollments/{id}: {r}");
        r.json
    }

    /// A new file name in the server's scratch directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.s
            .scratch()
            .join(format!("cmp-{}-{name}", crate::unique()))
    }

    /// `openssl cmp -server BASE -path PATH ARGS -unprotected_errors`: whether it succeeded,
    /// and its output (stdout and stderr).
    pub fn openssl_cmp(&self, path: &str, args: &[&str]) -> CmpRun {
        let out = output_within(
            Command::new("openssl")
                .args(["cmp", "-server", &self.s.base, "-path", path])
                .args(args)
                .arg("-unprotected_errors")
                .current_dir(self.s.scratch()),
            COMMAND_DEADLINE,
        );
        CmpRun {
            ok: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// `openssl cmp -cmd ir -ref ID -secret pass:CODE -newkey KEY -subject SUBJECT -certout
    /// OUT` on `path`.
    pub fn ir(&self, path: &str, id: &str, code: &str, key: &Path, out: &Path) -> CmpRun {
        self.openssl_cmp(
            path,
            &[
                "-cmd",
                "ir",
                "-ref",
                id,
                "-secret",
                &format!("pass:{code}"),
                "-newkey",
                key.to_str().expect("UTF-8 path"),
                "-subject",
                "/CN=Not The Enrollment's",
                "-certout",
                out.to_str().expect("UTF-8 path"),
            ],
        )
    }
}

impl CmpServer {
    /// `openssl cmp -cmd kur -cert CERT -key KEY -newkey NEW_KEY -trusted CA -certout OUT` on
    /// the default path: a renewal signed with `key`, whose answer must be signed by the CA.
    pub fn kur(&self, cert: &Path, key: &Path, new_key: &Path, out: &Path) -> CmpRun {
        let path = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
        self.openssl_cmp(
            ".well-known/cmp",
            &[
                "-cmd",
                "kur",
                "-cert",
                &path(cert),
                "-key",
                &path(key),
                "-newkey",
                &path(new_key),
                "-trusted",
                &path(&self.s.ca().file),
                "-certout",
                &path(out),
            ],
        )
    }
}

/// One run of `openssl cmp`.
#[derive(Debug)]
pub struct CmpRun {
    /// Exit status 0.
    pub ok: bool,
    /// stdout and stderr.
    pub output: String,
}

impl CmpRun {
    /// Asserts success.
    pub fn assert_ok(&self, what: &str) {
        assert!(self.ok, "{what}: openssl cmp failed:\n{}", self.output);
    }

    /// Asserts a CMP error answer naming `failure` (openssl's name of the PKIFailureInfo bit,
    /// as it prints it: `PKIFailureInfo: badMessageCheck`).
    pub fn assert_refused(&self, failure: &str, what: &str) {
        assert!(!self.ok, "{what}: openssl cmp succeeded:\n{}", self.output);
        assert!(
            self.output.contains("received ERROR")
                && self.output.contains(&format!("PKIFailureInfo: {failure}")),
            "{what}: expected an error answer with {failure}:\n{}",
            self.output
        );
    }
}
