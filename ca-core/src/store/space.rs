//! Whether the RocksDB store can write now: the free space of its filesystem against a
//! reserve (`[store] min_free_bytes`), and the outcome of its last write.
//!
//! A write is refused before it starts, with [`CaError::StoreUnavailable`] (503, retry), when
//! the filesystem holding the store has less free space than the reserve, so that a full disk
//! refuses whole requests instead of failing one in the middle of a batch. A write that fails
//! because the disk is full answers the same error. While the last write failed, the store is
//! not writable ([`WriteGate::state`], `/readyz`) until a write succeeds again; RocksDB
//! resumes by itself once space is freed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::CaError;

/// How long a measure of the free space is used before the filesystem is asked again.
const FREE_SPACE_TTL: Duration = Duration::from_secs(1);

/// The bytes of disk a write is counted as using, per byte of its batch: its WAL record now
/// and its table file when the memtable is flushed.
const WRITE_AMPLIFICATION: u64 = 2;

/// The space of a filesystem, in bytes, from `statvfs(3)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilesystemSpace {
    /// Bytes available to an unprivileged process (`f_bavail`).
    pub avail: u64,
    /// The filesystem's size (`f_blocks`).
    pub size: u64,
}

/// The space of the filesystem holding `path`.
pub fn filesystem_space(path: &Path) -> std::io::Result<FilesystemSpace> {
    let fs = rustix::fs::statvfs(path)?;
    Ok(FilesystemSpace {
        avail: fs.f_bavail.saturating_mul(fs.f_frsize),
        size: fs.f_blocks.saturating_mul(fs.f_frsize),
    })
}

/// Why the store cannot write now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotWritable {
    /// The filesystem has less free space than the reserve.
    BelowReserve {
        /// Bytes available.
        avail: u64,
        /// The reserve (`[store] min_free_bytes`).
        reserve: u64,
    },
    /// The last write failed for lack of space.
    DiskFull,
    /// The last write failed with another I/O error (its message).
    WriteFailed(String),
}

impl NotWritable {
    /// A short name of the reason, for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            NotWritable::BelowReserve { .. } => "below_reserve",
            NotWritable::DiskFull => "disk_full",
            NotWritable::WriteFailed(_) => "write_failed",
        }
    }
}

impl std::fmt::Display for NotWritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotWritable::BelowReserve { avail, reserve } => write!(
                f,
                "the store's filesystem has {avail} bytes free, too few to write and keep the \
                 reserve of {reserve} \
                 bytes ([store] min_free_bytes); writes resume once space is freed"
            ),
            NotWritable::DiskFull => write!(
                f,
                "the store's filesystem is full (no space left on device); writes resume once \
                 space is freed"
            ),
            NotWritable::WriteFailed(why) => write!(f, "the store's last write failed: {why}"),
        }
    }
}

impl From<NotWritable> for CaError {
    fn from(why: NotWritable) -> Self {
        match why {
            // A failing device is a fault of the CA (500); the rest pass once space is freed.
            NotWritable::WriteFailed(why) => CaError::Storage(why),
            other => CaError::StoreUnavailable(other.to_string()),
        }
    }
}

/// How a gate measures its filesystem ([`filesystem_space`], or a fake in tests).
type MeasureFs = Box<dyn Fn(&Path) -> std::io::Result<FilesystemSpace> + Send + Sync>;

/// A measure of the free space, and the bytes written since.
#[derive(Clone, Copy, Debug)]
struct Measure {
    /// When the filesystem was asked.
    at: Instant,
    /// Bytes available then.
    avail: u64,
    /// Bytes admitted since, times [`WRITE_AMPLIFICATION`].
    spent: u64,
}

impl Measure {
    /// The bytes available now, as far as this measure knows.
    fn left(&self) -> u64 {
        self.avail.saturating_sub(self.spent)
    }
}

/// The gate every write of a store passes: the free-space reserve of the store's filesystem
/// and the outcome of the last write.
///
/// The filesystem is asked at most once per [`FREE_SPACE_TTL`]; in between, the bytes each
/// admitted write will use are taken off the last measure, and the filesystem is asked again
/// as soon as that estimate falls below the reserve, so that a second of writes cannot run
/// past the reserve.
pub struct WriteGate {
    /// A directory on the filesystem measured (the store's).
    dir: PathBuf,
    /// How the filesystem is measured ([`filesystem_space`]).
    measure: MeasureFs,
    /// The reserve in bytes; 0: no reserve.
    reserve: AtomicU64,
    /// The last measure of the free space.
    free: Mutex<Option<Measure>>,
    /// Why the last write failed, until one succeeds.
    failure: Mutex<Option<NotWritable>>,
    /// When the last probe write was tried ([`WriteGate::probe_due`]).
    probed: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for WriteGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGate")
            .field("dir", &self.dir)
            .field("reserve", &self.reserve)
            .field("free", &self.free)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl WriteGate {
    /// A gate for the store in `dir`, without a reserve.
    pub fn new(dir: &Path) -> Self {
        Self::measured_by(dir, Box::new(filesystem_space))
    }

    /// A gate whose filesystem is measured by `measure`.
    fn measured_by(dir: &Path, measure: MeasureFs) -> Self {
        WriteGate {
            dir: dir.to_path_buf(),
            measure,
            reserve: AtomicU64::new(0),
            free: Mutex::new(None),
            failure: Mutex::new(None),
            probed: Mutex::new(None),
        }
    }

    /// Refuses writes while the filesystem has less than `bytes` free (0: never).
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
        *lock(&self.free) = None;
    }

