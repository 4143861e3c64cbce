//! The RocksDB store: certificates, idempotency keys, indexes and tokens.
//!
//! Everything above the store uses it through the traits of the store seam ([`Storage`] and
//! the per-concern traits it combines); [`Store`] is their embedded implementation.
//!
//! Column families (keys are fixed-width big-endian bytes; hex appears only at the API edge):
//!
//! | family      | key                                   | value                    |
//! |-------------|---------------------------------------|--------------------------|
//! | `issued`    | issuance seq (8)                      | [`CertRecord`]           |
//! | `serials`   | serial (16)                           | issuance seq (8)         |
//! | `idem`      | SHA-256(token) ‖ request_id            | [`IdempotencyRecord`]    |
//! | `by_expiry` | notAfter (8) ‖ serial (16)            | empty                    |
//! | `revoked`   | serial (16)                           | [`Revocation`]           |
//! | `renewals`  | old serial (16) ‖ renewal's seq (8)   | renewal's serial         |
//! | `crl_changes` | change seq (8)                      | serial whose revocation changed |
//! | `tokens`    | SHA-256(token) (32)                   | [`TokenRecord`]          |
//! | `token_names` | token name (UTF-8)                  | SHA-256(token) (32)      |
//! | `names`     | tag ‖ lower-case name ‖ 0 ‖ seq (8)   | empty (v2: serial)       |
//! | `audit`     | audit seq (8)                         | [`AuditEntry`]           |
//! | `events`    | serial (16) ‖ audit seq (8)           | empty                    |
//! | `checkpoints` | audit seq (8)                       | [`Checkpoint`]           |
//! | `enrollments` | enrollment id (16)                   | [`EnrollmentRecord`]     |
//! | `blocked_keys` | SHA-256(SubjectPublicKeyInfo) (32)  | serial (16) whose keyCompromise revocation blocked it |
//! | `acme_objects` | ACME kind (1) ‖ object id          | version (8) ‖ the ACME front end's value |
//! | `acme_index` | `c` ‖ claimed key, `l` ‖ link key     | the claim's holder id; empty for a link |
//! | `meta`      | name                                  | schema version, counters |
//!
//! Certificates are keyed by their issuance sequence number, so that new ones are appended:
//! table files of `issued` never overlap, compactions move them instead of rewriting them,
//! and a store of millions of certificates stops paying for its large values again and again
//! (bench/RESULTS.md, *Large store*). The random serials go to `serials`, whose entries are 24
//! bytes. A look-up by serial reads both; a walk in issuance order reads `issued` alone.
//! Schema version 2 keyed certificates by serial (`certs`, with a `by_issued` index); `migrate.rs`
//! converts such a store when it is opened.
//!
//! `names` indexes each certificate's subject (tag `S`) and each SAN (tag `N`) for the
//! auditor's queries ([`query`]); `events` points from a serial to the audit entry that issued
//! it (stores written before this pointer existed lack it) and to those that changed it after
//! issuance (revocation, hold release, renewal). `renewals` keeps every renewal of a serial;
//! a store written before kept only the newest, under the bare old serial (16 bytes), which a
//! prefix scan reads as the first of the list.
//!
//! `blocked_keys` holds the key of every certificate revoked for keyCompromise, written in the
//! revocation's own commit and never deleted: no certificate is issued for such a key again
//! (CA/Browser Forum Baseline Requirements 6.1.1.3 item 4; [`blocked_keys`]).
//!
//! `acme_objects` and `acme_index` keep the ACME front end's objects, unique keys and lists
//! ([`acme`]). A store created by a build without them gets them when it is opened for
//! writing; nothing is migrated, so the schema version stays.
//!
//! [`AuditEntry`]: crate::audit::AuditEntry
//! [`Checkpoint`]: crate::audit::Checkpoint
//!
//! Reads may come from any thread. While the engine runs, only its writer thread
//! ([`writer`]) writes, in synced WriteBatches (group commit); before it starts (bootstrap,
//! command line) the few writes it needs (schema version, tokens) are made directly.

pub mod acme;
mod audit_log;
pub mod blocked_keys;
mod migrate;
pub mod query;
pub mod record;
mod rocks_groups;
mod seam;
pub mod space;
mod tokens;
pub mod writer;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType,
    Options, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions, DB,
};

pub use acme::{
    AcmeIndexOp, AcmeKind, AcmeObject, AcmePut, AcmeWrite, MAX_ACME_INDEX_OPS, MAX_ACME_KEY_LEN,
    MAX_ACME_PUTS, MAX_ACME_VALUE_LEN,
};
pub use audit_log::{verify_log, AuditReport};
pub use record::{CertRecord, EnrollmentRecord, IdempotencyRecord, TokenRecord};
pub use seam::{
    AcmeStore, AuditStore, CertificateStore, ChangeListener, EnrollmentStore, RemoteChange,
    RevocationStore, Storage, StoredCrls, TokenStore,
};
pub use tokens::{new_token_id, UPGRADE_ACTOR};

