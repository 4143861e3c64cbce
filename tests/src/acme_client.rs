//! A small ACME (RFC 8555) client for tests of the protocol itself, built on ring: account keys
//! (ES256, RS256, EdDSA) with their JWK and RFC 7638 thumbprint, flattened JWS in the `jwk`
//! and `kid` forms, nonces, POST and POST-as-GET, and an escape hatch for any JWS at all
//! ([`sign_jws`] over a protected header the test writes, [`Acme::post_jws`] to any URL),
//! so that tampered requests can be sent. On top: accounts (with External Account Binding),
//! orders, http-01 answered by a small responder of its own ([`Http01Responder`]), polling
//! with a deadline, finalize with an `openssl req` CSR, download, revocation in both forms
//! and key change (RFC 8555 section 7.3.5).
//!
//! [`ProtoServer`] is the server these tests run against: plain HTTP on loopback, `[acme]`
//! on, names resolved by pebble-challtestsrv ([`crate::acme::ChallTestSrv`]) to 127.0.0.1,
//! http-01 validation pointed at the [`Http01Responder`], `deny_networks = []`.
//!
//! Every answer of the ACME resources goes through [`AcmeResp`], whose
//! [`expect_problem`](AcmeResp::expect_problem) and [`expect_ok`](AcmeResp::expect_ok) check
//! the status, the problem `type`, and the headers every ACME answer carries
//! (`Replay-Nonce`, `Link: <directory>;rel="index"`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::acme::{set_acme_table, ChallTestSrv};
use crate::api::{http_client, Checks};
use crate::command::openssl;
use crate::data_dir::{create_token, new_dir};
use crate::formats::{pem_certs, to_pem};
use crate::server::Server;
use crate::unique;

/// The prefix of every ACME error type (RFC 8555 section 6.7).
pub const ERROR_URN: &str = "urn:ietf:params:acme:error:";

/// How long a test waits for a validation or an issuance to finish.
pub const ACME_DEADLINE: Duration = Duration::from_secs(60);

/// Unpadded base64url (RFC 7515 section 2).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url.
pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("{text:?} is not base64url: {e}"))
}

/// The algorithm an [`AccountKey`] signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048 bits).
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl KeyKind {
    /// The JWS `alg` (RFC 7518 section 3.1, RFC 8037 section 3.1).
    pub fn alg(self) -> &'static str {
        match self {
            KeyKind::Es256 => "ES256",
            KeyKind::Rs256 => "RS256",
            KeyKind::EdDsa => "EdDSA",
        }
    }
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key that signs JWS, with its public JWK.
pub struct AccountKey {
    pub kind: KeyKind,
    /// The private key, PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    signer: Signer,
    /// The public JWK with exactly the required members, as RFC 7638 orders them.
    canonical: String,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountKey({:?}, {})", self.kind, self.canonical)
    }
}

