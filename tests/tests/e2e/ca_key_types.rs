//! Every CA key type: `ca-server init --key-type K` in a fresh directory, `serve` on it, issue
//! one P-256 certificate, and have OpenSSL and pkilint judge the chain.

use std::os::unix::fs::PermissionsExt;

use e2e_tests::prelude::*;
use x509_parser::public_key::PublicKey;

/// The key type of a certificate's key, as `--key-type` names it (`ec-p256`, `rsa-2048`,
/// ...), or the algorithm and curve OIDs of another key.
fn key_type_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    match (alg.as_str(), curve.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "ec-p256".to_string(),
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "ec-p384".to_string(),
        ("1.3.101.112", _) => "ed25519".to_string(),
        ("1.2.840.113549.1.1.1", _) => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("rsa-{}", rsa.key_size()),
            other => panic!("bad RSA key: {other:?}"),
        },
        other => format!("{other:?}"),
    }
}

fn issue_under_ca(key_type: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    init_ca(&dir, key_type);
    for f in ["ca-key.pem", "ca.pem", "config.toml"] {
        assert!(
            dir.join(f).is_file(),
            "`init --key-type {key_type}` made no {f}"
        );
    }
    let mode = std::fs::metadata(dir.join("ca-key.pem"))
        .expect("ca-key.pem")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode, 0o600,
        "ca-key.pem of a {key_type} CA has mode {mode:o}"
    );

    let s = Server::serve(&dir);
    let ca = s.ca();
    let file = std::fs::read_to_string(dir.join("ca.pem")).expect("DIR/ca.pem");
    assert_eq!(
        pem_certs(&file),
        ca.ders,
        "GET /ca.pem differs from the CA that init made"
    );

    let (_, cert) = x509_parser::parse_x509_certificate(&ca.ders[0]).expect("CA parses");
    assert_eq!(
        cert.issuer().as_raw(),
        cert.subject().as_raw(),
        "a {key_type} root is self-signed"
    );
    // "CN=Test Root,O=Test" in RFC 4514 is O=Test, CN=Test Root in DER order.
    let subject: Vec<(String, String)> = cert
        .subject()
        .iter_attributes()
        .map(|a| {
            (
                a.attr_type().to_id_string(),
                a.as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert_eq!(
        subject,
        vec![
            ("2.5.4.10".to_string(), "Test".to_string()),
            ("2.5.4.3".to_string(), "Test Root".to_string())
        ],
        "subject of a root made with --subject \"CN=Test Root,O=Test\""
    );
    let actual = key_type_of(&cert);
    assert_eq!(actual, key_type, "the key type of the CA that init made");
    pkilint_ca(ca, &format!("the {key_type} root CA certificate"));

    let csr = server_csr(&format!("leaf.{key_type}.example.com"));
    let issued = s.issue(&csr, "tls-server", Some(47));
    s.check_issued(&issued, &csr, "tls-server", 47);
    let serial = issued["serial"].as_str().expect("serial");
    check_record(&s.record(serial), &issued, &csr, "tls-server", None);
}

#[test]
fn ca_ec_p256() {
    issue_under_ca("ec-p256");
}

#[test]
fn ca_ec_p384() {
    issue_under_ca("ec-p384");
}

#[test]
fn ca_ed25519() {
    issue_under_ca("ed25519");
}

#[test]
fn ca_rsa_3072() {
    issue_under_ca("rsa-3072");
}

#[test]
fn ca_rsa_4096() {
    issue_under_ca("rsa-4096");
}

#[test]
fn init_refuses_a_key_type_no_ca_may_have() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for bad in ["rsa-2048", "rsa-1024", "dsa", ""] {
        let dir = tmp.path().join(format!("ca-{bad}"));
        let out = ca_server(&[
            "init",
            "--data-dir",
            dir.to_str().expect("UTF-8"),
            "--key-type",
            bad,
            "--subject",
            "CN=Test Root,O=Test",
        ]);
        assert!(
            !out.status.success(),
            "`init --key-type {bad:?}` should fail; it succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !dir.join("ca-key.pem").exists(),
            "`init --key-type {bad:?}` failed but left a key behind"
        );
    }
}

#[test]
fn init_refuses_to_overwrite_an_existing_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    init_ca(&dir, "ec-p256");
    let before = std::fs::read(dir.join("ca-key.pem")).expect("key");
    let out = ca_server(&[
        "init",
        "--data-dir",
        dir.to_str().expect("UTF-8"),
        "--key-type",
        "ec-p384",
        "--subject",
        "CN=Other Root",
    ]);
    assert!(
        !out.status.success(),
        "a second `init` on the same directory should fail"
    );
    let after = std::fs::read(dir.join("ca-key.pem")).expect("key");
    assert_eq!(before, after, "a second `init` replaced the CA key");
}
