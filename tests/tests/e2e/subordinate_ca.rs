//! Subordinate CA certificates (issue 19): a CA profile with name constraints (DNS
//! `example.com` permitted, `bad.example.com` excluded, an IPv4 range permitted, IPv6 excluded,
//! a directoryName permitted) and path length 0; a `ca-admin` token made on the command line
//! (the only way to one); the subordinate CA issued through `POST /v1/certificates` from the CSR
//! of a key the test holds. That key then signs leaves with OpenSSL: `openssl verify` accepts
//! the leaf inside the permitted subtrees and refuses those outside, excluded, or below a CA
//! the path length forbids; pkilint's CA/Browser Forum TLS linter finds no error in the
//! subordinate CA's certificate. An RA (single, DER, batch, enrollment), the operator, and the
//! `ca-admin` token outside its lane are refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use e2e_tests::prelude::*;
use serde_json::{json, Value};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The configuration: public URLs (the CA/B linters refuse internal ones), the CA profile
/// `issuing-ca` and an end-entity profile `web`.
const CONFIG: &str = r#"public_base_url = "http://ca.example.com"

[profiles.web]
[profiles.web.san]
dns = true

[profiles.issuing-ca]
standard = "cabf-serverauth-dv"
key_types = ["ec-p256", "ec-p384", "rsa-3072"]
max_validity_days = 1825
default_validity_days = 1095
extended_key_usage = ["serverAuth", "clientAuth"]
[profiles.issuing-ca.subject]
allowed = ["C", "O", "CN"]
required = ["C", "O", "CN"]
[profiles.issuing-ca.ca]
path_len = 0
permitted_dirname = ["O=Example,C=PT"]
permitted_dns = ["example.com"]
excluded_dns = ["bad.example.com"]
permitted_ip = ["192.0.2.0/24"]
excluded_ip = ["::/0"]
"#;

/// The next serial of the certificates the test signs with OpenSSL.
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// The name of the test's `ca-admin` token.
const ADMIN: &str = "issuing-ca-admin";

/// `openssl ARGS`, whatever its exit status: (success, stdout and stderr together).
fn openssl_status(args: &[&str]) -> (bool, String) {
    let out = output_within(Command::new("openssl").args(args), COMMAND_DEADLINE);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A leaf (or, with `ca_extensions`, a CA) certificate for a fresh key, subject `subj` and
/// `sans`, signed by `issuer` (certificate `issuer_pem`, key `issuer_key`) with `openssl x509
/// -req`, which copies the CSR's SANs. Returns the certificate file and its key.
fn sign_with_openssl(
    dir: &Path,
    name: &str,
    subj: &str,
    sans: &[&str],
    issuer_pem: &Path,
    issuer_key: &Path,
    ca_extensions: bool,
) -> (PathBuf, PathBuf) {
    let key = fresh_p256_key(dir);
    let csr = make_csr_for_key(&key, "ec-p256", subj, sans, &[]);
    let csr_file = dir.join(format!("{name}.csr"));
    std::fs::write(&csr_file, &csr.pem).expect("write the CSR");
    let cert = dir.join(format!("{name}.pem"));
    let ext = dir.join(format!("{name}.ext"));
    let extensions = if ca_extensions {
        "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
    } else {
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\n"
    };
    std::fs::write(&ext, extensions).expect("write the extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        path_str(&csr_file),
        "-CA",
        path_str(issuer_pem),
        "-CAkey",
        path_str(issuer_key),
        "-set_serial",
        &format!(
            "0x{:x}",
            0x5ca1_ab1e + SERIAL.fetch_add(1, Ordering::Relaxed)
        ),
        "-days",
        "30",
        "-copy_extensions",
        "copy",
        "-extfile",
        path_str(&ext),
        "-out",
        path_str(&cert),
    ]);
    (cert, key)
}

/// `openssl verify -CAfile ROOT -untrusted UNTRUSTED... LEAF`: (accepted, output).
fn verify(root: &Path, untrusted: &[&Path], leaf: &Path) -> (bool, String) {
    let mut args = vec!["verify", "-CAfile", path_str(root)];
    for u in untrusted {
        args.extend(["-untrusted", path_str(u)]);
    }
    args.push(path_str(leaf));
    openssl_status(&args)
}

