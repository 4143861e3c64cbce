//! Concurrency smoke tests: many clients at once, every answer right, every serial distinct.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

#[test]
fn eight_threads_of_25_requests() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let s = Server::fresh();
    let csrs: Vec<Csr> = (0..THREADS)
        .map(|t| server_csr(&format!("conc-{t}.example")))
        .collect();
    let results: Vec<Vec<(String, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = csrs
            .iter()
            .enumerate()
            .map(|(t, csr)| {
                let (client, base, ra) = (s.client(), s.base.clone(), s.tokens.ra.clone());
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let body = json!({"csr": csr.pem, "profile": "tls-server",
                                              "validity_days": 1 + (i % 30)});
                            let r = try_post(&client, &base, "/v1/certificates", &ra, &body)
                                .unwrap_or_else(|e| panic!("thread {t} request {i}: {e}"));
                            assert_eq!(r.status, 201, "thread {t} request {i}: {r}");
                            let serial = r.json["serial"].as_str().expect("serial").to_string();
                            let cert = r.json["certificate"].as_str().expect("cert").to_string();
                            (serial, cert)
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
    let all: Vec<&(String, String)> = results.iter().flatten().collect();
    assert_eq!(all.len(), THREADS * PER_THREAD);
    let serials: HashSet<&str> = all.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(serials.len(), all.len(), "serials repeat under concurrency");
    for (serial, pem) in &all {
        assert!(is_serial(serial), "serial {serial:?}");
        let der = pem_certs(pem).pop().expect("a certificate");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parses");
        assert_eq!(
            &hex::encode(cert.raw_serial()),
            serial,
            "certificate serial vs answer"
        );
    }
    // A sample reads back identically.
    for (serial, pem) in all.iter().step_by(20) {
        let rec = s.record(serial);
        assert_eq!(
            rec["certificate"],
            pem.as_str(),
            "{serial}: stored certificate differs"
        );
    }
}

#[test]
fn concurrent_duplicates_of_one_request_id_issue_once() {
    const THREADS: usize = 8;
    let s = Server::fresh();
    let csr = server_csr("dup.example");
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
