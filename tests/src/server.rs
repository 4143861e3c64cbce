//! A running `ca-server serve` on a loopback port ([`Server`]): starting it on a data
//! directory, reading what it prints, stopping it gracefully (SIGTERM) or by SIGKILL. The
//! requests a test sends to it are in [`crate::api`].

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::api::http_client;
use crate::binary::server_bin;
use crate::data_dir::Tokens;
use crate::judges::certificates::CaCert;

/// How long a server may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a server may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

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
    pub(crate) client: reqwest::blocking::Client,
    /// Set when the server owns its data directory (`Server::fresh`), which goes when it is
    /// dropped.
    _owned_dir: Option<TempDir>,
    /// Scratch space for files handed to openssl and pkilint.
    scratch: TempDir,
    ca: OnceLock<CaCert>,
}

impl Server {
    /// A server on a fresh temporary data directory (a development CA is created on start).
    pub fn fresh() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server::serve(tmp.path());
        s._owned_dir = Some(tmp);
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
        Server::serve_wrapped(dir, listen, env, &[])
    }

    /// [`Server::serve_with_env`], the server run by the command `wrapper` (e.g. `nsenter
    /// ... --`, see [`crate::private_tmpfs::PrivateTmpfs::wrapper`]), which must exec it so
    /// that the child's pid is the server's; empty: run directly.
    pub fn serve_wrapped(
        dir: &Path,
        listen: &str,
        env: &[(&str, std::ffi::OsString)],
        wrapper: &[std::ffi::OsString],
    ) -> Server {
        let mut child = spawn_serve(dir, listen, env, wrapper);
        let log = Arc::new(Mutex::new(String::new()));
        let err_reader = copy_stderr(&mut child, &log);
        let (tx, rx) = mpsc::channel::<(String, Option<String>)>();
        let out_reader = copy_stdout(&mut child, &log, tx);

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
            _owned_dir: None,
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
}

/// Spawns `ca-server serve --data-dir DIR --listen LISTEN` (with `--public-listen
/// 127.0.0.1:0` when the configuration has a `[public] listen`), its outputs piped, run by
/// `wrapper` when it is not empty.
fn spawn_serve(
    dir: &Path,
    listen: &str,
    env: &[(&str, std::ffi::OsString)],
    wrapper: &[std::ffi::OsString],
) -> Child {
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
    let public: &[&str] = if config.contains("\n[public]\nlisten") {
        &["--public-listen", "127.0.0.1:0"]
    } else {
        &[]
    };
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(server_bin());
            command
        }
        None => Command::new(server_bin()),
    };
    command
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
        .expect("spawning ca-server serve")
}

/// A thread copying the server's stderr into `log`, each line prefixed `[stderr] `.
fn copy_stderr(child: &mut Child, log: &Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    let stderr = child.stderr.take().expect("stderr pipe");
    let err_log = Arc::clone(log);
    std::thread::spawn(move || {
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
    })
}

/// A thread copying the server's stdout into `log`, each line prefixed `[stdout] `, which
/// sends the URL of the `listening on` line on `tx`, with the status listener's URL when one
/// was printed before it.
fn copy_stdout(
    child: &mut Child,
    log: &Arc<Mutex<String>>,
    tx: mpsc::Sender<(String, Option<String>)>,
) -> std::thread::JoinHandle<()> {
    let stdout = child.stdout.take().expect("stdout pipe");
    let out_log = Arc::clone(log);
    std::thread::spawn(move || {
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
    })
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
