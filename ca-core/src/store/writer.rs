//! The store writer: the one thread that writes issuance results to RocksDB.
//!
//! It takes everything that has arrived (up to a maximum), checks serial uniqueness and
//! idempotency keys against the store and the batch itself, writes one WriteBatch with the WAL
//! synced, and only then answers each waiting request (group commit). Being the only writer
//! makes these checks and the issuance sequence race-free without locks.

use std::collections::{HashMap, HashSet};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rocksdb::WriteBatch;
use tokio::sync::oneshot;

use super::{cf, CertRecord, IdempotencyKey, IdempotencyRecord, Store, META_CERT_SEQ};
use crate::error::CaError;
use crate::serial::Serial;

/// A certificate to record, with the idempotency entry that should point at it.
#[derive(Debug)]
pub struct NewCertificate {
    /// The record (its `seq` is assigned by the writer).
    pub record: CertRecord,
    /// The `(token, request_id)` key and request digest, when the request had a request_id.
    pub idempotency: Option<(IdempotencyKey, [u8; 32])>,
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

/// A reply channel for one write.
pub type CommitReply = oneshot::Sender<Result<Committed, CaError>>;

/// A request to the writer.
#[derive(Debug)]
pub struct WriteOp {
    /// What to write.
    pub cert: NewCertificate,
    /// Where to answer once it is durable (or refused).
    pub reply: CommitReply,
}

/// The running writer thread.
#[derive(Debug)]
pub struct StoreWriter {
    tx: Sender<WriteOp>,
    handle: JoinHandle<()>,
}

impl StoreWriter {
    /// Starts the writer on `store`, committing at most `max_batch` operations per WriteBatch.
    pub fn start(store: Store, max_batch: usize) -> Result<Self, CaError> {
        let seq = store.last_cert_seq()?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name("ca-store-writer".into())
            .spawn(move || run(&store, &rx, seq, max_batch.max(1)))
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

fn run(store: &Store, rx: &Receiver<WriteOp>, mut seq: u64, max_batch: usize) {
    while let Ok(first) = rx.recv() {
        let mut ops = Vec::with_capacity(max_batch.min(1024));
        ops.push(first);
        while ops.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        seq = commit(store, ops, seq);
    }
}

type Pending = (CommitReply, Result<Committed, CaError>);

/// Commits one group; returns the issuance sequence after it.
fn commit(store: &Store, ops: Vec<WriteOp>, seq_before: u64) -> u64 {
    let started = std::time::Instant::now();
    let mut replies: Vec<Pending> = Vec::with_capacity(ops.len());
    let mut batch = WriteBatch::default();
    let mut seq = seq_before;
    let result = (|| -> Result<(), CaError> {
        let certs = store.cf(cf::CERTS)?;
        let by_issued = store.cf(cf::BY_ISSUED)?;
        let by_expiry = store.cf(cf::BY_EXPIRY)?;
        let idem = store.cf(cf::IDEM)?;
        let mut serials: HashSet<Serial> = HashSet::new();
        let mut keys: HashMap<IdempotencyKey, IdempotencyRecord> = HashMap::new();
        for WriteOp { cert, reply } in ops {
            let outcome = (|| -> Result<Committed, CaError> {
                let NewCertificate {
                    mut record,
                    idempotency,
                } = cert;
                let serial = record
                    .serial()
                    .ok_or_else(|| CaError::Storage("record with a malformed serial".into()))?;
                if let Some((key, _)) = &idempotency {
                    if let Some(existing) = keys.get(key) {
                        return Ok(Committed::Existing(*existing));
                    }
                    if let Some(existing) = store.idempotency(key)? {
                        return Ok(Committed::Existing(existing));
                    }
                }
                if serials.contains(&serial) || store.contains_serial(&serial)? {
                    return Err(CaError::SerialCollision(serial));
                }
                seq += 1;
                record.seq = seq;
                batch.put_cf(&certs, serial.as_bytes(), record.encode()?);
                batch.put_cf(&by_issued, seq.to_be_bytes(), serial.as_bytes());
                let mut expiry_key = [0u8; 24];
                expiry_key[..8].copy_from_slice(&record.not_after.to_be_bytes());
                expiry_key[8..].copy_from_slice(serial.as_bytes());
                batch.put_cf(&by_expiry, expiry_key, []);
                if let Some((key, request_hash)) = idempotency {
                    let entry = IdempotencyRecord {
                        serial,
                        request_hash,
                    };
                    batch.put_cf(&idem, key.as_bytes(), entry.encode());
                    keys.insert(key, entry);
                }
                serials.insert(serial);
                Ok(Committed::Stored(record))
            })();
            replies.push((reply, outcome));
        }
        if seq != seq_before {
            batch.put_cf(&store.cf(cf::META)?, META_CERT_SEQ, seq.to_be_bytes());
            store.write(batch)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(error = %e, "store commit failed; the batch's requests are refused");
        seq = seq_before;
        for (_, outcome) in &mut replies {
            if matches!(outcome, Ok(Committed::Stored(_))) {
                *outcome = Err(CaError::Storage(e.to_string()));
            }
        }
    }
    tracing::trace!(
        ops = replies.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "commit"
    );
    for (reply, outcome) in replies {
        // The requester may have gone away (client disconnected); the result stands.
        let _ = reply.send(outcome);
    }
    seq
}
