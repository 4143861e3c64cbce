//! Commands that read the store on disk, also while a server runs on it (RocksDB read-only):
//! `audit verify`, `audit follow` and `export`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ca_core::audit::{AuditBreak, AuditHead, Checkpoint};
use ca_core::store::query::CertificateQuery;
use ca_core::store::{Storage, Store};
use ca_core::CaError;
use ca_store_pg::PgStore;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::certificate_view;
use crate::config::{Config, ConfigError, StoreBackend};
use crate::datadir::{self, DataDirError};

/// Why `audit verify` or `export` failed, or what `audit verify` found broken.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The directory holds no configuration file.
    #[error("{} is not a data directory (no {})", dir.display(), config.display())]
    NotADataDir {
        /// The directory given.
        dir: PathBuf,
        /// The configuration file it lacks.
        config: PathBuf,
    },
    /// The configuration file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The CA certificates cannot be loaded.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The store failed or refused.
    #[error(transparent)]
    Core(#[from] CaError),
    /// The CA chain file holds no certificate.
    #[error("the CA chain is empty")]
    EmptyChain,
    /// The kept checkpoint file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading failed with.
        source: std::io::Error,
    },
    /// The kept checkpoint file is not the JSON of `GET /v1/audit/checkpoint`.
    #[error("the checkpoint file")]
    CheckpointJson(#[source] serde_json::Error),
    /// The kept checkpoint's hash is not 64 hex digits.
    #[error("the checkpoint's hash is not 64 hex digits")]
    CheckpointHash,
    /// The kept checkpoint's time is not RFC 3339.
    #[error("the checkpoint's time")]
    CheckpointTime(#[source] time::error::Parse),
    /// The kept checkpoint's signature is not base64.
    #[error("the checkpoint's signature")]
    CheckpointSignature(#[source] base64::DecodeError),
    /// The kept checkpoint does not verify with the CA's key.
    #[error("the kept checkpoint")]
    KeptCheckpoint(#[source] CaError),
    /// The audit log's chain, head or a stored checkpoint does not hold at an entry.
    #[error("audit log BROKEN at entry {seq}")]
    Broken {
        /// The first broken entry.
        seq: u64,
        /// What is wrong with it.
        source: AuditBreak,
    },
    /// The log's entry at the kept checkpoint is not the one the checkpoint signed.
    #[error(
        "audit log BROKEN at entry {seq}: its hash differs from the kept checkpoint; the log \
         was rewritten, or rolled back (a restore of a backup taken before the checkpoint) \
         and written again since"
    )]
    KeptHashDiffers {
        /// The checkpoint's entry.
        seq: u64,
    },
    /// The log ends before the kept checkpoint's entry: entries were cut off.
    #[error(
        "audit log BROKEN at entry {}: the log ends at entry {head}, before the kept checkpoint; \
         entries were cut off, or the store was rolled back (a restore of a backup taken \
         before the checkpoint)",
        head + 1
    )]
    LogEndsBefore {
        /// The log's last entry.
        head: u64,
    },
    /// The export could not be written.
    #[error("writing the export")]
    Write(#[source] std::io::Error),
    /// `audit follow --from-hash` is not 64 hex digits.
    #[error("--from-hash must be 64 hex digits")]
    FromHash,
    /// The log does not continue the chain the follower holds: an entry's prev_hash is not
    /// the hash of the entry before it (or of `--from-hash`), or entries are missing.
    #[error("audit log BROKEN at entry {seq}: it does not continue the chain followed so far")]
    Discontinued {
        /// The entry that does not continue the chain.
        seq: u64,
    },
    /// A stored certificate could not be shown as the API shows it.
    #[error("{message}")]
    View {
        /// The API's message.
        message: String,
    },
}

/// Opens the configured store: RocksDB read-only (a server may hold it), or the PostgreSQL
/// database that the nodes share.
fn open(dir: &Path) -> Result<(Config, Box<dyn Storage>), OfflineError> {
    let path = dir.join(crate::config::CONFIG_FILE);
    if !path.exists() {
        return Err(OfflineError::NotADataDir {
            dir: dir.to_path_buf(),
            config: path,
        });
    }
    let config = Config::load(&path)?;
    let store: Box<dyn Storage> = match config.store.backend {
        StoreBackend::Rocksdb => Box::new(Store::open_read_only(&Config::resolve(
            dir,
            &config.ca.db_dir,
        ))?),
        StoreBackend::Postgres => {
            Box::new(PgStore::open(&crate::datadir::pg_config(dir, &config)?)?)
        }
    };
    Ok((config, store))
}

