//! The CA key in a PKCS#11 token (SoftHSM2): `init --pkcs11-*` generates it inside the token
//! (or takes the one already there), and the server signs certificates, CRLs, OCSP answers
//! and audit checkpoints with it, judged by OpenSSL as with a key file; no file of the data
//! directory holds private key material; a wrong PIN and a missing module stop `init` and
//! `serve` with one line saying which; an `init` that fails destroys the key it generated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::prelude::*;
use e2e_tests::softhsm::*;

const TOKEN: &str = "ca-token";
const PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// A SoftHSM2 store with the token [`TOKEN`] and a PIN file for it.
fn token() -> (SoftHsm, PathBuf) {
    let hsm = SoftHsm::new();
    hsm.init_token(TOKEN, PIN, SO_PIN);
    let pin_file = hsm.write_pin_file(PIN);
    (hsm, pin_file)
}

/// `ca-server init` of a root whose key is in the token, with `extra` arguments.
fn init_in_token(
    hsm: &SoftHsm,
    dir: &Path,
    module: &Path,
    pin_file: &Path,
    key_type: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "init",
        "--data-dir",
        dir.to_str().expect("UTF-8"),
        "--key-type",
        key_type,
        "--subject",
        "CN=HSM Test Root,O=Test,C=XX",
        "--pkcs11-module",
        module.to_str().expect("UTF-8"),
        "--pkcs11-token",
        TOKEN,
        "--pkcs11-pin-file",
        pin_file.to_str().expect("UTF-8"),
    ];
    args.extend_from_slice(extra);
    ca_server_with_env(&args, &hsm.env())
}

/// The lines of `stderr` that report the failure (`ca-server: ...`; the others are logs).
fn error_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("ca-server:"))
        .count()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The whole life of a certificate under a CA key of `key_type` kept in the token.
fn lifecycle_in_token(key_type: &str) {
    let (hsm, pin_file) = token();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let out = init_in_token(&hsm, &dir, &softhsm_module(), &pin_file, key_type, &[]);
    assert!(out.status.success(), "init in the token: {}", text(&out));
    assert!(
        !dir.join("ca-key.pem").exists(),
        "init with a token key wrote a key file"
    );
    let config = std::fs::read_to_string(dir.join("config.toml")).expect("config.toml");
    assert!(
        config.contains("[ca.pkcs11]") && config.contains(&format!("token_label = \"{TOKEN}\"")),
        "config.toml has no [ca.pkcs11] for the token:\n{config}"
    );
    assert!(
        !config.contains(&format!("\"{PIN}\"")),
        "the PIN is in config.toml:\n{config}"
    );
    let objects = hsm.list_objects(TOKEN, PIN);
    assert!(
        objects.contains("Private Key Object") && objects.contains("label:      ca-key"),
        "no private key labelled ca-key in the token:\n{objects}"
    );

    // A CRL a second after a revocation.
    configure(&dir, &[("\ninterval_secs = 60", "\ninterval_secs = 1")], "");
    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &hsm.env());
    let csr = server_csr(&format!("hsm-{key_type}.example.com"));
    let issued = s.issue(&csr, "tls-server", Some(30));
    // OpenSSL verifies the chain (the signature made in the token) and the fields.
    s.check_issued(&issued, &csr, "tls-server", 30);
    let serial = issued["serial"].as_str().expect("serial").to_string();
    s.revoke_ok(&serial, "keyCompromise");
    // The CRL, signed in the token, verified by OpenSSL against the CA certificate.
    let der = poll(
        "the revocation on GET /crl",
        Duration::from_secs(10),
        || {
            let der = s.crl();
            match parse_crl(&der, "polled").entry(&serial) {
                Some(_) => Ok(der),
                None => Err("not on the CRL yet".to_string()),
            }
        },
    );
    let crl = s.check_crl(&der, "after the revocation");
    assert!(
        crl.entry(&serial).is_some(),
        "the revoked serial is on the CRL"
    );
    // The OCSP answer, signed in the token, verified by OpenSSL.
    let leaf = s.leaf_file(&issued);
    let leaf = leaf.to_str().expect("UTF-8 path");
    let out = s.ocsp_ask(&format!("{}/ocsp", s.base), &["-cert", leaf]);
    assert_eq!(ocsp_status(&out, leaf).0, "revoked", "{out}");
    s.terminate();

    // The audit log's checkpoints were signed in the token; they verify with the certificate.
    audit_verify_ok(&dir);
    let found = private_key_material(&dir);
    assert!(
        found.is_empty(),
        "private key material in the data directory of a token-held CA key: {found:?}"
    );
}

