//! Request limits in front of every route: a token bucket per client (its bearer token, else
//! its TLS client certificate, else its address), a deadline per request, and the mapping of
//! TLS client certificates to roles. Over the rate, a request is answered `429` with
//! `Retry-After`; past the deadline, `408`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::api::ApiError;
use crate::auth::CERTIFICATE_CALLER;
use crate::client_auth::ClientCertificates;
use crate::listener::Peer;

/// Buckets idle this long are forgotten (the map stays bounded by the active clients).
const IDLE: Duration = Duration::from_secs(60);
/// Most buckets kept.
const MAX_BUCKETS: usize = 100_000;

/// A token bucket per client.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 32], (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` requests per second with bursts of `burst`; `None` when `per_second` is 0
    /// (no limit).
    pub fn new(per_second: f64, burst: f64) -> Option<Self> {
        (per_second > 0.0).then(|| RateLimiter {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request from `client`'s bucket, or says how long until one is available.
    pub fn take(&self, client: [u8; 32], now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_BUCKETS {
            buckets.retain(|_, (_, last)| now.duration_since(*last) < IDLE);
            if buckets.len() > MAX_BUCKETS {
                // A flood of distinct clients (e.g. made-up tokens): start over rather than
                // grow without bound.
                buckets.clear();
            }
        }
        let (tokens, last) = buckets.entry(client).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

/// Everything the middleware needs.
#[derive(Debug)]
pub struct Limits {
    /// The per-client rate, if limited.
    pub rate: Option<RateLimiter>,
    /// Deadline per request.
    pub request_timeout: Duration,
    /// Client certificates and what they may do.
    pub certificates: ClientCertificates,
}

/// The middleware: identifies the client, applies its rate, makes a mapped client
/// certificate the caller of requests without a bearer token, and bounds the request's time.
pub async fn limit(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<Peer>().cloned();
    let by_certificate = peer
        .as_ref()
        .and_then(|p| p.client_certificate.as_ref())
        .and_then(|cert| match limits.certificates.caller(cert) {
            Ok(caller) => Some(caller),
            Err(refusal) => {
                tracing::debug!(subject = %cert.subject, reason = refusal.message(), "client certificate not accepted");
                None
            }
        });
    if let Some(rate) = &limits.rate {
        let mut client = Sha256::new();
        match request.headers().get(header::AUTHORIZATION) {
            Some(auth) => client.update(auth.as_bytes()),
            None => match (&by_certificate, &peer) {
                (Some(c), _) => client.update(c.token_hash),
                (None, Some(p)) => client.update(p.addr.ip().to_string()),
                (None, None) => {}
            },
        }
        if let Err(wait) = rate.take(client.finalize().into(), Instant::now()) {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this client; retry after the Retry-After seconds",
            )
            .into_response();
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
    }
    let run = CERTIFICATE_CALLER.scope(by_certificate, next.run(request));
    match tokio::time::timeout(limits.request_timeout, run).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took longer than the server's limit",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate_and_cap_at_the_burst() {
        let limiter = RateLimiter::new(10.0, 3.0).unwrap();
        let t0 = Instant::now();
        let a = [1u8; 32];
        for _ in 0..3 {
            assert!(limiter.take(a, t0).is_ok());
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(
            limiter.take([2u8; 32], t0).is_ok(),
            "clients have their own buckets"
        );
        assert!(limiter.take(a, t0 + Duration::from_millis(100)).is_ok());
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.take(a, later).is_ok());
        }
        assert!(limiter.take(a, later).is_err());
        assert!(RateLimiter::new(0.0, 5.0).is_none());
    }
}
