//! ACME objects (RFC 8555): a small versioned object store for the ACME front end, with
//! unique keys and ordered lists beside it.
//!
//! The front end encodes its own records (accounts, orders, authorizations, external account
//! binding keys) into [`AcmeObject::value`]; the store only keeps them, each with a version
//! that starts at 1 and grows by one at every change. A change names the version it read
//! ([`AcmePut::expect`]), and the store writer refuses it when another change came first
//! ([`CaError::AcmeConflict`]): optimistic concurrency, decided under the writer's group, so it
//! holds across every node that shares a store. Beside the objects:
//!
//! - *claims*: unique keys, each held by one object id (an account key's thumbprint, an EAB
//!   key id once bound), refused to a second holder ([`CaError::AcmeIndexTaken`]);
//! - *links*: members of ordered lists, listed by prefix in key order (an account id followed
//!   by an order id lists the orders of an account).
//!
//! One [`AcmeWrite`] (its puts, its index changes and its audit entry) is all-or-nothing, like
//! every operation of the store writer ([`super::writer::WriteOp::Acme`]).
//!
//! In RocksDB, `acme_objects` keys an object by its kind's byte followed by its id, and holds
//! its version (8 bytes, big-endian) followed by its value; `acme_index` keys a claim by `c`
//! followed by the claimed key (value: the holder's id) and a link by `l` followed by the
//! link's key (value: empty).

use rocksdb::ColumnFamily;

use super::{cf, Store};
use crate::audit::{AuditAction, AuditEvent};
use crate::error::CaError;
use crate::store::Db;

/// The longest object id, claim key or link key, in bytes.
pub const MAX_ACME_KEY_LEN: usize = 128;
/// The longest object value, in bytes.
pub const MAX_ACME_VALUE_LEN: usize = 64 * 1024;
/// The most puts one [`AcmeWrite`] may carry.
pub const MAX_ACME_PUTS: usize = 64;
/// The most index changes one [`AcmeWrite`] may carry.
pub const MAX_ACME_INDEX_OPS: usize = 64;

/// The kinds of ACME object the store keeps (RFC 8555 section 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AcmeKind {
    /// An account (RFC 8555 section 7.1.2).
    Account = 1,
    /// An order (RFC 8555 section 7.1.3).
    Order = 2,
    /// An authorization (RFC 8555 section 7.1.4).
    Authz = 3,
    /// An external account binding key (RFC 8555 section 7.3.4).
    EabKey = 4,
}

impl AcmeKind {
    /// The kind's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            AcmeKind::Account => "account",
            AcmeKind::Order => "order",
            AcmeKind::Authz => "authorization",
            AcmeKind::EabKey => "external account binding key",
        }
    }
}

/// One stored object: its version (1 when created, +1 at every change) and the front end's
/// encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeObject {
    /// The version: 1 when created, one more at every change.
    pub version: u64,
    /// The front end's encoding of the object.
    pub value: Vec<u8>,
}

/// Create or change one object. `expect: None`: the object must not exist yet (else
/// [`CaError::AcmeConflict`]); `Some(v)`: its stored version must be `v` (else
/// [`CaError::AcmeConflict`]). Stored with version `expect.map_or(1, |v| v + 1)`.
#[derive(Clone, Debug)]
pub struct AcmePut {
    /// The object's kind.
    pub kind: AcmeKind,
    /// The object's id within its kind, 1 to [`MAX_ACME_KEY_LEN`] bytes.
    pub id: Vec<u8>,
    /// The version the change was made from; `None` to create the object.
    pub expect: Option<u64>,
    /// The object's new value, at most [`MAX_ACME_VALUE_LEN`] bytes.
    pub value: Vec<u8>,
}