#[test]
fn token_ec_p256() {
    lifecycle_in_token("ec-p256");
}

#[test]
fn token_ec_p384() {
    lifecycle_in_token("ec-p384");
}

#[test]
fn token_ed25519() {
    lifecycle_in_token("ed25519");
}

#[test]
fn token_rsa_3072() {
    lifecycle_in_token("rsa-3072");
}

#[test]
fn token_rsa_4096() {
    lifecycle_in_token("rsa-4096");
}

#[test]
fn a_wrong_pin_and_a_missing_module_are_one_line_errors() {
    let (hsm, pin_file) = token();
    let tmp = tempfile::tempdir().expect("tempdir");
    let wrong = hsm.write_pin_file("9999");
    let out = init_in_token(
        &hsm,
        &tmp.path().join("a"),
        &softhsm_module(),
        &wrong,
        "ec-p256",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("wrong PIN for PKCS#11 token {TOKEN}")) && !err.contains("9999"),
        "{err}"
    );
    assert_eq!(error_lines(&err), 1, "one error line: {err}");

    let missing = tmp.path().join("no-such-module.so");
    let out = init_in_token(
        &hsm,
        &tmp.path().join("b"),
        &missing,
        &pin_file,
        "ec-p256",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot load the PKCS#11 module {}",
            missing.display()
        )),
        "{err}"
    );
    assert_eq!(error_lines(&err), 1, "one error line: {err}");

    // A server whose PIN file now holds a wrong PIN refuses to start, saying so.
    let dir = tmp.path().join("c");
    let out = init_in_token(&hsm, &dir, &softhsm_module(), &pin_file, "ec-p256", &[]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&pin_file, "0000\n").expect("rewriting the PIN file");
    let out = ca_server_with_env(
        &[
            "serve",
            "--data-dir",
            dir.to_str().expect("UTF-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        &hsm.env(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("wrong PIN for PKCS#11 token {TOKEN}")),
        "{err}"
    );
}

#[test]
fn init_takes_a_key_already_in_the_token_and_a_failed_init_destroys_what_it_made() {
    let (hsm, pin_file) = token();
    let tmp = tempfile::tempdir().expect("tempdir");

    // A key made in a ceremony beforehand, by another PKCS#11 client.
    let out = hsm.pkcs11_tool(
        &softhsm_module(),
        &[],
        &[
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "ceremony-key",
            "--id",
            "0a",
        ],
    );
    assert!(
        out.status.success(),
        "pkcs11-tool --keypairgen: {}",
        text(&out)
    );
    let before = hsm.list_objects(TOKEN, PIN);
    let dir = tmp.path().join("existing");
    let out = init_in_token(
        &hsm,
        &dir,
        &softhsm_module(),
        &pin_file,
        "ec-p256",
        &["--pkcs11-key-label", "ceremony-key"],
    );
    assert!(
        out.status.success(),
        "init with the ceremony key: {}",
        text(&out)
    );
    assert_eq!(
        hsm.list_objects(TOKEN, PIN),
        before,
        "init generated a key although the token had one with the label"
    );
    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &hsm.env());
    let csr = server_csr("ceremony.example.com");
    let issued = s.issue(&csr, "tls-server", Some(30));
    s.check_issued(&issued, &csr, "tls-server", 30);
    s.terminate();

    // An init that fails after generating its key (the data directory holds a `tls.pem` that
    // the TLS certificate of `--tls-name` would overwrite) leaves no key in the token.
    let dir = tmp.path().join("fails");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("tls.pem"), "an operator's file\n").expect("tls.pem");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let out = init_in_token(
        &hsm,
        &dir,
        &softhsm_module(),
        &pin_file,
        "ec-p256",
        &[
            "--pkcs11-key-label",
            "doomed-key",
            "--tls-name",
            "ca.example.com",
        ],
    );
    assert!(!out.status.success(), "init should fail: {}", text(&out));
    let after = hsm.list_objects(TOKEN, PIN);
    assert!(
        !after.contains("doomed-key"),
        "the failed init left its key in the token:\n{after}"
    );
}

