//! CRL publication: the CRL number only grows (across generations and restarts), and the
//! timer publishes a revocation without anyone calling `POST /v1/crl/generate`.

use std::time::{Duration, Instant};

use e2e_tests::prelude::*;

#[test]
fn crl_number_grows_across_generations_and_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    let mut numbers = vec![("start", s.check_crl(&s.crl(), "n0").number)];

    let g1 = s.generate_crl();
    let c1 = parse_crl(&s.crl(), "after the first generate");
    assert_eq!(g1["crl_number"].as_u64().map(u128::from), Some(c1.number));
    numbers.push(("generate 1", c1.number));
    let d1 = parse_crl(&s.delta_crl(), "delta after the first generate");
    assert_eq!(
        d1.delta_base,
        Some(numbers[0].1),
        "delta after the first generate should be against the start CRL"
    );

    let g2 = s.generate_crl();
    let c2 = s.check_crl(&s.crl(), "n2");
    assert_eq!(g2["crl_number"].as_u64().map(u128::from), Some(c2.number));
    assert_eq!(g2["entries"], 0, "{g2}");
    numbers.push(("generate 2", c2.number));
    let d2 = s.check_crl(&s.delta_crl(), "d2");
    assert_eq!(
        d2.delta_base,
        Some(c1.number),
        "delta base after generate 2"
    );
    assert!(
        d2.number > d1.number && d2.number >= c2.number,
        "delta CRL numbers {} then {} (complete {})",
        d1.number,
        d2.number,
        c2.number
    );
    s.terminate();

    let s = Server::serve(dir);
    let c3 = s.check_crl(&s.crl(), "n3");
    numbers.push(("restart", c3.number));
    let d3 = parse_crl(&s.delta_crl(), "delta after restart");
    assert!(
        d3.number > d2.number,
        "delta CRL number {} after restart, {} before",
        d3.number,
        d2.number
    );
    let g4 = s.generate_crl();
    numbers.push((
        "generate after restart",
        u128::from(g4["crl_number"].as_u64().expect("crl_number")),
    ));
    for pair in numbers.windows(2) {
        assert!(
            pair[1].1 > pair[0].1,
            "CRL number did not grow: {numbers:?}"
        );
    }
}

#[test]
fn the_timer_publishes_a_revocation_within_seconds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(dir.join("config.toml"), "[crl]\ninterval_secs = 1\n").expect("config");
    let s = Server::serve(dir);
    let issued = s.issue(&server_csr("timer.example.com"), "tls-server", None);
    let sn = issued["serial"].as_str().expect("serial").to_string();
    let before = parse_crl(&s.crl(), "before the revocation").number;
    s.revoke_ok(&sn, "keyCompromise");

    let start = Instant::now();
    let crl = loop {
        let crl = parse_crl(&s.crl(), "polled");
        if crl.entry(&sn).is_some() {
            break crl;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "revocation of {sn} not on GET /crl within 10 s with interval_secs = 1 \
             (CRL number still {})",
            crl.number
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        crl.number > before,
        "CRL number {} after {before}",
        crl.number
    );
    let crl = s.check_crl(&crl.der, "timer");
    assert_eq!(crl.entry(&sn).and_then(|e| e.reason), Some(1));
}

/// CRL numbers survive an unclean shutdown by persistence, not by the clock: a burst of
/// generations takes the number well ahead of the clock (each number is at least the current
/// Unix second, and one more than the last), the server is killed with SIGKILL and started
/// again at once, and the next number must still be above the last one, which a number taken
/// from the clock alone would not be.
#[test]
fn crl_numbers_stay_ahead_of_the_clock_across_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let s = Server::serve(&dir);
    let mut last = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while last < now_unix() as u64 + 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "60 s of CRL generations did not take the number 100 ahead of the clock"
        );
        let n = s.generate_crl()["crl_number"].as_u64().expect("crl_number");
        assert!(n > last, "CRL number {n} after {last}");
        last = n;
    }
    // The delta CRL of the last generation has the highest number yet.
    last = last.max(u64::try_from(parse_crl(&s.delta_crl(), "delta").number).expect("u64"));
    s.kill9();
    let s = Server::serve(&dir);
    assert!(
        (last as i64) > now_unix() + 50,
        "the clock caught up with the numbers before the restart"
    );
    let full = s.check_crl(&s.crl(), "after-sigkill");
    let delta = parse_crl(&s.delta_crl(), "delta after SIGKILL");
    assert!(
        full.number > u128::from(last) && delta.number > u128::from(last),
        "CRL numbers {} and {} after SIGKILL, {last} before",
        full.number,
        delta.number
    );
    s.terminate();
}
