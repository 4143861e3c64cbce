//! The store seam's traits on PostgreSQL: reads from the pool (each sees what was committed
//! when it ran, on any node), writes through the writer's groups ([`PgGroups`]).

use std::sync::Arc;

use ca_core::audit::{AuditEntry, AuditEvent, AuditHead, Checkpoint};
use ca_core::metrics::Metrics;
use ca_core::ocsp::CertStatus;
use ca_core::revocation::Revocation;
use ca_core::store::query::{
    query_page, CertificateQuery, Cursor, CursorKey, Page, CURSOR_KEY_LEN,
};
use ca_core::store::record::decode_revocation;
use ca_core::store::writer::{apply_one, serve, StoreWriter, WriteOp};
use ca_core::store::{
    verify_log, AcmeKind, AcmeObject, AcmeStore, AuditReport, AuditStore, CertRecord,
    CertificateStore, ChangeListener, EnrollmentRecord, EnrollmentStore, IdempotencyKey,
    IdempotencyRecord, RevocationStore, Storage, StoredCrls, TokenRecord, TokenStore,
};
use ca_core::{CaError, Serial};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::groups::{
    counters_of, hash_of, idempotency_of, seq_of, serial_of, sql_kind, sql_seq, PgGroups,
    HEAD_COLUMNS,
};
use crate::{col, db_error, PgStore};

/// The advisory lock (PostgreSQL's `pg_advisory_xact_lock`) that the node building CRLs holds.
const CRL_BUILDER_LOCK: i64 = 0x6361_2d63_726c; // "ca-crl"

/// Rows fetched per round trip by the walks over whole tables.
const PAGE: i64 = 10_000;

