//! A fault-injecting PKCS#11 module, **for tests only**: it stands between a PKCS#11 client
//! (`pkcs11-tool`, `ca-server` through cryptoki) and a real module (SoftHSM2 in the tests) and
//! makes the token look unplugged on demand, so that the end-to-end tests can check what the
//! HSM signer and its session pool do when the device goes away and comes back, which SoftHSM2
//! alone cannot show. Never configure it in production: it adds nothing but failures.
//!
//! It exports one symbol, `C_GetFunctionList`, whose `CK_FUNCTION_LIST` (PKCS#11 v2.40, the
//! version field the real module's) forwards every function to the real module's, except
//! that while the fault is on, the calls a signer makes return `CKR_DEVICE_REMOVED` (0x32)
//! without reaching the real module: `C_OpenSession`, `C_Login`, `C_SignInit`, `C_Sign`,
//! `C_SignUpdate`, `C_SignFinal`, `C_GetSessionInfo`, `C_FindObjectsInit` and
//! `C_GetTokenInfo`. Sessions the real module opened stay open in it, so switching the fault
//! off lets them work again (like a device that answers again).
//!
//! Environment, read by the process that loads the module:
//!
//! - `PKCS11_FAULT_MODULE`: the real module, loaded on the first `C_GetFunctionList`
//!   (default `/usr/lib/softhsm/libsofthsm2.so`);
//! - `PKCS11_FAULT_CONTROL`: a control file, read at every faultable call: the fault is on
//!   while the file exists and holds the word `device-removed`; without the variable it is
//!   never on;
//! - `PKCS11_FAULT_SIGN_DELAY_US`: microseconds that every signature takes at least, from its
//!   session's `C_SignInit` to the `C_Sign` that returns it (read once): that `C_Sign`
//!   sleeps, after the real module signed, for what remains of them, as a network HSM that
//!   takes that long per signature keeps its caller waiting without using its CPU; for the
//!   benchmarks of the signer's session pool.
//!
//! ```sh
//! export PKCS11_FAULT_CONTROL=/tmp/fault
//! pkcs11-tool --module target/release/libpkcs11_fault.so --list-slots      # works
//! echo device-removed > /tmp/fault                                          # unplugged
//! rm /tmp/fault                                                             # back
//! ```
//!
//! No exported function panics across the FFI boundary: every body runs under
//! `catch_unwind` and answers `CKR_GENERAL_ERROR` if it panicked anyway.

// The PKCS#11 names (`C_Sign`, `hSession`, ...) and its argument lists.
#![allow(non_snake_case, clippy::too_many_arguments)]

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use cryptoki_sys::*;

/// The real module when `PKCS11_FAULT_MODULE` is not set.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The word in the control file that switches the fault on.
pub const DEVICE_REMOVED: &str = "device-removed";

/// The real module, loaded once, and the function list this module hands out.
struct Module {
    /// Kept loaded for the life of the process (the function pointers below point into it).
    _library: libloading::Library,
    /// The real module's functions.
    real: CK_FUNCTION_LIST,
    /// Ours: the same entries (a function the real module lacks is absent here too), each a
    /// forwarder of this module.
    ours: CK_FUNCTION_LIST,
}

static MODULE: OnceLock<Result<Module, String>> = OnceLock::new();

/// Loads the real module and builds our list.
fn load() -> Result<Module, String> {
    let path = std::env::var_os("PKCS11_FAULT_MODULE").unwrap_or_else(|| DEFAULT_MODULE.into());
    let shown = std::path::Path::new(&path).display().to_string();
    // SAFETY: loading a PKCS#11 module runs its initialisers, which is what loading it means.
    let library = unsafe { libloading::Library::new(&path) }
        .map_err(|e| format!("loading the real module {shown}: {e}"))?;
    // SAFETY: `C_GetFunctionList` has this type in every PKCS#11 module.
    let get: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
        unsafe { library.get(b"C_GetFunctionList\0") }
            .map_err(|e| format!("{shown} has no C_GetFunctionList: {e}"))?;
    let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
    // SAFETY: `list` is a valid place for the pointer.
    let rv = unsafe { get(&mut list) };
    if rv != CKR_OK || list.is_null() {
        return Err(format!("{shown}: C_GetFunctionList returned {rv:#x}"));
    }
    // SAFETY: a module's list stays valid while the module is loaded, which is for ever here.
    let real = unsafe { *list };
    let ours = our_list(&real);
    Ok(Module {
        _library: library,
        real,
        ours,
    })
}

