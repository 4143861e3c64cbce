//! The engine in-process, with a real RocksDB store in a temporary directory.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::engine::{Engine, EngineConfig, IssueRequest, Requester};
use ca_core::name::parse_rfc4514;
use ca_core::profile::Profile;
use ca_core::store::Store;
use ca_core::{CaError, Serial};
use keys::SystemRandom;
use keys::{KeyAlgorithm, Signer, SoftwareKey};

fn authority() -> Arc<CertificateAuthority> {
    authority_valid_for(365)
}

/// A root CA whose certificate is valid for `days`, with the built-in profiles.
fn authority_valid_for(days: u32) -> Arc<CertificateAuthority> {
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let subject = parse_rfc4514("CN=Engine Test CA").unwrap();
    let serial = Serial::random(&SystemRandom::new()).unwrap();
    let root = create_root(signer.clone(), &subject, days, serial).unwrap();
    let urls = Urls {
        crl: vec!["http://ca.test/crl".into()],
        ..Urls::default()
    };
    Arc::new(CertificateAuthority::new(signer, vec![root], &Profile::builtin(), &urls).unwrap())
}

fn csr_pem(host: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
        .into_bytes()
}

fn request(csr: Vec<u8>, request_id: Option<&str>) -> IssueRequest {
    IssueRequest {
        csr,
        profile: "tls-server".into(),
        identity: Default::default(),
        validity_days: Some(10),
        request_id: request_id.map(String::from),
        requester: Requester {
            name: "test-ra".into(),
            token_hash: [7; 32],
            protocol: Default::default(),
        },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn concurrent_issuance_is_durable_unique_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority();
    let csrs: Vec<_> = (0..200)
        .map(|i| csr_pem(&format!("h{i}.example.com")))
        .collect();
    let mut issued = BTreeMap::new();
    {
        let store = Store::open(dir.path()).unwrap();
        let engine =
            Arc::new(Engine::start(ca.clone(), Arc::new(store), &EngineConfig::default()).unwrap());
        runtime().block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for csr in csrs {
                let engine = engine.clone();
                tasks.spawn(async move { engine.issue(request(csr, None)).await });
            }
            while let Some(result) = tasks.join_next().await {
                let issued_cert = result.unwrap().unwrap();
                assert!(!issued_cert.replayed);
                let record = issued_cert.record;
                assert!(
                    issued.insert(record.serial, record).is_none(),
                    "serial repeated"
                );
            }
        });
        Arc::try_unwrap(engine).unwrap().shutdown();
    }
    assert_eq!(issued.len(), 200);
    let seqs: HashSet<u64> = issued.values().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=200).collect());

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.count_certificates().unwrap(), 200);
    assert_eq!(store.last_cert_seq().unwrap(), 200);
    for (serial, record) in &issued {
        let serial = *serial;
        assert_eq!(store.certificate(&serial).unwrap().as_ref(), Some(record));
        let (_, cert) = x509_parser::parse_x509_certificate(&record.der).unwrap();
        assert_eq!(cert.raw_serial(), serial.as_bytes());
    }
}

#[test]
fn request_ids_replay_or_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::start(authority(), Arc::new(store), &EngineConfig::default()).unwrap();
    let csr = csr_pem("idem.example.com");
    runtime().block_on(async {
        let first = engine
            .issue(request(csr.clone(), Some("r-1")))
            .await
            .unwrap();
        let again = engine
            .issue(request(csr.clone(), Some("r-1")))
            .await
            .unwrap();
        assert!(!first.replayed && again.replayed);
        assert_eq!(first.record, again.record);
        let mut different = request(csr.clone(), Some("r-1"));
        different.validity_days = Some(11);
        assert!(matches!(
            engine.issue(different).await,
            Err(CaError::IdempotencyConflict(_))
        ));
        let mut other_token = request(csr, Some("r-1"));
        other_token.requester.token_hash = [8; 32];
        let other = engine.issue(other_token).await.unwrap();
        assert_ne!(other.record.serial, first.record.serial);
    });
}

#[test]
fn a_full_queue_refuses_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = EngineConfig {
        workers: 1,
        queue_capacity: 1,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::start(authority(), Arc::new(store), &config).unwrap());
    let csr = csr_pem("busy.example.com");
    let (ok, overloaded) = runtime().block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let engine = engine.clone();
            let csr = csr.clone();
            tasks.spawn(async move { engine.issue(request(csr, None)).await });
        }
        let (mut ok, mut overloaded) = (0, 0);
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(_) => ok += 1,
                Err(CaError::Overloaded) => overloaded += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        (ok, overloaded)
    });
    assert!(
        ok >= 1 && overloaded >= 1,
        "ok {ok}, overloaded {overloaded}"
    );
    assert_eq!(ok + overloaded, 64);
}

