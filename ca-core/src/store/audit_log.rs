//! Reading, appending and verifying the audit log in the store (see [`crate::audit`]).

use rocksdb::WriteBatch;

use super::{cf, Store, Writes, META_AUDIT_HEAD};
use crate::audit::{verify_chain, AuditBreak, AuditEntry, AuditEvent, AuditHead, Checkpoint};
use crate::error::CaError;
use crate::serial::Serial;
use crate::store::Db;

/// What `audit verify` found.
#[derive(Clone, Debug)]
pub struct AuditReport {
    /// Entries walked.
    pub entries: u64,
    /// The head reached (the last intact entry when the chain breaks).
    pub head: AuditHead,
    /// Signed checkpoints whose signature and hash were checked.
    pub checkpoints: u64,
    /// The newest checkpoint, if any.
    pub latest_checkpoint: Option<Checkpoint>,
    /// The first break, if any.
    pub broken: Option<AuditBreak>,
}

impl Store {
    /// The head of the audit log as the store recorded it with the last write.
    pub fn audit_head(&self) -> Result<AuditHead, CaError> {
        let meta = self.cf(cf::META)?;
        match self.db.get_pinned_cf(meta, META_AUDIT_HEAD).db()? {
            None => Ok(AuditHead::GENESIS),
            Some(v) => AuditHead::decode(&v)
                .ok_or_else(|| CaError::Storage("malformed audit head in meta".into())),
        }
    }

    /// The recorded audit head, after checking that the log's last entry is that head: a
    /// store whose log was cut or edited at its end is not written to (start-up refuses it).
    pub fn checked_audit_head(&self) -> Result<AuditHead, CaError> {
        let recorded = self.audit_head()?;
        let audit = self.cf(cf::AUDIT)?;
        let mut it = self.db.raw_iterator_cf(audit);
        it.seek_to_last();
        let last = it
            .value()
            .map(AuditEntry::decode)
            .transpose()?
            .map_or(AuditHead::GENESIS, |e| e.head());
        it.status().db()?;
        if last != recorded {
            return Err(CaError::Storage(format!(
                "the audit log ends at entry {} but the store recorded its head at entry {}: \
                 the store was altered or damaged; run `ca-server audit verify` and restore \
                 the data directory from a backup",
                last.seq, recorded.seq
            )));
        }
        Ok(recorded)
    }

