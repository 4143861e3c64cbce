//! Backups of a data directory and their restore: `ca-server backup`, `ca-server restore` and
//! `POST /v1/backup`.
//!
//! A backup is a directory holding a consistent copy of the RocksDB store taken while the
//! server runs ([`Storage::checkpoint`]: a flush, then hard links or copies of the table
//! files), the data directory's other files (configuration, CA chain, key files, the TLS and
//! OCSP responder material) and a manifest ([`Manifest`]) naming the audit log's head, the
//! last CRL number taken, the certificate count and the SHA-256 of every file. It is built
//! under `NAME.partial` and renamed to `NAME` once complete, so a directory with the final
//! name is always whole.
//!
//! A restore verifies the manifest before it copies anything, and afterwards raises the CRL
//! numbers to come above every number the CA may have published since the backup
//! ([`crl_floor`]), recorded in the audit log (`crl_number_raised`).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ca_core::audit::AuditHead;
use ca_core::store::{Storage, Store};
use ca_core::CaError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api_client::{ApiClient, ClientError};
use crate::config::{Config, StoreBackend};
use crate::datadir::{self, DataDirError};

/// The manifest's file in a backup.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The store's copy in a backup.
pub const STORE_DIR: &str = "store";
/// The data directory's other files in a backup.
pub const FILES_DIR: &str = "files";
/// The manifest's format.
pub const FORMAT: u32 = 1;
/// What a restore adds to the larger of the manifest's CRL number and the clock (in Unix
/// seconds, how CRLs are numbered) to make the floor of the CRL numbers to come: room for a
/// million CRLs signed after the backup faster than one a second.
pub const CRL_NUMBER_MARGIN: u64 = 1_000_000;
/// The suffix of a backup being built.
const PARTIAL: &str = "partial";

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The data directory, its configuration or its store cannot be used.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The store failed or refused.
    #[error(transparent)]
    Core(#[from] CaError),
    /// A file or directory could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The destination exists already.
    #[error("{} exists already; a backup or restore never overwrites", .0.display())]
    Exists(PathBuf),
    /// The store is in PostgreSQL, which its own tools back up.
    #[error(
        "the store is in PostgreSQL: back it up with pg_basebackup and WAL archiving, and \
         after a restore run `ca-server crl floor` (README, Backup and restore)"
    )]
    Postgres,
    /// The manifest is missing or not a manifest of this format.
    #[error("{}: not a backup manifest", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why it cannot be read.
        source: serde_json::Error,
    },
    /// The manifest is of a format this version does not read.
    #[error("the backup's manifest is of format {0}; this version reads format {FORMAT}")]
    Format(u32),
    /// A file listed in the manifest is missing, or differs from what it lists.
    #[error("the backup is damaged: {path} {what}")]
    Damaged {
        /// The file, relative to the backup.
        path: String,
        /// What differs.
        what: &'static str,
    },
    /// A file is in the backup that its manifest does not list.
    #[error("the backup is damaged: {0} is not in its manifest")]
    Unlisted(String),
    /// The restored store's audit head is not the manifest's.
    #[error("the restored store's audit log ends at entry {found}, the manifest says {expected}")]
    HeadDiffers {
        /// The manifest's head.
        expected: u64,
        /// The restored store's.
        found: u64,
    },
    /// The store directory is outside the data directory (an absolute `[ca] db_dir`).
    #[error("[ca] db_dir {} is outside the data directory; make it relative to restore", .0.display())]
    StoreOutside(PathBuf),
    /// The manifest could not be written.
    #[error("writing the manifest")]
    Json(#[source] serde_json::Error),
}

/// Wraps an I/O error with its path.
fn at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup holds, written last as `manifest.json`; a restore checks every file against
/// it first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// When the store was copied, RFC 3339.
    pub created_at: String,
    /// The `ca-server` version that made it.
    pub version: String,
    /// SHA-256 of the CA certificate (hex): the CA whose records these are.
    pub ca_certificate_sha256: String,
    /// The audit log's last entry in the copy.
    pub audit_head: ManifestHead,
    /// The last CRL number taken in the copy: every CRL published before the backup carries
    /// at most this number.
    pub crl_number: u64,
    /// Certificates in the copy.
    pub certificates: u64,
    /// The store's directory in the data directory (`[ca] db_dir`).
    pub db_dir: PathBuf,
    /// Every file of the backup but the manifest, in path order.
    pub files: Vec<ManifestFile>,
}

