//! Configuration that cannot be right is refused at start: unknown enumerated values name the
//! file, the TOML key and the allowed values; the generated file takes the documented
//! `[[tls.clients]]` form appended to it.

use std::path::Path;

use e2e_tests::prelude::*;

/// Replaces the `key_types` array of `[profiles.tls-server]` in the data directory's
/// configuration with `key_types` (other settings, such as `standard`, may come before it).
fn set_tls_server_key_types(dir: &Path, key_types: &str) {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("reading config.toml");
    let section = text
        .find("[profiles.tls-server]\n")
        .expect("[profiles.tls-server]");
    let key_marker = "\nkey_types = [";
    let start = section
        + text[section..]
            .find(key_marker)
            .expect("[profiles.tls-server] key_types")
        + 1;
    let section_end = text[section + 1..]
        .find("\n[")
        .map_or(text.len(), |i| section + 1 + i);
    assert!(
        start < section_end,
        "key_types is not in [profiles.tls-server]"
    );
    let end = start + text[start..].find("]\n").expect("end of key_types") + 2;
    let text = format!(
        "{}key_types = {key_types}\n{}",
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

/// The `[profiles.tls-server...]` tables of a generated configuration `text`, renamed
/// `[profiles.NAME...]`: a custom profile copying the built-in one.
fn tls_server_copy(text: &str, name: &str) -> String {
    let mut copy = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line
                .trim_start_matches('[')
                .starts_with("profiles.tls-server");
        }
        if inside {
            copy.push_str(&line.replace("profiles.tls-server", &format!("profiles.{name}")));
            copy.push('\n');
        }
    }
    copy
}

/// A profile claiming `cabf-serverauth-dv` that would certify internal names and reserved IP
/// addresses (a copy of `tls-server` with `[san] public_only = false`, as in a configuration
/// written before the rule) is refused at start, naming the profile, the rule and its
/// sections; the same copy with the rule starts.
#[test]
fn a_tls_server_copy_without_public_only_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("reading config.toml");
    let copy = tls_server_copy(&text, "intranet");
    assert!(copy.contains("\npublic_only = true\n"), "{copy}");
    let internal = copy.replace("\npublic_only = true\n", "\npublic_only = false\n");
    std::fs::write(&path, format!("{text}\n{internal}")).expect("writing config.toml");
    let err = serve_refused(&dir);
    for part in [
        "config.toml",
        "[profiles.intranet] does not conform to cabf-serverauth-dv",
        "san.public_only = true",
        "TLS BR 7.1.2.7.12, 4.2.2",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    std::fs::write(&path, format!("{text}\n{copy}")).expect("writing config.toml");
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

/// nextUpdate minus thisUpdate of the OCSP answer about a new certificate, in seconds, as
/// `openssl ocsp -resp_text` prints them.
fn ocsp_validity_secs(s: &Server) -> i64 {
    let issued = s.issue(
        &server_csr("validity.config.example.com"),
        "tls-server",
        None,
    );
    let file = s.leaf_file(&issued);
    let target = ["-cert", file.to_str().expect("UTF-8 path")];
    let out = s.ocsp_respin(
        &s.ocsp_get(&target),
        &[&target[..], &["-resp_text"]].concat(),
    );
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    let field = |name: &str| {
        let line = out
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"));
        time::PrimitiveDateTime::parse(line.trim(), format)
            .unwrap_or_else(|e| panic!("{name} {line:?}: {e}"))
            .assume_utc()
            .unix_timestamp()
    };
    field("Next Update:") - field("This Update:")
}

/// OCSP answers are valid 4 days by default. `[ocsp] validity_secs = 3600` (what older builds
/// wrote into every generated configuration) is refused at start, naming the key and the
/// Baseline Requirements' range, unless `[ca] publicly_trusted = false`, with which the server
/// starts and answers with that validity.
#[test]
fn ocsp_validity_outside_the_baseline_requirements_is_refused_unless_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    let s = Server::serve(&dir);
    assert_eq!(ocsp_validity_secs(&s), 4 * 86_400);
    s.terminate();

    configure(
        &dir,
        &[("validity_secs = 345600", "validity_secs = 3600")],
        "",
    );
    let err = serve_refused(&dir);
    let line = err
        .lines()
        .find(|l| l.contains("validity_secs"))
        .unwrap_or_else(|| panic!("no line names validity_secs: {err}"));
    for part in [
        "config.toml",
        "[ocsp] validity_secs",
        "between 28800 (8 hours) and 863999 (10 days",
        "[ca] publicly_trusted = false",
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }

    configure(
        &dir,
        &[("publicly_trusted = true", "publicly_trusted = false")],
        "",
    );
    let s = Server::serve(&dir);
    assert_eq!(ocsp_validity_secs(&s), 3600);
    s.terminate();
}