#[test]
fn an_unreachable_token_answers_503_and_the_server_recovers_with_nothing_lost() {
    let (hsm, pin_file) = token();
    let fault = hsm.fault();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let mut args = vec![
        "init",
        "--data-dir",
        dir.to_str().expect("UTF-8"),
        "--subject",
        "CN=HSM Fault Root,O=Test,C=XX",
        "--pkcs11-token",
        TOKEN,
        "--pkcs11-pin-file",
        pin_file.to_str().expect("UTF-8"),
    ];
    let module = fault.module_path();
    args.extend(["--pkcs11-module", module.to_str().expect("UTF-8")]);
    let out = ca_server_with_env(&args, &fault.env());
    assert!(
        out.status.success(),
        "init through the fault module: {}",
        text(&out)
    );
    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &fault.env());
    let ready = |s: &Server| s.get("/readyz", None).status;
    assert_eq!(ready(&s), 200);

    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let issued = s.issue(
            &server_csr(&format!("before-{i}.example.com")),
            "tls-server",
            None,
        );
        acknowledged.push(issued["serial"].as_str().expect("serial").to_string());
    }
    let count_before = s.certificate_count();

    fault.remove_device();
    let url = format!("{}/v1/certificates", s.base);
    for i in 0..3 {
        let csr = server_csr(&format!("during-{i}.example.com"));
        let r = s
            .client()
            .post(&url)
            .bearer_auth(&s.tokens.ra)
            .json(&serde_json::json!({"csr": csr.pem, "profile": "tls-server"}))
            .send()
            .expect("POST");
        assert_eq!(r.status().as_u16(), 503, "issuance with the token gone");
        assert!(
            r.headers().contains_key("retry-after"),
            "503 without Retry-After"
        );
        let body: serde_json::Value = r.json().expect("JSON error");
        assert_eq!(body["error"]["code"], "signer_unavailable", "{body}");
    }
    poll(
        "/readyz not ready while the token is gone",
        Duration::from_secs(5),
        || match ready(&s) {
            503 => Ok(()),
            other => Err(format!("/readyz {other}")),
        },
    );
    assert_eq!(
        s.certificate_count(),
        count_before,
        "a refused issuance stored a certificate"
    );

    fault.reinsert_device();
    poll(
        "/readyz ready again",
        Duration::from_secs(10),
        || match ready(&s) {
            200 => Ok(()),
            other => Err(format!("/readyz {other}")),
        },
    );
    for i in 0..5 {
        let issued = s.issue(
            &server_csr(&format!("after-{i}.example.com")),
            "tls-server",
            None,
        );
        acknowledged.push(issued["serial"].as_str().expect("serial").to_string());
    }
    for serial in &acknowledged {
        s.record(serial);
    }
    assert!(
        s.metric("ca_signer_errors_total{retryable=\"true\"}") >= 3.0,
        "signer errors counted"
    );
    s.terminate();
    audit_verify_ok(&dir);
}

