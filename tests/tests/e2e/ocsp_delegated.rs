//! The delegated OCSP responder (`[ocsp] delegated = true`, RFC 6960 section 4.2.2.2): the
//! server issues itself an OCSP signing certificate and key at start, signs its answers with
//! that key and sends the certificate along; `openssl ocsp` verifies them against the CA alone.
//! The responder survives restarts while fresh and is replaced when it no longer fits.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use e2e_tests::prelude::*;
use serde_json::Value;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A serial this CA never issued.
const MADE_UP: &str = "0x41424344454647484142434445464748";

/// The delegated responder's key file bytes and certificate DER, after checking that the key
/// file is mode 0600 and that the certificate file holds one certificate.
fn responder_files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let key_path = dir.join("ocsp-key.pem");
    let mode = std::fs::metadata(&key_path)
        .expect("ocsp-key.pem exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "ocsp-key.pem has mode {mode:o}");
    let key = std::fs::read(&key_path).expect("reading ocsp-key.pem");
    let pem = std::fs::read_to_string(dir.join("ocsp.pem")).expect("reading ocsp.pem");
    let mut certs = pem_certs(&pem);
    assert_eq!(certs.len(), 1, "ocsp.pem holds one certificate: {pem}");
    (key, certs.remove(0))
}

/// Checks the responder certificate against the CA: subject, issuer, AKI, EKU OCSPSigning
/// (and nothing else), keyUsage digitalSignature (critical), cA false, validity; and pkilint.
fn check_responder_certificate(s: &Server, der: &[u8], validity_days: i64) {
    let ca = s.ca();
    let (_, cert) = X509Certificate::from_der(der).expect("the responder certificate parses");
    assert_eq!(
        cert.subject().to_string(),
        "CN=ca-core Development Root CA OCSP Responder"
    );
    assert_eq!(cert.issuer().as_raw(), ca.subject_der.as_slice());
    let v = cert.validity();
    assert_eq!(
        v.not_after.timestamp() - v.not_before.timestamp(),
        validity_days * 86_400 - 1
    );
    let (mut eku, mut ku, mut bc, mut aki) = (false, false, false, false);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(e) => {
                assert!(e.ocsp_signing && !e.server_auth && !e.client_auth && !e.any);
                eku = true;
            }
            ParsedExtension::KeyUsage(k) => {
                assert!(ext.critical && k.digital_signature() && k.flags == 1);
                ku = true;
            }
            ParsedExtension::BasicConstraints(b) => {
                assert!(!b.ca);
                bc = true;
            }
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                assert_eq!(
                    a.key_identifier.as_ref().map(|k| k.0),
                    Some(ca.ski.as_slice())
                );
                aki = true;
            }
            _ => {}
        }
    }
    assert!(eku && ku && bc && aki, "an extension is missing");
    let file = s.scratch().join("responder.pem");
    std::fs::write(&file, to_pem("CERTIFICATE", der)).expect("writing the responder cert");
    pkilint(&file, "delegated OCSP responder certificate");
}

/// Asks for `targets` over POST with `-resp_text -respout`; asserts that the response verifies
/// (the helper) and carries `responder` (DER); returns openssl's output and the response.
fn ask(s: &Server, url: &str, targets: &[&str], responder: &[u8]) -> (String, Vec<u8>) {
    let file = s.scratch().join("resp.der");
    let mut args = targets.to_vec();
    args.extend(["-resp_text", "-respout", file.to_str().expect("UTF-8 path")]);
    let out = s.ocsp_ask(url, &args);
    let resp = std::fs::read(&file).expect("reading the OCSP response");
    assert!(
        resp.windows(responder.len()).any(|w| w == responder),
        "the OCSP response does not carry the responder certificate:\n{out}"
    );
    assert!(out.contains("OCSP Signing"), "{out}");
    (out, resp)
}

#[test]
fn delegated_responder_signs_answers_and_survives_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(
        dir.join("config.toml"),
        "[ocsp]\ndelegated = true\ndelegated_validity_days = 20\n",
    )
    .expect("writing config.toml");
    let s = Server::serve(dir);
    let (key, cert) = responder_files(dir);
    check_responder_certificate(&s, &cert, 20);
    let a = the_responder_signs_every_answer(&s, &cert);
    s.terminate();
    restarts_keep_a_fitting_responder(dir, &a, (key.as_slice(), cert.as_slice()));
}

