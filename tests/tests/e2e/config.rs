//! Configuration that cannot be right is refused at start: unknown enumerated values name the
//! file, the TOML key and the allowed values; the generated file takes the documented
//! `[[tls.clients]]` form appended to it.

use std::path::Path;

use e2e_tests::prelude::*;

/// Replaces the `key_types` array of `[profiles.tls-server]` in the data directory's
/// configuration with `key_types`.
fn set_tls_server_key_types(dir: &Path, key_types: &str) {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("reading config.toml");
    let start_marker = "[profiles.tls-server]\nkey_types = [";
    let start = text
        .find(start_marker)
        .expect("[profiles.tls-server] key_types");
    let end = start
        + start_marker.len()
        + text[start + start_marker.len()..]
            .find("]\n")
            .expect("end of key_types")
        + 2;
    let text = format!(
        "{}[profiles.tls-server]\nkey_types = {key_types}\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&path, text).expect("writing config.toml");
}

#[test]
fn unknown_key_types_in_a_profile_are_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    for bad in ["banana", "ec-p521"] {
        set_tls_server_key_types(&dir, &format!("[\"ec-p256\", \"{bad}\"]"));
        let err = serve_refused(&dir);
        for part in [
            "config.toml",
            "[profiles.tls-server] key_types",
            bad,
            "ec-p256, ec-p384, ed25519, rsa-BITS",
        ] {
            assert!(err.contains(part), "{bad}: {part:?} missing from: {err}");
        }
    }
    // Valid names still start.
    set_tls_server_key_types(&dir, "[\"ec-p384\", \"rsa-3072\"]");
    Server::serve(&dir).terminate();
}

#[test]
fn an_unknown_client_role_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[],
        &format!(
            "\n[[tls.clients]]\ncertificate_sha256 = \"{}\"\nrole = \"admin\"\nname = \"portal\"\n",
            "ab".repeat(32)
        ),
    );
    let err = serve_refused(&dir);
    for part in [
        "config.toml",
        "[[tls.clients]] #1 role",
        "ra, auditor, operator",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

#[test]
fn the_generated_config_takes_an_appended_tls_clients_entry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    let text = std::fs::read_to_string(dir.join("config.toml")).expect("reading config.toml");
    assert!(text.contains("\n[tls]\n"), "{text}");
    configure(
        &dir,
        &[],
        &format!(
            "\n[[tls.clients]]\ncertificate_sha256 = \"{}\"\nrole = \"auditor\"\nname = \"portal\"\n",
            "ab".repeat(32)
        ),
    );
    Server::serve(&dir).terminate();
}
