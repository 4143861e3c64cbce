//! Data directories: a development CA made by `ca-server init` or by a first start, its
//! `config.toml` edited for a test, the bootstrap tokens and further tokens.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::binary::ca_server_ok;
use crate::server::Server;

/// `ca-server init --data-dir DIR --key-type K --subject "CN=Test Root,O=Test"`.
pub fn init_ca(dir: &Path, key_type: &str) {
    ca_server_ok(&[
        "init",
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
        "--key-type",
        key_type,
        "--subject",
        "CN=Test Root,O=Test",
    ]);
}

/// Appends TOML to a data directory's configuration, replacing text first where `replace`
/// names it (each `from` must occur; its first occurrence is replaced, so name a key with its
/// line start, `"\nburst = "`, when another section has a key ending the same way).
pub fn configure(dir: &Path, replace: &[(&str, &str)], append: &str) {
    let path = dir.join("config.toml");
    let mut text = std::fs::read_to_string(&path).expect("reading config.toml");
    for (from, to) in replace {
        assert!(text.contains(from), "config has {from}: {text}");
        text = text.replacen(from, to, 1);
    }
    text.push_str(append);
    std::fs::write(&path, text).expect("writing config.toml");
}

/// A data directory `tmp/ca` with a development CA, its configuration and bootstrap tokens,
/// made by one start of the server, which is stopped again.
pub fn new_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("ca");
    Server::serve(&dir).terminate();
    dir
}

/// `ca-server token create --data-dir DIR --role ROLE --name NAME`: the new token.
pub fn create_token(dir: &Path, role: &str, name: &str) -> String {
    let out = ca_server_ok(&[
        "token",
        "create",
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
        "--role",
        role,
        "--name",
        name,
    ]);
    let token = out.trim().to_string();
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "`token create` should print the token alone on stdout, printed {out:?}"
    );
    token
}

/// The bootstrap tokens of `DIR/bootstrap-tokens.json`.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub ra: String,
    pub auditor: String,
    pub operator: String,
}

impl Tokens {
    pub fn read(dir: &Path) -> Tokens {
        let path = dir.join("bootstrap-tokens.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()));
        let get = |role: &str| {
            v[role]
                .as_str()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| panic!("{} has no {role:?} token: {text}", path.display()))
                .to_string()
        };
        Tokens {
            ra: get("ra"),
            auditor: get("auditor"),
            operator: get("operator"),
        }
    }
}
