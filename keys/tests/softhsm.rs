//! The PKCS#11 signer against SoftHSM2: key generation, signatures verified with `ring`, the
//! SubjectPublicKeyInfo, the session pool under load, recovery from lost sessions, and the
//! error messages an operator sees.
//!
//! One token directory serves the whole test binary (SoftHSM2 reads `SOFTHSM2_CONF` once, at
//! `C_Initialize`, and the environment is process-wide): [`setup`] initializes a token per
//! test, so tests run in parallel without sharing a token. These tests never skip: without
//! SoftHSM2 they fail and say what to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use keys::pkcs11::{Pkcs11Config, Pkcs11Pin, Pkcs11Signer, PoolStats};
use keys::{
    generate_pkcs8, KeyAlgorithm, KeyError, SessionPool, Signer, SignerLatency, SoftwareKey,
};
use ring::signature::{
    UnparsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    ED25519, RSA_PKCS1_2048_8192_SHA256,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// One token per test, so that no test sees another's sessions or objects.
const TOKENS: &[&str] = &[
    "ec-p256", "ec-p384", "ed25519", "rsa-3072", "rsa-4096", "pool", "recover", "wrongpin",
    "collide", "destroy", "attrs", "edparams",
];

/// Creates the token directory and its tokens once, and points SoftHSM2 at it.
fn setup() {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is not installed ({MODULE} is missing): run scripts/setup.sh, or install \
             the softhsm2 and opensc packages; the PKCS#11 tests do not skip"
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keys-softhsm");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        for label in TOKENS {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", SO_PIN])
                .output()
                .expect("softhsm2-util (package softhsm2; scripts/setup.sh)");
            assert!(
                out.status.success(),
                "softhsm2-util --init-token {label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Every test waits in this OnceLock before touching the module, so no thread reads
        // the environment while it changes.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    });
}

/// A turn to create or destroy token objects: SoftHSM2 2.6.1's file object store fails now
/// and then (`CKR_GENERAL_ERROR` from `C_GenerateKeyPair`) when threads create token objects
/// at once (SoftHSMv2 issue 573). A key ceremony generates one key; only the tests race.
fn object_store_turn() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`Pkcs11Signer::generate`] in its turn.
fn generate(config: &Pkcs11Config, algorithm: KeyAlgorithm) -> Result<Pkcs11Signer, KeyError> {
    let _turn = object_store_turn();
    Pkcs11Signer::generate(config, algorithm)
}

fn config(token: &str, key: &str, sessions: usize) -> Pkcs11Config {
    setup();
    Pkcs11Config {
        module: PathBuf::from(MODULE),
        token_label: token.to_owned(),
        key_label: key.to_owned(),
        pin: Pkcs11Pin::new(PIN.to_owned()),
        sessions,
    }
}

fn ring_algorithm(algorithm: KeyAlgorithm) -> &'static dyn VerificationAlgorithm {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_ASN1,
        KeyAlgorithm::EcdsaP384 => &ECDSA_P384_SHA384_ASN1,
        KeyAlgorithm::Ed25519 => &ED25519,
        KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => &RSA_PKCS1_2048_8192_SHA256,
    }
}

/// Signs `message` and verifies the signature with `ring` against the signer's public key.
fn sign_and_verify(signer: &dyn Signer, algorithm: KeyAlgorithm, message: &[u8]) {
    let signature = signer.sign(message).unwrap();
    UnparsedPublicKey::new(ring_algorithm(algorithm), signer.public_key_bits())
        .verify(message, &signature)
        .unwrap_or_else(|_| panic!("{algorithm}: the token's signature does not verify"));
}

/// The SubjectPublicKeyInfo without its key: the part fixed by the algorithm.
fn spki_header(signer: &dyn Signer) -> Vec<u8> {
    let spki = signer.spki_der();
    spki[..spki.len() - signer.public_key_bits().len()].to_vec()
}