#[test]
fn a_ca_admin_issues_a_name_constrained_subordinate_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    std::fs::create_dir(&dir).expect("data directory");
    std::fs::write(dir.join("config.toml"), CONFIG).expect("config.toml");

    // The first start makes the CA and the bootstrap tokens: none is a ca-admin, and the
    // operator cannot make one while the server runs.
    let s = Server::serve(&dir);
    let bootstrap: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("bootstrap-tokens.json")).expect("bootstrap tokens"),
    )
    .expect("JSON");
    let mut roles: Vec<&String> = bootstrap.as_object().expect("object").keys().collect();
    roles.sort();
    assert_eq!(roles, ["auditor", "operator", "ra"], "bootstrap tokens");
    let r = s.post(
        "/v1/tokens",
        &s.tokens.operator,
        &json!({"role": "ca-admin", "name": "operator-made-admin"}),
    );
    assert_error(
        &r,
        403,
        "forbidden",
        "the operator creates a ca-admin token",
    );
    assert!(r.text.contains("ca-server token create"), "{r}");
    s.terminate();

    let admin = create_token(&dir, "ca-admin", ADMIN);
    let s = Server::serve(&dir);
    let before = s.certificate_count();
    let scratch = s.scratch().to_path_buf();
    let ca_key = fresh_p256_key(&scratch);
    let csr = make_csr_for_key(
        &ca_key,
        "ec-p256",
        "/C=PT/O=Example/CN=Example Issuing CA",
        &[],
        &[],
    );
    let body = json!({"csr": csr.pem, "profile": "issuing-ca", "validity_days": 1095});

    // Nobody else asks for the CA profile, on any path.
    let r = s.post("/v1/certificates", &s.tokens.ra, &body);
    assert_error(
        &r,
        403,
        "profile_requires_ca_admin",
        "an RA asks for the CA profile",
    );
    let r = s.post_raw(
        "/v1/certificates?profile=issuing-ca",
        Some(&s.tokens.ra),
        "application/pkcs10",
        csr.der(),
    );
    assert_error(&r, 403, "profile_requires_ca_admin", "an RA's DER request");
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": [body]}),
    );
    assert_eq!(r.status, 200, "batch: {r}");
    assert_eq!(
        r.json["results"][0]["error"]["code"], "profile_requires_ca_admin",
        "a batch item for the CA profile: {r}"
    );
    let r = s.post(
        "/v1/enrollments",
        &s.tokens.ra,
        &json!({"profile": "issuing-ca", "subject": "CN=Example Issuing CA,O=Example,C=PT",
                "sans": [], "expires_in_hours": 1, "max_attempts": 3}),
    );
    assert_error(
        &r,
        403,
        "profile_requires_ca_admin",
        "an enrollment for the CA profile",
    );
    let r = s.post("/v1/certificates", &s.tokens.operator, &body);
    assert_error(&r, 403, "forbidden", "the operator issues");
    assert_eq!(s.certificate_count(), before, "nothing was issued");

    // The ca-admin stays in its lane: CA profiles only, no other route.
    let leaf_csr = make_csr("ec-p256", "", &["DNS:www.example.com"]);
    let r = s.post(
        "/v1/certificates",
        &admin,
        &json!({"csr": leaf_csr.pem, "profile": "web"}),
    );
    assert_error(
        &r,
        403,
        "forbidden",
        "the ca-admin asks for an end-entity profile",
    );
    let r = s.post(
        "/v1/certificates/batch",
        &admin,
        &json!({"requests": [body]}),
    );
    assert_error(&r, 403, "forbidden", "the ca-admin's batch");
    let r = s.get("/v1/certificates", Some(&admin));
    assert_error(&r, 403, "forbidden", "the ca-admin lists certificates");
    let r = s.get("/v1/tokens", Some(&admin));
    assert_error(&r, 403, "forbidden", "the ca-admin lists tokens");

    // The subordinate CA.
    let r = s.post("/v1/certificates", &admin, &body);
    assert_eq!(r.status, 201, "the ca-admin issues the subordinate CA: {r}");
    let serial = r.json["serial"].as_str().expect("serial").to_string();
    let pem = r.json["certificate"]
        .as_str()
        .expect("certificate")
        .to_string();
    let der = pem_certs(&pem).remove(0);
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).expect("parses");
    let mut seen = Vec::new();
    for ext in cert.extensions() {
        seen.push(ext.oid.to_id_string());
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                assert!(ext.critical && bc.ca, "basicConstraints: {bc:?}");
                assert_eq!(bc.path_len_constraint, Some(0));
            }
            ParsedExtension::KeyUsage(ku) => {
                assert!(
                    ext.critical && ku.key_cert_sign() && ku.crl_sign(),
                    "{ku:?}"
                );
            }
            ParsedExtension::NameConstraints(nc) => {
                assert!(ext.critical, "nameConstraints must be critical");
                let permitted = nc.permitted_subtrees.as_ref().expect("permitted");
                assert!(permitted
                    .iter()
                    .any(|s| matches!(s.base, GeneralName::DNSName("example.com"))));
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.server_auth && eku.client_auth && !eku.any, "{eku:?}");
            }
            _ => {}
        }
    }
    for oid in [
        "2.5.29.19",
        "2.5.29.15",
        "2.5.29.30",
        "2.5.29.37",
        "2.5.29.14",
        "2.5.29.35",
    ] {
        assert!(
            seen.iter().any(|s| s == oid),
            "extension {oid} missing: {seen:?}"
        );
    }

    // Recorded and audited like every certificate, the ca-admin named as requester and actor.
    let record = s.record(&serial);
    assert_eq!(record["requester"], ADMIN, "{record}");
    assert_eq!(record["profile"], "issuing-ca", "{record}");
    let r = s.get(
        &format!("/v1/certificates/{serial}/events"),
        Some(&s.tokens.auditor),
    );
    assert_eq!(r.status, 200, "events: {r}");
    assert_eq!(r.json["items"][0]["type"], "issued", "{r}");
    assert_eq!(r.json["items"][0]["actor"], ADMIN, "{r}");
    let r = s.get("/v1/audit?limit=1000", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "audit: {r}");
    let entry = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["action"] == "certificate_issued" && e["target"] == serial.as_str())
        .unwrap_or_else(|| panic!("no certificate_issued entry for {serial}: {r}"))
        .clone();
    assert_eq!(entry["actor"], ADMIN, "{entry}");

    // The chain: the CA's root, the subordinate CA, leaves its key signs with OpenSSL.
    let root = scratch.join("root.pem");
    std::fs::write(&root, &s.ca().pem).expect("root");
    let subca = scratch.join("subca.pem");
    std::fs::write(&subca, &pem).expect("subca");
    let (ok, out) = openssl_status(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        path_str(&root),
        path_str(&subca),
    ]);
    assert!(ok, "the subordinate CA verifies under the root:\n{out}");
    let leaf = |name: &str, subj: &str, sans: &[&str]| {
        sign_with_openssl(&scratch, name, subj, sans, &subca, &ca_key, false).0
    };
    let inside = leaf(
        "inside",
        "/C=PT/O=Example/CN=www.example.com",
        &["DNS:www.example.com", "IP:192.0.2.10"],
    );
    let (ok, out) = verify(&root, &[&subca], &inside);
    assert!(ok, "a leaf inside the permitted subtrees:\n{out}");
    for (name, subj, sans, why) in [
        (
            "other-domain",
            "/C=PT/O=Example/CN=www.other.org",
            &["DNS:www.other.org"][..],
            "permitted subtree violation",
        ),
        (
            "excluded",
            "/C=PT/O=Example/CN=bad.example.com",
            &["DNS:bad.example.com"][..],
            "excluded subtree violation",
        ),
        (
            "other-network",
            "/C=PT/O=Example/CN=www.example.com",
            &["DNS:www.example.com", "IP:198.51.100.7"][..],
            "permitted subtree violation",
        ),
        (
            "other-organization",
            "/C=PT/O=Someone Else/CN=www.example.com",
            &["DNS:www.example.com"][..],
            "permitted subtree violation",
        ),
    ] {
        let cert = leaf(name, subj, sans);
        let (ok, out) = verify(&root, &[&subca], &cert);
        assert!(
            !ok,
            "{name}: openssl verify accepted a leaf outside the constraints:\n{out}"
        );
        assert!(out.contains(why), "{name}: expected {why:?}:\n{out}");
    }
    // pathLenConstraint 0: a CA below the subordinate CA makes its leaves unverifiable.
    let (below, below_key) = sign_with_openssl(
        &scratch,
        "below-ca",
        "/C=PT/O=Example/CN=Below CA",
        &[],
        &subca,
        &ca_key,
        true,
    );
    let (deep, _) = sign_with_openssl(
        &scratch,
        "deep-leaf",
        "/C=PT/O=Example/CN=deep.example.com",
        &["DNS:deep.example.com"],
        &below,
        &below_key,
        false,
    );
    let (ok, out) = verify(&root, &[&subca, &below], &deep);
    assert!(!ok, "a leaf below a CA the path length forbids:\n{out}");
    assert!(out.contains("path length constraint exceeded"), "{out}");

    // pkilint's CA/B TLS linter, by detection (a constrained TLS CA) and as an external one.
    for args in [&["-d"][..], &["-t", "EXTERNAL-CONSTRAINED-TLS-CA"][..]] {
        let report = pkilint_run("lint_cabf_serverauth_cert", args, &subca);
        assert!(
            report.findings.is_empty(),
            "lint_cabf_serverauth_cert {args:?}: {:?}\n{}",
            report.codes(),
            report.output
        );
    }
    let report = pkilint_cert_findings(&subca);
    assert!(
        report.findings.is_empty(),
        "lint_pkix_cert: {}",
        report.output
    );

    // Revocation: the RA does not see it; the ca-admin revokes what it requested.
    let revoke = json!({"reason": "cessationOfOperation"});
    let path = format!("/v1/certificates/{serial}/revoke");
    let r = s.post(&path, &s.tokens.ra, &revoke);
    assert_error(
        &r,
        404,
        "serial_not_found",
        "the RA revokes the subordinate CA",
    );
    let r = s.post(&path, &admin, &revoke);
    assert_eq!(
        r.status, 200,
        "the ca-admin revokes its subordinate CA: {r}"
    );
    assert_eq!(r.json["status"], "revoked", "{r}");
    // Renewal and the RA's other routes stay closed to it.
    let r = s.post(
        &format!("/v1/certificates/{serial}/renew"),
        &admin,
        &json!({}),
    );
    assert_error(&r, 403, "forbidden", "the ca-admin renews");
    s.terminate();
}
