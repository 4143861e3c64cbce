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
    AcmeIndexOp, AcmeKind, AcmeObject, AcmePut, AcmeStore, AcmeWrite, AuditStore, CertRecord,
    CertificateStore, EnrollmentRecord, EnrollmentStore, IdempotencyKey, RevocationStore, Storage,
    TokenRecord, TokenStore,
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
        protocol: Default::default(),
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
        action: None,
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
        action: None,
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

fn acme_put(kind: AcmeKind, id: &[u8], expect: Option<u64>, value: &[u8]) -> AcmePut {
    AcmePut {
        kind,
        id: id.to_vec(),
        expect,
        value: value.to_vec(),
    }
}

fn acme_claim(key: &[u8], id: &[u8]) -> AcmeIndexOp {
    AcmeIndexOp::Claim {
        key: key.to_vec(),
        id: id.to_vec(),
    }
}

fn acme_link(key: &[u8]) -> AcmeIndexOp {
    AcmeIndexOp::Link { key: key.to_vec() }
}

fn acme_write(puts: Vec<AcmePut>, index: Vec<AcmeIndexOp>, action: AuditAction) -> AcmeWrite {
    AcmeWrite {
        puts,
        index,
        event: AuditEvent::new(NOW, "acme", action, "target"),
    }
}

impl Node {
    fn acme(&self, write: AcmeWrite) -> Result<(), CaError> {
        self.ask(|tx| WriteOp::Acme(write, tx))
    }
}

