//! The store writer: the one thread through which a store is changed while the engine runs.
//!
//! It takes everything that has arrived (up to a maximum), checks each operation against the
//! store and the group itself (serial uniqueness, idempotency keys, revocation state), writes
//! the group durably in one commit, and only then answers each waiting request (group
//! commit). What a group decides is the same for every store; a store provides only its reads
//! and the layout of its writes ([`GroupBackend`]: RocksDB's in [`super::rocks_groups`]). One
//! writer per store makes these checks, the issuance sequence, the CRL change sequence and
//! the CRL number race-free; a store shared by several nodes serializes their writers' groups
//! in [`GroupBackend::begin`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use super::acme::{self, AcmeIndexOp, AcmeKind, AcmeWrite};
use super::rocks_groups::RocksGroups;
use super::tokens::{revoked_token, token_event, token_revoked_event};
use super::{CertRecord, EnrollmentRecord, IdempotencyKey, IdempotencyRecord, Store, TokenRecord};
use crate::audit::{AuditAction, AuditEntry, AuditEvent, AuditHead, Checkpoint, Protocol};
use crate::error::CaError;
use crate::metrics::Metrics;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::Serial;

/// The actor of the audit entries a subscriber causes with an enrollment code (no token), as
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
    /// The enrollment this certificate redeems: it must still be pending when the certificate
    /// commits, and is marked redeemed in the same batch (a code works once).
    pub enrollment: Option<[u8; 16]>,
    /// The protocol the request came by: the issuance entry's `protocol` detail, except for
    /// the JSON API.
    pub protocol: Protocol,
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
    /// For a keyCompromise revocation: SHA-256 of the certificate's SubjectPublicKeyInfo,
    /// blocked (`blocked_keys`) in the revocation's own commit. Ignored for other reasons.
    pub blocked_key: Option<[u8; 32]>,
    /// The mass revocation this revocation belongs to ([`crate::mass_revocation`]): its id
    /// is the `action` detail of the audit entry.
    pub action: Option<crate::audit::ActionId>,
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

/// A floor under the CRL numbers to come: the last number taken becomes at least `floor`, so
/// that the next CRL is numbered above it. After a restore, the floor is above every number
/// the CA may have published since the backup.
#[derive(Clone, Debug)]
pub struct CrlFloor {
    /// The least last number.
    pub floor: u64,
    /// Who asked, for the audit log.
    pub actor: String,
    /// Why, for the audit log (e.g. the backup restored).
    pub why: String,
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
    /// Raise the last CRL number taken to a floor (unchanged when above it already).
    RaiseCrlNumber(CrlFloor, Reply<CrlPosition>),
    /// Store an API token under its hash, as `actor` asked; refused when its name is or was
    /// taken.
    PutToken([u8; 32], TokenRecord, String, Reply<()>),
    /// Revoke the API token with this name at this time (Unix seconds), as `actor` asked;
    /// answers the revoked record.
    RevokeToken(String, i64, String, Reply<TokenRecord>),
    /// Append an event to the audit log, with `events` pointers for the serials.
    Record(AuditEvent, Vec<Serial>, Reply<AuditHead>),
    /// Tell the audit log's head (writes nothing).
    AuditHead(Reply<AuditHead>),
    /// Store a signed checkpoint of the audit log.
    Checkpoint(Checkpoint, Reply<()>),
    /// Store a new enrollment (its id and record), as `actor` asked.
    CreateEnrollment([u8; 16], EnrollmentRecord, String, Reply<()>),
    /// Count a wrong code for an enrollment; answers the record after it.
    FailedAttempt([u8; 16], Reply<EnrollmentRecord>),
    /// Roll back the redemption of an enrollment (its id) for a certificate (its serial) that
    /// could not be delivered: revoke the certificate and make the enrollment pending again.
    UndoRedemption([u8; 16], Serial, Reply<()>),
    /// Make one ACME change (its objects, claims and links) with its audit entry, all or
    /// nothing; refused when an object is not at the expected version or a key is claimed by
    /// another id.
    Acme(AcmeWrite, Reply<()>),
}

/// The running writer thread: the one place through which a store is changed while an
/// engine runs. Any store implementation ([`Storage`](super::Storage)) provides one, as a
/// thread that takes [`WriteOp`]s and answers each once it is durable.
#[derive(Debug)]
pub struct StoreWriter {
    tx: Sender<WriteOp>,
    handle: JoinHandle<()>,
}

impl StoreWriter {
    /// Starts the RocksDB writer on `store`, committing at most `max_batch` operations per
    /// WriteBatch and recording commit times and sizes in `metrics`.
    pub fn start(store: Store, max_batch: usize, metrics: Arc<Metrics>) -> Result<Self, CaError> {
        let mut backend = RocksGroups::new(store)?;
        Self::spawn(move |rx| serve(&mut backend, &rx, max_batch, &metrics))
    }

