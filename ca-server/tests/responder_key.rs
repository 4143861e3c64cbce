//! Where the delegated OCSP responder's key lives (`ca_server::responder_key`): a new key in
//! the token is an object labelled after its certificate's serial, loaded again by that
//! serial, and destroyed when retired or discarded; a file key is written 0600 only when
//! kept. Against SoftHSM2, which `scripts/setup.sh` installs; these tests never skip.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use ca_core::Serial;
use ca_server::datadir::DataDirError;
use ca_server::responder_key::{token_label, ResponderKeys};
use e2e_tests::softhsm::{softhsm_module, SoftHsm};
use keys::pkcs11::{Pkcs11Config, Pkcs11Pin};
use keys::{KeyError, SystemRandom};

const TOKEN: &str = "responder";
const PIN: &str = "1234";

/// The token, created once for this test binary (SoftHSM2 reads `SOFTHSM2_CONF` once).
fn token() -> Pkcs11Config {
    static STORE: OnceLock<SoftHsm> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = SoftHsm::new();
        store.init_token(TOKEN, PIN, "5678");
        // Set before any test touches the module: every test passes through this OnceLock.
        std::env::set_var("SOFTHSM2_CONF", store.conf_path());
        store
    });
    Pkcs11Config {
        module: softhsm_module(),
        token_label: TOKEN.to_owned(),
        key_label: "ca-key".to_owned(),
        pin: Pkcs11Pin::new(PIN.to_owned()),
        sessions: 2,
    }
}

/// A turn to create or destroy token objects: SoftHSM2 2.6's file object store fails now and
/// then when threads create token objects at once (SoftHSMv2 issue 573); only tests race.
fn object_store_turn() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serial() -> Serial {
    Serial::random(&SystemRandom::new()).unwrap()
}

fn not_found(result: Result<impl Sized, DataDirError>) -> bool {
    matches!(
        result,
        Err(DataDirError::Key(KeyError::Pkcs11KeyNotFound { .. }))
    )
}

#[test]
fn a_token_key_is_found_by_its_certificates_serial_and_destroyed_when_retired() {
    let _turn = object_store_turn();
    let keys = ResponderKeys::in_token(token());
    let serial = serial();
    let key = keys.create(serial).unwrap();
    let spki = key.signer.spki_der().to_vec();
    keys.keep(&key).unwrap();
    let loaded = keys.load(serial).unwrap();
    assert_eq!(loaded.spki_der(), spki.as_slice(), "another key was loaded");
    assert!(loaded.sign(b"an OCSP answer").is_ok());
    assert_eq!(
        keys.location(serial),
        format!(
            "pkcs11:token={TOKEN};object={}",
            token_label("ca-key", serial)
        )
    );
    // Another serial names no key.
    assert!(not_found(keys.load(self::serial())));
    drop((key, loaded));

    keys.retire(serial).unwrap();
    assert!(
        not_found(keys.load(serial)),
        "the retired key is still there"
    );
    // Retiring what is gone already is not an error.
    keys.retire(serial).unwrap();
}

#[test]
fn a_discarded_token_key_is_destroyed() {
    let _turn = object_store_turn();
    let keys = ResponderKeys::in_token(token());
    let serial = serial();
    let key = keys.create(serial).unwrap();
    keys.discard(key);
    assert!(
        not_found(keys.load(serial)),
        "the discarded key is still there"
    );
}

#[test]
fn a_file_key_is_written_0600_when_kept_and_only_then() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ocsp-key.pem");
    let keys = ResponderKeys::in_file(&path);
    let serial = serial();
    let discarded = keys.create(serial).unwrap();
    keys.discard(discarded);
    assert!(!path.exists(), "a discarded key was written");

    let key = keys.create(serial).unwrap();
    assert!(!path.exists(), "the key was written before it was kept");
    keys.keep(&key).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(keys.load(serial).unwrap().spki_der(), key.signer.spki_der());
    // A file key is replaced by the next one kept, not retired.
    keys.retire(serial).unwrap();
    assert!(path.exists());
}