    /// Ok when a write of `bytes` (its batch's size) may start: it leaves the filesystem at
    /// least the reserve free, as last measured less what the writes admitted since will use.
    /// The filesystem is asked again when the measure is older than [`FREE_SPACE_TTL`] or
    /// its estimate does not admit the write; when it cannot be asked, nothing is refused
    /// for it.
    pub fn admit(&self, bytes: u64) -> Result<(), NotWritable> {
        let reserve = self.reserve.load(Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        let need = reserve.saturating_add(bytes.saturating_mul(WRITE_AMPLIFICATION));
        let mut free = lock(&self.free);
        let measure = match *free {
            Some(m) if m.at.elapsed() < FREE_SPACE_TTL && m.left() >= need => m,
            _ => match (self.measure)(&self.dir) {
                Ok(space) => Measure {
                    at: Instant::now(),
                    avail: space.avail,
                    spent: 0,
                },
                Err(e) => {
                    tracing::debug!(dir = %self.dir.display(), error = %e, "statvfs of the store");
                    *free = None;
                    return Ok(());
                }
            },
        };
        *free = Some(measure);
        let left = measure.left();
        if left < need {
            return Err(NotWritable::BelowReserve {
                avail: left,
                reserve,
            });
        }
        *free = Some(Measure {
            spent: measure.spent.saturating_add(need - reserve),
            ..measure
        });
        Ok(())
    }

    /// Records the outcome of a write: a success clears the failure recorded before.
    pub fn record(&self, outcome: Result<(), NotWritable>) {
        let mut failure = lock(&self.failure);
        match outcome {
            Ok(()) => {
                if let Some(was) = failure.take() {
                    tracing::info!(was = %was, "the store writes again");
                }
            }
            Err(why) => {
                if failure.is_none() {
                    tracing::error!(error = %why, "the store cannot write");
                }
                // A write that failed may have used the space measured before.
                *lock(&self.free) = None;
                *failure = Some(why);
            }
        }
    }

    /// Why the store cannot write now, if it cannot: below the reserve, or its last write
    /// failed.
    pub fn state(&self) -> Option<NotWritable> {
        self.admit(0).err().or_else(|| lock(&self.failure).clone())
    }

    /// Whether the last write failed.
    pub fn failed(&self) -> bool {
        lock(&self.failure).is_some()
    }

    /// Whether a write that changes nothing should be tried now to learn whether the store
    /// writes again: after a failed write, at most once per [`FREE_SPACE_TTL`].
    pub fn probe_due(&self) -> bool {
        if !self.failed() {
            return false;
        }
        let mut probed = lock(&self.probed);
        if probed.is_some_and(|at| at.elapsed() < FREE_SPACE_TTL) {
            return false;
        }
        *probed = Some(Instant::now());
        true
    }
}

/// The value behind `mutex`, also after a thread panicked while holding it (the values kept
/// here are whole at every point).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a RocksDB write error means for the gate: the disk full, or another I/O error.
pub(crate) fn classify(error: &rocksdb::Error) -> Option<NotWritable> {
    let message = error.as_ref().to_ascii_lowercase();
    if message.contains("no space") {
        Some(NotWritable::DiskFull)
    } else if error.kind() == rocksdb::ErrorKind::IOError {
        Some(NotWritable::WriteFailed(error.to_string()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_free_space_refuses_and_zero_admits() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gate = WriteGate::new(tmp.path());
        assert_eq!(gate.admit(0), Ok(()));
        gate.set_reserve(u64::MAX);
        let refused = gate.admit(0).expect_err("below the reserve");
        assert_eq!(refused.reason(), "below_reserve");
        assert_eq!(gate.state().map(|s| s.reason()), Some("below_reserve"));
        let error = CaError::from(refused);
        assert_eq!(error.code(), "storage_unavailable", "{error}");
        gate.set_reserve(0);
        assert_eq!(gate.state(), None);
    }

    #[test]
    fn a_failed_write_makes_the_store_unwritable_until_one_succeeds() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let gate = WriteGate::new(tmp.path());
        gate.record(Err(NotWritable::DiskFull));
        assert_eq!(gate.state(), Some(NotWritable::DiskFull));
        assert!(gate.failed());
        gate.record(Ok(()));
        assert_eq!(gate.state(), None);
    }

    /// Writes in quick succession (within one measure's life) stop near the reserve: each
    /// admitted write is taken off the last measure, and the filesystem asked again.
    #[test]
    fn writes_between_two_measures_do_not_run_past_the_reserve() {
        use std::sync::Arc;
        const MIB: u64 = 1 << 20;
        let avail = Arc::new(AtomicU64::new(100 * MIB));
        let disk = Arc::clone(&avail);
        let gate = WriteGate::measured_by(
            Path::new("/"),
            Box::new(move |_| {
                Ok(FilesystemSpace {
                    avail: disk.load(Ordering::Relaxed),
                    size: 200 * MIB,
                })
            }),
        );
        gate.set_reserve(10 * MIB);
        let mut writes = 0;
        while gate.admit(MIB).is_ok() {
            // The write's WAL record and, later, its table file.
            avail.fetch_sub(WRITE_AMPLIFICATION * MIB, Ordering::Relaxed);
            writes += 1;
            assert!(writes < 100, "never refused");
        }
        let left = avail.load(Ordering::Relaxed);
        assert!(
            (10 * MIB..13 * MIB).contains(&left),
            "refused with {left} bytes free after {writes} writes"
        );
        // Space freed: admitted again at once (the filesystem is asked again).
        avail.fetch_add(50 * MIB, Ordering::Relaxed);
        assert_eq!(gate.admit(MIB), Ok(()));
    }

    #[test]
    fn filesystem_space_is_measured() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let space = filesystem_space(tmp.path()).expect("statvfs");
        assert!(space.size > 0 && space.avail <= space.size, "{space:?}");
    }
}
