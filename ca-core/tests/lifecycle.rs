//! Revocation, holds, CRL numbers and renewal through the engine, with a real RocksDB store.

use std::sync::Arc;

use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::csr::parse_and_verify;
use ca_core::engine::{Engine, EngineConfig, IssueRequest, NewKey, RenewRequest, Requester};
use ca_core::name::parse_rfc4514;
use ca_core::profile::Profile;
use ca_core::revocation::RevocationReason;
use ca_core::serial::SerialSource;
use ca_core::store::writer::{NewCertificate, StoreWriter, WriteOp};
use ca_core::store::{CertRecord, Store};
use ca_core::{CaError, Serial};
use keys::SystemRandom;
use keys::{KeyAlgorithm, Signer, SoftwareKey};
use time::{Duration, OffsetDateTime};

fn authority() -> Arc<CertificateAuthority> {
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let subject = parse_rfc4514("CN=Lifecycle Test CA").unwrap();
    let root = create_root(signer.clone(), &subject, 365, serial()).unwrap();
    Arc::new(
        CertificateAuthority::new(signer, vec![root], &Profile::builtin(), &Urls::default())
            .unwrap(),
    )
}

fn serial() -> Serial {
    Serial::random(&SystemRandom::new()).unwrap()
}

fn requester() -> Requester {
    Requester {
        name: "test-ra".into(),
        token_hash: [3; 32],
        protocol: Default::default(),
    }
}

/// A CSR for `cn` (also its e-mail SAN for `personal`, its DNS SAN for `tls-server`).
fn csr(profile: &str, name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if profile == "personal" {
        let mailbox = format!("holder@{name}");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, mailbox.as_str());
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(mailbox.try_into().unwrap())];
    } else {
        params.subject_alt_names = vec![rcgen::SanType::DnsName(name.try_into().unwrap())];
    }
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// Stores a certificate signed `days_ago` days in the past with `validity_days`, as if it had
/// been issued then, and returns its serial.
fn store_backdated(
    ca: &CertificateAuthority,
    store: &Store,
    profile: &str,
    days_ago: i64,
    validity_days: u32,
) -> Serial {
    let verified = parse_and_verify(&csr(profile, "old.example.com")).unwrap();
    let req = ca
        .profile(profile)
        .unwrap()
        .validate(
            profile,
            verified,
            &Default::default(),
            Some(validity_days),
            (OffsetDateTime::now_utc() - Duration::days(days_ago)).unix_timestamp(),
        )
        .unwrap();
    let then = OffsetDateTime::now_utc() - Duration::days(days_ago);
    store_signed(ca, store, profile, &req, then)
}

/// Signs `req` under `profile` as of `then` (no profile check) and stores the certificate as
/// if it had been issued then; returns its serial.
fn store_signed(
    ca: &CertificateAuthority,
    store: &Store,
    profile: &str,
    req: &ca_core::profile::ValidatedRequest,
    then: OffsetDateTime,
) -> Serial {
    let serial = serial();
    let signed = ca.sign(profile, serial, req, then).unwrap();
    let record = CertRecord {
        seq: 0,
        serial,
        der: signed.der,
        profile: profile.into(),
        requester: "test-ra".into(),
        issued_at: then.unix_timestamp(),
        not_before: signed.not_before.unix_timestamp(),
        not_after: signed.not_after.unix_timestamp(),
        renewed_from: None,
        audit_seq: None,
    };
    let metrics = Arc::new(ca_core::metrics::Metrics::new().unwrap());
    let writer = StoreWriter::start(store.clone(), 16, metrics).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    writer
        .sender()
        .send(WriteOp::Certificate(
            NewCertificate {
                record,
                idempotency: None,
                names: Vec::new(),
                enrollment: None,
                protocol: Default::default(),
            },
            tx,
        ))
        .unwrap();
    rx.blocking_recv().unwrap().unwrap();
    writer.join();
    serial
}