/// Many Ed25519 requests at once reach the workers in batches whose CSR signatures are
/// verified together; one tampered request is refused alone and the others are issued.
#[test]
fn queued_ed25519_requests_are_verified_together_and_a_bad_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // One worker: everything queued behind the first request is taken in batches.
    let config = EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::start(authority(), Arc::new(store), &config).unwrap());
    let csrs: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
            let mut params = rcgen::CertificateParams::new(vec![format!("e{i}.example")]).unwrap();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("e{i}"));
            let mut der = params.serialize_request(&key).unwrap().der().to_vec();
            if i == 150 {
                let n = der.len();
                der[n - 40] ^= 1; // a byte of the signature
            }
            der
        })
        .collect();
    let results = runtime().block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, csr) in csrs.into_iter().enumerate() {
            let engine = engine.clone();
            // tls-client: the TLS BR profile takes no Ed25519 keys.
            let mut request = request(csr, None);
            request.profile = "tls-client".into();
            tasks.spawn(async move { (i, engine.issue(request).await) });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            results.push(joined.unwrap());
        }
        results
    });
    for (i, result) in results {
        match result {
            Err(CaError::CsrSignatureInvalid) if i == 150 => {}
            Ok(issued) if i != 150 => {
                let (_, cert) = x509_parser::parse_x509_certificate(&issued.record.der).unwrap();
                let san = cert.subject_alternative_name().unwrap().unwrap();
                assert_eq!(
                    format!("{:?}", san.value.general_names[0]),
                    format!("DNSName(\"e{i}.example\")")
                );
            }
            other => panic!("request {i}: {other:?}"),
        }
    }
    let metrics = engine.metrics();
    assert_eq!(
        metrics.stages.csr_verify.get_sample_count(),
        200,
        "every request's verification is timed once"
    );
    let taken = metrics.worker_batch.get_sample_count();
    assert!(
        taken < 100,
        "200 queued requests were taken in {taken} goes: no batches"
    );
}

/// A redemption rolled back after its commit (its PKCS#12 file could not be built): the
/// certificate is revoked, the enrollment pending again, both in the audit log, and the code
/// redeems anew; a rollback for another certificate is refused.
#[test]
fn an_undone_redemption_revokes_its_certificate_and_reopens_the_enrollment() {
    use ca_core::engine::{EnrollmentRequest, RedeemKey};
    use ca_core::revocation::RevocationReason;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::start(authority(), Arc::new(store), &EngineConfig::default()).unwrap();
    runtime().block_on(async {
        let created = engine
            .create_enrollment(EnrollmentRequest {
                profile: "tls-server".into(),
                subject: "CN=undo.example.com".into(),
                sans: vec!["undo.example.com".into()],
                validity_days: None,
                lifetime_secs: 3600,
                max_attempts: 3,
                requester: Requester {
                    name: "test-ra".into(),
                    token_hash: [7; 32],
                    protocol: Default::default(),
                },
                code_key: None,
            })
            .await
            .unwrap();
        let (id, code) = (created.id, created.code);
        let redeem = || {
            engine.redeem(
                id,
                code.as_str(),
                RedeemKey::Csr(csr_pem("whatever.example.com")),
            )
        };
        let first = redeem().await.unwrap();
        let serial = first.record.serial;
        let again = redeem().await.unwrap_err();
        assert_eq!(again.code(), "enrollment_already_redeemed");

        let other = Serial::random(&SystemRandom::new()).unwrap();
        let refused = engine.undo_redemption(id, other).await.unwrap_err();
        assert!(matches!(refused, CaError::Storage(_)), "{refused}");

        engine.undo_redemption(id, serial).await.unwrap();
        let revocation = engine.store().revocation(&serial).unwrap().unwrap();
        assert_eq!(revocation.reason, RevocationReason::CessationOfOperation);
        let record = engine.store().enrollment(&id).unwrap().unwrap();
        assert_eq!(record.serial, None);
        let actions: Vec<String> = engine
            .store()
            .audit_entries(0, 100)
            .unwrap()
            .iter()
            .map(|e| e.event.action.name().to_string())
            .collect();
        let tail = &actions[actions.len() - 2..];
        assert_eq!(tail, ["certificate_revoked", "enrollment_reopened"]);

        let second = redeem().await.unwrap();
        assert_ne!(second.record.serial, first.record.serial);
        let record = engine.store().enrollment(&id).unwrap().unwrap();
        assert_eq!(record.serial, Some(second.record.serial));
    });
    engine.shutdown();
}

