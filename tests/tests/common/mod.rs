//! Shared helpers of the end-to-end tests: starting and stopping the real `ca-server` binary,
//! talking to it over loopback HTTP, making CSRs with the OpenSSL command line, and judging
//! issued certificates with x509-parser, `openssl verify` and pkilint.
//!
//! Every test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod audit_chain;
pub mod power_loss;
pub mod raw_http;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate, X509CertificationRequest};

/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

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
            let exe = std::env::current_exe().expect("current_exe");
            let bin = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test executable lives in target/<profile>/deps")
                .join("ca-server");
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

/// Calls `check` every 50 ms until it returns `Ok`, for at most `within`; beyond that, panics
/// with `what` and the last error. Tests wait with this, never with a fixed sleep.
pub fn poll<T>(what: &str, within: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// How long a helper command (`ca-server init`, openssl, curl, ...) may run.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `command` to completion within `deadline` (killed beyond it, which fails the test),
/// its standard input empty and both outputs read as they come: `Command::output` with a
/// deadline.
pub fn output_within(command: &mut Command, deadline: Duration) -> Output {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("reading stdout"),
        stderr: stderr.join().expect("reading stderr"),
    }
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

// ---------------------------------------------------------------------------------------------
// A running server
// ---------------------------------------------------------------------------------------------

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

/// An HTTP answer: status, body text and the body as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub content_type: String,
    /// The raw body (for DER answers: CRLs, OCSP responses, certificates).
    pub bytes: Vec<u8>,
    /// The `Location` header, or "".
    pub location: String,
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.text.clone();
        if text.len() > 2000 {
            text.truncate(2000);
            text.push_str("...");
        }
        write!(f, "HTTP {} {}", self.status, text)
    }
}

/// A `ca-server serve` child process on a loopback port. Killed (SIGKILL) on drop unless it was
/// stopped before; its output is printed when a test panics while it is alive.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub base: String,
    /// The plain-HTTP status listener's `http://127.0.0.1:PORT`, when `[public] listen` is
    /// configured (the harness moves it to a free port).
    pub public: Option<String>,
    /// The data directory.
    pub dir: PathBuf,
    /// The bootstrap tokens.
    pub tokens: Tokens,
    log: Arc<Mutex<String>>,
    /// The threads copying the server's stdout and stderr into `log`; they end when the
    /// process closes its pipes.
    readers: Vec<std::thread::JoinHandle<()>>,
    client: reqwest::blocking::Client,
    /// Set when the server owns its data directory (`Server::fresh`).
    owned_dir: Option<TempDir>,
    /// Scratch space for files handed to openssl and pkilint.
    scratch: TempDir,
    ca: OnceLock<CaCert>,
}

/// A blocking HTTP client that never goes through a proxy.
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("building the HTTP client")
}

impl Server {
    /// A server on a fresh temporary data directory (a development CA is created on start).
    pub fn fresh() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server::serve(tmp.path());
        s.owned_dir = Some(tmp);
        s
    }

    /// `ca-server serve --data-dir DIR --listen 127.0.0.1:0` (and `--public-listen
    /// 127.0.0.1:0` when the configuration has a `[public] listen`), waiting for its
    /// `listening on` line.
    pub fn serve(dir: &Path) -> Server {
        Server::serve_on(dir, "127.0.0.1:0")
    }

    /// [`Server::serve`] with `--listen LISTEN`: waits up to two minutes for the `listening
    /// on` line (killing the server and panicking with its output then). `base` is the URL of
    /// that line, `http://0.0.0.0:PORT` for `0.0.0.0:0`.
    pub fn serve_on(dir: &Path, listen: &str) -> Server {
        Server::serve_with_env(dir, listen, &[])
    }

    /// [`Server::serve_on`] with these environment variables added.
    pub fn serve_with_env(dir: &Path, listen: &str, env: &[(&str, std::ffi::OsString)]) -> Server {
        let config = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
        let public: &[&str] = if config.contains("\n[public]\nlisten") {
            &["--public-listen", "127.0.0.1:0"]
        } else {
            &[]
        };
        let mut child = Command::new(server_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .arg("--listen")
            .arg(listen)
            .args(public)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning ca-server serve");
        let log = Arc::new(Mutex::new(String::new()));

        let stderr = child.stderr.take().expect("stderr pipe");
        let err_log = Arc::clone(&log);
        let err_reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => err_log
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&format!("[stderr] {}", String::from_utf8_lossy(&buf))),
                }
            }
        });

        let stdout = child.stdout.take().expect("stdout pipe");
        let out_log = Arc::clone(&log);
        let (tx, rx) = mpsc::channel::<(String, Option<String>)>();
        let out_reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            let mut tx = Some(tx);
            let mut public = None;
            const PUBLIC: &str = "serving CRLs, OCSP and the CA certificate on ";
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).to_string();
                        out_log
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_str(&format!("[stdout] {line}"));
                        if let Some(pos) = line.find(PUBLIC) {
                            public = Some(line[pos + PUBLIC.len()..].trim().to_string());
                        }
                        if let Some(pos) = line.find("listening on http") {
                            let url = line[pos + "listening on ".len()..].trim().to_string();
                            if let Some(tx) = tx.take() {
                                let _ = tx.send((url, public.take()));
                            }
                        }
                    }
                }
            }
        });

        let (base, public) = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok((url, public)) => (url.trim_end_matches('/').to_string(), public),
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "ca-server serve --data-dir {} never printed `listening on http://...` \
                     ({e:?}; exit: {status:?}). Output:\n{}",
                    dir.display(),
                    log.lock().unwrap_or_else(|e| e.into_inner())
                );
            }
        };
        let tokens = Tokens::read(dir);
        Server {
            child: Some(child),
            base,
            public,
            dir: dir.to_path_buf(),
            tokens,
            log,
            readers: vec![out_reader, err_reader],
            client: http_client(),
            owned_dir: None,
            scratch: tempfile::tempdir().expect("tempdir"),
            ca: OnceLock::new(),
        }
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One sample of a metric from `GET /metrics` (name and labels as they appear in the
    /// exposition, e.g. `ca_errors_total{code="weak_key"}`); 0 when the series is absent.
    pub fn metric(&self, series: &str) -> f64 {
        let r = self.get("/metrics", Some(&self.tokens.operator));
        assert_eq!(r.status, 200, "GET /metrics: {r}");
        r.text
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map_or(0.0, |v| v.trim().parse().expect("a metric's value"))
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Sends SIGTERM and waits for a clean exit; panics (with the log) if the server does not
    /// exit in time or exits unsuccessfully.
    pub fn terminate(self) -> ExitStatus {
        self.terminate_with_output().0
    }

    /// [`Server::terminate`], then waits (up to [`SHUTDOWN_TIMEOUT`]) until everything the
    /// server wrote on stdout and stderr has been read: its exit status and its whole output.
    pub fn terminate_with_output(mut self) -> (ExitStatus, String) {
        let status = self.stop_gracefully();
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        for reader in std::mem::take(&mut self.readers) {
            while !reader.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "the server's output pipes stayed open {SHUTDOWN_TIMEOUT:?} after it exited"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = reader.join();
        }
        (status, self.log())
    }

    /// Sends SIGTERM and waits for a clean exit (see [`Server::terminate`]).
    fn stop_gracefully(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100));
                assert!(
                    status.success(),
                    "ca-server did not exit cleanly after SIGTERM: {status}. Output:\n{}",
                    self.log()
                );
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ca-server did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM. Output:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reaps a server that was killed by pid (e.g. `kill -KILL` while clients held it).
    pub fn reap(mut self) {
        let mut child = self.child.take().expect("server was started");
        child.wait().expect("wait");
    }

    /// Sends SIGKILL (kill -9) and reaps the process.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("server is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }

    /// A request with an optional bearer token and JSON body.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req, path)
    }

    /// POST of raw bytes with the given content type.
    pub fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req, path)
    }

    /// Sends a request, panicking with the server's output when it fails at the HTTP level.
    pub fn send(&self, req: reqwest::blocking::RequestBuilder, what: &str) -> Resp {
        match req.send() {
            Ok(r) => to_resp(r),
            Err(e) => panic!(
                "request {what} failed: {e:?}. Server output:\n{}",
                self.log()
            ),
        }
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.request(reqwest::Method::POST, path, Some(token), Some(body))
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(reqwest::Method::GET, path, token, None)
    }

    /// The HTTP client, for tests that send from several threads.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client.clone()
    }

    /// POST /v1/certificates with the bootstrap RA token; asserts 201.
    pub fn issue(&self, csr: &Csr, profile: &str, validity_days: Option<u32>) -> Value {
        let mut body = serde_json::json!({"csr": csr.pem, "profile": profile});
        if let Some(d) = validity_days {
            body["validity_days"] = d.into();
        }
        let r = self.post("/v1/certificates", &self.tokens.ra, &body);
        assert_eq!(
            r.status, 201,
            "issuing {profile} for {} ({}): {r}",
            csr.subj, csr.key_type
        );
        r.json
    }

    /// How many certificates the store holds, walking `GET /v1/certificates` with the auditor
    /// token (the server's own certificates included).
    pub fn certificate_count(&self) -> usize {
        let mut count = 0;
        let mut cursor = String::new();
        loop {
            let path = if cursor.is_empty() {
                "/v1/certificates?limit=1000".to_string()
            } else {
                format!("/v1/certificates?limit=1000&cursor={cursor}")
            };
            let r = self.get(&path, Some(&self.tokens.auditor));
            assert_eq!(r.status, 200, "GET {path}: {r}");
            count += r.json["items"].as_array().expect("items").len();
            match r.json["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return count,
            }
        }
    }

    /// GET /v1/certificates/{serial} with the auditor token; asserts 200.
    pub fn record(&self, serial: &str) -> Value {
        let r = self.get(
            &format!("/v1/certificates/{serial}"),
            Some(&self.tokens.auditor),
        );
        assert_eq!(r.status, 200, "GET /v1/certificates/{serial}: {r}");
        r.json
    }

    /// The CA chain as served on GET /ca.pem (by the status listener, when there is one),
    /// fetched once.
    pub fn ca(&self) -> &CaCert {
        self.ca.get_or_init(|| {
            let base = self.public.as_deref().unwrap_or(&self.base);
            let r = self.send(self.client.get(format!("{base}/ca.pem")), "GET /ca.pem");
            assert_eq!(r.status, 200, "GET /ca.pem: {r}");
            CaCert::from_pem(&r.text, self.scratch.path())
        })
    }

    /// A scratch directory for this server's checks.
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Runs every check on a 201/200 issuance answer for `csr` (see [`check_issued`]).
    pub fn check_issued(&self, resp: &Value, csr: &Csr, profile: &str, validity_days: u32) {
        check_issued(
            self.ca(),
            self.scratch.path(),
            resp,
            csr,
            profile,
            validity_days,
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                let log = self.log();
                let tail = if log.len() > 20_000 {
                    &log[log.len() - 20_000..]
                } else {
                    &log[..]
                };
                eprintln!(
                    "---- ca-server output ({}) ----\n{tail}\n---- end ----",
                    self.base
                );
            }
        }
    }
}