/// An engine for the test CA on a new store in `dir`.
fn engine_on(dir: &std::path::Path) -> Engine {
    Engine::start(
        authority(),
        Arc::new(Store::open(dir).unwrap()),
        &EngineConfig::default(),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn renew(serial: Serial) -> RenewRequest {
    RenewRequest {
        serial,
        key: NewKey::Keep,
        validity_days: None,
        request_id: None,
        requester: requester(),
    }
}

#[test]
fn revocation_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(dir.path());
    runtime().block_on(async {
        let issue = |name: &str| IssueRequest {
            csr: csr("tls-server", name),
            profile: "tls-server".into(),
            identity: Default::default(),
            validity_days: None,
            request_id: None,
            requester: requester(),
        };
        let a = engine
            .issue(issue("a.example.com"))
            .await
            .unwrap()
            .record
            .serial;
        let b = engine
            .issue(issue("b.example.com"))
            .await
            .unwrap()
            .record
            .serial;

        engine
            .revoke(a, RevocationReason::KeyCompromise, None, "tester")
            .await
            .unwrap();
        assert!(matches!(
            engine
                .revoke(a, RevocationReason::Superseded, None, "tester")
                .await,
            Err(CaError::AlreadyRevoked { .. })
        ));
        assert!(matches!(
            engine.release_hold(a, "tester").await,
            Err(CaError::NotOnHold(_))
        ));

        engine
            .revoke(b, RevocationReason::CertificateHold, None, "tester")
            .await
            .unwrap();
        assert!(matches!(
            engine
                .revoke(b, RevocationReason::CertificateHold, None, "tester")
                .await,
            Err(CaError::AlreadyRevoked { .. })
        ));
        engine.release_hold(b, "tester").await.unwrap();
        assert_eq!(engine.store().revocation(&b).unwrap(), None);
        engine
            .revoke(b, RevocationReason::CertificateHold, None, "tester")
            .await
            .unwrap();
        // Invalidity dates after the revocation or before year 0000 are refused by the
        // engine itself, and change nothing.
        let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        for date in [later, i64::MIN, i64::MAX] {
            assert!(matches!(
                engine
                    .revoke(b, RevocationReason::KeyCompromise, Some(date), "tester")
                    .await,
                Err(CaError::InvalidRequest(_))
            ));
        }
        assert!(engine.store().revocation(&b).unwrap().unwrap().is_hold());
        let permanent = engine
            .revoke(b, RevocationReason::CessationOfOperation, Some(5), "tester")
            .await
            .unwrap();
        assert_eq!(permanent.reason, RevocationReason::CessationOfOperation);
        assert_eq!(permanent.invalidity_date, Some(5));

        assert!(matches!(
            engine
                .revoke(serial(), RevocationReason::KeyCompromise, None, "tester")
                .await,
            Err(CaError::SerialNotFound(_))
        ));
        assert!(matches!(
            engine.renew(renew(a)).await,
            Err(CaError::RenewalRefused(_))
        ));
    });
    let changes = engine.store().changed_since(0, u64::MAX).unwrap();
    assert_eq!(changes.len(), 2);
}

#[test]
fn crl_numbers_only_grow_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority();
    let first = {
        let engine = Engine::start(
            ca.clone(),
            Arc::new(Store::open(dir.path()).unwrap()),
            &EngineConfig::default(),
        )
        .unwrap();
        let a = engine
            .next_crl_number_blocking(0, "tester", "full")
            .unwrap()
            .number;
        let b = engine
            .next_crl_number_blocking(0, "tester", "full")
            .unwrap()
            .number;
        assert!(b > a);
        let floored = engine
            .next_crl_number_blocking(1_000_000, "tester", "full")
            .unwrap()
            .number;
        assert_eq!(floored, 1_000_000);
        floored
    };
    let engine = Engine::start(
        ca,
        Arc::new(Store::open(dir.path()).unwrap()),
        &EngineConfig::default(),
    )
    .unwrap();
    assert_eq!(engine.store().last_crl_number().unwrap(), first);
    assert!(
        engine
            .next_crl_number_blocking(0, "tester", "full")
            .unwrap()
            .number
            > first
    );
}