#[test]
fn no_certificate_ends_after_its_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ca = authority_valid_for(30);
    let engine = Engine::start(ca, Arc::new(store), &EngineConfig::default()).unwrap();
    runtime().block_on(async {
        let mut within = request(csr_pem("within.example.com"), None);
        within.validity_days = Some(29);
        engine.issue(within).await.unwrap();
        let mut beyond = request(csr_pem("beyond.example.com"), None);
        beyond.validity_days = Some(31);
        let err = engine.issue(beyond).await.unwrap_err();
        assert!(
            matches!(
                err,
                CaError::ValidityBeyondIssuer {
                    requested: 31,
                    max: 29 | 30,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.code(), "validity_not_allowed");
    });
}

/// ACME objects go through the engine to the store writer and are read back through it; a
/// write beyond the limits is refused before it reaches the writer (no store group runs for
/// it), and a stale one is a conflict. Neither leaves an audit entry.
#[test]
fn acme_writes_go_through_the_engine() {
    use ca_core::audit::{AuditAction, AuditEvent};
    use ca_core::error::ErrorClass;
    use ca_core::store::{AcmeIndexOp, AcmeKind, AcmeObject, AcmePut, AcmeWrite};

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::start(authority(), Arc::new(store), &EngineConfig::default()).unwrap();
    let write = |expect: Option<u64>, value: Vec<u8>, action| AcmeWrite {
        puts: vec![AcmePut {
            kind: AcmeKind::Account,
            id: b"acct".to_vec(),
            expect,
            value,
        }],
        index: vec![
            AcmeIndexOp::Claim {
                key: b"thumb".to_vec(),
                id: b"acct".to_vec(),
            },
            AcmeIndexOp::Link {
                key: b"acct/order-1".to_vec(),
            },
        ],
        event: AuditEvent::new(1_800_000_000, "acme", action, "acct"),
    };
    runtime().block_on(async {
        let head = engine.audit_head().await.unwrap();
        engine
            .acme_write(write(None, b"v1".to_vec(), AuditAction::AcmeAccountCreated))
            .await
            .unwrap();
        assert_eq!(
            engine.acme_object(AcmeKind::Account, b"acct").unwrap(),
            Some(AcmeObject {
                version: 1,
                value: b"v1".to_vec()
            })
        );
        assert_eq!(
            engine.acme_claim_holder(b"thumb").unwrap(),
            Some(b"acct".to_vec())
        );
        assert_eq!(
            engine.acme_links(b"acct/", None, 10).unwrap(),
            [b"acct/order-1".to_vec()]
        );
        let after = engine.audit_head().await.unwrap();
        assert_eq!(after.seq, head.seq + 1);

        let stale = engine
            .acme_write(write(None, b"v1".to_vec(), AuditAction::AcmeAccountCreated))
            .await
            .unwrap_err();
        assert_eq!(
            (stale.code(), stale.class()),
            ("conflict", ErrorClass::Conflict)
        );
        let groups = engine.metrics().commit_batch.get_sample_count();
        let too_large = engine
            .acme_write(write(
                Some(1),
                vec![0; ca_core::store::MAX_ACME_VALUE_LEN + 1],
                AuditAction::AcmeAccountUpdated,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            (too_large.code(), too_large.class()),
            ("invalid_request", ErrorClass::BadInput)
        );
        assert_eq!(
            engine.metrics().commit_batch.get_sample_count(),
            groups,
            "the oversized write reached the store writer"
        );
        assert_eq!(engine.audit_head().await.unwrap(), after);
        assert_eq!(
            engine
                .acme_object(AcmeKind::Account, b"acct")
                .unwrap()
                .map(|o| o.version),
            Some(1)
        );
        let entry = engine.store().audit_entries(head.seq, 10).unwrap();
        assert_eq!(entry.len(), 1);
        assert_eq!(entry[0].event.action, AuditAction::AcmeAccountCreated);
    });
    engine.shutdown();
}

/// Clock sanity (`ca_core::clock`): an engine started on a store whose log holds a time two
/// hours ahead of the clock (as a clock set back after that entry finds it) signs nothing
/// (`clock_behind`, 503); within the tolerance, or with the check off, it signs.
#[test]
fn a_clock_behind_what_was_signed_signs_nothing() {
    use ca_core::audit::{AuditAction, AuditEvent};
    use ca_core::store::Storage;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .record_event(AuditEvent::new(
            now + 7200,
            "test",
            AuditAction::TokenCreated,
            "ahead",
        ))
        .unwrap();
    let store: Arc<dyn Storage> = Arc::new(store);
    let engine = Engine::start(authority(), store.clone(), &EngineConfig::default()).unwrap();
    let refused = runtime().block_on(engine.issue(request(csr_pem("clock.example.com"), None)));
    match refused {
        Err(e @ CaError::ClockBehind { .. }) => {
            assert_eq!(e.code(), "clock_behind");
            assert_eq!(e.class(), ca_core::ErrorClass::Unavailable);
        }
        other => panic!("expected clock_behind, got {other:?}"),
    }
    assert_eq!(store.count_certificates().unwrap(), 0, "nothing was signed");
    assert!((7190..=7210).contains(&engine.clock().behind(now)));
    drop(engine);

    // A tolerance wider than the gap, or 0 (no check), lets it sign.
    for tolerance in [8000, 0] {
        let config = EngineConfig {
            clock_tolerance_secs: tolerance,
            ..EngineConfig::default()
        };
        let engine = Engine::start(authority(), store.clone(), &config).unwrap();
        runtime()
            .block_on(engine.issue(request(csr_pem("clock.example.com"), None)))
            .unwrap();
    }
}