fn to_resp(r: reqwest::blocking::Response) -> Resp {
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header("content-type");
    let location = header("location");
    let bytes = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        text,
        json,
        content_type,
        bytes,
        location,
    }
}

/// Sends with a client of its own (for threads), returning the answer or the transport error.
pub fn try_post(
    client: &reqwest::blocking::Client,
    base: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> Result<Resp, reqwest::Error> {
    client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .map(to_resp)
}

/// What is wrong with an answer expected to be HTTP `status` with error code `code` in the
/// shape `{"error": {"code": CODE, "message": "<non-empty>"}}`; `None` when it is right.
pub fn error_problem(r: &Resp, status: u16, code: &str) -> Option<String> {
    if (r.status, r.json["error"]["code"].as_str()) != (status, Some(code)) {
        return Some(format!(
            "expected HTTP {status} with code {code:?}, got {r}"
        ));
    }
    error_shape_problem(&r.json)
}

/// Asserts status, code and error shape (see [`error_problem`]).
pub fn assert_error(r: &Resp, status: u16, code: &str, what: &str) {
    if let Some(p) = error_problem(r, status, code) {
        panic!("{what}: {p}");
    }
}

/// What is wrong with an error body: it must be exactly
/// `{"error": {"code": "<snake_case>", "message": "<non-empty>"}}`.
pub fn error_shape_problem(v: &Value) -> Option<String> {
    let Some(obj) = v.as_object() else {
        return Some(format!("error body is not a JSON object: {v}"));
    };
    if obj.len() != 1 {
        return Some(format!("error body has keys besides \"error\": {v}"));
    }
    let Some(err) = obj.get("error").and_then(Value::as_object) else {
        return Some(format!("\"error\" is not an object: {v}"));
    };
    let Some(code) = err.get("code").and_then(Value::as_str) else {
        return Some(format!("error.code is not a string: {v}"));
    };
    if code.is_empty()
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Some(format!("error.code {code:?} is not snake_case"));
    }
    match err.get("message").and_then(Value::as_str) {
        Some(m) if !m.trim().is_empty() => None,
        _ => Some(format!("error.message is missing or empty: {v}")),
    }
}

/// Asserts the error shape of a JSON value.
pub fn assert_error_shape(v: &Value, what: &str) {
    if let Some(p) = error_shape_problem(v) {
        panic!("{what}: {p}");
    }
}

/// Collects failed checks so that one test reports all of them at once.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    /// Records a failure unless the answer is HTTP `status` with error `code` in the right shape.
    pub fn error(&mut self, r: &Resp, status: u16, code: &str, what: &str) {
        self.count += 1;
        if let Some(p) = error_problem(r, status, code) {
            self.failures.push(format!("{what}: {p}"));
        }
    }

    /// Records a failure unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.count += 1;
        if !ok {
            self.failures.push(what());
        }
    }

    /// Panics listing every failure.
    pub fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} checks failed:\n  - {}",
            self.failures.len(),
            self.count,
            self.failures.join("\n  - ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and CSRs, made by the OpenSSL command line
// ---------------------------------------------------------------------------------------------

/// Runs openssl, asserting success; returns stdout.
pub fn openssl(args: &[&str]) -> String {
    let out = output_within(Command::new("openssl").args(args), COMMAND_DEADLINE);
    assert!(
        out.status.success(),
        "`openssl {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl stdout is UTF-8")
}

fn key_cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-keys");
    std::fs::create_dir_all(&dir).expect("creating the key cache");
    dir
}

/// A private key of the given type (`ec-p256`, `ec-p384`, `ed25519`, `rsa-BITS`), generated
/// once by `openssl genpkey` and cached under the target directory.
pub fn key_file(key_type: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = key_cache_dir().join(format!("{key_type}.pem"));
    if path.is_file() {
        return path;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let tmp_s = tmp.to_str().expect("UTF-8 path");
    let mut args = vec!["genpkey"];
    let bits;
    let curve;
    match key_type {
        "ed25519" => args.extend(["-algorithm", "ED25519"]),
        ec if ec.starts_with("ec-") => {
            curve = match &ec[3..] {
                "p256" => "ec_paramgen_curve:P-256".to_string(),
                "p384" => "ec_paramgen_curve:P-384".to_string(),
                other => format!("ec_paramgen_curve:{other}"),
            };
            args.extend(["-algorithm", "EC", "-pkeyopt", &curve]);
        }
        rsa if rsa.starts_with("rsa-") => {
            bits = format!("rsa_keygen_bits:{}", &rsa[4..]);
            args.extend(["-algorithm", "RSA", "-pkeyopt", &bits]);
        }
        other => panic!("unknown key type {other}"),
    }
    args.extend(["-out", tmp_s]);
    openssl(&args);
    std::fs::rename(&tmp, &path).expect("renaming the generated key");
    path
}

/// A CSR made by `openssl req`, with what it asks for.
#[derive(Clone, Debug)]
pub struct Csr {
    pub pem: String,
    /// The key type it was made with.
    pub key_type: String,
    /// OpenSSL's `-subj` form, e.g. `/C=BR/O=Acme/CN=Maria Silva` (DER order).
    pub subj: String,
    /// The SANs as in OpenSSL's `subjectAltName`, e.g. `DNS:a.example`, `IP:192.0.2.1`,
    /// `email:m@a.example`.
    pub sans: Vec<String>,
}

impl Csr {
    /// The subject attributes in DER order, as (short name, value).
    pub fn subject_attrs(&self) -> Vec<(String, String)> {
        self.subj
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let (k, v) = s.split_once('=').expect("attribute in -subj");
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// The subject as RFC 4514 writes it (last RDN first).
    pub fn rfc4514(&self) -> String {
        self.subject_attrs()
            .iter()
            .rev()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The SAN values without their type prefix, as the API lists them.
    pub fn san_values(&self) -> Vec<String> {
        self.sans
            .iter()
            .map(|s| s.split_once(':').expect("TYPE:value").1.to_string())
            .collect()
    }

    /// The DER of the CSR.
    pub fn der(&self) -> Vec<u8> {
        pem_blocks(&self.pem)
            .into_iter()
            .next()
            .expect("a PEM block")
            .1
    }
}

/// `openssl req -new -key <cached key of key_type> -subj SUBJ -addext subjectAltName=SANS`.
pub fn make_csr(key_type: &str, subj: &str, sans: &[&str]) -> Csr {
    make_csr_with(key_type, subj, sans, &[])
}

/// [`make_csr`] with extra `openssl req` arguments (e.g. `-sha1`).
pub fn make_csr_with(key_type: &str, subj: &str, sans: &[&str], extra: &[&str]) -> Csr {
    make_csr_for_key(&key_file(key_type), key_type, subj, sans, extra)
}

/// `openssl x509 -noout -fingerprint -sha256` of a PEM certificate file, as an operator copies
/// it into `certificate_sha256`.
pub fn sha256_fingerprint(cert: &Path) -> String {
    let out = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        cert.to_str().expect("UTF-8 path"),
    ]);
    out.trim()
        .rsplit('=')
        .next()
        .expect("Fingerprint=...")
        .to_string()
}

/// A new EC P-256 private key of its own in `dir` (not the cached one), for requests that must
/// be told apart by their keys.
pub fn fresh_p256_key(dir: &Path) -> PathBuf {
    let path = dir.join(format!("key-{}.pem", unique()));
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path.to_str().expect("UTF-8 path"),
    ]);
    path
}