/// The real module's function list, once `C_GetFunctionList` loaded it (nobody can call a
/// forwarder before).
fn real() -> Option<&'static CK_FUNCTION_LIST> {
    MODULE.get()?.as_ref().ok().map(|m| &m.real)
}

/// Whether the fault is on: the control file exists and holds `device-removed`.
fn fault_on() -> bool {
    let Some(control) = std::env::var_os("PKCS11_FAULT_CONTROL") else {
        return false;
    };
    match std::fs::read(control) {
        Ok(bytes) => String::from_utf8_lossy(&bytes)
            .split_whitespace()
            .any(|word| word == DEVICE_REMOVED),
        Err(_) => false,
    }
}

/// The sleep of each `C_Sign` that produces a signature (`PKCS11_FAULT_SIGN_DELAY_US`).
fn sign_delay() -> Option<std::time::Duration> {
    static DELAY: OnceLock<Option<std::time::Duration>> = OnceLock::new();
    *DELAY.get_or_init(|| {
        let micros: u64 = std::env::var("PKCS11_FAULT_SIGN_DELAY_US")
            .ok()?
            .parse()
            .ok()?;
        (micros > 0).then(|| std::time::Duration::from_micros(micros))
    })
}

/// When each session's signing operation began (its last `C_SignInit`).
type SignStarts =
    std::sync::Mutex<std::collections::HashMap<CK_SESSION_HANDLE, std::time::Instant>>;

/// [`SignStarts`] of this process, kept while a sign delay is set.
fn sign_started() -> &'static SignStarts {
    static STARTED: OnceLock<SignStarts> = OnceLock::new();
    STARTED.get_or_init(Default::default)
}

/// Runs an exported function's body, never letting a panic cross the FFI boundary.
fn guarded(body: impl FnOnce() -> CK_RV) -> CK_RV {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(CKR_GENERAL_ERROR)
}

/// Returns this module's function list (PKCS#11 v2.40 `C_GetFunctionList`), loading the real
/// module on the first call.
///
/// # Safety
///
/// `ppFunctionList` must be null or point to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV {
    guarded(|| {
        if ppFunctionList.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        match MODULE.get_or_init(load) {
            Ok(module) => {
                // SAFETY: checked non-null; the caller provides the place. The list is never
                // written through this pointer (PKCS#11 lists are read-only by convention).
                unsafe { *ppFunctionList = &module.ours as *const CK_FUNCTION_LIST as *mut _ };
                CKR_OK
            }
            Err(message) => {
                let _ = writeln!(std::io::stderr(), "pkcs11-fault: {message}");
                CKR_GENERAL_ERROR
            }
        }
    })
}

/// Defines one forwarder per PKCS#11 function (those marked `fault`, `start` or `slow`
/// answer `CKR_DEVICE_REMOVED` while the fault is on; `start`, `C_SignInit`, starts a
/// signature's time and `slow`, `C_Sign`, makes it last at least [`sign_delay`]) and [`our_list`], which puts them in a
/// `CK_FUNCTION_LIST`: the list's field types check each forwarder's signature against the
/// PKCS#11 header's.
macro_rules! forwarders {
    ($( $fault:ident $name:ident ( $( $arg:ident : $ty:ty ),* ); )*) => {
        $(
            unsafe extern "C" fn $name( $( $arg: $ty ),* ) -> CK_RV {
                guarded(|| {
                    if forwarders!(@faultable $fault) && fault_on() {
                        return CKR_DEVICE_REMOVED;
                    }
                    let started = std::time::Instant::now();
                    let rv = match real().and_then(|list| list.$name) {
                        // SAFETY: the caller's arguments, passed on unchanged to the real
                        // module's function of the same signature.
                        Some(function) => unsafe { function( $( $arg ),* ) },
                        None => CKR_FUNCTION_NOT_SUPPORTED,
                    };
                    forwarders!(@delay $fault, started, $( $arg ),* );
                    rv
                })
            }
        )*

        /// Our list: the real module's version and, for every function it has, ours.
        fn our_list(real: &CK_FUNCTION_LIST) -> CK_FUNCTION_LIST {
            CK_FUNCTION_LIST {
                version: real.version,
                C_GetFunctionList: Some(C_GetFunctionList),
                $( $name: if real.$name.is_some() { Some($name) } else { None }, )*
            }
        }
    };
    (@faultable fault) => { true };
    (@faultable start) => { true };
    (@faultable slow) => { true };
    (@faultable pass) => { false };
    // `C_Sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen)`: a call with a
    // signature buffer (not the length query) lasts at least the device's time.
    // `C_SignInit(hSession, ...)` starts the signature's time.
    (@delay start, $started:ident, $session:ident, $( $arg:ident ),* ) => {
        if sign_delay().is_some() {
            let mut started = sign_started().lock().unwrap_or_else(|e| e.into_inner());
            started.insert($session, $started);
        }
    };
    (@delay slow, $started:ident, $session:ident, $data:ident, $len:ident, $signature:ident,
        $out:ident) => {
        if !$signature.is_null() {
            if let Some(delay) = sign_delay() {
                let began = sign_started()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&$session)
                    .unwrap_or($started);
                std::thread::sleep(delay.saturating_sub(began.elapsed()));
            }
        }
    };
    (@delay $other:ident, $started:ident, $( $arg:ident ),* ) => {
        let _ = $started;
    };
}