#[test]
fn renewal_keeps_names_and_key_within_the_grace_period_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority();
    let store = Store::open(dir.path()).unwrap();
    // personal allows 30 days of grace, tls-server none.
    let personal_recent = store_backdated(&ca, &store, "personal", 30, 10); // expired 20 days ago
    let personal_old = store_backdated(&ca, &store, "personal", 45, 10); // expired 35 days ago
    let server_expired = store_backdated(&ca, &store, "tls-server", 3, 1); // expired 2 days ago
    let engine = Engine::start(ca, Arc::new(store), &EngineConfig::default()).unwrap();
    runtime().block_on(async {
        let renewed = engine.renew(renew(personal_recent)).await.unwrap();
        assert_eq!(renewed.record.renewed_from, Some(personal_recent));
        let new_serial = renewed.record.serial;
        assert_eq!(
            engine.store().renewed_by(&personal_recent).unwrap(),
            vec![new_serial]
        );
        let old = engine
            .store()
            .certificate(&personal_recent)
            .unwrap()
            .unwrap();
        let (_, old_cert) = x509_parser::parse_x509_certificate(&old.der).unwrap();
        let (_, new_cert) = x509_parser::parse_x509_certificate(&renewed.record.der).unwrap();
        assert_eq!(old_cert.public_key().raw, new_cert.public_key().raw);
        assert_eq!(old_cert.subject().as_raw(), new_cert.subject().as_raw());
        assert!(new_cert.validity().is_valid());

        for refused in [personal_old, server_expired] {
            assert!(matches!(
                engine.renew(renew(refused)).await,
                Err(CaError::RenewalRefused(_))
            ));
        }

        // A re-key CSR naming another subject is refused: a renewal keeps the subject.
        let mut rekey = renew(new_serial);
        rekey.key = NewKey::Csr(csr("personal", "another subject"));
        assert!(matches!(
            engine.renew(rekey).await,
            Err(CaError::SubjectNotAllowed(_))
        ));
        let mut rekey = renew(new_serial);
        rekey.key = NewKey::Csr(csr("personal", "old.example.com"));
        let rekeyed = engine.renew(rekey).await.unwrap();
        let (_, rekeyed_cert) = x509_parser::parse_x509_certificate(&rekeyed.record.der).unwrap();
        assert_ne!(rekeyed_cert.public_key().raw, new_cert.public_key().raw);
        assert_eq!(rekeyed_cert.subject().as_raw(), new_cert.subject().as_raw());
    });
}

/// Serials scripted for the first draws, then the system's.
struct Scripted(std::sync::Mutex<Vec<Serial>>);

impl SerialSource for Scripted {
    fn draw(&self) -> Result<Serial, keys::RandomError> {
        Ok(self.0.lock().unwrap().pop().unwrap_or_else(serial))
    }
}