impl AccountKey {
    /// A new key of `kind` (RSA keys come from `openssl genpkey`, 2048 bits).
    pub fn new(kind: KeyKind) -> AccountKey {
        let rng = SystemRandom::new();
        let pkcs8 = match kind {
            KeyKind::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .expect("generating a P-256 key")
                    .as_ref()
                    .to_vec()
            }
            KeyKind::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .expect("generating an Ed25519 key")
                .as_ref()
                .to_vec(),
            KeyKind::Rs256 => {
                // genpkey writes PKCS#1 in DER; pkcs8 -topk8 makes the PKCS#8 ring reads.
                let dir = tempfile::tempdir().expect("tempdir");
                let pem = dir.path().join("rsa.pem");
                let der = dir.path().join("rsa.der");
                openssl(&[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    pem.to_str().expect("UTF-8 path"),
                ]);
                openssl(&[
                    "pkcs8",
                    "-topk8",
                    "-nocrypt",
                    "-outform",
                    "DER",
                    "-in",
                    pem.to_str().expect("UTF-8 path"),
                    "-out",
                    der.to_str().expect("UTF-8 path"),
                ]);
                std::fs::read(&der).expect("reading the RSA key")
            }
        };
        AccountKey::from_pkcs8(kind, pkcs8)
    }

    /// A new ES256 key.
    pub fn es256() -> AccountKey {
        AccountKey::new(KeyKind::Es256)
    }

    /// A key from its PKCS#8 DER.
    pub fn from_pkcs8(kind: KeyKind, pkcs8: Vec<u8>) -> AccountKey {
        let rng = SystemRandom::new();
        let (signer, canonical) = match kind {
            KeyKind::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                    &rng,
                )
                .expect("a P-256 PKCS#8 key");
                let point = pair.public_key().as_ref();
                assert_eq!(point.len(), 65, "an uncompressed P-256 point");
                let canonical = format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(&point[1..33]),
                    b64(&point[33..])
                );
                (Signer::Ec(pair), canonical)
            }
            KeyKind::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(&pkcs8).expect("an RSA PKCS#8 key");
                let parts: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                let strip = |b: &[u8]| {
                    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                    b64(&b[start..])
                };
                let canonical = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    strip(&parts.e),
                    strip(&parts.n)
                );
                (Signer::Rsa(pair), canonical)
            }
            KeyKind::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("an Ed25519 PKCS#8 key");
                let canonical = format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64(pair.public_key().as_ref())
                );
                (Signer::Ed(pair), canonical)
            }
        };
        AccountKey {
            kind,
            pkcs8,
            signer,
            canonical,
        }
    }

    /// The JWS `alg` of this key.
    pub fn alg(&self) -> &'static str {
        self.kind.alg()
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        serde_json::from_str(&self.canonical).expect("the canonical JWK is JSON")
    }

    /// The RFC 7638 canonical JSON of the public JWK.
    pub fn canonical_jwk(&self) -> &str {
        &self.canonical
    }

    /// The RFC 7638 thumbprint (SHA-256), base64url.
    pub fn thumbprint(&self) -> String {
        b64(&Sha256::digest(self.canonical.as_bytes()))
    }

    /// The key authorization of a challenge token (RFC 8555 section 8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }

    /// Signs `message` with this key's own algorithm (ECDSA as `r || s`, RFC 7518 section
    /// 3.4).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ec(pair) => pair.sign(&rng, message).expect("ECDSA").as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .expect("RSA signing");
                sig
            }
        }
    }

    /// The private key as a PKCS#8 PEM file in `dir` (for `openssl req`).
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("key-{}.pem", unique()));
        std::fs::write(&path, to_pem("PRIVATE KEY", &self.pkcs8)).expect("writing the key");
        path
    }

    /// A CSR (DER) for `names` (DNS SANs, the first also the CN) signed by this key, made by
    /// `openssl req` in `dir`.
    pub fn csr(&self, dir: &Path, names: &[&str]) -> Vec<u8> {
        let key = self.write_pem(dir);
        let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        let subject = match names.first() {
            Some(first) => format!("/CN={first}"),
            None => "/".to_string(),
        };
        let mut args = vec![
            "req".to_string(),
            "-new".into(),
            "-batch".into(),
            "-key".into(),
            key.to_str().expect("UTF-8 path").into(),
            "-subj".into(),
            subject,
            "-outform".into(),
            "PEM".into(),
        ];
        if !sans.is_empty() {
            args.push("-addext".into());
            args.push(format!("subjectAltName={}", sans.join(",")));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let pem = openssl(&args);
        crate::formats::pem_blocks(&pem)
            .into_iter()
            .next()
            .expect("openssl req printed a PEM block")
            .1
    }
}

/// How the protected header names the key (RFC 8555 section 6.2).
#[derive(Clone, Debug)]
pub enum KeyRef<'a> {
    /// `jwk`: the key itself.
    Jwk,
    /// `kid`: an account URL.
    Kid(&'a str),
}

/// The protected header `{alg, nonce, url, jwk | kid}` of a request signed by `key`; tests
/// change it (remove the nonce, add a kid beside the jwk, another alg ...) before
/// [`sign_jws`].
pub fn protected_header(key: &AccountKey, key_ref: KeyRef<'_>, nonce: &str, url: &str) -> Value {
    let mut header = json!({"alg": key.alg(), "nonce": nonce, "url": url});
    match key_ref {
        KeyRef::Jwk => header["jwk"] = key.jwk(),
        KeyRef::Kid(kid) => header["kid"] = kid.into(),
    }
    header
}

/// The payload bytes of a request: the JSON text, or empty for POST-as-GET (RFC 8555
/// section 6.3).
pub fn payload_bytes(payload: Option<&Value>) -> Vec<u8> {
    payload.map_or_else(Vec::new, |p| p.to_string().into_bytes())
}

/// A flattened JWS (RFC 7515 section 7.2.2) of any protected header over `payload`, signed
/// by `key` with its own algorithm whatever the header's `alg` says.
pub fn sign_jws(key: &AccountKey, protected: &Value, payload: &[u8]) -> Value {
    let protected = b64(protected.to_string().as_bytes());
    let payload = b64(payload);
    let signature = key.sign(format!("{protected}.{payload}").as_bytes());
    json!({"protected": protected, "payload": payload, "signature": b64(&signature)})
}

