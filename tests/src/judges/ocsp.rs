//! OCSP judged by `openssl ocsp`: asking the responder over HTTP (POST and the RFC 6960 GET
//! form), verifying its DER answers, and reading the status openssl prints.

use std::path::PathBuf;
use std::process::Command;

use crate::command::{openssl, output_within, COMMAND_DEADLINE};
use crate::formats::{to_pem, url_encode_base64};
use crate::server::Server;
use crate::unique;

impl Server {
    /// The issuing CA's certificate alone (the first of the chain) in a PEM file, for
    /// `openssl ocsp -issuer`.
    pub fn issuer_file(&self) -> PathBuf {
        let ca = self.ca();
        let file = ca.file.with_extension("issuer.pem");
        if !file.is_file() {
            std::fs::write(&file, to_pem("CERTIFICATE", &ca.ders[0])).expect("writing the issuer");
        }
        file
    }

    /// Asks the OCSP responder at `url` with `openssl ocsp -issuer CA -CAfile CA -url URL
    /// TARGETS` (`-cert FILE` / `-serial 0xHEX`, nonce on), asserting `Response verify OK`, no
    /// warning (a missing nonce echo warns) and success; returns stdout and stderr.
    pub fn ocsp_ask(&self, url: &str, targets: &[&str]) -> String {
        let issuer = self.issuer_file();
        let mut args = vec![
            "ocsp",
            "-issuer",
            issuer.to_str().expect("UTF-8 path"),
            "-CAfile",
            self.ca().file.to_str().expect("UTF-8 path"),
            "-url",
            url,
        ];
        args.extend_from_slice(targets);
        let (ok, out) = openssl_ocsp(&args);
        assert!(
            ok && out.contains("Response verify OK") && !out.contains("WARNING"),
            "`openssl {}` failed or did not verify the response:\n{out}",
            args.join(" ")
        );
        out
    }

    /// A DER OCSP request (no nonce) for `targets`, made by `openssl ocsp -reqout`, in base64
    /// (not URL-encoded).
    pub fn ocsp_request_base64(&self, targets: &[&str]) -> String {
        let issuer = self.issuer_file();
        let req = self.scratch().join(format!("req-{}.der", unique()));
        let mut args = vec![
            "ocsp",
            "-issuer",
            issuer.to_str().expect("UTF-8 path"),
            "-no_nonce",
            "-reqout",
            req.to_str().expect("UTF-8 path"),
        ];
        args.extend_from_slice(targets);
        let (ok, out) = openssl_ocsp(&args);
        assert!(ok, "`openssl {}` failed:\n{out}", args.join(" "));
        openssl(&["base64", "-A", "-in", req.to_str().expect("UTF-8 path")])
            .trim()
            .to_string()
    }

    /// GET /ocsp/{encoded}: asserts HTTP 200 and `application/ocsp-response`; the DER answer.
    pub fn ocsp_get_encoded(&self, encoded: &str) -> Vec<u8> {
        let path = format!("/ocsp/{encoded}");
        let r = self.get(&path, None);
        assert_eq!(r.status, 200, "GET {path}: {r}");
        assert_eq!(
            r.content_type, "application/ocsp-response",
            "GET {path}: content type"
        );
        r.bytes
    }

    /// The RFC 6960 GET form: a request for `targets` (see [`Server::ocsp_request_base64`]),
    /// sent as GET /ocsp/{url-encoded base64}; the DER answer.
    pub fn ocsp_get(&self, targets: &[&str]) -> Vec<u8> {
        let b64 = self.ocsp_request_base64(targets);
        self.ocsp_get_encoded(&url_encode_base64(&b64))
    }

    /// Checks a DER OCSP response with `openssl ocsp -respin F -issuer CA -CAfile CA -no_nonce
    /// TARGETS`, asserting `Response verify OK`; returns the output.
    pub fn ocsp_respin(&self, der: &[u8], targets: &[&str]) -> String {
        let issuer = self.issuer_file();
        let file = self.scratch().join(format!("resp-{}.der", unique()));
        std::fs::write(&file, der).expect("writing the OCSP response");
        let mut args = vec![
            "ocsp",
            "-respin",
            file.to_str().expect("UTF-8 path"),
            "-issuer",
            issuer.to_str().expect("UTF-8 path"),
            "-CAfile",
            self.ca().file.to_str().expect("UTF-8 path"),
            "-no_nonce",
        ];
        args.extend_from_slice(targets);
        let (ok, out) = openssl_ocsp(&args);
        assert!(
            ok && out.contains("Response verify OK"),
            "`openssl {}` failed or did not verify the response:\n{out}",
            args.join(" ")
        );
        out
    }
}

/// Runs `openssl ARGS` (an `ocsp` command) without any proxy from the environment; returns
/// whether it succeeded and its stdout followed by its stderr.
pub fn openssl_ocsp(args: &[&str]) -> (bool, String) {
    let out = output_within(
        Command::new("openssl")
            .args(args)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY"),
        COMMAND_DEADLINE,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The status `openssl ocsp` printed for a target (`NAME: good`), and the `Reason:` line that
/// follows it, if any.
pub fn ocsp_status(out: &str, name: &str) -> (String, Option<String>) {
    let prefix = format!("{name}: ");
    let mut lines = out.lines().skip_while(|l| !l.starts_with(&prefix));
    let status = lines
        .next()
        .unwrap_or_else(|| panic!("no status for {name} in openssl's output:\n{out}"))
        [prefix.len()..]
        .trim()
        .to_string();
    let reason = lines
        .take_while(|l| l.starts_with(char::is_whitespace))
        .find_map(|l| l.trim().strip_prefix("Reason: ").map(str::to_string));
    (status, reason)
}