#[test]
fn an_intermediate_whose_key_is_in_the_token_is_imported_and_issues() {
    let (hsm, pin_file) = token();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("intermediate");
    let out = init_in_token(
        &hsm,
        &dir,
        &softhsm_module(),
        &pin_file,
        "ec-p256",
        &["--intermediate"],
    );
    assert!(out.status.success(), "init --intermediate: {}", text(&out));
    let root = openssl_root(tmp.path(), "parent", "/CN=Parent Root/O=Test/C=XX");
    let signed = tmp.path().join("intermediate.pem");
    sign_intermediate(&dir, &root, &signed);
    let out = ca_server_with_env(
        &[
            "import",
            "--data-dir",
            dir.to_str().expect("UTF-8"),
            "--cert",
            signed.to_str().expect("UTF-8"),
            "--chain",
            root.1.to_str().expect("UTF-8"),
        ],
        &hsm.env(),
    );
    assert!(out.status.success(), "import: {}", text(&out));
    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &hsm.env());
    let csr = server_csr("under-the-intermediate.example.com");
    let issued = s.issue(&csr, "tls-server", Some(10));
    s.check_issued(&issued, &csr, "tls-server", 10);
    s.terminate();
    let found = private_key_material(&dir);
    assert!(found.is_empty(), "private key material: {found:?}");
}

/// `[ocsp] delegated = true` with the CA key in the token: the responder's key is generated in
/// the token too (labelled after its certificate's serial), no `ocsp-key.pem` is written, and
/// OpenSSL verifies the answers it signs against the CA; a restart keeps the responder, and
/// one whose certificate is gone gets a new key in the token.
#[test]
fn the_delegated_ocsp_responder_key_is_generated_in_the_token() {
    let (hsm, pin_file) = token();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let out = init_in_token(&hsm, &dir, &softhsm_module(), &pin_file, "ec-p256", &[]);
    assert!(out.status.success(), "init in the token: {}", text(&out));
    configure(&dir, &[("delegated = false", "delegated = true")], "");

    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &hsm.env());
    assert!(
        !dir.join("ocsp-key.pem").exists(),
        "the responder key was written to a file"
    );
    let responder = serial_of_pem(&dir.join("ocsp.pem"));
    let label = format!("ca-key.ocsp.{responder}");
    let objects = hsm.list_objects(TOKEN, PIN);
    assert!(
        objects.contains(&format!("label:      {label}")),
        "no key labelled {label} in the token:\n{objects}"
    );
    let responder_der =
        pem_certs(&std::fs::read_to_string(dir.join("ocsp.pem")).expect("pem")).remove(0);
    let csr = server_csr("delegated-in-token.example.com");
    let issued = s.issue(&csr, "tls-server", Some(30));
    let serial = issued["serial"].as_str().expect("serial").to_string();
    s.revoke_ok(&serial, "keyCompromise");
    let leaf = s.leaf_file(&issued);
    let leaf = leaf.to_str().expect("UTF-8 path");
    let resp = s.scratch().join("resp.der");
    let out = s.ocsp_ask(
        &format!("{}/ocsp", s.base),
        &["-cert", leaf, "-respout", resp.to_str().expect("UTF-8")],
    );
    assert_eq!(ocsp_status(&out, leaf).0, "revoked", "{out}");
    let bytes = std::fs::read(&resp).expect("the response");
    assert!(
        bytes
            .windows(responder_der.len())
            .any(|w| w == responder_der.as_slice()),
        "the answer is not signed by the delegated responder (its certificate is not in it)"
    );
    s.terminate();

    // A restart keeps the responder and its key.
    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &hsm.env());
    assert_eq!(serial_of_pem(&dir.join("ocsp.pem")), responder);
    let leaf = s.leaf_file(&issued);
    let leaf = leaf.to_str().expect("UTF-8 path");
    let out = s.ocsp_ask(&format!("{}/ocsp", s.base), &["-cert", leaf]);
    assert_eq!(ocsp_status(&out, leaf).0, "revoked", "{out}");
    s.terminate();

    // Without its certificate the responder is replaced by a new key in the token.
    std::fs::remove_file(dir.join("ocsp.pem")).expect("removing ocsp.pem");
    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &hsm.env());
    let renewed = serial_of_pem(&dir.join("ocsp.pem"));
    assert_ne!(renewed, responder);
    let objects = hsm.list_objects(TOKEN, PIN);
    assert!(
        objects.contains(&format!("label:      ca-key.ocsp.{renewed}")),
        "no key for the new responder in the token:\n{objects}"
    );
    let leaf = s.leaf_file(&issued);
    let leaf = leaf.to_str().expect("UTF-8 path");
    let out = s.ocsp_ask(&format!("{}/ocsp", s.base), &["-cert", leaf]);
    assert_eq!(ocsp_status(&out, leaf).0, "revoked", "{out}");
    s.terminate();
    assert!(!dir.join("ocsp-key.pem").exists());
    audit_verify_ok(&dir);
    let found = private_key_material(&dir);
    assert!(found.is_empty(), "private key material: {found:?}");
}