/// A flattened JWS MACed with HMAC-SHA256 (`alg` taken from the header as written).
pub fn mac_jws(mac_key: &[u8], protected: &Value, payload: &[u8]) -> Value {
    let protected = b64(protected.to_string().as_bytes());
    let payload = b64(payload);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
    let tag = ring::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
    json!({"protected": protected, "payload": payload, "signature": b64(tag.as_ref())})
}

/// The External Account Binding of a newAccount (RFC 8555 section 7.3.4): an HS256 JWS with
/// protected `{alg, kid, url}` over the account's public JWK.
pub fn eab_binding(account: &AccountKey, kid: &str, mac_key: &[u8], url: &str) -> Value {
    mac_jws(
        mac_key,
        &json!({"alg": "HS256", "kid": kid, "url": url}),
        account.canonical_jwk().as_bytes(),
    )
}

/// An External Account Binding key as `POST /v1/acme/eab` answers it.
#[derive(Clone, Debug)]
pub struct EabKey {
    pub kid: String,
    /// The MAC key, decoded.
    pub mac: Vec<u8>,
    /// The RA it binds to.
    pub ra: String,
}

/// An answer of the ACME server.
#[derive(Debug)]
pub struct AcmeResp {
    /// What was asked, for messages: `POST URL`.
    pub what: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    pub text: String,
    /// The body as JSON, `Null` when it is not.
    pub json: Value,
}

impl std::fmt::Display for AcmeResp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.text.clone();
        if text.len() > 3000 {
            text.truncate(3000);
            text.push_str("...");
        }
        write!(f, "{} -> HTTP {}", self.what, self.status)?;
        for (name, value) in &self.headers {
            write!(f, "\n  {name}: {}", value.to_str().unwrap_or("?"))?;
        }
        write!(f, "\n  {text}")
    }
}

impl AcmeResp {
    /// A header's value (the first), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    /// `Replay-Nonce`, if any.
    pub fn nonce(&self) -> Option<String> {
        self.header("replay-nonce")
    }

    /// `Location`, or "".
    pub fn location(&self) -> String {
        self.header("location").unwrap_or_default()
    }

    /// `Retry-After` in seconds, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.header("retry-after")
            .and_then(|v| v.trim().parse().ok())
    }

    /// The URLs of `Link` headers with `rel="REL"` (one header may hold several links).
    pub fn links(&self, rel: &str) -> Vec<String> {
        let mut out = Vec::new();
        for value in self.header_all("link") {
            for link in value.split(',') {
                let link = link.trim();
                let Some(rest) = link.strip_prefix('<') else {
                    continue;
                };
                let Some((url, params)) = rest.split_once('>') else {
                    continue;
                };
                let has_rel = params.split(';').any(|p| {
                    let p = p.trim();
                    p == format!("rel=\"{rel}\"") || p == format!("rel={rel}")
                });
                if has_rel {
                    out.push(url.to_string());
                }
            }
        }
        out
    }

    /// The problem's type without the URN prefix (`badNonce`), or the whole `type` when it
    /// lacks it, or "" when the body has none.
    pub fn problem_type(&self) -> String {
        let t = self.json["type"].as_str().unwrap_or("");
        t.strip_prefix(ERROR_URN).unwrap_or(t).to_string()
    }

    /// What is wrong with the ACME headers every answer carries (a `Replay-Nonce` of
    /// base64url, RFC 8555 section 6.5; `Link: <directory>;rel="index"`, section 7.1;
    /// `Cache-Control: no-store`, docs/API.md), if anything.
    pub fn headers_mismatch(&self, directory: &str) -> Option<String> {
        let Some(nonce) = self.nonce() else {
            return Some(format!("no Replay-Nonce in the answer: {self}"));
        };
        let base64url = nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if nonce.is_empty() || !base64url {
            return Some(format!(
                "Replay-Nonce is not base64url (RFC 8555 section 6.5.1): {self}"
            ));
        }
        if !self.links("index").iter().any(|l| l == directory) {
            return Some(format!(
                "no Link: <{directory}>;rel=\"index\" in the answer (RFC 8555 section 7.1): {self}"
            ));
        }
        if !self
            .header("cache-control")
            .is_some_and(|c| c.contains("no-store"))
        {
            return Some(format!(
                "no Cache-Control: no-store in the answer (docs/API.md, ACME Requests): {self}"
            ));
        }
        None
    }

    /// What differs from a problem answer of `status` and type
    /// `urn:ietf:params:acme:error:KIND` (`application/problem+json`, the document's
    /// `status` the HTTP one, the ACME headers), if anything.
    pub fn problem_mismatch(&self, status: u16, kind: &str, directory: &str) -> Option<String> {
        let want = format!("{ERROR_URN}{kind}");
        if self.status != status || self.json["type"].as_str() != Some(want.as_str()) {
            return Some(format!("expected HTTP {status} {kind}: {self}"));
        }
        let ct = self.header("content-type").unwrap_or_default();
        if !ct.starts_with("application/problem+json") {
            return Some(format!(
                "a problem is application/problem+json (RFC 8555 section 6.7): {self}"
            ));
        }
        if self.json["status"].as_u64() != Some(status as u64) {
            return Some(format!("the problem's status is not the answer's: {self}"));
        }
        self.headers_mismatch(directory)
    }

    /// Asserts the ACME headers ([`headers_mismatch`](Self::headers_mismatch)).
    pub fn expect_acme_headers(&self, directory: &str) -> &Self {
        if let Some(m) = self.headers_mismatch(directory) {
            panic!("{m}");
        }
        self
    }

    /// Asserts a problem answer ([`problem_mismatch`](Self::problem_mismatch)).
    pub fn expect_problem(&self, status: u16, kind: &str, directory: &str) -> &Self {
        if let Some(m) = self.problem_mismatch(status, kind, directory) {
            panic!("{m}");
        }
        self
    }

    /// Asserts a success with `status` and the ACME headers.
    pub fn expect_ok(&self, status: u16, directory: &str) -> &Self {
        assert_eq!(self.status, status, "expected HTTP {status}: {self}");
        self.expect_acme_headers(directory)
    }
}