    /// Adds `event` after `prev` to `batch`, with an `events` pointer for each of `serials`,
    /// and returns the new head. The caller writes the head to meta ([`Store::put_audit_head`])
    /// in the same batch.
    pub(crate) fn append_audit<'s>(
        &'s self,
        batch: &mut impl Writes<'s>,
        prev: AuditHead,
        event: AuditEvent,
        serials: &[Serial],
    ) -> Result<AuditHead, CaError> {
        let entry = AuditEntry::chain(prev, event)?;
        let seq = entry.seq.to_be_bytes();
        batch.put(self.cf(cf::AUDIT)?, &seq, &entry.encode()?);
        let events = self.cf(cf::EVENTS)?;
        for serial in serials {
            let mut key = [0u8; 24];
            key[..16].copy_from_slice(serial.as_bytes());
            key[16..].copy_from_slice(&seq);
            batch.put(events, &key, &[]);
        }
        Ok(entry.head())
    }

    /// Records the audit head in meta, in `batch`.
    pub(crate) fn put_audit_head(
        &self,
        batch: &mut WriteBatch,
        head: &AuditHead,
    ) -> Result<(), CaError> {
        batch.put_cf(self.cf(cf::META)?, META_AUDIT_HEAD, head.encode());
        Ok(())
    }

    /// Writes `batch` together with audit entries for `events`, synced. Only while no engine
    /// runs on this store (start-up, the command line): the engine's writer owns the log.
    pub(crate) fn write_audited(
        &self,
        mut batch: WriteBatch,
        events: Vec<AuditEvent>,
    ) -> Result<AuditHead, CaError> {
        let mut head = self.checked_audit_head()?;
        for event in events {
            head = self.append_audit(&mut batch, head, event, &[])?;
        }
        self.put_audit_head(&mut batch, &head)?;
        self.write(batch)?;
        Ok(head)
    }

    /// Appends one event to the audit log, synced. Only while no engine runs on this store.
    pub fn record_event(&self, event: AuditEvent) -> Result<AuditHead, CaError> {
        self.write_audited(WriteBatch::default(), vec![event])
    }

    /// Up to `limit` audit entries with a sequence number above `after`, oldest first.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, CaError> {
        let audit = self.cf(cf::AUDIT)?;
        let mut it = self.db.raw_iterator_cf(audit);
        it.seek(after.saturating_add(1).to_be_bytes());
        let mut out = Vec::with_capacity(limit.min(1024));
        while let Some(v) = it.value() {
            if out.len() >= limit {
                break;
            }
            out.push(AuditEntry::decode(v)?);
            it.next();
        }
        it.status().db()?;
        Ok(out)
    }

    /// The audit entries of `serial`, oldest first: the one that issued it (for certificates
    /// issued by this version or later; its target is `serial`), then every one that changed
    /// it (revocation, hold release, a renewal of it).
    pub fn events(&self, serial: &Serial) -> Result<Vec<AuditEntry>, CaError> {
        let events = self.cf(cf::EVENTS)?;
        let audit = self.cf(cf::AUDIT)?;
        let it = self.db.prefix_iterator_cf(events, serial.as_bytes());
        let mut out = Vec::new();
        for item in it {
            let (key, _) = item.db()?;
            if !key.starts_with(serial.as_bytes()) {
                break;
            }
            let seq = key.get(16..24).unwrap_or_default();
            let bytes = self.db.get_pinned_cf(audit, seq).db()?.ok_or_else(|| {
                CaError::Storage(format!(
                    "an event of {serial} points at a missing audit entry"
                ))
            })?;
            out.push(AuditEntry::decode(&bytes)?);
        }
        Ok(out)
    }

    /// The newest signed checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, CaError> {
        let checkpoints = self.cf(cf::CHECKPOINTS)?;
        let mut it = self.db.raw_iterator_cf(checkpoints);
        it.seek_to_last();
        let latest = it.value().map(Checkpoint::decode).transpose()?;
        it.status().db()?;
        Ok(latest)
    }

    /// Adds a checkpoint to `batch`.
    pub(crate) fn put_checkpoint<'s>(
        &'s self,
        batch: &mut impl Writes<'s>,
        checkpoint: &Checkpoint,
    ) -> Result<(), CaError> {
        batch.put(
            self.cf(cf::CHECKPOINTS)?,
            &checkpoint.head.seq.to_be_bytes(),
            &checkpoint.encode()?,
        );
        Ok(())
    }

    /// Walks the whole audit log and checks it: the hash chain from the first entry, the head
    /// the store recorded (a removed tail), and every signed checkpoint against the CA
    /// certificate `ca_cert_der` and against the entry it names.
    pub fn verify_audit(&self, ca_cert_der: &[u8]) -> Result<AuditReport, CaError> {
        let audit = self.cf(cf::AUDIT)?;
        let mut it = self.db.raw_iterator_cf(audit);
        it.seek_to_first();
        let mut entries = 0u64;
        let walk = verify_chain(std::iter::from_fn(|| {
            let (k, v) = (it.key()?, it.value()?);
            let seq = <[u8; 8]>::try_from(k).map_or(0, u64::from_be_bytes);
            let entry = AuditEntry::decode(v);
            it.next();
            entries += 1;
            Some((seq, entry))
        }));
        it.status().db()?;
        let mut report = AuditReport {
            entries,
            head: AuditHead::GENESIS,
            checkpoints: 0,
            latest_checkpoint: None,
            broken: None,
        };
        match walk {
            Ok(head) => report.head = head,
            Err(b) => {
                report.head = self.audit_entry_head(b.seq().saturating_sub(1))?;
                report.broken = Some(b);
                return Ok(report);
            }
        }
        let recorded = self.audit_head()?;
        if recorded.seq > report.head.seq {
            report.broken = Some(AuditBreak::Truncated {
                last: report.head.seq,
                recorded: recorded.seq,
            });
        } else if recorded != report.head {
            report.broken = Some(AuditBreak::Unchained {
                seq: report.head.seq,
            });
        }
        self.verify_checkpoints(ca_cert_der, &mut report)?;
        Ok(report)
    }

    fn verify_checkpoints(
        &self,
        ca_cert_der: &[u8],
        report: &mut AuditReport,
    ) -> Result<(), CaError> {
        let checkpoints = self.cf(cf::CHECKPOINTS)?;
        let mut it = self.db.raw_iterator_cf(checkpoints);
        it.seek_to_first();
        while let Some(v) = it.value() {
            let cp = Checkpoint::decode(v)?;
            let seq = cp.head.seq;
            let mismatch = |reason: String| AuditBreak::Checkpoint { seq, reason };
            let problem = if let Err(e) = cp.verify(ca_cert_der) {
                Some(mismatch(e.to_string()))
            } else if seq > report.head.seq {
                Some(AuditBreak::Truncated {
                    last: report.head.seq,
                    recorded: seq,
                })
            } else if self.audit_entry_head(seq)? != cp.head {
                Some(mismatch(
                    "the entry's hash differs from the signed one".into(),
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                // The earliest failure is the one to report.
                if report.broken.as_ref().is_none_or(|b| p.seq() < b.seq()) {
                    report.broken = Some(p);
                }
            } else {
                report.checkpoints += 1;
            }
            report.latest_checkpoint = Some(cp);
            it.next();
        }
        it.status().db()?;
        Ok(())
    }

    /// The head as of entry `seq` (its hash), or genesis for 0.
    fn audit_entry_head(&self, seq: u64) -> Result<AuditHead, CaError> {
        if seq == 0 {
            return Ok(AuditHead::GENESIS);
        }
        let audit = self.cf(cf::AUDIT)?;
        Ok(
            match self.db.get_pinned_cf(audit, seq.to_be_bytes()).db()? {
                Some(v) => AuditEntry::decode(&v)?.head(),
                None => AuditHead { seq, hash: [0; 32] },
            },
        )
    }
}