/// good, revoked, unknown, and the GET form: each answer verified by openssl against the CA
/// alone, signed by the delegated responder (`cert`, DER), whose key the responderID names.
/// Returns the issuance answer of the certificate asked about.
fn the_responder_signs_every_answer(s: &Server, cert: &[u8]) -> Value {
    let a = s.issue(&server_csr("deleg-a.example.com"), "tls-server", None);
    let b = s.issue(&server_csr("deleg-b.example.com"), "tls-server", None);
    let (a_file, b_file) = (s.leaf_file(&a), s.leaf_file(&b));
    let (a_s, b_s) = (
        a_file.to_str().expect("UTF-8 path"),
        b_file.to_str().expect("UTF-8 path"),
    );
    let (_, ocsp_urls, _) = cert_urls(a["certificate"].as_str().expect("certificate"));
    let url = &ocsp_urls[0];

    // good, revoked, unknown; each verified by openssl against the CA alone.
    let (out, _) = ask(s, url, &["-cert", a_s], cert);
    assert_eq!(ocsp_status(&out, a_s), ("good".into(), None), "{out}");
    s.revoke_ok(b["serial"].as_str().expect("serial"), "keyCompromise");
    let (out, _) = ask(s, url, &["-cert", b_s], cert);
    assert_eq!(
        ocsp_status(&out, b_s),
        ("revoked".into(), Some("keyCompromise".into())),
        "{out}"
    );
    let (out, resp) = ask(s, url, &["-serial", MADE_UP], cert);
    assert_eq!(ocsp_status(&out, MADE_UP).0, "unknown", "{out}");
    let file = s.scratch().join("unknown.der");
    std::fs::write(&file, &resp).expect("writing the response");
    pkilint_ocsp(&file, "delegated OCSP response (unknown)");

    // The responderID names the delegated key, not the CA's.
    let responder_id = ocsp_key_hash(&s.dir.join("ocsp.pem"));
    assert_ne!(responder_id, ocsp_key_hash(&s.issuer_file()));
    assert!(
        out.contains(&format!("Responder Id: {responder_id}")),
        "responderID is not the delegated key's {responder_id}:\n{out}"
    );

    // The GET form is signed the same way.
    let der = s.ocsp_get(&["-cert", a_s]);
    let out = s.ocsp_respin(&der, &["-cert", a_s]);
    assert_eq!(ocsp_status(&out, a_s).0, "good", "GET form:\n{out}");
    assert!(der.windows(cert.len()).any(|w| w == cert));
    a
}

