//! API tokens in the store: names unique for ever (the `token_names` index), revocation, and
//! the upgrade to schema version 4 that gives older tokens an id and a unique name.
//!
//! Certificates and enrollments record the *name* of the token that requested them, and an RA
//! may act only on what its own token requested. A name therefore designates one token for
//! ever: the index maps every name a token ever had to that token's hash, a name that is
//! taken (even by a revoked token) is refused, and nothing deletes an index entry.

use std::collections::HashMap;

use keys::{SecureRandom, SystemRandom};
use rocksdb::WriteBatch;

use super::rocks_groups::RocksGroups;
use super::writer::{apply_one, WriteOp};
use super::{cf, Store, TokenRecord};
use crate::audit::{AuditAction, AuditEvent};
use crate::error::CaError;
use crate::store::Db;

/// The first schema version with token ids and unique token names.
pub(super) const UNIQUE_TOKEN_NAMES_SCHEMA: u32 = 4;

/// The actor the audit log names for changes made while the store is upgraded.
pub const UPGRADE_ACTOR: &str = "(upgrade)";

/// Separates a name from the number an upgrade appends to make it unique (`ra~2`).
const RENAME_SEPARATOR: char = '~';

/// Draws a token's immutable id: 16 bytes from the system CSPRNG.
pub fn new_token_id() -> Result<[u8; 16], CaError> {
    let mut id = [0u8; 16];
    SystemRandom::new().fill(&mut id)?;
    Ok(id)
}

impl Store {
    /// The hash of the token that holds `name`, revoked or not.
    pub fn token_name_holder(&self, name: &str) -> Result<Option<[u8; 32]>, CaError> {
        let names = self.cf(cf::TOKEN_NAMES)?;
        self.db
            .get_pinned_cf(names, name.as_bytes())
            .db()?
            .map(|v| {
                <[u8; 32]>::try_from(&v[..])
                    .map_err(|_| CaError::Storage("malformed entry in token_names".into()))
            })
            .transpose()
    }

    /// The token named `name`, with its hash.
    pub fn token_by_name(&self, name: &str) -> Result<Option<([u8; 32], TokenRecord)>, CaError> {
        let Some(hash) = self.token_name_holder(name)? else {
            return Ok(None);
        };
        Ok(self.token(&hash)?.map(|record| (hash, record)))
    }