/// A CSR made by `openssl req` with the private key in `key` (of type `key_type`).
pub fn make_csr_for_key(
    key: &Path,
    key_type: &str,
    subj: &str,
    sans: &[&str],
    extra: &[&str],
) -> Csr {
    let mut args: Vec<String> = vec![
        "req".into(),
        "-new".into(),
        "-batch".into(),
        "-key".into(),
        key.to_str().expect("UTF-8 path").into(),
        "-subj".into(),
        if subj.is_empty() {
            "/".into()
        } else {
            subj.into()
        },
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    if !sans.is_empty() {
        args.push("-addext".into());
        args.push(format!("subjectAltName={}", sans.join(",")));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pem = openssl(&args);
    assert!(
        pem.contains("-----BEGIN CERTIFICATE REQUEST-----"),
        "openssl req printed {pem}"
    );
    Csr {
        pem,
        key_type: key_type.to_string(),
        subj: subj.to_string(),
        sans: sans.iter().map(|s| s.to_string()).collect(),
    }
}

/// The CSR's PEM with the last byte of its DER (inside the signature) flipped.
pub fn tamper_signature(csr: &Csr) -> String {
    let mut der = csr.der();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    to_pem("CERTIFICATE REQUEST", &der)
}

/// The CSR's PEM with the first occurrence of `from` in its DER (in the signed part) replaced
/// by `to` (of the same length).
pub fn tamper_bytes(csr: &Csr, from: &str, to: &str) -> String {
    assert_eq!(from.len(), to.len());
    let mut der = csr.der();
    let pos = der
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in the CSR"));
    der[pos..pos + to.len()].copy_from_slice(to.as_bytes());
    to_pem("CERTIFICATE REQUEST", &der)
}

/// A tls-server CSR for `host` (CN and DNS SAN) with a P-256 key.
pub fn server_csr(host: &str) -> Csr {
    make_csr("ec-p256", &format!("/CN={host}"), &[&format!("DNS:{host}")])
}

// ---------------------------------------------------------------------------------------------
// PEM and time
// ---------------------------------------------------------------------------------------------

/// The blocks of a PEM text as (label, DER).
pub fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    pem::parse_many(text)
        .unwrap_or_else(|e| panic!("bad PEM ({e}): {text}"))
        .into_iter()
        .map(|p| (p.tag().to_string(), p.into_contents()))
        .collect()
}

/// The DER certificates of a PEM text, asserting that every block is a CERTIFICATE.
pub fn pem_certs(text: &str) -> Vec<Vec<u8>> {
    pem_blocks(text)
        .into_iter()
        .map(|(label, der)| {
            assert_eq!(label, "CERTIFICATE", "unexpected PEM block in {text}");
            der
        })
        .collect()
}

/// PEM-encodes DER with the given label, 64 characters a line.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), lf)
}

/// Parses an RFC 3339 UTC time (`2025-01-02T03:04:05Z`, fraction and `+00:00` allowed) into
/// Unix seconds.
pub fn parse_rfc3339(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?} is not an RFC 3339 time: {e}"))
        .unix_timestamp()
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Whether a string is a serial of the API's form: 32 lower-case hex digits.
pub fn is_serial(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Secrets in the server's output
// ---------------------------------------------------------------------------------------------

/// A secret and the forms in which it could show up in the server's output.
#[derive(Clone, Debug)]
pub struct Secret {
    /// What it is, for messages (never the secret itself).
    pub name: String,
    /// (how it is written, the string to look for).
    pub forms: Vec<(String, String)>,
}

/// The shortest form [`leaked_secrets`] looks for: shorter ones could occur by chance.
const MIN_SECRET_FORM: usize = 12;

impl Secret {
    fn new(name: &str, forms: Vec<(String, String)>) -> Secret {
        let mut unique: Vec<(String, String)> = Vec::new();
        for (how, form) in forms {
            assert!(
                form.chars().filter(|c| !c.is_whitespace()).count() >= MIN_SECRET_FORM,
                "{name}: the form {how} is too short to be looked for"
            );
            if !unique.iter().any(|(_, f)| *f == form) {
                unique.push((how, form));
            }
        }
        Secret {
            name: name.to_string(),
            forms: unique,
        }
    }

    /// A secret that is text (a token, a password, an enrollment code): as it is, in lower and
    /// upper case, and without dashes and spaces (as a person may type a code).
    pub fn text(name: &str, text: &str) -> Secret {
        let bare: String = text
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .collect();
        let forms = [
            ("verbatim", text.to_string()),
            ("lower case", text.to_lowercase()),
            ("upper case", text.to_uppercase()),
            ("without dashes or spaces", bare.clone()),
            ("lower case without dashes or spaces", bare.to_lowercase()),
            ("upper case without dashes or spaces", bare.to_uppercase()),
        ];
        Secret::new(
            name,
            forms
                .into_iter()
                .map(|(how, form)| (how.to_string(), form))
                .collect(),
        )
    }

    /// Secret bytes (a private scalar, a DER structure): hex in lower and upper case, with and
    /// without colons (as `openssl -text` prints them), and base64, standard and URL-safe, at
    /// each of the three byte offsets the bytes may have inside a longer base64 text (a PEM
    /// or PKCS#8 document): the complete 4-character groups of the encoding of `bytes[k..]`
    /// for k = 0, 1, 2, one of which occurs in any base64 text of data containing `bytes`.
    pub fn bytes(name: &str, bytes: &[u8]) -> Secret {
        use base64::Engine as _;
        let hex_lower = hex::encode(bytes);
        let colons = |hex: &str| {
            hex.as_bytes()
                .chunks(2)
                .map(|pair| String::from_utf8_lossy(pair).to_string())
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut forms = vec![
            ("hex".to_string(), hex_lower.clone()),
            ("upper-case hex".to_string(), hex_lower.to_uppercase()),
            ("hex with colons".to_string(), colons(&hex_lower)),
            (
                "upper-case hex with colons".to_string(),
                colons(&hex_lower.to_uppercase()),
            ),
        ];
        for k in 0..3 {
            let tail = &bytes[k.min(bytes.len())..];
            let whole = &tail[..tail.len() / 3 * 3];
            forms.push((
                format!("base64 from byte {k}"),
                base64::engine::general_purpose::STANDARD.encode(whole),
            ));
            forms.push((
                format!("URL-safe base64 from byte {k}"),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(whole),
            ));
        }
        Secret::new(name, forms)
    }

    /// A PEM document (a CSR): its DER as [`Secret::bytes`], and each line of its body of at
    /// least 32 characters on its own (a body written with escaped line breaks, as in JSON).
    pub fn pem(name: &str, pem_text: &str) -> Secret {
        let (_, der) = pem_blocks(pem_text)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{name}: no PEM block"));
        let mut secret = Secret::bytes(name, &der);
        for (i, line) in pem_text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && l.len() >= 32)
            .enumerate()
        {
            secret
                .forms
                .push((format!("PEM body line {}", i + 1), line.to_string()));
        }
        secret
    }
}

/// The secrets `output` (a server's output, [`Server::log`]) holds, as "NAME as HOW" (never
/// the secret itself). Looks through the output as it is and, so that a secret wrapped over
/// lines (PEM, `openssl -text`) is found too, through each of its two streams with the
/// harness's `[stdout] ` and `[stderr] ` line prefixes and all whitespace removed.
pub fn leaked_secrets(output: &str, secrets: &[Secret]) -> Vec<String> {
    let joined: Vec<String> = ["[stdout] ", "[stderr] "]
        .iter()
        .map(|prefix| {
            let mut stream: String = output
                .lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .collect();
            if !output.contains(prefix) {
                stream = output.to_string();
            }
            stream
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
        })
        .collect();
    let mut found = Vec::new();
    for secret in secrets {
        for (how, form) in &secret.forms {
            let bare: String = form.chars().filter(|c| !c.is_whitespace()).collect();
            if output.contains(form.as_str()) || joined.iter().any(|j| j.contains(&bare)) {
                found.push(format!("{} as {how}", secret.name));
            }
        }
    }
    found
}

/// The private numbers of a private key file, as `openssl pkey -text -noout` prints them:
/// `priv` (EC, Ed25519, X25519), or `privateExponent`, `prime1`, `prime2`, `exponent1`,
/// `exponent2` and `coefficient` (RSA); each as (name, big-endian bytes without the sign
/// byte openssl puts before a high bit).
pub fn private_numbers(key_file: &Path) -> Vec<(String, Vec<u8>)> {
    const PRIVATE: [&str; 7] = [
        "priv",
        "privateExponent",
        "prime1",
        "prime2",
        "exponent1",
        "exponent2",
        "coefficient",
    ];
    let text = openssl(&[
        "pkey",
        "-in",
        key_file.to_str().expect("UTF-8 path"),
        "-text",
        "-noout",
    ]);
    let mut numbers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some((_, hex)) = numbers.last_mut() {
                hex.extend(line.chars().filter(char::is_ascii_hexdigit));
            }
        } else if let Some(label) = line.trim_end().strip_suffix(':') {
            numbers.push((label.to_string(), String::new()));
        } else {
            // A label with its value on the same line (`publicExponent: 65537 (0x10001)`).
            numbers.push((String::new(), String::new()));
        }
    }
    let found: Vec<(String, Vec<u8>)> = numbers
        .into_iter()
        .filter(|(label, hex)| PRIVATE.contains(&label.as_str()) && !hex.is_empty())
        .map(|(label, hex)| {
            let mut bytes =
                hex::decode(&hex).unwrap_or_else(|e| panic!("{label}: not hex ({e}) in:\n{text}"));
            if bytes.len() > 1 && bytes[0] == 0 && bytes[1] >= 0x80 {
                bytes.remove(0);
            }
            (label, bytes)
        })
        .collect();
    assert!(
        !found.is_empty(),
        "no private number in `openssl pkey -text` of {}:\n{text}",
        key_file.display()
    );
    found
}

