//! HSM keys under test: a SoftHSM2 token store of its own per test ([`SoftHsm`]), looked into
//! with OpenSC's `pkcs11-tool`; the fault-injecting module `tests/pkcs11-fault/`
//! ([`Pkcs11Fault`], [`pkcs11_fault_module`]), which makes the token look unplugged on demand;
//! and the search of a directory for private key material ([`private_key_material`]), for
//! "the CA key never touches the disk".
//!
//! SoftHSM2 and `pkcs11-tool` are Debian's `softhsm2` and `opensc`, which `scripts/setup.sh`
//! installs. Nothing here changes the test process's environment: `SOFTHSM2_CONF` and the
//! fault module's variables go to child processes only ([`SoftHsm::env`],
//! [`Pkcs11Fault::env`]), so tests with tokens of their own run side by side.
//!
//! ```no_run
//! use e2e_tests::softhsm::SoftHsm;
//! let hsm = SoftHsm::new();
//! let slot = hsm.init_token("ca", "1234", "5678");
//! let pin_file = hsm.write_pin_file("1234");
//! // a server child gets hsm.env() (SOFTHSM2_CONF) and names hsm.module_path(), slot or
//! // label "ca" and pin_file in its configuration
//! assert!(hsm.list_objects("ca", "1234").trim().is_empty());
//! let fault = hsm.fault();
//! // a server child gets fault.env() and names fault.module_path() as its module instead
//! fault.remove_device(); // its signer's calls now fail with CKR_DEVICE_REMOVED
//! fault.reinsert_device(); // and work again
//! # let _ = (slot, pin_file);
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::binary::profile_dir;
use crate::command::{output_within, COMMAND_DEADLINE};
use crate::unique;

/// SoftHSM2's PKCS#11 module, as Debian installs it.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// What the fault module's control file holds while the device is "removed".
pub const DEVICE_REMOVED: &str = "device-removed";

/// SoftHSM2's PKCS#11 module, asserting that it is installed.
pub fn softhsm_module() -> PathBuf {
    let module = PathBuf::from(SOFTHSM_MODULE);
    assert!(
        module.is_file(),
        "{SOFTHSM_MODULE} is missing: run scripts/setup.sh (installs softhsm2 and opensc)"
    );
    module
}

/// The fault-injecting PKCS#11 module (`tests/pkcs11-fault/`): `target/release/
/// libpkcs11_fault.so` beside the `ca-server` binary, which `cargo build --release
/// --workspace` builds. Refused when a source it was built from (cargo's dep-info file beside
/// it, `libpkcs11_fault.d`) changed since: a stale build would test an older module.
pub fn pkcs11_fault_module() -> PathBuf {
    let module = profile_dir().join("libpkcs11_fault.so");
    let rebuild = "build it with `cargo build --release -p pkcs11-fault` (or --workspace)";
    let built = std::fs::metadata(&module)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("the fault module {}: {e}; {rebuild}", module.display()));
    let dep_info = std::fs::read_to_string(module.with_extension("d")).unwrap_or_default();
    // "TARGET: SOURCE SOURCE ...", spaces in paths escaped as "\ ".
    let sources = dep_info
        .lines()
        .filter_map(|line| line.split_once(": "))
        .flat_map(|(_, sources)| {
            sources
                .replace("\\ ", "\0")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| PathBuf::from(s.replace('\0', " ")))
                .collect::<Vec<_>>()
        });
    for source in sources {
        if let Ok(changed) = std::fs::metadata(&source).and_then(|m| m.modified()) {
            assert!(
                changed <= built,
                "{} is older than {}: {rebuild}",
                module.display(),
                source.display()
            );
        }
    }
    module
}

/// Asserts that a program the HSM tests run is on the PATH.
fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not on the PATH: run scripts/setup.sh (installs {package})"
    );
}

/// A SoftHSM2 token store of its own: a temporary directory with `softhsm2.conf` and
/// `tokens/`, removed on drop.
pub struct SoftHsm {
    dir: TempDir,
}

impl Default for SoftHsm {
    /// [`SoftHsm::new`].
    fn default() -> SoftHsm {
        SoftHsm::new()
    }
}

impl SoftHsm {
    /// A new, empty token store (no token yet: [`SoftHsm::init_token`]).
    pub fn new() -> SoftHsm {
        softhsm_module();
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("creating the token directory");
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("writing softhsm2.conf");
        SoftHsm { dir }
    }

    /// The temporary directory (`softhsm2.conf`, `tokens/`, PIN files, the fault control file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `softhsm2.conf`, which a process using this store gets as `SOFTHSM2_CONF`.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// SoftHSM2's module ([`softhsm_module`]).
    pub fn module_path(&self) -> PathBuf {
        softhsm_module()
    }

