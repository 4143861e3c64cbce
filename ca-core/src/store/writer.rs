//! The store writer: the one thread that writes to RocksDB while the engine runs.
//!
//! It takes everything that has arrived (up to a maximum), checks each operation against the
//! store and the batch itself (serial uniqueness, idempotency keys, revocation state), writes
//! one WriteBatch with the WAL synced, and only then answers each waiting request (group
//! commit). Being the only writer makes these checks, the issuance sequence, the CRL change
//! sequence and the CRL number race-free without locks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rocksdb::WriteBatch;
use tokio::sync::oneshot;

use super::audit_log::token_event;
use super::{
    cf, CertRecord, EnrollmentRecord, IdempotencyKey, IdempotencyRecord, Store, TokenRecord,
    META_CERT_SEQ, META_CHANGE_SEQ, META_CRL_NUMBER,
};
use crate::audit::{AuditAction, AuditEvent, AuditHead, Checkpoint};
use crate::error::CaError;
use crate::metrics::Metrics;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::Serial;

/// The actor of the audit entries a subscriber causes with an enrolment code (no token), as
/// `failed_attempt` and `certificate` write it.
const PUBLIC_ACTOR: &str = "(public)";

/// A certificate to record, with the idempotency entry that should point at it.
#[derive(Debug)]
pub struct NewCertificate {
    /// The record (its `seq` is assigned by the writer).
    pub record: CertRecord,
    /// The `(token, request_id)` key and request digest, when the request had a request_id.
    pub idempotency: Option<(IdempotencyKey, [u8; 32])>,
    /// The certificate's `names` index prefixes (see [`super::query::names_prefix`]): its
    /// subject and each SAN.
    pub names: Vec<Vec<u8>>,
    /// The enrolment this certificate redeems: it must still be pending when the certificate
    /// commits, and is marked redeemed in the same batch (a code works once).
    pub enrollment: Option<[u8; 16]>,
}

/// What became of a [`NewCertificate`].
#[derive(Debug)]
pub enum Committed {
    /// It is durably stored, with this record.
    Stored(CertRecord),
    /// Its idempotency key was already taken (by a concurrent or earlier request): nothing
    /// was stored, and this entry says what the key points at.
    Existing(IdempotencyRecord),
}

/// A revocation to record.
#[derive(Clone, Debug)]
pub struct RevokeRequest {
    /// The certificate.
    pub serial: Serial,
    /// Why.
    pub reason: RevocationReason,
    /// When, Unix seconds.
    pub at: i64,
    /// Invalidity date, Unix seconds.
    pub invalidity_date: Option<i64>,
    /// Who asked (a token's name), for the audit log.
    pub actor: String,
}

/// A CRL number to allocate.
#[derive(Clone, Debug)]
pub struct CrlRequest {
    /// The least acceptable number (e.g. thisUpdate in Unix seconds).
    pub floor: u64,
    /// Who asked, for the audit log.
    pub actor: String,
    /// `full` or `delta`, for the audit log.
    pub kind: &'static str,
}

/// A freshly allocated CRL number and the CRL change sequence at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlPosition {
    /// The CRL number (RFC 5280 section 5.2.3), never reused.
    pub number: u64,
    /// Every revocation change up to this sequence number is in the store.
    pub change_seq: u64,
}

/// A reply channel of the writer.
pub type Reply<T> = oneshot::Sender<Result<T, CaError>>;

