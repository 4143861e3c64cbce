//! Keys of certificates revoked for keyCompromise are never certified again (CA/Browser Forum
//! Baseline Requirements 6.1.1.3 item 4): through the engine, with a real RocksDB store, on
//! every issuing path and across a restart.

use std::sync::Arc;

use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::engine::{
    Engine, EngineConfig, EnrollmentRequest, IssueRequest, NewKey, RedeemKey, RenewRequest,
    Requester,
};
use ca_core::name::parse_rfc4514;
use ca_core::profile::Profile;
use ca_core::revocation::RevocationReason;
use ca_core::store::Store;
use ca_core::{CaError, ErrorClass, Serial};
use keys::{KeyAlgorithm, Signer, SoftwareKey, SystemRandom};
use rcgen::PublicKeyData;

fn authority() -> Arc<CertificateAuthority> {
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let subject = parse_rfc4514("CN=Blocked Keys Test CA").unwrap();
    let serial = Serial::random(&SystemRandom::new()).unwrap();
    let root = create_root(signer.clone(), &subject, 365, serial).unwrap();
    let urls = Urls {
        crl: vec!["http://ca.test/crl".into()],
        ocsp: vec!["http://ca.test/ocsp".into()],
        ca_issuers: vec!["http://ca.test/ca.der".into()],
    };
    Arc::new(CertificateAuthority::new(signer, vec![root], &Profile::builtin(), &urls).unwrap())
}

fn requester() -> Requester {
    Requester {
        name: "test-ra".into(),
        token_hash: [3; 32],
        protocol: Default::default(),
    }
}

/// A tls-server CSR (DER) for `host` with `key`.
fn csr(key: &rcgen::KeyPair, host: &str) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}

fn issue_request(csr: Vec<u8>) -> IssueRequest {
    IssueRequest {
        csr,
        profile: "tls-server".into(),
        identity: Default::default(),
        validity_days: None,
        request_id: None,
        requester: requester(),
    }
}