// ---------------------------------------------------------------------------------------------
// Judging certificates
// ---------------------------------------------------------------------------------------------

/// The CA chain as served, with what leaf checks need.
#[derive(Clone, Debug)]
pub struct CaCert {
    pub pem: String,
    pub ders: Vec<Vec<u8>>,
    /// The issuing CA's subjectKeyIdentifier.
    pub ski: Vec<u8>,
    /// The issuing CA's subject, DER.
    pub subject_der: Vec<u8>,
    /// The chain written to a file, for `openssl verify -CAfile`.
    pub file: PathBuf,
}

impl CaCert {
    pub fn from_pem(pem: &str, dir: &Path) -> CaCert {
        let ders = pem_certs(pem);
        assert!(
            !ders.is_empty(),
            "the CA chain holds no certificate: {pem:?}"
        );
        let (_, ca) = X509Certificate::from_der(&ders[0]).expect("the CA certificate parses");
        assert!(ca.is_ca(), "the first certificate of the chain is not a CA");
        let ski = ca
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .expect("the CA certificate has a subjectKeyIdentifier");
        let subject_der = ca.subject().as_raw().to_vec();
        let file = dir.join(format!("ca-{}.pem", hex::encode(&ski)));
        std::fs::write(&file, pem).expect("writing the CA file");
        CaCert {
            pem: pem.to_string(),
            ders,
            ski,
            subject_der,
            file,
        }
    }
}

fn short_name_oid(short: &str) -> &'static str {
    match short {
        "CN" => "2.5.4.3",
        "C" => "2.5.4.6",
        "ST" => "2.5.4.8",
        "L" => "2.5.4.7",
        "O" => "2.5.4.10",
        "OU" => "2.5.4.11",
        "serialNumber" => "2.5.4.5",
        "GN" => "2.5.4.42",
        "SN" => "2.5.4.4",
        other => panic!("no OID known for {other}"),
    }
}

/// The openssl verify purpose fitting a profile.
fn purpose(profile: &str) -> &'static str {
    match profile {
        "tls-server" => "sslserver",
        "tls-client" => "sslclient",
        "personal" => "smimesign",
        _ => "any",
    }
}

/// Key usage flags (x509-parser's bit order: digitalSignature = 1, nonRepudiation = 2, ...) and
/// the EKU of a built-in profile.
fn profile_usages(profile: &str) -> (u16, &'static str) {
    match profile {
        "tls-server" => (1, "serverAuth"),
        "tls-client" => (1, "clientAuth"),
        "personal" => (1 | 2, "emailProtection"),
        other => panic!("no expectations for profile {other}"),
    }
}

