//! The running CRL publisher: rebuilds the complete and delta CRLs (encoded by
//! [`ca_x509::crl::CrlBuilder`]) from the store when revocations change or half their validity
//! has passed, takes their numbers through the store writer, and serves the last ones from
//! memory.

use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use time::OffsetDateTime;

use ca_x509::crl::{CrlBuilder, CrlConfig, CrlEntry, EntryReason};
use ca_x509::error::CaError;

use crate::engine::{Engine, StatusObserver};
use crate::serial::Serial;
use crate::store::StoredCrls;

/// The CRLs currently served.
#[derive(Clone, Debug)]
pub struct PublishedCrls {
    /// The complete CRL, DER.
    pub full: Bytes,
    /// Its CRL number.
    pub number: u64,
    /// thisUpdate of both, Unix seconds.
    pub this_update: i64,
    /// Entries on the complete CRL.
    pub entries: usize,
    /// The delta CRL against the previous complete CRL (against this one right after start).
    pub delta: Bytes,
}

/// Keeps the CRLs current: rebuilds them from the store when revocations changed (or when
/// half their validity has passed) and serves the last ones from memory.
pub struct CrlPublisher {
    builder: CrlBuilder,
    engine: Arc<Engine>,
    config: CrlConfig,
    current: RwLock<Option<PublishedCrls>>,
    /// (CRL number, change sequence) of the complete CRL that deltas are built against.
    base: Mutex<Option<(u64, u64)>>,
    dirty: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CrlPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlPublisher").finish_non_exhaustive()
    }
}

impl CrlPublisher {
    /// A publisher for the engine's CA and store.
    pub fn new(builder: CrlBuilder, engine: Arc<Engine>, config: CrlConfig) -> Self {
        CrlPublisher {
            builder,
            engine,
            config,
            current: RwLock::new(None),
            base: Mutex::new(None),
            dirty: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CrlConfig {
        &self.config
    }

    /// Notes that a revocation changed, so that the next tick rebuilds.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The CRLs being served, if any was built yet.
    pub fn current(&self) -> Option<PublishedCrls> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// Whether a rebuild is due: something changed, or half the validity has passed.
    pub fn due(&self, now: i64) -> bool {
        if self.dirty.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        let half = (self.config.next_update_hours * 3600 / 2) as i64;
        self.current().is_none_or(|c| now - c.this_update >= half)
    }

    /// Builds, signs and publishes a new complete CRL and a delta CRL. Blocking: CPU-bound
    /// for large CRLs; call it off the async runtime. Issuance goes on meanwhile: only the
    /// CRL number allocation passes through the store writer.
    pub fn generate(&self) -> Result<PublishedCrls, CaError> {
        self.generate_as("ca-server")
    }

    /// [`CrlPublisher::generate`], recording `actor` (a token's name) in the audit log as the
    /// one who asked.
    pub fn generate_as(&self, actor: &str) -> Result<PublishedCrls, CaError> {
        self.dirty.store(false, std::sync::atomic::Ordering::SeqCst);
        let result = self.build_and_publish(actor);
        if result.is_err() {
            self.mark_dirty();
        }
        result
    }

    /// Publishes CRLs that cover every revocation change committed until now: the newest
    /// another node published, when they do and are not due for a rebuild, else new ones.
    /// One node of a shared store builds at a time ([`RevocationStore::as_crl_builder`]).
    fn build_and_publish(&self, actor: &str) -> Result<PublishedCrls, CaError> {
        let store = self.engine.store();
        let wanted = store.last_change_seq()?;
        let mut published = None;
        store.as_crl_builder(&mut || {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let current = self.current().map_or(0, |c| c.number);
            let half = (self.config.next_update_hours * 3600 / 2) as i64;
            published = Some(match store.crls_after(current)? {
                Some(stored) if stored.change_seq >= wanted && now - stored.this_update < half => {
                    self.adopt(stored)
                }
                _ => {
                    let built = self.build(actor)?;
                    store.put_crls(&built)?;
                    self.adopt(built)
                }
            });
            Ok(())
        })?;
        published.ok_or_else(|| CaError::internal("the CRL builder did not run", None))
    }

    /// Serves `crls` from now on, and builds later deltas against them.
    fn adopt(&self, crls: StoredCrls) -> PublishedCrls {
        let published = PublishedCrls {
            full: Bytes::from(crls.full),
            number: crls.number,
            this_update: crls.this_update,
            entries: usize::try_from(crls.entries).unwrap_or(usize::MAX),
            delta: Bytes::from(crls.delta),
        };
        if let Ok(mut base) = self.base.lock() {
            *base = Some((crls.number, crls.change_seq));
        }
        if let Ok(mut current) = self.current.write() {
            *current = Some(published.clone());
        }
        let next_update = published.this_update + (self.config.next_update_hours * 3600) as i64;
        let metrics = self.engine.metrics();
        metrics
            .crl_number
            .set(i64::try_from(published.number).unwrap_or(i64::MAX));
        metrics.crl_entries.set(published.entries as i64);
        metrics.crl_bytes.set(published.full.len() as i64);
        metrics.crl_this_update.set(published.this_update);
        for kind in ["full", "delta"] {
            metrics
                .crl_next_update
                .with_label_values(&[kind])
                .set(next_update);
        }
        tracing::info!(
            number = published.number,
            entries = published.entries,
            bytes = published.full.len(),
            "CRL published"
        );
        published
    }

    /// Builds and signs a complete CRL and a delta CRL from the store.
    fn build(&self, actor: &str) -> Result<StoredCrls, CaError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        // A thisUpdate never goes back behind one signed before ([`crate::clock`]).
        self.engine.clock().check(now)?;
        let floor = u64::try_from(now).unwrap_or(0);
        let full_pos = self.engine.next_crl_number_blocking(floor, actor, "full")?;
        let next_update = now + (self.config.next_update_hours * 3600) as i64;
        let keep_until = now - i64::from(self.config.keep_expired_days) * 86_400;
        let store = self.engine.store();
        let mut entries = Vec::new();
        store.for_each_revocation(&mut |serial, r| {
            if r.not_after >= keep_until {
                entries.push(CrlEntry::from_revocation(serial, &r));
            }
            Ok(())
        })?;
        let count = entries.len();
        let full = self
            .builder
            .full(full_pos.number, now, next_update, entries)?;

        let previous = self
            .base
            .lock()
            .map_err(|_| CaError::internal("the CRL state's lock is poisoned", None))?
            .unwrap_or((full_pos.number, full_pos.change_seq));
        let delta_pos = self
            .engine
            .next_crl_number_blocking(floor, actor, "delta")?;
        let mut changes = Vec::new();
        for serial in store.changed_since(previous.1, full_pos.change_seq)? {
            changes.push(match store.revocation(&serial)? {
                Some(r) => CrlEntry::from_revocation(serial, &r),
                None => CrlEntry {
                    serial,
                    revoked_at: now,
                    reason: Some(EntryReason::RemoveFromCrl),
                    invalidity_date: None,
                },
            });
        }
        let delta = self
            .builder
            .delta(delta_pos.number, previous.0, now, next_update, changes)?;

        self.engine.clock().signed(now);
        Ok(StoredCrls {
            number: full_pos.number,
            this_update: now,
            change_seq: full_pos.change_seq,
            entries: count as u64,
            full,
            delta,
        })
    }
}

impl StatusObserver for CrlPublisher {
    fn status_changed(&self, _serial: &Serial) {
        self.mark_dirty();
    }
    fn statuses_changed(&self) {
        self.mark_dirty();
    }
}
