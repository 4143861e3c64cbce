//! PostgreSQL's side of the store writer ([`GroupBackend`]): each group is one transaction on
//! the writer's own connection. It starts by locking the one row of `ca_head`, so that the
//! groups of every node sharing the database run one after another and each reads what all
//! earlier ones committed; it ends with multi-row inserts (`UNNEST` of arrays) per table, the
//! counters written back to `ca_head`, and `COMMIT` with synchronous commit.
//!
//! Every statement is prepared once per connection, and the statements of a step are sent
//! together without waiting for each answer (the protocol's pipelining): `BEGIN` and the lock
//! of the head are one round trip, and every insert, the head's update and `COMMIT` another.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use ca_core::audit::AuditHead;
use ca_core::revocation::Revocation;
use ca_core::store::query::names_key;
use ca_core::store::record::{decode_revocation, encode_revocation};
use ca_core::store::writer::{Change, Counters, GroupBackend};
use ca_core::store::{AcmeKind, EnrollmentRecord, IdempotencyKey, IdempotencyRecord, TokenRecord};
use ca_core::{CaError, Serial};
use futures_util::TryFutureExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::{col, db_error, PgStore};

/// A change laid out as the rows it writes.
#[derive(Debug)]
pub(crate) enum PgWrite {
    Certificate {
        seq: i64,
        serial: Vec<u8>,
        not_after: i64,
        issued_at: i64,
        record: Vec<u8>,
    },
    Idempotency {
        key: Vec<u8>,
        serial: Vec<u8>,
        request_hash: Vec<u8>,
    },
    Name(Vec<u8>),
    Renewal {
        old: Vec<u8>,
        seq: i64,
        serial: Vec<u8>,
    },
    Revocation {
        serial: Vec<u8>,
        record: Option<Vec<u8>>,
        change_seq: i64,
    },
    BlockedKey {
        key: Vec<u8>,
        serial: Vec<u8>,
    },
    Token {
        hash: Vec<u8>,
        record: Vec<u8>,
    },
    TokenName {
        name: String,
        hash: Vec<u8>,
    },
    Enrollment {
        id: Vec<u8>,
        record: Vec<u8>,
    },
    Audit {
        seq: i64,
        entry: Vec<u8>,
        serials: Vec<Vec<u8>>,
    },
    Checkpoint {
        seq: i64,
        checkpoint: Vec<u8>,
    },
    AcmeObject {
        kind: AcmeKind,
        id: Vec<u8>,
        version: i64,
        value: Vec<u8>,
    },
    AcmeClaim {
        key: Vec<u8>,
        id: Option<Vec<u8>>,
    },
    AcmeLink {
        key: Vec<u8>,
        linked: bool,
    },
}

/// An ACME kind as `acme_objects.kind` holds it.
pub(crate) fn sql_kind(kind: AcmeKind) -> i16 {
    i16::from(kind as u8)
}

/// A sequence number as PostgreSQL's `bigint`.
pub(crate) fn sql_seq(n: u64) -> Result<i64, CaError> {
    i64::try_from(n).map_err(|_| CaError::Storage(format!("sequence number {n} out of range")))
}

/// A `bigint` read back as a sequence number.
pub(crate) fn seq_of(n: i64) -> Result<u64, CaError> {
    u64::try_from(n).map_err(|_| CaError::Storage(format!("negative sequence number {n}")))
}

/// The writer's connection and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    prepared: Mutex<HashMap<&'static str, Statement>>,
}

impl Conn {
    /// `sql` prepared on this connection: by the server the first time, from memory after.
    async fn statement(&self, sql: &'static str) -> Result<Statement, CaError> {
        let known = self
            .prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sql)
            .cloned();
        if let Some(statement) = known {
            return Ok(statement);
        }
        let statement = self.client.prepare(sql).await.map_err(db_error)?;
        self.prepared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A statement sent in a pipeline, its answer reduced to success or the database's error.
type Call<'a> = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>>;

/// The writer's groups on a [`PgStore`]: a connection of their own, opened again after one
/// failed.
pub(crate) struct PgGroups {
    store: PgStore,
    client: Option<Arc<Conn>>,
}

impl PgGroups {
    pub(crate) fn new(store: PgStore) -> Self {
        PgGroups {
            store,
            client: None,
        }
    }

