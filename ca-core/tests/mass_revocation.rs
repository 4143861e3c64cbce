//! Mass revocation in-process over a real RocksDB store: a walk in many small steps (the
//! continuation of each sealed and opened again, as the API does), the dry run changing
//! nothing, exactly the matching certificates revoked with their audit entries linked to the
//! action, their keys blocked for keyCompromise, and a step repeated after it ran.

use std::sync::Arc;
use std::time::Duration;

use ca_core::audit::AuditAction;
use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::engine::{Engine, EngineConfig, IssueRequest, Requester};
use ca_core::mass_revocation::{MassRevocationRequest, Mode, Progress, RevocationFilter, Tally};
use ca_core::name::parse_rfc4514;
use ca_core::ocsp::CertStatus;
use ca_core::profile::Profile;
use ca_core::revocation::RevocationReason;
use ca_core::store::query::{CursorKey, CURSOR_KEY_LEN};
use ca_core::store::{CertRecord, Store};
use ca_core::{CaError, Serial};
use keys::{KeyAlgorithm, Signer, SoftwareKey, SystemRandom};

fn authority() -> Arc<CertificateAuthority> {
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let subject = parse_rfc4514("CN=Mass Revocation Test CA").unwrap();
    let serial = Serial::random(&SystemRandom::new()).unwrap();
    let root = create_root(signer.clone(), &subject, 365, serial).unwrap();
    let urls = Urls {
        crl: vec!["http://ca.test/crl".into()],
        ..Urls::default()
    };
    Arc::new(CertificateAuthority::new(signer, vec![root], &Profile::builtin(), &urls).unwrap())
}

fn csr(key: &rcgen::KeyPair, host: &str) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
        .into_bytes()
}

fn request(csr: Vec<u8>, requester: &str) -> IssueRequest {
    IssueRequest {
        csr,
        profile: "tls-server".into(),
        identity: Default::default(),
        validity_days: Some(10),
        request_id: None,
        requester: Requester {
            name: requester.into(),
            token_hash: [7; 32],
            protocol: Default::default(),
        },
    }
}

/// Walks `progress` to its end one small page per step, sealing and opening the progress
/// between steps; answers the final progress and the number of steps.
async fn walk(engine: &Engine, mut progress: Progress, key: &CursorKey) -> (Progress, usize) {
    let mut steps = 0;
    loop {
        progress = engine
            .mass_revocation_step(progress, Duration::ZERO, 3)
            .await
            .unwrap();
        steps += 1;
        if progress.done {
            return (progress, steps);
        }
        let sealed = progress.seal(key, b"operator\0op").unwrap();
        progress = Progress::open(&sealed, key, b"operator\0op").unwrap();
    }
}

fn is_revoked(store: &Store, serial: &Serial) -> bool {
    matches!(
        ca_core::store::RevocationStore::ocsp_status(store, serial).unwrap(),
        CertStatus::Revoked { .. }
    )
}

#[test]
fn a_walk_in_many_steps_revokes_exactly_the_matching_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let engine = Engine::start(authority(), store.clone(), &EngineConfig::default()).unwrap();
    let key = CursorKey::new(&[5; CURSOR_KEY_LEN]).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let compromised = rcgen::KeyPair::generate().unwrap();
        let mut issued: Vec<(CertRecord, bool)> = Vec::new();
        // 8 on the compromised key (by two requesters), 12 others interleaved.
        for i in 0..20 {
            let on_key = i % 5 < 2;
            let requester = if i % 2 == 0 { "ra-a" } else { "ra-b" };
            let key = if on_key {
                &compromised
            } else {
                &rcgen::KeyPair::generate().unwrap()
            };
            let csr = csr(key, &format!("h{i}.example.com"));
            let record = engine.issue(request(csr, requester)).await.unwrap().record;
            issued.push((record, on_key));
        }
        // One of them revoked before: counted as already revoked, left as it was.
        let before = issued[0].0.serial;
        engine
            .revoke(before, RevocationReason::Superseded, None, "ra-a")
            .await
            .unwrap();
        let key_hash = ca_core::spki::certificate_key_sha256(&issued[0].0.der).unwrap();
        let wanted = MassRevocationRequest {
            filter: RevocationFilter {
                spki_sha256: Some(key_hash),
                ..RevocationFilter::default()
            },
            reason: RevocationReason::KeyCompromise,
            invalidity_date: None,
        };
        let head = engine.audit_head().await.unwrap();

        // The dry run counts, in several steps, and changes nothing.
        let dry = engine
            .start_mass_revocation(wanted.clone(), "op", true)
            .await
            .unwrap();
        let (dry, steps) = walk(&engine, dry, &key).await;
        assert!(steps >= 6, "20 certificates 3 a page: {steps} steps");
        let expected = Tally {
            matched: 8,
            revoked: 7,
            already_revoked: 1,
            expired: 0,
        };
        assert_eq!(dry.tally, expected);
        assert_eq!(
            engine.audit_head().await.unwrap(),
            head,
            "a dry run audits nothing"
        );
        assert!(issued
            .iter()
            .skip(1)
            .all(|(r, _)| !is_revoked(&store, &r.serial)));

        // The action.
        let action = engine
            .start_mass_revocation(wanted.clone(), "op", false)
            .await
            .unwrap();
        let Mode::Revoke { id, .. } = action.mode.clone() else {
            panic!("an action has an id")
        };
        // A step repeated (the client lost its answer) changes nothing twice.
        let first = engine
            .mass_revocation_step(action.clone(), Duration::ZERO, 3)
            .await
            .unwrap();
        let again = engine
            .mass_revocation_step(action, Duration::ZERO, 3)
            .await
            .unwrap();
        assert_eq!(
            again.tally.revoked, 0,
            "{:?} then {:?}",
            first.tally, again.tally
        );
        let (done, _) = walk(&engine, again, &key).await;
        assert_eq!(done.tally.matched, 8);
        assert_eq!(done.tally.revoked + done.tally.already_revoked, 8);
        for (record, on_key) in &issued {
            assert_eq!(
                is_revoked(&store, &record.serial),
                *on_key,
                "{}",
                record.serial
            );
        }
        assert!(engine.blocked_keys().contains(&key_hash));
        let again = csr(&compromised, "again.example.com");
        assert!(matches!(
            engine.issue(request(again, "ra-a")).await,
            Err(CaError::KeyBlocked { .. })
        ));

        // Audited: the start, each revocation linked to the action, the end.
        let entries =
            ca_core::store::AuditStore::audit_entries(store.as_ref(), head.seq, 1000).unwrap();
        let of = |action: AuditAction| {
            entries
                .iter()
                .filter(move |e| e.event.action == action && e.event.target == id.to_string())
        };
        let started: Vec<_> = of(AuditAction::MassRevocationStarted).collect();
        assert_eq!(started.len(), 1);
        assert_eq!(
            started[0].event.details["spki_sha256"],
            hex::encode(key_hash)
        );
        let completed: Vec<_> = of(AuditAction::MassRevocationCompleted).collect();
        assert_eq!(completed.len(), 1);
        assert_eq!(completed[0].event.details["matched"], "8");
        let linked = entries
            .iter()
            .filter(|e| {
                e.event.action == AuditAction::CertificateRevoked
                    && e.event.details.get("action") == Some(&id.to_string())
            })
            .count();
        assert_eq!(linked, 7);
    });
    engine.shutdown();
}