use crate::revocation::Revocation;

use crate::error::CaError;
use crate::serial::Serial;

/// The store format this build writes. Older versions are migrated on open; a newer one is
/// refused. Version 2 added the audit log and the query indexes (new column families; a
/// version 1 store simply starts its audit log at the upgrade). Version 3 keys certificates
/// by issuance sequence (`issued`) with a serial index (`serials`), instead of by serial.
/// Version 4 gives every token an immutable id and a unique name (`token_names`); the
/// upgrade renames all but the oldest of tokens that shared a name. Version 5 keeps the keys
/// of certificates revoked for keyCompromise (`blocked_keys`); the upgrade fills it from the
/// stored keyCompromise revocations.
pub const SCHEMA_VERSION: u32 = 5;

/// Column family names.
pub mod cf {
    /// Certificates by issuance sequence number.
    pub const ISSUED: &str = "issued";
    /// Serial to issuance sequence number.
    pub const SERIALS: &str = "serials";
    /// Idempotency keys.
    pub const IDEM: &str = "idem";
    /// Expiry order.
    pub const BY_EXPIRY: &str = "by_expiry";
    /// Revocations.
    pub const REVOKED: &str = "revoked";
    /// API tokens.
    pub const TOKENS: &str = "tokens";
    /// Token names (every name a token ever had) to the token's hash: names are unique.
    pub const TOKEN_NAMES: &str = "token_names";
    /// Renewal links, old serial to new.
    pub const RENEWALS: &str = "renewals";
    /// Revocation changes in order, for delta CRLs.
    pub const CRL_CHANGES: &str = "crl_changes";
    /// Subject and SAN index for queries.
    pub const NAMES: &str = "names";
    /// The audit log.
    pub const AUDIT: &str = "audit";
    /// Per-serial pointers into the audit log.
    pub const EVENTS: &str = "events";
    /// Signed checkpoints of the audit log's head.
    pub const CHECKPOINTS: &str = "checkpoints";
    /// Enrollments (one-time codes).
    pub const ENROLLMENTS: &str = "enrollments";
    /// Keys of certificates revoked for keyCompromise: never certified again.
    pub const BLOCKED_KEYS: &str = "blocked_keys";
    /// ACME objects by kind and id, with their versions.
    pub const ACME_OBJECTS: &str = "acme_objects";
    /// ACME claims (unique keys to their holder) and links (ordered list members).
    pub const ACME_INDEX: &str = "acme_index";
    /// Schema version and counters.
    pub const META: &str = "meta";
    /// Every family this build uses.
    pub const ALL: [&str; 18] = [
        ENROLLMENTS,
        NAMES,
        AUDIT,
        EVENTS,
        CHECKPOINTS,
        ISSUED,
        SERIALS,
        IDEM,
        BY_EXPIRY,
        REVOKED,
        TOKENS,
        META,
        RENEWALS,
        CRL_CHANGES,
        TOKEN_NAMES,
        BLOCKED_KEYS,
        ACME_OBJECTS,
        ACME_INDEX,
    ];
}

/// All memtables together (RocksDB's write buffer manager), charged to the block cache.
const DB_WRITE_BUFFER: usize = 64 << 20;
/// One memtable of one column family.
const CF_WRITE_BUFFER: usize = 16 << 20;
/// The block cache shared by every column family, beyond what the memtables take of it.
const BLOCK_CACHE: usize = 32 << 20;
/// RocksDB's one memory budget: memtables and cached blocks together.
const STORE_MEMORY: usize = DB_WRITE_BUFFER + BLOCK_CACHE;

const META_SCHEMA: &[u8] = b"schema_version";
const META_CERT_SEQ: &[u8] = b"cert_seq";
/// A key never written: its deletion is the write that tells whether the store writes again
/// ([`Store::writable`]).
const META_WRITE_PROBE: &[u8] = b"write_probe";
const META_CHANGE_SEQ: &[u8] = b"crl_change_seq";
const META_CRL_NUMBER: &[u8] = b"crl_number";
const META_AUDIT_HEAD: &[u8] = b"audit_head";
const META_CURSOR_KEY: &[u8] = b"cursor_key";

fn newer_schema(version: u32) -> CaError {
    CaError::Storage(format!(
        "the store has schema version {version}, newer than this build's {SCHEMA_VERSION}; \
         run a newer ca-server"
    ))
}

/// The key of an idempotency entry: the requesting token's hash and the `request_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Vec<u8>);

