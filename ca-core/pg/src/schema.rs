//! The schema and its versioned migrations.
//!
//! Records keep the encodings of the embedded store (`record` columns, ca-core's versioned
//! codec) so that both stores read them with the same code; the columns beside them are what
//! the database itself must see: keys, uniqueness, and the orders that queries walk.
//!
//! | table          | key                      | holds |
//! |----------------|--------------------------|-------|
//! | `ca_schema`    | –                        | the schema version (one row) |
//! | `ca_head`      | –                        | the counters and audit head (one row, locked by each writer group), and the SHA-256 of the CA certificate the database belongs to |
//! | `certificates` | `seq`; `serial` unique   | [`CertRecord`](ca_core::store::CertRecord), notAfter, issuedAt |
//! | `idempotency`  | SHA-256(token) ‖ request_id | serial and request digest |
//! | `names`        | tag ‖ name ‖ 0 ‖ seq     | the subject and SAN index of the auditor's queries |
//! | `renewals`     | old serial, renewal's seq | the renewal's serial |
//! | `revocations`  | serial                   | the revocation or hold |
//! | `crl_changes`  | change seq               | the serial whose revocation state changed |
//! | `blocked_keys` | SHA-256(SPKI)            | the serial whose keyCompromise revocation blocked it |
//! | `tokens`       | SHA-256(token)           | the token record |
//! | `token_names`  | name                     | SHA-256 of the token that has or had it |
//! | `enrollments`  | id                       | the enrollment record |
//! | `audit_log`    | seq                      | the hash-chained entry |
//! | `audit_events` | serial, seq              | which entries concern a serial |
//! | `checkpoints`  | seq                      | the signed checkpoint |
//! | `crls`         | –                        | the newest complete and delta CRLs, served by every node |
//! | `acme_objects` | kind, id                 | an ACME object's version and the front end's value ([`ca_core::store::acme`]) |
//! | `acme_claims`  | key                      | the id of the ACME object that holds a unique key |
//! | `acme_links`   | key                      | the members of the ACME front end's lists, listed by prefix |
//!
//! Version 2 added the three `acme_` tables.

use ca_core::CaError;
use tokio_postgres::GenericClient;

use crate::{col, db_error};

/// The schema this build writes. A newer one is refused; an older one is migrated by
/// `ca-server init --store-url`.
pub const SCHEMA_VERSION: i32 = 2;

/// Each version's statements, in order; `MIGRATIONS[v - 1]` brings version `v - 1` to `v`.
const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE ca_head (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    cert_seq       bigint NOT NULL,
    change_seq     bigint NOT NULL,
    crl_number     bigint NOT NULL,
    audit_seq      bigint NOT NULL,
    audit_hash     bytea  NOT NULL,
    last_issued_at bigint NOT NULL,
    cursor_key     bytea  NOT NULL,
    ca_sha256      bytea
);
CREATE TABLE certificates (
    seq       bigint PRIMARY KEY,
    serial    bytea  NOT NULL UNIQUE,
    not_after bigint NOT NULL,
    issued_at bigint NOT NULL,
    record    bytea  NOT NULL
);
CREATE INDEX certificates_by_expiry ON certificates (not_after, serial);
CREATE TABLE idempotency (
    key          bytea PRIMARY KEY,
    serial       bytea NOT NULL,
    request_hash bytea NOT NULL
);
CREATE TABLE names (key bytea PRIMARY KEY);
CREATE TABLE renewals (
    old_serial bytea  NOT NULL,
    seq        bigint NOT NULL,
    serial     bytea  NOT NULL,
    PRIMARY KEY (old_serial, seq)
);
CREATE TABLE revocations (serial bytea PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE crl_changes (change_seq bigint PRIMARY KEY, serial bytea NOT NULL);
CREATE TABLE blocked_keys (spki_sha256 bytea PRIMARY KEY, serial bytea NOT NULL);
CREATE TABLE tokens (hash bytea PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE token_names (name text PRIMARY KEY, hash bytea NOT NULL);
CREATE TABLE enrollments (id bytea PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE audit_log (seq bigint PRIMARY KEY, entry bytea NOT NULL);
CREATE TABLE audit_events (
    serial bytea  NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (serial, seq)
);
CREATE TABLE checkpoints (seq bigint PRIMARY KEY, checkpoint bytea NOT NULL);
CREATE TABLE crls (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    number      bigint NOT NULL,
    this_update bigint NOT NULL,
    change_seq  bigint NOT NULL,
    entries     bigint NOT NULL,
    full_der    bytea  NOT NULL,
    delta_der   bytea  NOT NULL
);
"#,
    r#"
CREATE TABLE acme_objects (
    kind    smallint NOT NULL,
    id      bytea    NOT NULL,
    version bigint   NOT NULL,
    value   bytea    NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE acme_claims (key bytea PRIMARY KEY, id bytea NOT NULL);
CREATE TABLE acme_links (key bytea PRIMARY KEY);
CREATE TABLE acme_nonces (id bytea PRIMARY KEY, expires bigint NOT NULL);
CREATE INDEX acme_nonces_expires ON acme_nonces (expires);
"#,
];

/// The version the database holds (0 when it has no schema).
async fn version(client: &impl GenericClient) -> Result<i32, CaError> {
    let row = client
        .query_one("SELECT to_regclass('ca_schema') IS NOT NULL", &[])
        .await
        .map_err(db_error)?;
    let exists: bool = col(&row, 0)?;
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt("SELECT version FROM ca_schema", &[])
        .await
        .map_err(db_error)?;
    row.map_or(Ok(0), |r| col(&r, 0))
}

fn newer(version: i32) -> CaError {
    CaError::Storage(format!(
        "the database has schema version {version}, newer than this build's {SCHEMA_VERSION}; \
         run a newer ca-server"
    ))
}

/// Refuses a database without this build's schema.
pub(crate) async fn check(client: &impl GenericClient) -> Result<(), CaError> {
    match version(client).await? {
        SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(newer(v)),
        v => Err(CaError::Storage(format!(
            "the database has schema version {v}, older than this build's {SCHEMA_VERSION}: \
             run `ca-server init --store-url` with this build to migrate it"
        ))),
    }
}

/// Creates the schema or migrates it to [`SCHEMA_VERSION`], in one transaction that holds a
/// lock on `ca_schema` (two nodes migrating at once take turns).
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), CaError> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ca_schema (version integer NOT NULL);
         LOCK TABLE ca_schema IN EXCLUSIVE MODE;",
    )
    .await
    .map_err(db_error)?;
    let from = version(&tx).await?;
    if from > SCHEMA_VERSION {
        return Err(newer(from));
    }
    for (i, statements) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
        tx.batch_execute(statements).await.map_err(db_error)?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    if from == 0 {
        let mut cursor_key = zeroize::Zeroizing::new([0u8; ca_core::store::query::CURSOR_KEY_LEN]);
        keys::SecureRandom::fill(&keys::SystemRandom::new(), cursor_key.as_mut())?;
        tx.execute(
            "INSERT INTO ca_head VALUES (true, 0, 0, 0, 0, $1, 0, $2, NULL)",
            &[
                &ca_core::audit::AuditHead::GENESIS.hash.as_slice(),
                &cursor_key.as_slice(),
            ],
        )
        .await
        .map_err(db_error)?;
        tx.execute("INSERT INTO ca_schema VALUES ($1)", &[&SCHEMA_VERSION])
            .await
            .map_err(db_error)?;
    } else {
        tx.execute("UPDATE ca_schema SET version = $1", &[&SCHEMA_VERSION])
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}
