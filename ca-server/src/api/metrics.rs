//! `GET /metrics` (operator) and the HTTP metrics: requests and latency by route and status.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ca_core::metrics::Metrics;
use ca_core::CaError;
use prometheus::{exponential_buckets, HistogramOpts, HistogramVec, Registry, TextEncoder};

use super::{ApiError, AppState, Authenticated};

/// Latency of HTTP requests by route and status.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    latency: HistogramVec,
}

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
        Ok(HttpMetrics { latency })
    }
}

/// Middleware: times every request under its route template (never the raw path, whose
/// serials would make unbounded label sets).
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .http_metrics
        .latency
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
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
    let memory = state.engine.store().memory()?;
    for (name, bytes) in [
        ("block_cache", memory.block_cache),
        ("block_cache_pinned", memory.block_cache_pinned),
        ("memtables", memory.memtables),
        ("table_readers", memory.table_readers),
    ] {
        metrics
            .store_memory
            .with_label_values(&[name])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    Ok(render(metrics, state.engine.queue_depth()))
}

fn render(metrics: &Metrics, queue_depth: usize) -> Response {
    metrics.queue_depth.set(queue_depth as i64);
    let text = TextEncoder::new()
        .encode_to_string(&metrics.registry().gather())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