/// Generate, sign, verify, check the SPKI, open the key again by its label, and time it.
fn round_trip(algorithm: KeyAlgorithm) {
    let (token, label) = (algorithm.name(), format!("ca-{algorithm}"));
    let signer = generate(&config(token, &label, 2), algorithm).unwrap();
    assert_eq!(signer.algorithm(), algorithm);
    assert_eq!(signer.scheme(), algorithm.scheme());
    assert_eq!(signer.latency(), SignerLatency::Device);
    for i in 0..8 {
        sign_and_verify(&signer, algorithm, format!("tbs {i}").as_bytes());
    }

    // The SPKI has SoftwareKey's layout and parses to the key that verified.
    let software = SoftwareKey::from_pkcs8(&generate_pkcs8(algorithm).unwrap()).unwrap();
    assert_eq!(spki_header(&signer), spki_header(&software), "{algorithm}");
    assert_eq!(
        signer.public_key_bits().len(),
        software.public_key_bits().len()
    );
    let (rest, spki) = SubjectPublicKeyInfo::from_der(signer.spki_der()).unwrap();
    assert!(rest.is_empty());
    assert_eq!(&*spki.subject_public_key.data, signer.public_key_bits());
    let oid = spki.algorithm.algorithm.to_id_string();
    match (algorithm, spki.parsed().unwrap()) {
        (KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384, PublicKey::EC(point)) => {
            assert_eq!(oid, "1.2.840.10045.2.1");
            let bits = if algorithm == KeyAlgorithm::EcdsaP256 {
                256
            } else {
                384
            };
            assert_eq!(point.key_size(), bits);
        }
        (KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096, PublicKey::RSA(rsa)) => {
            assert_eq!(oid, "1.2.840.113549.1.1.1");
            let bits = if algorithm == KeyAlgorithm::Rsa3072 {
                3072
            } else {
                4096
            };
            assert_eq!(rsa.key_size(), bits);
            assert_eq!(rsa.try_exponent().unwrap(), 65537);
        }
        (KeyAlgorithm::Ed25519, _) => {
            assert_eq!(oid, "1.3.101.112");
            assert_eq!(signer.public_key_bits().len(), 32);
        }
        (_, other) => panic!("{algorithm}: SPKI parsed as {other:?}"),
    }

    // A second signer on the same module finds the key by its label.
    let again = Pkcs11Signer::open(&config(token, &label, 1)).unwrap();
    assert_eq!(again.algorithm(), algorithm);
    assert_eq!(again.spki_der(), signer.spki_der());
    sign_and_verify(&again, algorithm, b"opened again");
    sign_and_verify(&signer, algorithm, b"the first one still signs");

    // Latency, for the record (not asserted).
    let rounds = 50;
    let started = Instant::now();
    for i in 0..rounds {
        signer.sign(format!("timing {i}").as_bytes()).unwrap();
    }
    eprintln!(
        "{algorithm}: {:.2} ms per signature through SoftHSM2 (one thread)",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds)
    );
}

#[test]
fn ecdsa_p256_generates_signs_and_verifies() {
    round_trip(KeyAlgorithm::EcdsaP256);
}

#[test]
fn ecdsa_p384_generates_signs_and_verifies() {
    round_trip(KeyAlgorithm::EcdsaP384);
}

#[test]
fn ed25519_generates_signs_and_verifies() {
    round_trip(KeyAlgorithm::Ed25519);
}

#[test]
fn rsa_3072_generates_signs_and_verifies() {
    round_trip(KeyAlgorithm::Rsa3072);
}

#[test]
fn rsa_4096_generates_signs_and_verifies() {
    round_trip(KeyAlgorithm::Rsa4096);
}

