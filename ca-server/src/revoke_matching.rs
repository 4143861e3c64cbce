//! `ca-server revoke-matching`: a mass revocation from the command line, through a running
//! server's `POST /v1/mass-revocations` (docs/API.md, "Mass revocation").
//!
//! It counts first (a dry run, the same walk changing nothing), then, unless `--dry-run`,
//! starts the action and posts each step's continuation back until the walk is done, printing
//! a progress line per step on standard error (revoked so far of the dry run's count, the
//! rate) and the last answer as JSON on standard output. A step the server could not answer
//! is asked again (a step is safe to repeat); should the command stop, the last continuation
//! it printed resumes the action (`--continuation`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::api_client::{ApiClient, ClientError};

/// The route of docs/API.md.
const ROUTE: &str = "/v1/mass-revocations";

/// Times a step is asked again after a transient failure before the command gives up.
const RETRIES: u32 = 5;

/// What `revoke-matching` was asked.
#[derive(Debug)]
pub struct RevokeMatching {
    /// The server, `http(s)://host:port`.
    pub url: String,
    /// The file holding an operator token.
    pub token_file: PathBuf,
    /// The CA certificates of the server's TLS certificate (https).
    pub cacert: Option<PathBuf>,
    /// The filter: `spki_sha256`, `requester`, `profile`, `issued_after`, `issued_before`.
    pub filter: Map<String, Value>,
    /// The RFC 5280 reason name.
    pub reason: String,
    /// The invalidity date, RFC 3339.
    pub invalidity_date: Option<String>,
    /// Count only.
    pub dry_run: bool,
    /// Resume an action from this continuation instead of starting one.
    pub continuation: Option<String>,
    /// Time for one step's answer.
    pub timeout: Duration,
}

/// One step's counts, as the API answers them.
fn count(answer: &Value, key: &str) -> u64 {
    answer[key].as_u64().unwrap_or(0)
}

/// Posts `body`, asking again after a transient failure.
async fn step(client: &ApiClient, body: &Value) -> Result<Value, ClientError> {
    let mut attempt = 0;
    loop {
        match client.post_json(ROUTE, body).await {
            Err(e) if e.is_transient() && attempt < RETRIES => {
                attempt += 1;
                eprintln!("revoke-matching: {e}; asking again ({attempt}/{RETRIES})");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// Walks from `body` until done, calling `progress` after each step; answers the last step.
async fn walk(
    client: &ApiClient,
    mut body: Value,
    mut progress: impl FnMut(&Value),
) -> Result<Value, ClientError> {
    loop {
        let answer = step(client, &body).await.inspect_err(|_| {
            if let Some(c) = body["continuation"].as_str() {
                eprintln!("revoke-matching: resume with --continuation {c}");
            }
        })?;
        progress(&answer);
        match answer["continuation"].as_str() {
            Some(c) if answer["done"] != json!(true) => body = json!({ "continuation": c }),
            _ => return Ok(answer),
        }
    }
}

/// Runs the command; answers the last step's JSON.
pub async fn run(options: &RevokeMatching) -> Result<Value, ClientError> {
    let client = ApiClient::new(
        &options.url,
        &options.token_file,
        options.cacert.as_deref(),
        options.timeout,
    )?;
    let mut total = None;
    let start = match &options.continuation {
        Some(c) => json!({ "continuation": c }),
        None => {
            let dry = json!({
                "filter": options.filter,
                "reason": options.reason,
                "invalidity_date": options.invalidity_date,
                "dry_run": true,
            });
            let counted = walk(&client, dry, |a| {
                eprintln!(
                    "revoke-matching: dry run: {} matched so far, {} to revoke, {} already \
                     revoked, {} expired",
                    count(a, "matched"),
                    count(a, "revoked"),
                    count(a, "already_revoked"),
                    count(a, "expired")
                );
            })
            .await?;
            if options.dry_run {
                return Ok(counted);
            }
            total = Some(count(&counted, "revoked"));
            json!({
                "filter": options.filter,
                "reason": options.reason,
                "invalidity_date": options.invalidity_date,
            })
        }
    };
    let started = Instant::now();
    let total = total.map_or_else(|| "?".to_string(), |t| t.to_string());
    walk(&client, start, |a| {
        let revoked = count(a, "revoked");
        let rate = revoked as f64 / started.elapsed().as_secs_f64().max(1e-3);
        eprintln!(
            "revoke-matching: action {}: revoked {revoked}/{total}, {} already revoked, {} \
             expired, {rate:.0}/s{}",
            a["action"].as_str().unwrap_or("?"),
            count(a, "already_revoked"),
            count(a, "expired"),
            if a["done"] == json!(true) {
                ", done"
            } else {
                ""
            }
        );
    })
    .await
}