/// The audit log's head in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestHead {
    /// The last entry's sequence number.
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
}

impl From<AuditHead> for ManifestHead {
    fn from(head: AuditHead) -> Self {
        ManifestHead {
            seq: head.seq,
            hash: hex::encode(head.hash),
        }
    }
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative to the backup, `/`-separated.
    pub path: String,
    /// Its length.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A progress line on standard error, at most once a second, and at the end.
pub struct Progress {
    what: &'static str,
    last: Option<Instant>,
    quiet: bool,
}

impl Progress {
    /// Progress of `what` (e.g. `backup`), printed unless `quiet` (the server's own backups
    /// log instead).
    pub fn new(what: &'static str, quiet: bool) -> Self {
        Progress {
            what,
            last: None,
            quiet,
        }
    }

    /// Reports `done` of `total` files and bytes in a `stage`; printed when a second passed
    /// since the last line, or at the end of the stage.
    fn report(&mut self, stage: &str, files: (usize, usize), bytes: (u64, u64)) {
        let end = files.0 == files.1;
        if self.quiet
            || (!end
                && self
                    .last
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(1)))
        {
            return;
        }
        self.last = Some(Instant::now());
        eprintln!(
            "{}: {stage} {}/{} files, {:.1}/{:.1} MiB",
            self.what,
            files.0,
            files.1,
            bytes.0 as f64 / 1_048_576.0,
            bytes.1 as f64 / 1_048_576.0
        );
    }
}

/// The backup directory `name` in `dir` is built under (`NAME.partial`).
fn partial_of(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(PARTIAL);
    out.with_file_name(name)
}

/// Creates `dir` with mode 0700 (a backup holds key files), with its parents.
fn private_dir(dir: &Path) -> Result<(), BackupError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(at(dir))
}

/// Backs up the data directory `dir` (configuration `config`, open store `store`) into the
/// new directory `out`: the store's checkpoint, the data directory's other files, then the
/// manifest; built under `out.partial`, renamed to `out` once whole. Answers the manifest.
pub fn create(
    dir: &Path,
    config: &Config,
    store: &dyn Storage,
    out: &Path,
    progress: &mut Progress,
) -> Result<Manifest, BackupError> {
    if config.store.backend == StoreBackend::Postgres {
        return Err(BackupError::Postgres);
    }
    if out.exists() {
        return Err(BackupError::Exists(out.to_path_buf()));
    }
    let partial = partial_of(out);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(at(&partial))?;
    }
    private_dir(&partial)?;
    let built = build(dir, config, store, &partial, progress);
    let manifest = match built {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    crate::durable::rename(&partial, out).map_err(at(out))?;
    Ok(manifest)
}

/// Fills the backup directory `partial` and writes its manifest.
fn build(
    dir: &Path,
    config: &Config,
    store: &dyn Storage,
    partial: &Path,
    progress: &mut Progress,
) -> Result<Manifest, BackupError> {
    let store_copy = partial.join(STORE_DIR);
    store.checkpoint(&store_copy)?;
    fs::set_permissions(&store_copy, fs::Permissions::from_mode(0o700)).map_err(at(&store_copy))?;
    let created_at = ca_core::audit::rfc3339(time::OffsetDateTime::now_utc().unix_timestamp())
        .unwrap_or_default();
    let db_dir = Config::resolve(dir, &config.ca.db_dir);
    let backup_dir = Config::resolve(dir, &config.store.backup_dir);
    copy_tree(dir, &partial.join(FILES_DIR), &|path: &Path| {
        path == db_dir || path == backup_dir
    })?;
    // The copy's own records, read from the copy.
    let copy = Store::open_read_only(&store_copy)?;
    let audit_head = copy.checked_audit_head()?;
    let crl_number = copy.last_crl_number()?;
    let certificates = copy.count_certificates()?;
    drop(copy);
    let chain = datadir::load_ca_certificates(dir, config)?;
    let ca_certificate_sha256 = hex::encode(Sha256::digest(
        chain.first().map(Vec::as_slice).unwrap_or_default(),
    ));
    let files = hash_tree(partial, progress, "hashing")?;
    let manifest = Manifest {
        format: FORMAT,
        created_at,
        version: env!("CARGO_PKG_VERSION").to_string(),
        ca_certificate_sha256,
        audit_head: audit_head.into(),
        crl_number,
        certificates,
        db_dir: config.ca.db_dir.clone(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(BackupError::Json)?;
    let path = partial.join(MANIFEST_FILE);
    crate::durable::write(&path, &json, crate::durable::PUBLIC).map_err(at(&path))?;
    Ok(manifest)
}

/// Copies the regular files and directories under `from` into `to` (created 0700), keeping
/// each file's permissions and leaving out the paths `skip` names, symbolic links and any
/// `*.partial` directory; each file is synced.
fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<(), BackupError> {
    private_dir(to)?;
    for entry in fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(at(&path))?;
        let partial = path.extension().is_some_and(|e| e == PARTIAL);
        if skip(&path) || partial {
            continue;
        }
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&path, &target, skip)?;
        } else if kind.is_file() {
            copy_file(&path, &target)?;
        }
    }
    sync_dir(to)
}