/// Every check on an issuance answer (201 body, or one batch result) for `csr` under a
/// built-in profile: the answer's fields, the certificate's content parsed with x509-parser,
/// `openssl verify -x509_strict -purpose P -CAfile ca.pem`, and pkilint's RFC 5280 linter.
pub fn check_issued(
    ca: &CaCert,
    scratch: &Path,
    resp: &Value,
    csr: &Csr,
    profile: &str,
    validity_days: u32,
) {
    let what = format!("{profile} certificate for {} ({})", csr.subj, csr.key_type);
    // The answer's fields.
    let serial = resp["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no serial in {resp}"));
    assert!(
        is_serial(serial),
        "{what}: serial {serial:?} is not 32 lower-case hex digits"
    );
    assert_eq!(resp["profile"], profile, "{what}: profile in {resp}");
    assert_eq!(resp["status"], "valid", "{what}: status in {resp}");
    let cert_pem = resp["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no certificate in {resp}"));
    let ders = pem_certs(cert_pem);
    assert_eq!(
        ders.len(),
        1,
        "{what}: `certificate` should hold exactly one certificate"
    );
    let der = &ders[0];
    let chain: Vec<Vec<u8>> = resp["chain"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: chain is not a list in {resp}"))
        .iter()
        .flat_map(|p| pem_certs(p.as_str().expect("chain entries are PEM strings")))
        .collect();
    assert_eq!(chain, ca.ders, "{what}: `chain` differs from GET /ca.pem");
    assert!(!chain.contains(der), "{what}: `chain` contains the leaf");

    let (rest, cert) = X509Certificate::from_der(der)
        .unwrap_or_else(|e| panic!("{what}: certificate does not parse: {e}"));
    assert!(
        rest.is_empty(),
        "{what}: trailing bytes after the certificate"
    );
    assert_eq!(cert.version().0, 2, "{what}: not an X.509 v3 certificate");

    // Serial.
    assert_eq!(
        hex::encode(cert.raw_serial()),
        serial,
        "{what}: certificate serial vs answer"
    );

    // Issuer and subject.
    assert_eq!(
        cert.issuer().as_raw(),
        &ca.subject_der[..],
        "{what}: issuer is not the CA's subject"
    );
    let subject: Vec<(String, String)> = cert
        .subject()
        .iter_attributes()
        .map(|a| {
            (
                a.attr_type().to_id_string(),
                a.as_str().unwrap_or("<non-string>").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = csr
        .subject_attrs()
        .into_iter()
        .map(|(k, v)| (short_name_oid(&k).to_string(), v))
        .collect();
    assert_eq!(subject, expected, "{what}: subject");

    // Public key: the CSR's.
    let csr_der = csr.der();
    let (_, req) = X509CertificationRequest::from_der(&csr_der).expect("CSR parses");
    assert_eq!(
        cert.public_key().raw,
        req.certification_request_info.subject_pki.raw,
        "{what}: subjectPublicKeyInfo differs from the CSR's"
    );

    // Validity.
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    let span = na - nb;
    let want = i64::from(validity_days) * 86_400;
    assert!(
        span == want || span == want - 1,
        "{what}: validity is {span} s, expected {validity_days} days ({want} s, or 1 s less)"
    );
    let now = now_unix();
    assert!(
        nb <= now + 5 && nb >= now - 3600,
        "{what}: notBefore {nb} is not around now ({now})"
    );
    for (field, t) in [("not_before", nb), ("not_after", na)] {
        let s = resp[field]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no {field} in {resp}"));
        assert_eq!(
            parse_rfc3339(s),
            t,
            "{what}: {field} {s:?} vs the certificate"
        );
    }

    // Extensions.
    let mut seen = HashMap::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        assert!(
            seen.insert(oid.clone(), ()).is_none(),
            "{what}: extension {oid} appears twice"
        );
    }
    let bc = cert
        .basic_constraints()
        .expect("basicConstraints parses")
        .unwrap_or_else(|| panic!("{what}: no basicConstraints"));
    assert!(bc.critical, "{what}: basicConstraints not critical");
    assert!(!bc.value.ca, "{what}: basicConstraints cA is true");
    assert_eq!(
        bc.value.path_len_constraint, None,
        "{what}: pathLen on an end entity"
    );

    let (ku_flags, eku_name) = profile_usages(profile);
    let ku = cert
        .key_usage()
        .expect("keyUsage parses")
        .unwrap_or_else(|| panic!("{what}: no keyUsage"));
    assert!(ku.critical, "{what}: keyUsage not critical");
    assert_eq!(
        ku.value.flags, ku_flags,
        "{what}: keyUsage bits ({})",
        ku.value
    );

    let eku = cert
        .extended_key_usage()
        .expect("extendedKeyUsage parses")
        .unwrap_or_else(|| panic!("{what}: no extendedKeyUsage"))
        .value;
    let purposes = [
        ("serverAuth", eku.server_auth),
        ("clientAuth", eku.client_auth),
        ("emailProtection", eku.email_protection),
        ("codeSigning", eku.code_signing),
        ("timeStamping", eku.time_stamping),
        ("OCSPSigning", eku.ocsp_signing),
        ("anyExtendedKeyUsage", eku.any),
    ];
    let present: Vec<&str> = purposes.iter().filter(|p| p.1).map(|p| p.0).collect();
    assert_eq!(present, vec![eku_name], "{what}: extendedKeyUsage");
    assert!(
        eku.other.is_empty(),
        "{what}: unexpected EKU OIDs {:?}",
        eku.other
    );

    let mut sans: Vec<String> = Vec::new();
    let mut ski = None;
    let mut aki = None;
    let mut crl_uris = Vec::new();
    let (mut ocsp, mut ca_issuers) = (Vec::new(), Vec::new());
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                assert!(
                    !ext.critical || cert.subject().iter_attributes().next().is_none(),
                    "{what}: SAN critical although the subject is not empty"
                );
                for name in &san.general_names {
                    sans.push(match name {
                        GeneralName::DNSName(d) => format!("DNS:{d}"),
                        GeneralName::RFC822Name(e) => format!("email:{e}"),
                        GeneralName::IPAddress(b) => {
                            let ip: IpAddr = match b.len() {
                                4 => <[u8; 4]>::try_from(*b).expect("4").into(),
                                16 => <[u8; 16]>::try_from(*b).expect("16").into(),
                                n => panic!("{what}: IP SAN of {n} bytes"),
                            };
                            format!("IP:{ip}")
                        }
                        other => panic!("{what}: unexpected SAN {other:?}"),
                    });
                }
            }
            ParsedExtension::SubjectKeyIdentifier(k) => {
                assert!(!ext.critical, "{what}: SKI critical");
                ski = Some(k.0.to_vec());
            }
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                assert!(!ext.critical, "{what}: AKI critical");
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for p in &points.points {
                    if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                        for n in names {
                            if let GeneralName::URI(u) = n {
                                crl_uris.push(u.to_string());
                            }
                        }
                    }
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                assert!(!ext.critical, "{what}: AIA critical");
                for ad in &aia.accessdescs {
                    let uri = match &ad.access_location {
                        GeneralName::URI(u) => u.to_string(),
                        other => panic!("{what}: AIA location {other:?} is not a URI"),
                    };
                    match ad.access_method.to_id_string().as_str() {
                        "1.3.6.1.5.5.7.48.1" => ocsp.push(uri),
                        "1.3.6.1.5.5.7.48.2" => ca_issuers.push(uri),
                        m => panic!("{what}: unexpected AIA method {m}"),
                    }
                }
            }
            ParsedExtension::ParseError { error } => {
                panic!("{what}: extension {} does not parse: {error:?}", ext.oid)
            }
            _ => {}
        }
    }
    let mut want_sans = csr.sans.clone();
    want_sans.sort();
    sans.sort();
    assert_eq!(sans, want_sans, "{what}: subjectAltName");
    let ski = ski.unwrap_or_else(|| panic!("{what}: no subjectKeyIdentifier"));
    assert!(!ski.is_empty(), "{what}: empty subjectKeyIdentifier");
    assert_eq!(
        aki.as_deref(),
        Some(&ca.ski[..]),
        "{what}: authorityKeyIdentifier.keyIdentifier is not the CA's subjectKeyIdentifier"
    );
    let is_url = |u: &String| u.starts_with("http://") || u.starts_with("https://");
    assert!(
        !crl_uris.is_empty() && crl_uris.iter().all(is_url),
        "{what}: CRL distribution point URLs {crl_uris:?}"
    );
    assert!(
        !ocsp.is_empty() && ocsp.iter().all(is_url),
        "{what}: AIA OCSP URLs {ocsp:?}"
    );
    assert!(
        !ca_issuers.is_empty() && ca_issuers.iter().all(is_url),
        "{what}: AIA caIssuers URLs {ca_issuers:?}"
    );

    // The independent judges.
    let leaf = scratch.join(format!("leaf-{serial}.pem"));
    std::fs::write(&leaf, cert_pem).expect("writing the leaf");
    openssl_verify(ca, &leaf, profile, &what);
    pkilint(&leaf, &what);
}

/// The URLs a certificate names: (CRL distribution points, AIA OCSP, AIA caIssuers).
pub fn cert_urls(pem: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let der = pem_certs(pem).pop().expect("a certificate");
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate parses");
    let (mut crl, mut ocsp, mut ca_issuers) = (Vec::new(), Vec::new(), Vec::new());
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(points) => {
                for p in &points.points {
                    if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                        for n in names {
                            if let GeneralName::URI(u) = n {
                                crl.push(u.to_string());
                            }
                        }
                    }
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for ad in &aia.accessdescs {
                    if let GeneralName::URI(u) = &ad.access_location {
                        match ad.access_method.to_id_string().as_str() {
                            "1.3.6.1.5.5.7.48.1" => ocsp.push(u.to_string()),
                            "1.3.6.1.5.5.7.48.2" => ca_issuers.push(u.to_string()),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (crl, ocsp, ca_issuers)
}

/// `openssl verify -x509_strict -purpose P -CAfile ca.pem leaf.pem` must say OK.
pub fn openssl_verify(ca: &CaCert, leaf: &Path, profile: &str, what: &str) {
    let out = output_within(
        Command::new("openssl")
            .args([
                "verify",
                "-x509_strict",
                "-purpose",
                purpose(profile),
                "-CAfile",
            ])
            .arg(&ca.file)
            .arg(leaf),
        COMMAND_DEADLINE,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with(": OK"),
        "{what}: openssl verify failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pkilint virtual environment: `$PKILINT_VENV`, by default the workspace's `.venv`.
fn pkilint_venv() -> PathBuf {
    std::env::var("PKILINT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"))
}

/// A pkilint command of the venv (`lint_pkix_cert`, `lint_crl`, ...), asserting it exists.
fn pkilint_tool(name: &str) -> PathBuf {
    let bin = pkilint_venv().join("bin").join(name);
    assert!(
        bin.is_file(),
        "pkilint is missing ({} not found). Run ./test at the workspace root, which installs it \
         (scripts/setup.sh --with-pkilint: python3 -m venv .venv && .venv/bin/pip install \
         pkilint==0.13.3), or set PKILINT_VENV.",
        bin.display()
    );
    bin
}

/// The pkilint RFC 5280 linter: `$PKILINT_VENV/bin/lint_pkix_cert`, by default in the
/// workspace's `.venv`.
pub fn pkilint_bin() -> PathBuf {
    pkilint_tool("lint_pkix_cert")
}

/// pkilint's CRL linter: `$PKILINT_VENV/bin/lint_crl`.
pub fn pkilint_crl_bin() -> PathBuf {
    pkilint_tool("lint_crl")
}

/// One finding of a pkilint report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkilintFinding {
    /// `FATAL`, `ERROR`, `WARNING`, `NOTICE` or `INFO`.
    pub severity: String,
    /// The finding code, e.g. `pkix.certificate_serial_number_out_of_range`.
    pub code: String,
    /// The message, "" when pkilint gave none.
    pub message: String,
    /// The validator that raised it.
    pub validator: String,
    /// Where in the document, e.g. `certificate.tbsCertificate.serialNumber`.
    pub node_path: String,
}

impl std::fmt::Display for PkilintFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}) at {}: {}",
            self.severity, self.code, self.validator, self.node_path, self.message
        )
    }
}