impl IdempotencyKey {
    /// Builds the key for a token (by the SHA-256 of the token) and a request id.
    pub fn new(token_hash: &[u8; 32], request_id: &str) -> Self {
        let mut key = Vec::with_capacity(32 + request_id.len());
        key.extend_from_slice(token_hash);
        key.extend_from_slice(request_id.as_bytes());
        IdempotencyKey(key)
    }

    /// The stored key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A handle on the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    /// The free-space reserve and the outcome of the last write ([`space::WriteGate`]).
    gate: Arc<space::WriteGate>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

/// Where RocksDB's memory goes ([`Store::memory`]), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Blocks in the shared block cache (data, index and filter blocks): the cache's usage
    /// less what the memtables reserve in it (in 256 KiB units, so within a few MiB). With
    /// `memtables`, bounded by `STORE_MEMORY` except for pinned top-level partitions.
    pub block_cache: u64,
    /// The part of `block_cache` that cannot be evicted now (blocks held by open tables and
    /// iterators), which may take the cache beyond its capacity.
    pub block_cache_pinned: u64,
    /// All memtables, bounded by `DB_WRITE_BUFFER` plus those being flushed, and charged to
    /// the block cache.
    pub memtables: u64,
    /// Table readers outside the block cache (per open table file).
    pub table_readers: u64,
}

/// RocksDB's errors as the core's database errors ([`CaError::Database`]).
pub(crate) trait Db<T> {
    /// This result with a RocksDB error kept as the source of [`CaError::Database`].
    fn db(self) -> Result<T, CaError>;
}

impl<T> Db<T> for Result<T, rocksdb::Error> {
    fn db(self) -> Result<T, CaError> {
        self.map_err(|e| CaError::Database(Box::new(e)))
    }
}

impl Store {
    /// Opens (or creates) the store at `path`, checks its schema version and records it.
    pub fn open(path: &Path) -> Result<Self, CaError> {
        let mut store = Self::open_mode(path, false)?;
        store.check_schema()?;
        store.ensure_cursor_key()?;
        Ok(store)
    }