impl PgStore {
    /// The rows `sql` answers for `params`; `sql` is prepared once per pooled connection.
    pub(crate) fn rows(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> Result<Vec<Row>, CaError> {
        self.run(move |c| async move {
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let statement = c.prepare_cached(sql).await.map_err(db_error)?;
            c.query(&statement, &refs).await.map_err(db_error)
        })
    }

    /// The one row `sql` answers for `key`, if any.
    fn row(&self, sql: &'static str, key: Vec<u8>) -> Result<Option<Row>, CaError> {
        Ok(self.rows(sql, vec![Box::new(key)])?.into_iter().next())
    }

    fn head(&self) -> Result<Row, CaError> {
        self.run(|c| async move {
            let sql = format!("SELECT {HEAD_COLUMNS} FROM ca_head");
            c.query_one(&sql, &[]).await.map_err(db_error)
        })
    }

    fn audit_entry_head(&self, seq: u64) -> Result<AuditHead, CaError> {
        if seq == 0 {
            return Ok(AuditHead::GENESIS);
        }
        let row = self.rows(
            "SELECT entry FROM audit_log WHERE seq = $1",
            vec![Box::new(sql_seq(seq)?)],
        )?;
        Ok(match row.first() {
            Some(r) => AuditEntry::decode(col(r, 0)?)?.head(),
            None => AuditHead { seq, hash: [0; 32] },
        })
    }
}

impl CertificateStore for PgStore {
    fn certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, CaError> {
        self.row(
            "SELECT record FROM certificates WHERE serial = $1",
            serial.as_bytes().to_vec(),
        )?
        .map(|r| CertRecord::decode(col(&r, 0)?))
        .transpose()
    }
    fn certificate_at(&self, seq: u64) -> Result<Option<CertRecord>, CaError> {
        self.rows(
            "SELECT record FROM certificates WHERE seq = $1",
            vec![Box::new(sql_seq(seq)?)],
        )?
        .first()
        .map(|r| CertRecord::decode(col(r, 0)?))
        .transpose()
    }
    fn contains_serial(&self, serial: &Serial) -> Result<bool, CaError> {
        Ok(self
            .row(
                "SELECT 1 FROM certificates WHERE serial = $1",
                serial.as_bytes().to_vec(),
            )?
            .is_some())
    }
    fn renewed_by(&self, serial: &Serial) -> Result<Vec<Serial>, CaError> {
        self.rows(
            "SELECT serial FROM renewals WHERE old_serial = $1 ORDER BY seq",
            vec![Box::new(serial.as_bytes().to_vec())],
        )?
        .iter()
        .map(|r| serial_of(col(r, 0)?))
        .collect()
    }
    fn idempotency(&self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, CaError> {
        self.row(
            "SELECT serial, request_hash FROM idempotency WHERE key = $1",
            key.as_bytes().to_vec(),
        )?
        .map(|r| idempotency_of(&r))
        .transpose()
    }
    fn last_cert_seq(&self) -> Result<u64, CaError> {
        Ok(counters_of(&self.head()?)?.cert_seq)
    }
    fn count_certificates(&self) -> Result<u64, CaError> {
        let rows = self.rows("SELECT count(*) FROM certificates", Vec::new())?;
        seq_of(rows.first().map_or(Ok(0), |r| col(r, 0))?)
    }
    fn query(
        &self,
        query: &CertificateQuery,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, CaError> {
        query_page(self, query, cursor, limit)
    }
    fn cursor_key(&self) -> Result<CursorKey, CaError> {
        let rows = self.rows("SELECT cursor_key FROM ca_head", Vec::new())?;
        let secret: &[u8] = rows
            .first()
            .ok_or_else(|| CaError::Storage("ca_head is empty".into()))?
            .try_get(0)
            .map_err(db_error)?;
        let secret = zeroize::Zeroizing::new(
            <[u8; CURSOR_KEY_LEN]>::try_from(secret)
                .map_err(|_| CaError::Storage("malformed cursor key in ca_head".into()))?,
        );
        CursorKey::new(&secret)
    }
}

impl RevocationStore for PgStore {
    fn revocation(&self, serial: &Serial) -> Result<Option<Revocation>, CaError> {
        self.row(
            "SELECT record FROM revocations WHERE serial = $1",
            serial.as_bytes().to_vec(),
        )?
        .map(|r| decode_revocation(col(&r, 0)?))
        .transpose()
    }
    fn ocsp_status(&self, serial: &Serial) -> Result<CertStatus, CaError> {
        // One round trip: whether this CA issued it, and its revocation if any.
        let row = self.row(
            "SELECT r.record FROM certificates c LEFT JOIN revocations r USING (serial) \
             WHERE c.serial = $1",
            serial.as_bytes().to_vec(),
        )?;
        match row {
            None => Ok(CertStatus::Unknown),
            Some(r) => {
                let revocation = col::<Option<&[u8]>, _>(&r, 0)?
                    .map(decode_revocation)
                    .transpose()?;
                CertStatus::issued(revocation.as_ref())
            }
        }
    }
    fn for_each_revocation(
        &self,
        f: &mut dyn FnMut(Serial, Revocation) -> Result<(), CaError>,
    ) -> Result<(), CaError> {
        let mut after: Vec<u8> = Vec::new();
        loop {
            let rows = self.rows(
                "SELECT serial, record FROM revocations WHERE serial > $1 \
                 ORDER BY serial LIMIT $2",
                vec![Box::new(after.clone()), Box::new(PAGE)],
            )?;
            for r in &rows {
                f(serial_of(col(r, 0)?)?, decode_revocation(col(r, 1)?)?)?;
            }
            match rows.last() {
                Some(r) if rows.len() as i64 == PAGE => after = col::<Vec<u8>, _>(r, 0)?,
                _ => return Ok(()),
            }
        }
    }
    fn changed_since(&self, after: u64, until: u64) -> Result<Vec<Serial>, CaError> {
        self.rows(
            "SELECT DISTINCT serial FROM crl_changes WHERE change_seq > $1 AND change_seq <= $2 \
             ORDER BY serial",
            vec![
                Box::new(sql_seq(after)?),
                Box::new(sql_seq(until.min(i64::MAX as u64))?),
            ],
        )?
        .iter()
        .map(|r| serial_of(col(r, 0)?))
        .collect()
    }
    fn last_crl_number(&self) -> Result<u64, CaError> {
        Ok(counters_of(&self.head()?)?.crl_number)
    }
    fn blocked_keys(&self) -> Result<Vec<[u8; 32]>, CaError> {
        self.rows("SELECT spki_sha256 FROM blocked_keys", Vec::new())?
            .iter()
            .map(|r| hash_of(col(r, 0)?))
            .collect()
    }
    fn last_change_seq(&self) -> Result<u64, CaError> {
        Ok(counters_of(&self.head()?)?.change_seq)
    }
    fn as_crl_builder(
        &self,
        build: &mut dyn FnMut() -> Result<(), CaError>,
    ) -> Result<(), CaError> {
        // A transaction-level advisory lock: released at COMMIT, or by the server when this
        // node dies while building.
        let pool = self.inner.pool.clone();
        let client = Arc::new(self.block_on(async move {
            let client = pool.get().await.map_err(crate::pool_error)?;
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({CRL_BUILDER_LOCK})"
                ))
                .await
                .map_err(db_error)?;
            Ok(client)
        })?);
        let built = build();
        let end = if built.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let c = client.clone();
        let ended = self.block_on(async move { c.batch_execute(end).await.map_err(db_error) });
        built.and(ended)
    }
    fn crls_after(&self, number: u64) -> Result<Option<StoredCrls>, CaError> {
        self.rows(
            "SELECT number, this_update, change_seq, entries, full_der, delta_der FROM crls \
             WHERE number > $1",
            vec![Box::new(sql_seq(number)?)],
        )?
        .first()
        .map(|r| {
            Ok(StoredCrls {
                number: seq_of(col(r, 0)?)?,
                this_update: col(r, 1)?,
                change_seq: seq_of(col(r, 2)?)?,
                entries: seq_of(col(r, 3)?)?,
                full: col(r, 4)?,
                delta: col(r, 5)?,
            })
        })
        .transpose()
    }
    fn put_crls(&self, crls: &StoredCrls) -> Result<(), CaError> {
        self.rows(
            "INSERT INTO crls VALUES (true, $1, $2, $3, $4, $5, $6) ON CONFLICT (one) DO UPDATE \
             SET number = EXCLUDED.number, this_update = EXCLUDED.this_update, \
             change_seq = EXCLUDED.change_seq, entries = EXCLUDED.entries, \
             full_der = EXCLUDED.full_der, delta_der = EXCLUDED.delta_der \
             WHERE crls.number < EXCLUDED.number",
            vec![
                Box::new(sql_seq(crls.number)?),
                Box::new(crls.this_update),
                Box::new(sql_seq(crls.change_seq)?),
                Box::new(sql_seq(crls.entries)?),
                Box::new(crls.full.clone()),
                Box::new(crls.delta.clone()),
            ],
        )
        .map(drop)
    }
    fn watch_changes(&self, changed: ChangeListener) -> Result<(), CaError> {
        self.listen(changed);
        Ok(())
    }
}

impl AuditStore for PgStore {
    fn audit_head(&self) -> Result<AuditHead, CaError> {
        Ok(counters_of(&self.head()?)?.audit)
    }
    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, CaError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(
            "SELECT entry FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            vec![Box::new(sql_seq(after)?), Box::new(limit)],
        )?
        .iter()
        .map(|r| AuditEntry::decode(col(r, 0)?))
        .collect()
    }
    fn events(&self, serial: &Serial) -> Result<Vec<AuditEntry>, CaError> {
        self.rows(
            "SELECT a.entry FROM audit_events e JOIN audit_log a USING (seq) \
             WHERE e.serial = $1 ORDER BY e.seq",
            vec![Box::new(serial.as_bytes().to_vec())],
        )?
        .iter()
        .map(|r| AuditEntry::decode(col(r, 0)?))
        .collect()
    }
    fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, CaError> {
        self.rows(
            "SELECT checkpoint FROM checkpoints ORDER BY seq DESC LIMIT 1",
            Vec::new(),
        )?
        .first()
        .map(|r| Checkpoint::decode(col(r, 0)?))
        .transpose()
    }
    fn verify_audit(&self, ca_cert_der: &[u8]) -> Result<AuditReport, CaError> {
        // Walked in pages; an error ends the walk and is reported after it.
        let mut failed: Option<CaError> = None;
        let mut next = 0i64;
        let mut page = Vec::new().into_iter();
        let entries = std::iter::from_fn(|| loop {
            if let Some(row) = page.next() {
                let row: Row = row;
                let (seq, entry) = match (col::<i64, _>(&row, 0), col::<&[u8], _>(&row, 1)) {
                    (Ok(seq), Ok(entry)) => (seq, entry),
                    (Err(e), _) | (_, Err(e)) => {
                        failed = Some(e);
                        return None;
                    }
                };
                next = seq;
                return Some((seq_of(seq).unwrap_or(0), AuditEntry::decode(entry)));
            }
            if failed.is_some() {
                return None;
            }
            match self.rows(
                "SELECT seq, entry FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                vec![Box::new(next), Box::new(PAGE)],
            ) {
                Ok(rows) if rows.is_empty() => return None,
                Ok(rows) => page = rows.into_iter(),
                Err(e) => {
                    failed = Some(e);
                    return None;
                }
            }
        });
        let checkpoints = self
            .rows(
                "SELECT checkpoint FROM checkpoints ORDER BY seq",
                Vec::new(),
            )?
            .into_iter()
            .map(|r| Checkpoint::decode(col(&r, 0)?));
        let report = verify_log(
            ca_cert_der,
            entries,
            || self.audit_head(),
            checkpoints,
            |seq| self.audit_entry_head(seq),
        );
        match failed {
            Some(e) => Err(e),
            None => report,
        }
    }
    fn record_event(&self, event: AuditEvent) -> Result<AuditHead, CaError> {
        apply_one(&mut PgGroups::new(self.clone()), |tx| {
            WriteOp::Record(event, Vec::new(), tx)
        })
    }
}