forwarders! {
    pass C_Initialize(pInitArgs: CK_VOID_PTR);
    pass C_Finalize(pReserved: CK_VOID_PTR);
    pass C_GetInfo(pInfo: CK_INFO_PTR);
    pass C_GetSlotList(tokenPresent: CK_BBOOL, pSlotList: CK_SLOT_ID_PTR, pulCount: CK_ULONG_PTR);
    pass C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: CK_SLOT_INFO_PTR);
    fault C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: CK_TOKEN_INFO_PTR);
    pass C_GetMechanismList(
        slotID: CK_SLOT_ID,
        pMechanismList: CK_MECHANISM_TYPE_PTR,
        pulCount: CK_ULONG_PTR
    );
    pass C_GetMechanismInfo(
        slotID: CK_SLOT_ID,
        mechanismType: CK_MECHANISM_TYPE,
        pInfo: CK_MECHANISM_INFO_PTR
    );
    pass C_InitToken(
        slotID: CK_SLOT_ID,
        pPin: CK_UTF8CHAR_PTR,
        ulPinLen: CK_ULONG,
        pLabel: CK_UTF8CHAR_PTR
    );
    pass C_InitPIN(hSession: CK_SESSION_HANDLE, pPin: CK_UTF8CHAR_PTR, ulPinLen: CK_ULONG);
    pass C_SetPIN(
        hSession: CK_SESSION_HANDLE,
        pOldPin: CK_UTF8CHAR_PTR,
        ulOldLen: CK_ULONG,
        pNewPin: CK_UTF8CHAR_PTR,
        ulNewLen: CK_ULONG
    );
    fault C_OpenSession(
        slotID: CK_SLOT_ID,
        flags: CK_FLAGS,
        pApplication: CK_VOID_PTR,
        Notify: CK_NOTIFY,
        phSession: CK_SESSION_HANDLE_PTR
    );
    pass C_CloseSession(hSession: CK_SESSION_HANDLE);
    pass C_CloseAllSessions(slotID: CK_SLOT_ID);
    fault C_GetSessionInfo(hSession: CK_SESSION_HANDLE, pInfo: CK_SESSION_INFO_PTR);
    pass C_GetOperationState(
        hSession: CK_SESSION_HANDLE,
        pOperationState: CK_BYTE_PTR,
        pulOperationStateLen: CK_ULONG_PTR
    );
    pass C_SetOperationState(
        hSession: CK_SESSION_HANDLE,
        pOperationState: CK_BYTE_PTR,
        ulOperationStateLen: CK_ULONG,
        hEncryptionKey: CK_OBJECT_HANDLE,
        hAuthenticationKey: CK_OBJECT_HANDLE
    );
    fault C_Login(
        hSession: CK_SESSION_HANDLE,
        userType: CK_USER_TYPE,
        pPin: CK_UTF8CHAR_PTR,
        ulPinLen: CK_ULONG
    );
    pass C_Logout(hSession: CK_SESSION_HANDLE);
    pass C_CreateObject(
        hSession: CK_SESSION_HANDLE,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulCount: CK_ULONG,
        phObject: CK_OBJECT_HANDLE_PTR
    );
    pass C_CopyObject(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulCount: CK_ULONG,
        phNewObject: CK_OBJECT_HANDLE_PTR
    );
    pass C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE);
    pass C_GetObjectSize(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pulSize: CK_ULONG_PTR
    );
    pass C_GetAttributeValue(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulCount: CK_ULONG
    );
    pass C_SetAttributeValue(
        hSession: CK_SESSION_HANDLE,
        hObject: CK_OBJECT_HANDLE,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulCount: CK_ULONG
    );
    fault C_FindObjectsInit(
        hSession: CK_SESSION_HANDLE,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulCount: CK_ULONG
    );
    pass C_FindObjects(
        hSession: CK_SESSION_HANDLE,
        phObject: CK_OBJECT_HANDLE_PTR,
        ulMaxObjectCount: CK_ULONG,
        pulObjectCount: CK_ULONG_PTR
    );
    pass C_FindObjectsFinal(hSession: CK_SESSION_HANDLE);
    pass C_EncryptInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hKey: CK_OBJECT_HANDLE
    );
    pass C_Encrypt(
        hSession: CK_SESSION_HANDLE,
        pData: CK_BYTE_PTR,
        ulDataLen: CK_ULONG,
        pEncryptedData: CK_BYTE_PTR,
        pulEncryptedDataLen: CK_ULONG_PTR
    );
    pass C_EncryptUpdate(
        hSession: CK_SESSION_HANDLE,
        pPart: CK_BYTE_PTR,
        ulPartLen: CK_ULONG,
        pEncryptedPart: CK_BYTE_PTR,
        pulEncryptedPartLen: CK_ULONG_PTR
    );
    pass C_EncryptFinal(
        hSession: CK_SESSION_HANDLE,
        pLastEncryptedPart: CK_BYTE_PTR,
        pulLastEncryptedPartLen: CK_ULONG_PTR
    );
    pass C_DecryptInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hKey: CK_OBJECT_HANDLE
    );
    pass C_Decrypt(
        hSession: CK_SESSION_HANDLE,
        pEncryptedData: CK_BYTE_PTR,
        ulEncryptedDataLen: CK_ULONG,
        pData: CK_BYTE_PTR,
        pulDataLen: CK_ULONG_PTR
    );
    pass C_DecryptUpdate(
        hSession: CK_SESSION_HANDLE,
        pEncryptedPart: CK_BYTE_PTR,
        ulEncryptedPartLen: CK_ULONG,
        pPart: CK_BYTE_PTR,
        pulPartLen: CK_ULONG_PTR
    );
    pass C_DecryptFinal(
        hSession: CK_SESSION_HANDLE,
        pLastPart: CK_BYTE_PTR,
        pulLastPartLen: CK_ULONG_PTR
    );
    pass C_DigestInit(hSession: CK_SESSION_HANDLE, pMechanism: CK_MECHANISM_PTR);
    pass C_Digest(
        hSession: CK_SESSION_HANDLE,
        pData: CK_BYTE_PTR,
        ulDataLen: CK_ULONG,
        pDigest: CK_BYTE_PTR,
        pulDigestLen: CK_ULONG_PTR
    );
    pass C_DigestUpdate(hSession: CK_SESSION_HANDLE, pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG);
    pass C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE);
    pass C_DigestFinal(
        hSession: CK_SESSION_HANDLE,
        pDigest: CK_BYTE_PTR,
        pulDigestLen: CK_ULONG_PTR
    );
    start C_SignInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hKey: CK_OBJECT_HANDLE
    );
    slow C_Sign(
        hSession: CK_SESSION_HANDLE,
        pData: CK_BYTE_PTR,
        ulDataLen: CK_ULONG,
        pSignature: CK_BYTE_PTR,
        pulSignatureLen: CK_ULONG_PTR
    );
    fault C_SignUpdate(hSession: CK_SESSION_HANDLE, pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG);
    fault C_SignFinal(
        hSession: CK_SESSION_HANDLE,
        pSignature: CK_BYTE_PTR,
        pulSignatureLen: CK_ULONG_PTR
    );
    pass C_SignRecoverInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hKey: CK_OBJECT_HANDLE
    );
    pass C_SignRecover(
        hSession: CK_SESSION_HANDLE,
        pData: CK_BYTE_PTR,
        ulDataLen: CK_ULONG,
        pSignature: CK_BYTE_PTR,
        pulSignatureLen: CK_ULONG_PTR
    );
    pass C_VerifyInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hKey: CK_OBJECT_HANDLE
    );
    pass C_Verify(
        hSession: CK_SESSION_HANDLE,
        pData: CK_BYTE_PTR,
        ulDataLen: CK_ULONG,
        pSignature: CK_BYTE_PTR,
        ulSignatureLen: CK_ULONG
    );
    pass C_VerifyUpdate(hSession: CK_SESSION_HANDLE, pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG);
    pass C_VerifyFinal(
        hSession: CK_SESSION_HANDLE,
        pSignature: CK_BYTE_PTR,
        ulSignatureLen: CK_ULONG
    );
    pass C_VerifyRecoverInit(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hKey: CK_OBJECT_HANDLE
    );
    pass C_VerifyRecover(
        hSession: CK_SESSION_HANDLE,
        pSignature: CK_BYTE_PTR,
        ulSignatureLen: CK_ULONG,
        pData: CK_BYTE_PTR,
        pulDataLen: CK_ULONG_PTR
    );
    pass C_DigestEncryptUpdate(
        hSession: CK_SESSION_HANDLE,
        pPart: CK_BYTE_PTR,
        ulPartLen: CK_ULONG,
        pEncryptedPart: CK_BYTE_PTR,
        pulEncryptedPartLen: CK_ULONG_PTR
    );
    pass C_DecryptDigestUpdate(
        hSession: CK_SESSION_HANDLE,
        pEncryptedPart: CK_BYTE_PTR,
        ulEncryptedPartLen: CK_ULONG,
        pPart: CK_BYTE_PTR,
        pulPartLen: CK_ULONG_PTR
    );
    pass C_SignEncryptUpdate(
        hSession: CK_SESSION_HANDLE,
        pPart: CK_BYTE_PTR,
        ulPartLen: CK_ULONG,
        pEncryptedPart: CK_BYTE_PTR,
        pulEncryptedPartLen: CK_ULONG_PTR
    );
    pass C_DecryptVerifyUpdate(
        hSession: CK_SESSION_HANDLE,
        pEncryptedPart: CK_BYTE_PTR,
        ulEncryptedPartLen: CK_ULONG,
        pPart: CK_BYTE_PTR,
        pulPartLen: CK_ULONG_PTR
    );
    pass C_GenerateKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulCount: CK_ULONG,
        phKey: CK_OBJECT_HANDLE_PTR
    );
    pass C_GenerateKeyPair(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        pPublicKeyTemplate: CK_ATTRIBUTE_PTR,
        ulPublicKeyAttributeCount: CK_ULONG,
        pPrivateKeyTemplate: CK_ATTRIBUTE_PTR,
        ulPrivateKeyAttributeCount: CK_ULONG,
        phPublicKey: CK_OBJECT_HANDLE_PTR,
        phPrivateKey: CK_OBJECT_HANDLE_PTR
    );
    pass C_WrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hWrappingKey: CK_OBJECT_HANDLE,
        hKey: CK_OBJECT_HANDLE,
        pWrappedKey: CK_BYTE_PTR,
        pulWrappedKeyLen: CK_ULONG_PTR
    );
    pass C_UnwrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hUnwrappingKey: CK_OBJECT_HANDLE,
        pWrappedKey: CK_BYTE_PTR,
        ulWrappedKeyLen: CK_ULONG,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulAttributeCount: CK_ULONG,
        phKey: CK_OBJECT_HANDLE_PTR
    );
    pass C_DeriveKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hBaseKey: CK_OBJECT_HANDLE,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulAttributeCount: CK_ULONG,
        phKey: CK_OBJECT_HANDLE_PTR
    );
    pass C_SeedRandom(hSession: CK_SESSION_HANDLE, pSeed: CK_BYTE_PTR, ulSeedLen: CK_ULONG);
    pass C_GenerateRandom(
        hSession: CK_SESSION_HANDLE,
        RandomData: CK_BYTE_PTR,
        ulRandomLen: CK_ULONG
    );
    pass C_GetFunctionStatus(hSession: CK_SESSION_HANDLE);
    pass C_CancelFunction(hSession: CK_SESSION_HANDLE);
    pass C_WaitForSlotEvent(flags: CK_FLAGS, pSlot: CK_SLOT_ID_PTR, pReserved: CK_VOID_PTR);
}

#[cfg(test)]
mod tests;