/// Copies one file, with its permissions, synced.
fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    fs::copy(from, to).map_err(at(from))?;
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(at(to))
}

/// Fsyncs a directory, so that the names in it survive a power cut.
fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(at(dir))
}

/// Every regular file under `root` but the manifest, relative to `root`, `/`-separated, in
/// path order.
fn list_files(root: &Path) -> Result<Vec<String>, BackupError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), BackupError> {
        for entry in fs::read_dir(dir).map_err(at(dir))? {
            let entry = entry.map_err(at(dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(at(&path))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let name = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if name != MANIFEST_FILE {
                    out.push(name);
                }
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    Ok(files)
}

/// The length and SHA-256 of a file.
fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), BackupError> {
    let mut file = fs::File::open(path).map_err(at(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hasher.finalize().into()))
}

/// Every file under `root` with its length and SHA-256 ([`list_files`]).
fn hash_tree(
    root: &Path,
    progress: &mut Progress,
    stage: &str,
) -> Result<Vec<ManifestFile>, BackupError> {
    let names = list_files(root)?;
    let count = names.len();
    let total: u64 = names
        .iter()
        .map(|n| fs::metadata(root.join(n)).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mut done = 0u64;
    let mut files = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let (bytes, sha256) = hash_file(&root.join(&name))?;
        done += bytes;
        files.push(ManifestFile {
            path: name,
            bytes,
            sha256: hex::encode(sha256),
        });
        progress.report(stage, (i + 1, count), (done, total.max(done)));
    }
    if files.is_empty() {
        progress.report(stage, (0, 0), (0, 0));
    }
    Ok(files)
}

/// Reads the backup `from`'s manifest and checks every file against it: each listed file
/// present with its length and SHA-256, and no file it does not list. Answers the manifest.
pub fn verify(from: &Path, progress: &mut Progress) -> Result<Manifest, BackupError> {
    let path = from.join(MANIFEST_FILE);
    let text = fs::read(&path).map_err(at(&path))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|source| BackupError::Manifest { path, source })?;
    if manifest.format != FORMAT {
        return Err(BackupError::Format(manifest.format));
    }
    let listed: std::collections::BTreeMap<&str, &ManifestFile> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let present = list_files(from)?;
    if let Some(extra) = present.iter().find(|p| !listed.contains_key(p.as_str())) {
        return Err(BackupError::Unlisted(extra.clone()));
    }
    let total: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let mut done = 0u64;
    for (i, file) in manifest.files.iter().enumerate() {
        let on_disk = from.join(&file.path);
        if file.path.split('/').any(|c| c == ".." || c.is_empty()) || !on_disk.is_file() {
            return Err(BackupError::Damaged {
                path: file.path.clone(),
                what: "is missing",
            });
        }
        let (bytes, sha256) = hash_file(&on_disk)?;
        if bytes != file.bytes {
            return Err(BackupError::Damaged {
                path: file.path.clone(),
                what: "has another length",
            });
        }
        if hex::encode(sha256) != file.sha256 {
            return Err(BackupError::Damaged {
                path: file.path.clone(),
                what: "has another SHA-256",
            });
        }
        done += bytes;
        progress.report(
            "verified",
            (i + 1, manifest.files.len()),
            (done, total.max(done)),
        );
    }
    Ok(manifest)
}

/// Moves the finished backup `from` (the server's, in its backup directory) to `to`: a rename
/// on the same filesystem, otherwise a copy (built under `to.partial`) and the removal of
/// `from`.
pub fn relocate(from: &Path, to: &Path) -> Result<(), BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.to_path_buf()));
    }
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(at(parent))?;
    }
    match fs::rename(from, to) {
        Ok(()) => {
            if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let partial = partial_of(to);
            copy_tree(from, &partial, &|_| false)?;
            crate::durable::rename(&partial, to).map_err(at(to))?;
            fs::remove_dir_all(from).map_err(at(from))
        }
        Err(e) => Err(BackupError::Io {
            path: from.to_path_buf(),
            source: e,
        }),
    }
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The last CRL number now taken: the next CRL is numbered above it.
    pub crl_floor: u64,
}