/// A drawn serial that is already stored is never written over: the engine draws again (at
/// most three times in all), and the stored certificate stays as it was.
#[test]
fn a_serial_collision_draws_again_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority();
    let store = Store::open(dir.path()).unwrap();
    let taken = store_backdated(&ca, &store, "tls-server", 1, 30);
    let before = store.certificate(&taken).unwrap().unwrap();
    let source = Arc::new(Scripted(std::sync::Mutex::new(vec![taken, taken])));
    let config = EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    };
    let engine =
        Engine::start_with_serials(ca.clone(), Arc::new(store.clone()), &config, source.clone())
            .unwrap();
    let request = |name: &str| IssueRequest {
        csr: csr("tls-server", name),
        profile: "tls-server".into(),
        identity: Default::default(),
        validity_days: None,
        request_id: None,
        requester: requester(),
    };
    runtime().block_on(async {
        let issued = engine.issue(request("new.example.com")).await.unwrap();
        assert_ne!(issued.record.serial, taken, "a collision was stored");
        assert!(
            source.0.lock().unwrap().is_empty(),
            "both colliding draws were made before the third"
        );
        // Three collisions in a row: refused, nothing stored.
        source.0.lock().unwrap().extend([taken, taken, taken]);
        let refused = engine.issue(request("third.example.com")).await;
        assert!(
            matches!(&refused, Err(CaError::Storage(m)) if m.contains("collisions")),
            "{refused:?}"
        );
    });
    assert_eq!(
        store.certificate(&taken).unwrap().unwrap(),
        before,
        "the stored certificate is untouched"
    );
    engine.shutdown();
}

/// Revoked certificates leave the complete CRL `keep_expired_days` after they expire (RFC
/// 5280 section 3.3 lets a CA drop an entry once the certificate has expired): one that
/// expired nine days ago is gone, one that expired a minute ago and a valid one are listed.
#[test]
fn expired_revocations_leave_the_crl_after_keep_expired_days() {
    let dir = tempfile::tempdir().unwrap();
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let subject = parse_rfc4514("CN=Pruning Test CA").unwrap();
    let root = create_root(signer.clone(), &subject, 365, serial()).unwrap();
    let ca = Arc::new(
        CertificateAuthority::new(
            signer.clone(),
            vec![root.clone()],
            &Profile::builtin(),
            &Urls::default(),
        )
        .unwrap(),
    );
    let store = Store::open(dir.path()).unwrap();
    let long_expired = store_backdated(&ca, &store, "tls-server", 10, 1);
    let just_expired = store_backdated(&ca, &store, "tls-server", 2, 2);
    let valid = store_backdated(&ca, &store, "tls-server", 1, 30);
    let engine = Arc::new(Engine::start(ca, Arc::new(store), &EngineConfig::default()).unwrap());
    runtime().block_on(async {
        for serial in [long_expired, just_expired, valid] {
            engine
                .revoke(serial, RevocationReason::KeyCompromise, None, "tester")
                .await
                .unwrap();
        }
    });
    let builder = ca_core::crl::CrlBuilder::new(signer, &root, None).unwrap();
    let config = ca_core::crl::CrlConfig {
        keep_expired_days: 1,
        ..ca_core::crl::CrlConfig::default()
    };
    let publisher = ca_core::crl::CrlPublisher::new(builder, engine.clone(), config);
    let published = publisher.generate().unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&published.full).unwrap();
    let listed: Vec<Vec<u8>> = crl
        .iter_revoked_certificates()
        .map(|e| e.raw_serial().to_vec())
        .collect();
    assert_eq!(published.entries, 2, "{listed:?}");
    for (serial, want) in [(long_expired, false), (just_expired, true), (valid, true)] {
        assert_eq!(
            listed.contains(&serial.as_bytes().to_vec()),
            want,
            "{serial} listed"
        );
    }
    drop(publisher);
    if let Ok(engine) = Arc::try_unwrap(engine) {
        engine.shutdown();
    }
}

