//! Mass revocation over the store of 1,000,000 certificates ([`bench::store_1m`]): revocations
//! per second of [`Engine::mass_revocation_step`] walking the store in the API's steps (2 s
//! budget, pages of 10,000), each run on a fresh copy of the store. Beside it, in the same
//! run, the limit: the store writer alone, fed the same revocations (serials known, no walk)
//! as fast as it takes them.
//!
//! `cargo bench -p bench --bench mass_revocation` prints one line per run and the medians.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::store_1m::{copy_store, db_dir, CERTS};
use bench::{authority, EngineFixture, FixtureError};
use ca_core::engine::Engine;
use ca_core::mass_revocation::{MassRevocationRequest, RevocationFilter};
use ca_core::metrics::Metrics;
use ca_core::revocation::RevocationReason;
use ca_core::store::query::{CertificateQuery, Cursor, MAX_EXAMINED};
use ca_core::store::writer::{RevokeRequest, WriteOp};
use ca_core::store::{Storage, Store};
use keys::KeyAlgorithm;

const RUNS: usize = 3;
/// What the API's step walks for.
const STEP_BUDGET: Duration = Duration::from_secs(2);
/// Revocations the writer-alone limit sends.
const LIMIT_REVOCATIONS: usize = 200_000;
/// Revocations waiting for the writer at once in the limit run, as the engine keeps them.
const IN_FLIGHT: usize = 2048;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Walks `request` to its end as the API's steps do; answers (revoked, matched, seconds).
fn walk(
    engine: &Engine,
    rt: &tokio::runtime::Runtime,
    request: MassRevocationRequest,
    dry_run: bool,
) -> Result<(u64, u64, f64), FixtureError> {
    let started = Instant::now();
    let mut progress = rt.block_on(engine.start_mass_revocation(request, "bench", dry_run))?;
    while !progress.done {
        progress = rt.block_on(engine.mass_revocation_step(progress, STEP_BUDGET, MAX_EXAMINED))?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("  {:?}", progress.tally);
    Ok((progress.tally.revoked, progress.tally.matched, secs))
}

/// One run of `scenario` on a fresh copy of the store.
fn run(scenario: &str, pristine: &Path) -> Result<(u64, u64, f64), FixtureError> {
    let scratch = tempfile::tempdir_in(pristine.parent().ok_or("no parent")?)?;
    let db = scratch.path().join("db");
    copy_store(pristine, &db)?;
    let result = if scenario == "writer_limit" {
        writer_limit(&db)?
    } else {
        let fixture = EngineFixture::at(
            authority(KeyAlgorithm::EcdsaP256)?,
            &db,
            &Default::default(),
            0,
        )?;
        let engine = &fixture.engine;
        let filter = match scenario {
            "one_key" | "dry_one_key" => {
                // The key of the first certificate: on CERTS / NAMES certificates.
                let first = engine
                    .store()
                    .query(&CertificateQuery::default(), None, 1)?;
                let der = &first.rows.first().ok_or("empty store")?.record.der;
                RevocationFilter {
                    spki_sha256: Some(ca_core::spki::certificate_key_sha256(der)?),
                    ..RevocationFilter::default()
                }
            }
            _ => RevocationFilter {
                requester: Some("bench".into()),
                ..RevocationFilter::default()
            },
        };
        let request = MassRevocationRequest {
            filter,
            reason: RevocationReason::Superseded,
            invalidity_date: None,
        };
        let dry_run = scenario.starts_with("dry");
        walk(engine, &fixture.runtime, request, dry_run)?
    };
    Ok(result)
}

/// The store writer alone: LIMIT_REVOCATIONS revocations of known serials, IN_FLIGHT at a
/// time, through the same group commit.
fn writer_limit(db: &Path) -> Result<(u64, u64, f64), FixtureError> {
    let store = Store::open(db)?;
    let mut serials = Vec::with_capacity(LIMIT_REVOCATIONS);
    let mut cursor: Option<Cursor> = None;
    while serials.len() < LIMIT_REVOCATIONS {
        let page = store.query(&CertificateQuery::default(), cursor.as_ref(), MAX_EXAMINED)?;
        serials.extend(
            page.rows
                .iter()
                .filter(|r| r.revocation.is_none())
                .map(|r| r.record.serial),
        );
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    serials.truncate(LIMIT_REVOCATIONS);
    let writer = Storage::start_writer(&store, 1024, Arc::new(Metrics::new()?))?;
    let tx = writer.sender();
    let at = time::OffsetDateTime::now_utc().unix_timestamp();
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for serial in &serials {
        if in_flight.len() >= IN_FLIGHT {
            let rx: tokio::sync::oneshot::Receiver<_> = in_flight.pop_front().ok_or("empty")?;
            rx.blocking_recv()??;
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let request = RevokeRequest {
            serial: *serial,
            reason: RevocationReason::Superseded,
            at,
            invalidity_date: None,
            actor: "bench".into(),
            blocked_key: None,
            action: None,
        };
        tx.send(WriteOp::Revoke(request, reply))?;
        in_flight.push_back(rx);
    }
    for rx in in_flight {
        rx.blocking_recv()??;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(tx);
    writer.join();
    Ok((serials.len() as u64, serials.len() as u64, secs))
}

fn main() -> Result<(), FixtureError> {
    // `cargo bench` passes `--bench`; a filter names the scenarios to run.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let pristine = db_dir()?;
    let scenarios = [
        "writer_limit",
        "all_of_requester",
        "one_key",
        "dry_run_all",
        "dry_one_key",
    ];
    for scenario in scenarios
        .iter()
        .filter(|s| filter.is_empty() || filter.iter().any(|f| s.contains(f.as_str())))
    {
        let mut rates = Vec::new();
        let mut scans = Vec::new();
        for i in 0..RUNS {
            let (revoked, matched, secs) = run(scenario, &pristine)?;
            let rate = revoked as f64 / secs;
            let scan = CERTS as f64 / secs;
            eprintln!(
                "mass_revocation/{scenario} run {}: {revoked} revoked of {matched} matched in {secs:.2} s: {rate:.0} revocations/s, {scan:.0} certificates walked/s",
                i + 1
            );
            rates.push(rate);
            scans.push(scan);
        }
        println!(
            "mass_revocation/{scenario}: median {:.0} revocations/s, {:.0} certificates walked/s ({RUNS} runs)",
            median(rates),
            median(scans)
        );
    }
    Ok(())
}
