//! The throwaway PostgreSQL clusters that the tests of a shared database run on
//! (`e2e_tests::postgres`): two start side by side on loopback ports, answer over TCP only with
//! the password, commit synchronously, and are gone once dropped.

use std::process::Command;

use e2e_tests::postgres::{postgres_bin, Postgres};

#[test]
fn throwaway_clusters_start_side_by_side_answer_with_the_password_and_go_away() {
    let a = Postgres::start();
    let b = Postgres::start();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.psql("select 1").trim(), "1");
    assert_eq!(b.psql("show synchronous_commit").trim(), "on");
    assert_eq!(b.psql("show listen_addresses").trim(), "127.0.0.1");

    let wrong = Command::new(postgres_bin().join("psql"))
        .args(["-X", "-c", "select 1"])
        .arg(a.url("postgres"))
        .env("PGPASSWORD", "not-the-password")
        .output()
        .expect("psql");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && stderr.contains("password authentication failed"),
        "a wrong password was not refused: {stderr}"
    );

    let data = a.data_dir();
    assert!(data.join("PG_VERSION").is_file());
    drop(a);
    assert!(!data.exists(), "the cluster's directory outlived it");
    assert_eq!(b.psql("select 2").trim(), "2");
}