/// A checkpoint as `GET /v1/audit/checkpoint` gives it, kept by an auditor.
#[derive(Debug, Deserialize)]
struct KeptCheckpoint {
    seq: u64,
    hash: String,
    at: String,
    signature: String,
}

impl KeptCheckpoint {
    fn parse(text: &str) -> Result<Checkpoint, OfflineError> {
        let kept: KeptCheckpoint =
            serde_json::from_str(text).map_err(OfflineError::CheckpointJson)?;
        let hash = hex::decode(&kept.hash)
            .ok()
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or(OfflineError::CheckpointHash)?;
        let at =
            time::OffsetDateTime::parse(&kept.at, &time::format_description::well_known::Rfc3339)
                .map_err(OfflineError::CheckpointTime)?;
        Ok(Checkpoint {
            head: AuditHead {
                seq: kept.seq,
                hash,
            },
            at: at.unix_timestamp(),
            signature: STANDARD
                .decode(&kept.signature)
                .map_err(OfflineError::CheckpointSignature)?,
        })
    }
}

/// `ca-server audit verify [--checkpoint FILE]`: walks the whole log and checks the chain,
/// the recorded head, every stored signed checkpoint, and optionally a checkpoint an auditor
/// kept outside the CA. Prints a summary; fails naming the first broken entry.
pub fn audit_verify(dir: &Path, kept: Option<&Path>) -> Result<(), OfflineError> {
    let (config, store) = open(dir)?;
    let material = datadir::load_ca_certificates(dir, &config)?;
    let ca_der = material.first().ok_or(OfflineError::EmptyChain)?;
    let started = Instant::now();
    let report = store.verify_audit(ca_der)?;
    let kept = kept
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|source| OfflineError::Read {
                    path: path.to_path_buf(),
                    source,
                })
                .and_then(|t| KeptCheckpoint::parse(&t))
        })
        .transpose()?;
    println!(
        "audit log: {} entries walked in {:.1} s; head {} {}",
        report.entries,
        started.elapsed().as_secs_f64(),
        report.head.seq,
        hex::encode(report.head.hash)
    );
    if let Some(cp) = &report.latest_checkpoint {
        println!(
            "signed checkpoints verified: {} (newest at entry {}, {})",
            report.checkpoints,
            cp.head.seq,
            ca_core::audit::rfc3339(cp.at).unwrap_or_default()
        );
    }
    if let Some(broken) = report.broken {
        return Err(OfflineError::Broken {
            seq: broken.seq(),
            source: broken,
        });
    }
    if let Some(cp) = kept {
        cp.verify(ca_der).map_err(OfflineError::KeptCheckpoint)?;
        let entry = store.audit_entries(cp.head.seq.saturating_sub(1), 1)?;
        match entry.first() {
            Some(e) if e.seq == cp.head.seq && e.hash == cp.head.hash => {
                println!("kept checkpoint at entry {} matches the log", cp.head.seq)
            }
            Some(e) if e.seq == cp.head.seq => {
                return Err(OfflineError::KeptHashDiffers { seq: cp.head.seq })
            }
            _ => {
                return Err(OfflineError::LogEndsBefore {
                    head: report.head.seq,
                })
            }
        }
    }
    println!("audit log OK");
    Ok(())
}

/// What `audit follow` writes and how often it looks.
#[derive(Clone, Debug)]
pub struct Follow {
    /// Print the entries after this sequence number (0: from the first).
    pub from: u64,
    /// The hash of entry `from`, as the collector holds it: the first entry printed must
    /// chain to it.
    pub from_hash: Option<String>,
    /// Print what is there and exit, instead of following.
    pub once: bool,
    /// How long to wait between looks at the log.
    pub poll: Duration,
}

/// Entries read per page.
const FOLLOW_PAGE: usize = 1000;

