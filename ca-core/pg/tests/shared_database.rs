//! Two writers on one PostgreSQL database behave as the one writer of a single store: every
//! check the writer makes holds across them (serials, idempotency keys, enrollment redemptions,
//! token names), the sequences and the audit log stay single, and a change made through one is
//! read by the other. Each "node" here is a `PgStore` with its own pool and writer, as two
//! `ca-server` processes would have.

use std::sync::Arc;
use std::thread;

use ca_core::audit::{AuditAction, AuditEvent};
use ca_core::ocsp::CertStatus;
use ca_core::revocation::RevocationReason;
use ca_core::store::writer::{
    Committed, CrlPosition, CrlRequest, NewCertificate, RevokeRequest, StoreWriter, WriteOp,
};
use ca_core::store::{
    AuditStore, CertRecord, CertificateStore, EnrollmentRecord, EnrollmentStore, IdempotencyKey,
    RevocationStore, Storage, TokenRecord, TokenStore,
};
use ca_core::{CaError, Serial};
use ca_store_pg::{PgConfig, PgStore};
use e2e_tests::postgres::Postgres;
use tokio::sync::oneshot;

const NOW: i64 = 1_800_000_000;

fn config(pg: &Postgres) -> PgConfig {
    PgConfig {
        url: pg.url("postgres"),
        password: Some(zeroize::Zeroizing::new(pg.password().to_string())),
        pool_size: 4,
        tls_roots_pem: None,
    }
}

/// A node: its store and running writer.
struct Node {
    store: PgStore,
    writer: StoreWriter,
}

impl Node {
    /// The first node on a database it creates the schema in.
    fn on_new_database(pg: &Postgres) -> Node {
        drop(PgStore::create(&config(pg)).unwrap());
        Node::start(pg)
    }

    fn start(pg: &Postgres) -> Node {
        let store = PgStore::open(&config(pg)).unwrap();
        let metrics = Arc::new(ca_core::metrics::Metrics::new().unwrap());
        let writer = store.start_writer(64, metrics).unwrap();
        Node { store, writer }
    }

    /// Sends the operation `op` makes of a reply channel and waits for its answer.
    fn ask<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, CaError>>) -> WriteOp,
    ) -> Result<T, CaError> {
        let (tx, rx) = oneshot::channel();
        self.writer.sender().send(op(tx)).unwrap();
        rx.blocking_recv().unwrap()
    }

    fn issue(&self, cert: NewCertificate) -> Result<Committed, CaError> {
        self.ask(|tx| WriteOp::Certificate(cert, tx))
    }

    /// Issues [`certificate`] `n`, which must be stored; its record.
    fn stored(&self, n: u32) -> CertRecord {
        match self.issue(certificate(n)).unwrap() {
            Committed::Stored(record) => record,
            other => panic!("certificate {n}: {other:?}"),
        }
    }
}

fn serial(n: u32) -> Serial {
    let mut bytes = [0x11u8; 16];
    bytes[0] = 0x40;
    bytes[12..].copy_from_slice(&n.to_be_bytes());
    Serial::from_bytes(&bytes).unwrap()
}

fn certificate(n: u32) -> NewCertificate {
    NewCertificate {
        record: CertRecord {
            seq: 0,
            serial: serial(n),
            der: vec![0x30, 0x03, 0x02, 0x01, n as u8],
            profile: "tls-server".into(),
            requester: "ra".into(),
            issued_at: NOW,
            not_before: NOW - 60,
            not_after: NOW + 86_400,
            renewed_from: None,
            audit_seq: None,
        },
        idempotency: None,
        names: vec![ca_core::store::query::names_prefix(b'N', "example.com")],
        enrollment: None,
    }
}

fn token(name: &str) -> TokenRecord {
    TokenRecord {
        name: name.into(),
        role: "ra".into(),
        created_at: NOW,
        id: [1; 16],
        expires_at: None,
        revoked_at: None,
    }
}