/// The floor of the CRL numbers to come after restoring a backup whose last CRL number was
/// `backed_up`, at `now` (Unix seconds), or the operator's `given` (the last number seen
/// published) when larger: CRLs are numbered at least by the clock and one above the last,
/// so a CA that ran on after the backup published numbers up to the clock plus the CRLs it
/// signed faster than one a second ([`CRL_NUMBER_MARGIN`]).
pub fn crl_floor(backed_up: u64, now: i64, given: Option<u64>) -> u64 {
    let clock = u64::try_from(now).unwrap_or(0);
    backed_up
        .max(clock)
        .saturating_add(CRL_NUMBER_MARGIN)
        .max(given.unwrap_or(0))
}

/// Restores the backup `from` into the new data directory `dir` (absent or empty): verifies
/// the manifest, copies the data directory's files and the store, checks that the store's
/// audit head is the manifest's, and raises the CRL numbers to come to [`crl_floor`] (with
/// the operator's `crl_number_floor`), in the audit log as `actor`.
pub fn restore(
    from: &Path,
    dir: &Path,
    crl_number_floor: Option<u64>,
    actor: &str,
    progress: &mut Progress,
) -> Result<Restored, BackupError> {
    let manifest = verify(from, progress)?;
    if dir.exists() {
        let empty = fs::read_dir(dir).map_err(at(dir))?.next().is_none();
        if !empty {
            return Err(BackupError::Exists(dir.to_path_buf()));
        }
    }
    if manifest.db_dir.is_absolute() {
        return Err(BackupError::StoreOutside(manifest.db_dir));
    }
    copy_tree(&from.join(FILES_DIR), dir, &|_| false)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(at(dir))?;
    copy_tree(
        &from.join(STORE_DIR),
        &Config::resolve(dir, &manifest.db_dir),
        &|_| false,
    )?;
    let core = datadir::start_offline_core(dir)?;
    let head = core.engine.store().audit_head()?;
    if head.seq != manifest.audit_head.seq || hex::encode(head.hash) != manifest.audit_head.hash {
        return Err(BackupError::HeadDiffers {
            expected: manifest.audit_head.seq,
            found: head.seq,
        });
    }
    let floor = crl_floor(
        manifest.crl_number,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        crl_number_floor,
    );
    let why = format!(
        "restore of the backup of {} (audit entry {} {})",
        manifest.created_at, manifest.audit_head.seq, manifest.audit_head.hash
    );
    let position = core.engine.raise_crl_number_blocking(floor, actor, &why)?;
    Ok(Restored {
        manifest,
        crl_floor: position.number,
    })
}

/// Prints a backup's summary line on standard output.
pub fn print_summary(manifest: &Manifest, out: &Path) {
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let mut stdout = io::stdout().lock();
    let _ = writeln!(
        stdout,
        "backup {}: {} certificates, audit head {} {}, CRL number {}, {} files ({:.1} MiB), \
         created {}",
        out.display(),
        manifest.certificates,
        manifest.audit_head.seq,
        manifest.audit_head.hash,
        manifest.crl_number,
        manifest.files.len(),
        bytes as f64 / 1_048_576.0,
        manifest.created_at
    );
}

