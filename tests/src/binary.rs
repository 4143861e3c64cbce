//! The `ca-server` binary under test: where it is, the check that it was built from the same
//! sources as these tests (`CA_SOURCE_DIGEST`, set by `tests/build.rs`), and its one-shot
//! subcommands (`init`, `token create`, a `serve` that must refuse to start).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::command::{output_within, COMMAND_DEADLINE};
use crate::server::STARTUP_TIMEOUT;

/// The `ca-server` binary: `$CA_SERVER_BIN` as it is (to run the tests against another build
/// on purpose, e.g. an old one), else `target/release/ca-server` beside the test executable
/// (which lives in `target/release/deps/`), which must have been built from the sources these
/// tests were built with: its `--version` names the digest of its sources, which must be
/// this build's `CA_SOURCE_DIGEST` (a shared `CARGO_TARGET_DIR` or a stale build would
/// otherwise have the tests judge another server).
pub fn server_bin() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    if let Ok(p) = std::env::var("CA_SERVER_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "CA_SERVER_BIN={} does not name a file; build the server first",
            p.display()
        );
        return p;
    }
    CHECKED
        .get_or_init(|| {
            let bin = profile_dir().join("ca-server");
            assert!(
                bin.is_file(),
                "ca-server binary not found at {}: build it first with \
                 `cargo build --release --workspace --bins` (or set CA_SERVER_BIN)",
                bin.display()
            );
            let out = output_within(Command::new(&bin).arg("--version"), STARTUP_TIMEOUT);
            let version = String::from_utf8_lossy(&out.stdout).to_string();
            let expected = format!("sources {})", env!("CA_SOURCE_DIGEST"));
            assert!(
                version.contains(&expected),
                "{} was built from other sources than these tests ({version:?}, expected \
                 {expected:?}): rebuild it with `cargo build --release -p ca-server` (another \
                 checkout sharing CARGO_TARGET_DIR may have replaced it)",
                bin.display()
            );
            bin
        })
        .clone()
}

/// The `ca-bench` load generator, built beside `ca-server` (`cargo build --release
/// --workspace --bins`).
pub fn bench_bin() -> PathBuf {
    let bin = profile_dir().join("ca-bench");
    assert!(
        bin.is_file(),
        "ca-bench not found at {}: build it first with `cargo build --release --workspace \
         --bins`",
        bin.display()
    );
    bin
}

/// `target/<profile>`, where cargo puts the `ca-server` binary: the parent of the directory of
/// the test executable (`target/<profile>/deps/`).
pub(crate) fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// Runs `ca-server ARGS` to completion (for `init`, `token create`, ...).
pub fn ca_server(args: &[&str]) -> Output {
    ca_server_with_env(args, &[])
}

/// [`ca_server`] with these environment variables added.
pub fn ca_server_with_env(args: &[&str], env: &[(&str, std::ffi::OsString)]) -> Output {
    output_within(
        Command::new(server_bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v))),
        COMMAND_DEADLINE,
    )
}

/// Runs `ca-server ARGS` and asserts that it succeeded; returns its stdout.
pub fn ca_server_ok(args: &[&str]) -> String {
    let out = ca_server(args);
    assert!(
        out.status.success(),
        "`ca-server {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("ca-server stdout is UTF-8")
}

/// `ca-server serve` on `dir`, which must refuse to start: waits up to 60 s for it to exit
/// unsuccessfully and returns what it printed on stderr.
pub fn serve_refused(dir: &Path) -> String {
    serve_refused_on(dir, "127.0.0.1:0")
}

/// `ca-server serve --listen LISTEN` on `dir`, which must refuse to start: waits up to 60 s for
/// it to exit unsuccessfully (killing it and panicking if it is still running then) and returns
/// what it printed on stderr.
pub fn serve_refused_on(dir: &Path, listen: &str) -> String {
    let mut child = Command::new(server_bin())
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ca-server serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ca-server served from {} on {listen}, which it must refuse",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("wait");
    assert!(!out.status.success(), "ca-server serve exited successfully");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `ca-server audit verify --data-dir DIR` passes (the chain, the recorded head and every
/// signed checkpoint, whatever store the configuration names).
pub fn audit_verify_ok(dir: &Path) {
    let out = ca_server(&[
        "audit",
        "verify",
        "--data-dir",
        dir.to_str().expect("UTF-8"),
    ]);
    assert!(
        out.status.success(),
        "audit verify on {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