/// Checks collected rather than stopping at the first failure, so that one defect does not
/// hide the next: the API tests' [`Checks`], with the ACME answers' own checks.
pub type Soft = Checks;

impl Checks {
    /// A collector with no checks yet.
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Records a failure unless `r` is the problem `status` `kind` with the ACME headers.
    pub fn problem(&mut self, what: &str, r: &AcmeResp, status: u16, kind: &str, directory: &str) {
        let mismatch = r.problem_mismatch(status, kind, directory);
        self.check(mismatch.is_none(), || {
            format!("{what}: {}", mismatch.unwrap_or_default())
        });
    }

    /// Records a failure unless `r` is `status` with the ACME headers.
    pub fn ok(&mut self, what: &str, r: &AcmeResp, status: u16, directory: &str) {
        let mismatch = if r.status != status {
            Some(format!("expected HTTP {status}: {r}"))
        } else {
            r.headers_mismatch(directory)
        };
        self.check(mismatch.is_none(), || {
            format!("{what}: {}", mismatch.unwrap_or_default())
        });
    }
}

/// An account: its key and URL (`kid`).
#[derive(Debug)]
pub struct Account {
    pub key: AccountKey,
    pub url: String,
}

/// A client of one ACME server: its directory, its HTTP client and a pool of nonces (each
/// answer's `Replay-Nonce` goes in, each request takes one out, or asks newNonce).
pub struct Acme {
    pub http: reqwest::blocking::Client,
    /// The directory URL.
    pub directory_url: String,
    /// The directory object.
    pub directory: Value,
    nonces: Mutex<Vec<String>>,
}

impl Acme {
    /// A client of the directory at `directory_url` (fetched now; asserts 200).
    pub fn new(directory_url: &str) -> Acme {
        let mut acme = Acme {
            http: http_client(),
            directory_url: directory_url.to_string(),
            directory: Value::Null,
            nonces: Mutex::new(Vec::new()),
        };
        let r = acme.get(directory_url);
        assert_eq!(r.status, 200, "the directory: {r}");
        acme.directory = r.json;
        acme
    }

    /// A resource URL of the directory (`newAccount`, ...).
    pub fn url(&self, name: &str) -> String {
        self.directory[name]
            .as_str()
            .unwrap_or_else(|| panic!("the directory has no {name}: {}", self.directory))
            .to_string()
    }

    fn finish(
        &self,
        what: String,
        result: reqwest::Result<reqwest::blocking::Response>,
    ) -> AcmeResp {
        let r = result.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let resp = AcmeResp {
            what,
            status,
            headers,
            bytes,
            text,
            json,
        };
        if let Some(nonce) = resp.nonce() {
            self.nonces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(nonce);
        }
        resp
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> AcmeResp {
        self.finish(format!("GET {url}"), self.http.get(url).send())
    }

    /// `HEAD url`.
    pub fn head(&self, url: &str) -> AcmeResp {
        self.finish(format!("HEAD {url}"), self.http.head(url).send())
    }

    /// A nonce not used yet: one from an earlier answer, or a new one (`HEAD newNonce`).
    pub fn nonce(&self) -> String {
        if let Some(n) = self.nonces.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return n;
        }
        self.new_nonce()
    }

