//! The store seam: what the engine, the CRL publisher, the OCSP responder, the auditor's
//! queries and the token gate need from a store, as traits, one per concern.
//!
//! [`Store`] (RocksDB, this module's parent) implements them with the code that the
//! column-family table at the top of `store/mod.rs` describes; a store shared by several
//! nodes (PostgreSQL) implements the same traits, and the engine does not change. Every read
//! sees committed data only. Every write goes through [`Storage::start_writer`]'s
//! [`StoreWriter`], whose operations ([`WriteOp`](super::writer::WriteOp)) are each
//! all-or-nothing and acknowledged only once durable; the direct writes here
//! ([`TokenStore::put_token`], [`AuditStore::record_event`]) are for the command line, while
//! no engine runs.

use std::path::Path;
use std::sync::Arc;

use super::acme::{AcmeKind, AcmeObject};
use super::query::{CertificateQuery, Cursor, CursorKey, Page};
use super::writer::StoreWriter;
use super::{
    AuditReport, CertRecord, EnrollmentRecord, IdempotencyKey, IdempotencyRecord, Store,
    TokenRecord,
};
use crate::audit::{AuditEntry, AuditEvent, AuditHead, Checkpoint};
use crate::error::CaError;
use crate::metrics::Metrics;
use crate::ocsp::CertStatus;
use crate::revocation::Revocation;
use crate::serial::Serial;