/// Index changes that commit with the puts. Keys and ids are 1 to [`MAX_ACME_KEY_LEN`] bytes.
#[derive(Clone, Debug)]
pub enum AcmeIndexOp {
    /// Unique key -> id (e.g. an account key's thumbprint -> account id, an EAB key id bound ->
    /// account id). Refused with [`CaError::AcmeIndexTaken`] when another id holds `key`;
    /// claiming a key the same id holds is a no-op.
    Claim {
        /// The unique key.
        key: Vec<u8>,
        /// The id that holds it.
        id: Vec<u8>,
    },
    /// Frees a unique key (no-op when free).
    Release {
        /// The unique key.
        key: Vec<u8>,
    },
    /// A member of a list, listed by prefix in key order (e.g. account id ++ order id: the
    /// orders of an account).
    Link {
        /// The member's key.
        key: Vec<u8>,
    },
    /// Removes a list member (no-op when absent).
    Unlink {
        /// The member's key.
        key: Vec<u8>,
    },
}

/// One all-or-nothing ACME change and its audit entry.
#[derive(Clone, Debug)]
pub struct AcmeWrite {
    /// The objects created or changed, in order; a later put may change an object an earlier
    /// one put, expecting the version that one gave it.
    pub puts: Vec<AcmePut>,
    /// The index changes, applied after the puts, in order.
    pub index: Vec<AcmeIndexOp>,
    /// The audit entry, with one of the `acme_*` actions.
    pub event: AuditEvent,
}

impl AcmeWrite {
    /// Checks the limits of one write: at most [`MAX_ACME_PUTS`] puts and
    /// [`MAX_ACME_INDEX_OPS`] index changes, ids and keys of 1 to [`MAX_ACME_KEY_LEN`] bytes,
    /// values of at most [`MAX_ACME_VALUE_LEN`] bytes, and an audit entry with an `acme_*`
    /// action. A write beyond them is [`CaError::InvalidRequest`].
    pub fn check(&self) -> Result<(), CaError> {
        let refuse = |what: String| Err(CaError::InvalidRequest(what));
        if self.puts.len() > MAX_ACME_PUTS {
            return refuse(format!(
                "an ACME write changes at most {MAX_ACME_PUTS} objects, not {}",
                self.puts.len()
            ));
        }
        if self.index.len() > MAX_ACME_INDEX_OPS {
            return refuse(format!(
                "an ACME write makes at most {MAX_ACME_INDEX_OPS} index changes, not {}",
                self.index.len()
            ));
        }
        for put in &self.puts {
            check_key("object id", &put.id)?;
            if put.value.len() > MAX_ACME_VALUE_LEN {
                return refuse(format!(
                    "an ACME object's value is at most {MAX_ACME_VALUE_LEN} bytes, not {}",
                    put.value.len()
                ));
            }
        }
        for op in &self.index {
            match op {
                AcmeIndexOp::Claim { key, id } => {
                    check_key("claimed key", key)?;
                    check_key("claim's holder id", id)?;
                }
                AcmeIndexOp::Release { key } => check_key("released key", key)?,
                AcmeIndexOp::Link { key } | AcmeIndexOp::Unlink { key } => {
                    check_key("link key", key)?
                }
            }
        }
        if !is_acme_action(self.event.action) {
            return refuse(format!(
                "an ACME write is audited with an acme_* action, not {}",
                self.event.action
            ));
        }
        Ok(())
    }
}

/// Refuses an id or key that is empty or longer than [`MAX_ACME_KEY_LEN`].
fn check_key(what: &str, key: &[u8]) -> Result<(), CaError> {
    if key.is_empty() || key.len() > MAX_ACME_KEY_LEN {
        return Err(CaError::InvalidRequest(format!(
            "an ACME {what} is 1 to {MAX_ACME_KEY_LEN} bytes, not {}",
            key.len()
        )));
    }
    Ok(())
}

/// Whether `action` is one of the ACME front end's.
fn is_acme_action(action: AuditAction) -> bool {
    matches!(
        action,
        AuditAction::AcmeAccountCreated
            | AuditAction::AcmeAccountUpdated
            | AuditAction::AcmeAccountDeactivated
            | AuditAction::AcmeAccountKeyChanged
            | AuditAction::AcmeOrderCreated
            | AuditAction::AcmeOrderUpdated
            | AuditAction::AcmeAuthorizationValidated
            | AuditAction::AcmeAuthorizationInvalid
            | AuditAction::AcmeAuthorizationDeactivated
            | AuditAction::AcmeEabKeyCreated
            | AuditAction::AcmeChallengeStarted
    )
}

