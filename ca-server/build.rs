//! Converts the OpenAPI description, `docs/openapi.yaml`, into the JSON that `GET
//! /openapi.json` serves (`$OUT_DIR/openapi.json`, embedded with `include_str!`). The YAML is
//! the single source; a description that is not YAML, or not OpenAPI 3.1, fails the build.

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
    Ok(())
}