/// The SHA-1 hash of the public key of a PEM certificate file, as `openssl x509 -ocspid`
/// prints it and `openssl ocsp` shows a responderID byKey: upper-case hex, no colons.
fn ocsp_key_hash(file: &Path) -> String {
    let out = openssl(&[
        "x509",
        "-noout",
        "-ocspid",
        "-in",
        file.to_str().expect("UTF-8 path"),
    ]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Public key OCSP hash:"))
        .unwrap_or_else(|| panic!("no key hash in {out}"))
        .trim()
        .replace(':', "")
        .to_uppercase()
}

/// Restarts on `dir`: the responder (`key`, `cert`) is kept; a missing certificate, or one
/// that does not fit the key, gets a new key and certificate; each time the answer about
/// the certificate of `a` (an issuance answer) is good and signed by the current responder.
fn restarts_keep_a_fitting_responder(dir: &Path, a: &Value, (key, cert): (&[u8], &[u8])) {
    // A restart keeps the fresh responder. (Files in a server's scratch directory go with it.)
    let s = Server::serve(dir);
    let a_file = s.leaf_file(a);
    let a_s = a_file.to_str().expect("UTF-8 path");
    assert_eq!(
        responder_files(dir),
        (key.to_vec(), cert.to_vec()),
        "the responder changed on restart"
    );
    // (The port, so the URL, changes with every start.)
    let (out, _) = ask(&s, &format!("{}/ocsp", s.base), &["-cert", a_s], cert);
    assert_eq!(ocsp_status(&out, a_s).0, "good", "{out}");
    s.terminate();

    // A missing certificate: a new key and certificate at the next start.
    std::fs::remove_file(dir.join("ocsp.pem")).expect("removing ocsp.pem");
    let s = Server::serve(dir);
    let a_file = s.leaf_file(a);
    let a_s = a_file.to_str().expect("UTF-8 path");
    let (new_key, new_cert) = responder_files(dir);
    assert_ne!(new_key, key, "the key was not replaced");
    assert_ne!(new_cert, cert, "the certificate was not replaced");
    check_responder_certificate(&s, &new_cert, 20);
    let (out, _) = ask(&s, &format!("{}/ocsp", s.base), &["-cert", a_s], &new_cert);
    assert_eq!(ocsp_status(&out, a_s).0, "good", "{out}");
    s.terminate();

    // A certificate that does not fit the key (here: the first one again) is replaced too.
    std::fs::write(dir.join("ocsp.pem"), to_pem("CERTIFICATE", cert)).expect("writing");
    let s = Server::serve(dir);
    let a_file = s.leaf_file(a);
    let a_s = a_file.to_str().expect("UTF-8 path");
    let (third_key, third_cert) = responder_files(dir);
    assert!(third_key != new_key && third_cert != new_cert && third_cert != cert);
    let (out, _) = ask(
        &s,
        &format!("{}/ocsp", s.base),
        &["-cert", a_s],
        &third_cert,
    );
    assert_eq!(ocsp_status(&out, a_s).0, "good", "{out}");
}

#[test]
fn by_default_the_ca_signs_and_no_responder_is_made() {
    let s = Server::fresh();
    let config = std::fs::read_to_string(s.dir.join("config.toml")).expect("config.toml");
    assert!(config.contains("delegated = false"), "{config}");
    assert!(config.contains("delegated_validity_days = 30"), "{config}");
    assert!(!s.dir.join("ocsp.pem").exists() && !s.dir.join("ocsp-key.pem").exists());
    let a = s.issue(&server_csr("ca-signed.example.com"), "tls-server", None);
    let a_file = s.leaf_file(&a);
    let a_s = a_file.to_str().expect("UTF-8 path");
    let der = s.ocsp_get(&["-cert", a_s]);
    let out = s.ocsp_respin(&der, &["-cert", a_s, "-resp_text"]);
    assert_eq!(ocsp_status(&out, a_s).0, "good", "{out}");
    assert!(
        !out.contains("OCSP Signing") && !out.contains("Certificate:"),
        "{out}"
    );
}

#[test]
fn responses_may_not_outlive_the_responder_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for (config, complaint) in [
        (
            "[ocsp]\ndelegated = true\ndelegated_validity_days = 1\nvalidity_secs = 28801\n",
            "validity_secs",
        ),
        (
            "[ocsp]\ndelegated = true\ndelegated_validity_days = 0\n",
            "delegated_validity_days",
        ),
    ] {
        std::fs::write(dir.join("config.toml"), config).expect("writing config.toml");
        let out = ca_server(&[
            "serve",
            "--data-dir",
            dir.to_str().expect("UTF-8 path"),
            "--listen",
            "127.0.0.1:0",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(complaint),
            "serve with {config:?} should refuse to start naming {complaint}: {stderr}"
        );
    }
}

/// The responder certificate `cert` (DER) is recorded: OCSP, signed by `responder` (the one
/// in use), answers good for it; the auditor finds it (profile `ocsp-responder`, requester
/// `(ca)`), alone and in the listing, an RA does not; the audit log has its issuance.
fn check_responder_recorded(s: &Server, cert: &[u8], responder: &[u8]) {
    let (_, parsed) = X509Certificate::from_der(cert).expect("the responder certificate");
    let serial = hex::encode(parsed.raw_serial());
    let file = s.scratch().join(format!("{serial}.pem"));
    std::fs::write(&file, to_pem("CERTIFICATE", cert)).expect("writing");
    let file_s = file.to_str().expect("UTF-8 path");
    let (out, _) = ask(
        s,
        &format!("{}/ocsp", s.base),
        &["-cert", file_s],
        responder,
    );
    assert_eq!(
        ocsp_status(&out, file_s).0,
        "good",
        "OCSP about the responder's own certificate:\n{out}"
    );
    let r = s.get(
        &format!("/v1/certificates/{serial}"),
        Some(&s.tokens.auditor),
    );
    assert_eq!(
        r.status, 200,
        "the auditor looks the responder certificate up: {r}"
    );
    assert_eq!(r.json["profile"], "ocsp-responder", "{r}");
    assert_eq!(r.json["requester"], "(ca)", "{r}");
    let r = s.get(&format!("/v1/certificates/{serial}"), Some(&s.tokens.ra));
    assert_eq!(
        r.status, 404,
        "an RA does not see the CA's own certificate: {r}"
    );
    let r = s.get(
        "/v1/certificates?profile=ocsp-responder",
        Some(&s.tokens.auditor),
    );
    assert!(
        r.json["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["serial"] == serial.as_str())),
        "the responder certificate is listed: {r}"
    );
    let r = s.get("/v1/audit?after=0&limit=1000", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "{r}");
    let issued = r.json["items"].as_array().expect("items").iter().any(|e| {
        e["action"] == "certificate_issued"
            && e["target"] == serial.as_str()
            && e["actor"] == "(ca)"
    });
    assert!(issued, "no certificate_issued entry for {serial}: {r}");
}

/// Issue 15 finding 14: the CA key signs the responder's certificate, so it is recorded like
/// every certificate the CA signs: stored (requester `(ca)`, profile `ocsp-responder`), in
/// the audit log, found by the auditor, and OCSP answers `good` for it instead of `unknown`.
#[test]
fn the_responder_certificate_is_recorded_audited_and_good() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(dir.join("config.toml"), "[ocsp]\ndelegated = true\n")
        .expect("writing config.toml");
    let s = Server::serve(dir);
    let (_, cert) = responder_files(dir);
    check_responder_recorded(&s, &cert, &cert);
    s.terminate();

    // A restart keeps it (recorded once), and a new responder is recorded as well.
    let s = Server::serve(dir);
    check_responder_recorded(&s, &cert, &cert);
    s.terminate();
    std::fs::remove_file(dir.join("ocsp.pem")).expect("removing ocsp.pem");
    let s = Server::serve(dir);
    let (_, new_cert) = responder_files(dir);
    assert_ne!(new_cert, cert);
    check_responder_recorded(&s, &new_cert, &new_cert);
    check_responder_recorded(&s, &cert, &new_cert);
    s.terminate();
    // The audit log with the recorded certificates verifies.
    ca_server_ok(&[
        "audit",
        "verify",
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
    ]);
}