/// ACME objects on one database through two nodes: versions and claims are checked under the
/// groups' lock, so of two changes made from the same version exactly one is stored, and
/// what one node writes the other reads. A refused write stores nothing.
#[test]
fn acme_objects_are_versioned_across_nodes() {
    use AcmeKind::{Account, Order};
    let pg = Postgres::start();
    let a = Node::on_new_database(&pg);
    let b = Node::start(&pg);

    // Written through A, read through B.
    let mut links: Vec<AcmeIndexOp> = [&b"acct/o3"[..], b"acct/o1", b"acct/o2", b"acct0/x"]
        .iter()
        .map(|k| acme_link(k))
        .collect();
    links.push(acme_claim(b"thumb-1", b"acct"));
    a.acme(acme_write(
        vec![
            acme_put(Account, b"acct", None, b"v1"),
            acme_put(Order, b"acct", None, b"order"),
        ],
        links,
        AuditAction::AcmeAccountCreated,
    ))
    .unwrap();
    let object = |version, value: &[u8]| {
        Some(AcmeObject {
            version,
            value: value.to_vec(),
        })
    };
    assert_eq!(
        b.store.acme_object(Account, b"acct").unwrap(),
        object(1, b"v1")
    );
    assert_eq!(
        b.store.acme_object(Order, b"acct").unwrap(),
        object(1, b"order")
    );
    assert_eq!(b.store.acme_object(Account, b"none").unwrap(), None);
    assert_eq!(
        b.store.acme_claim_holder(b"thumb-1").unwrap(),
        Some(b"acct".to_vec())
    );
    assert_eq!(b.store.acme_claim_holder(b"thumb-2").unwrap(), None);
    let keys = |keys: &[&[u8]]| keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        b.store.acme_links(b"acct/", None, 10).unwrap(),
        keys(&[b"acct/o1", b"acct/o2", b"acct/o3"])
    );
    assert_eq!(
        b.store.acme_links(b"acct/", Some(b"acct/o1"), 1).unwrap(),
        keys(&[b"acct/o2"])
    );
    assert_eq!(
        b.store.acme_links(b"acct/", Some(b"acct/o2"), 10).unwrap(),
        keys(&[b"acct/o3"])
    );
    assert_eq!(b.store.acme_links(b"acct", None, 10).unwrap().len(), 4);
    assert!(b.store.acme_links(b"acct/", None, 0).unwrap().is_empty());

    // Refused through B: a create of an existing id, a stale version, a key held by another
    // id. Nothing of them is stored, no audit entry.
    let head = a.store.audit_head().unwrap();
    let refused = [
        acme_write(
            vec![acme_put(Account, b"acct", None, b"again")],
            vec![],
            AuditAction::AcmeAccountCreated,
        ),
        acme_write(
            vec![
                acme_put(Order, b"o-new", None, b"order"),
                acme_put(Account, b"acct", Some(2), b"ahead"),
            ],
            vec![acme_link(b"acct/o-new")],
            AuditAction::AcmeOrderCreated,
        ),
        acme_write(
            vec![acme_put(Account, b"other", None, b"other")],
            vec![acme_link(b"other/o1"), acme_claim(b"thumb-1", b"other")],
            AuditAction::AcmeAccountCreated,
        ),
    ];
    for write in refused {
        let err = b.acme(write).unwrap_err();
        assert_eq!(err.code(), "conflict", "{err}");
    }
    assert_eq!(a.store.audit_head().unwrap(), head);
    assert_eq!(a.store.acme_object(Order, b"o-new").unwrap(), None);
    assert_eq!(a.store.acme_object(Account, b"other").unwrap(), None);
    assert!(a.store.acme_links(b"other/", None, 10).unwrap().is_empty());
    assert_eq!(a.store.acme_links(b"acct/", None, 10).unwrap().len(), 3);
    assert_eq!(
        a.store.acme_object(Account, b"acct").unwrap(),
        object(1, b"v1")
    );

    // A key change in one write, then the old key claimed by another account.
    b.acme(acme_write(
        vec![acme_put(Account, b"acct", Some(1), b"v2")],
        vec![
            AcmeIndexOp::Release {
                key: b"thumb-1".to_vec(),
            },
            acme_claim(b"thumb-2", b"acct"),
            AcmeIndexOp::Unlink {
                key: b"acct/o3".to_vec(),
            },
        ],
        AuditAction::AcmeAccountKeyChanged,
    ))
    .unwrap();
    a.acme(acme_write(
        vec![acme_put(Account, b"other", None, b"other")],
        vec![acme_claim(b"thumb-1", b"other")],
        AuditAction::AcmeAccountCreated,
    ))
    .unwrap();
    assert_eq!(
        b.store.acme_claim_holder(b"thumb-1").unwrap(),
        Some(b"other".to_vec())
    );
    assert_eq!(
        b.store.acme_claim_holder(b"thumb-2").unwrap(),
        Some(b"acct".to_vec())
    );
    assert_eq!(
        a.store.acme_links(b"acct/", None, 10).unwrap(),
        keys(&[b"acct/o1", b"acct/o2"])
    );

    // Writes sent together to one writer (one group, or several): each sees the one before.
    let pending: Vec<_> = (2..12u64)
        .map(|v| {
            let (tx, rx) = oneshot::channel();
            let write = acme_write(
                vec![acme_put(Order, b"acct", Some(v - 1), &v.to_be_bytes())],
                vec![acme_link(format!("acct/o{v:02}").as_bytes())],
                AuditAction::AcmeOrderUpdated,
            );
            a.writer.sender().send(WriteOp::Acme(write, tx)).unwrap();
            rx
        })
        .collect();
    for rx in pending {
        rx.blocking_recv().unwrap().unwrap();
    }
    assert_eq!(
        b.store.acme_object(Order, b"acct").unwrap(),
        object(11, &11u64.to_be_bytes())
    );

    // Both nodes change the object from the version they read, at once: one wins each round.
    for _ in 0..10 {
        let version = a
            .store
            .acme_object(Account, b"acct")
            .unwrap()
            .unwrap()
            .version;
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<Result<(), CaError>> = thread::scope(|s| {
            let barrier = &barrier;
            let racers: Vec<_> = [&a, &b]
                .into_iter()
                .enumerate()
                .map(|(i, node)| {
                    s.spawn(move || {
                        barrier.wait();
                        node.acme(acme_write(
                            vec![acme_put(Account, b"acct", Some(version), &[i as u8])],
                            vec![acme_link(format!("acct/race-{version}-{i}").as_bytes())],
                            AuditAction::AcmeAccountUpdated,
                        ))
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won: Vec<usize> = (0..2).filter(|i| outcomes[*i].is_ok()).collect();
        assert_eq!(won.len(), 1, "{outcomes:?}");
        let lost = &outcomes[1 - won[0]];
        assert!(
            matches!(lost, Err(CaError::AcmeConflict { .. })),
            "{outcomes:?}"
        );
        let stored = b.store.acme_object(Account, b"acct").unwrap().unwrap();
        assert_eq!(stored.version, version + 1);
        assert_eq!(stored.value, [won[0] as u8]);
        let raced = a
            .store
            .acme_links(format!("acct/race-{version}-").as_bytes(), None, 10)
            .unwrap();
        assert_eq!(
            raced,
            [format!("acct/race-{version}-{}", won[0]).into_bytes()]
        );
    }
    let report = b.store.verify_audit(&[]).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.head, a.store.audit_head().unwrap());

    // Keys of 0xff bytes: the prefix has no upper bound.
    a.acme(acme_write(
        vec![],
        vec![
            acme_link(b"\xff\xff"),
            acme_link(b"\xff\xff\x01"),
            acme_link(b"\xfe"),
        ],
        AuditAction::AcmeOrderCreated,
    ))
    .unwrap();
    assert_eq!(
        b.store.acme_links(b"\xff", None, 10).unwrap(),
        keys(&[b"\xff\xff", b"\xff\xff\x01"])
    );
    assert_eq!(b.store.acme_links(b"", None, 100).unwrap().len(), 26);

    // A column the schema does not allow is a storage error where it is read, not a panic.
    pg.psql("ALTER TABLE acme_objects ALTER COLUMN version TYPE numeric");
    let err = b.store.acme_object(Account, b"acct").unwrap_err();
    assert_eq!(err.code(), "storage_error", "{err}");
    let err = a
        .acme(acme_write(
            vec![acme_put(Account, b"acct", Some(12), b"x")],
            vec![],
            AuditAction::AcmeAccountUpdated,
        ))
        .unwrap_err();
    assert_eq!(err.code(), "storage_error", "{err}");
    a.stored(1);
    a.writer.join();
    b.writer.join();
}

/// ACME nonces (RFC 8555 section 6.5) across nodes: every node derives the same sealing key
/// from the database, and a nonce is spent once for all of them; spent nonces past their
/// expiry are pruned.
#[test]
fn acme_nonces_are_spent_once_across_nodes() {
    let pg = Postgres::start();
    let a = Node::on_new_database(&pg);
    let b = Node::start(&pg);
    let key = a.store.acme_nonce_key().unwrap();
    assert!(
        key.is_some(),
        "a shared store seals nonces with its own key"
    );
    assert_eq!(key, b.store.acme_nonce_key().unwrap());
    let other = Postgres::start();
    let c = Node::on_new_database(&other);
    assert_ne!(
        key,
        c.store.acme_nonce_key().unwrap(),
        "each database has its own key"
    );

    let id = [7u8; 16];
    assert_eq!(
        a.store.acme_spend_nonce(&id, 2_000_000_000).unwrap(),
        Some(true)
    );
    assert_eq!(
        b.store.acme_spend_nonce(&id, 2_000_000_000).unwrap(),
        Some(false)
    );
    assert_eq!(
        a.store.acme_spend_nonce(&id, 2_000_000_000).unwrap(),
        Some(false)
    );
    assert_eq!(
        b.store.acme_spend_nonce(&[8; 16], 2_000_000_000).unwrap(),
        Some(true)
    );

    // A spend whose id starts 00 0x prunes what expired an hour before its own expiry.
    let old = [9u8; 16];
    assert_eq!(a.store.acme_spend_nonce(&old, 1_000).unwrap(), Some(true));
    let mut pruner = [0u8; 16];
    pruner[15] = 1;
    assert_eq!(
        a.store.acme_spend_nonce(&pruner, 10_000).unwrap(),
        Some(true)
    );
    assert_eq!(
        a.store.acme_spend_nonce(&old, 1_000).unwrap(),
        Some(true),
        "the expired nonce was pruned (its seal refuses it anyway)"
    );
    assert_eq!(
        a.store.acme_spend_nonce(&id, 2_000_000_000).unwrap(),
        Some(false)
    );
}

/// A database of schema version 1 (before the ACME tables) is refused by `open` and brought up
/// to date by `create` (`ca-server init --store-url`), keeping what it holds.
#[test]
fn a_version_1_database_is_migrated_to_the_acme_tables() {
    let pg = Postgres::start();
    let node = Node::on_new_database(&pg);
    node.stored(1);
    node.writer.join();
    pg.psql(
        "DROP TABLE acme_objects, acme_claims, acme_links, acme_nonces; \
         UPDATE ca_schema SET version = 1",
    );
    let err = PgStore::open(&config(&pg)).unwrap_err().to_string();
    assert!(err.contains("schema version 1, older"), "{err}");
    drop(PgStore::create(&config(&pg)).unwrap());
    assert_eq!(pg.psql("SELECT version FROM ca_schema").trim(), "2");
    let node = Node::start(&pg);
    assert!(node.store.contains_serial(&serial(1)).unwrap());
    node.acme(acme_write(
        vec![acme_put(AcmeKind::Account, b"acct", None, b"v1")],
        vec![acme_claim(b"thumb", b"acct")],
        AuditAction::AcmeAccountCreated,
    ))
    .unwrap();
    assert_eq!(
        node.store.acme_claim_holder(b"thumb").unwrap(),
        Some(b"acct".to_vec())
    );
    let report = node.store.verify_audit(&[]).unwrap();
    assert!(report.broken.is_none() && report.entries == 2, "{report:?}");
    node.writer.join();
}