    /// Every token with its hash, oldest first (ties by hash).
    pub(crate) fn tokens_with_hashes(&self) -> Result<Vec<([u8; 32], TokenRecord)>, CaError> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf::TOKENS)?);
        it.seek_to_first();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let hash = <[u8; 32]>::try_from(k)
                .map_err(|_| CaError::Storage("malformed key in tokens".into()))?;
            out.push((hash, TokenRecord::decode(v)?));
            it.next();
        }
        it.status().db()?;
        out.sort_by(|(ha, a), (hb, b)| (a.created_at, ha).cmp(&(b.created_at, hb)));
        Ok(out)
    }

    /// Every token, oldest first: for listing (never shows a token or its hash).
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, CaError> {
        Ok(self
            .tokens_with_hashes()?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// Stores a token (hash → record, name → hash) and its `token_created` audit entry,
    /// synced, as the writer would; refuses a name that is or was taken
    /// ([`CaError::TokenNameTaken`]). Only while no engine runs on this store; a running
    /// server creates tokens through its engine.
    pub fn put_token(
        &self,
        token_hash: &[u8; 32],
        record: &TokenRecord,
        actor: &str,
    ) -> Result<(), CaError> {
        apply_one(&mut RocksGroups::new(self.clone())?, |tx| {
            WriteOp::PutToken(*token_hash, record.clone(), actor.to_string(), tx)
        })
    }

    /// Revokes the token named `name` at `at` (Unix seconds), with its `token_revoked` audit
    /// entry, synced, as the writer would; answers the revoked record. Only while no engine
    /// runs on this store.
    pub fn revoke_token(&self, name: &str, at: i64, actor: &str) -> Result<TokenRecord, CaError> {
        apply_one(&mut RocksGroups::new(self.clone())?, |tx| {
            WriteOp::RevokeToken(name.to_string(), at, actor.to_string(), tx)
        })
    }

    /// The upgrade to schema version 4: every token gets an id, every name an index entry,
    /// and of tokens that share a name the oldest keeps it (and with it the certificates and
    /// enrollments recorded under it) while each later one is renamed `NAME~2`, `NAME~3`, ...
    /// (logged, and audited as `token_renamed`). One synced batch, so an interrupted upgrade
    /// leaves the store as it was; run again on a store already upgraded, it writes nothing.
    pub(super) fn index_tokens(&self) -> Result<(), CaError> {
        let tokens_cf = self.cf(cf::TOKENS)?;
        let names_cf = self.cf(cf::TOKEN_NAMES)?;
        let mut raw = Vec::new();
        let mut it = self.db.raw_iterator_cf(tokens_cf);
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            raw.push((k.to_vec(), TokenRecord::is_v1(v)));
            it.next();
        }
        it.status().db()?;
        let old_format: HashMap<Vec<u8>, bool> = raw.into_iter().collect();
        let mut taken: HashMap<String, [u8; 32]> = HashMap::new();
        let mut batch = WriteBatch::default();
        let mut events = Vec::new();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for (hash, mut record) in self.tokens_with_hashes()? {
            let mut rewrite = old_format.get(&hash[..]).copied().unwrap_or(false);
            if record.id == [0; 16] {
                record.id = new_token_id()?;
                rewrite = true;
            }
            let holder = match taken.get(&record.name) {
                Some(holder) => Some(*holder),
                None => self.token_name_holder(&record.name)?,
            };
            match holder {
                Some(holder) if holder == hash => {
                    taken.insert(record.name.clone(), hash);
                }
                Some(_) => {
                    let mut n = 2u32;
                    let new_name = loop {
                        let candidate = format!("{}{RENAME_SEPARATOR}{n}", record.name);
                        if !taken.contains_key(&candidate)
                            && self.token_name_holder(&candidate)?.is_none()
                        {
                            break candidate;
                        }
                        n += 1;
                    };
                    tracing::warn!(
                        from = %record.name,
                        to = %new_name,
                        id = %hex::encode(record.id),
                        "a token shares its name with an older one: renamed (the older one keeps \
                         the name and the certificates recorded under it)"
                    );
                    events.push(
                        AuditEvent::new(now, UPGRADE_ACTOR, AuditAction::TokenRenamed, &new_name)
                            .with("from", record.name.clone())
                            .with("id", hex::encode(record.id)),
                    );
                    record.name = new_name;
                    batch.put_cf(names_cf, record.name.as_bytes(), hash);
                    taken.insert(record.name.clone(), hash);
                    rewrite = true;
                }
                None => {
                    batch.put_cf(names_cf, record.name.as_bytes(), hash);
                    taken.insert(record.name.clone(), hash);
                }
            }
            if rewrite {
                batch.put_cf(tokens_cf, hash, record.encode()?);
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.write_audited(batch, events).map(drop)
    }
}

/// `record` revoked at `at`; refuses a token revoked already.
pub(crate) fn revoked_token(mut record: TokenRecord, at: i64) -> Result<TokenRecord, CaError> {
    if record.revoked_at.is_some() {
        return Err(CaError::TokenAlreadyRevoked(record.name));
    }
    record.revoked_at = Some(at);
    Ok(record)
}

/// The audit event of a token's creation.
pub(crate) fn token_event(record: &TokenRecord, actor: &str) -> AuditEvent {
    let event = AuditEvent::new(
        record.created_at,
        actor,
        AuditAction::TokenCreated,
        record.name.clone(),
    )
    .with("role", record.role.clone())
    .with("id", hex::encode(record.id));
    match record
        .expires_at
        .and_then(|t| crate::audit::rfc3339(t).ok())
    {
        Some(t) => event.with("expires_at", t),
        None => event,
    }
}

/// The audit event of a token's revocation.
pub(crate) fn token_revoked_event(record: &TokenRecord, at: i64, actor: &str) -> AuditEvent {
    AuditEvent::new(at, actor, AuditAction::TokenRevoked, record.name.clone())
        .with("role", record.role.clone())
        .with("id", hex::encode(record.id))
}