/// `audit follow`: writes the audit log's entries after `follow.from`, oldest first, and each
/// newer signed checkpoint, as JSON lines on standard output for a collector off the host
/// (`{"entry": ...}` and `{"checkpoint": ...}`, each as `GET /v1/audit` and `GET
/// /v1/audit/checkpoint` show them), then looks again every `follow.poll` until stopped.
/// Each entry must continue the chain printed so far (its prev_hash the hash of the one
/// before, the first the hash of `--from-hash`), or the command stops with
/// [`OfflineError::Discontinued`]: a collector that resumes with its last sequence number and
/// hash notices a log rewritten behind it.
pub fn audit_follow(dir: &Path, follow: &Follow) -> Result<(), OfflineError> {
    let mut last_hash = follow
        .from_hash
        .as_deref()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or(OfflineError::FromHash)
        })
        .transpose()?;
    let mut after = follow.from;
    let mut checkpoint_seq = 0;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = |value: Value| -> Result<(), OfflineError> {
        writeln!(out, "{value}")
            .and_then(|()| out.flush())
            .map_err(OfflineError::Write)
    };
    loop {
        // A read-only open sees the log as it is now; the next look opens it again.
        let (_, store) = open(dir)?;
        loop {
            let entries = store.audit_entries(after, FOLLOW_PAGE)?;
            for entry in &entries {
                let continues =
                    entry.seq == after + 1 && last_hash.is_none_or(|hash| hash == entry.prev_hash);
                if !continues {
                    return Err(OfflineError::Discontinued { seq: entry.seq });
                }
                let json = crate::api::audit_entry_json(entry)
                    .map_err(|e| OfflineError::View { message: e.message })?;
                line(serde_json::json!({ "entry": json }))?;
                after = entry.seq;
                last_hash = Some(entry.hash);
            }
            if entries.len() < FOLLOW_PAGE {
                break;
            }
        }
        if let Some(cp) = store.latest_checkpoint()? {
            if cp.head.seq > checkpoint_seq && cp.head.seq <= after {
                let json = crate::api::checkpoint_json(&cp)
                    .map_err(|e| OfflineError::View { message: e.message })?;
                line(serde_json::json!({ "checkpoint": json }))?;
                checkpoint_seq = cp.head.seq;
            }
        }
        drop(store);
        if follow.once {
            return Ok(());
        }
        std::thread::sleep(follow.poll);
    }
}

/// The fields of the API's certificate view that carry identity data (names, e-mail
/// addresses, national identity numbers in otherName SANs): a redacting export leaves them
/// out and names the certificate by its SHA-256 fingerprint instead.
const IDENTITY_FIELDS: [&str; 3] = ["certificate", "subject", "sans"];

/// The fingerprint column of a redacting export: the hex SHA-256 of the certificate's DER,
/// so that whoever holds a certificate can find its row without the row holding its names.
const FINGERPRINT_FIELD: &str = "certificate_sha256";

/// Output format of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line, as `GET /v1/certificates/{serial}` shows it.
    Jsonl,
    /// RFC 4180 CSV with a header row; no certificate PEM.
    Csv,
}

/// Whether `export` writes identity data or leaves it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redaction {
    /// Every field of the API's view.
    None,
    /// Without [`IDENTITY_FIELDS`], with [`FINGERPRINT_FIELD`]: serials, statuses, profiles,
    /// requesters, dates and revocations only.
    IdentityData,
}

impl Redaction {
    /// The CSV header of an export with this redaction.
    fn columns(self) -> Vec<&'static str> {
        match self {
            Redaction::None => CSV_COLUMNS.to_vec(),
            Redaction::IdentityData => std::iter::once(CSV_COLUMNS[0])
                .chain(std::iter::once(FINGERPRINT_FIELD))
                .chain(
                    CSV_COLUMNS[1..]
                        .iter()
                        .copied()
                        .filter(|c| !IDENTITY_FIELDS.contains(c)),
                )
                .collect(),
        }
    }

    /// `item` (the API's view of the certificate `der`) as this redaction exports it.
    fn apply(self, mut item: Value, der: &[u8]) -> Value {
        if self == Redaction::IdentityData {
            if let Some(fields) = item.as_object_mut() {
                for field in IDENTITY_FIELDS {
                    fields.remove(field);
                }
                fields.insert(
                    FINGERPRINT_FIELD.to_string(),
                    Value::String(hex::encode(Sha256::digest(der))),
                );
            }
        }
        item
    }
}