    /// Opens an existing store read-only, as it is on disk now: for offline tools (`audit
    /// verify`, `export`), which may run while a server holds the store open for writing.
    pub fn open_read_only(path: &Path) -> Result<Self, CaError> {
        if !path.join("CURRENT").exists() {
            return Err(CaError::Storage(format!(
                "there is no store at {}",
                path.display()
            )));
        }
        // A running server may delete a log or table file between listing and opening it;
        // the next attempt sees the newer state.
        let mut attempt = 0;
        loop {
            match Self::open_mode(path, true) {
                Err(e) if attempt < 4 => {
                    tracing::debug!(error = %e, "opening the store read-only; retrying");
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Ok(store) => {
                    store.check_readable()?;
                    return Ok(store);
                }
                result => return result,
            }
        }
    }

    fn open_mode(path: &Path, read_only: bool) -> Result<Self, CaError> {
        let mut opts = Options::default();
        opts.create_if_missing(!read_only);
        opts.create_missing_column_families(!read_only);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        // Memory stays bounded whatever the store's size, and nearly level: memtables (flushed at
        // 64 MiB all together) and cached blocks share one 96 MiB budget. The memtables are
        // charged to the block cache, which evicts blocks as they grow, and a flush puts the
        // blocks it writes into the cache (`prepopulate_block_cache`, below), so the cache
        // holds the newest certificates from the first flush on instead of filling over
        // minutes of reads, and what a flush frees the cache takes up again.
        let cache = Cache::new_lru_cache(STORE_MEMORY);
        if read_only {
            // Every table file is opened now: a running server's compactions may delete
            // files later, and an open file stays readable.
            opts.set_max_open_files(-1);
        } else {
            opts.set_write_buffer_manager(
                &WriteBufferManager::new_write_buffer_manager_with_cache(
                    DB_WRITE_BUFFER,
                    false,
                    cache.clone(),
                ),
            );
        }
        let existing = DB::list_cf(&opts, path).unwrap_or_default();
        let mut names: Vec<String> = if read_only {
            Vec::new()
        } else {
            cf::ALL.iter().map(|s| s.to_string()).collect()
        };
        for name in existing {
            if (name != "default" || read_only) && !names.contains(&name) {
                names.push(name);
            }
        }
        let descriptors = names.iter().map(|name| {
            let mut cf_opts = Options::default();
            let mut table = BlockBasedOptions::default();
            if name != cf::ISSUED {
                // `issued` is only read at sequence numbers known to exist (from `serials`, a
                // name entry or a walk), where a filter cannot help; without one, a large
                // store keeps no filter for its largest family in memory.
                table.set_bloom_filter(10.0, false);
            }
            table.set_block_cache(&cache);
            // Indexes and filters are partitioned into 4 KiB blocks behind a small pinned top
            // level, all through the bounded cache: a lookup reads one small index partition
            // instead of decompressing a whole table's index, which in a store far larger
            // than the cache made every random read (a serial check, a query row) cost
            // ~100 µs.
            table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_metadata_block_size(4096);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_top_level_index_and_filter(true);
            // Not pinned for level-0 files: a table stays open (and its pins held) after
            // compaction moves it down without rewriting it, which is what happens to every
            // `issued` table, so pinned partitions grew with the store (about 7 MiB per
            // million certificates, beyond the cache's capacity).
            table.set_pin_l0_filter_and_index_blocks_in_cache(false);
            cf_opts.set_write_buffer_size(CF_WRITE_BUFFER);
            cf_opts.set_max_write_buffer_number(2);
            cf_opts.set_block_based_table_factory(&table);
            if name == cf::ISSUED {
                cf_opts.set_compression_type(DBCompressionType::Lz4);
            }
            if name == cf::SERIALS || name == cf::IDEM {
                // The writer looks up every new serial and idempotency key, and nearly all
                // are absent: a bloom filter over the memtable answers those without walking
                // its skip list (about 1.6 MiB per 16 MiB memtable).
                cf_opts.set_memtable_whole_key_filtering(true);
                cf_opts.set_memtable_prefix_bloom_ratio(0.1);
            }
            ColumnFamilyDescriptor::new(name.as_str(), cf_opts)
        });
        let opened = if read_only {
            DB::open_cf_descriptors_read_only(&opts, path, descriptors, false)
        } else {
            DB::open_cf_descriptors(&opts, path, descriptors)
        };
        let db = opened.map_err(|e| {
            let msg = e.into_string();
            if msg.contains("lock") {
                CaError::Storage(format!(
                    "the store at {} is in use by another process (is ca-server already \
                     running on this data directory?): {msg}",
                    path.display()
                ))
            } else if msg.contains("Corruption") || msg.contains("checksum") {
                CaError::Storage(format!(
                    "the store at {} is damaged ({msg}); do not serve from it: restore the data \
                     directory from a backup, then run `ca-server audit verify`",
                    path.display()
                ))
            } else {
                CaError::Storage(format!("opening the store at {}: {msg}", path.display()))
            }
        })?;
        if !read_only {
            prepopulate_block_cache(&db, &names)?;
        }
        Ok(Store {
            db: Arc::new(db),
            gate: Arc::new(space::WriteGate::new(path)),
        })
    }

    /// The recorded schema version (`None` on a new store).
    fn schema_version(&self) -> Result<Option<u32>, CaError> {
        let meta = self.cf(cf::META)?;
        self.db
            .get_pinned_cf(meta, META_SCHEMA)
            .db()?
            .map(|v| {
                <[u8; 4]>::try_from(&v[..])
                    .map(u32::from_be_bytes)
                    .map_err(|_| CaError::Storage("malformed schema version".into()))
            })
            .transpose()
    }

    /// Refuses a newer store, migrates an older one, and records this build's version.
    fn check_schema(&mut self) -> Result<(), CaError> {
        let version = self.schema_version()?;
        if let Some(v) = version.filter(|v| *v > SCHEMA_VERSION) {
            return Err(newer_schema(v));
        }
        if version.is_none_or(|v| v < migrate::ISSUANCE_ORDER_SCHEMA) {
            migrate::copy_legacy_certificates(self)?;
        }
        if version.is_none_or(|v| v < tokens::UNIQUE_TOKEN_NAMES_SCHEMA) {
            self.index_tokens()?;
        }
        if version.is_none_or(|v| v < blocked_keys::BLOCKED_KEYS_SCHEMA) {
            self.backfill_blocked_keys()?;
        }
        if version != Some(SCHEMA_VERSION) {
            let mut batch = WriteBatch::default();
            batch.put_cf(
                self.cf(cf::META)?,
                META_SCHEMA,
                SCHEMA_VERSION.to_be_bytes(),
            );
            self.write(batch)?;
        }
        // Also finishes a migration that stopped after recording the version.
        migrate::drop_legacy_families(self)
    }

    /// Draws the secret that seals query cursors when the store has none yet.
    fn ensure_cursor_key(&self) -> Result<(), CaError> {
        let meta = self.cf(cf::META)?;
        if self.db.get_pinned_cf(meta, META_CURSOR_KEY).db()?.is_some() {
            return Ok(());
        }
        let mut secret = zeroize::Zeroizing::new([0u8; query::CURSOR_KEY_LEN]);
        keys::SecureRandom::fill(&keys::SystemRandom::new(), secret.as_mut())?;
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, META_CURSOR_KEY, secret.as_ref());
        self.write(batch)
    }

