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

/// A registration authority's CMP signing key and certificate (self-signed, EC P-256), as
/// `[[cmp.ras]]` registers it by the certificate's SHA-256.
pub struct CmpRa {
    /// Its name (`[[cmp.ras]] name`): the requester of what it asks.
    pub name: String,
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
    /// The SHA-256 of the certificate's DER, hex.
    pub sha256: String,
}

impl CmpRa {
    /// Makes one in `dir` with `openssl`, its certificate issued by an RA CA of its own
    /// (`openssl cmp` leaves a self-signed protection certificate out of extraCerts).
    pub fn new(dir: &Path, name: &str) -> CmpRa {
        let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
        let (cert, key) = (file(".pem"), file("-key.pem"));
        let (ca_cert, ca_key, csr, ext) = (
            file("-ca.pem"),
            file("-ca-key.pem"),
            file(".csr"),
            file(".ext"),
        );
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .expect("writing the extensions file");
        let p = |path: &Path| path.to_str().expect("UTF-8 path").to_string();
        let runs: [Vec<String>; 3] = [
            vec![
                "req".into(),
                "-x509".into(),
                "-newkey".into(),
                "ec".into(),
                "-pkeyopt".into(),
                "ec_paramgen_curve:P-256".into(),
                "-nodes".into(),
                "-days".into(),
                "2".into(),
                "-subj".into(),
                format!("/CN={name} CA/O=Example RA"),
                "-keyout".into(),
                p(&ca_key),
                "-out".into(),
                p(&ca_cert),
            ],
            vec![
                "req".into(),
                "-new".into(),
                "-newkey".into(),
                "ec".into(),
                "-pkeyopt".into(),
                "ec_paramgen_curve:P-256".into(),
                "-nodes".into(),
                "-subj".into(),
                format!("/CN={name}/O=Example RA"),
                "-keyout".into(),
                p(&key),
                "-out".into(),
                p(&csr),
            ],
            vec![
                "x509".into(),
                "-req".into(),
                "-in".into(),
                p(&csr),
                "-CA".into(),
                p(&ca_cert),
                "-CAkey".into(),
                p(&ca_key),
                "-days".into(),
                "2".into(),
                "-extfile".into(),
                p(&ext),
                "-out".into(),
                p(&cert),
            ],
        ];
        for args in runs {
            let out = output_within(Command::new("openssl").args(&args), COMMAND_DEADLINE);
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        }
        let pem = std::fs::read_to_string(&cert).expect("reading the RA certificate");
        let der = crate::formats::pem_certs(&pem)
            .pop()
            .expect("a certificate");
        CmpRa {
            name: name.into(),
            cert,
            key,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der)),
        }
    }
}

impl CmpServer {
    /// Starts one.
    pub fn start() -> CmpServer {
        Self::start_with(|_| String::new())
    }

    /// Starts one with `[[cmp.ras]]` registering a new RA (named `cmp-ra`), and that RA.
    pub fn start_with_ra() -> (CmpServer, CmpRa) {
        let mut ra = None;
        let server = Self::start_with(|dir| {
            let made = CmpRa::new(dir, "cmp-ra");
            let entry = format!(
                "\n[[cmp.ras]]\nname = \"{}\"\ncertificate_sha256 = \"{}\"\n",
                made.name, made.sha256
            );
            ra = Some(made);
            entry
        });
        (server, ra.expect("the RA was made"))
    }

    /// Starts one with `append(data dir)` appended to its configuration.
    fn start_with(append: impl FnOnce(&Path) -> String) -> CmpServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = new_dir(tmp.path());
        let extra = append(&dir);
        configure(
            &dir,
            &[(
                "[cmp]\nenabled = false\nprofile = \"tls-client\"\nprofiles = []",
                "[cmp]\nenabled = true\nprofile = \"tls-client\"\nprofiles = [\"personal\"]",
            )],
            &extra,
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
        self.kur_with(cert, key, new_key, out, &[])
    }

    /// [`CmpServer::kur`] with `extra` arguments (`-out_trusted`).
    pub fn kur_with(
        &self,
        cert: &Path,
        key: &Path,
        new_key: &Path,
        out: &Path,
        extra: &[&str],
    ) -> CmpRun {
        let path = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
        let (cert, key, new_key) = (path(cert), path(key), path(new_key));
        let (ca, out) = (path(&self.s.ca().file), path(out));
        let mut args: Vec<&str> = vec![
            "-cmd", "kur", "-cert", &cert, "-key", &key, "-newkey", &new_key, "-trusted", &ca,
            "-certout", &out,
        ];
        args.extend_from_slice(extra);
        self.openssl_cmp(".well-known/cmp", &args)
    }
}

impl CmpServer {
    /// `openssl cmp -cmd ir` on the default path, signed with `cert` and `key` (an RA's, or a
    /// subscriber's), for `new_key` and `subject`, the answer checked against the CA (`-trusted`),
    /// with `extra` arguments (`-popo`, `-sans`).
    pub fn signed_ir(
        &self,
        (cert, key): (&Path, &Path),
        new_key: &Path,
        subject: &str,
        extra: &[&str],
        out: &Path,
    ) -> CmpRun {
        let path = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
        let mut args = vec![
            "-cmd".to_string(),
            "ir".into(),
            "-cert".into(),
            path(cert),
            "-key".into(),
            path(key),
            "-trusted".into(),
            path(&self.s.ca().file),
            "-newkey".into(),
            path(new_key),
            "-subject".into(),
            subject.into(),
            "-certout".into(),
            path(out),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.openssl_cmp(".well-known/cmp", &args)
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
