//! Converts the OpenAPI description, `docs/openapi.yaml`, into the JSON that `GET
//! /openapi.json` serves (`$OUT_DIR/openapi.json`, embedded with `include_str!`). The YAML is
//! the single source; a description that is not YAML, or not OpenAPI 3.1, fails the build.
//!
//! Also sets `CA_BUILD_COMMIT` to the short hash of the commit being built
//! (`git rev-parse --short HEAD`), or `unknown` outside a Git checkout; `ca_build_info`
//! carries it.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let source = manifest.join("../docs/openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source)
        .map_err(|e| format!("reading {}: {e}", source.display()))?;
    let document: serde_json::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("{} is not valid YAML: {e}", source.display()))?;
    let version = document
        .get("openapi")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if !version.starts_with("3.1.") {
        return Err(format!(
            "{}: `openapi` is {version:?}, expected OpenAPI 3.1",
            source.display()
        )
        .into());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("openapi.json");
    std::fs::write(&out, serde_json::to_vec(&document)?)?;
    build_commit(&manifest);
    let digest = source_digest(&manifest.join(".."));
    println!("cargo:rustc-env=CA_SOURCE_DIGEST={digest}");
    Ok(())
}

include!("../build-support/source_digest.rs");

/// Exports the commit being built as `CA_BUILD_COMMIT` (`unknown` when Git or the repository
/// is not there, e.g. when built from a source archive).
fn build_commit(manifest: &std::path::Path) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(manifest)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves (a worktree's HEAD is in its own git directory).
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            let file = manifest.join(file);
            if file.exists() {
                println!("cargo:rerun-if-changed={}", file.display());
            }
        }
    }
    println!("cargo:rustc-env=CA_BUILD_COMMIT={commit}");
}
