//! PKCS#8 PEM key files, written with mode 0600 and refused when others may read them.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::{KeyError, SoftwareKey};

const PEM_TAG: &str = "PRIVATE KEY";

/// Writes a PKCS#8 DER key as a PEM file created with mode 0600.
///
/// The file must not exist: a CA key is never overwritten. The file and its directory entry
/// are fsynced before this returns; the PEM text is zeroized after writing.
pub fn write_key_file(path: &Path, pkcs8_der: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let text = Zeroizing::new(pem::encode_config(&pem::Pem::new(PEM_TAG, pkcs8_der), lf));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::AlreadyExists(path.to_path_buf())
            } else {
                io(e)
            }
        })?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    // The directory entry too, so that a power cut cannot unname the key.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io)
}

/// Loads a CA key from a PKCS#8 PEM file.
///
/// Refuses a file that group or others may access (mode bits `0o077`), with a message that
/// says how to fix it. Neither the file's content nor the key appears in any error.
pub fn load_key_file(path: &Path) -> Result<SoftwareKey, KeyError> {
    SoftwareKey::from_pkcs8(&load_pkcs8_file(path)?)
}

/// Reads a file holding a secret (a key, a PIN), which group and others must not be able to
/// read ([`KeyError::InsecurePermissions`] otherwise); the bytes are wiped when dropped.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(Zeroizing::new(std::fs::read(path).map_err(io)?))
}

/// Reads the PKCS#8 DER of a key file (e.g. a TLS server key), with the checks of
/// [`load_key_file`]; the bytes are wiped when dropped.
pub fn load_pkcs8_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let text = read_secret_file(path)?;
    let parsed =
        pem::parse(text.as_slice()).map_err(|_| KeyError::Malformed("not a PEM document"))?;
    if parsed.tag() != PEM_TAG {
        return Err(KeyError::Malformed(
            "expected a PKCS#8 \"PRIVATE KEY\" PEM block",
        ));
    }
    Ok(Zeroizing::new(parsed.into_contents()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate_pkcs8, KeyAlgorithm, Signer};

    #[test]
    fn written_keys_are_0600_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
        ] {
            let path = dir.path().join(format!("{alg}.pem"));
            let der = generate_pkcs8(alg).unwrap();
            write_key_file(&path, &der).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let key = load_key_file(&path).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert!(!key.sign(b"hello").unwrap().is_empty());
            assert!(matches!(
                write_key_file(&path, &der),
                Err(KeyError::AlreadyExists(_))
            ));
        }
    }

    #[test]
    fn group_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_key_file(&path, &generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_key_file(&path).unwrap_err();
        assert!(matches!(
            err,
            KeyError::InsecurePermissions { mode: 0o640, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load_key_file(&path), Err(KeyError::Malformed(_))));
    }
}
