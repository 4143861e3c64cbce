//! The JSON API as a client sees it: requests to a [`Server`] with a bearer token, the answer
//! ([`Resp`]), the API calls most tests make (issue, read, revoke, renew, generate a CRL), and
//! the checks of error answers (status, code and the `{"error": {...}}` shape), one at a time
//! or collected ([`Checks`]).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::fixtures::{make_csr_for_key, Csr};
use crate::formats::{now_unix, parse_rfc3339};
use crate::server::Server;

/// An HTTP answer: status, body text and the body as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub content_type: String,
    /// The raw body (for DER answers: CRLs, OCSP responses, certificates).
    pub bytes: Vec<u8>,
    /// The `Location` header, or "".
    pub location: String,
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.text.clone();
        if text.len() > 2000 {
            text.truncate(2000);
            text.push_str("...");
        }
        write!(f, "HTTP {} {}", self.status, text)
    }
}

/// A blocking HTTP client that never goes through a proxy.
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("building the HTTP client")
}

impl Server {
    /// A request with an optional bearer token and JSON body.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req, path)
    }

    /// POST of raw bytes with the given content type.
    pub fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req, path)
    }

    /// Sends a request, panicking with the server's output when it fails at the HTTP level.
    pub fn send(&self, req: reqwest::blocking::RequestBuilder, what: &str) -> Resp {
        match req.send() {
            Ok(r) => to_resp(r),
            Err(e) => panic!(
                "request {what} failed: {e:?}. Server output:\n{}",
                self.log()
            ),
        }
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.request(reqwest::Method::POST, path, Some(token), Some(body))
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(reqwest::Method::GET, path, token, None)
    }

    /// The HTTP client, for tests that send from several threads.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client.clone()
    }

    /// POST /v1/certificates with the bootstrap RA token; asserts 201.
    pub fn issue(&self, csr: &Csr, profile: &str, validity_days: Option<u32>) -> Value {
        self.issue_body(csr, profile, validity_days, None)
    }

    /// [`Server::issue`] with identity data the RA asserts: `identity.subject`, an RFC 4514
    /// string such as `SN=Silva,GN=Maria` (the personal name the built-in `personal` profile
    /// takes only from the RA); asserts 201.
    pub fn issue_with_identity(
        &self,
        csr: &Csr,
        profile: &str,
        validity_days: Option<u32>,
        identity_subject: &str,
    ) -> Value {
        self.issue_body(csr, profile, validity_days, Some(identity_subject))
    }

    /// A `tls-client` certificate for `subj` (with `sans`, such as `DNS:portal.example`) on
    /// the private key in `key`, issued by the bootstrap RA and written as PEM to `out`: its
    /// serial.
    pub fn tls_client_certificate(
        &self,
        key: &Path,
        subj: &str,
        sans: &[&str],
        out: &Path,
    ) -> String {
        let csr = make_csr_for_key(key, "key file", subj, sans, &[]);
        let issued = self.issue(&csr, "tls-client", None);
        std::fs::write(out, issued["certificate"].as_str().expect("a certificate"))
            .expect("writing the client certificate");
        issued["serial"].as_str().expect("a serial").to_string()
    }

    fn issue_body(
        &self,
        csr: &Csr,
        profile: &str,
        validity_days: Option<u32>,
        identity_subject: Option<&str>,
    ) -> Value {
        let mut body = serde_json::json!({"csr": csr.pem, "profile": profile});
        if let Some(d) = validity_days {
            body["validity_days"] = d.into();
        }
        if let Some(subject) = identity_subject {
            body["identity"] = serde_json::json!({ "subject": subject });
        }
        let r = self.post("/v1/certificates", &self.tokens.ra, &body);
        assert_eq!(
            r.status, 201,
            "issuing {profile} for {} ({}, identity {identity_subject:?}): {r}",
            csr.subj, csr.key_type
        );
        r.json
    }

    /// How many certificates the store holds, walking `GET /v1/certificates` with the auditor
    /// token (the server's own certificates included).
    pub fn certificate_count(&self) -> usize {
        let mut count = 0;
        let mut cursor = String::new();
        loop {
            let path = if cursor.is_empty() {
                "/v1/certificates?limit=1000".to_string()
            } else {
                format!("/v1/certificates?limit=1000&cursor={cursor}")
            };
            let r = self.get(&path, Some(&self.tokens.auditor));
            assert_eq!(r.status, 200, "GET {path}: {r}");
            count += r.json["items"].as_array().expect("items").len();
            match r.json["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return count,
            }
        }
    }

    /// GET /v1/certificates/{serial} with the auditor token; asserts 200.
    pub fn record(&self, serial: &str) -> Value {
        let r = self.get(
            &format!("/v1/certificates/{serial}"),
            Some(&self.tokens.auditor),
        );
        assert_eq!(r.status, 200, "GET /v1/certificates/{serial}: {r}");
        r.json
    }

    /// POST /v1/enrollments with the bootstrap RA token and `body`; asserts 201 and returns
    /// the enrollment's id and one-time code.
    pub fn create_enrollment(&self, body: &Value) -> (String, String) {
        let r = self.post("/v1/enrollments", &self.tokens.ra, body);
        assert_eq!(r.status, 201, "POST /v1/enrollments: {r}");
        let id = r.json["id"].as_str().expect("id").to_string();
        let code = r.json["code"].as_str().expect("code").to_string();
        (id, code)
    }

    /// POST /v1/certificates/{serial}/revoke with the bootstrap RA token.
    pub fn revoke(&self, serial: &str, reason: &str, invalidity_date: Option<&str>) -> Resp {
        let mut body = serde_json::json!({ "reason": reason });
        if let Some(d) = invalidity_date {
            body["invalidity_date"] = d.into();
        }
        self.post(
            &format!("/v1/certificates/{serial}/revoke"),
            &self.tokens.ra,
            &body,
        )
    }

    /// [`Server::revoke`], asserting 200 and the new status (`revoked`, or `on_hold` for
    /// certificateHold); returns the certificate's new state.
    pub fn revoke_ok(&self, serial: &str, reason: &str) -> Value {
        let r = self.revoke(serial, reason, None);
        let want = if reason == "certificateHold" {
            "on_hold"
        } else {
            "revoked"
        };
        assert_eq!(r.status, 200, "revoking {serial} ({reason}): {r}");
        assert_eq!(r.json["status"], want, "revoking {serial} ({reason}): {r}");
        assert_eq!(
            r.json["revocation"]["reason"], reason,
            "revoking {serial}: {r}"
        );
        r.json
    }

    /// POST /v1/certificates/{serial}/release-hold with the bootstrap RA token (no body).
    pub fn release_hold(&self, serial: &str) -> Resp {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/certificates/{serial}/release-hold"),
            Some(&self.tokens.ra),
            None,
        )
    }

    /// POST /v1/certificates/{serial}/renew with the bootstrap RA token; `None` sends no body.
    pub fn renew(&self, serial: &str, body: Option<&Value>) -> Resp {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/certificates/{serial}/renew"),
            Some(&self.tokens.ra),
            body,
        )
    }

    /// POST /v1/crl/generate with the operator token: asserts 200 and the answer's shape
    /// `{"crl_number", "entries", "this_update", "bytes"}`; returns it.
    pub fn generate_crl(&self) -> Value {
        let r = self.request(
            reqwest::Method::POST,
            "/v1/crl/generate",
            Some(&self.tokens.operator),
            None,
        );
        assert_eq!(r.status, 200, "POST /v1/crl/generate: {r}");
        let v = r.json;
        assert!(
            v["crl_number"].is_u64() && v["entries"].is_u64() && v["bytes"].is_u64(),
            "POST /v1/crl/generate: crl_number, entries and bytes should be numbers: {v}"
        );
        let t = parse_rfc3339(v["this_update"].as_str().unwrap_or("missing"));
        assert!(
            (t - now_unix()).abs() < 120,
            "POST /v1/crl/generate: this_update {t} is not now: {v}"
        );
        v
    }
}