/// What one pkilint run found at severity ERROR and above, with what it printed.
#[derive(Clone, Debug)]
pub struct PkilintReport {
    /// Every finding of the report.
    pub findings: Vec<PkilintFinding>,
    /// The tool's exit status, stdout and stderr, and the file, for failure messages.
    pub output: String,
}

impl PkilintReport {
    /// Whether some finding has this code.
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// The findings' codes, in report order.
    pub fn codes(&self) -> Vec<&str> {
        self.findings.iter().map(|f| f.code.as_str()).collect()
    }
}

/// Parses the JSON report of a pkilint run (`-f JSON`) that exited with `exit_code`, refusing
/// any report of another shape than pkilint 0.13's: `{"results": [{"node_path": "...",
/// "validator": "...", "finding_descriptions": [{"severity": "...", "code": "...",
/// "message": "..." | null}, ...]}, ...]}`, where each result (pkilint lists only results
/// with findings at the threshold) has at least one finding, and the exit code is the number
/// of findings (pkilint's, capped at 255).
///
/// The checks make a renamed key, a report on stderr or a crash fail loudly instead of
/// reading as "no findings".
pub fn parse_pkilint_report(
    stdout: &str,
    exit_code: Option<i32>,
) -> Result<Vec<PkilintFinding>, String> {
    let report: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("pkilint printed no JSON report ({e})"))?;
    let Some(top) = report.as_object() else {
        return Err("pkilint's report is not a JSON object".to_string());
    };
    if let Some(other) = top.keys().find(|k| *k != "results") {
        return Err(format!("pkilint's report has an unknown key {other:?}"));
    }
    let Some(results) = top.get("results").and_then(Value::as_array) else {
        return Err("pkilint's report has no \"results\" array".to_string());
    };
    let string = |v: &Value, key: &str, what: &str| -> Result<String, String> {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{what} has no string {key:?}: {v}"))
    };
    let mut findings = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let what = format!("pkilint result {i}");
        let validator = string(result, "validator", &what)?;
        let node_path = string(result, "node_path", &what)?;
        let Some(descriptions) = result.get("finding_descriptions").and_then(Value::as_array)
        else {
            return Err(format!(
                "{what} has no \"finding_descriptions\" array: {result}"
            ));
        };
        if descriptions.is_empty() {
            return Err(format!(
                "{what} has an empty \"finding_descriptions\" array (pkilint lists only results \
                 with findings): {result}"
            ));
        }
        for f in descriptions {
            let what = format!("a finding of {what}");
            let message = match f.get("message") {
                Some(Value::String(m)) => m.clone(),
                Some(Value::Null) => String::new(),
                _ => return Err(format!("{what} has no \"message\" (string or null): {f}")),
            };
            findings.push(PkilintFinding {
                severity: string(f, "severity", &what)?,
                code: string(f, "code", &what)?,
                message,
                validator: validator.clone(),
                node_path: node_path.clone(),
            });
        }
    }
    let expected = i32::try_from(findings.len().min(255)).unwrap_or(255);
    if exit_code != Some(expected) {
        return Err(format!(
            "pkilint exited with {exit_code:?}, but its report lists {} findings",
            findings.len()
        ));
    }
    Ok(findings)
}

