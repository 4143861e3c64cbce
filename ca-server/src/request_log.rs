//! Request outcomes in the log, without secrets (token names, never tokens; codes and routes,
//! never bodies).
//!
//! At `info`: each certificate issued (serial, profile, requester, latency) and each request
//! refused (code, status, requester, route, client address). At `debug`: every other request
//! (method, route, status, requester, latency). The `info` lines are bounded: beyond
//! `lines_per_second` outcomes in one second, outcomes are only counted, and one line per
//! second sums them up (how many, by requester and profile or by code, mean and largest
//! latency). A flood of issuance or of bad requests then costs a counter per outcome rather
//! than a formatted line, and the log stays readable; the audit log keeps every issuance
//! anyway.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use ca_core::store::CertRecord;
use tracing::Level;

use crate::limits::Identity;
use crate::listener::Peer;

/// How long one budget of lines lasts.
const WINDOW: Duration = Duration::from_secs(1);
/// Distinct keys (requester and profile, or code and requester) a summary tells apart; the
/// rest are summed up as `other`.
const MAX_KEYS: usize = 16;

/// The outcome log: its line budget and the outcomes counted beyond it.
#[derive(Debug)]
pub struct RequestLog {
    lines_per_second: u32,
    window: Mutex<Window>,
}

/// One second's budget and what went beyond it.
#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    lines: u32,
    issued: Tally,
    refused: Tally,
}

/// Outcomes counted instead of logged one by one.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    by: Vec<(String, u64)>,
    latency_sum: Duration,
    latency_max: Duration,
}

impl Tally {
    /// Counts one outcome under the key `first second` (requester and profile, or code and
    /// requester); a key is allocated only the first time it is seen.
    fn add(&mut self, first: &str, second: &str, latency: Duration) {
        self.count += 1;
        self.latency_sum += latency;
        self.latency_max = self.latency_max.max(latency);
        let is_key = |k: &str| {
            k.len() == first.len() + 1 + second.len()
                && k.starts_with(first)
                && k.ends_with(second)
                && k.as_bytes()[first.len()] == b' '
        };
        let slot = match self.by.iter().position(|(k, _)| is_key(k)) {
            Some(i) => i,
            None if self.by.len() < MAX_KEYS => {
                self.by.push((format!("{first} {second}"), 0));
                self.by.len() - 1
            }
            None => match self.by.iter().position(|(k, _)| k == "other") {
                Some(i) => i,
                None => {
                    self.by.push(("other".to_string(), 0));
                    self.by.len() - 1
                }
            },
        };
        self.by[slot].1 += 1;
    }

    /// `ra tls-server: 1200, portal personal: 3`.
    fn breakdown(&self) -> String {
        let parts: Vec<String> = self.by.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        parts.join(", ")
    }

    fn mean_ms(&self) -> f64 {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX).max(1);
        millis(self.latency_sum / count)
    }
}

/// What ended a window: the outcomes counted in it, to sum up.
struct Summary {
    issued: Tally,
    refused: Tally,
}