impl TokenStore for PgStore {
    fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, CaError> {
        // Every request authenticates: tokens are cached while the feed of changes runs.
        self.ensure_feed();
        let cache = &self.inner.feed.tokens;
        if let Some(record) = cache.get(token_hash) {
            return Ok(Some(record));
        }
        let generation = cache.generation();
        let record = self
            .row(
                "SELECT record FROM tokens WHERE hash = $1",
                token_hash.to_vec(),
            )?
            .map(|r| TokenRecord::decode(col(&r, 0)?))
            .transpose()?;
        if let Some(record) = &record {
            cache.put(generation, *token_hash, record.clone());
        }
        Ok(record)
    }
    fn tokens(&self) -> Result<Vec<TokenRecord>, CaError> {
        let mut tokens = self
            .rows("SELECT hash, record FROM tokens", Vec::new())?
            .iter()
            .map(|r| Ok((hash_of(col(r, 0)?)?, TokenRecord::decode(col(r, 1)?)?)))
            .collect::<Result<Vec<_>, CaError>>()?;
        tokens.sort_by(|(ha, a), (hb, b)| (a.created_at, ha).cmp(&(b.created_at, hb)));
        Ok(tokens.into_iter().map(|(_, record)| record).collect())
    }
    fn token_name_holder(&self, name: &str) -> Result<Option<[u8; 32]>, CaError> {
        self.rows(
            "SELECT hash FROM token_names WHERE name = $1",
            vec![Box::new(name.to_string())],
        )?
        .first()
        .map(|r| hash_of(col(r, 0)?))
        .transpose()
    }
    fn token_by_name(&self, name: &str) -> Result<Option<([u8; 32], TokenRecord)>, CaError> {
        let rows = self.rows(
            "SELECT t.hash, t.record FROM token_names n JOIN tokens t USING (hash) \
             WHERE n.name = $1",
            vec![Box::new(name.to_string())],
        )?;
        rows.first()
            .map(|r| Ok((hash_of(col(r, 0)?)?, TokenRecord::decode(col(r, 1)?)?)))
            .transpose()
    }
    fn has_tokens(&self) -> Result<bool, CaError> {
        Ok(!self
            .rows("SELECT 1 FROM tokens LIMIT 1", Vec::new())?
            .is_empty())
    }
    fn put_token(
        &self,
        token_hash: &[u8; 32],
        record: &TokenRecord,
        actor: &str,
    ) -> Result<(), CaError> {
        apply_one(&mut PgGroups::new(self.clone()), |tx| {
            WriteOp::PutToken(*token_hash, record.clone(), actor.to_string(), tx)
        })
    }
    fn revoke_token(&self, name: &str, at: i64, actor: &str) -> Result<TokenRecord, CaError> {
        apply_one(&mut PgGroups::new(self.clone()), |tx| {
            WriteOp::RevokeToken(name.to_string(), at, actor.to_string(), tx)
        })
    }
}