/// Runs a pkilint tool of the venv, `TOOL lint ARGS -s ERROR -f JSON FILE`, and returns the
/// findings at ERROR and above ([`parse_pkilint_report`]); panics, showing the output and the
/// file, when the tool cannot run or its report is not of the expected shape.
pub fn pkilint_run(tool: &str, args: &[&str], file: &Path) -> PkilintReport {
    let out = output_within(
        Command::new(pkilint_tool(tool))
            .arg("lint")
            .args(args)
            .args(["-s", "ERROR", "-f", "JSON"])
            .arg(file),
        COMMAND_DEADLINE,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bytes = std::fs::read(file).unwrap_or_default();
    let shown = match String::from_utf8(bytes.clone()) {
        Ok(text) => text,
        Err(_) => to_pem("DER", &bytes),
    };
    let output = format!(
        "`{tool} lint {} {}`: {}\nstdout:\n{stdout}\nstderr:\n{}\nfile:\n{shown}",
        args.join(" "),
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    match parse_pkilint_report(&stdout, out.status.code()) {
        Ok(findings) => PkilintReport { findings, output },
        Err(why) => panic!("{why}\n{output}"),
    }
}

/// pkilint's RFC 5280 certificate linter on a PEM or DER file (`lint_pkix_cert lint`).
pub fn pkilint_cert_findings(file: &Path) -> PkilintReport {
    pkilint_run("lint_pkix_cert", &[], file)
}

/// pkilint's CRL linter with the PKIX profile on a CRL file (`lint_crl lint -t CRL -p PKIX`).
pub fn pkilint_crl_findings(file: &Path) -> PkilintReport {
    pkilint_run("lint_crl", &["-t", "CRL", "-p", "PKIX"], file)
}

/// pkilint's RFC 6960 linter on a DER OCSP response (`lint_ocsp_response lint`).
pub fn pkilint_ocsp_findings(file: &Path) -> PkilintReport {
    pkilint_run("lint_ocsp_response", &[], file)
}

/// Lints a PEM certificate file with pkilint, asserting no ERROR or FATAL finding.
///
/// One finding is let through: pkilint's RFC 5280 linter calls a wildcard dNSName
/// (`*.example.com`) `pkix.invalid_domain_name_syntax`, since RFC 5280 knows no wildcards; the
/// tls-server profile allows them as the CA/Browser Forum's baseline requirements do.
pub fn pkilint(file: &Path, what: &str) {
    let report = pkilint_cert_findings(file);
    let wildcard = |f: &PkilintFinding| {
        f.code == "pkix.invalid_domain_name_syntax" && f.message.contains("\"*.")
    };
    assert_no_pkilint_findings(&report, wildcard, what);
}

/// Lints a DER CRL (complete or delta) with pkilint's PKIX CRL profile
/// (`lint_crl lint -t CRL -p PKIX -s ERROR -f JSON`), asserting no ERROR or FATAL finding.
pub fn pkilint_crl(file: &Path, what: &str) {
    assert_no_pkilint_findings(&pkilint_crl_findings(file), |_| false, what);
}

/// Lints a DER OCSP response with pkilint's RFC 6960 linter (`lint_ocsp_response lint -s
/// ERROR -f JSON`), asserting no ERROR or FATAL finding.
pub fn pkilint_ocsp(file: &Path, what: &str) {
    assert_no_pkilint_findings(&pkilint_ocsp_findings(file), |_| false, what);
}

/// Panics listing every finding of `report` that `allowed` does not let through.
fn assert_no_pkilint_findings(
    report: &PkilintReport,
    allowed: impl Fn(&PkilintFinding) -> bool,
    what: &str,
) {
    let findings: Vec<String> = report
        .findings
        .iter()
        .filter(|f| !allowed(f))
        .map(ToString::to_string)
        .collect();
    assert!(
        findings.is_empty(),
        "{what}: pkilint findings:\n  {}\n{}",
        findings.join("\n  "),
        report.output
    );
}

/// Lints the CA's own certificate (the first of the chain).
pub fn pkilint_ca(ca: &CaCert, what: &str) {
    let file = ca.file.with_extension("first.pem");
    std::fs::write(&file, to_pem("CERTIFICATE", &ca.ders[0])).expect("writing the CA cert");
    pkilint(&file, what);
}

/// Checks a GET /v1/certificates/{serial} record against the issuance answer.
pub fn check_record(
    rec: &Value,
    issued: &Value,
    csr: &Csr,
    profile: &str,
    requester: Option<&str>,
) {
    let serial = issued["serial"].as_str().expect("serial");
    let what = format!("record of {serial}");
    assert_eq!(rec["serial"], serial, "{what}: serial in {rec}");
    assert_eq!(
        rec["certificate"], issued["certificate"],
        "{what}: certificate PEM differs from the issuance answer"
    );
    assert_eq!(rec["status"], "valid", "{what}: status in {rec}");
    for field in ["revocation", "renewed_from"] {
        assert!(
            rec.get(field).is_some_and(Value::is_null),
            "{what}: {field} should be present and null in {rec}"
        );
    }
    assert_eq!(
        rec["renewed_by"],
        serde_json::json!([]),
        "{what}: renewed_by should be an empty list in {rec}"
    );
    assert_eq!(rec["profile"], profile, "{what}: profile in {rec}");
    assert_eq!(
        rec["subject"],
        csr.rfc4514().as_str(),
        "{what}: subject in {rec}"
    );
    let mut sans: Vec<String> = rec["sans"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: sans is not a list in {rec}"))
        .iter()
        .map(|v| v.as_str().expect("SAN strings").to_string())
        .collect();
    let mut want = csr.san_values();
    sans.sort();
    want.sort();
    assert_eq!(sans, want, "{what}: sans in {rec}");
    let req = rec["requester"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: requester is not a string in {rec}"));
    assert!(!req.is_empty(), "{what}: empty requester");
    if let Some(r) = requester {
        assert_eq!(req, r, "{what}: requester");
    }
    for field in ["not_before", "not_after"] {
        let a = parse_rfc3339(rec[field].as_str().expect("time string"));
        let b = parse_rfc3339(issued[field].as_str().expect("time string"));
        assert_eq!(a, b, "{what}: {field} differs from the issuance answer");
    }
    let issued_at = parse_rfc3339(
        rec["issued_at"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: issued_at missing in {rec}")),
    );
    let now = now_unix();
    assert!(
        issued_at <= now + 5 && issued_at >= now - 3600,
        "{what}: issued_at {issued_at} is not around now ({now})"
    );
}

// ---------------------------------------------------------------------------------------------
// Revocation, renewal, CRLs and OCSP
// ---------------------------------------------------------------------------------------------

impl Server {
    /// POST /v1/certificates/{serial}/revoke with the bootstrap RA token.
    pub fn revoke(&self, serial: &str, reason: &str, invalidity_date: Option<&str>) -> Resp {
        let mut body = serde_json::json!({ "reason": reason });
        if let Some(d) = invalidity_date {
            body["invalidity_date"] = d.into();
        }
        self.post(
            &format!("/v1/certificates/{serial}/revoke"),
            &self.tokens.ra,
            &body,
        )
    }

    /// [`Server::revoke`], asserting 200 and the new status (`revoked`, or `on_hold` for
    /// certificateHold); returns the certificate's new state.
    pub fn revoke_ok(&self, serial: &str, reason: &str) -> Value {
        let r = self.revoke(serial, reason, None);
        let want = if reason == "certificateHold" {
            "on_hold"
        } else {
            "revoked"
        };
        assert_eq!(r.status, 200, "revoking {serial} ({reason}): {r}");
        assert_eq!(r.json["status"], want, "revoking {serial} ({reason}): {r}");
        assert_eq!(
            r.json["revocation"]["reason"], reason,
            "revoking {serial}: {r}"
        );
        r.json
    }

    /// POST /v1/certificates/{serial}/release-hold with the bootstrap RA token (no body).
    pub fn release_hold(&self, serial: &str) -> Resp {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/certificates/{serial}/release-hold"),
            Some(&self.tokens.ra),
            None,
        )
    }

    /// POST /v1/certificates/{serial}/renew with the bootstrap RA token; `None` sends no body.
    pub fn renew(&self, serial: &str, body: Option<&Value>) -> Resp {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/certificates/{serial}/renew"),
            Some(&self.tokens.ra),
            body,
        )
    }

    /// GET /crl (or /crl/delta): asserts 200 and `application/pkix-crl`; the DER.
    fn crl_at(&self, path: &str) -> Vec<u8> {
        let r = self.get(path, None);
        assert_eq!(r.status, 200, "GET {path}: {r}");
        assert_eq!(
            r.content_type, "application/pkix-crl",
            "GET {path}: content type"
        );
        assert!(r.bytes.first() == Some(&0x30), "GET {path}: not DER: {r}");
        r.bytes
    }

    /// The complete CRL being served (GET /crl), DER.
    pub fn crl(&self) -> Vec<u8> {
        self.crl_at("/crl")
    }

    /// The delta CRL being served (GET /crl/delta), DER.
    pub fn delta_crl(&self) -> Vec<u8> {
        self.crl_at("/crl/delta")
    }

    /// POST /v1/crl/generate with the operator token: asserts 200 and the answer's shape
    /// `{"crl_number", "entries", "this_update", "bytes"}`; returns it.
    pub fn generate_crl(&self) -> Value {
        let r = self.request(
            reqwest::Method::POST,
            "/v1/crl/generate",
            Some(&self.tokens.operator),
            None,
        );
        assert_eq!(r.status, 200, "POST /v1/crl/generate: {r}");
        let v = r.json;
        assert!(
            v["crl_number"].is_u64() && v["entries"].is_u64() && v["bytes"].is_u64(),
            "POST /v1/crl/generate: crl_number, entries and bytes should be numbers: {v}"
        );
        let t = parse_rfc3339(v["this_update"].as_str().unwrap_or("missing"));
        assert!(
            (t - now_unix()).abs() < 120,
            "POST /v1/crl/generate: this_update {t} is not now: {v}"
        );
        v
    }

    /// The issuing CA's certificate alone (the first of the chain) in a PEM file, for
    /// `openssl ocsp -issuer`.
    pub fn issuer_file(&self) -> PathBuf {
        let ca = self.ca();
        let file = ca.file.with_extension("issuer.pem");
        if !file.is_file() {
            std::fs::write(&file, to_pem("CERTIFICATE", &ca.ders[0])).expect("writing the issuer");
        }
        file
    }

    /// Writes the certificate of an issuance answer or record to the scratch directory.
    pub fn leaf_file(&self, issued: &Value) -> PathBuf {
        let serial = issued["serial"].as_str().expect("serial");
        let file = self.scratch().join(format!("leaf-{serial}.pem"));
        let pem = issued["certificate"].as_str().expect("certificate PEM");
        std::fs::write(&file, pem).expect("writing the leaf");
        file
    }

    /// Every check on a CRL (complete or delta) in DER: `openssl crl -CAfile` says
    /// `verify OK`, pkilint's PKIX CRL linter finds no ERROR or FATAL; returns it parsed, with
    /// `openssl crl -text`.
    pub fn check_crl(&self, der: &[u8], name: &str) -> Crl {
        check_crl(self.ca(), self.scratch(), der, name)
    }

    /// Asks the OCSP responder at `url` with `openssl ocsp -issuer CA -CAfile CA -url URL
    /// TARGETS` (`-cert FILE` / `-serial 0xHEX`, nonce on), asserting `Response verify OK`, no
    /// warning (a missing nonce echo warns) and success; returns stdout and stderr.
    pub fn ocsp_ask(&self, url: &str, targets: &[&str]) -> String {
        let issuer = self.issuer_file();
        let mut args = vec![
            "ocsp",
            "-issuer",
            issuer.to_str().expect("UTF-8 path"),
            "-CAfile",
            self.ca().file.to_str().expect("UTF-8 path"),
            "-url",
            url,
        ];
        args.extend_from_slice(targets);
        let (ok, out) = openssl_ocsp(&args);
        assert!(
            ok && out.contains("Response verify OK") && !out.contains("WARNING"),
            "`openssl {}` failed or did not verify the response:\n{out}",
            args.join(" ")
        );
        out
    }

    /// A DER OCSP request (no nonce) for `targets`, made by `openssl ocsp -reqout`, in base64
    /// (not URL-encoded).
    pub fn ocsp_request_base64(&self, targets: &[&str]) -> String {
        let issuer = self.issuer_file();
        let req = self.scratch().join(format!("req-{}.der", unique()));
        let mut args = vec![
            "ocsp",
            "-issuer",
            issuer.to_str().expect("UTF-8 path"),
            "-no_nonce",
            "-reqout",
            req.to_str().expect("UTF-8 path"),
        ];
        args.extend_from_slice(targets);
        let (ok, out) = openssl_ocsp(&args);
        assert!(ok, "`openssl {}` failed:\n{out}", args.join(" "));
        openssl(&["base64", "-A", "-in", req.to_str().expect("UTF-8 path")])
            .trim()
            .to_string()
    }

    /// GET /ocsp/{encoded}: asserts HTTP 200 and `application/ocsp-response`; the DER answer.
    pub fn ocsp_get_encoded(&self, encoded: &str) -> Vec<u8> {
        let path = format!("/ocsp/{encoded}");
        let r = self.get(&path, None);
        assert_eq!(r.status, 200, "GET {path}: {r}");
        assert_eq!(
            r.content_type, "application/ocsp-response",
            "GET {path}: content type"
        );
        r.bytes
    }

    /// The RFC 6960 GET form: a request for `targets` (see [`Server::ocsp_request_base64`]),
    /// sent as GET /ocsp/{url-encoded base64}; the DER answer.
    pub fn ocsp_get(&self, targets: &[&str]) -> Vec<u8> {
        let b64 = self.ocsp_request_base64(targets);
        self.ocsp_get_encoded(&url_encode_base64(&b64))
    }

    /// Checks a DER OCSP response with `openssl ocsp -respin F -issuer CA -CAfile CA -no_nonce
    /// TARGETS`, asserting `Response verify OK`; returns the output.
    pub fn ocsp_respin(&self, der: &[u8], targets: &[&str]) -> String {
        let issuer = self.issuer_file();
        let file = self.scratch().join(format!("resp-{}.der", unique()));
        std::fs::write(&file, der).expect("writing the OCSP response");
        let mut args = vec![
            "ocsp",
            "-respin",
            file.to_str().expect("UTF-8 path"),
            "-issuer",
            issuer.to_str().expect("UTF-8 path"),
            "-CAfile",
            self.ca().file.to_str().expect("UTF-8 path"),
            "-no_nonce",
        ];
        args.extend_from_slice(targets);
        let (ok, out) = openssl_ocsp(&args);
        assert!(
            ok && out.contains("Response verify OK"),
            "`openssl {}` failed or did not verify the response:\n{out}",
            args.join(" ")
        );
        out
    }
}

/// A process-wide counter for scratch file names.
fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Percent-encodes the three base64 characters that are not safe in a URL path segment.
pub fn url_encode_base64(b64: &str) -> String {
    b64.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// Runs `openssl ARGS` (an `ocsp` command) without any proxy from the environment; returns
/// whether it succeeded and its stdout followed by its stderr.
pub fn openssl_ocsp(args: &[&str]) -> (bool, String) {
    let out = output_within(
        Command::new("openssl")
            .args(args)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY"),
        COMMAND_DEADLINE,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The status `openssl ocsp` printed for a target (`NAME: good`), and the `Reason:` line that
/// follows it, if any.
pub fn ocsp_status(out: &str, name: &str) -> (String, Option<String>) {
    let prefix = format!("{name}: ");
    let mut lines = out.lines().skip_while(|l| !l.starts_with(&prefix));
    let status = lines
        .next()
        .unwrap_or_else(|| panic!("no status for {name} in openssl's output:\n{out}"))
        [prefix.len()..]
        .trim()
        .to_string();
    let reason = lines
        .take_while(|l| l.starts_with(char::is_whitespace))
        .find_map(|l| l.trim().strip_prefix("Reason: ").map(str::to_string));
    (status, reason)
}

/// A CRL as parsed by x509-parser, with `openssl crl -text`.
#[derive(Clone, Debug)]
pub struct Crl {
    pub der: Vec<u8>,
    /// The DER in a file of the scratch directory.
    pub file: PathBuf,
    /// The CRL number.
    pub number: u128,
    /// The Delta CRL Indicator (the base CRL's number): `Some` for a delta CRL.
    pub delta_base: Option<u128>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub entries: Vec<CrlEntry>,
    /// `openssl crl -inform DER -noout -text`.
    pub text: String,
}

/// One revokedCertificates entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    /// Lower-case hex, as the API writes serials.
    pub serial: String,
    pub revoked_at: i64,
    /// The reasonCode (1 keyCompromise, 4 superseded, 6 certificateHold, 8 removeFromCRL...).
    pub reason: Option<u8>,
    pub invalidity_date: Option<i64>,
}

impl Crl {
    /// The entry for a serial.
    pub fn entry(&self, serial: &str) -> Option<&CrlEntry> {
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// The openssl text of one entry: from its `Serial Number:` line to the next one.
    pub fn entry_text(&self, serial: &str) -> Option<String> {
        let want = format!("Serial Number: {}", serial.to_uppercase());
        let mut lines = self.text.lines().skip_while(|l| !l.contains(&want));
        let first = lines.next()?;
        let mut text = format!("{first}\n");
        for l in lines.take_while(|l| !l.contains("Serial Number:") && !l.contains("Signature")) {
            text.push_str(l);
            text.push('\n');
        }
        Some(text)
    }
}

/// A DER INTEGER (tag, short length, content) as u128.
fn der_uint(value: &[u8]) -> Option<u128> {
    match value {
        [0x02, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() <= 17 => {
            Some(rest.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b)))
        }
        _ => None,
    }
}

/// Parses a DER CRL with x509-parser, asserting that it parses without trailing bytes and
/// carries a CRL number (`file` and `text` are left empty).
pub fn parse_crl(der: &[u8], what: &str) -> Crl {
    use x509_parser::revocation_list::CertificateRevocationList;
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .unwrap_or_else(|e| panic!("{what}: the CRL does not parse: {e}"));
    assert!(rest.is_empty(), "{what}: trailing bytes after the CRL");
    let number: u128 = crl
        .crl_number()
        .unwrap_or_else(|| panic!("{what}: no CRL number"))
        .to_string()
        .parse()
        .unwrap_or_else(|e| panic!("{what}: CRL number too large: {e}"));
    let delta_base = crl
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "2.5.29.27")
        .map(|e| {
            assert!(e.critical, "{what}: Delta CRL Indicator not critical");
            der_uint(e.value)
                .unwrap_or_else(|| panic!("{what}: Delta CRL Indicator is not an INTEGER"))
        });
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| CrlEntry {
            serial: hex::encode(r.raw_serial()),
            revoked_at: r.revocation_date.timestamp(),
            reason: r.reason_code().map(|(_, c)| c.0),
            invalidity_date: r.invalidity_date().map(|(_, t)| t.timestamp()),
        })
        .collect();
    Crl {
        der: der.to_vec(),
        file: PathBuf::new(),
        number,
        delta_base,
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        entries,
        text: String::new(),
    }
}

/// Every check on a DER CRL: `openssl crl -inform DER -CAfile CA -noout` says `verify OK`,
/// `lint_crl -t CRL -p PKIX` finds no ERROR or FATAL, x509-parser parses it (thisUpdate around
/// now, nextUpdate after it). `name` names the file written to `scratch`.
pub fn check_crl(ca: &CaCert, scratch: &Path, der: &[u8], name: &str) -> Crl {
    let what = format!("CRL {name}");
    let file = scratch.join(format!("{name}.der"));
    std::fs::write(&file, der).expect("writing the CRL");
    let file_s = file.to_str().expect("UTF-8 path");
    let ca_s = ca.file.to_str().expect("UTF-8 path");
    let out = output_within(
        Command::new("openssl").args([
            "crl", "-inform", "DER", "-in", file_s, "-CAfile", ca_s, "-noout",
        ]),
        COMMAND_DEADLINE,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.contains("verify OK"),
        "{what}: `openssl crl -CAfile` did not say verify OK ({}):\n{said}",
        out.status
    );
    let text = openssl(&["crl", "-inform", "DER", "-in", file_s, "-noout", "-text"]);
    pkilint_crl(&file, &what);
    let crl = parse_crl(der, &what);
    let (this_update, next_update) = (crl.this_update, crl.next_update);
    let now = now_unix();
    assert!(
        (this_update - now).abs() < 3600,
        "{what}: thisUpdate {this_update} is not around now ({now})"
    );
    assert!(
        next_update.is_some_and(|n| n > this_update),
        "{what}: nextUpdate {next_update:?} missing or not after thisUpdate"
    );
    Crl { file, text, ..crl }
}

/// `openssl verify -crl_check -CAfile <CA chain + CRLs in PEM> leaf.pem`: whether it
/// succeeded, and its output.
///
/// Only for complete CRLs: OpenSSL applies delta CRLs only when the certificate or the CRL
/// carries a freshestCRL extension, and without `-extended_crl` it may even take a delta CRL
/// for a complete one.
pub fn openssl_verify_crl(ca: &CaCert, crls: &[&Crl], leaf: &Path) -> (bool, String) {
    assert!(
        crls.iter().all(|c| c.delta_base.is_none()),
        "openssl_verify_crl takes complete CRLs only"
    );
    let mut bundle = ca.pem.clone();
    if !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    for crl in crls {
        bundle.push_str(&to_pem("X509 CRL", &crl.der));
    }
    let file = leaf.with_extension(format!("bundle{}.pem", unique()));
    std::fs::write(&file, bundle).expect("writing the CA and CRL bundle");
    let out = output_within(
        Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(&file)
            .arg(leaf),
        COMMAND_DEADLINE,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success() && text.lines().any(|l| l.trim_end().ends_with(": OK"));
    (ok, text)
}