#[test]
fn two_writers_on_one_database_behave_as_one_store() {
    let pg = Postgres::start();
    let a = Node::on_new_database(&pg);
    let b = Node::start(&pg);

    // Issuance from both at once: one issuance sequence without gaps or repeats, one chain.
    thread::scope(|s| {
        for (node, base) in [(&a, 0u32), (&b, 10_000)] {
            s.spawn(move || {
                let pending: Vec<_> = (1..=150)
                    .map(|i| {
                        let (tx, rx) = oneshot::channel();
                        let op = WriteOp::Certificate(certificate(base + i), tx);
                        node.writer.sender().send(op).unwrap();
                        rx
                    })
                    .collect();
                for rx in pending {
                    assert!(matches!(
                        rx.blocking_recv().unwrap(),
                        Ok(Committed::Stored(_))
                    ));
                }
            });
        }
    });
    assert_eq!(a.store.count_certificates().unwrap(), 300);
    assert_eq!(b.store.last_cert_seq().unwrap(), 300);
    let mut seqs: Vec<u64> = (1..=150)
        .flat_map(|i| [serial(i), serial(10_000 + i)])
        .map(|s| b.store.certificate(&s).unwrap().unwrap().seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    let report = a.store.verify_audit(&[]).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.entries, 300);

    // A serial stored through one is a collision through the other.
    let err = b.issue(certificate(1)).unwrap_err();
    assert_eq!(err.code(), "serial_collision");

    // An idempotency key taken through one answers the stored certificate through the other.
    let key = IdempotencyKey::new(&[3; 32], "request-1");
    let mut first = certificate(20_001);
    first.idempotency = Some((key.clone(), [9; 32]));
    assert!(matches!(a.issue(first).unwrap(), Committed::Stored(_)));
    let mut again = certificate(20_002);
    again.idempotency = Some((key, [9; 32]));
    match b.issue(again).unwrap() {
        Committed::Existing(existing) => assert_eq!(existing.serial, serial(20_001)),
        other => panic!("a second certificate for one request_id: {other:?}"),
    }
    assert!(!a.store.contains_serial(&serial(20_002)).unwrap());

    // An enrollment redeemed through both at once: exactly one certificate.
    let id = [7u8; 16];
    let enrollment = EnrollmentRecord {
        profile: "personal".into(),
        subject: "CN=x".into(),
        sans: Vec::new(),
        validity_days: None,
        code_hash: vec![1; 48],
        requester: "ra".into(),
        created_at: NOW,
        expires_at: i64::MAX / 2,
        max_attempts: 5,
        failed_attempts: 0,
        serial: None,
    };
    a.ask(|tx| WriteOp::CreateEnrollment(id, enrollment, "ra".into(), tx))
        .unwrap();
    let redeem = |node: &Node, n: u32| {
        let mut cert = certificate(n);
        cert.enrollment = Some(id);
        node.issue(cert)
    };
    let outcomes: Vec<Result<Committed, CaError>> = thread::scope(|s| {
        let (redeem, a, b) = (&redeem, &a, &b);
        let x = s.spawn(move || redeem(a, 30_001));
        let y = s.spawn(move || redeem(b, 30_002));
        vec![x.join().unwrap(), y.join().unwrap()]
    });
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Committed::Stored(_))))
        .count();
    let refused: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err().map(CaError::code))
        .collect();
    assert_eq!((stored, refused), (1, vec!["enrollment_already_redeemed"]));
    assert!(b.store.enrollment(&id).unwrap().unwrap().serial.is_some());

    // A token created through one is read and its name refused through the other.
    a.ask(|tx| WriteOp::PutToken([5; 32], token("ra-1"), "op".into(), tx))
        .unwrap();
    assert_eq!(b.store.token(&[5; 32]).unwrap().unwrap().name, "ra-1");
    let err = b
        .ask(|tx| WriteOp::PutToken([6; 32], token("ra-1"), "op".into(), tx))
        .unwrap_err();
    assert_eq!(err.code(), "token_name_taken");
    // The command line's direct write goes through the same checks.
    let err = b
        .store
        .put_token(&[6; 32], &token("ra-1"), "op")
        .unwrap_err();
    assert_eq!(err.code(), "token_name_taken");
    b.store.put_token(&[6; 32], &token("ra-2"), "op").unwrap();
    assert_eq!(a.store.tokens().unwrap().len(), 2);
    let revoked = a.store.revoke_token("ra-2", NOW, "op").unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW));
    assert!(b
        .store
        .token_by_name("ra-2")
        .unwrap()
        .unwrap()
        .1
        .revoked_at
        .is_some());

    // A revocation made through one is what the other's OCSP and CRL reads see.
    let revoke = RevokeRequest {
        serial: serial(2),
        reason: RevocationReason::KeyCompromise,
        at: NOW,
        invalidity_date: None,
        actor: "ra".into(),
        blocked_key: Some([8; 32]),
    };
    a.ask(|tx| WriteOp::Revoke(revoke.clone(), tx)).unwrap();
    assert!(matches!(
        b.store.ocsp_status(&serial(2)).unwrap(),
        CertStatus::Revoked { .. }
    ));
    assert!(matches!(
        b.store.ocsp_status(&serial(3)).unwrap(),
        CertStatus::Good
    ));
    assert!(matches!(
        b.store.ocsp_status(&serial(99_999)).unwrap(),
        CertStatus::Unknown
    ));
    assert_eq!(b.store.blocked_keys().unwrap(), vec![[8; 32]]);
    assert_eq!(
        b.ask(|tx| WriteOp::Revoke(revoke, tx)).unwrap_err().code(),
        "already_revoked"
    );
    assert_eq!(b.store.changed_since(0, u64::MAX).unwrap(), vec![serial(2)]);
    let mut revoked = Vec::new();
    b.store
        .for_each_revocation(&mut |s, r| {
            revoked.push((s, r.reason));
            Ok(())
        })
        .unwrap();
    assert_eq!(revoked, vec![(serial(2), RevocationReason::KeyCompromise)]);
    assert_eq!(b.store.events(&serial(2)).unwrap().len(), 1);

    // CRL numbers allocated through both: each once, increasing, never below the floor.
    let take = |node: &Node| {
        (0..20)
            .map(|_| {
                node.ask(|tx| {
                    WriteOp::NextCrlNumber(
                        CrlRequest {
                            floor: 0,
                            actor: "crl".into(),
                            kind: "full",
                        },
                        tx,
                    )
                })
                .map(|p: CrlPosition| p.number)
                .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let numbers: Vec<u64> = thread::scope(|s| {
        let (take, a, b) = (&take, &a, &b);
        let x = s.spawn(move || take(a));
        let y = s.spawn(move || take(b));
        [x.join().unwrap(), y.join().unwrap()].concat()
    });
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (1..=40).collect::<Vec<_>>());
    assert_eq!(a.store.last_crl_number().unwrap(), 40);

    // Audit entries from both, one chain; the command line's entry joins it.
    a.store
        .record_event(AuditEvent::new(NOW, "op", AuditAction::CrlGenerated, "x"))
        .unwrap();
    let report = b.store.verify_audit(&[]).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.head, a.store.audit_head().unwrap());

    // Tampering with the log in the database is found.
    pg.psql(
        "UPDATE audit_log SET entry = (SELECT entry FROM audit_log WHERE seq = 1) WHERE seq = 2",
    );
    let report = b.store.verify_audit(&[]).unwrap();
    assert_eq!(report.broken.map(|b| b.seq()), Some(2));

    a.writer.join();
    b.writer.join();
}

