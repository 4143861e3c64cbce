//! Secrets at rest and in messages: the store holds no usable token (only their SHA-256) and
//! no key the CA generated for a subscriber, and neither the server's output nor its
//! refusals ever show the CA's private key, even when the key file is refused.

use std::path::Path;

use e2e_tests::prelude::*;
use serde_json::json;

/// Every key and value of every column family of the store at `dir/db`.
fn store_bytes(dir: &Path) -> Vec<Vec<u8>> {
    let path = dir.join("db");
    let opts = rocksdb::Options::default();
    let families = rocksdb::DB::list_cf(&opts, &path).expect("column families");
    let db = rocksdb::DB::open_cf_for_read_only(&opts, &path, &families, false).expect("store");
    let mut all = Vec::new();
    for name in &families {
        let cf = db.cf_handle(name).expect("a family");
        for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item.expect("an entry");
            all.push(k.to_vec());
            all.push(v.to_vec());
        }
    }
    all
}

#[test]
fn the_store_holds_no_token_and_the_ca_key_is_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let s = Server::serve(&dir);
    s.issue(&server_csr("secrets.example.com"), "tls-server", None);
    let r = s.post(
        "/v1/tokens",
        &s.tokens.operator,
        &json!({"role": "ra", "name": "minted"}),
    );
    assert_eq!(r.status, 201, "{r}");
    let minted = r.json["token"].as_str().expect("token").to_string();
    let tokens = [
        s.tokens.ra.clone(),
        s.tokens.auditor.clone(),
        s.tokens.operator.clone(),
        minted,
    ];
    let (_, output) = s.terminate_with_output();

    // The store: no token, in any key or value of any family.
    for bytes in store_bytes(&dir) {
        for token in &tokens {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "a token is stored as it is"
            );
        }
    }

    // The output: no token, no private number of the CA key.
    let key = dir.join("ca-key.pem");
    let mut secrets: Vec<Secret> = private_numbers(&key)
        .iter()
        .map(|(name, bytes)| Secret::bytes(&format!("the CA key's {name}"), bytes))
        .collect();
    secrets.push(Secret::pem(
        "the CA key file",
        &std::fs::read_to_string(&key).unwrap(),
    ));
    for (i, token) in tokens.iter().enumerate() {
        secrets.push(Secret::text(&format!("token {i}"), token));
    }
    let found = leaked_secrets(&output, &secrets);
    assert!(found.is_empty(), "in the server's output: {found:?}");

    // A refused key file is named, never shown: readable by others, then damaged.
    let original = std::fs::read(&key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let refused = serve_refused(&dir);
    assert!(refused.contains("ca-key.pem"), "{refused}");
    let found = leaked_secrets(&format!("[stderr] {refused}"), &secrets);
    assert!(found.is_empty(), "in the refusal: {found:?}");
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    std::fs::write(&key, &damaged).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let refused = serve_refused(&dir);
    let found = leaked_secrets(&format!("[stderr] {refused}"), &secrets);
    assert!(
        found.is_empty(),
        "in the refusal of a damaged key: {found:?}"
    );
}

/// A key the CA generates for a subscriber leaves only in the PKCS#12 file: after the
/// redemption, no key or value of the store holds its private scalar (raw, or as hex or
/// base64 text), nor the PKCS#12 password.
#[test]
fn a_generated_subscriber_key_is_never_stored() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let s = Server::serve(&dir);
    let (id, code) = s.create_enrollment(
        &json!({"profile": "personal", "subject": "CN=Maria Silva,SN=Silva,GN=Maria",
                "sans": ["maria@example.com"], "expires_in_hours": 1, "max_attempts": 3}),
    );
    let password = "correct horse battery staple";
    let r = s.request(
        reqwest::Method::POST,
        &format!("/v1/enrollments/{id}/redeem"),
        None,
        Some(&json!({"code": code, "key_type": "ec-p256", "pkcs12_password": password})),
    );
    assert_eq!(r.status, 201, "{r}");
    let pfx = base64::engine::general_purpose::STANDARD
        .decode(r.json["pkcs12"].as_str().expect("pkcs12"))
        .expect("base64");
    s.terminate();
    let p12 = tmp.path().join("maria.p12");
    std::fs::write(&p12, &pfx).unwrap();
    let key = tmp.path().join("maria-key.pem");
    openssl(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        &format!("pass:{password}"),
        "-nocerts",
        "-nodes",
        "-out",
        key.to_str().unwrap(),
    ]);
    let numbers = private_numbers(&key);
    assert!(!numbers.is_empty(), "the PKCS#12 holds a private key");
    let mut needles: Vec<Vec<u8>> = vec![password.as_bytes().to_vec()];
    for (_, bytes) in &numbers {
        needles.push(bytes.clone());
        needles.push(hex::encode(bytes).into_bytes());
        needles.push(
            base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into_bytes(),
        );
    }
    for bytes in store_bytes(&dir) {
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "the subscriber's key or password is in the store"
            );
        }
    }
}