fn renew_request(serial: Serial, csr: Option<Vec<u8>>) -> RenewRequest {
    RenewRequest {
        serial,
        key: NewKey::from_csr(csr),
        validity_days: None,
        request_id: None,
        requester: requester(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

/// The SubjectPublicKeyInfo SHA-256 of `key`, as a CSR gives it.
fn key_hash(key: &rcgen::KeyPair) -> [u8; 32] {
    ca_core::csr::key_from_spki_der(&key.subject_public_key_info())
        .unwrap()
        .spki_sha256()
        .unwrap()
}

fn assert_blocked(result: Result<ca_core::engine::Issued, CaError>, key: [u8; 32], what: &str) {
    match result {
        Err(e @ CaError::KeyBlocked { spki_sha256 }) => {
            assert_eq!(spki_sha256, key, "{what}: {e}");
            assert_eq!(e.code(), "key_blocked", "{what}");
            assert_eq!(e.class(), ErrorClass::Policy, "{what}: 422");
            assert!(e.to_string().contains(&hex::encode(key)), "{what}: {e}");
        }
        other => panic!("{what}: expected key_blocked, got {other:?}"),
    }
}

/// Issue, revoke for keyCompromise, then every path that would certify the same key is
/// refused with `key_blocked` (a new CSR alone and among others verified together, a
/// same-key renewal of another certificate, an enrollment redeemed with a CSR), nothing is
/// stored for them, and a re-key renewal to a fresh key passes. A revocation for another
/// reason blocks nothing. After a restart on the same store the block holds.
#[test]
fn a_key_compromise_revocation_blocks_the_key_for_every_path_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority();
    let start = || {
        Engine::start(
            ca.clone(),
            Arc::new(Store::open(dir.path()).unwrap()),
            &EngineConfig::default(),
        )
        .unwrap()
    };
    let compromised = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let superseded = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let fresh = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let blocked = key_hash(&compromised);
    let rt = runtime();

    let engine = start();
    assert!(engine.blocked_keys().is_empty());
    let (first, second) = rt.block_on(async {
        let first = engine
            .issue(issue_request(csr(&compromised, "a.example.com")))
            .await
            .unwrap();
        let second = engine
            .issue(issue_request(csr(&compromised, "b.example.com")))
            .await
            .unwrap();
        // Another reason blocks nothing: the superseded key is certified again.
        let s = engine
            .issue(issue_request(csr(&superseded, "s.example.com")))
            .await
            .unwrap();
        engine
            .revoke(
                s.record.serial,
                RevocationReason::Superseded,
                None,
                "test-ra",
            )
            .await
            .unwrap();
        engine
            .issue(issue_request(csr(&superseded, "s2.example.com")))
            .await
            .unwrap();
        assert!(engine.blocked_keys().is_empty());
        (first.record.serial, second.record.serial)
    });

    // Put on hold first: a hold blocks nothing; made permanent for keyCompromise, it does.
    rt.block_on(async {
        engine
            .revoke(first, RevocationReason::CertificateHold, None, "test-ra")
            .await
            .unwrap();
        engine
            .issue(issue_request(csr(&compromised, "held.example.com")))
            .await
            .unwrap();
        engine
            .revoke(first, RevocationReason::KeyCompromise, None, "test-ra")
            .await
            .unwrap();
    });
    assert_eq!(engine.blocked_keys().len(), 1);
    assert!(engine.blocked_keys().contains(&blocked));
    let store = engine.store().clone();
    let entries = store.audit_entries(0, 1000).unwrap();
    let revoked = entries
        .iter()
        .rev()
        .find(|e| e.event.action.name() == "certificate_revoked")
        .unwrap();
    assert_eq!(revoked.event.target, first.to_hex());
    assert!(
        format!("{:?}", revoked.event).contains(&hex::encode(blocked)),
        "the revocation's audit entry names the blocked key: {:?}",
        revoked.event
    );

    let count = store.count_certificates().unwrap();
    rt.block_on(async {
        assert_blocked(
            engine
                .issue(issue_request(csr(&compromised, "c.example.com")))
                .await,
            blocked,
            "a new CSR",
        );
        // Among others verified together by a worker: only the blocked one is refused.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (a, b, c) = tokio::join!(
            engine.issue(issue_request(csr(&other, "d.example.com"))),
            engine.issue(issue_request(csr(&compromised, "e.example.com"))),
            engine.issue(issue_request(csr(&other, "f.example.com"))),
        );
        a.unwrap();
        assert_blocked(b, blocked, "a CSR of a batch");
        c.unwrap();
        assert_blocked(
            engine.renew(renew_request(second, None)).await,
            blocked,
            "a same-key renewal of another certificate",
        );
        let enrollment = engine
            .create_enrollment(EnrollmentRequest {
                profile: "tls-server".into(),
                subject: "CN=enrolled.example.com".into(),
                sans: vec!["enrolled.example.com".into()],
                validity_days: None,
                lifetime_secs: 3600,
                max_attempts: 3,
                requester: requester(),
                code_key: None,
            })
            .await
            .unwrap();
        assert_blocked(
            engine
                .redeem(
                    enrollment.id,
                    enrollment.code.as_str(),
                    RedeemKey::Csr(csr(&compromised, "whatever.example.com")),
                )
                .await,
            blocked,
            "an enrollment redeemed with a CSR",
        );
        // The enrollment is still pending: a CSR for another key redeems it.
        engine
            .redeem(
                enrollment.id,
                enrollment.code.as_str(),
                RedeemKey::Csr(csr(&fresh, "whatever.example.com")),
            )
            .await
            .unwrap();
    });
    // d, f and the redemption only.
    assert_eq!(store.count_certificates().unwrap(), count + 3);
    engine.shutdown();
    drop(store);

    // After a restart, the block is read back from the store.
    let engine = start();
    assert_eq!(engine.blocked_keys().len(), 1);
    rt.block_on(async {
        assert_blocked(
            engine
                .issue(issue_request(csr(&compromised, "g.example.com")))
                .await,
            blocked,
            "a new CSR after a restart",
        );
        assert_blocked(
            engine.renew(renew_request(second, None)).await,
            blocked,
            "a same-key renewal after a restart",
        );
        // A re-key to a fresh key passes.
        engine
            .renew(renew_request(second, Some(csr(&fresh, "b.example.com"))))
            .await
            .unwrap();
    });
    engine.shutdown();
}

/// The key's hash is the same whether it comes from a CSR or from the certificate the CA
/// wrote for it, for every key type the tls-server profile allows, RSA included (Ed25519's
/// encoding is checked in `ca_x509::spki`).
#[test]
fn the_key_of_a_certificate_hashes_as_the_key_of_its_request() {
    use rsa::pkcs8::EncodePrivateKey;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        authority(),
        Arc::new(Store::open(dir.path()).unwrap()),
        &EngineConfig::default(),
    )
    .unwrap();
    let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let rsa = rsa.to_pkcs8_der().unwrap();
    let keys = [
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        rcgen::KeyPair::try_from(rsa.as_bytes()).unwrap(),
    ];
    runtime().block_on(async {
        for key in &keys {
            let issued = engine
                .issue(issue_request(csr(key, "k.example.com")))
                .await
                .unwrap();
            let from_certificate =
                ca_core::spki::certificate_key_sha256(&issued.record.der).unwrap();
            assert_eq!(from_certificate, key_hash(key));
        }
    });
    engine.shutdown();
}