    /// The key that seals the query cursors this store's queries hand out
    /// ([`query::Cursor::seal`]).
    pub fn cursor_key(&self) -> Result<query::CursorKey, CaError> {
        let meta = self.cf(cf::META)?;
        let secret = self
            .db
            .get_pinned_cf(meta, META_CURSOR_KEY)
            .db()?
            .and_then(|v| <[u8; query::CURSOR_KEY_LEN]>::try_from(&v[..]).ok())
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| CaError::Storage("the store has no cursor key".into()))?;
        query::CursorKey::new(&secret)
    }

    /// A read-only store must already be in this build's format: read-only tools cannot
    /// migrate it.
    fn check_readable(&self) -> Result<(), CaError> {
        match self.schema_version()? {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(v) if v > SCHEMA_VERSION => Err(newer_schema(v)),
            other => Err(CaError::Storage(format!(
                "the store at {} has schema version {}, older than this build's \
                 {SCHEMA_VERSION}: start `ca-server serve` on it once (it upgrades the store on \
                 open), then run this again",
                self.db.path().display(),
                other.unwrap_or(0)
            ))),
        }
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, CaError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| CaError::Storage(format!("column family {name} is missing")))
    }

    /// Writes a batch with the WAL synced to disk before returning. Refused before it starts
    /// (503 `storage_unavailable`) while the filesystem has less free space than the reserve;
    /// a write that fails for lack of space answers the same.
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), CaError> {
        if let Err(why) = self.gate.admit(batch.size_in_bytes() as u64) {
            return Err(why.into());
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        match self.db.write_opt(batch, &opts) {
            Ok(()) => {
                self.gate.record(Ok(()));
                Ok(())
            }
            Err(e) => match space::classify(&e) {
                Some(why @ space::NotWritable::DiskFull) => {
                    tracing::error!(error = %e, "store write failed: the disk is full");
                    self.gate.record(Err(why.clone()));
                    Err(why.into())
                }
                Some(why) => {
                    self.gate.record(Err(why));
                    Err(CaError::Database(Box::new(e)))
                }
                None => Err(CaError::Database(Box::new(e))),
            },
        }
    }

    /// Refuses writes while the store's filesystem has less than `bytes` free (`[store]
    /// min_free_bytes`; 0: never).
    pub fn set_min_free_bytes(&self, bytes: u64) {
        self.gate.set_reserve(bytes);
    }

    /// Ok when the store can write now; otherwise why not, as the error a write would get.
    /// After a failed write, a write that changes nothing (the deletion of an absent key) is
    /// tried, at most once per second, so that the store is seen writable again once space
    /// is freed even when no request writes.
    pub fn writable(&self) -> Result<(), CaError> {
        if self.gate.probe_due() {
            let mut batch = WriteBatch::default();
            batch.delete_cf(self.cf(cf::META)?, META_WRITE_PROBE);
            // The outcome is recorded in the gate, which answers below.
            let _ = self.write(batch);
        }
        match self.gate.state() {
            Some(why) => Err(why.into()),
            None => Ok(()),
        }
    }

    /// The certificate with this serial.
    pub fn certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, CaError> {
        match self.issuance_seq(serial)? {
            Some(seq) => self.certificate_at(seq),
            None => Ok(None),
        }
    }

    /// The certificate with this issuance sequence number.
    pub fn certificate_at(&self, seq: u64) -> Result<Option<CertRecord>, CaError> {
        self.db
            .get_pinned_cf(self.cf(cf::ISSUED)?, seq.to_be_bytes())
            .db()?
            .map(|v| CertRecord::decode(&v))
            .transpose()
    }

    /// The issuance sequence number of the certificate with this serial.
    fn issuance_seq(&self, serial: &Serial) -> Result<Option<u64>, CaError> {
        self.db
            .get_pinned_cf(self.cf(cf::SERIALS)?, serial.as_bytes())
            .db()?
            .map(|v| decode_seq(&v))
            .transpose()
    }

    /// Whether a certificate with this serial exists.
    pub fn contains_serial(&self, serial: &Serial) -> Result<bool, CaError> {
        let serials = self.cf(cf::SERIALS)?;
        if !self.db.key_may_exist_cf(&serials, serial.as_bytes()) {
            return Ok(false);
        }
        Ok(self
            .db
            .get_pinned_cf(serials, serial.as_bytes())
            .db()?
            .is_some())
    }

    /// The OCSP status of `serial` (RFC 6960 section 2.2): `unknown` unless this CA issued
    /// it; `revoked` (with its time, reason and invalidity date) while a revocation or hold is
    /// stored; otherwise `good`, expired or not: expiry is not revocation, and a revocation
    /// stays on record after the certificate expires.
    pub fn ocsp_status(&self, serial: &Serial) -> Result<crate::ocsp::CertStatus, CaError> {
        if self.contains_serial(serial)? {
            crate::ocsp::CertStatus::issued(self.revocation(serial)?.as_ref())
        } else {
            Ok(crate::ocsp::CertStatus::Unknown)
        }
    }

    /// RocksDB's memory by use (RocksDB properties `rocksdb.block-cache-usage`,
    /// `rocksdb.cur-size-all-mem-tables`, `rocksdb.estimate-table-readers-mem`), in bytes.
    pub fn memory(&self) -> Result<StoreMemory, CaError> {
        let of = |name: &str, property: &str| -> Result<u64, CaError> {
            Ok(self
                .db
                .property_int_value_cf(self.cf(name)?, property)
                .db()?
                .unwrap_or(0))
        };
        // Every family reads through the same cache, so any one of them reports its usage.
        let cache = |property| of(cf::ISSUED, property);
        let summed = |property| -> Result<u64, CaError> {
            cf::ALL.iter().map(|name| of(name, property)).sum()
        };
        // The memtables' reservation in the cache counts as pinned usage; it is reported
        // under `memtables`, not twice.
        let memtables = summed("rocksdb.cur-size-all-mem-tables")?;
        Ok(StoreMemory {
            block_cache: cache("rocksdb.block-cache-usage")?.saturating_sub(memtables),
            block_cache_pinned: cache("rocksdb.block-cache-pinned-usage")?
                .saturating_sub(memtables),
            memtables,
            table_readers: summed("rocksdb.estimate-table-readers-mem")?,
        })
    }

    /// Which of `serials` are already stored, in one sorted multi-get: the writer checks a
    /// whole group's serials at once, which costs RocksDB one walk of the memtable and of
    /// each table's filter instead of one per certificate.
    pub fn stored_serials(&self, serials: &mut [Serial]) -> Result<HashSet<Serial>, CaError> {
        serials.sort_unstable();
        let found = self.db.batched_multi_get_cf(
            self.cf(cf::SERIALS)?,
            serials.iter().map(Serial::as_bytes),
            true,
        );
        let mut stored = HashSet::new();
        for (serial, result) in serials.iter().zip(found) {
            if result.db()?.is_some() {
                stored.insert(*serial);
            }
        }
        Ok(stored)
    }

    /// The idempotency entry for this key.
    pub fn idempotency(&self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, CaError> {
        let idem = self.cf(cf::IDEM)?;
        self.db
            .get_pinned_cf(idem, key.as_bytes())
            .db()?
            .map(|v| IdempotencyRecord::decode(&v))
            .transpose()
    }

    /// The enrollment with this id.
    pub fn enrollment(&self, id: &[u8; 16]) -> Result<Option<EnrollmentRecord>, CaError> {
        let enrollments = self.cf(cf::ENROLLMENTS)?;
        self.db
            .get_pinned_cf(enrollments, id)
            .db()?
            .map(|v| EnrollmentRecord::decode(&v))
            .transpose()
    }

    /// How many enrollments are in each state at `now` (Unix seconds), in the order of
    /// [`crate::enrollment::EnrollmentState::ALL`]. Reads the whole enrollments family, which
    /// holds one small record per enrollment.
    pub fn enrollment_counts(&self, now: i64) -> Result<[u64; 4], CaError> {
        use crate::enrollment::EnrollmentState;
        let enrollments = self.cf(cf::ENROLLMENTS)?;
        let mut counts = [0u64; 4];
        let mut it = self.db.raw_iterator_cf(enrollments);
        it.seek_to_first();
        while let Some(value) = it.value() {
            let state = EnrollmentRecord::decode(value)?.state(now);
            if let Some(i) = EnrollmentState::ALL.iter().position(|s| *s == state) {
                counts[i] += 1;
            }
            it.next();
        }
        it.status().db()?;
        Ok(counts)
    }

    /// The token stored under this hash.
    pub fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, CaError> {
        let tokens = self.cf(cf::TOKENS)?;
        self.db
            .get_pinned_cf(tokens, token_hash)
            .db()?
            .map(|v| TokenRecord::decode(&v))
            .transpose()
    }

    /// Whether any token is stored (false on a new store: bootstrap tokens are due).
    pub fn has_tokens(&self) -> Result<bool, CaError> {
        let tokens = self.cf(cf::TOKENS)?;
        let mut it = self.db.raw_iterator_cf(tokens);
        it.seek_to_first();
        it.status().db()?;
        Ok(it.valid())
    }

    /// The last issuance sequence number assigned (0 on an empty store).
    pub fn last_cert_seq(&self) -> Result<u64, CaError> {
        self.meta_u64(META_CERT_SEQ)
    }

    /// `issued_at` of the newest certificate (0 on an empty store).
    pub fn last_issued_at(&self) -> Result<i64, CaError> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf::ISSUED)?);
        it.seek_to_last();
        let last = it.value().map(CertRecord::decode).transpose()?;
        it.status().db()?;
        Ok(last.map_or(0, |r| r.issued_at))
    }

    /// The last CRL number used (0 before the first CRL).
    pub fn last_crl_number(&self) -> Result<u64, CaError> {
        self.meta_u64(META_CRL_NUMBER)
    }

    fn meta_u64(&self, key: &[u8]) -> Result<u64, CaError> {
        let meta = self.cf(cf::META)?;
        Ok(self
            .db
            .get_pinned_cf(meta, key)
            .db()?
            .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// The revocation of this serial, if it is revoked or on hold.
    pub fn revocation(&self, serial: &Serial) -> Result<Option<Revocation>, CaError> {
        let revoked = self.cf(cf::REVOKED)?;
        self.db
            .get_pinned_cf(revoked, serial.as_bytes())
            .db()?
            .map(|v| record::decode_revocation(&v))
            .transpose()
    }

    /// Every certificate that renewed this one, oldest first. Each renewal is keyed by the old
    /// serial and the renewal's issuance seq; a store written before kept one entry per old
    /// serial under the bare serial (its newest renewal), which sorts first and is read as
    /// the first element.
    pub fn renewed_by(&self, serial: &Serial) -> Result<Vec<Serial>, CaError> {
        let renewals = self.cf(cf::RENEWALS)?;
        let mut it = self.db.raw_iterator_cf(renewals);
        it.seek(serial.as_bytes());
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(serial.as_bytes()) {
                break;
            }
            let renewal = Serial::from_bytes(v).ok_or_else(|| {
                CaError::Storage(format!("a renewal of {serial} holds a malformed serial"))
            })?;
            out.push(renewal);
            it.next();
        }
        it.status().db()?;
        Ok(out)
    }

    /// Calls `f` for every revoked or held certificate, in serial order (the CRL's source: a
    /// scan of the small `revoked` family, never of all certificates).
    pub fn for_each_revocation(
        &self,
        mut f: impl FnMut(Serial, Revocation) -> Result<(), CaError>,
    ) -> Result<(), CaError> {
        let revoked = self.cf(cf::REVOKED)?;
        let mut it = self.db.raw_iterator_cf(revoked);
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let serial = Serial::from_bytes(k)
                .ok_or_else(|| CaError::Storage("malformed serial in revoked".into()))?;
            f(serial, record::decode_revocation(v)?)?;
            it.next();
        }
        it.status().db()?;
        Ok(())
    }

    /// The serials whose revocation state changed after change sequence `after` (exclusive)
    /// up to `until` (inclusive), each once.
    pub fn changed_since(&self, after: u64, until: u64) -> Result<Vec<Serial>, CaError> {
        let changes = self.cf(cf::CRL_CHANGES)?;
        let mut it = self.db.raw_iterator_cf(changes);
        it.seek((after + 1).to_be_bytes());
        let mut seen = std::collections::BTreeSet::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let seq = <[u8; 8]>::try_from(k)
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            if seq > until {
                break;
            }
            if let Some(serial) = Serial::from_bytes(v) {
                seen.insert(serial);
            }
            it.next();
        }
        it.status().db()?;
        Ok(seen.into_iter().collect())
    }

    /// Number of stored certificates, walking the serial index (for tests and tools).
    pub fn count_certificates(&self) -> Result<u64, CaError> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf::SERIALS)?);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status().db()?;
        Ok(n)
    }

    /// Reads every entry of every column family with block checksums verified (bypassing the
    /// cache), so that a damaged table file is found before the CA serves from it. Returns
    /// the number of entries read.
    pub fn verify_checksums(&self) -> Result<u64, CaError> {
        let mut entries = 0u64;
        for name in cf::ALL {
            let mut opts = ReadOptions::default();
            opts.set_verify_checksums(true);
            opts.fill_cache(false);
            let mut it = self.db.raw_iterator_cf_opt(self.cf(name)?, opts);
            it.seek_to_first();
            while it.valid() {
                entries += 1;
                it.next();
            }
            it.status().map_err(|e| {
                CaError::Storage(format!(
                    "the store at {} is damaged (column family {name}: {}); do not serve from \
                     it: restore the data directory from a backup, then run `ca-server audit \
                     verify`",
                    self.db.path().display(),
                    e.into_string()
                ))
            })?;
        }
        Ok(entries)
    }

    /// Writes a consistent copy of the store, as of now, to the new directory `dir` (a RocksDB
    /// checkpoint): the memtables are flushed, then the table files are hard-linked when `dir`
    /// is on the store's filesystem and copied otherwise. Writes go on meanwhile; the copy
    /// holds every write acknowledged before the call.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), CaError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db).db()?;
        checkpoint.create_checkpoint(dir).db()
    }

    /// Flushes memtables to SST files (on shutdown, so that the next start replays no WAL).
    pub fn flush(&self) -> Result<(), CaError> {
        for name in cf::ALL {
            self.db.flush_cf(self.cf(name)?).db()?;
        }
        Ok(())
    }
}