    /// The environment of a child process that uses this store (`SOFTHSM2_CONF`), for
    /// [`Server::serve_with_env`](crate::server::Server::serve_with_env) and
    /// [`ca_server_with_env`](crate::binary::ca_server_with_env).
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![("SOFTHSM2_CONF", self.conf_path().into_os_string())]
    }

    /// `softhsm2-util --init-token --free --label LABEL --pin PIN --so-pin SO_PIN`: a new token
    /// in the first free slot; returns the slot id SoftHSM2 gave it.
    pub fn init_token(&self, label: &str, pin: &str, so_pin: &str) -> u64 {
        require("softhsm2-util", "softhsm2");
        let args = [
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            pin,
            "--so-pin",
            so_pin,
        ];
        let out = output_within(
            Command::new("softhsm2-util")
                .args(args)
                .env("SOFTHSM2_CONF", self.conf_path()),
            COMMAND_DEADLINE,
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "`softhsm2-util --init-token --label {label}` failed ({}): {text}",
            out.status
        );
        // "The token has been initialized and is reassigned to slot 1408109786"
        text.split("reassigned to slot")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|slot| slot.parse().ok())
            .unwrap_or_else(|| panic!("no slot id in softhsm2-util's output: {text}"))
    }

    /// A file holding `pin` (no newline), mode 0600, in this store's directory.
    pub fn write_pin_file(&self, pin: &str) -> PathBuf {
        let path = self.dir.path().join(format!("pin-{}", unique()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        file.write_all(pin.as_bytes())
            .expect("writing the PIN file");
        path
    }

    /// `pkcs11-tool --module MODULE ARGS` on this store (`SOFTHSM2_CONF` and `env` set for it
    /// alone), to completion within the command deadline.
    pub fn pkcs11_tool(&self, module: &Path, env: &[(&str, OsString)], args: &[&str]) -> Output {
        require("pkcs11-tool", "opensc");
        output_within(
            Command::new("pkcs11-tool")
                .arg("--module")
                .arg(module)
                .args(args)
                .env("SOFTHSM2_CONF", self.conf_path())
                .envs(env.iter().map(|(k, v)| (k, v))),
            COMMAND_DEADLINE,
        )
    }

    /// `pkcs11-tool --token-label LABEL --login --pin PIN --list-objects` through SoftHSM2's
    /// own module, asserting success: the text that lists each object (`Private Key Object;
    /// EC`, `label: ...`), empty for an empty token.
    pub fn list_objects(&self, label: &str, pin: &str) -> String {
        let args = [
            "--token-label",
            label,
            "--login",
            "--pin",
            pin,
            "--list-objects",
        ];
        let out = self.pkcs11_tool(&softhsm_module(), &[], &args);
        assert!(
            out.status.success(),
            "`pkcs11-tool {}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The fault module in front of this store, with a control file of its own in this
    /// store's directory (the device present until [`Pkcs11Fault::remove_device`]).
    pub fn fault(&self) -> Pkcs11Fault {
        Pkcs11Fault {
            control: self.dir.path().join(format!("pkcs11-fault-{}", unique())),
            conf: self.conf_path(),
        }
    }
}

/// The fault-injecting module (`tests/pkcs11-fault/`) in front of a [`SoftHsm`]: a process
/// that loads [`Pkcs11Fault::module_path`] with [`Pkcs11Fault::env`] reaches SoftHSM2 through
/// it, and its signer's calls (`C_OpenSession`, `C_Login`, `C_SignInit`, `C_Sign`,
/// `C_SignUpdate`, `C_SignFinal`, `C_GetSessionInfo`, `C_FindObjectsInit`, `C_GetTokenInfo`)
/// fail with `CKR_DEVICE_REMOVED` between [`Pkcs11Fault::remove_device`] and
/// [`Pkcs11Fault::reinsert_device`]. The module reads the control file at every such call, so
/// a switch takes effect in running processes at once.
pub struct Pkcs11Fault {
    control: PathBuf,
    conf: PathBuf,
}

impl Pkcs11Fault {
    /// The module to configure instead of SoftHSM2's ([`pkcs11_fault_module`]).
    pub fn module_path(&self) -> PathBuf {
        pkcs11_fault_module()
    }

    /// The control file (absent while the device is present).
    pub fn control_path(&self) -> &Path {
        &self.control
    }

    /// The environment of a child process that loads the fault module: `SOFTHSM2_CONF` (the
    /// store's), `PKCS11_FAULT_MODULE` (SoftHSM2's module) and `PKCS11_FAULT_CONTROL`.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("SOFTHSM2_CONF", self.conf.clone().into_os_string()),
            ("PKCS11_FAULT_MODULE", softhsm_module().into_os_string()),
            (
                "PKCS11_FAULT_CONTROL",
                self.control.clone().into_os_string(),
            ),
        ]
    }

    /// Switches the fault on: the control file says `device-removed` (written whole, by a
    /// rename, so that no call reads half of it).
    pub fn remove_device(&self) {
        let partial = self.control.with_extension("partial");
        std::fs::write(&partial, format!("{DEVICE_REMOVED}\n"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", partial.display()));
        std::fs::rename(&partial, &self.control)
            .unwrap_or_else(|e| panic!("renaming to {}: {e}", self.control.display()));
    }

    /// Switches the fault off: the control file removed.
    pub fn reinsert_device(&self) {
        match std::fs::remove_file(&self.control) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", self.control.display()),
        }
    }

    /// Whether the fault is on.
    pub fn device_removed(&self) -> bool {
        std::fs::read_to_string(&self.control)
            .map(|text| text.split_whitespace().any(|w| w == DEVICE_REMOVED))
            .unwrap_or(false)
    }
}

/// Every file under `root` (recursively, symbolic links not followed) that holds private key
/// material, with what was found (see [`find_private_key_material`]). A file that vanishes
/// during the walk (a running server's store) is skipped.
///
/// Raw bytes are searched: values compressed in the store's SST files are not seen (read the
/// store with RocksDB and apply [`find_private_key_material`] to its values for that), and a
/// bare 32-byte Ed25519 seed is indistinguishable from any other bytes.
pub fn private_key_material(root: &Path) -> Vec<(PathBuf, &'static str)> {
    files_under(root)
        .into_iter()
        .filter_map(|file| match std::fs::read(&file) {
            Ok(bytes) => find_private_key_material(&bytes).map(|what| (file, what)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("reading {}: {e}", file.display()),
        })
        .collect()
}

/// The files under `path` (itself if it is a file), symbolic links not followed.
fn files_under(path: &Path) -> Vec<PathBuf> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Vec::new();
    };
    if meta.is_file() {
        return vec![path.to_path_buf()];
    }
    if !meta.is_dir() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .flat_map(|entry| files_under(&entry.path()))
        .collect();
    files.sort();
    files
}

/// What private key material `bytes` hold, if any, anywhere in them:
///
/// - a PEM private key (`-----BEGIN ... PRIVATE KEY-----`: PKCS#8, encrypted PKCS#8, SEC1,
///   PKCS#1, OpenSSH);
/// - a DER PKCS#8 `PrivateKeyInfo`/`OneAsymmetricKey` (RFC 5958): version 0 or 1, an
///   `AlgorithmIdentifier` of a key algorithm (rsaEncryption, RSASSA-PSS, id-ecPublicKey,
///   Ed25519, Ed448), then the `privateKey` OCTET STRING (a v2 CRL's `TBSCertList`, which
///   starts alike, has a Name there);
/// - a DER SEC1 `ECPrivateKey` (RFC 5915): version 1 and a 32-, 48- or 66-byte private key;
/// - a DER PKCS#1 `RSAPrivateKey` (RFC 8017): version 0 and a modulus of 128 bytes or more.
pub fn find_private_key_material(bytes: &[u8]) -> Option<&'static str> {
    if contains(bytes, b"PRIVATE KEY-----") {
        return Some("a PEM private key");
    }
    (0..bytes.len()).find_map(|at| der_private_key_at(&bytes[at..]))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The key algorithm OIDs of PKCS#8 (DER contents): rsaEncryption, RSASSA-PSS,
/// id-ecPublicKey, Ed25519, Ed448.
const KEY_ALGORITHMS: [&[u8]; 5] = [
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
    &[0x2b, 0x65, 0x70],
    &[0x2b, 0x65, 0x71],
];

/// A DER private key starting at `b[0]` (its SEQUENCE header), if any.
fn der_private_key_at(b: &[u8]) -> Option<&'static str> {
    if b.first() != Some(&0x30) {
        return None;
    }
    // The SEQUENCE's length: short form, or long form in one or two bytes.
    let body = match *b.get(1)? {
        n if n < 0x80 => &b[2..],
        0x81 => b.get(3..)?,
        0x82 => b.get(4..)?,
        _ => return None,
    };
    match body {
        // PKCS#8: version 0 or 1, AlgorithmIdentifier { OID, ... }, OCTET STRING.
        [0x02, 0x01, 0x00 | 0x01, 0x30, alg_len, 0x06, oid_len, rest @ ..]
            if *alg_len < 0x80 && *oid_len as usize + 2 <= *alg_len as usize =>
        {
            let oid = rest.get(..*oid_len as usize)?;
            let after_alg = rest.get(*alg_len as usize - 2..)?;
            (KEY_ALGORITHMS.contains(&oid) && after_alg.first() == Some(&0x04))
                .then_some("a DER PKCS#8 private key")
        }
        // SEC1: version 1, privateKey OCTET STRING of a P-256, P-384 or P-521 key.
        [0x02, 0x01, 0x01, 0x04, 0x20 | 0x30 | 0x42, ..] => Some("a DER SEC1 EC private key"),
        // PKCS#1: version 0, modulus INTEGER in long form.
        [0x02, 0x01, 0x00, 0x02, 0x81..=0x83, ..] => Some("a DER PKCS#1 RSA private key"),
        _ => None,
    }
}
