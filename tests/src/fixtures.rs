//! What the tests send: private keys (generated once by `openssl genpkey` and cached under the
//! target directory), CSRs made by `openssl req`, and CSRs tampered with on purpose.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::binary::profile_dir;
use crate::command::openssl;
use crate::formats::{now_unix, parse_rfc3339, pem_blocks, to_pem};
use crate::unique;

/// `target/tmp/e2e-keys`: the directory cargo names `CARGO_TARGET_TMPDIR` when it builds
/// test code (a library is not told it), found from the test executable.
fn key_cache_dir() -> PathBuf {
    let target = profile_dir();
    let target = target.parent().unwrap_or(&target);
    let dir = target.join("tmp").join("e2e-keys");
    std::fs::create_dir_all(&dir).expect("creating the key cache");
    dir
}

/// A private key of the given type (`ec-p256`, `ec-p384`, `ed25519`, `rsa-BITS`), generated
/// once by `openssl genpkey` and cached under the target directory.
pub fn key_file(key_type: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = key_cache_dir().join(format!("{key_type}.pem"));
    if path.is_file() {
        return path;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let tmp_s = tmp.to_str().expect("UTF-8 path");
    let mut args = vec!["genpkey"];
    let bits;
    let curve;
    match key_type {
        "ed25519" => args.extend(["-algorithm", "ED25519"]),
        ec if ec.starts_with("ec-") => {
            curve = match &ec[3..] {
                "p256" => "ec_paramgen_curve:P-256".to_string(),
                "p384" => "ec_paramgen_curve:P-384".to_string(),
                other => format!("ec_paramgen_curve:{other}"),
            };
            args.extend(["-algorithm", "EC", "-pkeyopt", &curve]);
        }
        rsa if rsa.starts_with("rsa-") => {
            bits = format!("rsa_keygen_bits:{}", &rsa[4..]);
            args.extend(["-algorithm", "RSA", "-pkeyopt", &bits]);
        }
        other => panic!("unknown key type {other}"),
    }
    args.extend(["-out", tmp_s]);
    openssl(&args);
    std::fs::rename(&tmp, &path).expect("renaming the generated key");
    path
}

/// A CSR made by `openssl req`, with what it asks for.
#[derive(Clone, Debug)]
pub struct Csr {
    pub pem: String,
    /// The key type it was made with.
    pub key_type: String,
    /// OpenSSL's `-subj` form, e.g. `/C=BR/O=Acme/CN=Maria Silva` (DER order).
    pub subj: String,
    /// The SANs as in OpenSSL's `subjectAltName`, e.g. `DNS:a.example.com`, `IP:8.8.8.8`,
    /// `email:m@a.example`.
    pub sans: Vec<String>,
}

impl Csr {
    /// The subject attributes in DER order, as (short name, value).
    pub fn subject_attrs(&self) -> Vec<(String, String)> {
        self.subj
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let (k, v) = s.split_once('=').expect("attribute in -subj");
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// The subject as RFC 4514 writes it (last RDN first).
    pub fn rfc4514(&self) -> String {
        self.subject_attrs()
            .iter()
            .rev()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The SAN values without their type prefix, as the API lists them.
    pub fn san_values(&self) -> Vec<String> {
        self.sans
            .iter()
            .map(|s| s.split_once(':').expect("TYPE:value").1.to_string())
            .collect()
    }

    /// This CSR (its key and SANs) with the subject `subj` (`-subj` form, DER order) instead
    /// of its own: what a certificate issued for it holds where the RA asserted identity data
    /// (`identity.subject`) that the profile orders among the CSR's attributes.
    pub fn with_subject(&self, subj: &str) -> Csr {
        Csr {
            subj: subj.to_string(),
            ..self.clone()
        }
    }

    /// The DER of the CSR.
    pub fn der(&self) -> Vec<u8> {
        pem_blocks(&self.pem)
            .into_iter()
            .next()
            .expect("a PEM block")
            .1
    }
}

/// `openssl req -new -key <cached key of key_type> -subj SUBJ -addext subjectAltName=SANS`.
pub fn make_csr(key_type: &str, subj: &str, sans: &[&str]) -> Csr {
    make_csr_with(key_type, subj, sans, &[])
}

/// [`make_csr`] with extra `openssl req` arguments (e.g. `-sha1`).
pub fn make_csr_with(key_type: &str, subj: &str, sans: &[&str], extra: &[&str]) -> Csr {
    make_csr_for_key(&key_file(key_type), key_type, subj, sans, extra)
}

/// A CSR made by `openssl req` with the private key in `key` (of type `key_type`).
pub fn make_csr_for_key(
    key: &Path,
    key_type: &str,
    subj: &str,
    sans: &[&str],
    extra: &[&str],
) -> Csr {
    let mut args: Vec<String> = vec![
        "req".into(),
        "-new".into(),
        "-batch".into(),
        "-key".into(),
        key.to_str().expect("UTF-8 path").into(),
        "-subj".into(),
        if subj.is_empty() {
            "/".into()
        } else {
            subj.into()
        },
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    if !sans.is_empty() {
        args.push("-addext".into());
        args.push(format!("subjectAltName={}", sans.join(",")));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pem = openssl(&args);
    assert!(
        pem.contains("-----BEGIN CERTIFICATE REQUEST-----"),
        "openssl req printed {pem}"
    );
    Csr {
        pem,
        key_type: key_type.to_string(),
        subj: subj.to_string(),
        sans: sans.iter().map(|s| s.to_string()).collect(),
    }
}

/// A new EC P-256 private key of its own in `dir` (not the cached one), for requests that must
/// be told apart by their keys.
pub fn fresh_p256_key(dir: &Path) -> PathBuf {
    let path = dir.join(format!("key-{}.pem", unique()));
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path.to_str().expect("UTF-8 path"),
    ]);
    path
}

/// The CSR's PEM with the last byte of its DER (inside the signature) flipped.
pub fn tamper_signature(csr: &Csr) -> String {
    let mut der = csr.der();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    to_pem("CERTIFICATE REQUEST", &der)
}

/// The CSR's PEM with the first occurrence of `from` in its DER (in the signed part) replaced
/// by `to` (of the same length).
pub fn tamper_bytes(csr: &Csr, from: &str, to: &str) -> String {
    assert_eq!(from.len(), to.len());
    let mut der = csr.der();
    let pos = der
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in the CSR"));
    der[pos..pos + to.len()].copy_from_slice(to.as_bytes());
    to_pem("CERTIFICATE REQUEST", &der)
}

/// A tls-server CSR for `host` (CN and DNS SAN) with a P-256 key; `host` is a public name
/// (`x.example.com`: `tls-server` refuses internal names such as `x.example`).
pub fn server_csr(host: &str) -> Csr {
    make_csr("ec-p256", &format!("/CN={host}"), &[&format!("DNS:{host}")])
}

/// [`server_csr`] with the P-256 key in `key` (e.g. one of [`fresh_p256_key`]) instead of the
/// shared one.
pub fn server_csr_with_key(key: &Path, host: &str) -> Csr {
    make_csr_for_key(
        key,
        "ec-p256",
        &format!("/CN={host}"),
        &[&format!("DNS:{host}")],
        &[],
    )
}

/// The longest validity in days the built-in `tls-server` profile allows now: the CA/Browser
/// Forum TLS BR schedule (section 6.3.2) of README, *Profiles*: 397 days, 200 from
/// 2026-03-15, 100 from 2027-03-15, 47 from 2029-03-15.
pub fn tls_server_max_validity_days() -> u32 {
    let now = now_unix();
    [
        ("2029-03-15T00:00:00Z", 47),
        ("2027-03-15T00:00:00Z", 100),
        ("2026-03-15T00:00:00Z", 200),
    ]
    .into_iter()
    .find(|(from, _)| parse_rfc3339(from) <= now)
    .map_or(397, |(_, days)| days)
}

/// `openssl x509 -noout -fingerprint -sha256` of a PEM certificate file, as an operator copies
/// it into `certificate_sha256`.
pub fn sha256_fingerprint(cert: &Path) -> String {
    let out = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        cert.to_str().expect("UTF-8 path"),
    ]);
    out.trim()
        .rsplit('=')
        .next()
        .expect("Fingerprint=...")
        .to_string()
}

/// SHA-256 of a CSR's DER SubjectPublicKeyInfo, lower-case hex: what `key_blocked` messages,
/// `blocked_key_sha256` audit details and the mass revocation's key filter name.
pub fn csr_spki_sha256(csr: &Csr) -> String {
    use sha2::Digest;
    use x509_parser::prelude::FromDer;
    let der = csr.der();
    let (_, request) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .expect("a CSR");
    hex::encode(sha2::Sha256::digest(
        request.certification_request_info.subject_pki.raw,
    ))
}
