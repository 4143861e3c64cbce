//! CA keys in a PKCS#11 token (an HSM, or SoftHSM2 in tests), signing through the `cryptoki`
//! binding of the OASIS PKCS#11 v3.0 base specification.
//!
//! * **Module.** A module (the vendor's `.so`) is loaded and `C_Initialize`d once per process
//!   with `CKF_OS_LOCKING_OK` (section 5.4), in a registry keyed by its path, so that the CA
//!   key and, say, an OCSP responder key in the same module share one initialization.
//! * **Login.** The user logs in once (`C_Login`, section 5.6): login state belongs to the
//!   application and the token, not to a session, so every session opened afterwards is
//!   already logged in. `CKR_USER_ALREADY_LOGGED_IN` counts as success.
//! * **Pool.** A [`Pkcs11Signer`] keeps `sessions` read-only sessions (signing needs no
//!   read/write session), opened up front by [`Pkcs11Signer::open`] and capped by the
//!   token's `ulMaxSessionCount`. Each signature in flight holds one session; further callers
//!   wait until one is free. A session that is lost is reopened lazily by the caller that
//!   needs it.
//! * **Recovery.** When `C_Sign` fails because the session or the login went away
//!   (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`, `CKR_DEVICE_REMOVED`,
//!   `CKR_DEVICE_ERROR`, `CKR_TOKEN_NOT_PRESENT`, `CKR_USER_NOT_LOGGED_IN`, and
//!   `CKR_KEY_HANDLE_INVALID`), the session is dropped, a new one is opened (logging in again
//!   if needed) and the key found again, and the signature is tried once more; if that fails
//!   too the error is [`SignError::retryable`]. Other failures are permanent. A PIN the token
//!   refuses during recovery is never tried again, so that retries cannot lock the PIN.
//! * **Mechanisms.** ECDSA is `CKM_ECDSA` over a SHA-256 (P-256) or SHA-384 (P-384) digest
//!   computed here, its raw `r || s` (section 2.3.1) re-encoded as the DER `ECDSA-Sig-Value`
//!   of RFC 3279 section 2.2.3; RSA is `CKM_SHA256_RSA_PKCS` (section 2.1.13), or
//!   `CKM_SHA256_RSA_PKCS_PSS` (section 2.1.15) for a profile that asks for RSASSA-PSS;
//!   Ed25519 is `CKM_EDDSA` without parameters (section 2.3.14).
//! * **Public key.** The SubjectPublicKeyInfo is built from the public key object's
//!   attributes in the same layout as [`SoftwareKey`](crate::SoftwareKey)'s.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, Rv, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::{Limit, Slot, TokenInfo};
use cryptoki::types::AuthPin;
use pkcs8::der::asn1::{ObjectIdentifier, SequenceOf, UintRef};
use pkcs8::der::Encode;
use zeroize::Zeroizing;

use crate::algorithm::encode_spki;
use crate::error::Pkcs11Failure;
use crate::oid::{ID_ED25519, SECP256R1, SECP384R1};
use crate::random::SecureRandom;
use crate::{
    KeyAlgorithm, KeyError, RandomError, SessionPool, SignError, SignatureScheme, Signer,
    SignerLatency,
};

/// Where a key lives in a token, and how to reach it.
#[derive(Clone, Debug)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (the vendor's shared library, e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label (`CK_TOKEN_INFO.label`, compared with surrounding blanks trimmed).
    pub token_label: String,
    /// The `CKA_LABEL` of the private key object and of its public key object.
    pub key_label: String,
    /// The user PIN (`CKU_USER`).
    pub pin: Pkcs11Pin,
    /// How many sessions the signer keeps, that is how many signatures may be in flight at
    /// once; capped by the token's `ulMaxSessionCount` where it gives one (at least 1).
    pub sessions: usize,
}

/// The environment variable that holds the user PIN where no PIN file is named (for
/// [`Pkcs11Pin::from_env`]): what `ca-server` and `ca-bench` read.
pub const PIN_ENV: &str = "CA_PKCS11_PIN";

/// A token's user PIN, wiped from memory when dropped; its `Debug` shows `Pkcs11Pin(..)` and
/// it has no `Display`.
#[derive(Clone)]
pub struct Pkcs11Pin(Zeroizing<String>);

impl fmt::Debug for Pkcs11Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkcs11Pin(..)")
    }
}

impl Pkcs11Pin {
    /// Reads the PIN from a file that must be mode 0600 or stricter (the check of key files:
    /// [`KeyError::InsecurePermissions`] otherwise), with trailing line ends trimmed.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = crate::file::read_secret_file(path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| KeyError::Malformed("the PKCS#11 PIN file is not UTF-8"))?;
        let pin = text.trim_end_matches(['\n', '\r']);
        if pin.is_empty() {
            return Err(KeyError::Pkcs11PinMissing {
                origin: format!("the PIN file {}", path.display()),
            });
        }
        Ok(Pkcs11Pin(Zeroizing::new(pin.to_owned())))
    }

    /// Reads the PIN from the environment variable `var` (e.g. `CA_PKCS11_PIN`);
    /// [`KeyError::Pkcs11PinMissing`] when it is unset, empty or not UTF-8.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let missing = || KeyError::Pkcs11PinMissing {
            origin: format!("the environment variable {var}"),
        };
        let value = std::env::var_os(var).ok_or_else(missing)?;
        let pin = Zeroizing::new(value.into_string().map_err(|_| missing())?);
        if pin.is_empty() {
            return Err(missing());
        }
        Ok(Pkcs11Pin(pin))
    }

    /// A PIN given directly (tests, tools).
    pub fn new(pin: String) -> Self {
        Pkcs11Pin(Zeroizing::new(pin))
    }

    fn auth_pin(&self) -> AuthPin {
        AuthPin::from(self.0.as_str())
    }
}