/// Issued certificates, their renewals and the idempotency keys of their requests.
pub trait CertificateStore: Send + Sync {
    /// The certificate with this serial.
    fn certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, CaError>;
    /// The certificate with this issuance sequence number.
    fn certificate_at(&self, seq: u64) -> Result<Option<CertRecord>, CaError>;
    /// Whether this CA issued `serial`.
    fn contains_serial(&self, serial: &Serial) -> Result<bool, CaError>;
    /// The serials that renewed `serial`, oldest first.
    fn renewed_by(&self, serial: &Serial) -> Result<Vec<Serial>, CaError>;
    /// The stored outcome of a request with this idempotency key.
    fn idempotency(&self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, CaError>;
    /// The issuance sequence number of the newest certificate (0 when there is none).
    fn last_cert_seq(&self) -> Result<u64, CaError>;
    /// Number of stored certificates.
    fn count_certificates(&self) -> Result<u64, CaError>;
    /// One page of the auditor's certificate query, at most `limit`, after `cursor`.
    fn query(
        &self,
        query: &CertificateQuery,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, CaError>;
    /// The key that seals the query cursors handed to clients.
    fn cursor_key(&self) -> Result<CursorKey, CaError>;
}

/// Revocations and holds, and what CRLs and OCSP are built from.
pub trait RevocationStore: Send + Sync {
    /// The revocation or hold of `serial`, if any.
    fn revocation(&self, serial: &Serial) -> Result<Option<Revocation>, CaError>;
    /// The OCSP status of `serial` (RFC 6960 section 2.2).
    fn ocsp_status(&self, serial: &Serial) -> Result<CertStatus, CaError>;
    /// Calls `f` for every revoked or held certificate, in serial order.
    fn for_each_revocation(
        &self,
        f: &mut dyn FnMut(Serial, Revocation) -> Result<(), CaError>,
    ) -> Result<(), CaError>;
    /// The serials whose revocation state changed after change sequence `after` up to
    /// `until`, each once (a delta CRL's entries).
    fn changed_since(&self, after: u64, until: u64) -> Result<Vec<Serial>, CaError>;
    /// The number of the last CRL issued (0 before the first); it never goes back.
    fn last_crl_number(&self) -> Result<u64, CaError>;
    /// The sequence number of the last revocation change committed (0 before the first).
    fn last_change_seq(&self) -> Result<u64, CaError>;
    /// Runs `build` as the one CRL builder of every node sharing this store: a store shared
    /// by several nodes makes the others wait until it returns; a store of one node simply
    /// runs it (the default).
    fn as_crl_builder(
        &self,
        build: &mut dyn FnMut() -> Result<(), CaError>,
    ) -> Result<(), CaError> {
        build()
    }
    /// The newest CRLs any node published, if this store keeps them for every node and has
    /// ones numbered above `number` (the default: it keeps none; each node serves its own).
    fn crls_after(&self, number: u64) -> Result<Option<StoredCrls>, CaError> {
        let _ = number;
        Ok(None)
    }
    /// Keeps `crls` as the newest, for every node, when this store is shared (the default:
    /// nothing to do).
    fn put_crls(&self, crls: &StoredCrls) -> Result<(), CaError> {
        let _ = crls;
        Ok(())
    }
    /// The SubjectPublicKeyInfo SHA-256 of every key blocked by a keyCompromise revocation.
    fn blocked_keys(&self) -> Result<Vec<[u8; 32]>, CaError>;
    /// Starts telling `changed` of the revocation changes that other writers of this store
    /// commit ([`RemoteChange`]). A store with one writer, this process's, has nothing to tell
    /// (the default).
    fn watch_changes(&self, changed: ChangeListener) -> Result<(), CaError> {
        drop(changed);
        Ok(())
    }
}

/// A complete CRL and its delta as published, kept by a store shared by several nodes so that
/// every node serves the newest ([`RevocationStore::put_crls`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCrls {
    /// The complete CRL's number.
    pub number: u64,
    /// thisUpdate of both, Unix seconds.
    pub this_update: i64,
    /// Every revocation change up to this sequence number is on the complete CRL.
    pub change_seq: u64,
    /// Entries on the complete CRL.
    pub entries: u64,
    /// The complete CRL, DER.
    pub full: Vec<u8>,
    /// The delta CRL, DER.
    pub delta: Vec<u8>,
}

/// A change another writer of a shared store committed, as [`RevocationStore::watch_changes`]
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteChange {
    /// The revocation state of this serial changed.
    Revocation(Serial),
    /// This key (SHA-256 of its SubjectPublicKeyInfo) was blocked by a keyCompromise
    /// revocation.
    BlockedKey([u8; 32]),
    /// Anything may have changed: the feed was interrupted, or named too many changes to list.
    Any,
}

/// What [`RevocationStore::watch_changes`] calls.
pub type ChangeListener = Arc<dyn Fn(RemoteChange) + Send + Sync>;

/// The hash-chained audit log and its signed checkpoints.
pub trait AuditStore: Send + Sync {
    /// The log's head: its last sequence number and hash.
    fn audit_head(&self) -> Result<AuditHead, CaError>;
    /// Up to `limit` entries after sequence number `after`, oldest first.
    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, CaError>;
    /// The entries that concern `serial`, oldest first.
    fn events(&self, serial: &Serial) -> Result<Vec<AuditEntry>, CaError>;
    /// The newest signed checkpoint.
    fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, CaError>;
    /// Walks the whole log and checks its chain and checkpoints against the CA certificate.
    fn verify_audit(&self, ca_cert_der: &[u8]) -> Result<AuditReport, CaError>;
    /// Appends one event, durably. Only while no engine runs on this store.
    fn record_event(&self, event: AuditEvent) -> Result<AuditHead, CaError>;
}

/// API tokens (stored as hashes) and their unique names.
pub trait TokenStore: Send + Sync {
    /// The token with this hash.
    fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, CaError>;
    /// Every token, revoked ones included.
    fn tokens(&self) -> Result<Vec<TokenRecord>, CaError>;
    /// The hash of the token that has or had `name`, if any (names are never reused).
    fn token_name_holder(&self, name: &str) -> Result<Option<[u8; 32]>, CaError>;
    /// The token named `name`, with its hash.
    fn token_by_name(&self, name: &str) -> Result<Option<([u8; 32], TokenRecord)>, CaError>;
    /// Whether any token exists.
    fn has_tokens(&self) -> Result<bool, CaError>;
    /// Stores a new token, durably, with its audit entry. Only while no engine runs.
    fn put_token(
        &self,
        token_hash: &[u8; 32],
        record: &TokenRecord,
        actor: &str,
    ) -> Result<(), CaError>;
    /// Revokes the token named `name`, durably, with its audit entry. Only while no engine
    /// runs.
    fn revoke_token(&self, name: &str, at: i64, actor: &str) -> Result<TokenRecord, CaError>;
}

/// Enrollments: one-time codes (stored as salted hashes) for certificates to be issued.
pub trait EnrollmentStore: Send + Sync {
    /// The enrollment with this id.
    fn enrollment(&self, id: &[u8; 16]) -> Result<Option<EnrollmentRecord>, CaError>;
    /// Enrollments by state at `now`, in the order of `EnrollmentState::ALL`.
    fn enrollment_counts(&self, now: i64) -> Result<[u64; 4], CaError>;
}

/// The ACME front end's objects, unique keys and lists ([`super::acme`]), written by
/// [`WriteOp::Acme`](super::writer::WriteOp::Acme).
pub trait AcmeStore: Send + Sync {
    /// The stored object of this kind and id.
    fn acme_object(&self, kind: AcmeKind, id: &[u8]) -> Result<Option<AcmeObject>, CaError>;
    /// The id that holds the unique key `key`.
    fn acme_claim_holder(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError>;
    /// The link keys (whole) that start with `prefix`, in key order, strictly after `after`,
    /// at most `limit` of them.
    fn acme_links(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, CaError>;
    /// The key that seals ACME nonces (RFC 8555 section 6.5) when this store is shared by
    /// several nodes, the same on every node, so that a nonce one node hands out is accepted
    /// by another; `None` for a store of one node, whose nonces never leave the process (the
    /// default).
    fn acme_nonce_key(&self) -> Result<Option<[u8; 32]>, CaError> {
        Ok(None)
    }
    /// Spends the ACME nonce `id` for every node sharing this store: `Some(true)` the first
    /// time, `Some(false)` when any node spent it before. Spent nonces are kept until
    /// `expires` (Unix seconds), after which their seal refuses them anyway. `None` for a
    /// store of one node, which keeps no nonces (the default).
    fn acme_spend_nonce(&self, id: &[u8; 16], expires: i64) -> Result<Option<bool>, CaError> {
        let _ = (id, expires);
        Ok(None)
    }
}

/// A complete store: every concern above, the writer, and what an operator watches.
pub trait Storage:
    CertificateStore
    + RevocationStore
    + AuditStore
    + TokenStore
    + EnrollmentStore
    + AcmeStore
    + std::fmt::Debug
{
    /// Starts the single writer through which every change is committed, grouping up to
    /// `max_batch` operations per durable commit.
    fn start_writer(&self, max_batch: usize, metrics: Arc<Metrics>)
        -> Result<StoreWriter, CaError>;
    /// Makes everything written durable in the store's own files (at shutdown).
    fn flush(&self) -> Result<(), CaError>;
    /// Binds the store to the CA whose certificate has this SHA-256, refusing a store of
    /// another CA. A store in the CA's own data directory belongs to it (the default); a store
    /// that several nodes share records the first CA that serves from it.
    fn bind_ca(&self, ca_sha256: [u8; 32]) -> Result<(), CaError> {
        let _ = ca_sha256;
        Ok(())
    }
    /// Reads every record with its checksums verified (`[store] verify_on_start`) and answers
    /// how many it read; `None` for a store whose files its database server checks (the
    /// default).
    fn verify_files(&self) -> Result<Option<u64>, CaError> {
        Ok(None)
    }
    /// The store's memory by use, in bytes (`ca_store_memory_bytes{use}`).
    fn memory(&self) -> Result<Vec<(&'static str, u64)>, CaError>;
    /// Writes a consistent copy of the store as of now into the new directory `dir`, while
    /// writes go on (`ca-server backup`). A store on a database server is backed up by the
    /// server's own tools (PostgreSQL: `pg_basebackup` and archived WAL): refused (the
    /// default).
    fn checkpoint(&self, dir: &Path) -> Result<(), CaError> {
        let _ = dir;
        Err(CaError::InvalidRequest(
            "this store is backed up by its database server's own tools (PostgreSQL: \
             pg_basebackup with WAL archiving), not by ca-server backup"
                .into(),
        ))
    }
    /// Ok when the store can write now; otherwise the error a write would get (503
    /// `storage_unavailable` while its disk is full or below the reserve). A store on a
    /// database server, whose disk the server watches, answers Ok (the default).
    fn writable(&self) -> Result<(), CaError> {
        Ok(())
    }
}

impl CertificateStore for Store {
    fn certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, CaError> {
        Store::certificate(self, serial)
    }
    fn certificate_at(&self, seq: u64) -> Result<Option<CertRecord>, CaError> {
        Store::certificate_at(self, seq)
    }
    fn contains_serial(&self, serial: &Serial) -> Result<bool, CaError> {
        Store::contains_serial(self, serial)
    }
    fn renewed_by(&self, serial: &Serial) -> Result<Vec<Serial>, CaError> {
        Store::renewed_by(self, serial)
    }
    fn idempotency(&self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, CaError> {
        Store::idempotency(self, key)
    }
    fn last_cert_seq(&self) -> Result<u64, CaError> {
        Store::last_cert_seq(self)
    }
    fn count_certificates(&self) -> Result<u64, CaError> {
        Store::count_certificates(self)
    }
    fn query(
        &self,
        query: &CertificateQuery,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, CaError> {
        Store::query(self, query, cursor, limit)
    }
    fn cursor_key(&self) -> Result<CursorKey, CaError> {
        Store::cursor_key(self)
    }
}

impl RevocationStore for Store {
    fn revocation(&self, serial: &Serial) -> Result<Option<Revocation>, CaError> {
        Store::revocation(self, serial)
    }
    fn ocsp_status(&self, serial: &Serial) -> Result<CertStatus, CaError> {
        Store::ocsp_status(self, serial)
    }
    fn for_each_revocation(
        &self,
        f: &mut dyn FnMut(Serial, Revocation) -> Result<(), CaError>,
    ) -> Result<(), CaError> {
        Store::for_each_revocation(self, f)
    }
    fn changed_since(&self, after: u64, until: u64) -> Result<Vec<Serial>, CaError> {
        Store::changed_since(self, after, until)
    }
    fn last_crl_number(&self) -> Result<u64, CaError> {
        Store::last_crl_number(self)
    }
    fn last_change_seq(&self) -> Result<u64, CaError> {
        self.meta_u64(super::META_CHANGE_SEQ)
    }
    fn blocked_keys(&self) -> Result<Vec<[u8; 32]>, CaError> {
        Store::blocked_keys(self)
    }
}

impl AuditStore for Store {
    fn audit_head(&self) -> Result<AuditHead, CaError> {
        Store::audit_head(self)
    }
    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, CaError> {
        Store::audit_entries(self, after, limit)
    }
    fn events(&self, serial: &Serial) -> Result<Vec<AuditEntry>, CaError> {
        Store::events(self, serial)
    }
    fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, CaError> {
        Store::latest_checkpoint(self)
    }
    fn verify_audit(&self, ca_cert_der: &[u8]) -> Result<AuditReport, CaError> {
        Store::verify_audit(self, ca_cert_der)
    }
    fn record_event(&self, event: AuditEvent) -> Result<AuditHead, CaError> {
        Store::record_event(self, event)
    }
}

impl TokenStore for Store {
    fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, CaError> {
        Store::token(self, token_hash)
    }
    fn tokens(&self) -> Result<Vec<TokenRecord>, CaError> {
        Store::tokens(self)
    }
    fn token_name_holder(&self, name: &str) -> Result<Option<[u8; 32]>, CaError> {
        Store::token_name_holder(self, name)
    }
    fn token_by_name(&self, name: &str) -> Result<Option<([u8; 32], TokenRecord)>, CaError> {
        Store::token_by_name(self, name)
    }
    fn has_tokens(&self) -> Result<bool, CaError> {
        Store::has_tokens(self)
    }
    fn put_token(
        &self,
        token_hash: &[u8; 32],
        record: &TokenRecord,
        actor: &str,
    ) -> Result<(), CaError> {
        Store::put_token(self, token_hash, record, actor)
    }
    fn revoke_token(&self, name: &str, at: i64, actor: &str) -> Result<TokenRecord, CaError> {
        Store::revoke_token(self, name, at, actor)
    }
}

impl EnrollmentStore for Store {
    fn enrollment(&self, id: &[u8; 16]) -> Result<Option<EnrollmentRecord>, CaError> {
        Store::enrollment(self, id)
    }
    fn enrollment_counts(&self, now: i64) -> Result<[u64; 4], CaError> {
        Store::enrollment_counts(self, now)
    }
}

impl AcmeStore for Store {
    fn acme_object(&self, kind: AcmeKind, id: &[u8]) -> Result<Option<AcmeObject>, CaError> {
        Store::acme_object(self, kind, id)
    }
    fn acme_claim_holder(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        Store::acme_claim_holder(self, key)
    }
    fn acme_links(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, CaError> {
        Store::acme_links(self, prefix, after, limit)
    }
}

impl Storage for Store {
    fn start_writer(
        &self,
        max_batch: usize,
        metrics: Arc<Metrics>,
    ) -> Result<StoreWriter, CaError> {
        StoreWriter::start(self.clone(), max_batch, metrics)
    }
    fn flush(&self) -> Result<(), CaError> {
        Store::flush(self)
    }
    fn checkpoint(&self, dir: &Path) -> Result<(), CaError> {
        Store::checkpoint(self, dir)
    }
    fn verify_files(&self) -> Result<Option<u64>, CaError> {
        self.verify_checksums().map(Some)
    }
    fn writable(&self) -> Result<(), CaError> {
        Store::writable(self)
    }
    fn memory(&self) -> Result<Vec<(&'static str, u64)>, CaError> {
        let memory = Store::memory(self)?;
        Ok(vec![
            ("block_cache", memory.block_cache),
            ("block_cache_pinned", memory.block_cache_pinned),
            ("memtables", memory.memtables),
            ("table_readers", memory.table_readers),
        ])
    }
}