/// A request to the writer, with where to answer once it is durable (or refused).
#[derive(Debug)]
pub enum WriteOp {
    /// Store an issued certificate.
    Certificate(NewCertificate, oneshot::Sender<Result<Committed, CaError>>),
    /// Revoke (or put on hold, or make a hold permanent).
    Revoke(RevokeRequest, oneshot::Sender<Result<Revocation, CaError>>),
    /// End a certificateHold (the serial, and who asked).
    ReleaseHold(Serial, String, Reply<()>),
    /// Allocate the next CRL number.
    NextCrlNumber(CrlRequest, Reply<CrlPosition>),
    /// Store an API token under its hash, as `actor` asked.
    PutToken([u8; 32], TokenRecord, String, Reply<()>),
    /// Append an event to the audit log, with `events` pointers for the serials.
    Record(AuditEvent, Vec<Serial>, Reply<AuditHead>),
    /// Tell the audit log's head (writes nothing).
    AuditHead(Reply<AuditHead>),
    /// Store a signed checkpoint of the audit log.
    Checkpoint(Checkpoint, Reply<()>),
    /// Store a new enrolment (its id and record), as `actor` asked.
    CreateEnrollment([u8; 16], EnrollmentRecord, String, Reply<()>),
    /// Count a wrong code for an enrolment; answers the record after it.
    FailedAttempt([u8; 16], Reply<EnrollmentRecord>),
    /// Roll back the redemption of an enrolment (its id) for a certificate (its serial) that
    /// could not be delivered: revoke the certificate and make the enrolment pending again.
    UndoRedemption([u8; 16], Serial, Reply<()>),
}

/// The running writer thread.
#[derive(Debug)]
pub struct StoreWriter {
    tx: Sender<WriteOp>,
    handle: JoinHandle<()>,
}