#[test]
fn the_schema_is_created_once_and_a_newer_one_or_a_password_in_the_url_is_refused() {
    let pg = Postgres::start();
    let err = PgStore::open(&config(&pg)).unwrap_err().to_string();
    assert!(err.contains("schema version 0"), "{err}");
    drop(PgStore::create(&config(&pg)).unwrap());
    // Again: nothing to do, and the cursor key stays.
    let key_before = pg.psql("SELECT encode(cursor_key, 'hex') FROM ca_head");
    drop(PgStore::create(&config(&pg)).unwrap());
    assert_eq!(
        pg.psql("SELECT encode(cursor_key, 'hex') FROM ca_head"),
        key_before
    );
    PgStore::open(&config(&pg)).unwrap();

    pg.psql("UPDATE ca_schema SET version = 99");
    for err in [
        PgStore::open(&config(&pg)).unwrap_err(),
        PgStore::create(&config(&pg)).unwrap_err(),
    ] {
        assert!(
            err.to_string().contains("schema version 99, newer"),
            "{err}"
        );
    }

    let mut with_password = config(&pg);
    with_password.url = with_password
        .url
        .replace("postgres@", &format!("postgres:{}@", pg.password()));
    let err = PgStore::open(&with_password).unwrap_err().to_string();
    assert!(err.contains("holds a password"), "{err}");
    assert!(!err.contains(pg.password()), "{err}");

    let mut wrong = config(&pg);
    wrong.password = Some(zeroize::Zeroizing::new("wrong".into()));
    let err = PgStore::open(&wrong).unwrap_err();
    assert!(!err.to_string().contains("wrong"), "{err}");
}

#[test]
fn a_database_that_is_down_is_unavailable_not_a_fault() {
    let pg = Postgres::start();
    let node = Node::on_new_database(&pg);
    node.stored(1);
    let port = pg.port();
    drop(pg);
    let err = node.issue(certificate(2)).unwrap_err();
    assert_eq!(err.code(), "storage_unavailable", "{err}");
    let err = node.store.certificate(&serial(1)).unwrap_err();
    assert_eq!(err.code(), "storage_unavailable", "{err} (port {port})");
    node.writer.join();
}