    /// A new nonce from `HEAD newNonce` (asserts 200 and a Replay-Nonce).
    pub fn new_nonce(&self) -> String {
        let r = self.head(&self.url("newNonce"));
        assert_eq!(r.status, 200, "HEAD newNonce: {r}");
        let nonce = r.nonce().unwrap_or_else(|| panic!("no Replay-Nonce: {r}"));
        // finish() pooled it; take it back out.
        let mut pool = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        pool.retain(|n| n != &nonce);
        nonce
    }

    /// The `Replay-Nonce` of an answer, taken out of the pool (for a test that uses it by
    /// hand).
    pub fn take_nonce(&self, r: &AcmeResp) -> String {
        let nonce = r.nonce().unwrap_or_else(|| panic!("no Replay-Nonce: {r}"));
        let mut pool = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        pool.retain(|n| n != &nonce);
        nonce
    }

    /// POSTs raw bytes as `application/jose+json`.
    pub fn post_bytes(&self, url: &str, body: Vec<u8>) -> AcmeResp {
        self.post_bytes_as(url, body, "application/jose+json")
    }

    /// POSTs raw bytes with a content type.
    pub fn post_bytes_as(&self, url: &str, body: Vec<u8>, content_type: &str) -> AcmeResp {
        let req = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body);
        self.finish(format!("POST {url}"), req.send())
    }

    /// POSTs a JWS as it is.
    pub fn post_jws(&self, url: &str, jws: &Value) -> AcmeResp {
        self.post_bytes(url, jws.to_string().into_bytes())
    }

    /// The JWS of a request with a fresh nonce and the right url.
    pub fn jws(
        &self,
        key: &AccountKey,
        key_ref: KeyRef<'_>,
        url: &str,
        payload: Option<&Value>,
    ) -> Value {
        let header = protected_header(key, key_ref, &self.nonce(), url);
        sign_jws(key, &header, &payload_bytes(payload))
    }

    /// POSTs a request signed by `key` (payload `None`: POST-as-GET).
    pub fn post(
        &self,
        key: &AccountKey,
        key_ref: KeyRef<'_>,
        url: &str,
        payload: Option<&Value>,
    ) -> AcmeResp {
        let jws = self.jws(key, key_ref, url, payload);
        self.post_jws(url, &jws)
    }

    /// POSTs as an account (the `kid` form).
    pub fn post_as(&self, account: &Account, url: &str, payload: &Value) -> AcmeResp {
        self.post(&account.key, KeyRef::Kid(&account.url), url, Some(payload))
    }

    /// POST-as-GET as an account.
    pub fn get_as(&self, account: &Account, url: &str) -> AcmeResp {
        self.post(&account.key, KeyRef::Kid(&account.url), url, None)
    }

    /// newAccount signed by `key` with this payload.
    pub fn new_account(&self, key: &AccountKey, payload: &Value) -> AcmeResp {
        self.post(key, KeyRef::Jwk, &self.url("newAccount"), Some(payload))
    }

    /// The newAccount payload agreeing to the terms, with a contact, bound by `eab` if given.
    pub fn new_account_payload(&self, key: &AccountKey, eab: Option<&EabKey>) -> Value {
        let mut payload = json!({
            "termsOfServiceAgreed": true,
            "contact": ["mailto:admin@example.com"],
        });
        if let Some(eab) = eab {
            payload["externalAccountBinding"] =
                eab_binding(key, &eab.kid, &eab.mac, &self.url("newAccount"));
        }
        payload
    }

    /// Creates an account for `key` (bound by `eab` if given): asserts 201 and a Location.
    pub fn register(&self, key: AccountKey, eab: Option<&EabKey>) -> Account {
        let payload = self.new_account_payload(&key, eab);
        let r = self.new_account(&key, &payload);
        r.expect_ok(201, &self.directory_url);
        let url = r.location();
        assert!(!url.is_empty(), "newAccount 201 without Location: {r}");
        assert_eq!(r.json["status"], "valid", "{r}");
        Account { key, url }
    }

    /// newOrder for DNS names, as `account`.
    pub fn new_order(&self, account: &Account, names: &[&str]) -> AcmeResp {
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        self.post_as(
            account,
            &self.url("newOrder"),
            &json!({ "identifiers": identifiers }),
        )
    }

    /// newOrder that must succeed (201 with Location): the order's URL and object.
    pub fn order(&self, account: &Account, names: &[&str]) -> (String, Value) {
        let r = self.new_order(account, names);
        r.expect_ok(201, &self.directory_url);
        let url = r.location();
        assert!(!url.is_empty(), "newOrder 201 without Location: {r}");
        (url, r.json)
    }

    /// The challenge of `kind` in an authorization object.
    pub fn challenge_of<'v>(authz: &'v Value, kind: &str) -> &'v Value {
        authz["challenges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .unwrap_or_else(|| panic!("no {kind} challenge in {authz}"))
    }

    /// Answers the http-01 challenge of the authorization at `authz_url`: the responder serves
    /// `body` (the key authorization when `None`) for its token, then `{}` is posted to the
    /// challenge (asserts 200). Returns the challenge's answer.
    pub fn answer_http01(
        &self,
        account: &Account,
        responder: &Http01Responder,
        authz_url: &str,
        body: Option<&str>,
    ) -> AcmeResp {
        let r = self.get_as(account, authz_url);
        r.expect_ok(200, &self.directory_url);
        let challenge = Self::challenge_of(&r.json, "http-01");
        let token = challenge["token"].as_str().expect("token");
        let key_authz = account.key.key_authorization(token);
        responder.serve(token, body.unwrap_or(&key_authz));
        let url = challenge["url"].as_str().expect("challenge url");
        let r = self.post_as(account, url, &json!({}));
        r.expect_ok(200, &self.directory_url);
        r
    }

    /// POST-as-GET `url` every 100 ms until `done` holds of its JSON (or `deadline` passes,
    /// which panics): the last answer.
    pub fn poll(
        &self,
        account: &Account,
        url: &str,
        deadline: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> AcmeResp {
        let until = Instant::now() + deadline;
        loop {
            let r = self.get_as(account, url);
            assert_eq!(r.status, 200, "polling {url}: {r}");
            if done(&r.json) {
                return r;
            }
            assert!(
                Instant::now() < until,
                "polling {url}: not done within {deadline:?}: {r}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls an authorization until it is neither pending nor its challenges processing.
    pub fn poll_authz(&self, account: &Account, authz_url: &str) -> AcmeResp {
        self.poll(account, authz_url, ACME_DEADLINE, |a| {
            a["status"] != "pending"
                && !a["challenges"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["status"] == "processing"))
        })
    }

    /// Answers every authorization of `order` with http-01 and waits until each is valid;
    /// then the order must be `ready` (returns it).
    pub fn authorize_http01(
        &self,
        account: &Account,
        responder: &Http01Responder,
        order_url: &str,
        order: &Value,
    ) -> Value {
        for authz in order["authorizations"].as_array().expect("authorizations") {
            let authz = authz.as_str().expect("authz URL");
            let current = self.get_as(account, authz);
            if current.json["status"] == "valid" {
                continue;
            }
            self.answer_http01(account, responder, authz, None);
            let r = self.poll_authz(account, authz);
            assert_eq!(r.json["status"], "valid", "the authorization: {r}");
        }
        let r = self.poll(account, order_url, ACME_DEADLINE, |o| {
            o["status"] != "pending"
        });
        assert_eq!(r.json["status"], "ready", "the order after validation: {r}");
        r.json
    }

    /// finalize with a CSR (DER).
    pub fn finalize(&self, account: &Account, order: &Value, csr: &[u8]) -> AcmeResp {
        let url = order["finalize"].as_str().expect("finalize URL");
        self.post_as(account, url, &json!({ "csr": b64(csr) }))
    }

    /// A whole issuance for `names` as `account`, the CSR signed by `cert_key`: new order,
    /// http-01, finalize, poll until valid, download. Returns the order URL and the chain's
    /// DER certificates (leaf first).
    pub fn issue(
        &self,
        account: &Account,
        responder: &Http01Responder,
        cert_key: &AccountKey,
        scratch: &Path,
        names: &[&str],
    ) -> (String, Vec<Vec<u8>>) {
        let (order_url, order) = self.order(account, names);
        let order = self.authorize_http01(account, responder, &order_url, &order);
        let r = self.finalize(account, &order, &cert_key.csr(scratch, names));
        r.expect_ok(200, &self.directory_url);
        let r = self.poll(account, &order_url, ACME_DEADLINE, |o| {
            o["status"] != "processing"
        });
        assert_eq!(r.json["status"], "valid", "the order after finalize: {r}");
        let cert_url = r.json["certificate"].as_str().expect("certificate URL");
        let r = self.get_as(account, cert_url);
        r.expect_ok(200, &self.directory_url);
        (order_url, pem_certs(&r.text))
    }

    /// revokeCert as `account` (the `kid` form).
    pub fn revoke_kid(&self, account: &Account, cert: &[u8], reason: Option<u8>) -> AcmeResp {
        let mut payload = json!({ "certificate": b64(cert) });
        if let Some(reason) = reason {
            payload["reason"] = reason.into();
        }
        self.post_as(account, &self.url("revokeCert"), &payload)
    }

    /// revokeCert signed by `key` in the `jwk` form (the certificate's own key).
    pub fn revoke_jwk(&self, key: &AccountKey, cert: &[u8], reason: Option<u8>) -> AcmeResp {
        let mut payload = json!({ "certificate": b64(cert) });
        if let Some(reason) = reason {
            payload["reason"] = reason.into();
        }
        self.post(key, KeyRef::Jwk, &self.url("revokeCert"), Some(&payload))
    }

    /// The inner JWS of a key change (RFC 8555 section 7.3.5): signed by `new_key`, `jwk` the
    /// new key, no nonce, `url` the keyChange URL, payload `{account, oldKey}`.
    pub fn key_change_inner(&self, account: &Account, new_key: &AccountKey) -> Value {
        let url = self.url("keyChange");
        let header = json!({"alg": new_key.alg(), "jwk": new_key.jwk(), "url": url});
        let payload = json!({"account": account.url, "oldKey": account.key.jwk()});
        sign_jws(new_key, &header, payload.to_string().as_bytes())
    }

    /// keyChange of `account` to `new_key`.
    pub fn key_change(&self, account: &Account, new_key: &AccountKey) -> AcmeResp {
        let inner = self.key_change_inner(account, new_key);
        self.post_as(account, &self.url("keyChange"), &inner)
    }
}

/// The renewalInfo CertID of a certificate (RFC 9773 section 4.1): base64url of the
/// authorityKeyIdentifier's keyIdentifier, `.`, base64url of the serial's DER content.
pub fn ari_cert_id(cert: &[u8]) -> String {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(cert).expect("the certificate parses");
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("the certificate has an authorityKeyIdentifier");
    format!("{}.{}", b64(&aki), b64(cert.raw_serial()))
}

/// The serial of a certificate, hex as the JSON API writes it.
pub fn serial_hex(cert: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).expect("the certificate parses");
    hex::encode(cert.raw_serial())
}

/// Serves `/.well-known/acme-challenge/{token}` on 127.0.0.1 (a port of its own) with the
/// body set for the token (404 for any other), for http-01 validation (RFC 8555 section
/// 8.3). Stopped on drop.
pub struct Http01Responder {
    pub port: u16,
    answers: Arc<Mutex<HashMap<String, String>>>,
    /// The request paths it was asked, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Http01Responder {
    pub fn start() -> Http01Responder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the http-01 responder");
        let port = listener.local_addr().expect("local addr").port();
        let answers: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answers, seen, stop) = (answers.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let (answers, seen) = (answers.clone(), seen.clone());
                        std::thread::spawn(move || serve_one(stream, &answers, &seen));
                    }
                }
            })
        };
        Http01Responder {
            port,
            answers,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves `body` for `token`.
    pub fn serve(&self, token: &str, body: &str) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), body.to_string());
    }
}

