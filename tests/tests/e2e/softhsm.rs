//! The HSM harness itself (`e2e_tests::softhsm`): a SoftHSM2 token made and looked into, the
//! fault-injecting PKCS#11 module (`tests/pkcs11-fault/`) driven by OpenSC's `pkcs11-tool` as
//! any PKCS#11 client would drive it, and the search for private key material in files, with
//! its negative controls. The server's own HSM tests build on these.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use e2e_tests::prelude::*;
use e2e_tests::softhsm::*;

const PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// Asserts that `pkcs11-tool` succeeded; returns its stdout and stderr.
fn ok(out: std::process::Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// `pkcs11-tool --keypairgen` of an EC P-256 key labelled `label`, id 01, on the token.
fn generate_key(hsm: &SoftHsm, token: &str, label: &str) {
    let out = hsm.pkcs11_tool(
        &hsm.module_path(),
        &[],
        &[
            "--token-label",
            token,
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            label,
            "--id",
            "01",
        ],
    );
    ok(out, "pkcs11-tool --keypairgen");
}

#[test]
fn a_token_is_made_listed_and_emptied_in_a_store_of_its_own() {
    let hsm = SoftHsm::new();
    let conf = std::fs::read_to_string(hsm.conf_path()).expect("softhsm2.conf");
    assert!(
        conf.contains(&format!(
            "directories.tokendir = {}",
            hsm.dir().join("tokens").display()
        )),
        "{conf}"
    );
    hsm.init_token("e2e-list", PIN, SO_PIN);
    assert_eq!(hsm.list_objects("e2e-list", PIN).trim(), "", "a new token");

    generate_key(&hsm, "e2e-list", "ca-key");
    let objects = hsm.list_objects("e2e-list", PIN);
    assert!(
        objects.contains("Private Key Object; EC") && objects.contains("ca-key"),
        "{objects}"
    );

    let out = hsm.pkcs11_tool(
        &hsm.module_path(),
        &[],
        &[
            "--token-label",
            "e2e-list",
            "--login",
            "--pin",
            PIN,
            "--delete-object",
            "--type",
            "privkey",
            "--label",
            "ca-key",
        ],
    );
    ok(out, "pkcs11-tool --delete-object");
    let objects = hsm.list_objects("e2e-list", PIN);
    assert!(
        !objects.contains("Private Key Object"),
        "the private key was destroyed: {objects}"
    );

    let pin_file = hsm.write_pin_file(PIN);
    assert_eq!(std::fs::read_to_string(&pin_file).unwrap(), PIN);
    let mode = std::fs::metadata(&pin_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", pin_file.display());

    let dir = hsm.dir().to_path_buf();
    drop(hsm);
    assert!(!dir.exists(), "{} outlived its SoftHsm", dir.display());
}

/// `pkcs11-tool --slot SLOT --login --sign` of 32 bytes with the key of id 01 through `module`
/// (opens a session, logs in, finds the key, signs: a signer's calls).
fn sign(hsm: &SoftHsm, module: &Path, env: &[(&str, std::ffi::OsString)], slot: u64) -> Output {
    let input = hsm.dir().join("to-sign");
    std::fs::write(&input, [7u8; 32]).unwrap();
    let output = hsm.dir().join("signature");
    let _ = std::fs::remove_file(&output);
    hsm.pkcs11_tool(
        module,
        env,
        &[
            "--slot",
            &slot.to_string(),
            "--login",
            "--pin",
            PIN,
            "--sign",
            "--mechanism",
            "ECDSA",
            "--id",
            "01",
            "--input-file",
            input.to_str().unwrap(),
            "--output-file",
            output.to_str().unwrap(),
        ],
    )
}

#[test]
fn the_fault_module_removes_the_device_while_switched_on() {
    let hsm = SoftHsm::new();
    let slot = hsm.init_token("e2e-fault", PIN, SO_PIN);
    generate_key(&hsm, "e2e-fault", "ca-key");
    let fault = hsm.fault();
    let module = fault.module_path();
    let env = fault.env();
    let list_slots = || {
        ok(
            hsm.pkcs11_tool(&module, &env, &["--list-slots"]),
            "--list-slots",
        )
    };

    // Switched off: everything passes through to SoftHSM2.
    let slots = list_slots();
    assert!(
        slots.contains("e2e-fault") && !slots.contains("CKR_DEVICE_REMOVED"),
        "{slots}"
    );
    let signed = ok(
        sign(&hsm, &module, &env, slot),
        "signing through the fault module",
    );
    let signature = std::fs::read(hsm.dir().join("signature")).unwrap();
    assert_eq!(signature.len(), 64, "an ECDSA P-256 signature: {signed}");

    // Switched on: the token is gone for every client call that needs it.
    fault.remove_device();
    assert!(fault.device_removed());
    let slots = list_slots();
    assert!(
        slots.contains("CKR_DEVICE_REMOVED") && !slots.contains("e2e-fault"),
        "the slots are listed, their tokens are not: {slots}"
    );
    let out = sign(&hsm, &module, &env, slot);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains("CKR_DEVICE_REMOVED (0x32)"),
        "signing with the device removed ({}): {text}",
        out.status
    );
    // SoftHSM2's own module is not affected.
    assert!(hsm.list_objects("e2e-fault", PIN).contains("ca-key"));

    // Switched off again: back to normal.
    fault.reinsert_device();
    assert!(!fault.device_removed());
    assert!(!fault.control_path().exists());
    let slots = list_slots();
    assert!(
        slots.contains("e2e-fault") && !slots.contains("CKR_DEVICE_REMOVED"),
        "{slots}"
    );
    ok(
        sign(&hsm, &module, &env, slot),
        "signing after the device is back",
    );
}

#[test]
fn private_key_material_is_found_in_key_files_and_nowhere_else() {
    // An Ed25519 CA that served, issued and published a CRL (whose TBSCertList starts like
    // an Ed25519 PKCS#8 key): its key files, and only those, hold keys.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    init_ca(&dir, "ed25519");
    let s = Server::serve(&dir);
    s.issue(&server_csr("keys.example.com"), "tls-server", None);
    s.generate_crl();
    let crl = s.crl();
    s.terminate();
    let found: Vec<String> = private_key_material(&dir)
        .into_iter()
        .map(|(file, _)| file.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    let mut key_files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with("-key.pem"))
        .collect();
    key_files.sort();
    assert!(
        key_files.contains(&"ca-key.pem".to_string()),
        "{key_files:?}"
    );
    assert_eq!(
        found,
        key_files,
        "files with private key material in {}",
        dir.display()
    );
    assert_eq!(find_private_key_material(&crl), None, "an Ed25519 CRL");
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    for (label, der) in pem_blocks(&ca_pem) {
        assert_eq!(find_private_key_material(&der), None, "{label} of ca.pem");
    }

    // Each form of key a server could write, found in PEM, and in DER even inside other bytes.
    let work = tmp.path().join("forms");
    std::fs::create_dir(&work).unwrap();
    let genpkey = |name: &str, args: &[&str]| {
        let file = work.join(name);
        let mut all = vec!["genpkey"];
        all.extend_from_slice(args);
        all.extend(["-out", file.to_str().unwrap()]);
        openssl(&all);
        file
    };
    let ec = genpkey(
        "ec.pem",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let rsa = genpkey("rsa.pem", &["-algorithm", "RSA"]);
    let ed = genpkey("ed.pem", &["-algorithm", "ED25519"]);
    let der = |args: &[&str], name: &str| -> Vec<u8> {
        let out = work.join(name);
        let mut all = args.to_vec();
        all.extend(["-outform", "DER", "-out", out.to_str().unwrap()]);
        openssl(&all);
        std::fs::read(&out).unwrap()
    };
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let forms = [
        ("PKCS#8 EC", der(&["pkey", "-in", &path(&ec)], "p8-ec.der")),
        (
            "PKCS#8 RSA",
            der(&["pkey", "-in", &path(&rsa)], "p8-rsa.der"),
        ),
        (
            "PKCS#8 Ed25519",
            der(&["pkey", "-in", &path(&ed)], "p8-ed.der"),
        ),
        ("SEC1", der(&["ec", "-in", &path(&ec)], "sec1.der")),
        (
            "PKCS#1",
            der(&["rsa", "-traditional", "-in", &path(&rsa)], "p1.der"),
        ),
    ];
    for (name, bytes) in &forms {
        let mut embedded = b"some bytes before".to_vec();
        embedded.extend_from_slice(bytes);
        embedded.extend_from_slice(b"and after");
        assert!(
            find_private_key_material(&embedded).is_some(),
            "{name} key not found"
        );
    }
    for file in [&ec, &rsa, &ed] {
        let text = std::fs::read(file).unwrap();
        assert_eq!(
            find_private_key_material(&text),
            Some("a PEM private key"),
            "{}",
            file.display()
        );
    }
}
