//! `GET /metrics` (operator) and the server's own metrics: requests and latency by route and
//! status, build information, the expiry of the CA's certificates, enrollments by state, the
//! newest audit checkpoint, the disk under the store ([`crate::disk`]), and the process's CPU
//! time, resident memory and open file descriptors.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ca_core::metrics::Metrics;
use ca_core::CaError;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    exponential_buckets, Counter, Gauge, HistogramOpts, HistogramVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::{ApiError, AppState, Authenticated};
use crate::request_log::Seen;

/// Latency of HTTP requests by route and status, and the metrics outside the core's `ca_`
/// namespace (the standard `process_*` ones).
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    latency: HistogramVec,
    /// Bytes of request bodies reserved against `[limits] max_inflight_body_bytes`, summed
    /// over the listeners (`ca_http_body_bytes_reserved`).
    pub body_bytes_reserved: IntGauge,
    /// Connections holding one of `max_connections`' slots, by `listener` (`api`,
    /// `public`): `ca_http_connections`.
    pub connections: IntGaugeVec,
    /// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`:
    /// a registry without the `ca_` prefix.
    process: Registry,
}

/// The commit the server was built from (`git rev-parse --short HEAD`, see `build.rs`).
pub const BUILD_COMMIT: &str = env!("CA_BUILD_COMMIT");

impl HttpMetrics {
    /// Registers the HTTP metrics next to the core's.
    pub fn new(registry: &Registry) -> Result<Self, CaError> {
        let fail = |e: prometheus::Error| CaError::Storage(format!("defining a metric: {e}"));
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_seconds",
                "HTTP request latency by route and status",
            )
            .buckets(exponential_buckets(50e-6, 2.0, 18).map_err(fail)?),
            &["route", "status"],
        )
        .map_err(fail)?;
        registry.register(Box::new(latency.clone())).map_err(fail)?;
        // ca_build_info{version, commit, schema} = 1.
        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Version, commit and store schema version of this build; always 1",
            ),
            &["version", "commit", "schema"],
        )
        .map_err(fail)?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                BUILD_COMMIT,
                ca_core::store::SCHEMA_VERSION.to_string().as_str(),
            ])
            .set(1);
        registry.register(Box::new(build_info)).map_err(fail)?;
        let body_bytes_reserved = IntGauge::new(
            "http_body_bytes_reserved",
            "Bytes of request bodies reserved against max_inflight_body_bytes, all listeners",
        )
        .map_err(fail)?;
        registry
            .register(Box::new(body_bytes_reserved.clone()))
            .map_err(fail)?;
        let connections = IntGaugeVec::new(
            Opts::new(
                "http_connections",
                "Connections holding a slot of max_connections, by listener (api, public)",
            ),
            &["listener"],
        )
        .map_err(fail)?;
        registry
            .register(Box::new(connections.clone()))
            .map_err(fail)?;
        let process = Registry::new();
        process
            .register(Box::new(ProcessCollector::new().map_err(fail)?))
            .map_err(fail)?;
        Ok(HttpMetrics {
            latency,
            body_bytes_reserved,
            connections,
            process,
        })
    }
}

/// The standard process metrics, read from `/proc/self` when scraped (Linux; elsewhere the
/// metrics that cannot be read are left out).
struct ProcessCollector {
    descs: Vec<Desc>,
}

impl ProcessCollector {
    const CPU: (&'static str, &'static str) = (
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds",
    );
    const RSS: (&'static str, &'static str) = (
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
    );
    const FDS: (&'static str, &'static str) =
        ("process_open_fds", "Number of open file descriptors");

    fn new() -> prometheus::Result<Self> {
        let descs = [Self::CPU, Self::RSS, Self::FDS]
            .into_iter()
            .map(|(name, help)| Desc::new(name.into(), help.into(), vec![], Default::default()))
            .collect::<prometheus::Result<_>>()?;
        Ok(ProcessCollector { descs })
    }
}

/// User plus system CPU seconds of this process: fields 14 and 15 of `/proc/self/stat`, in
/// clock ticks.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// Resident memory in bytes: `VmRSS` of `/proc/self/status`.
fn resident_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Open file descriptors: the entries of `/proc/self/fd` (less the one reading it).
fn open_fds() -> Option<f64> {
    let count = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(count.saturating_sub(1) as f64)
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        if let Some(seconds) = cpu_seconds() {
            if let Ok(counter) = Counter::new(Self::CPU.0, Self::CPU.1) {
                counter.inc_by(seconds);
                families.extend(counter.collect());
            }
        }
        for ((name, help), value) in [(Self::RSS, resident_bytes()), (Self::FDS, open_fds())] {
            if let (Some(value), Ok(gauge)) = (value, Gauge::new(name, help)) {
                gauge.set(value);
                families.extend(gauge.collect());
            }
        }
        families
    }
}

/// notAfter of a DER certificate, Unix seconds.
fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Middleware: times every request under its route template (never the raw path, whose
/// serials would make unbounded label sets), and hands its outcome to the request log.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let seen = Seen::of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let latency = started.elapsed();
    state
        .http_metrics
        .latency
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .observe(latency.as_secs_f64());
    seen.logged(&state.log, &route, &response, latency);
    response
}

/// `GET /metrics` (operator): Prometheus text exposition.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    Authenticated(_): Authenticated,
) -> Result<Response, ApiError> {
    let head = state.engine.store().audit_head()?;
    let metrics = state.engine.metrics();
    metrics
        .audit_head
        .set(i64::try_from(head.seq).unwrap_or(i64::MAX));
    // From the store, so that a restarted server shows the checkpoint signed before.
    if let Some(checkpoint) = state.engine.store().latest_checkpoint()? {
        metrics.checkpoint(&checkpoint);
    }
    let disk = state.disk.clone();
    tokio::task::spawn_blocking(move || disk.sample())
        .await
        .map_err(|e| CaError::internal("measuring the disk", Some(Box::new(e))))?;
    let store = state.engine.store().clone();
    let writable = tokio::task::spawn_blocking(move || store.writable())
        .await
        .map_err(|e| CaError::internal("checking the store", Some(Box::new(e))))?;
    metrics.store_writable.set(i64::from(writable.is_ok()));
    let memory = state.engine.store().memory()?;
    for (name, bytes) in memory {
        metrics
            .store_memory
            .with_label_values(&[name])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    metrics.clock_behind.set(state.engine.clock().behind(now));
    let counts = state.engine.store().enrollment_counts(now)?;
    for (enrollment_state, count) in ca_core::enrollment::EnrollmentState::ALL.iter().zip(counts) {
        metrics
            .enrollments
            .with_label_values(&[enrollment_state.as_str()])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    let certificates = [
        ("ca", Some(state.engine.ca().certificate().to_vec())),
        ("ocsp_responder", state.ocsp.responder_certificate()),
    ];
    for (name, der) in certificates {
        match der.as_deref().and_then(not_after) {
            Some(seconds) => metrics
                .certificate_not_after
                .with_label_values(&[name])
                .set(seconds),
            None => {
                // No delegated responder (any more): the CA signs OCSP answers itself.
                let _ = metrics.certificate_not_after.remove_label_values(&[name]);
            }
        }
    }
    Ok(render(
        metrics,
        &state.http_metrics.process,
        state.engine.queue_depth(),
    ))
}

fn render(metrics: &Metrics, process: &Registry, queue_depth: usize) -> Response {
    metrics.queue_depth.set(queue_depth as i64);
    let mut families = metrics.registry().gather();
    families.extend(process.gather());
    let text = TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
