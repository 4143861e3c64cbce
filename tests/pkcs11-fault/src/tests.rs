//! The module driven in-process through its own function list against a temporary SoftHSM2
//! token, as a signer drives it: every faultable call fails while the control file says
//! `device-removed`, the others pass, and a session opened before the fault signs again after
//! it. (`tests/tests/e2e/softhsm.rs` drives the built `.so` with `pkcs11-tool`.)
//!
//! One test function only: the module reads process-wide environment variables, which this
//! test sets.

use std::path::Path;
use std::process::Command;
use std::ptr::null_mut;

use super::*;

const LABEL: &str = "fault-unit";
const PIN: &str = "1234";

/// The function list a client gets from `C_GetFunctionList`.
fn list() -> &'static CK_FUNCTION_LIST {
    let mut list: CK_FUNCTION_LIST_PTR = null_mut();
    // SAFETY: a valid place for the pointer.
    assert_eq!(unsafe { C_GetFunctionList(&mut list) }, CKR_OK);
    assert!(!list.is_null());
    // SAFETY: the list lives in a static.
    unsafe { &*list }
}

/// The real module's own list, loaded independently.
fn real_version() -> CK_VERSION {
    // SAFETY: loading SoftHSM2 and calling its C_GetFunctionList.
    unsafe {
        let library = libloading::Library::new(DEFAULT_MODULE).expect("loading SoftHSM2");
        let get: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
            library
                .get(b"C_GetFunctionList\0")
                .expect("C_GetFunctionList");
        let mut list: CK_FUNCTION_LIST_PTR = null_mut();
        assert_eq!(get(&mut list), CKR_OK);
        let version = (*list).version;
        std::mem::forget(library);
        version
    }
}

fn init_token(conf: &Path) {
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", LABEL, "--pin", PIN])
        .args(["--so-pin", "5678"])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("running softhsm2-util (scripts/setup.sh installs softhsm2)");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The slot that holds our token.
fn our_slot(f: &CK_FUNCTION_LIST) -> CK_SLOT_ID {
    let mut slots = [0 as CK_SLOT_ID; 16];
    let mut count = slots.len() as CK_ULONG;
    // SAFETY: buffers of the stated sizes.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, slots.as_mut_ptr(), &mut count) };
    assert_eq!(rv, CKR_OK, "C_GetSlotList");
    slots[..count as usize]
        .iter()
        .copied()
        .find(|&slot| {
            // SAFETY: CK_TOKEN_INFO is plain data.
            let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            let rv = unsafe { f.C_GetTokenInfo.unwrap()(slot, &mut info) };
            rv == CKR_OK && String::from_utf8_lossy(&info.label).trim_end() == LABEL
        })
        .expect("a slot with the test token")
}

/// An ECDSA P-256 signature of 32 bytes by `key` in `session`: the return values of
/// `C_SignInit` and `C_Sign`.
fn sign(f: &CK_FUNCTION_LIST, session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    // SAFETY: valid mechanism, key handle from the module.
    let rv = unsafe { f.C_SignInit.unwrap()(session, &mut mechanism, key) };
    if rv != CKR_OK {
        return rv;
    }
    let mut digest = [7u8; 32];
    let mut signature = [0u8; 128];
    let mut length = signature.len() as CK_ULONG;
    // SAFETY: buffers of the stated sizes.
    let rv = unsafe {
        f.C_Sign.unwrap()(
            session,
            digest.as_mut_ptr(),
            digest.len() as CK_ULONG,
            signature.as_mut_ptr(),
            &mut length,
        )
    };
    if rv == CKR_OK {
        assert_eq!(length, 64, "an ECDSA P-256 signature is r || s");
    }
    rv
}

fn attribute(type_: CK_ATTRIBUTE_TYPE, value: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_,
        pValue: value.as_mut_ptr().cast(),
        ulValueLen: value.len() as CK_ULONG,
    }
}

/// A session key pair (not stored on the token): the private key's handle.
fn generate_key(f: &CK_FUNCTION_LIST, session: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    // prime256v1, as a DER OID.
    let mut curve = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (mut yes, mut yes2, mut no, mut no2) = ([CK_TRUE], [CK_TRUE], [0u8], [0u8]);
    let mut public = [
        attribute(CKA_EC_PARAMS, &mut curve),
        attribute(CKA_VERIFY, &mut yes),
        attribute(CKA_TOKEN, &mut no),
    ];
    let mut private = [
        attribute(CKA_SIGN, &mut yes2),
        attribute(CKA_TOKEN, &mut no2),
    ];
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_EC_KEY_PAIR_GEN,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let (mut public_key, mut private_key) = (0, 0);
    // SAFETY: templates and out-pointers valid for the call.
    let rv = unsafe {
        f.C_GenerateKeyPair.unwrap()(
            session,
            &mut mechanism,
            public.as_mut_ptr(),
            public.len() as CK_ULONG,
            private.as_mut_ptr(),
            private.len() as CK_ULONG,
            &mut public_key,
            &mut private_key,
        )
    };
    assert_eq!(rv, CKR_OK, "C_GenerateKeyPair");
    private_key
}

