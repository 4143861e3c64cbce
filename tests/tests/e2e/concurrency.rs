//! Concurrency: many clients at once, every answer the right certificate for its own request,
//! every serial distinct; duplicates of one request_id issue once.

use std::collections::HashSet;

use e2e_tests::prelude::*;
use serde_json::json;

/// Many clients at once, each request with a key and a name of its own: every certificate
/// passes the full check against its own request (its subject, SANs, key, validity, the CA's
/// signature, OpenSSL and pkilint), so an answer crossed with another request's fails; every
/// serial is distinct and every certificate reads back as issued.
#[test]
fn eight_threads_of_6_requests_each_answered_with_its_own_certificate() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 6;
    let s = Server::fresh();
    let keys = tempfile::tempdir().unwrap();
    let requests: Vec<Vec<(Csr, u32)>> = (0..THREADS)
        .map(|t| {
            (0..PER_THREAD)
                .map(|i| {
                    let host = format!("conc-{t}-{i}.example.com");
                    let csr = server_csr_with_key(&fresh_p256_key(keys.path()), &host);
                    (csr, 1 + u32::try_from(t * PER_THREAD + i).unwrap() % 30)
                })
                .collect()
        })
        .collect();
    let results: Vec<Vec<(Csr, u32, serde_json::Value)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(t, thread)| {
                let (client, base, ra) = (s.client(), s.base.clone(), s.tokens.ra.clone());
                scope.spawn(move || {
                    thread
                        .iter()
                        .enumerate()
                        .map(|(i, (csr, days))| {
                            let body = json!({"csr": csr.pem, "profile": "tls-server",
                                              "validity_days": days});
                            let r = try_post(&client, &base, "/v1/certificates", &ra, &body)
                                .unwrap_or_else(|e| panic!("thread {t} request {i}: {e}"));
                            assert_eq!(r.status, 201, "thread {t} request {i}: {r}");
                            (csr.clone(), *days, r.json)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread panicked"))
            .collect()
    });
    let all: Vec<&(Csr, u32, serde_json::Value)> = results.iter().flatten().collect();
    assert_eq!(all.len(), THREADS * PER_THREAD);
    let serials: HashSet<&str> = all
        .iter()
        .map(|(_, _, r)| r["serial"].as_str().expect("serial"))
        .collect();
    assert_eq!(serials.len(), all.len(), "serials repeat under concurrency");
    // The full check of each answer against its own request, two at a time.
    std::thread::scope(|scope| {
        for half in all.chunks(all.len().div_ceil(2)) {
            let s = &s;
            scope.spawn(move || {
                for (csr, days, answer) in half {
                    s.check_issued(answer, csr, "tls-server", *days);
                    let serial = answer["serial"].as_str().expect("serial");
                    assert_eq!(
                        s.record(serial)["certificate"],
                        answer["certificate"],
                        "{serial}: stored certificate differs"
                    );
                }
            });
        }
    });
}

#[test]
fn concurrent_duplicates_of_one_request_id_issue_once() {
    const THREADS: usize = 8;
    let s = Server::fresh();
    let csr = server_csr("dup.example.com");
    let body = json!({"csr": csr.pem, "profile": "tls-server", "request_id": "dup-1"});
    let answers: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (client, base, ra, body) = (
                    s.client(),
                    s.base.clone(),
                    s.tokens.ra.clone(),
                    body.clone(),
                );
                scope.spawn(move || {
                    try_post(&client, &base, "/v1/certificates", &ra, &body).expect("request")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let created = answers.iter().filter(|r| r.status == 201).count();
    let serials: HashSet<&str> = answers
        .iter()
        .filter_map(|r| r.json["serial"].as_str())
        .collect();
    let summary: Vec<String> = answers.iter().map(|r| r.to_string()).collect();
    assert!(
        created == 1 && serials.len() == 1 && answers.iter().all(|r| matches!(r.status, 200 | 201)),
        "8 concurrent requests with one request_id: expected one 201 and seven 200 with the \
         same serial; got:\n{}",
        summary.join("\n")
    );
}