    /// Starts a writer thread that runs `serve` on the operations sent to it; `serve`
    /// returns once every sender is dropped and everything received is answered.
    pub fn spawn(serve: impl FnOnce(Receiver<WriteOp>) + Send + 'static) -> Result<Self, CaError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name("ca-store-writer".into())
            .spawn(move || serve(rx))
            .map_err(|e| {
                CaError::internal("starting the store writer thread", Some(Box::new(e)))
            })?;
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

/// The sequences a store's writes advance, as committed with its last group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// The issuance sequence number of the newest certificate.
    pub cert_seq: u64,
    /// The sequence number of the newest revocation change (delta CRLs).
    pub change_seq: u64,
    /// The last CRL number allocated.
    pub crl_number: u64,
    /// The audit log's head.
    pub audit: AuditHead,
    /// `issued_at` of the newest certificate: issuance times never decrease along the
    /// issuance sequence, so that time ranges are exact ranges of `issued`.
    pub last_issued_at: i64,
}

/// One change a group makes, in terms of the store seam's records, borrowed from the
/// operation that makes it; each store lays it out in its own tables
/// ([`GroupBackend::stage`]).
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// A new certificate (its record holds its issuance seq and serial).
    Certificate(&'a CertRecord),
    /// A request's idempotency key, pointing at the certificate it produced.
    Idempotency(&'a IdempotencyKey, &'a IdempotencyRecord),
    /// A `names` index entry (see [`super::query::names_prefix`]) of the certificate with this
    /// issuance seq.
    Name(&'a [u8], u64),
    /// `serial` (issuance seq `seq`) renews `old`.
    Renewal {
        /// The renewed certificate.
        old: Serial,
        /// The renewal's issuance seq.
        seq: u64,
        /// The renewal's serial.
        serial: Serial,
    },
    /// The revocation state of `serial` after change `change_seq` (`None`: a hold released).
    Revocation {
        /// The certificate.
        serial: Serial,
        /// Its state from now on.
        state: Option<Revocation>,
        /// The change's sequence number (delta CRLs list the serials changed after one).
        change_seq: u64,
    },
    /// A key (SHA-256 of its SubjectPublicKeyInfo) blocked by the keyCompromise revocation of
    /// a serial.
    BlockedKey([u8; 32], Serial),
    /// An API token (new or changed), by hash.
    Token(&'a [u8; 32], &'a TokenRecord),
    /// A token name taken for good by the token with this hash.
    TokenName(&'a str, &'a [u8; 32]),
    /// An enrollment (new or changed), by id.
    Enrollment(&'a [u8; 16], &'a EnrollmentRecord),
    /// An audit entry, and the serials it concerns (their `events`).
    Audit(&'a AuditEntry, &'a [Serial]),
    /// A signed checkpoint of the audit log.
    Checkpoint(&'a Checkpoint),
    /// An ACME object, new or changed, at this version.
    AcmeObject {
        /// The object's kind.
        kind: AcmeKind,
        /// The object's id.
        id: &'a [u8],
        /// Its version from now on.
        version: u64,
        /// Its value from now on.
        value: &'a [u8],
    },
    /// An ACME unique key, claimed by the object id `id` (`None`: released).
    AcmeClaim {
        /// The unique key.
        key: &'a [u8],
        /// Its holder from now on.
        id: Option<&'a [u8]>,
    },
    /// An ACME list member, added (`linked`) or removed.
    AcmeLink {
        /// The member's key.
        key: &'a [u8],
        /// Whether it is a member from now on.
        linked: bool,
    },
}

/// The storage side of the store writer: where a group's reads come from and where its
/// changes go. What a group decides (what is refused, what is audited, how the sequences
/// advance) is [`serve`]'s, the same for every store.
///
/// A group runs `begin`, reads and stages while it applies its operations, then `commit`
/// (also when it has nothing to write, which ends what `begin` started). Reads see every
/// group committed before `begin`, on any node.
pub trait GroupBackend {
    /// A change in the store's own layout.
    type Write;
    /// Starts a group and answers the counters as the last committed group left them. A store
    /// shared by several writers serializes groups here (a lock held until `commit`).
    fn begin(&mut self) -> Result<Counters, CaError>;
    /// Which of `serials` (reordered at will) the store already holds.
    fn stored_serials(&mut self, serials: &mut [Serial]) -> Result<HashSet<Serial>, CaError>;
    /// The stored outcome of the request with this idempotency key.
    fn idempotency(&mut self, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, CaError>;
    /// The hash of the token that has or had `name`.
    fn token_name_holder(&mut self, name: &str) -> Result<Option<[u8; 32]>, CaError>;
    /// The token with this hash.
    fn token(&mut self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, CaError>;
    /// The enrollment with this id.
    fn enrollment(&mut self, id: &[u8; 16]) -> Result<Option<EnrollmentRecord>, CaError>;
    /// The revocation state of `serial`.
    fn revocation(&mut self, serial: &Serial) -> Result<Option<Revocation>, CaError>;
    /// The notAfter of the certificate `serial`, if this CA issued it.
    fn not_after(&mut self, serial: &Serial) -> Result<Option<i64>, CaError>;
    /// The stored version of the ACME object of this kind and id.
    fn acme_version(&mut self, kind: AcmeKind, id: &[u8]) -> Result<Option<u64>, CaError>;
    /// The id that holds the ACME unique key `key`.
    fn acme_claim_holder(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError>;
    /// Lays `change` out as the store's writes, appended to `writes`.
    fn stage(&self, change: Change<'_>, writes: &mut Vec<Self::Write>) -> Result<(), CaError>;
    /// Writes `writes` and `counters` durably, all or nothing, and ends the group.
    fn commit(&mut self, writes: Vec<Self::Write>, counters: &Counters) -> Result<(), CaError>;
}

/// The writer's loop: takes everything that has arrived (up to `max_batch`), applies it as one
/// group and commits it through `backend`; returns once every sender is dropped.
pub fn serve<B: GroupBackend>(
    backend: &mut B,
    rx: &Receiver<WriteOp>,
    max_batch: usize,
    metrics: &Metrics,
) {
    let max_batch = max_batch.max(1);
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
        commit(backend, ops);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Applies the one operation `op` makes of a reply channel through a group on `backend`, and
/// answers its outcome: how the command line changes a store while no engine runs, with the
/// writer's own checks and audit entries.
pub fn apply_one<B: GroupBackend, T>(
    backend: &mut B,
    op: impl FnOnce(Reply<T>) -> WriteOp,
) -> Result<T, CaError> {
    let (tx, mut rx) = oneshot::channel();
    commit(backend, vec![op(tx)]);
    rx.try_recv()
        .map_err(|_| CaError::internal("the store group did not answer", None))?
}

/// An answer that waits for the commit.
enum Answer {
    Certificate(Reply<Committed>, Result<Committed, CaError>),
    Revoke(Reply<Revocation>, Result<Revocation, CaError>),
    Unit(Reply<()>, Result<(), CaError>),
    Crl(Reply<CrlPosition>, Result<CrlPosition, CaError>),
    Head(Reply<AuditHead>, Result<AuditHead, CaError>),
    Enrollment(Reply<EnrollmentRecord>, Result<EnrollmentRecord, CaError>),
    Token(Reply<TokenRecord>, Result<TokenRecord, CaError>),
}

impl Answer {
    /// The answer `error` for `op`, unapplied (the group could not start).
    fn refused(op: WriteOp, error: &CaError) -> Self {
        match op {
            WriteOp::Certificate(_, tx) => Answer::Certificate(tx, Err(error.for_group())),
            WriteOp::Revoke(_, tx) => Answer::Revoke(tx, Err(error.for_group())),
            WriteOp::ReleaseHold(_, _, tx)
            | WriteOp::PutToken(_, _, _, tx)
            | WriteOp::Checkpoint(_, tx)
            | WriteOp::CreateEnrollment(_, _, _, tx)
            | WriteOp::UndoRedemption(_, _, tx)
            | WriteOp::Acme(_, tx) => Answer::Unit(tx, Err(error.for_group())),
            WriteOp::NextCrlNumber(_, tx) | WriteOp::RaiseCrlNumber(_, tx) => {
                Answer::Crl(tx, Err(error.for_group()))
            }
            WriteOp::RevokeToken(_, _, _, tx) => Answer::Token(tx, Err(error.for_group())),
            WriteOp::Record(_, _, tx) | WriteOp::AuditHead(tx) => {
                Answer::Head(tx, Err(error.for_group()))
            }
            WriteOp::FailedAttempt(_, tx) => Answer::Enrollment(tx, Err(error.for_group())),
        }
    }

    /// Turns a success into `error` (the batch did not commit).
    fn fail(&mut self, error: &CaError) {
        let e = || error.for_group();
        match self {
            Answer::Certificate(_, r @ Ok(Committed::Stored(_))) => *r = Err(e()),
            Answer::Revoke(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Unit(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Crl(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Head(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Enrollment(_, r @ Ok(_)) => *r = Err(e()),
            Answer::Token(_, r @ Ok(_)) => *r = Err(e()),
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
            Answer::Token(tx, r) => tx.send(r).map_err(drop),
        };
    }
}

/// One group being assembled: its writes and what it already holds, so that operations in
/// the same group see each other.
///
/// Every operation is all-or-nothing: its writes are staged apart from the group's and join
/// them only when the whole operation succeeds, and every change it makes to the group's
/// state (counters, the maps below) is undone when it fails. So an error anywhere in an
/// operation (say, while its audit entry is formatted) leaves neither a write nor a moved
/// counter behind, and the rest of the group commits as if it had never been sent.
struct Group<'b, B: GroupBackend> {
    backend: &'b mut B,
    writes: Vec<B::Write>,
    counters: Counters,
    /// The writes of the operation being applied, not yet in `writes`.
    staged: Vec<B::Write>,
    /// How to undo the changes the operation being applied made to the maps below.
    undo: Vec<Undo>,
    /// Which of the group's serials the store already holds (looked up once per group).
    stored: Result<HashSet<Serial>, CaError>,
    /// The serials this group stores.
    serials: HashSet<Serial>,
    keys: HashMap<IdempotencyKey, IdempotencyRecord>,
    revocations: HashMap<Serial, Option<Revocation>>,
    certificates: HashMap<Serial, i64>,
    enrollments: HashMap<[u8; 16], EnrollmentRecord>,
    /// Token names this group takes, to the token's hash.
    token_names: HashMap<String, [u8; 32]>,
    /// Tokens this group changes, by hash.
    tokens: HashMap<[u8; 32], TokenRecord>,
    /// Versions of the ACME objects this group writes.
    acme_objects: HashMap<(AcmeKind, Vec<u8>), u64>,
    /// Holders of the ACME keys this group claims (`None`: released).
    acme_claims: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Test-only fault injection (see [`Fault`]).
    #[cfg(test)]
    fault: Fault,
}

/// A change to the group's maps and the value it replaced.
enum Undo {
    Serial(Serial),
    Key(IdempotencyKey, Option<IdempotencyRecord>),
    Revocation(Serial, Option<Option<Revocation>>),
    Certificate(Serial, Option<i64>),
    Enrollment([u8; 16], Option<EnrollmentRecord>),
    TokenName(String, Option<[u8; 32]>),
    Token([u8; 32], Option<TokenRecord>),
    AcmeObject((AcmeKind, Vec<u8>), Option<u64>),
    AcmeClaim(Vec<u8>, Option<Option<Vec<u8>>>),
}

/// Puts `previous` back under `key` (removes the key when there was none).
fn restore<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, previous: Option<V>) {
    match previous {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

/// Test-only: the operations of a group (by position) that fail right after their first
/// write, to show that a failed operation leaves no trace.
#[cfg(test)]
#[derive(Default)]
struct Fault {
    /// Fail right after the first write.
    faulty: HashSet<usize>,
    /// Fail once every write is staged, as the operation is about to succeed.
    at_end: HashSet<usize>,
    op: usize,
    writes: u32,
}

/// Applies and commits one group of operations, answering each.
fn commit<B: GroupBackend>(backend: &mut B, ops: Vec<WriteOp>) {
    match Group::begin(backend, &ops) {
        Ok(group) => group.commit(ops),
        Err(e) => {
            tracing::error!(error = %e, "store group could not start; its requests are refused");
            ops.into_iter()
                .for_each(|op| Answer::refused(op, &e).send());
        }
    }
}

impl<'b, B: GroupBackend> Group<'b, B> {
    /// Starts a group for `ops` on `backend`.
    fn begin(backend: &'b mut B, ops: &[WriteOp]) -> Result<Self, CaError> {
        let counters = backend.begin()?;
        let mut drawn: Vec<Serial> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::Certificate(cert, _) => Some(cert.record.serial),
                _ => None,
            })
            .collect();
        // Should the look-up fail, every certificate of the group is refused with its error.
        let stored = backend.stored_serials(&mut drawn);
        Ok(Group {
            backend,
            writes: Vec::new(),
            counters,
            staged: Vec::new(),
            undo: Vec::new(),
            stored,
            serials: HashSet::new(),
            keys: HashMap::new(),
            revocations: HashMap::new(),
            certificates: HashMap::new(),
            enrollments: HashMap::new(),
            token_names: HashMap::new(),
            tokens: HashMap::new(),
            acme_objects: HashMap::new(),
            acme_claims: HashMap::new(),
            #[cfg(test)]
            fault: Fault::default(),
        })
    }

    /// Applies `ops`, writes the group and answers each operation.
    fn commit(mut self, ops: Vec<WriteOp>) {
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops {
            #[cfg(test)]
            {
                self.fault.writes = 0;
            }
            replies.push(self.apply(op));
            #[cfg(test)]
            {
                self.fault.op += 1;
            }
        }
        let writes = std::mem::take(&mut self.writes);
        if let Err(e) = self.backend.commit(writes, &self.counters) {
            tracing::error!(error = %e, "store commit failed; the group's requests are refused");
            replies.iter_mut().for_each(|r| r.fail(&e));
        }
        replies.into_iter().for_each(Answer::send);
    }

    /// Applies one operation to the group, all or nothing; answers what to tell its
    /// requester once the group is written.
    fn apply(&mut self, op: WriteOp) -> Answer {
        match op {
            WriteOp::Certificate(cert, tx) => {
                Answer::Certificate(tx, self.atomic(|g| g.certificate(cert)))
            }
            WriteOp::Revoke(req, tx) => Answer::Revoke(tx, self.atomic(|g| g.revoke(req))),
            WriteOp::ReleaseHold(serial, actor, tx) => {
                Answer::Unit(tx, self.atomic(|g| g.release(serial, actor)))
            }
            WriteOp::NextCrlNumber(req, tx) => Answer::Crl(tx, self.atomic(|g| g.crl_number(req))),
            WriteOp::RaiseCrlNumber(req, tx) => {
                Answer::Crl(tx, self.atomic(|g| g.raise_crl_number(req)))
            }
            WriteOp::PutToken(hash, record, actor, tx) => {
                Answer::Unit(tx, self.atomic(|g| g.token(&hash, &record, &actor)))
            }
            WriteOp::RevokeToken(name, at, actor, tx) => {
                Answer::Token(tx, self.atomic(|g| g.revoke_token(&name, at, &actor)))
            }
            WriteOp::Record(event, serials, tx) => {
                Answer::Head(tx, self.atomic(|g| g.audit(event, &serials)))
            }
            WriteOp::AuditHead(tx) => Answer::Head(tx, Ok(self.counters.audit)),
            WriteOp::Checkpoint(cp, tx) => {
                Answer::Unit(tx, self.atomic(|g| g.change(Change::Checkpoint(&cp))))
            }
            WriteOp::CreateEnrollment(id, record, actor, tx) => {
                Answer::Unit(tx, self.atomic(|g| g.create_enrollment(id, record, &actor)))
            }
            WriteOp::FailedAttempt(id, tx) => {
                Answer::Enrollment(tx, self.atomic(|g| g.failed_attempt(id)))
            }
            WriteOp::UndoRedemption(id, serial, tx) => {
                Answer::Unit(tx, self.atomic(|g| g.undo_redemption(id, serial)))
            }
            WriteOp::Acme(write, tx) => Answer::Unit(tx, self.atomic(|g| g.acme(write))),
        }
    }

    /// Runs one operation: on success its staged writes join the group's; on failure they are
    /// dropped and the counters and maps are put back as they were before it.
    fn atomic<T>(
        &mut self,
        operation: impl FnOnce(&mut Self) -> Result<T, CaError>,
    ) -> Result<T, CaError> {
        let counters = self.counters;
        #[allow(unused_mut)]
        let mut result = operation(self);
        #[cfg(test)]
        if result.is_ok() && self.fault.at_end.contains(&self.fault.op) {
            result = Err(CaError::Storage("injected fault".into()));
        }
        if result.is_ok() {
            self.writes.append(&mut self.staged);
            self.undo.clear();
        } else {
            self.staged.clear();
            self.counters = counters;
            while let Some(undo) = self.undo.pop() {
                match undo {
                    Undo::Serial(serial) => {
                        self.serials.remove(&serial);
                    }
                    Undo::Key(key, prev) => restore(&mut self.keys, key, prev),
                    Undo::Revocation(serial, prev) => restore(&mut self.revocations, serial, prev),
                    Undo::Certificate(serial, prev) => {
                        restore(&mut self.certificates, serial, prev)
                    }
                    Undo::Enrollment(id, prev) => restore(&mut self.enrollments, id, prev),
                    Undo::TokenName(name, prev) => restore(&mut self.token_names, name, prev),
                    Undo::Token(hash, prev) => restore(&mut self.tokens, hash, prev),
                    Undo::AcmeObject(key, prev) => restore(&mut self.acme_objects, key, prev),
                    Undo::AcmeClaim(key, prev) => restore(&mut self.acme_claims, key, prev),
                }
            }
        }
        result
    }

    /// Stages `change` for the operation being applied.
    fn change(&mut self, change: Change<'_>) -> Result<(), CaError> {
        self.backend.stage(change, &mut self.staged)?;
        self.wrote()
    }

    /// Called after each change an operation stages: under test, fails the operations chosen
    /// by [`Fault`] right after their first write.
    fn wrote(&mut self) -> Result<(), CaError> {
        #[cfg(test)]
        {
            self.fault.writes += 1;
            if self.fault.writes == 1 && self.fault.faulty.contains(&self.fault.op) {
                return Err(CaError::Storage("injected fault".into()));
            }
        }
        Ok(())
    }

    /// Appends an audit entry to the group, pointing from each of `serials` to it.
    fn audit(&mut self, event: AuditEvent, serials: &[Serial]) -> Result<AuditHead, CaError> {
        let entry = AuditEntry::chain(self.counters.audit, event)?;
        let head = entry.head();
        self.change(Change::Audit(&entry, serials))?;
        self.counters.audit = head;
        Ok(head)
    }

    /// The hash of the token holding `name` as this group leaves it.
    fn token_name_holder(&mut self, name: &str) -> Result<Option<[u8; 32]>, CaError> {
        match self.token_names.get(name) {
            Some(hash) => Ok(Some(*hash)),
            None => self.backend.token_name_holder(name),
        }
    }

    fn token(&mut self, hash: &[u8; 32], record: &TokenRecord, actor: &str) -> Result<(), CaError> {
        if self.token_name_holder(&record.name)?.is_some() {
            return Err(CaError::TokenNameTaken(record.name.clone()));
        }
        self.change(Change::Token(hash, record))?;
        self.change(Change::TokenName(&record.name, hash))?;
        let previous = self.token_names.insert(record.name.clone(), *hash);
        self.undo
            .push(Undo::TokenName(record.name.clone(), previous));
        let previous = self.tokens.insert(*hash, record.clone());
        self.undo.push(Undo::Token(*hash, previous));
        self.audit(token_event(record, actor), &[]).map(drop)
    }

    fn revoke_token(&mut self, name: &str, at: i64, actor: &str) -> Result<TokenRecord, CaError> {
        let not_found = || CaError::TokenNotFound(name.to_string());
        let hash = self.token_name_holder(name)?.ok_or_else(not_found)?;
        let record = match self.tokens.get(&hash) {
            Some(record) => record.clone(),
            None => self.backend.token(&hash)?.ok_or_else(not_found)?,
        };
        let revoked = revoked_token(record, at)?;
        self.change(Change::Token(&hash, &revoked))?;
        let previous = self.tokens.insert(hash, revoked.clone());
        self.undo.push(Undo::Token(hash, previous));
        self.audit(token_revoked_event(&revoked, at, actor), &[])?;
        Ok(revoked)
    }

    /// The enrollment as this group leaves it.
    fn enrollment(&mut self, id: &[u8; 16]) -> Result<EnrollmentRecord, CaError> {
        match self.enrollments.get(id) {
            Some(r) => Ok(r.clone()),
            None => self
                .backend
                .enrollment(id)?
                .ok_or_else(|| CaError::EnrollmentNotFound(hex::encode(id))),
        }
    }

    fn put_enrollment(&mut self, id: [u8; 16], record: EnrollmentRecord) -> Result<(), CaError> {
        self.change(Change::Enrollment(&id, &record))?;
        let previous = self.enrollments.insert(id, record);
        self.undo.push(Undo::Enrollment(id, previous));
        Ok(())
    }

    fn create_enrollment(
        &mut self,
        id: [u8; 16],
        record: EnrollmentRecord,
        actor: &str,
    ) -> Result<(), CaError> {
        if self.enrollments.contains_key(&id) || self.backend.enrollment(&id)?.is_some() {
            return Err(CaError::Storage("enrollment id collision".into()));
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
        let event = AuditEvent::new(now, PUBLIC_ACTOR, action, hex::encode(id))
            .with("failed_attempts", record.failed_attempts.to_string());
        self.put_enrollment(id, record.clone())?;
        self.audit(event, &[])?;
        Ok(record)
    }

    /// Revokes `serial` (cessationOfOperation) and clears the enrollment's serial, so that it is
    /// pending again (or locked or expired, as its counts and deadline say), with an
    /// `enrollment_reopened` audit entry. Refused unless the enrollment was redeemed for exactly
    /// that certificate.
    fn undo_redemption(&mut self, id: [u8; 16], serial: Serial) -> Result<(), CaError> {
        let mut record = self.enrollment(&id)?;
        if record.serial != Some(serial) {
            return Err(CaError::Storage(format!(
                "enrollment {} was not redeemed for {serial}",
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
            blocked_key: None,
            action: None,
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

    /// The version of an ACME object as this group leaves it.
    fn acme_version(&mut self, kind: AcmeKind, id: &[u8]) -> Result<Option<u64>, CaError> {
        match self.acme_objects.get(&(kind, id.to_vec())) {
            Some(version) => Ok(Some(*version)),
            None => self.backend.acme_version(kind, id),
        }
    }

    /// The holder of an ACME unique key as this group leaves it.
    fn acme_claim_holder(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        match self.acme_claims.get(key) {
            Some(holder) => Ok(holder.clone()),
            None => self.backend.acme_claim_holder(key),
        }
    }

    fn set_acme_claim(&mut self, key: &[u8], id: Option<&[u8]>) -> Result<(), CaError> {
        self.change(Change::AcmeClaim { key, id })?;
        let previous = self
            .acme_claims
            .insert(key.to_vec(), id.map(<[u8]>::to_vec));
        self.undo.push(Undo::AcmeClaim(key.to_vec(), previous));
        Ok(())
    }

    /// One ACME change: every put at the version it expects, then the index changes, then the
    /// audit entry. A put whose object is not at the expected version, or a claim of a key
    /// another id holds, refuses the whole change.
    fn acme(&mut self, write: AcmeWrite) -> Result<(), CaError> {
        write.check()?;
        let AcmeWrite { puts, index, event } = write;
        for put in &puts {
            let stored = self.acme_version(put.kind, &put.id)?;
            if stored != put.expect {
                return Err(acme::conflict(put, stored));
            }
            let version = match put.expect {
                None => 1,
                Some(v) => v.checked_add(1).ok_or_else(|| CaError::AcmeConflict {
                    what: format!(
                        "{} {} has no version after {v}",
                        put.kind.name(),
                        hex::encode(&put.id)
                    ),
                })?,
            };
            self.change(Change::AcmeObject {
                kind: put.kind,
                id: &put.id,
                version,
                value: &put.value,
            })?;
            let key = (put.kind, put.id.clone());
            let previous = self.acme_objects.insert(key.clone(), version);
            self.undo.push(Undo::AcmeObject(key, previous));
        }
        for op in &index {
            match op {
                AcmeIndexOp::Claim { key, id } => match self.acme_claim_holder(key)? {
                    Some(holder) if holder == *id => {}
                    Some(holder) => return Err(CaError::AcmeIndexTaken { holder }),
                    None => self.set_acme_claim(key, Some(id))?,
                },
                AcmeIndexOp::Release { key } => {
                    if self.acme_claim_holder(key)?.is_some() {
                        self.set_acme_claim(key, None)?;
                    }
                }
                AcmeIndexOp::Link { key } => self.change(Change::AcmeLink { key, linked: true })?,
                AcmeIndexOp::Unlink { key } => {
                    self.change(Change::AcmeLink { key, linked: false })?
                }
            }
        }
        self.audit(event, &[]).map(drop)
    }

    fn certificate(&mut self, cert: NewCertificate) -> Result<Committed, CaError> {
        let NewCertificate {
            mut record,
            idempotency,
            names,
            enrollment,
            protocol,
        } = cert;
        let serial = record.serial;
        if let Some((key, _)) = &idempotency {
            if let Some(existing) = self.keys.get(key) {
                return Ok(Committed::Existing(*existing));
            }
            if let Some(existing) = self.backend.idempotency(key)? {
                return Ok(Committed::Existing(existing));
            }
        }
        let stored = match &self.stored {
            Ok(stored) => stored.contains(&serial),
            Err(e) => return Err(e.for_group()),
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
        let renewed_from = record.renewed_from;
        if let Some(old) = renewed_from {
            if self.revocation(&old)?.is_some() {
                return Err(CaError::RenewalRefused(format!(
                    "{old} was revoked while its renewal was being signed"
                )));
            }
        }
        self.counters.cert_seq += 1;
        record.seq = self.counters.cert_seq;
        if let Some(old) = renewed_from {
            self.change(Change::Renewal {
                old,
                seq: record.seq,
                serial,
            })?;
        }
        record.issued_at = record.issued_at.max(self.counters.last_issued_at);
        self.counters.last_issued_at = record.issued_at;
        let mut event = AuditEvent::new(
            record.issued_at,
            &record.requester,
            AuditAction::CertificateIssued,
            serial.to_hex(),
        )
        .with("profile", record.profile.clone());
        if protocol != Protocol::Api {
            event = event.with("protocol", protocol.name());
        }
        // The record names its issuance entry; a renewal is an event of the old serial too.
        let head = match renewed_from {
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
        record.audit_seq = Some(head.seq);
        let seq = record.seq;
        self.change(Change::Certificate(&record))?;
        if let Some((key, request_hash)) = idempotency {
            let entry = IdempotencyRecord {
                serial,
                request_hash,
            };
            self.change(Change::Idempotency(&key, &entry))?;
            let previous = self.keys.insert(key.clone(), entry);
            self.undo.push(Undo::Key(key, previous));
        }
        for prefix in &names {
            self.change(Change::Name(prefix, seq))?;
        }
        if let Some((id, e)) = redeemed {
            let event = AuditEvent::new(
                record.issued_at,
                PUBLIC_ACTOR,
                AuditAction::EnrollmentRedeemed,
                hex::encode(id),
            )
            .with("serial", serial.to_hex());
            self.put_enrollment(id, e)?;
            self.audit(event, &[])?;
        }
        if self.serials.insert(serial) {
            self.undo.push(Undo::Serial(serial));
        }
        let previous = self.certificates.insert(serial, record.not_after);
        self.undo.push(Undo::Certificate(serial, previous));
        Ok(Committed::Stored(record))
    }

    /// The revocation state of `serial` as this group leaves it.
    fn revocation(&mut self, serial: &Serial) -> Result<Option<Revocation>, CaError> {
        match self.revocations.get(serial) {
            Some(state) => Ok(*state),
            None => self.backend.revocation(serial),
        }
    }

    fn not_after(&mut self, serial: &Serial) -> Result<i64, CaError> {
        if let Some(not_after) = self.certificates.get(serial) {
            return Ok(*not_after);
        }
        self.backend
            .not_after(serial)?
            .ok_or_else(|| CaError::SerialNotFound(serial.to_hex()))
    }

    fn record_change(&mut self, serial: &Serial, state: Option<Revocation>) -> Result<(), CaError> {
        self.counters.change_seq += 1;
        self.change(Change::Revocation {
            serial: *serial,
            state,
            change_seq: self.counters.change_seq,
        })?;
        let previous = self.revocations.insert(*serial, state);
        self.undo.push(Undo::Revocation(*serial, previous));
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
        if let Some(action) = req.action {
            event = event.with("action", action.to_string());
        }
        if let (RevocationReason::KeyCompromise, Some(key)) = (req.reason, req.blocked_key) {
            // Never certified again (Baseline Requirements 6.1.1.3 item 4); the audit entry
            // names the key.
            self.change(Change::BlockedKey(key, req.serial))?;
            event = event.with("blocked_key_sha256", hex::encode(key));
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

    /// Allocates the next CRL number. Its audit entry makes the group write, so the number is
    /// durable (with the counters) before it is used.
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
        Ok(CrlPosition {
            number: self.counters.crl_number,
            change_seq: self.counters.change_seq,
        })
    }

    fn raise_crl_number(&mut self, req: CrlFloor) -> Result<CrlPosition, CaError> {
        let previous = self.counters.crl_number;
        self.counters.crl_number = previous.max(req.floor);
        let at = time::OffsetDateTime::now_utc().unix_timestamp();
        let event = AuditEvent::new(
            at,
            &req.actor,
            AuditAction::CrlNumberRaised,
            self.counters.crl_number.to_string(),
        )
        .with("previous", previous.to_string())
        .with("why", req.why);
        self.audit(event, &[])?;
        Ok(CrlPosition {
            number: self.counters.crl_number,
            change_seq: self.counters.change_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::cf;

    const NOW: i64 = 1_800_000_000;

    fn counters(store: &Store) -> Counters {
        RocksGroups::new(store.clone()).unwrap().begin().unwrap()
    }

    fn serial(n: u8) -> Serial {
        let mut bytes = [n; 16];
        bytes[0] = 0x40;
        Serial::from_bytes(&bytes).unwrap()
    }

    fn certificate(
        n: u8,
        renewed_from: Option<Serial>,
        enrollment: Option<[u8; 16]>,
    ) -> NewCertificate {
        NewCertificate {
            record: CertRecord {
                seq: 0,
                serial: serial(n),
                der: vec![0x30, 0x03, 0x02, 0x01, n],
                profile: "tls-server".into(),
                requester: "ra".into(),
                issued_at: NOW,
                not_before: NOW - 60,
                not_after: NOW + 86_400,
                renewed_from,
                audit_seq: None,
            },
            idempotency: Some((IdempotencyKey::new(&[n; 32], "request"), [n; 32])),
            names: vec![b"Nexample.com\0".to_vec()],
            enrollment,
            protocol: Protocol::Api,
        }
    }

    fn enrollment() -> EnrollmentRecord {
        EnrollmentRecord {
            profile: "personal".into(),
            subject: "CN=x".into(),
            sans: Vec::new(),
            validity_days: None,
            code_hash: vec![1; 48],
            requester: "ra".into(),
            created_at: NOW,
            expires_at: NOW + 3_600,
            max_attempts: 5,
            failed_attempts: 0,
            serial: None,
        }
    }

    fn token(name: &str) -> TokenRecord {
        TokenRecord {
            name: name.into(),
            role: "ra".into(),
            created_at: NOW,
            id: [1; 16],
            expires_at: None,
            revoked_at: None,
        }
    }

    /// An ACME write: `puts` (kind Account, id, expected version), then `index`.
    fn acme_write(
        puts: &[(&[u8], Option<u64>)],
        index: Vec<AcmeIndexOp>,
        action: AuditAction,
    ) -> AcmeWrite {
        AcmeWrite {
            puts: puts
                .iter()
                .map(|(id, expect)| acme::AcmePut {
                    kind: AcmeKind::Account,
                    id: id.to_vec(),
                    expect: *expect,
                    value: format!("{expect:?}").into_bytes(),
                })
                .collect(),
            index,
            event: AuditEvent::new(NOW, "acme", action, "target"),
        }
    }

    fn claim(key: &[u8], id: &[u8]) -> AcmeIndexOp {
        AcmeIndexOp::Claim {
            key: key.to_vec(),
            id: id.to_vec(),
        }
    }

    fn link(key: &[u8]) -> AcmeIndexOp {
        AcmeIndexOp::Link { key: key.to_vec() }
    }

    fn revoke(n: u8, reason: RevocationReason) -> RevokeRequest {
        RevokeRequest {
            serial: serial(n),
            reason,
            at: NOW,
            invalidity_date: Some(NOW - 10),
            actor: "ra".into(),
            blocked_key: (reason == RevocationReason::KeyCompromise).then_some([n; 32]),
            action: None,
        }
    }

    /// Every entry of every column family.
    fn dump(store: &Store) -> BTreeMap<(&'static str, Vec<u8>), Vec<u8>> {
        let mut out = BTreeMap::new();
        for name in cf::ALL {
            let mut it = store.db.raw_iterator_cf(store.cf(name).unwrap());
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                out.insert((name, k.to_vec()), v.to_vec());
                it.next();
            }
            it.status().unwrap();
        }
        out
    }

    /// Commits `ops` in one group, the operations at `faulty` failing right after their first
    /// write; returns the counters after the group.
    fn commit_with_faults(store: &Store, ops: Vec<WriteOp>, faulty: &[usize]) -> Counters {
        let mut backend = RocksGroups::new(store.clone()).unwrap();
        let mut group = Group::begin(&mut backend, &ops).unwrap();
        group.fault.faulty = faulty.iter().copied().collect();
        group.commit(ops);
        counters(store)
    }

    /// Commits `ops` in one group, the operations at `at_end` failing once all their writes
    /// are staged; returns the counters after the group.
    fn commit_failing_at_end(store: &Store, ops: Vec<WriteOp>, at_end: &[usize]) -> Counters {
        let mut backend = RocksGroups::new(store.clone()).unwrap();
        let mut group = Group::begin(&mut backend, &ops).unwrap();
        group.fault.at_end = at_end.iter().copied().collect();
        group.commit(ops);
        counters(store)
    }

    /// Healthy setup: certificates 1 and 2, certificate 2 on hold, an enrollment (its id is
    /// answered) and a token named `old`.
    fn setup(store: &Store) -> [u8; 16] {
        let enrollment_id = [7u8; 16];
        // Setup, healthy: certificates 1 and 2, certificate 2 on hold, an enrollment.
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        let (tx4, mut rx4) = oneshot::channel();
        commit_with_faults(
            store,
            vec![
                WriteOp::Certificate(certificate(1, None, None), tx1),
                WriteOp::Certificate(certificate(2, None, None), tx2),
                WriteOp::CreateEnrollment(enrollment_id, enrollment(), "ra".into(), tx3),
                WriteOp::PutToken([5; 32], token("old"), "op".into(), tx4),
            ],
            &[],
        );
        assert!(rx1.try_recv().unwrap().is_ok());
        assert!(rx2.try_recv().unwrap().is_ok());
        assert!(rx3.try_recv().unwrap().is_ok());
        assert!(rx4.try_recv().unwrap().is_ok());
        let (tx, mut rx) = oneshot::channel();
        commit_with_faults(
            store,
            vec![WriteOp::Revoke(
                revoke(2, RevocationReason::CertificateHold),
                tx,
            )],
            &[],
        );
        assert!(rx.try_recv().unwrap().is_ok());
        enrollment_id
    }

    /// The writer's promise: an operation that fails, wherever it fails, leaves no trace in
    /// the group (batch, counters, what later operations of the group see), so that the
    /// group commits exactly the healthy operations and the audit log stays whole.
    #[test]
    fn a_failed_operation_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let enrollment_id = setup(&store);

        let before = counters(&store);
        let stored_before = dump(&store);
        // Every kind of operation that writes, each failing after its first write, and one
        // healthy operation after them.
        let mut receivers: Vec<Box<dyn FnMut() -> Option<bool>>> = Vec::new();
        macro_rules! op {
            ($variant:ident, $($arg:expr),*) => {{
                let (tx, mut rx) = oneshot::channel();
                let op = WriteOp::$variant($($arg,)* tx);
                receivers.push(Box::new(move || rx.try_recv().ok().map(|r| r.is_ok())));
                op
            }};
        }
        let event = |target: &str| AuditEvent::new(NOW, "op", AuditAction::CrlGenerated, target);
        let ops = vec![
            op!(
                Certificate,
                certificate(3, Some(serial(1)), Some(enrollment_id))
            ),
            op!(Certificate, certificate(4, None, None)),
            op!(Revoke, revoke(1, RevocationReason::KeyCompromise)),
            op!(ReleaseHold, serial(2), "ra".to_string()),
            op!(
                NextCrlNumber,
                CrlRequest {
                    floor: 0,
                    actor: "op".into(),
                    kind: "full"
                }
            ),
            op!(PutToken, [9; 32], token("new"), "op".to_string()),
            op!(RevokeToken, "old".to_string(), NOW, "op".to_string()),
            op!(Record, event("faulty"), vec![serial(1)]),
            op!(
                Checkpoint,
                Checkpoint {
                    head: before.audit,
                    at: NOW,
                    signature: vec![1, 2, 3],
                }
            ),
            op!(CreateEnrollment, [8; 16], enrollment(), "ra".to_string()),
            op!(FailedAttempt, enrollment_id),
            op!(
                Acme,
                acme_write(
                    &[(b"acct", None)],
                    vec![claim(b"thumb", b"acct"), link(b"acct/order")],
                    AuditAction::AcmeAccountCreated
                )
            ),
            op!(
                Acme,
                acme_write(
                    &[],
                    vec![link(b"acct/order"), claim(b"thumb", b"acct")],
                    AuditAction::AcmeOrderCreated
                )
            ),
            op!(Record, event("healthy"), vec![]),
        ];
        let faulty: Vec<usize> = (0..ops.len() - 1).collect();
        let after = commit_with_faults(&store, ops, &faulty);

        let answers: Vec<Option<bool>> = receivers.iter_mut().map(|f| f()).collect();
        let mut expected = vec![Some(false); faulty.len()];
        expected.push(Some(true));
        assert_eq!(
            answers, expected,
            "every faulty operation refused, the healthy one done"
        );

        // Counters: only the audit head moved, by the healthy entry.
        assert_eq!(after.cert_seq, before.cert_seq);
        assert_eq!(after.change_seq, before.change_seq);
        assert_eq!(after.crl_number, before.crl_number);
        assert_eq!(after.last_issued_at, before.last_issued_at);
        assert_eq!(after.audit.seq, before.audit.seq + 1);

        // The store: exactly the healthy operation's writes.
        let stored_after = dump(&store);
        let changed: Vec<_> = stored_after
            .iter()
            .filter(|(k, v)| stored_before.get(*k) != Some(*v))
            .map(|((name, key), _)| (*name, hex::encode(key)))
            .collect();
        let removed: Vec<_> = stored_before
            .keys()
            .filter(|k| !stored_after.contains_key(*k))
            .map(|(name, key)| (*name, hex::encode(key)))
            .collect();
        assert_eq!(
            changed,
            vec![
                (cf::AUDIT, hex::encode(after.audit.seq.to_be_bytes())),
                (cf::META, hex::encode(super::super::META_AUDIT_HEAD)),
            ],
            "written beyond the healthy operation"
        );
        assert!(removed.is_empty(), "removed: {removed:?}");
        let entry = store.audit_entries(before.audit.seq, 10).unwrap();
        let targets: Vec<&str> = entry
            .iter()
            .map(|e: &AuditEntry| e.event.target.as_str())
            .collect();
        assert_eq!(targets, ["healthy"]);
        let report = store.verify_audit(&[]).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(report.head, after.audit);
    }

    /// Token names are decided by the writer: within one group and against the store.
    #[test]
    fn the_issuance_entry_names_the_protocol_except_the_json_api() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let est = NewCertificate {
            protocol: Protocol::Est,
            ..certificate(2, None, None)
        };
        commit_with_faults(
            &store,
            vec![
                WriteOp::Certificate(certificate(1, None, None), tx1),
                WriteOp::Certificate(est, tx2),
            ],
            &[],
        );
        assert!(rx1.try_recv().unwrap().is_ok());
        assert!(rx2.try_recv().unwrap().is_ok());
        let entries = store.audit_entries(0, 10).unwrap();
        let protocols: Vec<Option<&str>> = entries
            .iter()
            .map(|e| e.event.details.get("protocol").map(String::as_str))
            .collect();
        assert_eq!(protocols, [None, Some("est")]);
    }

    #[test]
    fn token_names_are_unique_within_a_group_and_across_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        commit_with_faults(
            &store,
            vec![
                WriteOp::PutToken([1; 32], token("ra"), "op".into(), tx1),
                WriteOp::PutToken([2; 32], token("ra"), "op".into(), tx2),
                WriteOp::RevokeToken("ra".into(), NOW, "op".into(), tx3),
            ],
            &[],
        );
        assert!(rx1.try_recv().unwrap().is_ok());
        let err = rx2.try_recv().unwrap().unwrap_err();
        assert_eq!(err.code(), "token_name_taken");
        assert_eq!(rx3.try_recv().unwrap().unwrap().revoked_at, Some(NOW));
        assert_eq!(store.token_name_holder("ra").unwrap(), Some([1; 32]));
        assert!(store.token(&[2; 32]).unwrap().is_none());
        let (tx, mut rx) = oneshot::channel();
        commit_with_faults(
            &store,
            vec![WriteOp::PutToken([3; 32], token("ra"), "op".into(), tx)],
            &[],
        );
        assert_eq!(
            rx.try_recv().unwrap().unwrap_err().code(),
            "token_name_taken"
        );
        let report = store.verify_audit(&[]).unwrap();
        assert!(report.broken.is_none() && report.entries == 2, "{report:?}");
    }

    /// The group's maps are restored too: operations failing once all their writes are
    /// staged (so after every change they make to the maps), followed in the same group by
    /// healthy operations that would be refused, or answer differently, had a failed one left
    /// anything behind.
    #[test]
    fn a_failed_operation_leaves_the_group_as_it_found_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let enrollment_id = setup(&store);
        let before = counters(&store);
        let mut receivers: Vec<Box<dyn FnMut() -> Option<String>>> = Vec::new();
        macro_rules! op {
            ($variant:ident, $($arg:expr),*) => {{
                let (tx, mut rx) = oneshot::channel();
                let op = WriteOp::$variant($($arg,)* tx);
                receivers.push(Box::new(move || {
                    rx.try_recv().ok().map(|r| match r {
                        Ok(v) => format!("{v:?}"),
                        Err(e) => format!("error {}", e.code()),
                    })
                }));
                op
            }};
        }
        let crl = || CrlRequest {
            floor: 0,
            actor: "op".into(),
            kind: "full",
        };
        let mut all = Vec::new();
        for _ in 0..2 {
            all.push(op!(FailedAttempt, enrollment_id));
            all.push(op!(
                Certificate,
                certificate(3, Some(serial(1)), Some(enrollment_id))
            ));
            all.push(op!(Revoke, revoke(1, RevocationReason::KeyCompromise)));
            all.push(op!(ReleaseHold, serial(2), "ra".to_string()));
            all.push(op!(NextCrlNumber, crl()));
            all.push(op!(
                RaiseCrlNumber,
                CrlFloor {
                    // Below the number taken: only its audit entry changes the store.
                    floor: 0,
                    actor: "op".into(),
                    why: "test".into(),
                }
            ));
            all.push(op!(PutToken, [9; 32], token("new"), "op".to_string()));
            all.push(op!(RevokeToken, "old".to_string(), NOW, "op".to_string()));
            all.push(op!(
                CreateEnrollment,
                [8; 16],
                enrollment(),
                "ra".to_string()
            ));
            // Refused should a failed one leave its version behind; without its claim, should
            // a failed one leave that behind (claiming what the same id holds is no change).
            all.push(op!(
                Acme,
                acme_write(
                    &[(b"acct", None)],
                    vec![claim(b"thumb", b"acct"), link(b"acct/order")],
                    AuditAction::AcmeAccountCreated
                )
            ));
        }
        let n = all.len() / 2;
        let after = commit_failing_at_end(&store, all, &(0..n).collect::<Vec<_>>());
        let answers: Vec<Option<String>> = receivers.iter_mut().map(|f| f()).collect();
        assert!(
            answers[..n]
                .iter()
                .all(|a| a.as_deref() == Some("error storage_error")),
            "{answers:?}"
        );
        assert!(
            answers[n..]
                .iter()
                .all(|a| a.as_ref().is_some_and(|a| !a.starts_with("error"))),
            "a healthy operation saw what a failed one left behind: {:?}",
            &answers[n..]
        );
        // The healthy ones' effects, as if the failed ones had never been sent.
        assert_eq!(after.cert_seq, before.cert_seq + 1);
        assert_eq!(after.change_seq, before.change_seq + 2);
        assert_eq!(after.crl_number, before.crl_number + 1);
        let e = store.enrollment(&enrollment_id).unwrap().unwrap();
        assert_eq!((e.failed_attempts, e.serial), (1, Some(serial(3))));
        assert!(store.revocation(&serial(2)).unwrap().is_none());
        assert!(store.revocation(&serial(1)).unwrap().is_some());
        // The keyCompromise revocation blocked its key in the same commit.
        assert_eq!(store.key_blocked_by(&[1; 32]).unwrap(), Some(serial(1)));
        assert!(store.token(&[5; 32]).unwrap().unwrap().revoked_at.is_some());
        assert_eq!(store.token_name_holder("new").unwrap(), Some([9; 32]));
        assert_eq!(
            store.acme_object(AcmeKind::Account, b"acct").unwrap(),
            Some(acme::AcmeObject {
                version: 1,
                value: b"None".to_vec()
            })
        );
        assert_eq!(
            store.acme_claim_holder(b"thumb").unwrap(),
            Some(b"acct".to_vec())
        );
        assert_eq!(
            store.acme_links(b"acct/", None, 10).unwrap(),
            [b"acct/order".to_vec()]
        );
        let report = store.verify_audit(&[]).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(report.head, after.audit);
    }

    /// ACME writes of one group see each other's versions and claims, as if each had been
    /// committed alone in the order sent; a refused one leaves nothing, its puts included.
    #[test]
    fn acme_writes_in_one_group_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let before = counters(&store);
        let writes = vec![
            // Created at version 1, with its key and first order.
            acme_write(
                &[(b"a", None)],
                vec![claim(b"thumb-1", b"a"), link(b"a/o1")],
                AuditAction::AcmeAccountCreated,
            ),
            // Changed from version 1 to 2.
            acme_write(
                &[(b"a", Some(1))],
                vec![link(b"a/o2")],
                AuditAction::AcmeAccountUpdated,
            ),
            // Refused: the key is held by `a`; `c` is not created.
            acme_write(
                &[(b"c", None)],
                vec![link(b"c/o1"), claim(b"thumb-1", b"c")],
                AuditAction::AcmeAccountCreated,
            ),
            // Refused: `a` is at version 2 now.
            acme_write(
                &[(b"a", Some(1))],
                vec![link(b"a/stale")],
                AuditAction::AcmeAccountUpdated,
            ),
            // The key change: version 3, the old key released, the new one claimed.
            acme_write(
                &[(b"a", Some(2))],
                vec![
                    AcmeIndexOp::Release {
                        key: b"thumb-1".to_vec(),
                    },
                    claim(b"thumb-2", b"a"),
                ],
                AuditAction::AcmeAccountKeyChanged,
            ),
            // The released key, free within the group.
            acme_write(
                &[(b"b", None)],
                vec![claim(b"thumb-1", b"b")],
                AuditAction::AcmeAccountCreated,
            ),
        ];
        let mut receivers = Vec::new();
        let ops = writes
            .into_iter()
            .map(|w| {
                let (tx, rx) = oneshot::channel();
                receivers.push(rx);
                WriteOp::Acme(w, tx)
            })
            .collect();
        let after = commit_with_faults(&store, ops, &[]);
        let answers: Vec<Result<(), String>> = receivers
            .iter_mut()
            .map(|rx| rx.try_recv().unwrap().map_err(|e| format!("{e:?}")))
            .collect();
        assert!(answers[0].is_ok() && answers[1].is_ok(), "{answers:?}");
        assert!(
            answers[2]
                .as_ref()
                .is_err_and(|e| e.starts_with("AcmeIndexTaken { holder: [97] }")),
            "{answers:?}"
        );
        assert!(
            answers[3]
                .as_ref()
                .is_err_and(|e| e.starts_with("AcmeConflict")),
            "{answers:?}"
        );
        assert!(answers[4].is_ok() && answers[5].is_ok(), "{answers:?}");

        let version = |id: &[u8]| {
            store
                .acme_object(AcmeKind::Account, id)
                .unwrap()
                .map(|o| o.version)
        };
        assert_eq!(
            (version(b"a"), version(b"b"), version(b"c")),
            (Some(3), Some(1), None)
        );
        assert_eq!(
            store.acme_claim_holder(b"thumb-1").unwrap(),
            Some(b"b".to_vec())
        );
        assert_eq!(
            store.acme_claim_holder(b"thumb-2").unwrap(),
            Some(b"a".to_vec())
        );
        assert_eq!(
            store.acme_links(b"", None, 10).unwrap(),
            [b"a/o1".to_vec(), b"a/o2".to_vec()]
        );
        assert_eq!(after.audit.seq, before.audit.seq + 4);
        let report = store.verify_audit(&[]).unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(report.head, after.audit);
    }
}