impl StoreWriter {
    /// Starts the writer on `store`, committing at most `max_batch` operations per WriteBatch
    /// and recording commit times and sizes in `metrics`.
    pub fn start(store: Store, max_batch: usize, metrics: Arc<Metrics>) -> Result<Self, CaError> {
        let counters = Counters {
            cert_seq: store.meta_u64(META_CERT_SEQ)?,
            change_seq: store.meta_u64(META_CHANGE_SEQ)?,
            crl_number: store.meta_u64(META_CRL_NUMBER)?,
            audit: store.checked_audit_head()?,
            last_issued_at: store.last_issued_at()?,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name("ca-store-writer".into())
            .spawn(move || run(&store, &rx, counters, max_batch.max(1), &metrics))
            .map_err(|e| CaError::Storage(format!("starting the writer thread: {e}")))?;
        Ok(StoreWriter { tx, handle })
    }

    /// A sender for write requests. The writer stops once every sender is dropped.
    pub fn sender(&self) -> Sender<WriteOp> {
        self.tx.clone()
    }

    /// Drops this handle's sender and waits until the writer has committed everything it was
    /// sent and stopped.
    pub fn join(self) {
        drop(self.tx);
        if self.handle.join().is_err() {
            tracing::error!("the store writer thread panicked");
        }
    }
}

/// The sequences the writer owns.
#[derive(Clone, Copy, Debug)]
struct Counters {
    cert_seq: u64,
    change_seq: u64,
    crl_number: u64,
    audit: AuditHead,
    /// `issued_at` of the newest certificate: issuance times never decrease along the
    /// issuance sequence, so that time ranges are exact ranges of `issued`.
    last_issued_at: i64,
}

fn run(
    store: &Store,
    rx: &Receiver<WriteOp>,
    mut counters: Counters,
    max_batch: usize,
    metrics: &Metrics,
) {
    while let Ok(first) = rx.recv() {
        let mut ops = Vec::with_capacity(max_batch.min(1024));
        ops.push(first);
        while ops.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        metrics.commit_batch.observe(ops.len() as f64);
        let started = std::time::Instant::now();
        counters = commit(store, ops, counters);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// An answer that waits for the commit.
enum Answer {
    Certificate(Reply<Committed>, Result<Committed, CaError>),
    Revoke(Reply<Revocation>, Result<Revocation, CaError>),
    Unit(Reply<()>, Result<(), CaError>),
    Crl(Reply<CrlPosition>, Result<CrlPosition, CaError>),
    Head(Reply<AuditHead>, Result<AuditHead, CaError>),
    Enrollment(Reply<EnrollmentRecord>, Result<EnrollmentRecord, CaError>),
}

impl Answer {
    /// Turns a success into `error` (the batch did not commit).
    fn fail(&mut self, error: &CaError) {
        let e = || CaError::Storage(error.to_string());
        match self {
            Answer::Certificate(_, r @ Ok(Committed::Stored(_))) => *r = Err(e()),
            Answer::Revoke(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Unit(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Crl(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Head(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Enrollment(_, r @ Ok(_)) => *r = Err(e()),
            _ => {}
        }
    }

    fn send(self) {
        // A requester that went away does not undo what was committed.
        let _ = match self {
            Answer::Certificate(tx, r) => tx.send(r).map_err(drop),
            Answer::Revoke(tx, r) => tx.send(r).map_err(drop),
            Answer::Unit(tx, r) => tx.send(r).map_err(drop),
            Answer::Crl(tx, r) => tx.send(r).map_err(drop),
            Answer::Head(tx, r) => tx.send(r).map_err(drop),
            Answer::Enrollment(tx, r) => tx.send(r).map_err(drop),
        };
    }
}

/// One group being assembled: the batch and what it already holds, so that operations in
/// the same group see each other.
struct Group<'a> {
    store: &'a Store,
    batch: WriteBatch,
    counters: Counters,
    /// Which of the group's serials the store already holds (looked up once per group).
    stored: Result<HashSet<Serial>, CaError>,
    /// The serials this group stores.
    serials: HashSet<Serial>,
    keys: HashMap<IdempotencyKey, IdempotencyRecord>,
    revocations: HashMap<Serial, Option<Revocation>>,
    certificates: HashMap<Serial, i64>,
    enrollments: HashMap<[u8; 16], EnrollmentRecord>,
}

/// Commits one group; returns the counters after it.
fn commit(store: &Store, ops: Vec<WriteOp>, before: Counters) -> Counters {
    let mut drawn: Vec<Serial> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Certificate(cert, _) => cert.record.serial(),
            _ => None,
        })
        .collect();
    // Should the look-up fail, every certificate of the group is refused with its error.
    let stored = store.stored_serials(&mut drawn);
    let mut group = Group {
        store,
        batch: WriteBatch::default(),
        counters: before,
        stored,
        serials: HashSet::new(),
        keys: HashMap::new(),
        revocations: HashMap::new(),
        certificates: HashMap::new(),
        enrollments: HashMap::new(),
    };
    let mut replies = Vec::with_capacity(ops.len());
    for op in ops {
        replies.push(match op {
            WriteOp::Certificate(cert, tx) => Answer::Certificate(tx, group.certificate(cert)),
            WriteOp::Revoke(req, tx) => Answer::Revoke(tx, group.revoke(req)),
            WriteOp::ReleaseHold(serial, actor, tx) => {
                Answer::Unit(tx, group.release(serial, actor))
            }
            WriteOp::NextCrlNumber(req, tx) => Answer::Crl(tx, group.crl_number(req)),
            WriteOp::PutToken(hash, record, actor, tx) => {
                Answer::Unit(tx, group.token(&hash, &record, &actor))
            }
            WriteOp::Record(event, serials, tx) => Answer::Head(tx, group.audit(event, &serials)),
            WriteOp::AuditHead(tx) => Answer::Head(tx, Ok(group.counters.audit)),
            WriteOp::Checkpoint(cp, tx) => Answer::Unit(tx, group.checkpoint(&cp)),
            WriteOp::CreateEnrollment(id, record, actor, tx) => {
                Answer::Unit(tx, group.create_enrollment(id, record, &actor))
            }
            WriteOp::FailedAttempt(id, tx) => Answer::Enrollment(tx, group.failed_attempt(id)),
            WriteOp::UndoRedemption(id, serial, tx) => {
                Answer::Unit(tx, group.undo_redemption(id, serial))
            }
        });
    }
    let counters = group.counters;
    let written = if group.batch.is_empty() {
        Ok(())
    } else {
        group
            .write_counters()
            .and_then(|()| store.write(group.batch))
    };
    let counters = match written {
        Ok(()) => counters,
        Err(e) => {
            tracing::error!(error = %e, "store commit failed; the group's requests are refused");
            replies.iter_mut().for_each(|r| r.fail(&e));
            before
        }
    };
    replies.into_iter().for_each(Answer::send);
    counters
}

impl Group<'_> {
    fn write_counters(&mut self) -> Result<(), CaError> {
        let meta = self.store.cf(cf::META)?;
        self.batch
            .put_cf(meta, META_CERT_SEQ, self.counters.cert_seq.to_be_bytes());
        self.batch.put_cf(
            meta,
            META_CHANGE_SEQ,
            self.counters.change_seq.to_be_bytes(),
        );
        self.batch.put_cf(
            meta,
            META_CRL_NUMBER,
            self.counters.crl_number.to_be_bytes(),
        );
        self.store
            .put_audit_head(&mut self.batch, &self.counters.audit)
    }

    /// Appends an audit entry to the group, pointing from each of `serials` to it.
    fn audit(&mut self, event: AuditEvent, serials: &[Serial]) -> Result<AuditHead, CaError> {
        self.counters.audit =
            self.store
                .append_audit(&mut self.batch, self.counters.audit, event, serials)?;
        Ok(self.counters.audit)
    }

    fn token(&mut self, hash: &[u8; 32], record: &TokenRecord, actor: &str) -> Result<(), CaError> {
        self.batch
            .put_cf(self.store.cf(cf::TOKENS)?, hash, record.encode()?);
        self.audit(token_event(record, actor), &[]).map(drop)
    }

    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), CaError> {
        self.store.put_checkpoint(&mut self.batch, checkpoint)
    }

    /// The enrolment as this group leaves it.
    fn enrollment(&self, id: &[u8; 16]) -> Result<EnrollmentRecord, CaError> {
        match self.enrollments.get(id) {
            Some(r) => Ok(r.clone()),
            None => self
                .store
                .enrollment(id)?
                .ok_or_else(|| CaError::EnrollmentNotFound(hex::encode(id))),
        }
    }

    fn put_enrollment(&mut self, id: [u8; 16], record: EnrollmentRecord) -> Result<(), CaError> {
        self.batch
            .put_cf(self.store.cf(cf::ENROLLMENTS)?, id, record.encode()?);
        self.enrollments.insert(id, record);
        Ok(())
    }

    fn create_enrollment(
        &mut self,
        id: [u8; 16],
        record: EnrollmentRecord,
        actor: &str,
    ) -> Result<(), CaError> {
        if self.enrollments.contains_key(&id) || self.store.enrollment(&id)?.is_some() {
            return Err(CaError::Storage("enrolment id collision".into()));
        }
        let event = AuditEvent::new(
            record.created_at,
            actor,
            AuditAction::EnrollmentCreated,
            hex::encode(id),
        )
        .with("profile", record.profile.clone())
        .with("subject", record.subject.clone());
        self.put_enrollment(id, record)?;
        self.audit(event, &[]).map(drop)
    }

    fn failed_attempt(&mut self, id: [u8; 16]) -> Result<EnrollmentRecord, CaError> {
        let mut record = self.enrollment(&id)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        record.check_redeemable(now)?;
        record.failed_attempts += 1;
        let locked = record.failed_attempts >= record.max_attempts;
        let action = if locked {
            AuditAction::EnrollmentLocked
        } else {
            AuditAction::EnrollmentAttemptFailed
        };
        let event = AuditEvent::new(now, "(public)", action, hex::encode(id))
            .with("failed_attempts", record.failed_attempts.to_string());
        self.put_enrollment(id, record.clone())?;
        self.audit(event, &[])?;
        Ok(record)
    }

    /// Revokes `serial` (cessationOfOperation) and clears the enrolment's serial, so that it is
    /// pending again (or locked or expired, as its counts and deadline say), with an
    /// `enrollment_reopened` audit entry. Refused unless the enrolment was redeemed for exactly
    /// that certificate.
    fn undo_redemption(&mut self, id: [u8; 16], serial: Serial) -> Result<(), CaError> {
        let mut record = self.enrollment(&id)?;
        if record.serial != Some(*serial.as_bytes()) {
            return Err(CaError::Storage(format!(
                "enrolment {} was not redeemed for {serial}",
                hex::encode(id)
            )));
        }
        let at = time::OffsetDateTime::now_utc().unix_timestamp();
        self.revoke(RevokeRequest {
            serial,
            reason: RevocationReason::CessationOfOperation,
            at,
            invalidity_date: None,
            actor: PUBLIC_ACTOR.to_string(),
        })?;
        record.serial = None;
        let event = AuditEvent::new(
            at,
            PUBLIC_ACTOR,
            AuditAction::EnrollmentReopened,
            hex::encode(id),
        )
        .with("serial", serial.to_hex());
        self.put_enrollment(id, record)?;
        self.audit(event, &[serial]).map(drop)
    }

    fn certificate(&mut self, cert: NewCertificate) -> Result<Committed, CaError> {
        let NewCertificate {
            mut record,
            idempotency,
            names,
            enrollment,
        } = cert;
        let serial = record
            .serial()
            .ok_or_else(|| CaError::Storage("record with a malformed serial".into()))?;
        if let Some((key, _)) = &idempotency {
            if let Some(existing) = self.keys.get(key) {
                return Ok(Committed::Existing(*existing));
            }
            if let Some(existing) = self.store.idempotency(key)? {
                return Ok(Committed::Existing(existing));
            }
        }
        let stored = match &self.stored {
            Ok(stored) => stored.contains(&serial),
            Err(e) => return Err(CaError::Storage(e.to_string())),
        };
        if stored || self.serials.contains(&serial) {
            return Err(CaError::SerialCollision(serial));
        }
        let redeemed = match enrollment {
            Some(id) => {
                let mut e = self.enrollment(&id)?;
                e.check_redeemable(record.issued_at)?;
                e.serial = Some(record.serial);
                Some((id, e))
            }
            None => None,
        };
        let renewed_from = record.renewed_from.and_then(|s| Serial::from_bytes(&s));
        if let Some(old) = renewed_from {
            if self.revocation(&old)?.is_some() {
                return Err(CaError::RenewalRefused(format!(
                    "{old} was revoked while its renewal was being signed"
                )));
            }
            self.batch.put_cf(
                self.store.cf(cf::RENEWALS)?,
                old.as_bytes(),
                serial.as_bytes(),
            );
        }
        self.counters.cert_seq += 1;
        record.seq = self.counters.cert_seq;
        record.issued_at = record.issued_at.max(self.counters.last_issued_at);
        self.counters.last_issued_at = record.issued_at;
        let store = self.store;
        let seq = record.seq.to_be_bytes();
        self.batch
            .put_cf(store.cf(cf::ISSUED)?, seq, record.encode()?);
        self.batch
            .put_cf(store.cf(cf::SERIALS)?, serial.as_bytes(), seq);
        let mut expiry_key = [0u8; 24];
        expiry_key[..8].copy_from_slice(&record.not_after.to_be_bytes());
        expiry_key[8..].copy_from_slice(serial.as_bytes());
        self.batch.put_cf(store.cf(cf::BY_EXPIRY)?, expiry_key, []);
        if let Some((key, request_hash)) = idempotency {
            let entry = IdempotencyRecord {
                serial,
                request_hash,
            };
            self.batch
                .put_cf(store.cf(cf::IDEM)?, key.as_bytes(), entry.encode());
            self.keys.insert(key, entry);
        }
        let names_cf = store.cf(cf::NAMES)?;
        for mut key in names {
            key.extend_from_slice(&seq);
            self.batch.put_cf(names_cf, key, []);
        }
        let event = AuditEvent::new(
            record.issued_at,
            &record.requester,
            AuditAction::CertificateIssued,
            serial.to_hex(),
        )
        .with("profile", record.profile.clone());
        match renewed_from {
            Some(old) => self.audit(
                AuditEvent {
                    action: AuditAction::CertificateRenewed,
                    ..event
                }
                .with("renewed_from", old.to_hex()),
                &[old],
            )?,
            None => self.audit(event, &[])?,
        };
        if let Some((id, e)) = redeemed {
            let event = AuditEvent::new(
                record.issued_at,
                "(public)",
                AuditAction::EnrollmentRedeemed,
                hex::encode(id),
            )
            .with("serial", serial.to_hex());
            self.put_enrollment(id, e)?;
            self.audit(event, &[])?;
        }
        self.serials.insert(serial);
        self.certificates.insert(serial, record.not_after);
        Ok(Committed::Stored(record))
    }

    /// The revocation state of `serial` as this group leaves it.
    fn revocation(&self, serial: &Serial) -> Result<Option<Revocation>, CaError> {
        match self.revocations.get(serial) {
            Some(state) => Ok(*state),
            None => self.store.revocation(serial),
        }
    }

    fn not_after(&self, serial: &Serial) -> Result<i64, CaError> {
        if let Some(not_after) = self.certificates.get(serial) {
            return Ok(*not_after);
        }
        self.store
            .certificate(serial)?
            .map(|r| r.not_after)
            .ok_or_else(|| CaError::SerialNotFound(serial.to_hex()))
    }

    fn record_change(&mut self, serial: &Serial, state: Option<Revocation>) -> Result<(), CaError> {
        self.counters.change_seq += 1;
        let store = self.store;
        match &state {
            Some(r) => self
                .batch
                .put_cf(store.cf(cf::REVOKED)?, serial.as_bytes(), r.encode()?),
            None => self
                .batch
                .delete_cf(store.cf(cf::REVOKED)?, serial.as_bytes()),
        }
        self.batch.put_cf(
            store.cf(cf::CRL_CHANGES)?,
            self.counters.change_seq.to_be_bytes(),
            serial.as_bytes(),
        );
        self.revocations.insert(*serial, state);
        Ok(())
    }

    fn revoke(&mut self, req: RevokeRequest) -> Result<Revocation, CaError> {
        let not_after = self.not_after(&req.serial)?;
        if let Some(existing) = self.revocation(&req.serial)? {
            if !existing.is_hold() || req.reason == RevocationReason::CertificateHold {
                return Err(CaError::AlreadyRevoked {
                    serial: req.serial.to_hex(),
                    reason: existing.reason.name(),
                });
            }
        }
        let revocation = Revocation {
            reason: req.reason,
            revoked_at: req.at,
            invalidity_date: req.invalidity_date,
            not_after,
        };
        self.record_change(&req.serial, Some(revocation))?;
        let mut event = AuditEvent::new(
            req.at,
            &req.actor,
            AuditAction::CertificateRevoked,
            req.serial.to_hex(),
        )
        .with("reason", req.reason.name());
        if let Some(d) = req.invalidity_date {
            event = event.with("invalidity_date", crate::audit::rfc3339(d)?);
        }
        self.audit(event, &[req.serial])?;
        Ok(revocation)
    }

    fn release(&mut self, serial: Serial, actor: String) -> Result<(), CaError> {
        self.not_after(&serial)?;
        match self.revocation(&serial)? {
            Some(r) if r.is_hold() => {
                self.record_change(&serial, None)?;
                let at = time::OffsetDateTime::now_utc().unix_timestamp();
                let event = AuditEvent::new(at, &actor, AuditAction::HoldReleased, serial.to_hex());
                self.audit(event, &[serial]).map(drop)
            }
            Some(r) => Err(CaError::NotOnHold(format!(
                "{serial} is revoked ({}) for good",
                r.reason.name()
            ))),
            None => Err(CaError::NotOnHold(format!("{serial} is not on hold"))),
        }
    }

    fn crl_number(&mut self, req: CrlRequest) -> Result<CrlPosition, CaError> {
        self.counters.crl_number = (self.counters.crl_number + 1).max(req.floor);
        let at = time::OffsetDateTime::now_utc().unix_timestamp();
        let event = AuditEvent::new(
            at,
            &req.actor,
            AuditAction::CrlGenerated,
            self.counters.crl_number.to_string(),
        )
        .with("kind", req.kind);
        self.audit(event, &[])?;
        // An empty batch is not written; a CRL number must be durable before it is used.
        let meta = self.store.cf(cf::META)?;
        self.batch.put_cf(
            meta,
            META_CRL_NUMBER,
            self.counters.crl_number.to_be_bytes(),
        );
        Ok(CrlPosition {
            number: self.counters.crl_number,
            change_seq: self.counters.change_seq,
        })
    }
}