const CSV_COLUMNS: [&str; 14] = [
    "serial",
    "status",
    "profile",
    "subject",
    "sans",
    "requester",
    "issued_at",
    "not_before",
    "not_after",
    "revocation_reason",
    "revoked_at",
    "invalidity_date",
    "renewed_from",
    "renewed_by",
];

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180). A value
/// that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return; an e-mail SAN's local part or a token name may) is prefixed with `'` and
/// quoted, so that opening the export never executes what a client wrote.
fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("\"'{}\"", text.replace('"', "\"\""))
    } else if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_row(columns: &[&str], item: &Value) -> String {
    let revocation = &item["revocation"];
    columns
        .iter()
        .map(|column| match *column {
            "revocation_reason" => csv_field(&revocation["reason"]),
            "revoked_at" => csv_field(&revocation["revoked_at"]),
            "invalidity_date" => csv_field(&revocation["invalidity_date"]),
            c => csv_field(&item[c]),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `ca-server export --format jsonl|csv [--redact]`: every certificate in issuance order, to
/// `out`, with a progress line on stderr.
pub fn export(
    dir: &Path,
    format: ExportFormat,
    redaction: Redaction,
    out: &mut dyn Write,
) -> Result<u64, OfflineError> {
    let (_, store) = open(dir)?;
    let total = store.last_cert_seq()?;
    let query = CertificateQuery {
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
        ..CertificateQuery::default()
    };
    let columns = redaction.columns();
    if format == ExportFormat::Csv {
        writeln!(out, "{}", columns.join(",")).map_err(OfflineError::Write)?;
    }
    let started = Instant::now();
    let mut last_progress = started;
    let mut cursor = None;
    let mut n = 0u64;
    loop {
        let page = store.query(&query, cursor.as_ref(), 1000)?;
        for row in &page.rows {
            let item = certificate_view(store.as_ref(), &row.record, row.revocation.as_ref())
                .map_err(|e| OfflineError::View { message: e.message })?;
            let item = redaction.apply(item, &row.record.der);
            match format {
                ExportFormat::Jsonl => writeln!(out, "{item}"),
                ExportFormat::Csv => writeln!(out, "{}", csv_row(&columns, &item)),
            }
            .map_err(OfflineError::Write)?;
            n += 1;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!("\rexport: {n} of {total} certificates");
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.flush().map_err(OfflineError::Write)?;
    eprintln!(
        "\rexport: {n} certificates in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::{csv_field, csv_row, Redaction, CSV_COLUMNS};
    use serde_json::json;

    #[test]
    fn a_redacting_export_holds_no_identity_data() {
        let item = json!({
            "serial": "0a", "certificate": "-----BEGIN CERTIFICATE-----", "status": "valid",
            "subject": "CN=Maria Silva", "sans": ["email:maria@example.com"],
            "profile": "personal", "requester": "ra-1",
        });
        let redacted = Redaction::IdentityData.apply(item.clone(), b"der");
        for field in ["certificate", "subject", "sans"] {
            assert!(redacted.get(field).is_none(), "{field}");
        }
        // sha256sum of the three bytes "der".
        assert_eq!(
            redacted["certificate_sha256"],
            "5050d80d22ecd471ea55df7034042c1e041341ff4066e7f6ff38e20b720df8ea"
        );
        assert_eq!(redacted["serial"], "0a");
        assert_eq!(Redaction::None.apply(item.clone(), b"der"), item);

        let columns = Redaction::IdentityData.columns();
        assert_eq!(&columns[..2], ["serial", "certificate_sha256"]);
        assert!(!columns.contains(&"subject") && !columns.contains(&"sans"));
        // Subject and SANs out, the fingerprint in (the CSV never holds the certificate).
        assert_eq!(columns.len(), CSV_COLUMNS.len() - 1);
        let row = csv_row(&columns, &redacted);
        assert!(!row.contains("Maria") && !row.contains("maria@"), "{row}");
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field(&json!("plain")), "plain");
        assert_eq!(csv_field(&json!("a,b")), "\"a,b\"");
        assert_eq!(csv_field(&json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(
            csv_field(&json!(["=HYPERLINK(\"x\")@example.com", "b.example"])),
            "\"'=HYPERLINK(\"\"x\"\")@example.com b.example\""
        );
        for lead in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(csv_field(&json!(lead)).starts_with("\"'"), "{lead:?}");
        }
        assert_eq!(csv_field(&json!(null)), "");
    }
}
