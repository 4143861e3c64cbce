//! RocksDB's side of the store writer ([`GroupBackend`]): a group reads the store directly
//! (this process is its only writer), lays each [`Change`] out in the column families that
//! the table at the top of `store/mod.rs` describes, and commits as one synced WriteBatch with
//! the counters in `meta`.

use std::collections::HashSet;

use rocksdb::WriteBatch;

use super::acme::{self, AcmeKind};
use super::query::names_key;
use super::record::encode_revocation;
use super::writer::{Change, Counters, GroupBackend};
use super::{
    cf, EnrollmentRecord, IdempotencyKey, IdempotencyRecord, Store, TokenRecord, META_AUDIT_HEAD,
    META_CERT_SEQ, META_CHANGE_SEQ, META_CRL_NUMBER,
};
use crate::error::CaError;
use crate::revocation::Revocation;
use crate::serial::Serial;

/// A RocksDB write: the column family's name, the key, and the value (`None`: a deletion).
pub(crate) type RocksWrite = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// The writer's groups on a RocksDB [`Store`], with the counters as last committed.
pub(crate) struct RocksGroups {
    store: Store,
    counters: Counters,
}

impl RocksGroups {
    /// Reads the counters; refuses a store whose audit log does not end at its recorded head.
    pub(crate) fn new(store: Store) -> Result<Self, CaError> {
        let counters = Counters {
            cert_seq: store.meta_u64(META_CERT_SEQ)?,
            change_seq: store.meta_u64(META_CHANGE_SEQ)?,
            crl_number: store.meta_u64(META_CRL_NUMBER)?,
            audit: store.checked_audit_head()?,
            last_issued_at: store.last_issued_at()?,
        };
        Ok(RocksGroups { store, counters })
    }
}

/// Lays `change` out as column family entries, appended to `writes`.
pub(crate) fn lay_out(change: Change<'_>, writes: &mut Vec<RocksWrite>) -> Result<(), CaError> {
    let mut put = |cf: &'static str, key: Vec<u8>, value: Vec<u8>| {
        writes.push((cf, key, Some(value)));
    };
    match change {
        Change::Certificate(record) => {
            let seq = record.seq.to_be_bytes();
            let serial = record.serial;
            let mut expiry = Vec::with_capacity(24);
            expiry.extend_from_slice(&record.not_after.to_be_bytes());
            expiry.extend_from_slice(serial.as_bytes());
            put(cf::ISSUED, seq.to_vec(), record.encode()?);
            put(cf::SERIALS, serial.as_bytes().to_vec(), seq.to_vec());
            put(cf::BY_EXPIRY, expiry, Vec::new());
        }
        Change::Idempotency(key, entry) => {
            put(cf::IDEM, key.as_bytes().to_vec(), entry.encode().to_vec());
        }
        Change::Name(prefix, seq) => put(cf::NAMES, names_key(prefix, seq), Vec::new()),
        Change::Renewal { old, seq, serial } => {
            // Old serial ‖ the renewal's issuance seq: every renewal is kept, oldest first.
            let mut key = Vec::with_capacity(24);
            key.extend_from_slice(old.as_bytes());
            key.extend_from_slice(&seq.to_be_bytes());
            put(cf::RENEWALS, key, serial.as_bytes().to_vec());
        }
        Change::Revocation {
            serial,
            state,
            change_seq,
        } => {
            let key = serial.as_bytes().to_vec();
            match state {
                Some(r) => put(cf::REVOKED, key.clone(), encode_revocation(&r)?),
                None => writes.push((cf::REVOKED, key.clone(), None)),
            }
            writes.push((
                cf::CRL_CHANGES,
                change_seq.to_be_bytes().to_vec(),
                Some(key),
            ));
        }
        Change::BlockedKey(key, serial) => {
            put(cf::BLOCKED_KEYS, key.to_vec(), serial.as_bytes().to_vec());
        }
        Change::Token(hash, record) => put(cf::TOKENS, hash.to_vec(), record.encode()?),
        Change::TokenName(name, hash) => {
            put(cf::TOKEN_NAMES, name.as_bytes().to_vec(), hash.to_vec())
        }
        Change::Enrollment(id, record) => put(cf::ENROLLMENTS, id.to_vec(), record.encode()?),
        Change::Audit(entry, serials) => {
            let seq = entry.seq.to_be_bytes();
            put(cf::AUDIT, seq.to_vec(), entry.encode()?);
            for serial in serials {
                let mut key = Vec::with_capacity(24);
                key.extend_from_slice(serial.as_bytes());
                key.extend_from_slice(&seq);
                put(cf::EVENTS, key, Vec::new());
            }
        }
        Change::Checkpoint(cp) => {
            put(
                cf::CHECKPOINTS,
                cp.head.seq.to_be_bytes().to_vec(),
                cp.encode()?,
            );
        }
        Change::AcmeObject {
            kind,
            id,
            version,
            value,
        } => put(
            cf::ACME_OBJECTS,
            acme::object_key(kind, id),
            acme::encode_object(version, value),
        ),
        Change::AcmeClaim { key, id } => {
            writes.push((cf::ACME_INDEX, acme::claim_key(key), id.map(<[u8]>::to_vec)))
        }
        Change::AcmeLink { key, linked } => {
            writes.push((cf::ACME_INDEX, acme::link_key(key), linked.then(Vec::new)))
        }
    }
    Ok(())
}

