//! `GET /metrics` (operator): build information, the expiry of the CA certificate and of the
//! delegated OCSP responder certificate, the CRLs' nextUpdate, enrollments by state and the
//! standard process metrics, each with a sane value.

use std::time::{SystemTime, UNIX_EPOCH};

use e2e_tests::prelude::*;
use serde_json::json;

/// The samples of `name` in a Prometheus text exposition: (labels text, value).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match head.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}').to_string()),
                None => (head, String::new()),
            };
            (metric == name).then(|| (labels, value.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

/// The value of the one sample of `name` whose labels contain `label`.
fn value(text: &str, name: &str, label: &str) -> f64 {
    let found: Vec<_> = samples(text, name)
        .into_iter()
        .filter(|(labels, _)| labels.contains(label))
        .collect();
    assert_eq!(found.len(), 1, "one {name}{{{label}}} in:\n{text}");
    found[0].1
}

fn scrape(s: &Server) -> String {
    let r = s.get("/metrics", Some(&s.tokens.operator));
    assert_eq!(r.status, 200, "GET /metrics: {r}");
    r.text
}

/// Build information, and certificate expiry: the CA's (years) and the delegated
/// responder's (20 days), in the exposition `text` scraped at about `now` (Unix seconds).
fn check_build_info_and_expiry(text: &str, now: f64) {
    // Build information.
    let info = samples(text, "ca_build_info");
    assert_eq!(info.len(), 1, "one ca_build_info in:\n{text}");
    let (labels, one) = &info[0];
    assert_eq!(*one, 1.0, "ca_build_info is 1");
    assert!(
        labels.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "version label: {labels}"
    );
    assert!(labels.contains("commit=\""), "commit label: {labels}");
    assert!(!labels.contains("commit=\"\""), "empty commit: {labels}");
    assert!(labels.contains("schema=\""), "schema label: {labels}");

    // Certificate expiry: the CA's (years) and the delegated responder's (20 days).
    let ca = value(
        text,
        "ca_certificate_not_after_seconds",
        "certificate=\"ca\"",
    );
    assert!(ca > now + 365.0 * 86400.0, "CA notAfter {ca} vs now {now}");
    let responder = value(
        text,
        "ca_certificate_not_after_seconds",
        "certificate=\"ocsp_responder\"",
    );
    assert!(
        responder > now + 19.0 * 86400.0 && responder < now + 21.0 * 86400.0,
        "responder notAfter {responder} vs now {now}"
    );
}

#[test]
fn metrics_show_build_expiry_crl_enrollments_and_process() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(
        dir.join("config.toml"),
        "[ocsp]\ndelegated = true\ndelegated_validity_days = 20\n",
    )
    .expect("writing config.toml");
    let s = Server::serve(dir);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();

    let r = s.get("/crl", None);
    assert_eq!(r.status, 200, "GET /crl: {r}");
    let r = s.post(
        "/v1/enrollments",
        &s.tokens.ra,
        &json!({"profile": "personal", "subject": "CN=Maria Silva,SN=Silva,GN=Maria",
                "sans": ["maria@example.com"], "expires_in_hours": 24.0, "max_attempts": 3}),
    );
    assert_eq!(r.status, 201, "POST /v1/enrollments: {r}");

    let text = scrape(&s);

    check_build_info_and_expiry(&text, now);

    // CRL nextUpdate, full and delta, in the future.
    for kind in ["full", "delta"] {
        let next = value(
            &text,
            "ca_crl_next_update_seconds",
            &format!("kind=\"{kind}\""),
        );
        assert!(next > now, "{kind} CRL nextUpdate {next} vs now {now}");
    }

    // Enrollments by state.
    for (state, expected) in [
        ("pending", 1.0),
        ("redeemed", 0.0),
        ("locked", 0.0),
        ("expired", 0.0),
    ] {
        let n = value(&text, "ca_enrollments", &format!("state=\"{state}\""));
        assert_eq!(n, expected, "ca_enrollments{{state=\"{state}\"}}");
    }

    // Process metrics.
    let fds = value(&text, "process_open_fds", "");
    assert!(fds > 0.0, "process_open_fds {fds}");
    let rss = value(&text, "process_resident_memory_bytes", "");
    assert!(rss > 1e6, "process_resident_memory_bytes {rss}");
    let cpu = value(&text, "process_cpu_seconds_total", "");
    assert!(cpu > 0.0 && cpu < 1e6, "process_cpu_seconds_total {cpu}");
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter"),
        "process_cpu_seconds_total is a counter:\n{text}"
    );

    // Only the operator sees them.
    let r = s.get("/metrics", Some(&s.tokens.ra));
    assert_eq!(r.status, 403, "GET /metrics as RA: {r}");
}
