//! The upgrade to schema version 4 on a store whose tokens share names (possible before names
//! were unique): the oldest token keeps the name, and with it every certificate recorded under
//! it; later ones are renamed `NAME~2`, ... and the renames are audited; every token gets an id.

use ca_core::audit::AuditAction;
use ca_core::store::{Store, TokenRecord, UPGRADE_ACTOR};
use ca_core::CaError;
use rocksdb::{Options, DB};

/// A token record as builds before token ids wrote it (format version 1, postcard).
fn v1_record(name: &str, role: &str, created_at: i64) -> Vec<u8> {
    let mut out = vec![1u8];
    for s in [name, role] {
        out.push(u8::try_from(s.len()).expect("short"));
        out.extend_from_slice(s.as_bytes());
    }
    // postcard: zigzag varint.
    let mut v = ((created_at << 1) ^ (created_at >> 63)) as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out
}

/// Writes tokens the way an older build did and marks the store as schema version 3.
fn write_old_tokens(path: &std::path::Path, tokens: &[([u8; 32], Vec<u8>)]) {
    let names = DB::list_cf(&Options::default(), path).expect("list_cf");
    let db = DB::open_cf(&Options::default(), path, &names).expect("raw open");
    let cf = db.cf_handle("tokens").expect("tokens");
    for (hash, record) in tokens {
        db.put_cf(&cf, hash, record).expect("put");
    }
    let names_cf = db.cf_handle("token_names").expect("token_names");
    let mut it = db.raw_iterator_cf(&names_cf);
    it.seek_to_first();
    assert!(!it.valid(), "a new store has no token names yet");
    let meta = db.cf_handle("meta").expect("meta");
    db.put_cf(&meta, b"schema_version", 3u32.to_be_bytes())
        .expect("put");
}

#[test]
fn duplicate_token_names_are_resolved_at_upgrade() -> Result<(), CaError> {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Store::open(dir.path())?);
    let (oldest, second, third, other) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
    write_old_tokens(
        dir.path(),
        &[
            // Stored by hash, so not in age order.
            (third, v1_record("ra", "operator", 300)),
            (oldest, v1_record("ra", "ra", 100)),
            (second, v1_record("ra", "ra", 200)),
            (other, v1_record("ra~2", "auditor", 150)),
        ],
    );

    let store = Store::open(dir.path())?;
    let tokens = store.tokens()?;
    let by_hash =
        |h: &[u8; 32]| -> Result<TokenRecord, CaError> { Ok(store.token(h)?.expect("token")) };
    // The oldest keeps "ra" (and so the certificates recorded under it); "ra~2" was taken
    // by another token, so the later ones become "ra~3" and "ra~4", in age order.
    assert_eq!(by_hash(&oldest)?.name, "ra");
    assert_eq!(by_hash(&other)?.name, "ra~2");
    assert_eq!(by_hash(&second)?.name, "ra~3");
    assert_eq!(by_hash(&third)?.name, "ra~4");
    assert_eq!(store.token_name_holder("ra")?, Some(oldest));
    assert_eq!(store.token_name_holder("ra~3")?, Some(second));
    assert_eq!(store.token_name_holder("ra~4")?, Some(third));
    assert_eq!(store.token_name_holder("ra~2")?, Some(other));
    // Every token has an id of its own; roles and times are kept.
    let mut ids: Vec<[u8; 16]> = tokens.iter().map(|t| t.id).collect();
    assert!(ids.iter().all(|id| *id != [0; 16]), "{tokens:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        (by_hash(&third)?.role.as_str(), by_hash(&third)?.created_at),
        ("operator", 300)
    );

    // The renames are audited by the upgrade, and the log verifies.
    let log = store.audit_entries(0, 100)?;
    let renamed: Vec<(String, String, String)> = log
        .iter()
        .filter(|e| e.event.action == AuditAction::TokenRenamed)
        .map(|e| {
            (
                e.event.target.clone(),
                e.event.details.get("from").cloned().unwrap_or_default(),
                e.event.actor.clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [("ra~3", "ra"), ("ra~4", "ra")]
        .iter()
        .map(|(to, from)| (to.to_string(), from.to_string(), UPGRADE_ACTOR.to_string()))
        .collect();
    assert_eq!(renamed, expected);
    let report = store.verify_audit(&[])?;
    assert!(report.broken.is_none(), "{:?}", report.broken);
    let entries = report.entries;
    let ids_before: Vec<_> = tokens.iter().map(|t| (t.name.clone(), t.id)).collect();
    drop(store);

    // Opening again changes nothing.
    let store = Store::open(dir.path())?;
    assert_eq!(store.verify_audit(&[])?.entries, entries);
    let ids_after: Vec<_> = store
        .tokens()?
        .iter()
        .map(|t| (t.name.clone(), t.id))
        .collect();
    assert_eq!(ids_after, ids_before);
    Ok(())
}

#[test]
fn token_names_are_unique_and_revocation_keeps_them() -> Result<(), CaError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path())?;
    let record = |name: &str| TokenRecord {
        name: name.into(),
        role: "ra".into(),
        created_at: 1,
        id: [9; 16],
        expires_at: None,
        revoked_at: None,
    };
    store.put_token(&[1; 32], &record("a"), "test")?;
    let err = store.put_token(&[2; 32], &record("a"), "test").unwrap_err();
    assert_eq!(err.code(), "token_name_taken", "{err}");
    let revoked = store.revoke_token("a", 5, "test")?;
    assert_eq!(revoked.revoked_at, Some(5));
    assert!(!store.token(&[1; 32])?.expect("token").is_active(6));
    let err = store.revoke_token("a", 6, "test").unwrap_err();
    assert_eq!(err.code(), "token_already_revoked", "{err}");
    let err = store.revoke_token("b", 6, "test").unwrap_err();
    assert_eq!(err.code(), "token_not_found", "{err}");
    let err = store.put_token(&[3; 32], &record("a"), "test").unwrap_err();
    assert_eq!(err.code(), "token_name_taken", "{err}");
    Ok(())
}
