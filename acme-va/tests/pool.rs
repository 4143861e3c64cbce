//! The pool: at most `max_in_flight` validations run, `queue` wait, the next is refused.

mod common;

use std::time::Duration;

use ca_acme::ProblemType;
use ca_acme_va::{Challenge, Ident, Va, VaConfig};
use common::*;

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn a_full_queue_refuses_at_once() {
    let server = HttpServer::start("127.0.0.1", |_: &str| Reply::Hang).await;
    let va = Va::new(VaConfig {
        max_in_flight: 1,
        queue: 1,
        timeout: Duration::from_secs(30),
        ..config(server.port(), 1, None)
    })
    .unwrap();
    let ident = Ident::Ip("127.0.0.1".parse().unwrap());
    let spawn = |va: Va, ident: Ident| {
        tokio::spawn(async move {
            va.validate(Challenge::Http01, &ident, TOKEN, KEY_AUTHORIZATION)
                .await
        })
    };
    let first = spawn(va.clone(), ident.clone());
    until("the first validation running", || va.in_flight() == 1).await;
    let second = spawn(va.clone(), ident.clone());
    until("the second validation waiting", || va.queued() == 1).await;
    assert_eq!(va.in_flight(), 1);

    let started = std::time::Instant::now();
    let problem = tokio::time::timeout(
        Duration::from_secs(2),
        va.validate(Challenge::Http01, &ident, TOKEN, KEY_AUTHORIZATION),
    )
    .await
    .expect("refused at once, not queued")
    .unwrap_err();
    assert_eq!(problem.kind, ProblemType::ServerInternal, "{problem}");
    assert!(problem.detail.contains("queue is full"), "{problem}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The hanging server saw one connection: the first validation's.
    assert_eq!(server.seen().len(), 1);

    first.abort();
    until("the second validation running", || {
        va.queued() == 0 && va.in_flight() == 1
    })
    .await;
    second.abort();
    until("the pool empty", || va.in_flight() == 0).await;
}
