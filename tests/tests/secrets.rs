//! Secrets at rest and in messages: the store holds no usable token (only their SHA-256), and
//! neither the server's output nor its refusals ever show the CA's private key, even when
//! the key file is refused.

mod common;

use std::path::Path;

use common::*;
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
    s.issue(&server_csr("secrets.example"), "tls-server", None);
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