    fn client(&mut self) -> Result<Arc<Conn>, CaError> {
        match &self.client {
            Some(c) if !c.client.is_closed() => Ok(c.clone()),
            _ => {
                let client = Arc::new(Conn {
                    client: self.store.dedicated()?,
                    prepared: Mutex::default(),
                });
                self.client = Some(client.clone());
                Ok(client)
            }
        }
    }

    /// Runs `f` on the group's connection; a failure leaves the connection behind (the
    /// transaction is lost with it, and the next group opens a new one).
    fn on_client<T: Send + 'static, Fut>(
        &mut self,
        f: impl FnOnce(Arc<Conn>) -> Fut,
    ) -> Result<T, CaError>
    where
        Fut: std::future::Future<Output = Result<T, CaError>> + Send + 'static,
    {
        let client = self.client()?;
        let result = self.store.block_on(f(client));
        if result.is_err() {
            self.client = None;
        }
        result
    }

    /// Looks up one value by key inside the group's transaction.
    fn one<T: Send + 'static>(
        &mut self,
        sql: &'static str,
        key: Vec<u8>,
        decode: impl FnOnce(tokio_postgres::Row) -> Result<T, CaError> + Send + 'static,
    ) -> Result<Option<T>, CaError> {
        self.on_client(move |c| async move {
            let statement = c.statement(sql).await?;
            match c
                .client
                .query_opt(&statement, &[&key])
                .await
                .map_err(db_error)?
            {
                Some(row) => decode(row).map(Some),
                None => Ok(None),
            }
        })
    }
}

/// The counters as `ca_head`'s columns hold them.
pub(crate) fn counters_of(row: &tokio_postgres::Row) -> Result<Counters, CaError> {
    let hash: Vec<u8> = col(row, "audit_hash")?;
    Ok(Counters {
        cert_seq: seq_of(col(row, "cert_seq")?)?,
        change_seq: seq_of(col(row, "change_seq")?)?,
        crl_number: seq_of(col(row, "crl_number")?)?,
        audit: AuditHead {
            seq: seq_of(col(row, "audit_seq")?)?,
            hash: hash
                .try_into()
                .map_err(|_| CaError::Storage("malformed audit head in ca_head".into()))?,
        },
        last_issued_at: col(row, "last_issued_at")?,
    })
}

/// The columns of `ca_head` that [`counters_of`] reads, as a literal for `concat!`.
macro_rules! head_columns {
    () => {
        "cert_seq, change_seq, crl_number, audit_seq, audit_hash, last_issued_at"
    };
}

/// The columns of `ca_head` that [`counters_of`] reads.
pub(crate) const HEAD_COLUMNS: &str = head_columns!();

/// A group's first statement after `BEGIN`: the lock that serializes the groups of every node.
const LOCK_HEAD: &str = concat!("SELECT ", head_columns!(), " FROM ca_head FOR UPDATE");

/// A group's last statement before `COMMIT`: the counters it moved.
const UPDATE_HEAD: &str = "UPDATE ca_head SET cert_seq = $1, change_seq = $2, crl_number = $3, \
                           audit_seq = $4, audit_hash = $5, last_issued_at = $6";

impl GroupBackend for PgGroups {
    type Write = PgWrite;

    fn begin(&mut self) -> Result<Counters, CaError> {
        self.on_client(|c| async move {
            let lock_head = c.statement(LOCK_HEAD).await?;
            let (begun, row) = futures_util::future::join(
                c.client
                    .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED"),
                c.client.query_one(&lock_head, &[]),
            )
            .await;
            begun.map_err(db_error)?;
            counters_of(&row.map_err(db_error)?)
        })
    }