/// The message of a put refused because the stored version is `stored`.
pub(crate) fn conflict(put: &AcmePut, stored: Option<u64>) -> CaError {
    let object = format!("{} {}", put.kind.name(), hex::encode(&put.id));
    let what = match (put.expect, stored) {
        (None, Some(v)) => format!("{object} exists already (version {v})"),
        (Some(e), None) => format!("{object} does not exist (expected version {e})"),
        (Some(e), Some(v)) => format!("{object} is at version {v}, not {e}"),
        (None, None) => format!("{object} changed"),
    };
    CaError::AcmeConflict { what }
}

/// Tag of a claim in `acme_index`.
const CLAIM_TAG: u8 = b'c';
/// Tag of a link in `acme_index`.
const LINK_TAG: u8 = b'l';

/// The `acme_objects` key of an object.
pub(crate) fn object_key(kind: AcmeKind, id: &[u8]) -> Vec<u8> {
    tagged(kind as u8, id)
}

/// The `acme_index` key of a claim.
pub(crate) fn claim_key(key: &[u8]) -> Vec<u8> {
    tagged(CLAIM_TAG, key)
}

/// The `acme_index` key of a link.
pub(crate) fn link_key(key: &[u8]) -> Vec<u8> {
    tagged(LINK_TAG, key)
}

fn tagged(tag: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(tag);
    out.extend_from_slice(key);
    out
}

/// The `acme_objects` value of an object: its version, big-endian, then its value.
pub(crate) fn encode_object(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The version of an `acme_objects` value.
fn decode_version(stored: &[u8]) -> Result<u64, CaError> {
    stored
        .get(..8)
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| CaError::Storage("malformed entry in acme_objects".into()))
}

impl Store {
    /// The family `name` of the ACME objects. `None` only for a store opened read-only that
    /// no build with these families has opened for writing yet: it holds no ACME object.
    fn acme_cf(&self, name: &str) -> Option<&ColumnFamily> {
        self.db.cf_handle(name)
    }

    /// The stored object of this kind and id.
    pub fn acme_object(&self, kind: AcmeKind, id: &[u8]) -> Result<Option<AcmeObject>, CaError> {
        let Some(objects) = self.acme_cf(cf::ACME_OBJECTS) else {
            return Ok(None);
        };
        self.db
            .get_pinned_cf(objects, object_key(kind, id))
            .db()?
            .map(|stored| {
                Ok(AcmeObject {
                    version: decode_version(&stored)?,
                    value: stored[8..].to_vec(),
                })
            })
            .transpose()
    }

    /// The stored version of the object of this kind and id (the writer's check).
    pub(crate) fn acme_version(&self, kind: AcmeKind, id: &[u8]) -> Result<Option<u64>, CaError> {
        let Some(objects) = self.acme_cf(cf::ACME_OBJECTS) else {
            return Ok(None);
        };
        self.db
            .get_pinned_cf(objects, object_key(kind, id))
            .db()?
            .map(|stored| decode_version(&stored))
            .transpose()
    }

    /// The id that holds the unique key `key`.
    pub fn acme_claim_holder(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        let Some(index) = self.acme_cf(cf::ACME_INDEX) else {
            return Ok(None);
        };
        Ok(self
            .db
            .get_pinned_cf(index, claim_key(key))
            .db()?
            .map(|id| id.to_vec()))
    }

