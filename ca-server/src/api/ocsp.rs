//! The OCSP responder endpoints (RFC 6960 appendix A, RFC 5019 section 5), and the budget of
//! signatures they make on demand.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use ca_core::ocsp::{decode_get_request, INTERNAL_ERROR, MALFORMED_REQUEST, TRY_LATER};
use time::OffsetDateTime;

use super::AppState;
use crate::config::OcspConfig;
use crate::limits::RateLimiter;
use crate::listener::Peer;

/// The budget of OCSP signatures on demand (`ca_core::ocsp::SignatureKind::OnDemand`): a token
/// bucket per client address and one for all clients (`[ocsp] on_demand_*`). Over either, the
/// responder answers from its cache without the nonce, or `tryLater`, instead of signing.
#[derive(Debug)]
pub struct OcspBudget {
    per_client: Option<RateLimiter>,
    global: Option<RateLimiter>,
}

/// The single bucket key of the global budget.
const GLOBAL: [u8; 32] = [0; 32];

impl OcspBudget {
    /// The budget `[ocsp]` configures; a rate of 0 leaves that limit off.
    pub fn new(config: &OcspConfig) -> Self {
        OcspBudget {
            per_client: RateLimiter::new(
                config.on_demand_per_client_per_second,
                config.on_demand_per_client_burst,
            ),
            global: RateLimiter::new(
                config.on_demand_global_per_second,
                config.on_demand_global_burst,
            ),
        }
    }

    /// Takes one signature from `client`'s bucket and from the global one; false when either
    /// is empty. A request without a known address counts against the global budget only.
    pub fn take(&self, client: Option<IpAddr>, now: Instant) -> bool {
        if let (Some(rate), Some(ip)) = (&self.per_client, client) {
            if rate.take(crate::limits::address_key(ip), now).is_err() {
                return false;
            }
        }
        match &self.global {
            Some(rate) => rate.take(GLOBAL, now).is_ok(),
            None => true,
        }
    }
}

/// An OCSP answer. `no-cache`: a revocation must show at once (the API contract), so HTTP
/// caches must not keep answers; the responder caches signed answers itself.
fn ocsp_response(state: &AppState, der: Vec<u8>) -> Response {
    let status = match der.as_slice() {
        d if d == MALFORMED_REQUEST => "malformed_request",
        d if d == INTERNAL_ERROR => "internal_error",
        d if d == TRY_LATER => "try_later",
        _ => "successful",
    };
    state
        .engine
        .metrics()
        .ocsp_responses
        .with_label_values(&[status])
        .inc();
    (
        [
            (header::CONTENT_TYPE, "application/ocsp-response"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        der,
    )
        .into_response()
}

/// Answers a DER request against the store, within the signing budget of `client`. Blocking
/// (store reads, a signature): runs on the blocking pool.
async fn answer(state: Arc<AppState>, client: Option<IpAddr>, request: Vec<u8>) -> Response {
    let responder = state.clone();
    let der = tokio::task::spawn_blocking(move || {
        let state = responder;
        let store = state.engine.store();
        let answer = state.ocsp.respond_within(
            &request,
            OffsetDateTime::now_utc(),
            |serial| store.ocsp_status(serial),
            || state.ocsp_budget.take(client, Instant::now()),
        );
        if let Some(kind) = answer.signature {
            state
                .engine
                .metrics()
                .ocsp_signatures
                .with_label_values(&[kind.as_str()])
                .inc();
        }
        answer.der
    })
    .await
    .unwrap_or_else(|_| INTERNAL_ERROR.to_vec());
    ocsp_response(&state, der)
}

/// The client's address, when the listener recorded it.
fn client_ip(peer: Option<Extension<Peer>>) -> Option<IpAddr> {
    peer.map(|Extension(p)| p.addr.ip())
}

/// `POST /ocsp` with an `application/ocsp-request` body.
pub async fn post(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<Peer>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => answer(state, client_ip(peer), body.to_vec()).await,
        Err(_) => ocsp_response(&state, MALFORMED_REQUEST.to_vec()),
    }
}

/// `GET /ocsp/{base64 of the DER request}` (RFC 6960 appendix A.1).
pub async fn get(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<Peer>>,
    encoded: Result<Path<String>, PathRejection>,
) -> Response {
    let encoded = encoded.map(|Path(s)| s).unwrap_or_default();
    match decode_get_request(&encoded) {
        Ok(request) => answer(state, client_ip(peer), request).await,
        Err(_) => ocsp_response(&state, MALFORMED_REQUEST.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(per_client: f64, global: f64) -> OcspBudget {
        OcspBudget::new(&OcspConfig {
            on_demand_per_client_per_second: per_client,
            on_demand_per_client_burst: 3.0,
            on_demand_global_per_second: global,
            on_demand_global_burst: 5.0,
            ..OcspConfig::default()
        })
    }

    #[test]
    fn each_client_and_all_together_stay_within_their_bursts() {
        let b = budget(0.001, 0.001);
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let c: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| b.take(Some(a), now)));
        assert!(!b.take(Some(a), now), "a's burst is spent");
        assert!(b.take(Some(c), now) && b.take(Some(c), now));
        assert!(!b.take(Some(c), now), "the global burst of 5 is spent");
        assert!(!b.take(None, now));
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(
            crate::limits::address_key(one),
            crate::limits::address_key(two)
        );
        assert_ne!(
            crate::limits::address_key(one),
            crate::limits::address_key(other)
        );
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            crate::limits::address_key(v4),
            crate::limits::address_key(mapped)
        );
    }

    #[test]
    fn zero_rates_leave_the_limits_off() {
        let b = budget(0.0, 0.0);
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..1000).all(|_| b.take(Some(a), now)));
    }
}