fn to_resp(r: reqwest::blocking::Response) -> Resp {
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header("content-type");
    let location = header("location");
    let bytes = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        text,
        json,
        content_type,
        bytes,
        location,
    }
}

/// Sends with a client of its own (for threads), returning the answer or the transport error.
pub fn try_post(
    client: &reqwest::blocking::Client,
    base: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> Result<Resp, reqwest::Error> {
    client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .map(to_resp)
}

/// What is wrong with an answer expected to be HTTP `status` with error code `code` in the
/// shape `{"error": {"code": CODE, "message": "<non-empty>"}}`; `None` when it is right.
pub fn error_problem(r: &Resp, status: u16, code: &str) -> Option<String> {
    if (r.status, r.json["error"]["code"].as_str()) != (status, Some(code)) {
        return Some(format!(
            "expected HTTP {status} with code {code:?}, got {r}"
        ));
    }
    error_shape_problem(&r.json)
}

/// Asserts status, code and error shape (see [`error_problem`]).
pub fn assert_error(r: &Resp, status: u16, code: &str, what: &str) {
    if let Some(p) = error_problem(r, status, code) {
        panic!("{what}: {p}");
    }
}

/// What is wrong with an error body: it must be exactly
/// `{"error": {"code": "<snake_case>", "message": "<non-empty>"}}`.
pub fn error_shape_problem(v: &Value) -> Option<String> {
    let Some(obj) = v.as_object() else {
        return Some(format!("error body is not a JSON object: {v}"));
    };
    if obj.len() != 1 {
        return Some(format!("error body has keys besides \"error\": {v}"));
    }
    let Some(err) = obj.get("error").and_then(Value::as_object) else {
        return Some(format!("\"error\" is not an object: {v}"));
    };
    let Some(code) = err.get("code").and_then(Value::as_str) else {
        return Some(format!("error.code is not a string: {v}"));
    };
    if code.is_empty()
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Some(format!("error.code {code:?} is not snake_case"));
    }
    match err.get("message").and_then(Value::as_str) {
        Some(m) if !m.trim().is_empty() => None,
        _ => Some(format!("error.message is missing or empty: {v}")),
    }
}

/// Asserts the error shape of a JSON value.
pub fn assert_error_shape(v: &Value, what: &str) {
    if let Some(p) = error_shape_problem(v) {
        panic!("{what}: {p}");
    }
}

/// Collects failed checks so that one test reports all of them at once.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    /// Records a failure unless the answer is HTTP `status` with error `code` in the right shape.
    pub fn error(&mut self, r: &Resp, status: u16, code: &str, what: &str) {
        self.count += 1;
        if let Some(p) = error_problem(r, status, code) {
            self.failures.push(format!("{what}: {p}"));
        }
    }

    /// Records a failure unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.count += 1;
        if !ok {
            self.failures.push(what());
        }
    }

    /// Panics listing every failure.
    pub fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} checks failed:\n  - {}",
            self.failures.len(),
            self.count,
            self.failures.join("\n  - ")
        );
    }
}