/// The signer's session pool, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The pool's size: the configured `sessions`, capped by the token's
    /// `ulMaxSessionCount` (or by the sessions it would open); lost sessions count, since
    /// they are reopened when needed.
    pub size: usize,
    /// Sessions signing (or drawing random bytes) right now.
    pub in_use: usize,
}

// ---------------------------------------------------------------------------------------
// Modules.

/// A loaded and initialized module.
struct Module {
    ctx: Pkcs11,
    path: PathBuf,
}

/// The modules this process has loaded, by path (canonical where the path resolves).
fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state behind every lock here stays consistent at each step (counters and a list),
    // so a panic elsewhere while holding it does not make it unusable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Loads the module at `path` and calls `C_Initialize` on it, once per process.
fn load_module(path: &Path) -> Result<Arc<Module>, KeyError> {
    let failed = |reason: String| KeyError::Pkcs11Module {
        path: path.to_path_buf(),
        reason,
    };
    let key = std::fs::canonicalize(path).map_err(|e| failed(e.to_string()))?;
    let mut modules = lock(registry());
    if let Some(module) = modules.get(&key) {
        return Ok(module.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| failed(describe(&e)))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Initialized by some other part of the process (another binding of the module).
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(describe(&e))),
    }
    let module = Arc::new(Module { ctx, path: key });
    modules.insert(module.path.clone(), module.clone());
    Ok(module)
}