/// The signatureAlgorithm of the certificate in PEM `file`, as `openssl x509 -text` names it.
fn signature_algorithm_of(file: &Path) -> String {
    let text = openssl(&[
        "x509",
        "-noout",
        "-text",
        "-in",
        file.to_str().expect("UTF-8"),
    ]);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Signature Algorithm:"))
        .unwrap_or_else(|| panic!("no signature algorithm in:\n{text}"))
        .trim()
        .to_string()
}

/// `[profiles.NAME] rsa_signature = "pss"`: an RSA CA key in the token signs that profile's
/// certificates with RSASSA-PSS (`CKM_SHA256_RSA_PKCS_PSS`), which OpenSSL verifies and
/// pkilint accepts (the Baseline Requirements' exact encoding), while other profiles, CRLs
/// and OCSP answers stay PKCS#1 v1.5; a key file signs PSS the same way; and a CA key that is
/// not RSA refuses to start with such a profile, in one line.
#[test]
fn an_rsa_ca_key_signs_rsassa_pss_for_a_profile_that_asks() {
    let pss = (
        "[profiles.tls-server]\n",
        "[profiles.tls-server]\nrsa_signature = \"pss\"\n",
    );
    let (hsm, pin_file) = token();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("token");
    let out = init_in_token(&hsm, &dir, &softhsm_module(), &pin_file, "rsa-3072", &[]);
    assert!(out.status.success(), "init: {}", text(&out));
    configure(&dir, &[pss], "");

    let file_ca = tmp.path().join("file");
    init_ca(&file_ca, "rsa-3072");
    configure(&file_ca, &[pss], "");

    for (dir, env) in [(&dir, hsm.env()), (&file_ca, Vec::new())] {
        let s = Server::serve_with_env(dir, "127.0.0.1:0", &env);
        let csr = server_csr("pss.example.com");
        let issued = s.issue(&csr, "tls-server", Some(30));
        s.check_issued(&issued, &csr, "tls-server", 30);
        let leaf = s.leaf_file(&issued);
        assert_eq!(
            signature_algorithm_of(&leaf),
            "rsassaPss",
            "{}",
            dir.display()
        );
        let client = make_csr("ec-p256", "/CN=pss-client", &["DNS:pss-client.example"]);
        let other = s.issue(&client, "tls-client", Some(30));
        s.check_issued(&other, &client, "tls-client", 30);
        assert_eq!(
            signature_algorithm_of(&s.leaf_file(&other)),
            "sha256WithRSAEncryption"
        );
        let crl = s.crl();
        s.check_crl(&crl, "PKCS#1 v1.5 CRL under a PSS profile");
        let leaf = leaf.to_str().expect("UTF-8 path");
        let out = s.ocsp_ask(&format!("{}/ocsp", s.base), &["-cert", leaf]);
        assert_eq!(ocsp_status(&out, leaf).0, "good", "{out}");
        s.terminate();
    }

    // An ECDSA CA key cannot make RSASSA-PSS signatures: serve says so and stops.
    let ec = tmp.path().join("ec");
    init_ca(&ec, "ec-p256");
    configure(&ec, &[pss], "");
    let stderr = serve_refused(&ec);
    assert!(
        stderr.contains("rsa_signature") && error_lines(&stderr) == 1,
        "serve with a PSS profile on an ECDSA key: {stderr}"
    );
}
