//! Request limits in front of every route: who the client is (a valid bearer token, else a
//! mapped TLS client certificate, else its address), a token bucket per client, a deadline per
//! request, and the mapping of TLS client certificates to roles. Over the rate, a request is
//! answered `429` with `Retry-After`; past the deadline, `408`.
//!
//! Buckets are keyed by the authenticated identity (the SHA-256 of a valid token, or of the
//! mapped certificate), never by what the client merely sends: an unknown or malformed
//! `Authorization` header and a request without credentials count against the client's
//! address (IPv4 address, IPv6 /64), in a table of their own, so that a flood of addresses
//! cannot push out the buckets of authenticated clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ca_core::store::Storage;
use sha2::{Digest, Sha256};

use crate::api::{early_answer, ApiError};
use crate::auth::{authenticate, Caller};
use crate::client_auth::{ClientCertificates, Refusal};
use crate::listener::Peer;
use crate::request_log::{self, RequestLog};

/// Most buckets a [`RateLimiter`] keeps; beyond, the ones idle longest are forgotten.
const MAX_BUCKETS: usize = 100_000;

/// A token bucket per client, in a table of bounded size.
///
/// A bucket that has refilled to its burst is the same as no bucket, so forgetting it loses
/// nothing; when the table is full of buckets that have not refilled, the least recently used
/// eighth is forgotten (those clients start again with a full burst). The table is never
/// emptied as a whole.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    capacity: usize,
    buckets: Mutex<HashMap<[u8; 32], (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` requests per second with bursts of `burst`; `None` when `per_second` is 0
    /// (no limit).
    pub fn new(per_second: f64, burst: f64) -> Option<Self> {
        Self::with_capacity(per_second, burst, MAX_BUCKETS)
    }

    /// As [`RateLimiter::new`], keeping at most `capacity` buckets.
    pub fn with_capacity(per_second: f64, burst: f64, capacity: usize) -> Option<Self> {
        (per_second > 0.0).then(|| RateLimiter {
            per_second,
            burst: burst.max(1.0),
            capacity: capacity.max(1),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request from `client`'s bucket, or says how long until one is available.
    pub fn take(&self, client: [u8; 32], now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.capacity && !buckets.contains_key(&client) {
            self.make_room(&mut buckets, now);
        }
        let (tokens, last) = buckets.entry(client).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.per_second)
            .min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }

    /// Forgets the buckets that have refilled, and if that is not enough the least recently
    /// used eighth of the table.
    fn make_room(&self, buckets: &mut HashMap<[u8; 32], (f64, Instant)>, now: Instant) {
        let (per_second, burst) = (self.per_second, self.burst);
        buckets.retain(|_, (tokens, last)| {
            *tokens + now.saturating_duration_since(*last).as_secs_f64() * per_second < burst
        });
        if buckets.len() < self.capacity {
            return;
        }
        let mut ages: Vec<(Instant, [u8; 32])> = buckets
            .iter()
            .map(|(key, (_, last))| (*last, *key))
            .collect();
        let evict = (self.capacity / 8).clamp(1, ages.len());
        ages.select_nth_unstable_by_key(evict - 1, |(last, _)| *last);
        for (_, key) in &ages[..evict] {
            buckets.remove(key);
        }
    }

    /// How many buckets are kept.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no bucket is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rate-limiting key of a client address: the IPv4 address, or the /64 of an IPv6 address
/// (the smallest prefix a subscriber usually gets; IPv4-mapped addresses count as IPv4).
pub fn address_key(ip: IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    match ip {
        IpAddr::V4(v4) => {
            h.update(b"ipv4:");
            h.update(v4.octets());
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                h.update(b"ipv4:");
                h.update(v4.octets());
            }
            None => {
                h.update(b"ipv6/64:");
                h.update(&v6.octets()[..8]);
            }
        },
    }
    h.finalize().into()
}

/// Who sent a request, as far as its headers and its connection say; set by [`limit`] as a
/// request extension for the API's access check.
#[derive(Clone, Debug)]
pub enum Identity {
    /// A valid bearer token, or without a token a mapped TLS client certificate.
    Caller(Caller),
    /// No credentials.
    Anonymous,
    /// Credentials that do not authenticate (401), or a failure looking them up (500).
    Refused(Arc<ApiError>),
}

/// The bearer token of an `Authorization` header (RFC 6750 section 2.1: the scheme is
/// case-insensitive); `Err` for a header that is not a bearer token.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(ApiError::unauthorized)
}

/// Authenticates a request from its headers alone: a bearer token always decides; without
/// one, a mapped client certificate.
fn identify(
    store: &dyn Storage,
    headers: &HeaderMap,
    by_certificate: Option<Result<Caller, Refusal>>,
) -> Identity {
    match bearer_token(headers) {
        Ok(Some(token)) => match authenticate(store, token) {
            Ok(Some(caller)) => Identity::Caller(caller),
            Ok(None) => Identity::Refused(Arc::new(ApiError::unauthorized())),
            Err(e) => Identity::Refused(Arc::new(e.into())),
        },
        Ok(None) => match by_certificate {
            Some(Ok(caller)) => Identity::Caller(caller),
            Some(Err(refusal)) => Identity::Refused(Arc::new(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                refusal.message(),
            ))),
            None => Identity::Anonymous,
        },
        Err(e) => Identity::Refused(Arc::new(e)),
    }
}

/// Everything the middleware needs.
pub struct Limits {
    /// The rate of each authenticated identity, if limited.
    pub rate: Option<RateLimiter>,
    /// The rate of each client address for requests without valid credentials (public
    /// routes, failed authentications), if limited.
    pub public_rate: Option<RateLimiter>,
    /// The store holding the API tokens.
    pub store: Arc<dyn Storage>,
    /// Deadline per request.
    pub request_timeout: Duration,
    /// Client certificates and what they may do.
    pub certificates: ClientCertificates,
    /// The log of request outcomes (rate limits and timeouts are refused here).
    pub log: Arc<RequestLog>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("rate", &self.rate)
            .field("public_rate", &self.public_rate)
            .field("request_timeout", &self.request_timeout)
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

/// The middleware: identifies the client from the request's headers and connection (no body
/// is read), applies the rate of its identity, hands the [`Identity`] to the API's access
/// check as a request extension, and bounds the request's time.
pub async fn limit(
    State(limits): State<Arc<Limits>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<Peer>().cloned();
    let by_certificate = peer
        .as_ref()
        .and_then(|p| p.client_certificate.as_ref())
        .map(|cert| {
            let caller = limits.certificates.caller(cert);
            if let Err(refusal) = &caller {
                tracing::debug!(subject = %cert.subject, reason = refusal.message(), "client certificate not accepted");
            }
            caller
        });
    let identity = identify(limits.store.as_ref(), request.headers(), by_certificate);
    let (rate, client) = match &identity {
        Identity::Caller(caller) => (&limits.rate, caller.token_hash),
        Identity::Anonymous | Identity::Refused(_) => (
            &limits.public_rate,
            peer.as_ref().map_or([0; 32], |p| address_key(p.addr.ip())),
        ),
    };
    if let Some(rate) = rate {
        if let Err(wait) = rate.take(client, Instant::now()) {
            let e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this client; retry after the Retry-After seconds",
            );
            limits.log.refused(
                e.code,
                e.status.as_u16(),
                request_log::requester(Some(&identity)),
                &path_of(&request),
                &peer
                    .as_ref()
                    .map(|p| p.addr.ip().to_string())
                    .unwrap_or_default(),
            );
            let mut response = if path_of(&request).starts_with(crate::acme::PREFIX) {
                // ACME clients read problem documents (RFC 8555 section 6.6).
                crate::acme::rate_limited(e.message.as_str())
            } else {
                early_answer(&request, e)
            };
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
    }
    let requester = request_log::requester(Some(&identity)).to_string();
    let uri = request.uri().clone();
    request.extensions_mut().insert(identity);
    let run = next.run(request);
    match tokio::time::timeout(limits.request_timeout, run).await {
        Ok(response) => response,
        Err(_) => {
            let e = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request took longer than the server's limit",
            );
            let client = peer.map(|p| p.addr.ip().to_string()).unwrap_or_default();
            limits.log.refused(
                e.code,
                e.status.as_u16(),
                &requester,
                &cut(uri.path()),
                &client,
            );
            e.into_response()
        }
    }
}

/// A request's path as the log shows it, cut at 100 characters.
fn path_of(request: &Request) -> String {
    cut(request.uri().path())
}

fn cut(path: &str) -> String {
    path.chars().take(100).collect()
}

/// A semaphore permit (a connection slot, bytes of the body budget) shown in a gauge for as
/// long as it is held: the gauge goes up by the permit's size when it is taken and down when
/// it is dropped.
pub(crate) struct CountedPermit {
    permit: tokio::sync::OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl CountedPermit {
    /// Counts `permit` in `gauge`.
    pub(crate) fn new(
        permit: tokio::sync::OwnedSemaphorePermit,
        gauge: &prometheus::IntGauge,
    ) -> Self {
        gauge.add(Self::amount(&permit));
        CountedPermit {
            permit,
            gauge: gauge.clone(),
        }
    }

    fn amount(permit: &tokio::sync::OwnedSemaphorePermit) -> i64 {
        i64::try_from(permit.num_permits()).unwrap_or(i64::MAX)
    }
}

impl Drop for CountedPermit {
    fn drop(&mut self) {
        self.gauge.sub(Self::amount(&self.permit));
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

    #[test]
    fn a_flood_of_new_clients_never_resets_the_table() {
        let limiter = RateLimiter::with_capacity(0.001, 2.0, 64).unwrap();
        let t0 = Instant::now();
        let legit = [7u8; 32];
        assert!(limiter.take(legit, t0).is_ok());
        assert!(limiter.take(legit, t0).is_ok());
        assert!(limiter.take(legit, t0).is_err(), "drained");
        for i in 0..10_000u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            // Older than the legitimate client's last request: evicted first.
            let _ = limiter.take(key, t0 + Duration::from_millis(1));
            assert!(limiter.len() <= 64, "bounded: {}", limiter.len());
            if i % 16 == 0 {
                // The legitimate client keeps using its bucket and stays empty.
                let at = t0 + Duration::from_millis(2);
                assert!(
                    limiter.take(legit, at).is_err(),
                    "reset after {i} new clients"
                );
            }
        }
    }

    #[test]
    fn refilled_buckets_are_forgotten_first() {
        let limiter = RateLimiter::with_capacity(1.0, 2.0, 4).unwrap();
        let t0 = Instant::now();
        for k in 0..4u8 {
            assert!(limiter.take([k; 32], t0).is_ok());
        }
        // Key 9 drains its bucket later; the others have refilled by then.
        let t1 = t0 + Duration::from_secs(10);
        assert!(limiter.take([9; 32], t1).is_ok());
        assert!(limiter.take([9; 32], t1).is_ok());
        assert_eq!(
            limiter.len(),
            1,
            "only the bucket that has not refilled is kept"
        );
        assert!(limiter.take([9; 32], t1).is_err());
    }

    #[test]
    fn addresses_key_by_ipv4_address_and_ipv6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            address_key(ip("192.0.2.1")),
            address_key(ip("::ffff:192.0.2.1"))
        );
        assert_ne!(address_key(ip("192.0.2.1")), address_key(ip("192.0.2.2")));
    }

    #[test]
    fn bearer_tokens_are_read_whatever_the_scheme_case_and_spacing() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        for v in ["Bearer abc", "bearer   abc ", "BEARER abc"] {
            assert_eq!(bearer_token(&headers(v)).unwrap(), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearer", "Bearer    ", "abc"] {
            assert!(bearer_token(&headers(v)).is_err(), "{v:?}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
    }
}