    fn stored_serials(&mut self, serials: &mut [Serial]) -> Result<HashSet<Serial>, CaError> {
        if serials.is_empty() {
            return Ok(HashSet::new());
        }
        let keys: Vec<Vec<u8>> = serials.iter().map(|s| s.as_bytes().to_vec()).collect();
        self.on_client(move |c| async move {
            let statement = c
                .statement("SELECT serial FROM certificates WHERE serial = ANY($1)")
                .await?;
            let rows = c
                .client
                .query(&statement, &[&keys])
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|r| serial_of(col::<&[u8], _>(r, 0)?))
                .collect()
        })
    }

    fn idempotency(&mut self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, CaError> {
        self.one(
            "SELECT serial, request_hash FROM idempotency WHERE key = $1",
            key.as_bytes().to_vec(),
            |row| idempotency_of(&row),
        )
    }

    fn token_name_holder(&mut self, name: &str) -> Result<Option<[u8; 32]>, CaError> {
        let name = name.to_string();
        self.on_client(move |c| async move {
            let statement = c
                .statement("SELECT hash FROM token_names WHERE name = $1")
                .await?;
            let row = c
                .client
                .query_opt(&statement, &[&name])
                .await
                .map_err(db_error)?;
            row.map(|r| hash_of(col(&r, 0)?)).transpose()
        })
    }

    fn token(&mut self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, CaError> {
        self.one(
            "SELECT record FROM tokens WHERE hash = $1",
            hash.to_vec(),
            |row| TokenRecord::decode(col(&row, 0)?),
        )
    }

    fn enrollment(&mut self, id: &[u8; 16]) -> Result<Option<EnrollmentRecord>, CaError> {
        self.one(
            "SELECT record FROM enrollments WHERE id = $1",
            id.to_vec(),
            |row| EnrollmentRecord::decode(col(&row, 0)?),
        )
    }

    fn revocation(&mut self, serial: &Serial) -> Result<Option<Revocation>, CaError> {
        self.one(
            "SELECT record FROM revocations WHERE serial = $1",
            serial.as_bytes().to_vec(),
            |row| decode_revocation(col(&row, 0)?),
        )
    }

    fn not_after(&mut self, serial: &Serial) -> Result<Option<i64>, CaError> {
        self.one(
            "SELECT not_after FROM certificates WHERE serial = $1",
            serial.as_bytes().to_vec(),
            |row| col(&row, 0),
        )
    }

    fn acme_version(&mut self, kind: AcmeKind, id: &[u8]) -> Result<Option<u64>, CaError> {
        let (kind, id) = (sql_kind(kind), id.to_vec());
        self.on_client(move |c| async move {
            let statement = c
                .statement("SELECT version FROM acme_objects WHERE kind = $1 AND id = $2")
                .await?;
            let row = c
                .client
                .query_opt(&statement, &[&kind, &id])
                .await
                .map_err(db_error)?;
            row.map(|r| seq_of(col(&r, 0)?)).transpose()
        })
    }

    fn acme_claim_holder(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        self.one(
            "SELECT id FROM acme_claims WHERE key = $1",
            key.to_vec(),
            |row| col(&row, 0),
        )
    }

    fn stage(&self, change: Change<'_>, writes: &mut Vec<PgWrite>) -> Result<(), CaError> {
        writes.push(match change {
            Change::Certificate(record) => PgWrite::Certificate {
                seq: sql_seq(record.seq)?,
                serial: record.serial.as_bytes().to_vec(),
                not_after: record.not_after,
                issued_at: record.issued_at,
                record: record.encode()?,
            },
            Change::Idempotency(key, entry) => PgWrite::Idempotency {
                key: key.as_bytes().to_vec(),
                serial: entry.serial.as_bytes().to_vec(),
                request_hash: entry.request_hash.to_vec(),
            },
            Change::Name(prefix, seq) => PgWrite::Name(names_key(prefix, seq)),
            Change::Renewal { old, seq, serial } => PgWrite::Renewal {
                old: old.as_bytes().to_vec(),
                seq: sql_seq(seq)?,
                serial: serial.as_bytes().to_vec(),
            },
            Change::Revocation {
                serial,
                state,
                change_seq,
            } => PgWrite::Revocation {
                serial: serial.as_bytes().to_vec(),
                record: state.as_ref().map(encode_revocation).transpose()?,
                change_seq: sql_seq(change_seq)?,
            },
            Change::BlockedKey(key, serial) => PgWrite::BlockedKey {
                key: key.to_vec(),
                serial: serial.as_bytes().to_vec(),
            },
            Change::Token(hash, record) => PgWrite::Token {
                hash: hash.to_vec(),
                record: record.encode()?,
            },
            Change::TokenName(name, hash) => PgWrite::TokenName {
                name: name.to_string(),
                hash: hash.to_vec(),
            },
            Change::Enrollment(id, record) => PgWrite::Enrollment {
                id: id.to_vec(),
                record: record.encode()?,
            },
            Change::Audit(entry, serials) => PgWrite::Audit {
                seq: sql_seq(entry.seq)?,
                entry: entry.encode()?,
                serials: serials.iter().map(|s| s.as_bytes().to_vec()).collect(),
            },
            Change::Checkpoint(cp) => PgWrite::Checkpoint {
                seq: sql_seq(cp.head.seq)?,
                checkpoint: cp.encode()?,
            },
            Change::AcmeObject {
                kind,
                id,
                version,
                value,
            } => PgWrite::AcmeObject {
                kind,
                id: id.to_vec(),
                version: sql_seq(version)?,
                value: value.to_vec(),
            },
            Change::AcmeClaim { key, id } => PgWrite::AcmeClaim {
                key: key.to_vec(),
                id: id.map(<[u8]>::to_vec),
            },
            Change::AcmeLink { key, linked } => PgWrite::AcmeLink {
                key: key.to_vec(),
                linked,
            },
        });
        Ok(())
    }

    fn commit(&mut self, writes: Vec<PgWrite>, counters: &Counters) -> Result<(), CaError> {
        if writes.is_empty() {
            return self.on_client(|c| async move {
                c.client.batch_execute("ROLLBACK").await.map_err(db_error)
            });
        }
        let rows = Rows::of(writes);
        let tokens = rows.tokens.keys.clone();
        let head = [
            sql_seq(counters.cert_seq)?,
            sql_seq(counters.change_seq)?,
            sql_seq(counters.crl_number)?,
            sql_seq(counters.audit.seq)?,
        ];
        let audit_hash = counters.audit.hash.to_vec();
        let last_issued_at = counters.last_issued_at;
        self.on_client(move |c| async move {
            let head: [&(dyn ToSql + Sync); 6] = [
                &head[0],
                &head[1],
                &head[2],
                &head[3],
                &audit_hash,
                &last_issued_at,
            ];
            rows.commit(&c, &head).await
        })?;
        // This node's cache at once; the others' through the feed.
        if !tokens.is_empty() {
            self.store.inner.feed.tokens.invalidate(Some(&tokens));
        }
        Ok(())
    }
}

/// A group's writes as one array per column, for `INSERT ... SELECT * FROM UNNEST(...)`.
/// Rows that a group may write twice (a token, an enrollment, a revocation changed by two of
/// its operations) keep the last value.
/// A column of `bytea` values.
type Blobs = Vec<Vec<u8>>;
/// A column of `bigint` values.
type Ints = Vec<i64>;

#[derive(Default)]
struct Rows {
    certs: (Ints, Blobs, Ints, Ints, Blobs),
    idempotency: (Blobs, Blobs, Blobs),
    names: Blobs,
    renewals: (Blobs, Ints, Blobs),
    revocations: Last<Option<Vec<u8>>>,
    crl_changes: (Ints, Blobs),
    blocked_keys: Last<Vec<u8>>,
    tokens: Last<Vec<u8>>,
    token_names: (Vec<String>, Blobs),
    enrollments: Last<Vec<u8>>,
    audit: (Ints, Blobs),
    events: (Blobs, Ints),
    checkpoints: (Ints, Blobs),
    /// ACME objects by kind byte ‖ id: kind, id, version, value.
    acme_objects: Last<(i16, Vec<u8>, i64, Vec<u8>)>,
    /// ACME claims by key: the holder (`None`: released).
    acme_claims: Last<Option<Vec<u8>>>,
    /// ACME links by key: whether present.
    acme_links: Last<bool>,
}

/// The last value written under each key, in the order keys were first written.
struct Last<V> {
    keys: Vec<Vec<u8>>,
    values: std::collections::HashMap<Vec<u8>, V>,
}

impl<V> Default for Last<V> {
    fn default() -> Self {
        Last {
            keys: Vec::new(),
            values: std::collections::HashMap::new(),
        }
    }
}

impl<V> Last<V> {
    fn put(&mut self, key: Vec<u8>, value: V) {
        if self.values.insert(key.clone(), value).is_none() {
            self.keys.push(key);
        }
    }

    fn into_columns(mut self) -> (Vec<Vec<u8>>, Vec<V>) {
        let values = self
            .keys
            .iter()
            .filter_map(|k| self.values.remove(k))
            .collect();
        (self.keys, values)
    }
}

impl Rows {
    fn of(writes: Vec<PgWrite>) -> Rows {
        let mut r = Rows::default();
        for w in writes {
            match w {
                PgWrite::Certificate {
                    seq,
                    serial,
                    not_after,
                    issued_at,
                    record,
                } => {
                    r.certs.0.push(seq);
                    r.certs.1.push(serial);
                    r.certs.2.push(not_after);
                    r.certs.3.push(issued_at);
                    r.certs.4.push(record);
                }
                PgWrite::Idempotency {
                    key,
                    serial,
                    request_hash,
                } => {
                    r.idempotency.0.push(key);
                    r.idempotency.1.push(serial);
                    r.idempotency.2.push(request_hash);
                }
                PgWrite::Name(key) => r.names.push(key),
                PgWrite::Renewal { old, seq, serial } => {
                    r.renewals.0.push(old);
                    r.renewals.1.push(seq);
                    r.renewals.2.push(serial);
                }
                PgWrite::Revocation {
                    serial,
                    record,
                    change_seq,
                } => {
                    r.crl_changes.0.push(change_seq);
                    r.crl_changes.1.push(serial.clone());
                    r.revocations.put(serial, record);
                }
                PgWrite::BlockedKey { key, serial } => r.blocked_keys.put(key, serial),
                PgWrite::Token { hash, record } => r.tokens.put(hash, record),
                PgWrite::TokenName { name, hash } => {
                    r.token_names.0.push(name);
                    r.token_names.1.push(hash);
                }
                PgWrite::Enrollment { id, record } => r.enrollments.put(id, record),
                PgWrite::Audit {
                    seq,
                    entry,
                    serials,
                } => {
                    r.audit.0.push(seq);
                    r.audit.1.push(entry);
                    for serial in serials {
                        r.events.0.push(serial);
                        r.events.1.push(seq);
                    }
                }
                PgWrite::Checkpoint { seq, checkpoint } => {
                    r.checkpoints.0.push(seq);
                    r.checkpoints.1.push(checkpoint);
                }
                PgWrite::AcmeObject {
                    kind,
                    id,
                    version,
                    value,
                } => {
                    let mut key = Vec::with_capacity(1 + id.len());
                    key.push(kind as u8);
                    key.extend_from_slice(&id);
                    r.acme_objects
                        .put(key, (sql_kind(kind), id, version, value));
                }
                PgWrite::AcmeClaim { key, id } => r.acme_claims.put(key, id),
                PgWrite::AcmeLink { key, linked } => r.acme_links.put(key, linked),
            }
        }
        r
    }

    /// Sends every insert of the group, the notices, the update of `ca_head` to `head` and
    /// `COMMIT`, pipelined on one connection. A failed statement aborts the transaction (the
    /// `COMMIT` behind it then rolls back) and is the error reported.
    async fn commit(self, c: &Conn, head: &[&(dyn ToSql + Sync); 6]) -> Result<(), CaError> {
        let (revoked, states) = self.revocations.into_columns();
        let (mut upserted, mut records, mut released) = (Vec::new(), Vec::new(), Vec::new());
        for (serial, state) in revoked.into_iter().zip(states) {
            match state {
                Some(record) => {
                    upserted.push(serial);
                    records.push(record);
                }
                None => released.push(serial),
            }
        }
        let (blocked, blocked_by) = self.blocked_keys.into_columns();
        let (token_hashes, token_records) = self.tokens.into_columns();
        let tokens = (!token_hashes.is_empty()).then(|| crate::feed::payload(&token_hashes));
        let (enrollment_ids, enrollment_records) = self.enrollments.into_columns();
        let (mut acme_kinds, mut acme_ids, mut acme_versions, mut acme_values) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (kind, id, version, value) in self.acme_objects.into_columns().1 {
            acme_kinds.push(kind);
            acme_ids.push(id);
            acme_versions.push(version);
            acme_values.push(value);
        }
        let (mut claimed, mut claimed_by, mut released_claims) =
            (Vec::new(), Vec::new(), Vec::new());
        let (claim_keys, holders) = self.acme_claims.into_columns();
        for (key, holder) in claim_keys.into_iter().zip(holders) {
            match holder {
                Some(id) => {
                    claimed.push(key);
                    claimed_by.push(id);
                }
                None => released_claims.push(key),
            }
        }
        let (mut linked, mut unlinked) = (Vec::new(), Vec::new());
        let (link_keys, present) = self.acme_links.into_columns();
        for (key, present) in link_keys.into_iter().zip(present) {
            if present {
                linked.push(key);
            } else {
                unlinked.push(key);
            }
        }
        let statements: Vec<(&'static str, Vec<&(dyn ToSql + Sync)>, bool)> = vec![
            (
                "INSERT INTO certificates (seq, serial, not_after, issued_at, record) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bigint[], $4::bigint[], \
                 $5::bytea[])",
                vec![
                    &self.certs.0,
                    &self.certs.1,
                    &self.certs.2,
                    &self.certs.3,
                    &self.certs.4,
                ],
                self.certs.0.is_empty(),
            ),
            (
                "INSERT INTO idempotency (key, serial, request_hash) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[])",
                vec![&self.idempotency.0, &self.idempotency.1, &self.idempotency.2],
                self.idempotency.0.is_empty(),
            ),
            (
                "INSERT INTO names (key) SELECT * FROM UNNEST($1::bytea[])",
                vec![&self.names],
                self.names.is_empty(),
            ),
            (
                "INSERT INTO renewals (old_serial, seq, serial) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::bytea[])",
                vec![&self.renewals.0, &self.renewals.1, &self.renewals.2],
                self.renewals.0.is_empty(),
            ),
            (
                "INSERT INTO revocations (serial, record) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (serial) DO UPDATE SET record = EXCLUDED.record",
                vec![&upserted, &records],
                upserted.is_empty(),
            ),
            (
                "DELETE FROM revocations WHERE serial = ANY($1::bytea[])",
                vec![&released],
                released.is_empty(),
            ),
            (
                "INSERT INTO crl_changes (change_seq, serial) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
                vec![&self.crl_changes.0, &self.crl_changes.1],
                self.crl_changes.0.is_empty(),
            ),
            (
                "INSERT INTO blocked_keys (spki_sha256, serial) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (spki_sha256) DO UPDATE SET serial = EXCLUDED.serial",
                vec![&blocked, &blocked_by],
                blocked.is_empty(),
            ),
            (
                "INSERT INTO tokens (hash, record) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (hash) DO UPDATE SET record = EXCLUDED.record",
                vec![&token_hashes, &token_records],
                token_hashes.is_empty(),
            ),
            (
                "INSERT INTO token_names (name, hash) SELECT * FROM UNNEST($1::text[], $2::bytea[])",
                vec![&self.token_names.0, &self.token_names.1],
                self.token_names.0.is_empty(),
            ),
            (
                "INSERT INTO enrollments (id, record) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                vec![&enrollment_ids, &enrollment_records],
                enrollment_ids.is_empty(),
            ),
            (
                "INSERT INTO audit_log (seq, entry) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
                vec![&self.audit.0, &self.audit.1],
                self.audit.0.is_empty(),
            ),
            (
                "INSERT INTO audit_events (serial, seq) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bigint[])",
                vec![&self.events.0, &self.events.1],
                self.events.0.is_empty(),
            ),
            (
                "INSERT INTO checkpoints (seq, checkpoint) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[]) \
                 ON CONFLICT (seq) DO UPDATE SET checkpoint = EXCLUDED.checkpoint",
                vec![&self.checkpoints.0, &self.checkpoints.1],
                self.checkpoints.0.is_empty(),
            ),
            (
                "INSERT INTO acme_objects (kind, id, version, value) \
                 SELECT * FROM UNNEST($1::smallint[], $2::bytea[], $3::bigint[], $4::bytea[]) \
                 ON CONFLICT (kind, id) DO UPDATE \
                 SET version = EXCLUDED.version, value = EXCLUDED.value",
                vec![&acme_kinds, &acme_ids, &acme_versions, &acme_values],
                acme_kinds.is_empty(),
            ),
            (
                "INSERT INTO acme_claims (key, id) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET id = EXCLUDED.id",
                vec![&claimed, &claimed_by],
                claimed.is_empty(),
            ),
            (
                "DELETE FROM acme_claims WHERE key = ANY($1::bytea[])",
                vec![&released_claims],
                released_claims.is_empty(),
            ),
            (
                "INSERT INTO acme_links (key) SELECT * FROM UNNEST($1::bytea[]) \
                 ON CONFLICT (key) DO NOTHING",
                vec![&linked],
                linked.is_empty(),
            ),
            (
                "DELETE FROM acme_links WHERE key = ANY($1::bytea[])",
                vec![&unlinked],
                unlinked.is_empty(),
            ),
        ];
        let revoked =
            (!self.crl_changes.1.is_empty()).then(|| crate::feed::payload(&self.crl_changes.1));
        // Delivered at commit: every node drops what it cached of these serials' status and
        // of these tokens, and blocks these keys.
        let blocked_keys = (!blocked.is_empty()).then(|| crate::feed::payload(&blocked));
        let notices: Vec<(&str, String)> = [
            (crate::feed::REVOCATIONS, revoked),
            (crate::feed::BLOCKED_KEYS, blocked_keys),
            (crate::feed::TOKENS, tokens),
        ]
        .into_iter()
        .filter_map(|(channel, payload)| Some((channel, payload?)))
        .collect();
        let mut prepared = Vec::new();
        for (sql, params, empty) in statements {
            if !empty {
                prepared.push((c.statement(sql).await?, params));
            }
        }
        let notify = c.statement("SELECT pg_notify($1, $2)").await?;
        let update_head = c.statement(UPDATE_HEAD).await?;
        let notice_params: Vec<[&(dyn ToSql + Sync); 2]> = notices
            .iter()
            .map(|(channel, payload)| [channel as &(dyn ToSql + Sync), payload])
            .collect();
        let mut calls: Vec<Call<'_>> = Vec::new();
        for (statement, params) in &prepared {
            calls.push(Box::pin(
                c.client.execute(statement, params.as_slice()).map_ok(drop),
            ));
        }
        for params in &notice_params {
            calls.push(Box::pin(c.client.execute(&notify, params).map_ok(drop)));
        }
        calls.push(Box::pin(c.client.execute(&update_head, head).map_ok(drop)));
        calls.push(Box::pin(c.client.batch_execute("COMMIT")));
        // Polled together, in order, the statements go out pipelined.
        for outcome in futures_util::future::join_all(calls).await {
            outcome.map_err(db_error)?;
        }
        Ok(())
    }
}

pub(crate) fn serial_of(bytes: &[u8]) -> Result<Serial, CaError> {
    Serial::from_bytes(bytes)
        .ok_or_else(|| CaError::Storage("malformed serial in the database".into()))
}

pub(crate) fn hash_of(bytes: &[u8]) -> Result<[u8; 32], CaError> {
    bytes
        .try_into()
        .map_err(|_| CaError::Storage("malformed hash in the database".into()))
}

pub(crate) fn idempotency_of(row: &tokio_postgres::Row) -> Result<IdempotencyRecord, CaError> {
    Ok(IdempotencyRecord {
        serial: serial_of(col(row, 0)?)?,
        request_hash: hash_of(col(row, 1)?)?,
    })
}
