//! Keys reported compromised, in the store: the `blocked_keys` family (SHA-256 of the
//! SubjectPublicKeyInfo → the serial whose keyCompromise revocation blocked it) and the
//! upgrade to schema version 5 that fills it from the keyCompromise revocations already
//! stored.
//!
//! The store writer adds an entry in the same commit as the keyCompromise revocation
//! ([`super::writer`]); nothing deletes one (a keyCompromise revocation is final). The engine
//! loads them all at start into its in-memory set ([`crate::engine`]).

use rocksdb::WriteBatch;

use super::{cf, Store};
use crate::error::CaError;
use crate::revocation::RevocationReason;
use crate::serial::Serial;
use crate::store::Db;

/// The first schema version with the `blocked_keys` family.
pub(super) const BLOCKED_KEYS_SCHEMA: u32 = 5;

/// Decodes a `blocked_keys` key.
fn decode_hash(key: &[u8]) -> Result<[u8; 32], CaError> {
    <[u8; 32]>::try_from(key).map_err(|_| CaError::Storage("malformed key in blocked_keys".into()))
}

impl Store {
    /// Every blocked key (SHA-256 of its DER SubjectPublicKeyInfo), in key order.
    pub fn blocked_keys(&self) -> Result<Vec<[u8; 32]>, CaError> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf::BLOCKED_KEYS)?);
        it.seek_to_first();
        let mut out = Vec::new();
        while let Some(key) = it.key() {
            out.push(decode_hash(key)?);
            it.next();
        }
        it.status().db()?;
        Ok(out)
    }

    /// The serial whose keyCompromise revocation blocked the key with this SubjectPublicKeyInfo
    /// SHA-256, if the key is blocked.
    pub fn key_blocked_by(&self, spki_sha256: &[u8; 32]) -> Result<Option<Serial>, CaError> {
        self.db
            .get_pinned_cf(self.cf(cf::BLOCKED_KEYS)?, spki_sha256)
            .db()?
            .map(|v| {
                Serial::from_bytes(&v)
                    .ok_or_else(|| CaError::Storage("malformed serial in blocked_keys".into()))
            })
            .transpose()
    }

    /// The upgrade to schema version 5: blocks the key of every certificate already revoked
    /// for keyCompromise. Writing the same entries again is harmless, so an interrupted
    /// upgrade simply runs again at the next open.
    pub(super) fn backfill_blocked_keys(&self) -> Result<(), CaError> {
        let blocked = self.cf(cf::BLOCKED_KEYS)?;
        let mut batch = WriteBatch::default();
        let mut count = 0u64;
        self.for_each_revocation(|serial, revocation| {
            if revocation.reason != RevocationReason::KeyCompromise {
                return Ok(());
            }
            let Some(record) = self.certificate(&serial)? else {
                return Err(CaError::Storage(format!(
                    "cannot upgrade the store: {serial} is revoked but not stored"
                )));
            };
            match crate::spki::certificate_key_sha256(&record.der) {
                Ok(hash) => {
                    batch.put_cf(blocked, hash, serial.as_bytes());
                    count += 1;
                }
                // The revocation stands; a key that cannot be read cannot be blocked.
                Err(e) => tracing::error!(
                    %serial,
                    error = %e,
                    "the key of a certificate revoked for keyCompromise cannot be read; it is \
                     not blocked"
                ),
            }
            Ok(())
        })?;
        self.write(batch)?;
        if count > 0 {
            tracing::info!(
                keys = count,
                "store upgraded to schema version 5: the keys of certificates revoked for \
                 keyCompromise are blocked"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CertRecord, META_SCHEMA};
    use rcgen::PublicKeyData;

    /// A certificate for a fresh P-256 key, self-signed by rcgen, and its key's hash.
    fn certificate() -> (Vec<u8>, [u8; 32]) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let hash = crate::csr::key_from_spki_der(&key.subject_public_key_info())
            .unwrap()
            .spki_sha256()
            .unwrap();
        (der, hash)
    }

    /// A schema version 4 store holding three revoked certificates, one for keyCompromise, is
    /// upgraded with that one's key blocked, and only that one.
    #[test]
    fn the_upgrade_blocks_the_keys_of_stored_key_compromise_revocations() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = WriteBatch::default();
            for (i, reason) in [
                RevocationReason::Superseded,
                RevocationReason::KeyCompromise,
                RevocationReason::CertificateHold,
            ]
            .into_iter()
            .enumerate()
            {
                let (der, hash) = certificate();
                let serial = Serial::random(&keys::SystemRandom::new()).unwrap();
                let seq = (i as u64 + 1).to_be_bytes();
                let record = CertRecord {
                    seq: i as u64 + 1,
                    serial,
                    der,
                    profile: "tls-server".into(),
                    requester: "ra".into(),
                    issued_at: 1_700_000_000,
                    not_before: 1_700_000_000,
                    not_after: 1_800_000_000,
                    renewed_from: None,
                    audit_seq: None,
                };
                let revocation = crate::revocation::Revocation {
                    reason,
                    revoked_at: 1_700_000_100,
                    invalidity_date: None,
                    not_after: 1_800_000_000,
                };
                batch.put_cf(store.cf(cf::ISSUED).unwrap(), seq, record.encode().unwrap());
                batch.put_cf(store.cf(cf::SERIALS).unwrap(), serial.as_bytes(), seq);
                batch.put_cf(
                    store.cf(cf::REVOKED).unwrap(),
                    serial.as_bytes(),
                    crate::store::record::encode_revocation(&revocation).unwrap(),
                );
                if reason == RevocationReason::KeyCompromise {
                    expected.push((hash, serial));
                }
            }
            batch.put_cf(store.cf(cf::META).unwrap(), META_SCHEMA, 4u32.to_be_bytes());
            store.write(batch).unwrap();
            assert!(store.blocked_keys().unwrap().is_empty());
        }
        for _ in 0..2 {
            // The second open finds an upgraded store and changes nothing.
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.schema_version().unwrap(), Some(5));
            let hashes: Vec<[u8; 32]> = expected.iter().map(|(h, _)| *h).collect();
            assert_eq!(store.blocked_keys().unwrap(), hashes);
            let (hash, serial) = expected[0];
            assert_eq!(store.key_blocked_by(&hash).unwrap(), Some(serial));
            assert_eq!(store.key_blocked_by(&[0; 32]).unwrap(), None);
        }
    }
}