/// Whether `name` may name a backup in the server's backup directory: 1 to 64 ASCII letters,
/// digits, `-`, `_` and `.`, not starting with `.`, and not ending in `.partial`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && !name.ends_with(".partial")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// How `ca-server backup` reaches a running server.
#[derive(Clone, Debug, Default)]
pub struct Remote {
    /// The API's URL; default [`default_url`].
    pub url: Option<String>,
    /// The file holding an operator token.
    pub token_file: Option<PathBuf>,
    /// CA certificates for the server's TLS certificate; default the CA chain.
    pub cacert: Option<PathBuf>,
}

/// The URL of the server of the data directory `config` describes: `https` when `[tls]`
/// names a certificate, the listen address (loopback when it listens on every address).
pub fn default_url(config: &Config) -> String {
    let scheme = if config.tls.cert_file.as_os_str().is_empty() {
        "http"
    } else {
        "https"
    };
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("{scheme}://{addr}")
}

/// How long `ca-server backup` waits for a running server's backup.
const SERVER_BACKUP_WAIT: Duration = Duration::from_secs(3600);

/// `ca-server backup --out OUT`: with the server stopped, backs up the data directory `dir`
/// itself; while a server holds the store, asks it (`POST /v1/backup`, as `remote` says) and
/// moves the backup it wrote to `out`. Then verifies `out` against its manifest and prints a
/// summary.
pub fn backup_command(dir: &Path, out: &Path, remote: &Remote) -> Result<Manifest, CliBackupError> {
    let config_path = dir.join(crate::config::CONFIG_FILE);
    if !config_path.exists() {
        return Err(CliBackupError::NotADataDir(dir.to_path_buf()));
    }
    let config = Config::load(&config_path).map_err(DataDirError::from)?;
    if config.store.backend == StoreBackend::Postgres {
        return Err(BackupError::Postgres.into());
    }
    if out.exists() {
        return Err(BackupError::Exists(out.to_path_buf()).into());
    }
    let mut progress = Progress::new("backup", false);
    match Store::open(&Config::resolve(dir, &config.ca.db_dir)) {
        Ok(store) => {
            create(dir, &config, &store, out, &mut progress)?;
        }
        Err(e) if held_by_another_process(&e) => {
            eprintln!("backup: the server holds the store; asking it for the backup");
            let written = ask_server(dir, &config, out, remote)?;
            relocate(&written, out)?;
        }
        Err(e) => return Err(BackupError::Core(e).into()),
    }
    let manifest = verify(out, &mut progress)?;
    print_summary(&manifest, out);
    Ok(manifest)
}

/// Whether opening the store failed because another process (the server) holds its lock
/// (RocksDB: `IO error: While lock file: DIR/LOCK: Resource temporarily unavailable`).
fn held_by_another_process(error: &CaError) -> bool {
    crate::cli::error_chain(error).contains("lock file")
}

