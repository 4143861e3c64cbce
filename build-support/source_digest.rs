// Included (`include!`) by the build scripts of `ca-server` and of the end-to-end tests, so that
// the tests can tell whether the `ca-server` binary they run was built from the sources they
// were built with (a shared CARGO_TARGET_DIR or a stale build would otherwise swap it).

/// A digest of the sources the `ca-server` binary is built from: every file under `src/` of
/// `keys`, `ca-core`, `ca-core/x509` and `ca-server`, their `Cargo.toml` and `build.rs`, this file, and the
/// workspace's `Cargo.toml`, `Cargo.lock` and `docs/openapi.yaml`, by relative path and
/// content, in path order. Prints
/// the `rerun-if-changed` lines that rebuild the caller when any of them changes. `root` is
/// the workspace directory.
fn source_digest(root: &std::path::Path) -> String {
    use std::hash::Hasher;
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["keys/src", "ca-core/src", "ca-core/x509/src", "ca-server/src"] {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        walk(&dir, &mut files);
    }
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "docs/openapi.yaml",
        "keys/Cargo.toml",
        "ca-core/Cargo.toml",
        "ca-core/x509/Cargo.toml",
        "ca-server/Cargo.toml",
        "ca-server/build.rs",
        "build-support/source_digest.rs",
    ] {
        let file = root.join(file);
        println!("cargo:rerun-if-changed={}", file.display());
        files.push(file);
    }
    files.sort();
    // SipHash with fixed keys: the same digest in both build scripts, which one rustc builds.
    let mut hasher = std::hash::DefaultHasher::new();
    for file in &files {
        let relative = file.strip_prefix(root).unwrap_or(file);
        hasher.write(relative.to_string_lossy().as_bytes());
        hasher.write(&std::fs::read(file).unwrap_or_default());
    }
    format!("{:016x}", hasher.finish())
}