impl EnrollmentStore for PgStore {
    fn enrollment(&self, id: &[u8; 16]) -> Result<Option<EnrollmentRecord>, CaError> {
        self.row("SELECT record FROM enrollments WHERE id = $1", id.to_vec())?
            .map(|r| EnrollmentRecord::decode(col(&r, 0)?))
            .transpose()
    }
    fn enrollment_counts(&self, now: i64) -> Result<[u64; 4], CaError> {
        use ca_core::enrollment::EnrollmentState;
        let mut counts = [0u64; 4];
        for r in self.rows("SELECT record FROM enrollments", Vec::new())? {
            let state = EnrollmentRecord::decode(col(&r, 0)?)?.state(now);
            if let Some(i) = EnrollmentState::ALL.iter().position(|s| *s == state) {
                counts[i] += 1;
            }
        }
        Ok(counts)
    }
}

/// The least key above every key that starts with `prefix`; `None` when there is none (an
/// empty prefix, or one of 0xff bytes only).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

impl AcmeStore for PgStore {
    fn acme_object(&self, kind: AcmeKind, id: &[u8]) -> Result<Option<AcmeObject>, CaError> {
        self.rows(
            "SELECT version, value FROM acme_objects WHERE kind = $1 AND id = $2",
            vec![Box::new(sql_kind(kind)), Box::new(id.to_vec())],
        )?
        .first()
        .map(|r| {
            Ok(AcmeObject {
                version: seq_of(col(r, 0)?)?,
                value: col(r, 1)?,
            })
        })
        .transpose()
    }
    fn acme_claim_holder(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        self.row("SELECT id FROM acme_claims WHERE key = $1", key.to_vec())?
            .map(|r| col(&r, 0))
            .transpose()
    }
    fn acme_links(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, CaError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // bytea compares byte by byte, a prefix before its extensions: RocksDB's order.
        self.rows(
            "SELECT key FROM acme_links WHERE key >= $1 \
             AND ($2::bytea IS NULL OR key > $2) AND ($3::bytea IS NULL OR key < $3) \
             ORDER BY key LIMIT $4",
            vec![
                Box::new(prefix.to_vec()),
                Box::new(after.map(<[u8]>::to_vec)),
                Box::new(prefix_end(prefix)),
                Box::new(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )?
        .iter()
        .map(|r| col(r, 0))
        .collect()
    }
    /// HMAC-SHA-256 of the cursor key in `ca_head` (shared by every node, drawn when the
    /// schema was made) under the label `acme nonce`.
    fn acme_nonce_key(&self) -> Result<Option<[u8; 32]>, CaError> {
        let rows = self.rows("SELECT cursor_key FROM ca_head", Vec::new())?;
        let secret: Vec<u8> = col(
            rows.first()
                .ok_or_else(|| CaError::Storage("ca_head is empty".into()))?,
            0,
        )?;
        let secret = zeroize::Zeroizing::new(secret);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let tag = ring::hmac::sign(&key, b"acme nonce");
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Ok(Some(out))
    }
    /// The insert that only the first spender makes; about once in 4096 spends, also the
    /// removal of the nonces past their expiry.
    fn acme_spend_nonce(&self, id: &[u8; 16], expires: i64) -> Result<Option<bool>, CaError> {
        let inserted = self.rows(
            "INSERT INTO acme_nonces (id, expires) VALUES ($1, $2) ON CONFLICT DO NOTHING              RETURNING 1",
            vec![Box::new(id.to_vec()), Box::new(expires)],
        )?;
        if id[0] == 0 && id[1] < 16 {
            // The nonce ids are random: this prunes on about 1 spend in 4096.
            self.rows(
                "DELETE FROM acme_nonces WHERE expires < $1",
                vec![Box::new(expires - NONCE_PRUNE_MARGIN)],
            )?;
        }
        Ok(Some(!inserted.is_empty()))
    }
}

/// How long before a spend's own expiry the spent nonces it prunes expired, in seconds: a
/// nonce is kept at least this long past its expiry, far beyond any clock skew of the nodes.
const NONCE_PRUNE_MARGIN: i64 = 3600;

impl Storage for PgStore {
    fn start_writer(
        &self,
        max_batch: usize,
        metrics: Arc<Metrics>,
    ) -> Result<StoreWriter, CaError> {
        let mut groups = PgGroups::new(self.clone());
        StoreWriter::spawn(move |rx| serve(&mut groups, &rx, max_batch, &metrics))
    }
    fn flush(&self) -> Result<(), CaError> {
        // Every group is committed durably by the database before it is answered.
        Ok(())
    }
    /// The first node to start records its CA; two CAs never share one database.
    fn bind_ca(&self, ca_sha256: [u8; 32]) -> Result<(), CaError> {
        self.run(move |c| async move {
            let row = c
                .query_one(
                    "UPDATE ca_head SET ca_sha256 = coalesce(ca_sha256, $1) RETURNING ca_sha256",
                    &[&ca_sha256.as_slice()],
                )
                .await
                .map_err(db_error)?;
            let bound: Option<Vec<u8>> = col(&row, 0)?;
            match bound {
                Some(b) if b == ca_sha256 => Ok(()),
                Some(b) => Err(CaError::Storage(format!(
                    "the database belongs to another CA (certificate SHA-256 {}), not to this \
                     node's ({}): every node of a CA is a copy of the first node's data \
                     directory",
                    hex::encode(b),
                    hex::encode(ca_sha256)
                ))),
                None => Err(CaError::Storage(
                    "the database did not record its CA".into(),
                )),
            }
        })
    }

    fn memory(&self) -> Result<Vec<(&'static str, u64)>, CaError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_is_the_least_key_after_its_extensions() {
        assert_eq!(prefix_end(b"acct/"), Some(b"acct0".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\x00"), Some(b"\x01".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