/// Adds `writes` to `batch`.
pub(crate) fn to_batch(
    store: &Store,
    writes: Vec<RocksWrite>,
    batch: &mut WriteBatch,
) -> Result<(), CaError> {
    for (name, key, value) in writes {
        let cf = store.cf(name)?;
        match value {
            Some(value) => batch.put_cf(cf, key, value),
            None => batch.delete_cf(cf, key),
        }
    }
    Ok(())
}

impl GroupBackend for RocksGroups {
    type Write = RocksWrite;

    fn begin(&mut self) -> Result<Counters, CaError> {
        Ok(self.counters)
    }
    fn stored_serials(&mut self, serials: &mut [Serial]) -> Result<HashSet<Serial>, CaError> {
        self.store.stored_serials(serials)
    }
    fn idempotency(&mut self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, CaError> {
        self.store.idempotency(key)
    }
    fn token_name_holder(&mut self, name: &str) -> Result<Option<[u8; 32]>, CaError> {
        self.store.token_name_holder(name)
    }
    fn token(&mut self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, CaError> {
        self.store.token(hash)
    }
    fn enrollment(&mut self, id: &[u8; 16]) -> Result<Option<EnrollmentRecord>, CaError> {
        self.store.enrollment(id)
    }
    fn revocation(&mut self, serial: &Serial) -> Result<Option<Revocation>, CaError> {
        self.store.revocation(serial)
    }
    fn not_after(&mut self, serial: &Serial) -> Result<Option<i64>, CaError> {
        Ok(self.store.certificate(serial)?.map(|r| r.not_after))
    }
    fn acme_version(&mut self, kind: AcmeKind, id: &[u8]) -> Result<Option<u64>, CaError> {
        self.store.acme_version(kind, id)
    }
    fn acme_claim_holder(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        self.store.acme_claim_holder(key)
    }
    fn stage(&self, change: Change<'_>, writes: &mut Vec<RocksWrite>) -> Result<(), CaError> {
        lay_out(change, writes)
    }
    fn commit(&mut self, writes: Vec<RocksWrite>, counters: &Counters) -> Result<(), CaError> {
        // Every counter moves with a write (an audit entry at least): nothing to write means
        // nothing changed.
        if writes.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        to_batch(&self.store, writes, &mut batch)?;
        let meta = self.store.cf(cf::META)?;
        batch.put_cf(meta, META_CERT_SEQ, counters.cert_seq.to_be_bytes());
        batch.put_cf(meta, META_CHANGE_SEQ, counters.change_seq.to_be_bytes());
        batch.put_cf(meta, META_CRL_NUMBER, counters.crl_number.to_be_bytes());
        batch.put_cf(meta, META_AUDIT_HEAD, counters.audit.encode());
        self.store.write(batch)?;
        self.counters = *counters;
        Ok(())
    }
}