fn serve_one(
    mut stream: TcpStream,
    answers: &Mutex<HashMap<String, String>>,
    seen: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request = String::from_utf8_lossy(&buf);
    let path = request
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    let body = path
        .strip_prefix("/.well-known/acme-challenge/")
        .and_then(|token| {
            answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(token)
                .cloned()
        });
    let answer = match body {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
        None => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        }
    };
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.flush();
}

impl Drop for Http01Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The name of the RA token [`ProtoServer`] binds accounts to.
pub const PROTO_RA: &str = "acme-proto-ra";

/// A server for protocol tests: plain HTTP on loopback, `[acme]` on with `eab_required`
/// and the extra `[acme]` lines given, names resolving to 127.0.0.1 through
/// pebble-challtestsrv, http-01 validation pointed at [`ProtoServer::http01`], no denied
/// networks, and an RA token [`PROTO_RA`].
pub struct ProtoServer {
    /// The server (dropped before the DNS it resolves through).
    pub s: Server,
    pub dns: ChallTestSrv,
    pub http01: Http01Responder,
    /// The RA token [`PROTO_RA`].
    pub ra_token: String,
    /// Scratch files (keys, CSRs).
    pub scratch: TempDir,
    _tmp: TempDir,
}

impl ProtoServer {
    /// Starts it (`eab_required` true leaves the key out: the default); `extra` are more
    /// `[acme]` lines (`orders_per_account_per_hour = 2`).
    pub fn start(eab_required: bool, extra: &str) -> ProtoServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = new_dir(tmp.path());
        let ra_token = create_token(&dir, "ra", PROTO_RA);
        let dns = ChallTestSrv::start();
        let http01 = Http01Responder::start();
        set_acme_table(
            &dir,
            &format!(
                "enabled = true\n\
                 {}\
                 http01_port = {}\n\
                 dns_resolver = \"{}\"\n\
                 deny_networks = []\n\
                 validation_timeout_secs = 10\n\
                 {extra}\n",
                if eab_required {
                    ""
                } else {
                    "eab_required = false\n"
                },
                http01.port,
                dns.dns
            ),
        );
        let s = Server::serve(&dir);
        assert!(s.base.starts_with("http://"), "plain HTTP: {}", s.base);
        ProtoServer {
            s,
            dns,
            http01,
            ra_token,
            scratch: tempfile::tempdir().expect("tempdir"),
            _tmp: tmp,
        }
    }

    /// The directory URL.
    pub fn directory(&self) -> String {
        format!("{}/acme/directory", self.s.base)
    }

    /// A client of its directory.
    pub fn client(&self) -> Acme {
        Acme::new(&self.directory())
    }

    /// `POST /v1/acme/eab {"ra": RA}` with the operator token; asserts 201.
    pub fn eab_for(&self, ra: &str) -> EabKey {
        let r = self.s.post(
            "/v1/acme/eab",
            &self.s.tokens.operator,
            &json!({ "ra": ra }),
        );
        assert_eq!(r.status, 201, "POST /v1/acme/eab {ra}: {r}");
        assert_eq!(r.json["ra"], ra, "{r}");
        EabKey {
            kid: r.json["kid"].as_str().expect("kid").to_string(),
            mac: unb64(r.json["hmac_key"].as_str().expect("hmac_key")),
            ra: ra.to_string(),
        }
    }

    /// An EAB key for [`PROTO_RA`].
    pub fn eab(&self) -> EabKey {
        self.eab_for(PROTO_RA)
    }

    /// A new account with a new ES256 key (bound to [`PROTO_RA`] when EAB is required).
    pub fn account(&self, acme: &Acme) -> Account {
        self.account_with(acme, AccountKey::es256())
    }

    /// A new account with `key` (bound to [`PROTO_RA`] when EAB is required).
    pub fn account_with(&self, acme: &Acme, key: AccountKey) -> Account {
        let eab = acme.directory["meta"]["externalAccountRequired"] == true;
        let eab = eab.then(|| self.eab());
        acme.register(key, eab.as_ref())
    }

    /// `openssl verify -CAfile DIR/ca.pem` of a chain as downloaded (leaf first): asserts it
    /// verifies, and that what follows the leaf are the CA's certificates.
    pub fn verify_chain(&self, chain: &[Vec<u8>]) {
        let ca_file = self.s.dir.join("ca.pem");
        let ca_pem = std::fs::read_to_string(&ca_file).expect("reading ca.pem");
        let ca = pem_certs(&ca_pem);
        assert!(!chain.is_empty(), "an empty chain");
        assert_eq!(
            &chain[1..],
            &ca[..],
            "the certificates after the leaf are the CA chain of ca.pem"
        );
        let leaf = self.scratch.path().join(format!("leaf-{}.pem", unique()));
        std::fs::write(&leaf, to_pem("CERTIFICATE", &chain[0])).expect("writing the leaf");
        let out = openssl(&[
            "verify",
            "-CAfile",
            ca_file.to_str().expect("UTF-8"),
            leaf.to_str().expect("UTF-8"),
        ]);
        assert!(out.contains(": OK"), "openssl verify: {out}");
    }

    /// Stops the server (SIGTERM, a clean exit) and runs `ca-server audit verify` on its
    /// data directory (asserts it passes).
    pub fn stop_and_verify_audit(self) {
        let ProtoServer { s, dns, _tmp, .. } = self;
        let dir = s.dir.clone();
        s.terminate();
        drop(dns);
        crate::binary::audit_verify_ok(&dir);
        drop(_tmp);
    }
}
