//! Reading, appending and verifying the audit log in the store (see [`crate::audit`]).

use rocksdb::WriteBatch;

use super::rocks_groups::{lay_out, to_batch, RocksGroups};
use super::writer::{apply_one, Change, WriteOp};
use super::{cf, Store, META_AUDIT_HEAD};
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

    /// Writes `batch` together with audit entries for `events`, synced. Only while no engine
    /// runs on this store (start-up, upgrades): the engine's writer owns the log.
    pub(crate) fn write_audited(
        &self,
        mut batch: WriteBatch,
        events: Vec<AuditEvent>,
    ) -> Result<AuditHead, CaError> {
        let mut head = self.checked_audit_head()?;
        let mut writes = Vec::new();
        for event in events {
            let entry = AuditEntry::chain(head, event)?;
            head = entry.head();
            lay_out(Change::Audit(&entry, &[]), &mut writes)?;
        }
        to_batch(self, writes, &mut batch)?;
        batch.put_cf(self.cf(cf::META)?, META_AUDIT_HEAD, head.encode());
        self.write(batch)?;
        Ok(head)
    }

    /// Appends one event to the audit log, synced, as the writer would. Only while no engine
    /// runs on this store.
    pub fn record_event(&self, event: AuditEvent) -> Result<AuditHead, CaError> {
        apply_one(&mut RocksGroups::new(self.clone())?, |tx| {
            WriteOp::Record(event, Vec::new(), tx)
        })
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

    /// Walks the whole audit log and checks it: the hash chain from the first entry, the head
    /// the store recorded (a removed tail), and every signed checkpoint against the CA
    /// certificate `ca_cert_der` and against the entry it names.
    pub fn verify_audit(&self, ca_cert_der: &[u8]) -> Result<AuditReport, CaError> {
        let audit = self.cf(cf::AUDIT)?;
        let mut it = self.db.raw_iterator_cf(audit);
        it.seek_to_first();
        let entries = std::iter::from_fn(|| {
            let (k, v) = (it.key()?, it.value()?);
            let seq = <[u8; 8]>::try_from(k).map_or(0, u64::from_be_bytes);
            let entry = AuditEntry::decode(v);
            it.next();
            Some((seq, entry))
        });
        let mut cps = self.db.raw_iterator_cf(self.cf(cf::CHECKPOINTS)?);
        cps.seek_to_first();
        let checkpoints = std::iter::from_fn(|| {
            let cp = cps.value().map(Checkpoint::decode);
            cps.next();
            cp
        });
        let report = verify_log(
            ca_cert_der,
            entries,
            || self.audit_head(),
            checkpoints,
            |seq| self.audit_entry_head(seq),
        )?;
        it.status().db()?;
        cps.status().db()?;
        Ok(report)
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

/// Checks an audit log, whichever store holds it: `entries` (sequence number as stored, and
/// the entry) from the first on must chain; `recorded` is the head the store recorded with
/// its last write (read after the walk); each of `checkpoints` must verify against the CA
/// certificate `ca_cert_der` and name an entry that exists with the hash it signed
/// (`entry_head` answers an entry's head by sequence number, genesis for 0).
pub fn verify_log(
    ca_cert_der: &[u8],
    entries: impl Iterator<Item = (u64, Result<AuditEntry, CaError>)>,
    recorded: impl FnOnce() -> Result<AuditHead, CaError>,
    checkpoints: impl Iterator<Item = Result<Checkpoint, CaError>>,
    mut entry_head: impl FnMut(u64) -> Result<AuditHead, CaError>,
) -> Result<AuditReport, CaError> {
    let mut count = 0u64;
    let walk = verify_chain(entries.inspect(|_| count += 1));
    let mut report = AuditReport {
        entries: count,
        head: AuditHead::GENESIS,
        checkpoints: 0,
        latest_checkpoint: None,
        broken: None,
    };
    match walk {
        Ok(head) => report.head = head,
        Err(b) => {
            report.head = entry_head(b.seq().saturating_sub(1))?;
            report.broken = Some(b);
            return Ok(report);
        }
    }
    let recorded = recorded()?;
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
    for cp in checkpoints {
        let cp = cp?;
        let seq = cp.head.seq;
        let mismatch = |reason: String| AuditBreak::Checkpoint { seq, reason };
        let problem = if let Err(e) = cp.verify(ca_cert_der) {
            Some(mismatch(e.to_string()))
        } else if seq > report.head.seq {
            Some(AuditBreak::Truncated {
                last: report.head.seq,
                recorded: seq,
            })
        } else if entry_head(seq)? != cp.head {
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
    }
    Ok(report)
}
