//! `POST /v1/backup`: a backup of the data directory taken by the running server, which holds
//! the store (see [`crate::backup`]).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ca_core::CaError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};
use crate::backup::{self, BackupError, Progress};
use crate::config::Config;

/// Where the server writes its backups: the data directory, its configuration (`[store]
/// backup_dir`), and the one backup that may run at a time.
#[derive(Debug)]
pub struct BackupSite {
    /// The data directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: Config,
    /// Held while a backup runs.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl BackupSite {
    /// The backups of the data directory `dir` configured by `config`.
    pub fn new(dir: PathBuf, config: Config) -> Self {
        BackupSite {
            dir,
            config,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// The body of `POST /v1/backup`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    /// The backup's name in `[store] backup_dir`; default `backup-<UTC time>`.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /v1/backup` (operator) `{"name"?}` → `201 {"name", "path", "manifest"}`: writes a
/// backup of the data directory into `[store] backup_dir/NAME` while issuance goes on (a
/// flush of the store, then hard links of its files), and answers its manifest. One backup
/// at a time (409 `backup_in_progress`); a name taken is 409 `backup_exists`; a store in
/// PostgreSQL is 409 `backup_unsupported` (its database server's tools back it up).
pub async fn create(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body_or_error(body)?;
    let request: BackupBody = if body.trim_ascii().is_empty() {
        BackupBody::default()
    } else {
        parse_json(&body)?
    };
    let name = match request.name {
        Some(name) if backup::valid_name(&name) => name,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "name: 1 to 64 letters, digits, '-', '_' or '.', not starting with '.' nor \
                 ending in .partial",
            ))
        }
        None => default_name(),
    };
    let site = state.backup.clone();
    let Ok(running) = site.running.clone().try_lock_owned() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "backup_in_progress",
            "a backup is being written; retry once it is done",
        ));
    };
    let store = state.engine.store().clone();
    let out = Config::resolve(&site.dir, &site.config.store.backup_dir).join(&name);
    tracing::info!(name, requester = caller.name, "backup started");
    let written = {
        let out = out.clone();
        let site = site.clone();
        tokio::task::spawn_blocking(move || {
            let _running = running;
            let mut quiet = Progress::new("backup", true);
            backup::create(&site.dir, &site.config, store.as_ref(), &out, &mut quiet)
        })
        .await
        .map_err(|e| CaError::internal("the backup task failed", Some(Box::new(e))))?
    };
    let manifest = written.map_err(|e| match e {
        BackupError::Exists(_) => ApiError::new(
            StatusCode::CONFLICT,
            "backup_exists",
            format!("a backup named {name:?} exists already"),
        ),
        BackupError::Postgres => {
            ApiError::new(StatusCode::CONFLICT, "backup_unsupported", e.to_string())
        }
        BackupError::Core(e) => ApiError::from(e),
        other => {
            tracing::error!(error = %crate::cli::error_chain(&other), "backup failed");
            ApiError::from(CaError::Storage(format!(
                "the backup could not be written: {}",
                crate::cli::error_chain(&other)
            )))
        }
    })?;
    tracing::info!(
        name,
        certificates = manifest.certificates,
        audit_seq = manifest.audit_head.seq,
        "backup written"
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": name,
            "path": out.display().to_string(),
            "manifest": manifest,
        })),
    ))
}

/// `backup-` and the time, e.g. `backup-20261205T031500Z`.
fn default_name() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "backup-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