#[test]
fn a_pool_of_four_serves_eight_threads() {
    let signer = Arc::new(generate(&config("pool", "ca", 4), KeyAlgorithm::EcdsaP256).unwrap());
    assert_eq!(signer.pool_stats(), PoolStats { size: 4, in_use: 0 });
    let busiest = Arc::new(AtomicUsize::new(0));
    let verified = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (signer, busiest, verified) = (signer.clone(), busiest.clone(), verified.clone());
            std::thread::spawn(move || {
                for i in 0..8 {
                    let message = format!("thread {t} certificate {i}");
                    sign_and_verify(signer.as_ref(), KeyAlgorithm::EcdsaP256, message.as_bytes());
                    verified.fetch_add(1, Ordering::Relaxed);
                    busiest.fetch_max(signer.pool_stats().in_use, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(verified.load(Ordering::Relaxed), 64);
    assert!(busiest.load(Ordering::Relaxed) <= 4);
    assert_eq!(signer.pool_stats(), PoolStats { size: 4, in_use: 0 });
}

#[test]
fn signing_recovers_when_the_token_closes_every_session() {
    let alg = KeyAlgorithm::EcdsaP256;
    let signer = Arc::new(generate(&config("recover", "ca", 2), alg).unwrap());
    sign_and_verify(signer.as_ref(), alg, b"before");

    // Both pooled sessions die, and the login with them.
    signer.close_all_sessions().unwrap();
    for i in 0..4 {
        sign_and_verify(signer.as_ref(), alg, format!("after {i}").as_bytes());
    }
    assert_eq!(signer.pool_stats(), PoolStats { size: 2, in_use: 0 });

    // The readiness probe recovers too, also through the Signer trait.
    signer.close_all_sessions().unwrap();
    signer.probe().unwrap();
    sign_and_verify(signer.as_ref(), alg, b"after the probe");
    let as_signer: Arc<dyn Signer> = signer.clone();
    signer.close_all_sessions().unwrap();
    as_signer.check().unwrap();
    assert_eq!(
        as_signer.sessions(),
        Some(SessionPool { size: 2, in_use: 0 })
    );

    // And with many signatures in flight when it happens.
    signer.close_all_sessions().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let signer = signer.clone();
            std::thread::spawn(move || {
                for i in 0..4 {
                    let message = format!("thread {t} after {i}");
                    sign_and_verify(signer.as_ref(), alg, message.as_bytes());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(signer.pool_stats().in_use, 0);

    // The token's random generator, through the same sessions.
    let random = signer.random();
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    random.fill(&mut a).unwrap();
    signer.close_all_sessions().unwrap();
    random.fill(&mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn a_wrong_pin_is_named() {
    let mut wrong = config("wrongpin", "ca", 1);
    wrong.pin = Pkcs11Pin::new("9999".to_owned());
    let err = Pkcs11Signer::open(&wrong).unwrap_err();
    assert!(
        matches!(err, KeyError::Pkcs11PinIncorrect { .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "wrong PIN for PKCS#11 token wrongpin");
    let err = generate(&wrong, KeyAlgorithm::EcdsaP256).unwrap_err();
    assert_eq!(err.to_string(), "wrong PIN for PKCS#11 token wrongpin");
}

#[test]
fn a_missing_or_foreign_module_is_named() {
    let mut missing = config("pool", "ca", 1);
    missing.module = PathBuf::from("/nonexistent/libnopkcs11.so");
    let err = Pkcs11Signer::open(&missing).unwrap_err();
    assert!(matches!(err, KeyError::Pkcs11Module { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("cannot load the PKCS#11 module /nonexistent/libnopkcs11.so: "),
        "{message}"
    );
    assert!(!message.contains('\n'));

    let dir = tempfile::tempdir().unwrap();
    let not_a_library = dir.path().join("libfake.so");
    std::fs::write(&not_a_library, "not a shared object").unwrap();
    missing.module = not_a_library.clone();
    let message = Pkcs11Signer::open(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "cannot load the PKCS#11 module {}: ",
            not_a_library.display()
        )),
        "{message}"
    );
}

#[test]
fn an_unknown_token_label_lists_the_tokens() {
    let err = Pkcs11Signer::open(&config("no-such-token", "ca", 1)).unwrap_err();
    assert!(
        matches!(err, KeyError::Pkcs11TokenNotFound { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("no PKCS#11 token labelled \"no-such-token\"; tokens found: "),
        "{message}"
    );
    for label in TOKENS {
        assert!(message.contains(&format!("\"{label}\"")), "{message}");
    }
}

#[test]
fn generate_refuses_a_label_in_use() {
    let alg = KeyAlgorithm::EcdsaP256;
    let first = generate(&config("collide", "ca", 1), alg).unwrap();
    let err = generate(&config("collide", "ca", 1), alg).unwrap_err();
    assert!(matches!(err, KeyError::Pkcs11LabelExists { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "PKCS#11 token collide already holds an object labelled \"ca\"; \
         refusing to generate a key under that label"
    );
    // Nothing was generated beside it: the label still names one key, which still signs.
    sign_and_verify(&first, alg, b"still here");
    let again = Pkcs11Signer::open(&config("collide", "ca", 1)).unwrap();
    assert_eq!(again.spki_der(), first.spki_der());
}

#[test]
fn a_destroyed_key_is_gone() {
    let alg = KeyAlgorithm::Ed25519;
    let signer = generate(&config("destroy", "ca", 2), alg).unwrap();
    sign_and_verify(&signer, alg, b"last words");
    object_store_turn_destroy(signer);
    let err = Pkcs11Signer::open(&config("destroy", "ca", 1)).unwrap_err();
    assert!(matches!(err, KeyError::Pkcs11KeyNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no PKCS#11 private key labelled \"ca\" in token destroy"
    );
    // The label is free again.
    let new = generate(&config("destroy", "ca", 1), alg).unwrap();
    sign_and_verify(&new, alg, b"reborn");
}

fn object_store_turn_destroy(signer: Pkcs11Signer) {
    let _turn = object_store_turn();
    signer.destroy().unwrap();
}

/// The module through cryptoki directly (its `C_Initialize` was done by the signer).
fn raw_session(token: &str) -> (Pkcs11, Slot, Session) {
    let ctx = Pkcs11::new(MODULE).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == token)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    (ctx, slot, session)
}

#[test]
fn the_private_key_never_leaves_the_token() {
    let signer = generate(&config("attrs", "ca", 1), KeyAlgorithm::EcdsaP384).unwrap();
    let (ctx, slot, session) = raw_session("attrs");
    let info = ctx.get_token_info(slot).unwrap();
    eprintln!(
        "SoftHSM2 token: ulMaxSessionCount {:?}, ulMaxRwSessionCount {:?}",
        info.max_session_count(),
        info.max_rw_session_count()
    );
    let label = Attribute::Label(b"ca".to_vec());
    let find = |class| {
        let found = session
            .find_objects(&[Attribute::Class(class), label.clone()])
            .unwrap();
        assert_eq!(found.len(), 1);
        found[0]
    };
    let private = session
        .get_attributes(
            find(ObjectClass::PRIVATE_KEY),
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Id,
                AttributeType::Value,
            ],
        )
        .unwrap();
    let public = session
        .get_attributes(
            find(ObjectClass::PUBLIC_KEY),
            &[
                AttributeType::Token,
                AttributeType::Verify,
                AttributeType::Id,
            ],
        )
        .unwrap();
    let has = |attrs: &[Attribute], want: &Attribute| {
        assert!(
            attrs.iter().any(|a| a == want),
            "{want:?} missing from {attrs:?}"
        )
    };
    for want in [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
    ] {
        has(&private, &want);
    }
    has(&public, &Attribute::Token(true));
    has(&public, &Attribute::Verify(true));
    // The secret itself is not readable (CKR_ATTRIBUTE_SENSITIVE: cryptoki leaves it out).
    assert!(!private
        .iter()
        .any(|a| a.attribute_type() == AttributeType::Value));
    let id = |attrs: &[Attribute]| {
        attrs
            .iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(id(&private).len(), 16);
    assert_eq!(id(&private), id(&public));
    sign_and_verify(&signer, KeyAlgorithm::EcdsaP384, b"sensitive");
}

/// Ed25519 keys whose curve is named the other way RFC 8410 allows, by the printable string
/// `edwards25519`, open and sign the same; `generate` names it by its OID.
#[test]
fn ed25519_curve_names_both_work() {
    let generated = generate(&config("edparams", "by-oid", 1), KeyAlgorithm::Ed25519).unwrap();
    let (_ctx, _slot, session) = raw_session("edparams");
    let public = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(b"by-oid".to_vec()),
        ])
        .unwrap();
    let params = session
        .get_attributes(public[0], &[AttributeType::EcParams])
        .unwrap();
    assert_eq!(
        params,
        [Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70])]
    );

    let label = Attribute::Label(b"by-name".to_vec());
    let turn = object_store_turn();
    let outcome = session.generate_key_pair(
        &Mechanism::EccEdwardsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(b"\x13\x0cedwards25519".to_vec()),
            label.clone(),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            label,
        ],
    );
    drop(turn);
    match outcome {
        Ok(_) => {
            let by_name = Pkcs11Signer::open(&config("edparams", "by-name", 1)).unwrap();
            assert_eq!(by_name.algorithm(), KeyAlgorithm::Ed25519);
            assert_eq!(spki_header(&by_name), spki_header(&generated));
            sign_and_verify(&by_name, KeyAlgorithm::Ed25519, b"by name");
        }
        Err(e) => eprintln!("SoftHSM2 refuses CKA_EC_PARAMS \"edwards25519\": {e:?}"),
    }
}