/// The OCSP status of an expired certificate is `good` unless it was revoked, and a
/// revocation stays `revoked` after expiry (RFC 6960 section 2.2: the status is about
/// revocation; expiry is in the certificate); a serial this CA never issued is `unknown`.
#[test]
fn ocsp_status_after_expiry() {
    use ca_core::ocsp::CertStatus;
    let dir = tempfile::tempdir().unwrap();
    let ca = authority();
    let store = Store::open(dir.path()).unwrap();
    let expired = store_backdated(&ca, &store, "tls-server", 10, 1);
    let expired_revoked = store_backdated(&ca, &store, "tls-server", 10, 1);
    let engine = Engine::start(ca, Arc::new(store.clone()), &EngineConfig::default()).unwrap();
    runtime().block_on(async {
        engine
            .revoke(
                expired_revoked,
                RevocationReason::KeyCompromise,
                None,
                "tester",
            )
            .await
            .unwrap();
    });
    assert!(matches!(
        store.ocsp_status(&expired).unwrap(),
        CertStatus::Good
    ));
    assert!(matches!(
        store.ocsp_status(&expired_revoked).unwrap(),
        CertStatus::Revoked {
            reason: RevocationReason::KeyCompromise,
            ..
        }
    ));
    assert!(matches!(
        store.ocsp_status(&serial()).unwrap(),
        CertStatus::Unknown
    ));
    engine.shutdown();
}

/// A key certified before weak keys were refused is not certified again: a same-key renewal
/// of a stored certificate whose key is the EC point at infinity is refused (`weak_key`).
#[test]
fn a_same_key_renewal_refuses_a_weak_key_certified_before() {
    use ca_core::csr::{AttributeKind, San, SubjectAttribute, SubjectKey, SubjectKeyType};
    let dir = tempfile::tempdir().unwrap();
    let ca = authority();
    let store = Store::open(dir.path()).unwrap();
    let request = ca_core::profile::ValidatedRequest {
        subject: vec![SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: "weak.example.com".into(),
        }],
        sans: vec![San::Dns("weak.example.com".into())],
        validation: Default::default(),
        key: SubjectKey {
            key_type: SubjectKeyType::EcP256,
            bits: vec![0],
        },
        validity_days: 30,
    };
    let then = OffsetDateTime::now_utc() - Duration::days(1);
    let weak = store_signed(&ca, &store, "tls-server", &request, then);
    let engine = Engine::start(ca, Arc::new(store), &EngineConfig::default()).unwrap();
    let refused = runtime().block_on(engine.renew(renew(weak)));
    assert!(matches!(&refused, Err(CaError::WeakKey(_))), "{refused:?}");
    assert!(engine.store().renewed_by(&weak).unwrap().is_empty());
    engine.shutdown();
}

/// Every committed status change reaches the registered observers (the OCSP cache and the CRL
/// publisher in the server), whoever asked for it; a refused change does not, and an observer
/// whose owner dropped it is skipped.
#[test]
fn status_changes_reach_the_observers_from_the_engine() {
    use ca_core::engine::StatusObserver;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Serial>>);
    impl StatusObserver for Seen {
        fn status_changed(&self, serial: &Serial) {
            self.0.lock().unwrap().push(*serial);
        }
        fn statuses_changed(&self) {
            panic!("a store with one writer has no other node's changes to tell");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(dir.path());
    let seen = Arc::new(Seen::default());
    engine.observe_status(Arc::downgrade(&seen) as std::sync::Weak<dyn StatusObserver>);
    let dropped = Arc::new(Seen::default());
    engine.observe_status(Arc::downgrade(&dropped) as std::sync::Weak<dyn StatusObserver>);
    drop(dropped);
    runtime().block_on(async {
        let issued = engine
            .issue(IssueRequest {
                csr: csr("tls-server", "observed.example.com"),
                profile: "tls-server".into(),
                identity: Default::default(),
                validity_days: None,
                request_id: None,
                requester: requester(),
            })
            .await
            .unwrap();
        let serial = issued.record.serial;
        assert!(
            seen.0.lock().unwrap().is_empty(),
            "issuance is no status change"
        );
        engine
            .revoke(serial, RevocationReason::CertificateHold, None, "tester")
            .await
            .unwrap();
        assert!(engine
            .revoke(serial, RevocationReason::CertificateHold, None, "tester")
            .await
            .is_err());
        engine.release_hold(serial, "tester").await.unwrap();
        assert_eq!(*seen.0.lock().unwrap(), vec![serial, serial]);
    });
    engine.shutdown();
}