    /// The link keys that start with `prefix`, in key order, strictly after `after`, at most
    /// `limit` of them.
    pub fn acme_links(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, CaError> {
        let Some(index) = self.acme_cf(cf::ACME_INDEX) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let prefix = link_key(prefix);
        let after = after.map(link_key);
        let mut it = self.db.raw_iterator_cf(index);
        match &after {
            Some(after) if *after > prefix => it.seek(after),
            _ => it.seek(&prefix),
        }
        while let Some(key) = it.key() {
            if !key.starts_with(&prefix) {
                break;
            }
            if after.as_deref().is_none_or(|after| key > after) {
                out.push(key[1..].to_vec());
                if out.len() == limit {
                    break;
                }
            }
            it.next();
        }
        it.status().db()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rocksdb::{Options, DB};

    use super::*;
    use crate::error::ErrorClass;
    use crate::store::rocks_groups::RocksGroups;
    use crate::store::writer::{apply_one, StoreWriter, WriteOp};

    const NOW: i64 = 1_800_000_000;

    fn put(kind: AcmeKind, id: &[u8], expect: Option<u64>, value: &[u8]) -> AcmePut {
        AcmePut {
            kind,
            id: id.to_vec(),
            expect,
            value: value.to_vec(),
        }
    }

    fn claim(key: &[u8], id: &[u8]) -> AcmeIndexOp {
        AcmeIndexOp::Claim {
            key: key.to_vec(),
            id: id.to_vec(),
        }
    }

    fn link(key: &[u8]) -> AcmeIndexOp {
        AcmeIndexOp::Link { key: key.to_vec() }
    }

    fn acme_write(puts: Vec<AcmePut>, index: Vec<AcmeIndexOp>, action: AuditAction) -> AcmeWrite {
        AcmeWrite {
            puts,
            index,
            event: AuditEvent::new(NOW, "acme", action, "target"),
        }
    }

    /// Applies `write` as a group of its own, as the writer would.
    fn apply(store: &Store, write: AcmeWrite) -> Result<(), CaError> {
        apply_one(&mut RocksGroups::new(store.clone())?, |tx| {
            WriteOp::Acme(write, tx)
        })
    }

    fn object(version: u64, value: &[u8]) -> Option<AcmeObject> {
        Some(AcmeObject {
            version,
            value: value.to_vec(),
        })
    }

    /// Every entry of the ACME families, and the audit log's head.
    type Snapshot = (Vec<(Vec<u8>, Vec<u8>)>, crate::audit::AuditHead);

    /// Everything of the ACME families and the audit log's head, to show that a refused write
    /// changed nothing.
    fn snapshot(store: &Store) -> Snapshot {
        let mut entries = Vec::new();
        for name in [cf::ACME_OBJECTS, cf::ACME_INDEX] {
            let mut it = store.db.raw_iterator_cf(store.cf(name).unwrap());
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                entries.push((k.to_vec(), v.to_vec()));
                it.next();
            }
        }
        (entries, store.audit_head().unwrap())
    }

    #[test]
    fn objects_are_durable_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let metrics = Arc::new(crate::metrics::Metrics::new().unwrap());
            let writer = StoreWriter::start(store.clone(), 16, metrics).unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let write = acme_write(
                vec![
                    put(AcmeKind::Account, b"acct-1", None, b"account"),
                    put(AcmeKind::Order, b"order-1", None, b"order"),
                ],
                vec![claim(b"thumbprint-1", b"acct-1"), link(b"acct-1/order-1")],
                AuditAction::AcmeAccountCreated,
            );
            writer.sender().send(WriteOp::Acme(write, tx)).unwrap();
            rx.blocking_recv().unwrap().unwrap();
            writer.join();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.acme_object(AcmeKind::Account, b"acct-1").unwrap(),
            object(1, b"account")
        );
        assert_eq!(
            store.acme_object(AcmeKind::Order, b"order-1").unwrap(),
            object(1, b"order")
        );
        // Kinds are apart: the same id of another kind is another object.
        assert_eq!(store.acme_object(AcmeKind::Authz, b"acct-1").unwrap(), None);
        assert_eq!(
            store.acme_claim_holder(b"thumbprint-1").unwrap(),
            Some(b"acct-1".to_vec())
        );
        assert_eq!(
            store.acme_links(b"acct-1/", None, 10).unwrap(),
            vec![b"acct-1/order-1".to_vec()]
        );
        let entries = store.audit_entries(0, 10).unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.event.action.name()).collect();
        assert_eq!(actions, ["acme_account_created"]);
        let report = store.verify_audit(&[]).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
    }

    #[test]
    fn a_stale_or_missing_version_is_a_conflict_that_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let create = |value: &[u8]| {
            acme_write(
                vec![put(AcmeKind::Account, b"a", None, value)],
                vec![],
                AuditAction::AcmeAccountCreated,
            )
        };
        let update = |expect, value: &[u8]| {
            acme_write(
                vec![put(AcmeKind::Account, b"a", Some(expect), value)],
                vec![link(b"a/x")],
                AuditAction::AcmeAccountUpdated,
            )
        };
        // Changing an object that does not exist.
        let err = apply(&store, update(1, b"v2")).unwrap_err();
        assert!(matches!(err, CaError::AcmeConflict { .. }), "{err}");
        apply(&store, create(b"v1")).unwrap();
        apply(&store, update(1, b"v2")).unwrap();
        assert_eq!(
            store.acme_object(AcmeKind::Account, b"a").unwrap(),
            object(2, b"v2")
        );
        let before = snapshot(&store);
        for write in [create(b"again"), update(1, b"stale"), update(3, b"ahead")] {
            let err = apply(&store, write).unwrap_err();
            assert!(matches!(err, CaError::AcmeConflict { .. }), "{err}");
            assert_eq!(
                (err.code(), err.class()),
                ("conflict", ErrorClass::Conflict)
            );
        }
        assert_eq!(snapshot(&store), before, "a refused write left something");
        // A stale put refuses the whole write, the puts before it too.
        let err = apply(
            &store,
            acme_write(
                vec![
                    put(AcmeKind::Order, b"o", None, b"order"),
                    put(AcmeKind::Account, b"a", Some(1), b"stale"),
                ],
                vec![claim(b"k", b"a")],
                AuditAction::AcmeOrderCreated,
            ),
        )
        .unwrap_err();
        assert_eq!(err.code(), "conflict");
        assert_eq!(snapshot(&store), before);
        assert_eq!(store.acme_object(AcmeKind::Order, b"o").unwrap(), None);
        let report = store.verify_audit(&[]).unwrap();
        assert!(report.broken.is_none() && report.entries == 2, "{report:?}");
    }

    #[test]
    fn a_key_held_by_another_id_refuses_the_whole_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        apply(
            &store,
            acme_write(
                vec![put(AcmeKind::Account, b"a", None, b"a")],
                vec![claim(b"thumb-a", b"a")],
                AuditAction::AcmeAccountCreated,
            ),
        )
        .unwrap();
        let before = snapshot(&store);
        let err = apply(
            &store,
            acme_write(
                vec![put(AcmeKind::Account, b"b", None, b"b")],
                vec![link(b"b/first"), claim(b"thumb-a", b"b")],
                AuditAction::AcmeAccountCreated,
            ),
        )
        .unwrap_err();
        assert!(
            matches!(&err, CaError::AcmeIndexTaken { holder } if holder == b"a"),
            "{err}"
        );
        assert_eq!(
            (err.code(), err.class()),
            ("conflict", ErrorClass::Conflict)
        );
        assert_eq!(snapshot(&store), before, "a refused write left something");
        assert_eq!(store.acme_object(AcmeKind::Account, b"b").unwrap(), None);
        assert!(store.acme_links(b"b/", None, 10).unwrap().is_empty());

        // Claiming again what the same id holds changes nothing but the audit log.
        apply(
            &store,
            acme_write(
                vec![put(AcmeKind::Account, b"a", Some(1), b"a2")],
                vec![claim(b"thumb-a", b"a")],
                AuditAction::AcmeAccountUpdated,
            ),
        )
        .unwrap();
        assert_eq!(
            store.acme_claim_holder(b"thumb-a").unwrap(),
            Some(b"a".to_vec())
        );
    }

    #[test]
    fn a_key_change_releases_and_claims_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        apply(
            &store,
            acme_write(
                vec![put(AcmeKind::Account, b"a", None, b"key-1")],
                vec![claim(b"thumb-1", b"a")],
                AuditAction::AcmeAccountCreated,
            ),
        )
        .unwrap();
        apply(
            &store,
            acme_write(
                vec![put(AcmeKind::Account, b"a", Some(1), b"key-2")],
                vec![
                    AcmeIndexOp::Release {
                        key: b"thumb-1".to_vec(),
                    },
                    claim(b"thumb-2", b"a"),
                    // Releasing a free key is no change.
                    AcmeIndexOp::Release {
                        key: b"never-claimed".to_vec(),
                    },
                ],
                AuditAction::AcmeAccountKeyChanged,
            ),
        )
        .unwrap();
        assert_eq!(store.acme_claim_holder(b"thumb-1").unwrap(), None);
        assert_eq!(
            store.acme_claim_holder(b"thumb-2").unwrap(),
            Some(b"a".to_vec())
        );
        assert_eq!(
            store.acme_object(AcmeKind::Account, b"a").unwrap(),
            object(2, b"key-2")
        );
        // The old key is free for another account.
        apply(
            &store,
            acme_write(
                vec![put(AcmeKind::Account, b"b", None, b"key-1")],
                vec![claim(b"thumb-1", b"b")],
                AuditAction::AcmeAccountCreated,
            ),
        )
        .unwrap();
        assert_eq!(
            store.acme_claim_holder(b"thumb-1").unwrap(),
            Some(b"b".to_vec())
        );
    }

    #[test]
    fn links_are_listed_by_prefix_in_key_order_with_paging() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys: Vec<Vec<u8>> = [
            &b"a"[..],
            b"a1/o3",
            b"a1/o1",
            b"a1/o2",
            b"a1/o2/x",
            b"a10/o1",
            b"a2/o1",
            b"\xff\xff",
            b"\xff\xff\x01",
        ]
        .iter()
        .map(|k| k.to_vec())
        .collect();
        apply(
            &store,
            acme_write(
                vec![],
                keys.iter().map(|k| link(k)).collect(),
                AuditAction::AcmeOrderCreated,
            ),
        )
        .unwrap();
        let links = |prefix: &[u8], after: Option<&[u8]>, limit| {
            store.acme_links(prefix, after, limit).unwrap()
        };
        let owned = |keys: &[&[u8]]| keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            links(b"a1/", None, 10),
            owned(&[b"a1/o1", b"a1/o2", b"a1/o2/x", b"a1/o3"])
        );
        // Pages: strictly after the last key of the page before.
        assert_eq!(links(b"a1/", None, 2), owned(&[b"a1/o1", b"a1/o2"]));
        assert_eq!(
            links(b"a1/", Some(b"a1/o2"), 2),
            owned(&[b"a1/o2/x", b"a1/o3"])
        );
        assert!(links(b"a1/", Some(b"a1/o3"), 2).is_empty());
        // An `after` before the prefix, between keys, or past it.
        assert_eq!(links(b"a1/", Some(b"a"), 1), owned(&[b"a1/o1"]));
        assert_eq!(links(b"a1/", Some(b"a1/o15"), 1), owned(&[b"a1/o2"]));
        assert!(links(b"a1/", Some(b"b"), 10).is_empty());
        assert_eq!(links(b"a1", None, 10).len(), 5, "a1/... and a10/...");
        assert!(links(b"a1/", None, 0).is_empty());
        assert_eq!(links(b"", None, 100), {
            let mut sorted = keys.clone();
            sorted.sort();
            sorted
        });
        assert_eq!(
            links(b"\xff", None, 10),
            owned(&[b"\xff\xff", b"\xff\xff\x01"])
        );
        // Unlinked members are gone; unlinking an absent one is no change.
        apply(
            &store,
            acme_write(
                vec![],
                vec![
                    AcmeIndexOp::Unlink {
                        key: b"a1/o2".to_vec(),
                    },
                    AcmeIndexOp::Unlink {
                        key: b"a1/none".to_vec(),
                    },
                ],
                AuditAction::AcmeOrderUpdated,
            ),
        )
        .unwrap();
        assert_eq!(
            links(b"a1/", None, 10),
            owned(&[b"a1/o1", b"a1/o2/x", b"a1/o3"])
        );
        // Claims and links share a family without meeting.
        apply(
            &store,
            acme_write(
                vec![],
                vec![claim(b"a1/o9", b"x")],
                AuditAction::AcmeAccountUpdated,
            ),
        )
        .unwrap();
        assert_eq!(links(b"a1/o9", None, 10), Vec::<Vec<u8>>::new());
        assert_eq!(store.acme_claim_holder(b"a1/o1").unwrap(), None);
    }

    #[test]
    fn writes_beyond_the_limits_are_invalid_requests() {
        let ok = || {
            acme_write(
                vec![put(
                    AcmeKind::Order,
                    &[1; MAX_ACME_KEY_LEN],
                    None,
                    &[0; MAX_ACME_VALUE_LEN],
                )],
                vec![claim(&[2; MAX_ACME_KEY_LEN], &[3; MAX_ACME_KEY_LEN]); MAX_ACME_INDEX_OPS],
                AuditAction::AcmeOrderCreated,
            )
        };
        ok().check().unwrap();
        let mut full = ok();
        full.puts = vec![full.puts[0].clone(); MAX_ACME_PUTS];
        full.check().unwrap();

        let mut refused = Vec::new();
        let mut w = ok();
        w.puts = vec![w.puts[0].clone(); MAX_ACME_PUTS + 1];
        refused.push(w);
        let mut w = ok();
        w.index.push(link(b"x"));
        refused.push(w);
        let mut w = ok();
        w.puts[0].id.push(0);
        refused.push(w);
        let mut w = ok();
        w.puts[0].id.clear();
        refused.push(w);
        let mut w = ok();
        w.puts[0].value.push(0);
        refused.push(w);
        for op in [
            claim(&[0; MAX_ACME_KEY_LEN + 1], b"id"),
            claim(b"key", &[0; MAX_ACME_KEY_LEN + 1]),
            AcmeIndexOp::Release {
                key: vec![0; MAX_ACME_KEY_LEN + 1],
            },
            link(&[0; MAX_ACME_KEY_LEN + 1]),
            AcmeIndexOp::Unlink { key: Vec::new() },
        ] {
            let mut w = ok();
            w.index[0] = op;
            refused.push(w);
        }
        let mut w = ok();
        w.event.action = AuditAction::CertificateIssued;
        refused.push(w);

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for w in refused {
            let err = w.check().unwrap_err();
            assert_eq!(
                (err.code(), err.class()),
                ("invalid_request", ErrorClass::BadInput)
            );
            // The writer checks again.
            let err = apply(&store, w).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{err}");
        }
        assert_eq!(
            snapshot(&store),
            (Vec::new(), crate::audit::AuditHead::GENESIS)
        );
    }

    /// A store written by a build without the ACME families: opened for writing, it gets
    /// them; opened read-only, it reads as holding no ACME object.
    #[test]
    fn a_store_without_the_acme_families_opens() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let mut opts = Options::default();
            opts.create_missing_column_families(true);
            let families = DB::list_cf(&opts, dir.path()).unwrap();
            let mut db = DB::open_cf(&opts, dir.path(), &families).unwrap();
            db.drop_cf(cf::ACME_OBJECTS).unwrap();
            db.drop_cf(cf::ACME_INDEX).unwrap();
        }
        let families = DB::list_cf(&Options::default(), dir.path()).unwrap();
        assert!(!families.iter().any(|f| f.starts_with("acme")));
        {
            let store = Store::open_read_only(dir.path()).unwrap();
            assert_eq!(store.acme_object(AcmeKind::Account, b"a").unwrap(), None);
            assert_eq!(store.acme_claim_holder(b"k").unwrap(), None);
            assert!(store.acme_links(b"", None, 10).unwrap().is_empty());
        }
        let store = Store::open(dir.path()).unwrap();
        apply(
            &store,
            acme_write(
                vec![put(AcmeKind::EabKey, b"eab", None, b"hmac")],
                vec![claim(b"kid", b"eab")],
                AuditAction::AcmeEabKeyCreated,
            ),
        )
        .unwrap();
        assert_eq!(
            store.acme_object(AcmeKind::EabKey, b"eab").unwrap(),
            object(1, b"hmac")
        );
        store.verify_checksums().unwrap();
    }
}