/// Asks the running server for a backup named after `out` and answers where it wrote it.
/// Should the request time out (`[limits] request_timeout_secs`), the server goes on: waits
/// for the backup to appear.
fn ask_server(
    dir: &Path,
    config: &Config,
    out: &Path,
    remote: &Remote,
) -> Result<PathBuf, CliBackupError> {
    let token_file = remote
        .token_file
        .as_deref()
        .ok_or(CliBackupError::NoTokenFile)?;
    let cacert = remote
        .cacert
        .clone()
        .unwrap_or_else(|| Config::resolve(dir, &config.ca.chain_file));
    let url = remote.url.clone().unwrap_or_else(|| default_url(config));
    let client = ApiClient::new(&url, token_file, Some(&cacert), SERVER_BACKUP_WAIT)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| valid_name(n))
        .unwrap_or_else(|| format!("backup-{}", std::process::id()));
    let written = Config::resolve(dir, &config.store.backup_dir).join(&name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliBackupError::Runtime)?;
    let asked =
        runtime.block_on(client.post_json("/v1/backup", &serde_json::json!({ "name": name })));
    match asked {
        Ok(answer) => Ok(answer["path"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or(written)),
        Err(ClientError::Api { code, .. }) if code == "request_timeout" => {
            let started = Instant::now();
            while !written.join(MANIFEST_FILE).exists() {
                if started.elapsed() > SERVER_BACKUP_WAIT {
                    return Err(CliBackupError::ServerTimeout(written));
                }
                eprintln!(
                    "backup: waiting for the server to finish {}",
                    written.display()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(written)
        }
        Err(e) => Err(e.into()),
    }
}

/// `ca-server restore --from BACKUP`: restores into the data directory `dir` ([`restore`])
/// and prints what it did.
pub fn restore_command(
    from: &Path,
    dir: &Path,
    crl_number_floor: Option<u64>,
    actor: &str,
) -> Result<Restored, CliBackupError> {
    let mut progress = Progress::new("restore", false);
    let restored = restore(from, dir, crl_number_floor, actor, &mut progress)?;
    println!(
        "restored {} certificates (audit head {} {}) into {}; the next CRL is numbered above \
         {}",
        restored.manifest.certificates,
        restored.manifest.audit_head.seq,
        restored.manifest.audit_head.hash,
        dir.display(),
        restored.crl_floor
    );
    Ok(restored)
}

/// Why `ca-server backup` or `restore` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliBackupError {
    /// The backup or restore itself.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Asking the running server.
    #[error("asking the running server")]
    Server(#[from] ClientError),
    /// The directory holds no configuration.
    #[error("{} is not a data directory (no config.toml)", .0.display())]
    NotADataDir(PathBuf),
    /// The async runtime of the request to the server could not start.
    #[error("starting the runtime")]
    Runtime(#[source] io::Error),
    /// The server holds the store and no operator token was given to ask it.
    #[error("the server holds the store: give --token-file FILE (an operator token) to ask it")]
    NoTokenFile,
    /// The server's backup did not appear in time.
    #[error("the server's backup {} did not appear within an hour", .0.display())]
    ServerTimeout(PathBuf),
}

impl From<DataDirError> for CliBackupError {
    fn from(e: DataDirError) -> Self {
        CliBackupError::Backup(BackupError::DataDir(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crl_floor_is_above_the_backup_the_clock_and_the_operators_number() {
        let now = 1_800_000_000;
        assert_eq!(crl_floor(5, now, None), 1_800_000_000 + CRL_NUMBER_MARGIN);
        assert_eq!(
            crl_floor(1_900_000_000, now, None),
            1_900_000_000 + CRL_NUMBER_MARGIN
        );
        assert_eq!(crl_floor(5, now, Some(u64::MAX - 1)), u64::MAX - 1);
        assert_eq!(crl_floor(u64::MAX, now, None), u64::MAX);
    }

    #[test]
    fn backup_names_are_plain() {
        for good in ["b", "backup-20261205T031500Z", "a.b_c-1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "x.partial",
            &"a".repeat(65),
            "a b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_manifest_lists_every_file_and_verify_finds_a_changed_or_extra_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("b");
        fs::create_dir_all(root.join("files/sub")).expect("mkdir");
        fs::write(root.join("files/config.toml"), b"x = 1").expect("write");
        fs::write(root.join("files/sub/a"), b"aaaa").expect("write");
        let mut quiet = Progress::new("test", true);
        let files = hash_tree(&root, &mut quiet, "hashing").expect("hash");
        assert_eq!(
            files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["files/config.toml", "files/sub/a"]
        );
        let manifest = Manifest {
            format: FORMAT,
            created_at: "2026-12-05T00:00:00Z".into(),
            version: "0".into(),
            ca_certificate_sha256: String::new(),
            audit_head: ManifestHead {
                seq: 0,
                hash: String::new(),
            },
            crl_number: 0,
            certificates: 0,
            db_dir: "db".into(),
            files,
        };
        let json = serde_json::to_vec(&manifest).expect("json");
        fs::write(root.join(MANIFEST_FILE), json).expect("write");
        assert_eq!(verify(&root, &mut quiet).expect("verify"), manifest);

        fs::write(root.join("files/sub/a"), b"aaab").expect("write");
        let err = verify(&root, &mut quiet).expect_err("changed");
        assert!(
            err.to_string().contains("files/sub/a has another SHA-256"),
            "{err}"
        );
        fs::write(root.join("files/sub/a"), b"aaaa").expect("write");

        fs::write(root.join("files/extra"), b"").expect("write");
        let err = verify(&root, &mut quiet).expect_err("extra");
        assert!(err.to_string().contains("files/extra is not in"), "{err}");
        fs::remove_file(root.join("files/extra")).expect("rm");

        fs::remove_file(root.join("files/config.toml")).expect("rm");
        let err = verify(&root, &mut quiet).expect_err("missing");
        assert!(err.to_string().contains("config.toml is missing"), "{err}");
    }
}