impl Summary {
    fn log(self) {
        let (issued, refused) = (self.issued, self.refused);
        if issued.count > 0 {
            tracing::info!(
                count = issued.count,
                by_requester_and_profile = %issued.breakdown(),
                latency_ms_mean = issued.mean_ms(),
                latency_ms_max = millis(issued.latency_max),
                "issued (beyond the outcome lines of one second; summed up)"
            );
        }
        if refused.count > 0 {
            tracing::info!(
                count = refused.count,
                by_code_and_requester = %refused.breakdown(),
                "refused (beyond the outcome lines of one second; summed up)"
            );
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl RequestLog {
    /// A log that writes at most `lines_per_second` outcome lines a second (0: no bound).
    pub fn new(lines_per_second: u32) -> Self {
        RequestLog {
            lines_per_second,
            window: Mutex::new(Window::default()),
        }
    }

    /// Logs a certificate issued (or answered again for a repeated `request_id`) for
    /// `requester`, `latency` after its request arrived.
    pub fn issued(&self, record: &CertRecord, requester: &str, replayed: bool, latency: Duration) {
        if !tracing::enabled!(Level::INFO) {
            return;
        }
        if self.line(|t| t.issued.add(requester, &record.profile, latency)) {
            tracing::info!(
                serial = %hex::encode(record.serial),
                profile = %record.profile,
                requester,
                replayed,
                latency_ms = millis(latency),
                "issued"
            );
        }
    }

    /// Logs a refusal: its error `code` and HTTP `status`, for `requester` (a token's name, or
    /// `(anonymous)`) from `client` on `route`.
    pub fn refused(&self, code: &str, status: u16, requester: &str, route: &str, client: &str) {
        if !tracing::enabled!(Level::INFO) {
            return;
        }
        if self.line(|t| t.refused.add(code, requester, Duration::ZERO)) {
            tracing::info!(code, status, requester, route, client, "refused");
        }
    }

    /// Sums up the last window if it is over (a timer calls this every second, so that a
    /// summary does not wait for the next outcome).
    pub fn flush(&self) {
        let summary = {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            self.roll(&mut window, Instant::now())
        };
        if let Some(summary) = summary {
            summary.log();
        }
    }

    /// Sums up what the current window counted, over or not (at shutdown).
    pub fn finish(&self) {
        let summary = {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            window.started = None;
            self.roll(&mut window, Instant::now())
        };
        if let Some(summary) = summary {
            summary.log();
        }
    }

    /// Takes a line from the window's budget: true when the outcome gets its own line, else
    /// `count` counts it.
    fn line(&self, count: impl FnOnce(&mut Window)) -> bool {
        let (own_line, summary) = {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            let summary = self.roll(&mut window, Instant::now());
            let own_line = self.lines_per_second == 0 || window.lines < self.lines_per_second;
            if own_line {
                window.lines += 1;
            } else {
                count(&mut window);
            }
            (own_line, summary)
        };
        if let Some(summary) = summary {
            summary.log();
        }
        own_line
    }

    /// Starts a new window when the current one is over; answers what it counted, if
    /// anything.
    fn roll(&self, window: &mut Window, now: Instant) -> Option<Summary> {
        if window
            .started
            .is_some_and(|s| now.duration_since(s) < WINDOW)
        {
            return None;
        }
        let old = std::mem::take(window);
        window.started = Some(now);
        (old.issued.count > 0 || old.refused.count > 0).then_some(Summary {
            issued: old.issued,
            refused: old.refused,
        })
    }
}

/// A refusal's error code, which [`crate::api::ApiError`] leaves in its response's
/// extensions for [`Seen::logged`].
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// Who a request came from, as the log names it: a token's (or mapped certificate's) name,
/// else `(anonymous)`.
pub fn requester(identity: Option<&Identity>) -> &str {
    match identity {
        Some(Identity::Caller(caller)) => &caller.name,
        _ => "(anonymous)",
    }
}

/// What the outcome log needs of a request, taken before it runs: method, requester and
/// client address.
#[derive(Debug)]
pub struct Seen {
    method: Method,
    requester: String,
    client: Option<IpAddr>,
}

impl Seen {
    /// Takes what the log needs from `request` (its [`Identity`] and [`Peer`] extensions).
    pub fn of(request: &Request) -> Self {
        let extensions = request.extensions();
        Seen {
            method: request.method().clone(),
            requester: requester(extensions.get::<Identity>()).to_string(),
            client: extensions.get::<Peer>().map(|p| p.addr.ip()),
        }
    }

    /// Logs the request's outcome: a refusal (a response carrying an [`ErrorCode`]) through
    /// [`RequestLog::refused`], anything else at `debug`. Issuance is logged by the handlers,
    /// which know the certificates.
    pub fn logged(self, log: &RequestLog, route: &str, response: &Response, latency: Duration) {
        if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
            let client = self.client.map(|a| a.to_string()).unwrap_or_default();
            let status = response.status().as_u16();
            log.refused(code, status, &self.requester, route, &client);
        } else {
            tracing::debug!(
                method = %self.method,
                route,
                status = response.status().as_u16(),
                requester = self.requester,
                latency_ms = millis(latency),
                "request"
            );
        }
    }
}

/// Sums up the outcome log's windows every second, while the server runs.
pub async fn flush_timer(log: Arc<RequestLog>) {
    let mut ticks = tokio::time::interval(WINDOW);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_budget_outcomes_are_counted_then_summed_up_once() {
        let log = RequestLog::new(2);
        let own: Vec<bool> = (0..5)
            .map(|_| log.line(|w| w.issued.add("ra", "tls-server", Duration::from_millis(4))))
            .collect();
        assert_eq!(own, [true, true, false, false, false]);
        {
            let window = log.window.lock().unwrap();
            assert_eq!(window.issued.count, 3);
            assert_eq!(window.issued.by, [("ra tls-server".to_string(), 3)]);
            assert_eq!(window.issued.mean_ms(), 4.0);
        }
        // The next window starts with a fresh budget and hands over the count.
        let later = Instant::now() + WINDOW;
        let mut window = log.window.lock().unwrap();
        let summary = log.roll(&mut window, later).expect("a summary");
        assert_eq!(summary.issued.count, 3);
        assert_eq!((window.lines, window.issued.count), (0, 0));
        assert!(log.roll(&mut window, later).is_none(), "once");
    }

    #[test]
    fn a_summary_tells_apart_a_bounded_number_of_keys() {
        let mut tally = Tally::default();
        for i in 0..40 {
            tally.add(&format!("requester-{i}"), "p", Duration::ZERO);
        }
        tally.add("requester-0", "p", Duration::ZERO);
        assert_eq!(tally.by.len(), MAX_KEYS + 1);
        assert_eq!(tally.by[0].1, 2);
        assert_eq!(
            tally.by[MAX_KEYS],
            ("other".to_string(), 40 - MAX_KEYS as u64)
        );
        let unbounded = RequestLog::new(0);
        let mut counted = 0;
        assert!((0..1000).all(|_| unbounded.line(|_| counted += 1)));
        assert_eq!(counted, 0);
    }
}