/// Reads an issuance sequence number stored as 8 big-endian bytes.
fn decode_seq(bytes: &[u8]) -> Result<u64, CaError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| CaError::Storage("malformed issuance sequence number".into()))
}

/// Makes every column family's flushes put the blocks they write into the block cache
/// (RocksDB's `BlockBasedTableOptions::prepopulate_block_cache = kFlushOnly`). The Rust
/// bindings expose no setter for it, so it is set as a mutable option once the store is open.
fn prepopulate_block_cache(db: &DB, names: &[String]) -> Result<(), CaError> {
    for name in names {
        let handle = db
            .cf_handle(name)
            .ok_or_else(|| CaError::Storage(format!("column family {name} is missing")))?;
        db.set_options_cf(
            &handle,
            &[(
                "block_based_table_factory",
                "{prepopulate_block_cache=kFlushOnly;}",
            )],
        )
        .map_err(|e| CaError::Storage(format!("configuring the block cache of {name}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_recorded_and_newer_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(!store.has_tokens().unwrap());
            let meta = store.cf(cf::META).unwrap();
            let mut batch = WriteBatch::default();
            batch.put_cf(meta, META_SCHEMA, (SCHEMA_VERSION + 1).to_be_bytes());
            store.write(batch).unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    /// The WAL syncs RocksDB counted (`Cumulative WAL: N writes, M syncs` of its DB stats).
    fn wal_syncs(store: &Store) -> u64 {
        let stats = store.db.property_value("rocksdb.dbstats").unwrap().unwrap();
        let line = stats
            .lines()
            .find(|l| l.starts_with("Cumulative WAL:"))
            .expect("RocksDB's DB stats have a WAL line");
        let syncs = line.split(" syncs").next().unwrap();
        let syncs = syncs.rsplit(' ').next().unwrap().replace(['K', ','], "");
        syncs.parse().expect("the WAL line counts syncs")
    }

    /// Sends the writer an audit event to record and answers its outcome.
    fn record_event(writer: &writer::StoreWriter) -> Result<crate::audit::AuditHead, CaError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let event = crate::audit::AuditEvent::new(
            0,
            "test",
            crate::audit::AuditAction::CrlGenerated,
            "x".to_string(),
        );
        writer
            .sender()
            .send(writer::WriteOp::Record(event, Vec::new(), reply))
            .unwrap();
        answer.blocking_recv().unwrap()
    }

    /// Nothing is acknowledged before it is on disk: every write of the store, the writer's
    /// group commits included, syncs the WAL (surviving a power loss, not only a killed
    /// process, which the page cache would outlive anyway).
    #[test]
    fn every_write_syncs_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let before = wal_syncs(&store);
        for i in 0..3u8 {
            let mut batch = WriteBatch::default();
            batch.put_cf(store.cf(cf::META).unwrap(), [b'x', i], [i]);
            store.write(batch).unwrap();
        }
        assert_eq!(wal_syncs(&store) - before, 3, "one WAL sync per write");
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new().unwrap());
        let writer = writer::StoreWriter::start(store.clone(), 16, metrics).unwrap();
        let before = wal_syncs(&store);
        record_event(&writer).unwrap();
        assert!(
            wal_syncs(&store) > before,
            "the writer's commit synced the WAL before answering"
        );
        writer.join();
    }

    /// Below the free-space reserve the writer's group is refused before it writes, with a
    /// retryable `storage_unavailable`, leaving the audit head where it was; writes resume
    /// once the reserve is met.
    #[test]
    fn below_the_reserve_writes_are_refused_unwritten_and_resume_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new().unwrap());
        let writer = writer::StoreWriter::start(store.clone(), 16, metrics).unwrap();
        let record = || record_event(&writer);
        let head = record().unwrap();
        store.set_min_free_bytes(u64::MAX);
        let err = record().unwrap_err();
        assert_eq!(err.code(), "storage_unavailable", "{err}");
        assert!(err.to_string().contains("min_free_bytes"), "{err}");
        assert_eq!(
            Store::writable(&store).unwrap_err().code(),
            "storage_unavailable"
        );
        assert_eq!(store.audit_head().unwrap(), head, "nothing was written");
        store.set_min_free_bytes(0);
        assert!(Store::writable(&store).is_ok());
        assert_eq!(record().unwrap().seq, head.seq + 1);
        writer.join();
    }

    #[test]
    fn a_second_open_says_the_store_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