/// A group's statements go to the database in one pipeline ending in `COMMIT`. When one of
/// them fails, the transaction is aborted and that `COMMIT` rolls it back without an error of
/// its own: the group must be reported failed, and nothing of it stored, not even the rows
/// sent before the failing statement or the counters.
#[test]
fn a_group_that_fails_midway_stores_nothing_and_says_so() {
    let pg = Postgres::start();
    let node = Node::on_new_database(&pg);
    node.stored(1);
    let head = node.store.audit_head().unwrap();
    // The name index refuses every insert; certificates and the audit log are sent first.
    pg.psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON names \
         FOR EACH STATEMENT EXECUTE FUNCTION refuse();",
    );
    let err = node.issue(certificate(2)).unwrap_err();
    assert_eq!(err.code(), "storage_error", "{err}");
    assert!(node.store.certificate(&serial(2)).unwrap().is_none());
    assert_eq!(node.store.count_certificates().unwrap(), 1);
    assert_eq!(node.store.last_cert_seq().unwrap(), 1);
    assert_eq!(node.store.audit_head().unwrap(), head);

    // The next group after the fault stores normally, in the sequence the failed one left.
    pg.psql("DROP TRIGGER refuse ON names");
    assert_eq!(node.stored(3).seq, 2);
    let report = node.store.verify_audit(&[]).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    node.writer.join();
}

/// A row the schema does not allow (a column altered behind the CA's back to another type) is
/// a storage error where it is read, on the read pool and in the writer's groups;
/// nothing panics, and the writer goes on with the groups that do not read it.
#[test]
fn rows_the_schema_does_not_allow_are_storage_errors_not_panics() {
    let pg = Postgres::start();
    let node = Node::on_new_database(&pg);
    for n in 1..=2 {
        node.stored(n);
    }
    let revoke = |n: u32| RevokeRequest {
        serial: serial(n),
        reason: RevocationReason::Superseded,
        at: NOW,
        invalidity_date: None,
        actor: "ra".into(),
        blocked_key: None,
    };
    node.ask(|tx| WriteOp::Revoke(revoke(1), tx)).unwrap();
    pg.psql(
        "ALTER TABLE revocations ALTER COLUMN record TYPE text USING encode(record, 'hex'); \
         ALTER TABLE certificates ALTER COLUMN not_after TYPE numeric;",
    );
    // The read pool: columns of another type.
    let err = node.store.ocsp_status(&serial(1)).unwrap_err();
    assert_eq!(err.code(), "storage_error", "{err}");
    let err = node
        .store
        .for_each_revocation(&mut |_, _| Ok(()))
        .unwrap_err();
    assert_eq!(err.code(), "storage_error", "{err}");
    // The writer: revoking reads the revocation and notAfter under the group's lock.
    for n in [1, 2] {
        let err = node.ask(|tx| WriteOp::Revoke(revoke(n), tx)).unwrap_err();
        assert_eq!(err.code(), "storage_error", "{err}");
    }
    node.stored(3);
    node.writer.join();
}

/// With the database's CA certificates given, every connection is TLS through rustls and the
/// server's certificate is verified: the right CA works (the server reports TLS for the
/// store's sessions), another CA's is refused, and `sslmode=require` without CA certificates
/// is refused before connecting.
#[test]
fn tls_to_the_database_verifies_its_certificate() {
    let pg = Postgres::start();
    let (ca, other) = pg.enable_tls();
    let mut tls = config(&pg);
    tls.tls_roots_pem = Some(std::fs::read(&ca).unwrap());
    drop(PgStore::create(&tls).unwrap());
    let store = PgStore::open(&tls).unwrap();
    assert!(store.audit_head().is_ok());
    let plain = pg.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'ca-server' AND NOT s.ssl",
    );
    let encrypted = pg.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'ca-server' AND s.ssl",
    );
    assert_eq!(plain.trim(), "0", "a plain session of the store");
    assert_ne!(encrypted.trim(), "0", "no TLS session of the store");

    let mut wrong = config(&pg);
    wrong.tls_roots_pem = Some(std::fs::read(&other).unwrap());
    let err = PgStore::open(&wrong).unwrap_err();
    assert_eq!(err.code(), "storage_unavailable", "{err}");
    assert!(format!("{err}").contains("certificate"), "{err}");

    let mut require = config(&pg);
    require.url.push_str("?sslmode=require");
    let err = PgStore::open(&require).unwrap_err().to_string();
    assert!(err.contains("sslmode=require needs"), "{err}");
}
