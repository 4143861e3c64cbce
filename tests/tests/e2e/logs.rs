//! The log of request outcomes: each certificate issued and each refusal at `info`, with what
//! an operator needs and no secret; beyond the per-second line budget, outcomes are summed up
//! in one line.

use std::time::{Duration, Instant};

use e2e_tests::prelude::*;
use serde_json::json;

/// Waits up to 5 s for the server's output to contain `needle`; the output.
fn wait_for_log(s: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = s.log();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log lines that contain every one of `parts`.
fn lines_with<'a>(log: &'a str, parts: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

#[test]
fn outcomes_are_logged_without_secrets_and_summed_up_beyond_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[(
            "outcome_lines_per_second = 100",
            "outcome_lines_per_second = 3",
        )],
        "",
    );
    let s = Server::serve(&dir);
    let csr = server_csr("log.test.example.com");
    let issued = s.issue(&csr, "tls-server", None);
    let serial = issued["serial"].as_str().unwrap().to_string();
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": csr.pem, "profile": "no-such-profile"}),
    );
    assert_eq!(r.status, 422, "{r}");
    let log = wait_for_log(&s, "unknown_profile");
    let issued_lines = lines_with(
        &log,
        &[
            " issued ",
            &format!("serial={serial}"),
            "profile=tls-server",
        ],
    );
    assert!(
        issued_lines.len() == 1
            && issued_lines[0].contains("requester=\"bootstrap-ra\"")
            && issued_lines[0].contains("latency_ms="),
        "one issued line with serial, profile, requester and latency: {log}"
    );
    assert_eq!(
        lines_with(
            &log,
            &[
                " refused ",
                "code=\"unknown_profile\"",
                "requester=\"bootstrap-ra\""
            ]
        )
        .len(),
        1,
        "one refused line with code and requester: {log}"
    );

    a_batch_beyond_the_budget_is_summed_up(&s);
    // No token ever appears.
    let log = s.log();
    for token in [&s.tokens.ra, &s.tokens.auditor, &s.tokens.operator] {
        assert!(!log.contains(token.as_str()), "a token in the log");
    }
    s.terminate();
}

/// A batch of 20 in a fresh second: 3 lines, the other 17 summed up in one line, which
/// tells requester and profile (the budget is 3 lines a second).
fn a_batch_beyond_the_budget_is_summed_up(s: &Server) {
    std::thread::sleep(Duration::from_millis(1100));
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let csr = server_csr(&format!("b{i}.log.test.example.com"));
            json!({"csr": csr.pem, "profile": "tls-server"})
        })
        .collect();
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({ "requests": requests }),
    );
    assert_eq!(r.status, 200, "{r}");
    let log = wait_for_log(s, "summed up");
    let summaries = lines_with(&log, &["issued (beyond", "summed up"]);
    let counted: u64 = summaries
        .iter()
        .map(|line| {
            line.split("count=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .expect("count=N")
        })
        .sum();
    let own_lines = lines_with(&log, &[" issued serial="]).len() as u64;
    assert!(
        own_lines + counted == 21 && counted >= 14,
        "3 lines a second, the rest counted ({own_lines} lines, {counted} counted): {log}"
    );
    assert!(
        summaries[0].contains("bootstrap-ra tls-server"),
        "the summary tells requester and profile: {}",
        summaries[0]
    );
}
