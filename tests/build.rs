//! Gives the end-to-end harness the digest of the sources `ca-server` is built from
//! (`CA_SOURCE_DIGEST`, set for every target of this package, the library `e2e_tests`
//! included), which `binary::server_bin` compares with the binary's `--version`.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let digest = source_digest(&manifest.join(".."));
    println!("cargo:rustc-env=CA_SOURCE_DIGEST={digest}");
}

include!("../build-support/source_digest.rs");