/// What every faultable function returns, called with valid arguments where that is easy (a
/// fault that does not hold reaches SoftHSM2 with arguments it can check).
fn faultable_calls(
    f: &CK_FUNCTION_LIST,
    slot: CK_SLOT_ID,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> Vec<(&'static str, CK_RV)> {
    let mut pin = PIN.as_bytes().to_vec();
    let mut buffer = [0u8; 128];
    let mut length = buffer.len() as CK_ULONG;
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    // SAFETY: plain data.
    let mut token_info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    let mut session_info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
    let mut new_session = 0;
    // SAFETY: every pointer is valid for the call.
    unsafe {
        vec![
            (
                "C_OpenSession",
                f.C_OpenSession.unwrap()(
                    slot,
                    CKF_SERIAL_SESSION,
                    null_mut(),
                    None,
                    &mut new_session,
                ),
            ),
            (
                "C_Login",
                f.C_Login.unwrap()(session, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG),
            ),
            (
                "C_SignInit",
                f.C_SignInit.unwrap()(session, &mut mechanism, key),
            ),
            (
                "C_Sign",
                f.C_Sign.unwrap()(session, buffer.as_mut_ptr(), 32, null_mut(), &mut length),
            ),
            (
                "C_SignUpdate",
                f.C_SignUpdate.unwrap()(session, buffer.as_mut_ptr(), 32),
            ),
            (
                "C_SignFinal",
                f.C_SignFinal.unwrap()(session, buffer.as_mut_ptr(), &mut length),
            ),
            (
                "C_GetSessionInfo",
                f.C_GetSessionInfo.unwrap()(session, &mut session_info),
            ),
            (
                "C_FindObjectsInit",
                f.C_FindObjectsInit.unwrap()(session, null_mut(), 0),
            ),
            (
                "C_GetTokenInfo",
                f.C_GetTokenInfo.unwrap()(slot, &mut token_info),
            ),
        ]
    }
}

#[test]
fn signer_calls_fail_while_the_control_file_says_device_removed() {
    assert!(
        Path::new(DEFAULT_MODULE).is_file(),
        "{DEFAULT_MODULE} is missing: run scripts/setup.sh (installs softhsm2)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).expect("tokens dir");
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    init_token(&conf);
    let control = tmp.path().join("fault");
    // The only test in this binary: nothing else reads the environment concurrently.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    std::env::set_var("PKCS11_FAULT_CONTROL", &control);
    std::env::remove_var("PKCS11_FAULT_MODULE");

    let f = list();
    assert_eq!(
        (f.version.major, f.version.minor),
        (real_version().major, real_version().minor),
        "the list carries the real module's version"
    );
    assert_eq!(
        f.C_GetFunctionList.map(|p| p as *const ()),
        Some(C_GetFunctionList as *const ()),
        "the list's C_GetFunctionList is ours"
    );
    // SAFETY: no arguments (single-threaded use, no mutexes needed).
    assert_eq!(unsafe { f.C_Initialize.unwrap()(null_mut()) }, CKR_OK);

    // Without a control file: a signer's life, all forwarded.
    let slot = our_slot(f);
    let mut session = 0;
    let mut pin = PIN.as_bytes().to_vec();
    // SAFETY: valid out-pointer and PIN buffer.
    unsafe {
        let rv = f.C_OpenSession.unwrap()(
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            null_mut(),
            None,
            &mut session,
        );
        assert_eq!(rv, CKR_OK, "C_OpenSession");
        let rv = f.C_Login.unwrap()(session, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG);
        assert_eq!(rv, CKR_OK, "C_Login");
    }
    let key = generate_key(f, session);
    assert_eq!(sign(f, session, key), CKR_OK, "signing with no fault");

    // Fault on: every call a signer makes fails, before reaching SoftHSM2.
    std::fs::write(&control, "device-removed\n").expect("writing the control file");
    for (name, rv) in faultable_calls(f, slot, session, key) {
        assert_eq!(rv, CKR_DEVICE_REMOVED, "{name} while the device is removed");
    }
    // The others still pass through.
    let mut count: CK_ULONG = 0;
    // SAFETY: a null list asks for the count.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, null_mut(), &mut count) };
    assert_eq!(
        (rv, count > 0),
        (CKR_OK, true),
        "C_GetSlotList is not faulted"
    );

    // Another word in the file is no fault.
    std::fs::write(&control, "nothing\n").expect("writing the control file");
    assert_eq!(sign(f, session, key), CKR_OK, "signing with another word");

    // Fault on again, then the file removed: the session opened before signs again.
    std::fs::write(&control, "device-removed").expect("writing the control file");
    assert_eq!(sign(f, session, key), CKR_DEVICE_REMOVED);
    std::fs::remove_file(&control).expect("removing the control file");
    assert_eq!(sign(f, session, key), CKR_OK, "signing after the fault");
    // SAFETY: plain data out-pointer.
    let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { f.C_GetSessionInfo.unwrap()(session, &mut info) },
        CKR_OK
    );
    assert_eq!(info.state, CKS_RW_USER_FUNCTIONS, "still logged in");

    // SAFETY: the session is ours; then the library is finalised.
    unsafe {
        assert_eq!(f.C_CloseSession.unwrap()(session), CKR_OK);
        assert_eq!(f.C_Finalize.unwrap()(null_mut()), CKR_OK);
    }
}