/// The initialized token labelled `label`, with its information.
fn find_token(module: &Module, label: &str) -> Result<(Slot, TokenInfo), KeyError> {
    let call = |what, e: CkError| KeyError::Pkcs11 {
        token: module.path.display().to_string(),
        what,
        source: failure(&e),
    };
    let wanted = label.trim();
    let mut found = Vec::new();
    let mut matches = Vec::new();
    let slots = module
        .ctx
        .get_slots_with_token()
        .map_err(|e| call("listing the slots", e))?;
    for slot in slots {
        let info = module
            .ctx
            .get_token_info(slot)
            .map_err(|e| call("reading a token's information", e))?;
        if !info.token_initialized() {
            continue;
        }
        let name = info.label().trim().to_owned();
        if name == wanted {
            matches.push((slot, info));
        }
        found.push(name);
    }
    let count = matches.len();
    match matches.pop() {
        Some(token) if count == 1 => Ok(token),
        Some(_) => Err(KeyError::Pkcs11TokenAmbiguous {
            label: wanted.to_owned(),
            count,
        }),
        None => Err(KeyError::Pkcs11TokenNotFound {
            label: wanted.to_owned(),
            found,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Errors.

/// A cryptoki error as one line: the function and the `CKR_` name of its return value.
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("C_{function:?}: {}", ckr_name(*rv)),
        other => other.to_string(),
    }
}

fn failure(e: &CkError) -> Pkcs11Failure {
    Pkcs11Failure(describe(e))
}

/// `RvError::PinIncorrect` as `CKR_PIN_INCORRECT`.
fn ckr_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    if !camel.chars().all(|c| c.is_ascii_alphanumeric()) {
        return camel; // a vendor-defined value, printed with its number
    }
    let mut name = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// What a failed call says about the session it was made on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lost {
    /// Nothing: the session is fine and the failure is the request's.
    No,
    /// This session is unusable (device error, logged out, stale key handle): close it.
    Session,
    /// Every session of the token is gone (closed, device removed): their handles are dead
    /// and may even be reused by the module, so none of them is closed or used again.
    All,
}

fn lost(e: &CkError) -> Lost {
    match rv_of(e) {
        Some(
            RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent,
        ) => Lost::All,
        Some(RvError::DeviceError | RvError::UserNotLoggedIn | RvError::KeyHandleInvalid) => {
            Lost::Session
        }
        _ => Lost::No,
    }
}

/// A step of getting a session ready that failed, before it becomes a [`KeyError`] (opening
/// the signer) or a [`SignError`] (recovering while signing).
enum StepError {
    /// A call failed.
    Call(&'static str, CkError),
    /// The PIN was refused now or earlier ([`KeyError::Pkcs11PinIncorrect`] or
    /// [`KeyError::Pkcs11PinLocked`]), or the key is gone.
    Key(KeyError),
}

impl StepError {
    fn into_key_error(self, token: &str) -> KeyError {
        match self {
            StepError::Call(what, e) => KeyError::Pkcs11 {
                token: token.to_owned(),
                what,
                source: failure(&e),
            },
            StepError::Key(e) => e,
        }
    }

    /// While signing: a refused PIN or a vanished key will not get better by retrying;
    /// anything else about reaching the token may.
    fn into_sign_error(self, token: &str) -> SignError {
        match self {
            StepError::Key(e) => SignError::permanent("the PKCS#11 key cannot be used", e),
            StepError::Call(_, e) if rv_of(&e) == Some(RvError::KeyFunctionNotPermitted) => {
                SignError::permanent("the PKCS#11 key may not sign", failure(&e))
            }
            other => SignError::retryable(
                "the PKCS#11 token is unavailable",
                other.into_key_error(token),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sessions and the pool.

/// A session that is closed when dropped, unless it is abandoned because its handle died.
struct OwnedSession(Option<Session>);

impl OwnedSession {
    fn get(&self) -> Option<&Session> {
        self.0.as_ref()
    }

    /// Forgets a session whose handle is dead without calling `C_CloseSession` on it: the
    /// module may have handed the same handle to a new session already.
    fn abandon(mut self) {
        // The session was opened without close-on-drop, so dropping it calls nothing.
        drop(self.0.take());
    }
}

impl Drop for OwnedSession {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            let _ = session.close();
        }
    }
}

/// A pooled session with the private key's handle as this session found it.
struct Pooled {
    session: OwnedSession,
    key: ObjectHandle,
    /// The pool's generation when the session was opened (see [`PoolState::generation`]).
    generation: u64,
}

struct PoolState {
    idle: Vec<Pooled>,
    /// Sessions idle, leased, or being opened for a lease.
    open: usize,
    /// Sessions leased.
    in_use: usize,
    /// Bumped when a call says every session of the token is gone: sessions of an older
    /// generation are then abandoned instead of being used.
    generation: u64,
    /// How many sessions the pool may hold.
    capacity: usize,
}

struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
}

/// A session taken from the pool, given back when dropped. `item` is `None` while its
/// session has been dropped and a new one not yet put in.
struct Lease<'a> {
    pool: &'a Pool,
    item: Option<Pooled>,
}

impl Pool {
    fn new(capacity: usize) -> Self {
        Pool {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
                in_use: 0,
                generation: 0,
                capacity,
            }),
            freed: Condvar::new(),
        }
    }

    fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// A session: an idle one, else a new one (`open`) while the pool is not full, else the
    /// first one given back. With `wait == false`, `None` instead of waiting.
    fn acquire<F>(&self, wait: bool, open: F) -> Result<Option<Lease<'_>>, StepError>
    where
        F: FnOnce(u64) -> Result<Pooled, StepError>,
    {
        let mut state = lock(&self.state);
        loop {
            while let Some(item) = state.idle.pop() {
                if item.generation < state.generation {
                    state.open -= 1;
                    item.session.abandon();
                    continue;
                }
                state.in_use += 1;
                return Ok(Some(Lease {
                    pool: self,
                    item: Some(item),
                }));
            }
            if state.open < state.capacity {
                state.open += 1;
                state.in_use += 1;
                let generation = state.generation;
                drop(state);
                let mut lease = Lease {
                    pool: self,
                    item: None,
                };
                lease.item = Some(open(generation)?); // on error the lease gives the slot back
                return Ok(Some(lease));
            }
            if !wait {
                return Ok(None);
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Adds a session opened outside [`Pool::acquire`] (at open time).
    fn add(&self, item: Pooled) {
        let mut state = lock(&self.state);
        state.open += 1;
        state.idle.push(item);
        drop(state);
        self.freed.notify_one();
    }

    fn stats(&self) -> PoolStats {
        let state = lock(&self.state);
        PoolStats {
            size: state.capacity,
            in_use: state.in_use,
        }
    }

    /// The token gave fewer sessions than asked for: the pool keeps those it has.
    fn shrink_to_open(&self) {
        let mut state = lock(&self.state);
        state.capacity = state.open.max(1);
    }
}

impl Drop for Pool {
    /// Closes the idle sessions (every lease borrows the pool, so all are idle by now), and
    /// abandons those whose handles died.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let generation = state.generation;
        for item in std::mem::take(&mut state.idle) {
            if item.generation < generation {
                item.session.abandon();
            } // else dropping it closes the session
        }
    }
}

impl Lease<'_> {
    fn item(&self) -> Option<(&Session, ObjectHandle)> {
        let item = self.item.as_ref()?;
        Some((item.session.get()?, item.key))
    }

    /// Drops the session after a failure that `how` classifies (not [`Lost::No`]).
    fn discard(&mut self, how: Lost) {
        let Some(item) = self.item.take() else {
            return;
        };
        if how == Lost::All {
            let mut state = lock(&self.pool.state);
            if state.generation == item.generation {
                state.generation += 1;
            }
            drop(state);
            item.session.abandon();
        }
        // Lost::Session: dropping the item closes the session.
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.pool.state);
        state.in_use -= 1;
        match self.item.take() {
            Some(item) if item.generation >= state.generation => state.idle.push(item),
            Some(item) => {
                state.open -= 1;
                item.session.abandon();
            }
            None => state.open -= 1,
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

// ---------------------------------------------------------------------------------------
// The signer.

/// A CA key in a PKCS#11 token: a [`Signer`] whose signatures are waits on the device
/// ([`SignerLatency::Device`]), usable from many threads at once through its session pool.
pub struct Pkcs11Signer {
    module: Arc<Module>,
    slot: Slot,
    token: String,
    key_label: String,
    key_id: Vec<u8>,
    pin: AuthPin,
    /// Set when the token refused the PIN while recovering: no more login attempts.
    pin_refused: AtomicBool,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    public_key_bits: Vec<u8>,
    pool: Pool,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("module", &self.module.path)
            .field("token", &self.token)
            .field("key_label", &self.key_label)
            .field("algorithm", &self.algorithm)
            .field("pool", &self.pool.stats())
            .finish_non_exhaustive()
    }
}

/// The public key of a token key pair, read from its attributes.
struct PublicKey {
    algorithm: KeyAlgorithm,
    /// The `subjectPublicKey` BIT STRING's content.
    bits: Vec<u8>,
}

impl Pkcs11Signer {
    /// Opens the key pair labelled `key_label` in the token labelled `token_label`: loads the
    /// module (once per process), logs the user in once, checks that exactly one private
    /// key has the label, reads its public key (to build the SubjectPublicKeyInfo and tell
    /// the algorithm) and opens the pool's sessions.
    pub fn open(config: &Pkcs11Config) -> Result<Self, KeyError> {
        let module = load_module(&config.module)?;
        let (slot, info) = find_token(&module, &config.token_label)?;
        Self::open_in(module, slot, &info, config)
    }

    /// Generates a key pair of `algorithm` inside the token under `key_label` and opens it
    /// (PKCS#11 v3.0 section 5.14 `C_GenerateKeyPair`).
    ///
    /// Refuses ([`KeyError::Pkcs11LabelExists`]) when any object has the label. The private
    /// key is a token object that is private, sensitive, never extractable and may only
    /// sign; the public key may only verify; both carry the same random 16-byte `CKA_ID`.
    /// Ed25519 keys name their curve by the DER of id-Ed25519 (1.3.101.112) in
    /// `CKA_EC_PARAMS`, or by the printable string `edwards25519` for tokens that want that.
    /// If the new key cannot be opened, it is destroyed again.
    pub fn generate(config: &Pkcs11Config, algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let module = load_module(&config.module)?;
        let (slot, info) = find_token(&module, &config.token_label)?;
        let token = info.label().trim().to_owned();
        if info.user_pin_locked() {
            return Err(KeyError::Pkcs11PinLocked { token });
        }
        let call = |what, e: CkError| KeyError::Pkcs11 {
            token: token.clone(),
            what,
            source: failure(&e),
        };
        let session = OwnedSession(Some(
            module
                .ctx
                .open_rw_session_no_drop(slot)
                .map_err(|e| call("opening a read/write session", e))?,
        ));
        let Some(rw) = session.get() else {
            return Err(KeyError::Generation);
        };
        login(rw, &config.pin.auth_pin())
            .map_err(|e| login_error(e, &token).into_key_error(&token))?;

        let label = Attribute::Label(config.key_label.as_bytes().to_vec());
        let existing = rw
            .find_objects(std::slice::from_ref(&label))
            .map_err(|e| call("looking for objects with the key label", e))?;
        if !existing.is_empty() {
            return Err(KeyError::Pkcs11LabelExists {
                key: config.key_label.clone(),
                token,
            });
        }

        let mut id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| KeyError::Generation)?;
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            label.clone(),
            Attribute::Id(id.clone()),
        ];
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            label,
            Attribute::Id(id.clone()),
        ];
        let generate = |mechanism: &Mechanism, public: &[Attribute]| {
            rw.generate_key_pair(mechanism, public, &private)
        };
        let generated = match algorithm {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let curve = if algorithm == KeyAlgorithm::EcdsaP256 {
                    SECP256R1
                } else {
                    SECP384R1
                };
                public.push(Attribute::EcParams(oid_der(&curve)?));
                generate(&Mechanism::EccKeyPairGen, &public)
            }
            KeyAlgorithm::Ed25519 => {
                let mut with_oid = public.clone();
                with_oid.push(Attribute::EcParams(oid_der(&ID_ED25519)?));
                match generate(&Mechanism::EccEdwardsKeyPairGen, &with_oid) {
                    Err(e) if curve_refused(&e) => {
                        public.push(Attribute::EcParams(ED25519_CURVE_NAME.to_vec()));
                        generate(&Mechanism::EccEdwardsKeyPairGen, &public)
                    }
                    outcome => outcome,
                }
            }
            KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits: u64 = if algorithm == KeyAlgorithm::Rsa3072 {
                    3072
                } else {
                    4096
                };
                public.push(Attribute::ModulusBits(bits.into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                generate(&Mechanism::RsaPkcsKeyPairGen, &public)
            }
        };
        let (public_key, private_key) =
            generated.map_err(|e| call("generating the key pair", e))?;

        // The read/write session stays open while the pool opens, so the login holds.
        let opened = Self::open_in(module, slot, &info, config).and_then(|signer| {
            if signer.algorithm == algorithm && signer.key_id == id {
                Ok(signer)
            } else {
                Err(KeyError::Unsupported(format!(
                    "the token made a {} key when asked for {algorithm}",
                    signer.algorithm
                )))
            }
        });
        if opened.is_err() {
            let _ = rw.destroy_object(private_key);
            let _ = rw.destroy_object(public_key);
        }
        opened
    }

    /// Destroys the key pair (private and public key objects with the key's label and
    /// `CKA_ID`) in the token: the key ceremony's undo when a later step of `init` fails.
    pub fn destroy(self) -> Result<(), KeyError> {
        let call = |what, e: CkError| KeyError::Pkcs11 {
            token: self.token.clone(),
            what,
            source: failure(&e),
        };
        let session = OwnedSession(Some(
            self.module
                .ctx
                .open_rw_session_no_drop(self.slot)
                .map_err(|e| call("opening a read/write session", e))?,
        ));
        let Some(rw) = session.get() else {
            return Err(KeyError::Generation);
        };
        login(rw, &self.pin)
            .map_err(|e| login_error(e, &self.token).into_key_error(&self.token))?;
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            let objects = rw
                .find_objects(&self.template(class))
                .map_err(|e| call("looking for the key objects", e))?;
            for object in objects {
                rw.destroy_object(object)
                    .map_err(|e| call("destroying a key object", e))?;
            }
        }
        Ok(())
    }

    /// The key's algorithm and size, as the token's key object says.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Sessions in the pool and those signing right now (for metrics).
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Whether the token answers now, for a readiness check: `C_GetSessionInfo` on an idle
    /// session (reopening it, and logging in again, as [`Signer::sign`] does when it is
    /// lost), or `C_GetTokenInfo` when every session is busy signing. Never waits for a
    /// session.
    pub fn probe(&self) -> Result<(), SignError> {
        let acquired = self
            .pool
            .acquire(false, |generation| self.new_session(generation))
            .map_err(|e| e.into_sign_error(&self.token))?;
        let Some(mut lease) = acquired else {
            return self
                .module
                .ctx
                .get_token_info(self.slot)
                .map(|_| ())
                .map_err(|e| {
                    SignError::retryable("the PKCS#11 token does not answer", failure(&e))
                });
        };
        let checked = match lease.item() {
            Some((session, _)) => session.get_session_info().map(|info| info.session_state()),
            None => Err(CkError::InvalidValue),
        };
        let how = match checked {
            Ok(SessionState::RoUser | SessionState::RwUser) => return Ok(()),
            Ok(_) => Lost::Session, // logged out behind our back
            Err(e) => match lost(&e) {
                Lost::No => {
                    return Err(SignError::retryable(
                        "the PKCS#11 token does not answer",
                        failure(&e),
                    ))
                }
                how => how,
            },
        };
        lease.discard(how);
        let fresh = self
            .new_session(self.pool.generation())
            .map_err(|e| e.into_sign_error(&self.token))?;
        lease.item = Some(fresh);
        Ok(())
    }

    /// Test hook: `C_CloseAllSessions` on the signer's module and slot, which is what a
    /// module does when its device goes away (PKCS#11 v3.0 section 5.6). Every session of
    /// the token in this process is closed and the login is lost; signing recovers. SoftHSM2
    /// 2.6 frees its session objects while another thread may be inside `C_SignInit` on one,
    /// so a caller must not run it during a signature (ca-core/tests/hsm_session_loss.rs
    /// gates it); a real device that goes away answers the signature in progress with an
    /// error instead.
    #[doc(hidden)]
    pub fn close_all_sessions(&self) -> Result<(), KeyError> {
        let failed = |reason: String| KeyError::Pkcs11 {
            token: self.token.clone(),
            what: "closing all sessions",
            source: Pkcs11Failure(reason),
        };
        // cryptoki does not wrap C_CloseAllSessions. A second handle on the same shared
        // library is the same module instance (dlopen counts references), so its function
        // list reaches the sessions cryptoki opened.
        // SAFETY: loading the module runs its initializers, as loading it for cryptoki did.
        let library = unsafe { cryptoki_sys::Pkcs11::new(&self.module.path) }
            .map_err(|e| failed(e.to_string()))?;
        let get_function_list = library
            .C_GetFunctionList
            .as_ref()
            .map_err(|e| failed(e.to_string()))?;
        let mut list: *mut cryptoki_sys::CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: C_GetFunctionList writes a pointer to the module's static function list.
        let rv = unsafe { get_function_list(&mut list) };
        if rv != cryptoki_sys::CKR_OK || list.is_null() {
            return Err(failed(format!("C_GetFunctionList returned {rv:#x}")));
        }
        // SAFETY: `list` points to the module's function list, which lives as long as the
        // module stays loaded (`library` and cryptoki's handle keep it loaded).
        let close_all = unsafe { (*list).C_CloseAllSessions }
            .ok_or_else(|| failed("the module has no C_CloseAllSessions".to_owned()))?;
        // SAFETY: a plain call with a slot ID; the module was initialized by load_module.
        let rv = unsafe { close_all(self.slot.id()) };
        match Rv::from(rv) {
            Rv::Ok => Ok(()),
            Rv::Error(rv) => Err(failed(format!("C_CloseAllSessions: {}", ckr_name(rv)))),
        }
    }

    /// Draws random bytes from the token (`C_GenerateRandom`, section 5.15) through the
    /// signer's sessions, as the provider's [`SecureRandom`] for serial numbers.
    pub fn random(self: &Arc<Self>) -> Arc<dyn SecureRandom> {
        self.clone()
    }

    fn open_in(
        module: Arc<Module>,
        slot: Slot,
        info: &TokenInfo,
        config: &Pkcs11Config,
    ) -> Result<Self, KeyError> {
        let token = info.label().trim().to_owned();
        if info.user_pin_locked() {
            return Err(KeyError::Pkcs11PinLocked { token });
        }
        let call = |what, e: CkError| KeyError::Pkcs11 {
            token: token.clone(),
            what,
            source: failure(&e),
        };
        let pin = config.pin.auth_pin();
        let session = OwnedSession(Some(
            module
                .ctx
                .open_ro_session_no_drop(slot)
                .map_err(|e| call("opening a session", e))?,
        ));
        let Some(first) = session.get() else {
            return Err(KeyError::Generation);
        };
        login(first, &pin).map_err(|e| login_error(e, &token).into_key_error(&token))?;

        let not_found = |class| KeyError::Pkcs11KeyNotFound {
            class,
            key: config.key_label.clone(),
            token: token.clone(),
        };
        let label = Attribute::Label(config.key_label.as_bytes().to_vec());
        let privates = first
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), label.clone()])
            .map_err(|e| call("looking for the private key", e))?;
        let private_key = match privates.as_slice() {
            [key] => *key,
            [] => return Err(not_found("private")),
            more => {
                return Err(KeyError::Pkcs11KeyAmbiguous {
                    key: config.key_label.clone(),
                    token: token.clone(),
                    count: more.len(),
                })
            }
        };
        let attributes = first
            .get_attributes(private_key, &[AttributeType::KeyType, AttributeType::Id])
            .map_err(|e| call("reading the private key's attributes", e))?;
        let mut key_type = None;
        let mut key_id = Vec::new();
        for attribute in attributes {
            match attribute {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::Id(id) => key_id = id,
                _ => {}
            }
        }
        let key_type =
            key_type.ok_or(KeyError::Malformed("the private key has no CKA_KEY_TYPE"))?;

        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY), label];
        if !key_id.is_empty() {
            template.push(Attribute::Id(key_id.clone()));
        }
        let publics = first
            .find_objects(&template)
            .map_err(|e| call("looking for the public key", e))?;
        let public_key = match (publics.first(), key_type) {
            (Some(key), _) => *key,
            // An RSA private key object carries its modulus and public exponent.
            (None, KeyType::RSA) => private_key,
            (None, _) => return Err(not_found("public")),
        };
        let public =
            read_public_key(first, public_key, key_type).map_err(|e| e.into_key_error(&token))?;
        let spki = encode_spki(public.algorithm, &public.bits)?;

        let capacity = match info.max_session_count() {
            Limit::Max(max) if max > 0 => config
                .sessions
                .min(usize::try_from(max).unwrap_or(usize::MAX)),
            _ => config.sessions,
        }
        .max(1);
        let signer = Pkcs11Signer {
            module,
            slot,
            token,
            key_label: config.key_label.clone(),
            key_id,
            pin,
            pin_refused: AtomicBool::new(false),
            algorithm: public.algorithm,
            spki,
            public_key_bits: public.bits,
            pool: Pool::new(capacity),
        };
        signer.pool.add(Pooled {
            session,
            key: private_key,
            generation: 0,
        });
        // The other sessions up front, so that a token short of sessions says so now.
        for _ in 1..capacity {
            match signer.new_session(0) {
                Ok(item) => signer.pool.add(item),
                Err(StepError::Call(_, e)) if rv_of(&e) == Some(RvError::SessionCount) => {
                    signer.pool.shrink_to_open();
                    break;
                }
                Err(e) => return Err(e.into_key_error(&signer.token)),
            }
        }
        Ok(signer)
    }

    /// The template of this key's objects of `class`: label, and `CKA_ID` when it has one.
    fn template(&self, class: ObjectClass) -> Vec<Attribute> {
        let mut template = vec![
            Attribute::Class(class),
            Attribute::Label(self.key_label.as_bytes().to_vec()),
        ];
        if !self.key_id.is_empty() {
            template.push(Attribute::Id(self.key_id.clone()));
        }
        template
    }

    /// Opens a session for the pool, logs in unless the token's login still holds, and finds
    /// the private key's handle.
    fn new_session(&self, generation: u64) -> Result<Pooled, StepError> {
        let session = OwnedSession(Some(
            self.module
                .ctx
                .open_ro_session_no_drop(self.slot)
                .map_err(|e| StepError::Call("opening a session", e))?,
        ));
        let Some(s) = session.get() else {
            return Err(StepError::Call("opening a session", CkError::InvalidValue));
        };
        let state = s
            .get_session_info()
            .map_err(|e| StepError::Call("reading the session's state", e))?
            .session_state();
        if !matches!(state, SessionState::RoUser | SessionState::RwUser) {
            if self.pin_refused.load(Ordering::Relaxed) {
                return Err(StepError::Key(KeyError::Pkcs11PinIncorrect {
                    token: self.token.clone(),
                }));
            }
            if let Err(e) = login(s, &self.pin) {
                let e = login_error(e, &self.token);
                if matches!(e, StepError::Key(_)) {
                    self.pin_refused.store(true, Ordering::Relaxed);
                }
                return Err(e);
            }
        }
        let keys = s
            .find_objects(&self.template(ObjectClass::PRIVATE_KEY))
            .map_err(|e| StepError::Call("looking for the private key", e))?;
        let [key] = keys.as_slice() else {
            return Err(StepError::Key(KeyError::Pkcs11KeyNotFound {
                class: "private",
                key: self.key_label.clone(),
                token: self.token.clone(),
            }));
        };
        Ok(Pooled {
            session,
            key: *key,
            generation,
        })
    }

    /// Runs `op` on a pooled session; when it fails because the session or the login went
    /// away, drops the session, opens a new one and runs `op` once more.
    fn with_session<T>(
        &self,
        what: &'static str,
        op: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, SignError> {
        let mut lease = self
            .pool
            .acquire(true, |generation| self.new_session(generation))
            .map_err(|e| e.into_sign_error(&self.token))?
            .ok_or_else(|| SignError::retryable(what, Pkcs11Failure("no session".into())))?;
        let outcome = match lease.item() {
            Some((session, key)) => op(session, key),
            None => Err(CkError::InvalidValue),
        };
        let e = match outcome {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let how = lost(&e);
        if how == Lost::No {
            return Err(SignError::permanent(what, failure(&e)));
        }
        lease.discard(how);
        let fresh = self
            .new_session(self.pool.generation())
            .map_err(|e| e.into_sign_error(&self.token))?;
        lease.item = Some(fresh);
        let retried = match lease.item() {
            Some((session, key)) => op(session, key),
            None => Err(CkError::InvalidValue),
        };
        retried.map_err(|e| {
            let how = lost(&e);
            if how != Lost::No {
                lease.discard(how);
            }
            SignError::retryable(what, failure(&e))
        })
    }
}

impl Signer for Pkcs11Signer {
    fn scheme(&self) -> SignatureScheme {
        self.algorithm.scheme()
    }

    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn public_key_bits(&self) -> &[u8] {
        &self.public_key_bits
    }

    fn supports(&self, scheme: SignatureScheme) -> bool {
        scheme.signable_by(self.scheme())
    }

    /// RSASSA-PSS as `CKM_SHA256_RSA_PKCS_PSS` (PKCS#11 v3.0 section 2.1.15) with
    /// SHA-256, MGF1-SHA-256 and a 32-byte salt; every other scheme as [`Signer::sign`].
    fn sign_with(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match scheme {
            SignatureScheme::RsaPssSha256 if self.supports(scheme) => {
                let mechanism = Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32.into(),
                });
                self.with_session("the PKCS#11 token did not sign", |s, key| {
                    s.sign(&mechanism, key, message)
                })
            }
            _ if scheme == self.scheme() => self.sign(message),
            _ => Err(SignError::unsupported(scheme)),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let (digest, width) = if self.algorithm == KeyAlgorithm::EcdsaP256 {
                    (ring::digest::digest(&ring::digest::SHA256, message), 32)
                } else {
                    (ring::digest::digest(&ring::digest::SHA384, message), 48)
                };
                let raw = self.with_session("the PKCS#11 token did not sign", |s, key| {
                    s.sign(&Mechanism::Ecdsa, key, digest.as_ref())
                })?;
                ecdsa_raw_to_der(&raw, width).ok_or_else(|| {
                    SignError::permanent(
                        "the PKCS#11 token returned a malformed ECDSA signature",
                        Pkcs11Failure(format!("C_Sign returned {} bytes", raw.len())),
                    )
                })
            }
            KeyAlgorithm::Ed25519 => {
                let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                self.with_session("the PKCS#11 token did not sign", |s, key| {
                    s.sign(&mechanism, key, message)
                })
            }
            KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => self
                .with_session("the PKCS#11 token did not sign", |s, key| {
                    s.sign(&Mechanism::Sha256RsaPkcs, key, message)
                }),
        }
    }

    fn latency(&self) -> SignerLatency {
        SignerLatency::Device
    }

    fn check(&self) -> Result<(), SignError> {
        self.probe()
    }

    fn sessions(&self) -> Option<SessionPool> {
        let stats = self.pool.stats();
        Some(SessionPool {
            size: stats.size,
            in_use: stats.in_use,
        })
    }
}

impl SecureRandom for Pkcs11Signer {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        let bytes = self
            .with_session("the PKCS#11 token gave no random bytes", |s, _| {
                let mut bytes = vec![0u8; dest.len()];
                s.generate_random_slice(&mut bytes).map(|()| bytes)
            })
            .map_err(|_| RandomError)?;
        dest.copy_from_slice(&bytes);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Helpers: login, attributes, encodings.

/// `C_Login` as the user; `CKR_USER_ALREADY_LOGGED_IN` is success.
fn login(session: &Session, pin: &AuthPin) -> Result<(), CkError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn login_error(e: CkError, token: &str) -> StepError {
    match rv_of(&e) {
        Some(RvError::PinIncorrect) => StepError::Key(KeyError::Pkcs11PinIncorrect {
            token: token.to_owned(),
        }),
        Some(RvError::PinLocked) => StepError::Key(KeyError::Pkcs11PinLocked {
            token: token.to_owned(),
        }),
        _ => StepError::Call("logging in", e),
    }
}

/// The printable string `edwards25519`, the other curve name RFC 8410 tokens accept in
/// `CKA_EC_PARAMS` (PKCS#11 v3.0 section 2.3.10).
const ED25519_CURVE_NAME: &[u8] = b"\x13\x0cedwards25519";

/// The GnuPG/OpenSC object identifier some tokens give Ed25519 keys (1.3.6.1.4.1.11591.15.1).
const ED25519_GNU_OID: &[u8] = b"\x06\x09\x2b\x06\x01\x04\x01\xda\x47\x0f\x01";

fn curve_refused(e: &CkError) -> bool {
    matches!(
        rv_of(e),
        Some(
            RvError::AttributeValueInvalid
                | RvError::CurveNotSupported
                | RvError::DomainParamsInvalid
                | RvError::TemplateInconsistent
        )
    )
}

fn oid_der(oid: &ObjectIdentifier) -> Result<Vec<u8>, KeyError> {
    oid.to_der()
        .map_err(|_| KeyError::Malformed("object identifier encoding"))
}

/// The algorithm and the `subjectPublicKey` of the public key object (or, for RSA, the
/// private key object, which carries the modulus and public exponent).
fn read_public_key(
    session: &Session,
    object: ObjectHandle,
    key_type: KeyType,
) -> Result<PublicKey, StepError> {
    let read = |types: &[AttributeType]| {
        session
            .get_attributes(object, types)
            .map_err(|e| StepError::Call("reading the public key", e))
    };
    let malformed = |what| StepError::Key(KeyError::Malformed(what));
    if key_type == KeyType::RSA {
        let (mut modulus, mut exponent) = (None, None);
        for attribute in read(&[AttributeType::Modulus, AttributeType::PublicExponent])? {
            match attribute {
                Attribute::Modulus(n) => modulus = Some(n),
                Attribute::PublicExponent(e) => exponent = Some(e),
                _ => {}
            }
        }
        let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
            return Err(malformed(
                "the RSA key has no CKA_MODULUS or CKA_PUBLIC_EXPONENT",
            ));
        };
        let algorithm = match bit_length(&modulus) {
            3072 => KeyAlgorithm::Rsa3072,
            4096 => KeyAlgorithm::Rsa4096,
            bits => {
                return Err(StepError::Key(KeyError::Unsupported(format!(
                    "RSA-{bits}: a CA key must be RSA 3072 or 4096"
                ))))
            }
        };
        // RSAPublicKey, RFC 8017 appendix A.1.1.
        let bits = der_uint_pair(&modulus, &exponent)
            .ok_or_else(|| malformed("the RSA key's modulus or exponent"))?;
        return Ok(PublicKey { algorithm, bits });
    }
    if key_type != KeyType::EC && key_type != KeyType::EC_EDWARDS {
        return Err(StepError::Key(KeyError::Unsupported(format!(
            "PKCS#11 key type {key_type}"
        ))));
    }
    let (mut params, mut point) = (None, None);
    for attribute in read(&[AttributeType::EcParams, AttributeType::EcPoint])? {
        match attribute {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let (Some(params), Some(point)) = (params, point) else {
        return Err(malformed("the EC key has no CKA_EC_PARAMS or CKA_EC_POINT"));
    };
    let is = |oid: &ObjectIdentifier| oid.to_der().is_ok_and(|der| der == params);
    let (algorithm, length) = if key_type == KeyType::EC && is(&SECP256R1) {
        (KeyAlgorithm::EcdsaP256, 65)
    } else if key_type == KeyType::EC && is(&SECP384R1) {
        (KeyAlgorithm::EcdsaP384, 97)
    } else if key_type == KeyType::EC_EDWARDS
        && (is(&ID_ED25519) || params == ED25519_CURVE_NAME || params == ED25519_GNU_OID)
    {
        (KeyAlgorithm::Ed25519, 32)
    } else {
        let shown: Vec<String> = params.iter().map(|b| format!("{b:02x}")).collect();
        return Err(StepError::Key(KeyError::Unsupported(format!(
            "curve with CKA_EC_PARAMS {}: a CA key must be P-256, P-384 or Ed25519",
            shown.join("")
        ))));
    };
    let bits = unwrap_ec_point(&point, length)
        .ok_or_else(|| malformed("CKA_EC_POINT is not a point of the key's curve"))?;
    if algorithm != KeyAlgorithm::Ed25519 && bits.first() != Some(&0x04) {
        return Err(malformed("CKA_EC_POINT is not an uncompressed point"));
    }
    Ok(PublicKey {
        algorithm,
        bits: bits.to_vec(),
    })
}

/// The point of `CKA_EC_POINT`: the DER OCTET STRING that PKCS#11 v3.0 section 2.3.3
/// prescribes, or the bare point some modules return (the lengths tell them apart).
fn unwrap_ec_point(value: &[u8], length: usize) -> Option<&[u8]> {
    match value {
        [0x04, len, rest @ ..] if usize::from(*len) == length && rest.len() == length => Some(rest),
        bare if bare.len() == length => Some(bare),
        _ => None,
    }
}

/// The number of significant bits of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    let bytes = strip_zeros(bytes);
    match bytes.first() {
        Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The DER SEQUENCE of two INTEGERs holding the big-endian unsigned `a` and `b` (X.690
/// section 8.3: minimal, a zero byte in front of a high bit): an `ECDSA-Sig-Value` or an
/// `RSAPublicKey`.
fn der_uint_pair(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    let mut pair = SequenceOf::<UintRef<'_>, 2>::new();
    pair.add(UintRef::new(a).ok()?).ok()?;
    pair.add(UintRef::new(b).ok()?).ok()?;
    pair.to_der().ok()
}

/// The DER `ECDSA-Sig-Value` (RFC 3279 section 2.2.3) of the `r || s` that `CKM_ECDSA`
/// returns (each `width` bytes); `None` when the length is not `2 * width`.
fn ecdsa_raw_to_der(raw: &[u8], width: usize) -> Option<Vec<u8>> {
    if raw.len() != 2 * width {
        return None;
    }
    let (r, s) = raw.split_at(width);
    der_uint_pair(r, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ecdsa_signatures_become_minimal_der() {
        // High bit set: a zero byte goes in front.
        let mut raw = vec![0x80; 32];
        raw.extend_from_slice(&[0x01; 32]);
        let der = ecdsa_raw_to_der(&raw, 32).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x45, 0x02, 0x21, 0x00]);
        assert_eq!(&der[37..39], &[0x02, 0x20]);
        // Leading zeros go, a zero value is one zero byte.
        let mut raw = vec![0u8; 48];
        raw[47] = 0x7f;
        raw.extend_from_slice(&[0u8; 48]);
        assert_eq!(
            ecdsa_raw_to_der(&raw, 48).unwrap(),
            [0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 0x00]
        );
        // A leading zero then a high bit: stripped, then padded again.
        let mut raw = vec![0u8; 64];
        raw[1] = 0xff;
        raw[32] = 0x01;
        let der = ecdsa_raw_to_der(&raw, 32).unwrap();
        assert_eq!(&der[2..5], &[0x02, 0x20, 0x00]);
        assert_eq!(der[5], 0xff);
        assert!(ecdsa_raw_to_der(&raw[..63], 32).is_none());
    }

    #[test]
    fn ec_points_are_unwrapped_from_their_octet_string() {
        let point: Vec<u8> = std::iter::once(0x04).chain([7u8; 64]).collect();
        let wrapped: Vec<u8> = [0x04, 65].into_iter().chain(point.clone()).collect();
        assert_eq!(unwrap_ec_point(&wrapped, 65), Some(point.as_slice()));
        assert_eq!(unwrap_ec_point(&point, 65), Some(point.as_slice()));
        assert_eq!(unwrap_ec_point(&point[..64], 65), None);
        let ed = [9u8; 32];
        let wrapped: Vec<u8> = [0x04, 32].into_iter().chain(ed).collect();
        assert_eq!(unwrap_ec_point(&wrapped, 32), Some(&ed[..]));
    }

    #[test]
    fn rsa_sizes_count_significant_bits() {
        let mut modulus = vec![0u8; 385];
        modulus[1] = 0x80;
        assert_eq!(bit_length(&modulus), 3072);
        modulus[1] = 0x40;
        assert_eq!(bit_length(&modulus), 3071);
    }

    #[test]
    fn return_values_get_their_specification_names() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(ckr_name(RvError::DeviceRemoved), "CKR_DEVICE_REMOVED");
        assert_eq!(
            describe(&CkError::Pkcs11(
                RvError::SessionHandleInvalid,
                cryptoki::context::Function::Sign
            )),
            "C_Sign: CKR_SESSION_HANDLE_INVALID"
        );
    }

    #[test]
    fn pins_never_show() {
        let pin = Pkcs11Pin::new("123456".into());
        assert_eq!(format!("{pin:?}"), "Pkcs11Pin(..)");
        let config = Pkcs11Config {
            module: "/x.so".into(),
            token_label: "t".into(),
            key_label: "k".into(),
            pin,
            sessions: 1,
        };
        assert!(!format!("{config:?}").contains("123456"));
    }

    #[test]
    fn pin_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "1234\r\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Pkcs11Pin::from_file(&path),
            Err(KeyError::InsecurePermissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Pkcs11Pin::from_file(&path).unwrap().0.as_str(), "1234");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            Pkcs11Pin::from_file(&path),
            Err(KeyError::Pkcs11PinMissing { .. })
        ));
    }

    #[test]
    fn pins_from_the_environment_must_be_set() {
        let err = Pkcs11Pin::from_env("KEYS_TEST_PKCS11_PIN_NEVER_SET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no PKCS#11 user PIN: the environment variable KEYS_TEST_PKCS11_PIN_NEVER_SET \
             is unset or empty"
        );
    }
}
