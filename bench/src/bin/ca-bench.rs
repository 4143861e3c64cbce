//! `ca-bench`: drives a running ca-server and reports certificates per second, latency
//! percentiles and errors by code, next to the machine's limit L measured just before.
//! `--mode acme` drives an ACME server (ca-server's, or pebble) instead and reports orders
//! per second next to L_acme, the limit the crypto of an order allows (`bench::acme`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::cpu;
use bench::limit::{self, Limit};
use bench::report::{Rendered, ReportDir, RunInfo, Scenario, ScenarioLabel};
use bench::{csr_der, CsrKey};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use keys::pkcs11::{Pkcs11Config, Pkcs11Pin, Pkcs11Signer};
use keys::KeyAlgorithm;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Load generator for ca-server.
#[derive(Debug, Parser)]
#[command(name = "ca-bench", version)]
struct Args {
    /// Base URL of the server; with `--mode acme`, the ACME directory's URL
    /// (`http://HOST:PORT/acme/directory`, or pebble's `https://127.0.0.1:14000/dir`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// RA bearer token; by default the `ra` token of DATA_DIR/bootstrap-tokens.json.
    #[arg(long)]
    token: Option<String>,
    /// Data directory whose bootstrap tokens to use.
    #[arg(long, default_value = "./ca-data")]
    data_dir: PathBuf,
    /// Endpoint: one certificate per request, batches, or complete ACME orders (RFC 8555).
    #[arg(long, value_enum, default_value = "single")]
    mode: Mode,
    /// Which server: ca-server, or `cfssl serve` (its /api/v1/cfssl/sign, single mode only)
    /// for a side-by-side comparison.
    #[arg(long, value_enum, default_value = "ca")]
    target: Target,
    /// Single-mode request body: the contract's JSON (PEM CSR, JSON answer), or the DER
    /// form (`application/pkcs10` in, `application/pkix-cert` out; docs/API.md).
    #[arg(long, value_enum, default_value = "json")]
    body: BodyFormat,
    /// Requests per batch call (batch mode).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Total request rate cap per second (0: as fast as the server answers).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// CSR key type.
    #[arg(long, value_enum, default_value = "ec-p256")]
    key_type: KeyArg,
    /// The CA's key type, for measuring L.
    #[arg(long, default_value = "ec-p256")]
    ca_key_type: KeyAlgorithm,
    /// Distinct pre-generated CSRs (used round-robin); 512 by default, 50,000 with
    /// `--mode acme` (one per order, each for its own name `o<n>.bench.example.com`).
    #[arg(long)]
    csrs: Option<usize>,
    /// ACME: accounts created before the run (worker i orders with account i mod N).
    #[arg(long, default_value_t = 16)]
    accounts: usize,
    /// ACME: the port of the http-01 responder ca-bench runs on 127.0.0.1 (and ::1): the
    /// server's `[acme] http01_port` (pebble's `httpPort`).
    #[arg(long, default_value_t = 5002)]
    http01_port: u16,
    /// ACME: the CA certificates (PEM) to trust for an https:// directory (pebble's).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// ACME: milliseconds before the first poll of an authorization or order, doubling
    /// for each next poll up to --poll-max-ms (the servers' Retry-After of 1 s would hold
    /// each worker to one order a second).
    #[arg(long, default_value_t = 5.0)]
    poll_ms: f64,
    /// ACME: the longest wait between two polls, in milliseconds.
    #[arg(long, default_value_t = 1000.0)]
    poll_max_ms: f64,
    /// Profile to request.
    #[arg(long, default_value = "tls-server")]
    profile: String,
    /// The CA key is in this PKCS#11 module's token (the server's `[ca.pkcs11]`): L is then
    /// L_hsm, with the token's signing rate through a session pool (one session per core)
    /// instead of ring's.
    #[arg(long, requires = "pkcs11_token")]
    pkcs11_module: Option<PathBuf>,
    /// The token's label (with --pkcs11-module).
    #[arg(long)]
    pkcs11_token: Option<String>,
    /// The CA key's label in the token (with --pkcs11-module).
    #[arg(long, default_value = "ca-key")]
    pkcs11_key_label: String,
    /// A file (mode 0600) holding the token's user PIN; without it, the PIN is read from
    /// the environment variable CA_PKCS11_PIN.
    #[arg(long)]
    pkcs11_pin_file: Option<PathBuf>,
    /// Seconds spent measuring each rate of L (0 skips L).
    #[arg(long, default_value_t = 2.0)]
    limit_seconds: f64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The server's process id (same machine): report the CPU time per certificate of each
    /// of its thread groups and of this client.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label for the scenario in the JSON (with --report: its file name; by default the
    /// name bench/run-all.sh gives the same scenario, e.g. `single-c64`, `batch100-c4`;
    /// the report's ACME section reads `acme-ca` and `acme-pebble`).
    #[arg(long, default_value = "")]
    label: String,
    /// Also write the result into this report folder (results/LABEL.json and run.json, the
    /// layout of bench/run-all.sh's output, where the results of several runs accumulate),
    /// then render the folder's RESULTS.md and figures (PNG) with bench/render-results.py
    /// when a python3 with matplotlib is here; otherwise print how to render it later.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// The renderer for --report (default: render-results.py of the source tree ca-bench
    /// was built from).
    #[arg(long, value_name = "PATH", requires = "report")]
    renderer: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Target {
    Ca,
    Cfssl,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Single,
    Batch,
    Acme,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum BodyFormat {
    Json,
    Der,
}

impl BodyFormat {
    fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Der => "application/pkcs10",
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KeyArg {
    #[value(name = "ec-p256")]
    EcP256,
    #[value(name = "ec-p384")]
    EcP384,
    #[value(name = "ed25519")]
    Ed25519,
}

impl From<KeyArg> for CsrKey {
    fn from(k: KeyArg) -> Self {
        match k {
            KeyArg::EcP256 => CsrKey::EcP256,
            KeyArg::EcP384 => CsrKey::EcP384,
            KeyArg::Ed25519 => CsrKey::Ed25519,
        }
    }
}

/// What all connections share.
struct Shared {
    /// `host:port` to connect to.
    address: String,
    /// The request target (path and query).
    path: String,
    host: HeaderValue,
    authorization: HeaderValue,
    body: BodyFormat,
    bodies: Vec<Bytes>,
    next: AtomicU64,
    issued: AtomicU64,
    stop: AtomicBool,
    latencies_us: Mutex<Vec<u32>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn error(&self, code: String) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(code).or_default() += 1;
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    label: String,
    target: Target,
    mode: Mode,
    body: BodyFormat,
    connections: usize,
    batch_size: usize,
    key_type: CsrKey,
    ca_key_type: String,
    rate_cap: f64,
    seconds: f64,
    certificates: u64,
    certificates_per_sec: f64,
    fraction_of_limit: Option<f64>,
    latency_ms: BTreeMap<&'static str, f64>,
    errors: BTreeMap<String, u64>,
    limit: Option<Limit>,
    /// CPU microseconds per certificate by thread group (`server:NAME`, `client`), with
    /// `--server-pid`.
    cpu_us_per_certificate: BTreeMap<String, f64>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ca-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn token(args: &Args) -> Result<String, String> {
    if args.target == Target::Cfssl {
        return Ok(String::new());
    }

    if let Some(t) = &args.token {
        return Ok(t.clone());
    }
    let path = args.data_dir.join("bootstrap-tokens.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("reading {} (or pass --token): {e}", path.display()))?;
    let tokens: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    tokens["ra"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("{} has no ra token", path.display()))
}

fn bodies(args: &Args) -> Result<Vec<Bytes>, String> {
    let csrs = args.csrs.unwrap_or(512);
    eprint!("generating {csrs} CSRs ...");
    let mut ders = Vec::with_capacity(csrs);
    for i in 0..csrs.max(1) {
        ders.push(
            csr_der(args.key_type.into(), &format!("h{i}.bench.example.com"))
                .map_err(|e| e.to_string())?,
        );
    }
    eprintln!(" done");
    if args.body == BodyFormat::Der {
        return Ok(ders.into_iter().map(Bytes::from).collect());
    }
    let requests: Vec<Value> = ders
        .iter()
        .map(|der| {
            let pem = ca_core::armor::to_pem("CERTIFICATE REQUEST", der);
            match args.target {
                Target::Ca => json!({"csr": pem, "profile": args.profile}),
                Target::Cfssl => json!({"certificate_request": pem}),
            }
        })
        .collect();
    Ok(match args.mode {
        Mode::Single => requests
            .iter()
            .map(|r| Bytes::from(r.to_string()))
            .collect(),
        Mode::Batch | Mode::Acme => requests
            .chunks(args.batch_size.max(1))
            .cycle()
            .take(requests.len().div_ceil(args.batch_size.max(1)).max(8))
            .map(|chunk| Bytes::from(json!({"requests": chunk}).to_string()))
            .collect(),
    })
}

/// The CA key in the token named by `--pkcs11-*`, with one session per core.
fn open_token_key(args: &Args, module: &std::path::Path) -> Result<Pkcs11Signer, String> {
    let pin = match &args.pkcs11_pin_file {
        Some(file) => Pkcs11Pin::from_file(file),
        None => Pkcs11Pin::from_env(keys::pkcs11::PIN_ENV),
    }
    .map_err(|e| e.to_string())?;
    let config = Pkcs11Config {
        module: module.to_path_buf(),
        token_label: args.pkcs11_token.clone().unwrap_or_default(),
        key_label: args.pkcs11_key_label.clone(),
        pin,
        sessions: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    Pkcs11Signer::open(&config).map_err(|e| e.to_string())
}

fn run(mut args: Args) -> Result<(), String> {
    if args.target == Target::Cfssl && !matches!(args.mode, Mode::Single) {
        return Err("cfssl has only the single endpoint".into());
    }
    // With --report the label names the result's file: checked (or chosen) before the run.
    if args.report.is_some() {
        let label = if args.label.is_empty() {
            ScenarioLabel::for_scenario(&Scenario {
                acme: matches!(args.mode, Mode::Acme),
                cfssl: args.target == Target::Cfssl,
                pkcs11: args.pkcs11_module.is_some(),
                ca_key: &args.ca_key_type.to_string(),
                batch_size: matches!(args.mode, Mode::Batch).then_some(args.batch_size),
                connections: args.connections,
                der: args.body == BodyFormat::Der,
                rate: args.rate,
            })
        } else {
            ScenarioLabel::new(&args.label).map_err(|e| e.to_string())?
        };
        args.label = label.as_str().to_string();
    }
    let acme = matches!(args.mode, Mode::Acme);
    // ACME account keys (ES256) and CSRs are P-256: L_acme's verifications are P-256 ones.
    let csr_key: CsrKey = if acme {
        CsrKey::EcP256
    } else {
        args.key_type.into()
    };
    if args.body == BodyFormat::Der
        && (args.target == Target::Cfssl || matches!(args.mode, Mode::Batch))
    {
        return Err("--body der is ca-server's single-request form only".into());
    }
    let limit = if args.limit_seconds > 0.0 {
        let per_rate = Duration::from_secs_f64(args.limit_seconds);
        let measured = match &args.pkcs11_module {
            Some(module) => {
                eprintln!("measuring the limit L_hsm (the token's sign rate, ring's verify) ...");
                let signer = open_token_key(&args, module)?;
                limit::measure_with(&signer, "pkcs11", csr_key, per_rate)
            }
            None => {
                eprintln!("measuring the machine's limit L (ring sign and verify rates) ...");
                limit::measure(args.ca_key_type, csr_key, per_rate)
            }
        };
        Some(measured.map_err(|e| e.to_string())?)
    } else {
        None
    };
    if let Some(l) = &limit {
        eprintln!(
            "L = {} cores / (1/{:.0} sign/s + 1/{:.0} verify/s) = {:.0} certificates/s; \
             all cores at once: 1/(1/{:.0} + 1/{:.0}) = {:.0}; {} signing costs {:.1} CPU µs",
            l.cores,
            l.sign_per_sec,
            l.verify_per_sec,
            l.certificates_per_sec,
            l.parallel_sign_per_sec,
            l.parallel_verify_per_sec,
            l.parallel_certificates_per_sec,
            l.signer,
            l.sign_cpu_us
        );
    }
    if acme {
        return run_acme(&args, limit);
    }
    let address = args
        .url
        .strip_prefix("http://")
        .ok_or("--url must be a plain http:// URL (ca-bench drives loopback servers)")?
        .trim_end_matches('/')
        .to_string();
    let shared = Arc::new(Shared {
        address: address.clone(),
        host: HeaderValue::from_str(&address).map_err(|e| e.to_string())?,
        path: match (args.target, args.mode, args.body) {
            (_, Mode::Acme, _) => String::new(), // run_acme's
            (Target::Cfssl, _, _) => "/api/v1/cfssl/sign".to_string(),
            (Target::Ca, Mode::Single, BodyFormat::Json) => "/v1/certificates".to_string(),
            (Target::Ca, Mode::Single, BodyFormat::Der) => {
                format!("/v1/certificates?profile={}", args.profile)
            }
            (Target::Ca, Mode::Batch, _) => "/v1/certificates/batch".to_string(),
        },
        authorization: HeaderValue::from_str(&format!("Bearer {}", token(&args)?))
            .map_err(|_| "the token is not a valid header value".to_string())?,
        body: args.body,
        bodies: bodies(&args)?,
        next: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        latencies_us: Mutex::new(Vec::new()),
        errors: Mutex::new(BTreeMap::new()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let cpu_before = args
        .server_pid
        .map(|pid| (cpu::sample(pid), cpu::sample(std::process::id())));
    let (seconds, issued) = runtime.block_on(drive(&args, shared.clone()));
    let cpu_us_per_certificate = match (args.server_pid, cpu_before) {
        (Some(pid), Some((server, client))) if issued > 0 => {
            let per_cert = |d: Duration| d.as_secs_f64() * 1e6 / issued as f64;
            let mut split: BTreeMap<String, f64> = cpu::used(&server, &cpu::sample(pid))
                .into_iter()
                .map(|(name, d)| (format!("server:{name}"), per_cert(d)))
                .collect();
            let client: Duration = cpu::used(&client, &cpu::sample(std::process::id()))
                .values()
                .sum();
            split.insert("client".into(), per_cert(client));
            split
        }
        _ => BTreeMap::new(),
    };
    let mut latencies = shared
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    let per_sec = issued as f64 / seconds;
    let report = Report {
        label: args.label.clone(),
        target: args.target,
        mode: args.mode,
        body: args.body,
        connections: args.connections,
        batch_size: args.batch_size,
        key_type: args.key_type.into(),
        ca_key_type: args.ca_key_type.to_string(),
        rate_cap: args.rate,
        seconds,
        certificates: issued,
        certificates_per_sec: per_sec,
        fraction_of_limit: limit.map(|l| per_sec / l.certificates_per_sec),
        latency_ms: BTreeMap::from([
            ("p50", pct(0.50)),
            ("p90", pct(0.90)),
            ("p99", pct(0.99)),
            ("max", pct(1.0)),
        ]),
        errors: shared.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        limit,
        cpu_us_per_certificate,
    };
    print_table(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    to_report(&args, &report)
}

/// `--report DIR`: the result into the folder under its label, then the folder rendered.
fn to_report<T: Serialize>(args: &Args, result: &T) -> Result<(), String> {
    let Some(dir) = &args.report else {
        return Ok(());
    };
    let label = ScenarioLabel::new(&args.label).map_err(|e| e.to_string())?;
    let folder = ReportDir::new(dir);
    let path = write_report(&folder, &label, result)?;
    println!("result written to {}", path.display());
    let renderer = args.renderer.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/render-results.py"))
    });
    match folder.render(&renderer).map_err(|e| e.to_string())? {
        Rendered::Drawn { markdown, figures } => {
            println!("report: {}", markdown.display());
            for figure in figures {
                println!("figure: {}", figure.display());
            }
        }
        Rendered::Later { why, command } => {
            println!("report not rendered: {why}; render it later with\n  {command}");
        }
    }
    Ok(())
}

/// Writes one result into the report folder, with this machine and the time as run.json.
fn write_report<T: Serialize>(
    folder: &ReportDir,
    label: &ScenarioLabel,
    result: &T,
) -> Result<PathBuf, String> {
    folder
        .write(label, result, &RunInfo::now("ca-bench --report"))
        .map_err(|e| e.to_string())
}

async fn drive(args: &Args, shared: Arc<Shared>) -> (f64, u64) {
    let started = Instant::now();
    let per_connection =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
    let mut tasks = tokio::task::JoinSet::new();
    let connections = args.connections.max(1);
    for i in 0..connections {
        let shared = shared.clone();
        // Paced connections start staggered over one period, so that the load is even
        // instead of arriving in bursts of one request per connection.
        let pace = per_connection.map(|p| (p, p.mul_f64(i as f64 / connections as f64)));
        tasks.spawn(connection(shared, pace));
    }
    let duration = Duration::from_secs_f64(args.duration);
    let mut last = 0;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration.saturating_sub(started.elapsed())))
            .await;
        let issued = shared.issued.load(Ordering::Relaxed);
        let errors: u64 = shared.errors.lock().map(|e| e.values().sum()).unwrap_or(0);
        eprint!(
            "\r{:6.1} s  {:>9} certificates  {:>8.0}/s now  {:>6} errors   ",
            started.elapsed().as_secs_f64(),
            issued,
            (issued - last) as f64,
            errors
        );
        last = issued;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let issued = shared.issued.load(Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    eprintln!();
    (seconds, issued)
}

/// One keep-alive HTTP/1.1 connection (hyper's client connection, no pool in between),
/// sending one request at a time until the run ends. A request that fails on the wire is
/// counted as a transport error; the connection is then opened again, as it is, uncounted,
/// when the server closed it between two requests.
async fn connection(shared: Arc<Shared>, pace: Option<(Duration, Duration)>) {
    let mut ticker = pace.map(|(period, offset)| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    let mut sender: Option<Sender> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(send) = sender.as_mut() {
            if send.ready().await.is_err() {
                // Closed by the server between two requests (nothing was sent): open another.
                sender = None;
            }
        }
        let send = match sender.as_mut() {
            Some(send) => send,
            None => match connect(&shared.address).await {
                Ok(send) => sender.insert(send),
                Err(e) => {
                    shared.error(format!("transport: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed) as usize % shared.bodies.len();
        let sent = Instant::now();
        let outcome = exchange(&shared, send, shared.bodies[i].clone()).await;
        let elapsed = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if shared.stop.load(Ordering::Relaxed) {
            break; // answers after the end are not counted
        }
        if let Ok(mut l) = shared.latencies_us.lock() {
            l.push(elapsed);
        }
        match outcome {
            Ok((status, body)) => count(&shared, status, &body),
            Err(e) => {
                shared.error(format!("transport: {e}"));
                sender = None;
            }
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Opens a connection to `address` and starts driving it on the runtime.
async fn connect(address: &str) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request and reads its whole answer.
async fn exchange(
    shared: &Shared,
    sender: &mut Sender,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let request = hyper::Request::post(shared.path.as_str())
        .header(header::HOST, shared.host.clone())
        .header(header::AUTHORIZATION, shared.authorization.clone())
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static(shared.body.content_type()),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// The parts of an answer the load generator looks at (ca-server's issuance, batch and error
/// answers, and cfssl's); everything else is skipped unparsed, so that the client spends as
/// little as it can of the machine it shares with the server.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Answer {
    success: Option<bool>,
    results: Option<Vec<BatchItem>>,
    error: Option<ErrorCode>,
    errors: Vec<ErrorMessage>,
}

#[derive(Deserialize)]
struct BatchItem {
    #[serde(default)]
    error: Option<ErrorCode>,
}

#[derive(Deserialize)]
struct ErrorCode {
    code: String,
}

#[derive(Deserialize)]
struct ErrorMessage {
    message: String,
}

fn count(shared: &Shared, status: StatusCode, body: &[u8]) {
    if shared.body == BodyFormat::Der && status.is_success() {
        shared.issued.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let answer: Answer = serde_json::from_slice(body).unwrap_or_default();
    if let Some(results) = answer.results {
        for r in results {
            match r.error {
                Some(e) => shared.error(e.code),
                None => {
                    shared.issued.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    } else if status.is_success() && answer.success != Some(false) {
        shared.issued.fetch_add(1, Ordering::Relaxed);
    } else {
        let code = answer
            .error
            .map(|e| e.code)
            .or_else(|| answer.errors.into_iter().next().map(|e| e.message))
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        shared.error(code);
    }
}

fn print_table(r: &Report) {
    println!("| scenario | certificates/s | fraction of L | p50 ms | p90 ms | p99 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    let errors = if r.errors.is_empty() {
        "0".to_string()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| {} {:?} x{} c{} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        r.label,
        r.mode,
        if matches!(r.mode, Mode::Batch) {
            r.batch_size
        } else {
            1
        },
        r.connections,
        r.certificates_per_sec,
        r.fraction_of_limit
            .map_or_else(|| "-".to_string(), |f| format!("{f:.2}")),
        r.latency_ms["p50"],
        r.latency_ms["p90"],
        r.latency_ms["p99"],
        r.latency_ms["max"],
        errors
    );
    if !r.cpu_us_per_certificate.is_empty() {
        let parts: Vec<String> = r
            .cpu_us_per_certificate
            .iter()
            .filter(|(_, us)| **us >= 0.05)
            .map(|(name, us)| format!("{name} {us:.1}"))
            .collect();
        let total: f64 = r.cpu_us_per_certificate.values().sum();
        println!(
            "CPU µs per certificate: {} (total {total:.1})",
            parts.join(", ")
        );
    }
    if let Some(l) = &r.limit {
        println!(
            "L = {} cores / (1/{:.0} + 1/{:.0}) = {:.0} certificates/s; measured with all \
             cores at once: {:.0}",
            l.cores,
            l.sign_per_sec,
            l.verify_per_sec,
            l.certificates_per_sec,
            l.parallel_certificates_per_sec
        );
    }
}

/// The result of an ACME scenario.
#[derive(Debug, Serialize)]
struct AcmeReport {
    label: String,
    mode: Mode,
    directory: String,
    connections: usize,
    accounts: usize,
    ca_key_type: String,
    seconds: f64,
    orders: u64,
    orders_per_sec: f64,
    /// JWS requests per completed order in the client's flow: 5 + k + m.
    jws_per_order: f64,
    /// Average authorization polls (k) and order polls (m) per completed order.
    authz_polls_per_order: f64,
    order_polls_per_order: f64,
    /// Verifications L_acme counts per order: the JWS requests and the CSR.
    verifications_per_order: f64,
    /// All JWS requests sent during the run (failed and unfinished orders, badNonce
    /// retries included) per completed order.
    jws_sent_per_order: f64,
    /// L_acme = cores / (verifications_per_order/verify + 1/sign).
    limit_orders_per_sec: Option<f64>,
    /// The same from the rates of all cores at once.
    parallel_limit_orders_per_sec: Option<f64>,
    fraction_of_limit: Option<f64>,
    latency_ms: BTreeMap<&'static str, f64>,
    errors: BTreeMap<String, u64>,
    outcome: bench::acme::AcmeOutcome,
    limit: Option<Limit>,
    /// CPU microseconds per order by thread group (`server:NAME`, `client`), with
    /// `--server-pid`.
    cpu_us_per_order: BTreeMap<String, f64>,
}

fn run_acme(args: &Args, limit: Option<Limit>) -> Result<(), String> {
    let options = bench::acme::AcmeOptions {
        directory: args.url.clone(),
        accounts: args.accounts.max(1),
        connections: args.connections.max(1),
        duration: Duration::from_secs_f64(args.duration),
        csrs: args.csrs.unwrap_or(50_000),
        http01_port: args.http01_port,
        ca_file: args.ca_file.clone(),
        poll_first: Duration::from_secs_f64(args.poll_ms.max(0.0) / 1000.0),
        poll_max: Duration::from_secs_f64(args.poll_max_ms.max(args.poll_ms).max(0.0) / 1000.0),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The CPU is sampled around the orders only: run() sets up (directory, responder, CSRs,
    // accounts) before its clock starts, so the samples are taken by its start hook.
    let cpu_before: Mutex<Option<(cpu::Sample, cpu::Sample)>> = Mutex::new(None);
    let outcome = runtime.block_on(bench::acme::run(&options, || {
        if let Some(pid) = args.server_pid {
            if let Ok(mut before) = cpu_before.lock() {
                *before = Some((cpu::sample(pid), cpu::sample(std::process::id())));
            }
        }
    }))?;
    let orders = outcome.orders;
    let cpu_us_per_order = match (
        args.server_pid,
        cpu_before.lock().ok().and_then(|b| b.clone()),
    ) {
        (Some(pid), Some((server, client))) if orders > 0 => {
            let per_order = |d: Duration| d.as_secs_f64() * 1e6 / orders as f64;
            let mut split: BTreeMap<String, f64> = cpu::used(&server, &cpu::sample(pid))
                .into_iter()
                .map(|(name, d)| (format!("server:{name}"), per_order(d)))
                .collect();
            let client: Duration = cpu::used(&client, &cpu::sample(std::process::id()))
                .values()
                .sum();
            split.insert("client".into(), per_order(client));
            split
        }
        _ => BTreeMap::new(),
    };
    let mut latencies = outcome.latencies_us.clone();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    let per_order = |n: u64| {
        if orders == 0 {
            0.0
        } else {
            n as f64 / orders as f64
        }
    };
    let jws_per_order = outcome.jws_per_order();
    let verifications = jws_per_order + 1.0;
    let orders_per_sec = orders as f64 / outcome.seconds;
    let limit_orders = limit
        .filter(|_| orders > 0)
        .map(|l| l.acme_orders_per_sec(verifications));
    let report = AcmeReport {
        label: args.label.clone(),
        mode: args.mode,
        directory: args.url.clone(),
        connections: options.connections,
        accounts: options.accounts,
        ca_key_type: args.ca_key_type.to_string(),
        seconds: outcome.seconds,
        orders,
        orders_per_sec,
        jws_per_order,
        authz_polls_per_order: per_order(outcome.authz_polls),
        order_polls_per_order: per_order(outcome.order_polls),
        verifications_per_order: verifications,
        jws_sent_per_order: per_order(outcome.jws_requests),
        limit_orders_per_sec: limit_orders,
        parallel_limit_orders_per_sec: limit
            .filter(|_| orders > 0)
            .map(|l| l.parallel_acme_orders_per_sec(verifications)),
        fraction_of_limit: limit_orders.map(|l| orders_per_sec / l),
        latency_ms: BTreeMap::from([
            ("p50", pct(0.50)),
            ("p90", pct(0.90)),
            ("p99", pct(0.99)),
            ("max", pct(1.0)),
        ]),
        errors: outcome.errors.clone(),
        outcome,
        limit,
        cpu_us_per_order,
    };
    print_acme_table(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    to_report(args, &report)
}

fn print_acme_table(r: &AcmeReport) {
    println!(
        "| scenario | orders/s | fraction of L_acme | JWS/order (k authz polls, m order polls) \
         | p50 ms | p90 ms | p99 ms | max ms | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let errors = if r.errors.is_empty() {
        "0".to_string()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| {} acme c{} a{} | {:.1} | {} | {:.2} (k {:.2}, m {:.2}) | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
        r.label,
        r.connections,
        r.accounts,
        r.orders_per_sec,
        r.fraction_of_limit
            .map_or_else(|| "-".to_string(), |f| format!("{f:.3}")),
        r.jws_per_order,
        r.authz_polls_per_order,
        r.order_polls_per_order,
        r.latency_ms["p50"],
        r.latency_ms["p90"],
        r.latency_ms["p99"],
        r.latency_ms["max"],
        errors
    );
    let o = &r.outcome;
    println!(
        "{} orders in {:.1} s; JWS sent per order {:.2} (all requests of the run); badNonce \
         retries {}, newNonce requests {}; http-01 answered {}, unknown token {}{}",
        o.orders,
        o.seconds,
        r.jws_sent_per_order,
        o.bad_nonce_retries,
        o.new_nonce_requests,
        o.http01_answered,
        o.http01_unknown,
        if o.names_reused {
            "; names were ordered again (more orders than --csrs)"
        } else {
            ""
        }
    );
    if o.stalled {
        println!(
            "STALLED: no order completed in two consecutive seconds (orders each second: {:?})",
            o.orders_each_second
        );
    }
    if !r.cpu_us_per_order.is_empty() {
        let parts: Vec<String> = r
            .cpu_us_per_order
            .iter()
            .filter(|(_, us)| **us >= 0.5)
            .map(|(name, us)| format!("{name} {us:.0}"))
            .collect();
        let total: f64 = r.cpu_us_per_order.values().sum();
        println!("CPU µs per order: {} (total {total:.0})", parts.join(", "));
    }
    if let (Some(l), Some(limit)) = (&r.limit, r.limit_orders_per_sec) {
        println!(
            "L_acme = {} cores / ({:.2} verifications/{:.0} verify/s + 1/{:.0} sign/s) = {:.0} \
             orders/s; measured with all cores at once: {:.0}",
            l.cores,
            r.verifications_per_order,
            l.verify_per_sec,
            l.sign_per_sec,
            limit,
            r.parallel_limit_orders_per_sec.unwrap_or(0.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result as a load run gives it, with made-up figures.
    fn synthetic(label: &str, mode: Mode, connections: usize, per_sec: f64) -> Report {
        let limit = Limit {
            signer: "ring",
            sign_cpu_us: 16.0,
            sign_per_sec: 60_000.0,
            verify_per_sec: 20_000.0,
            cores: 2,
            certificates_per_sec: 30_000.0,
            parallel_sign_per_sec: 120_000.0,
            parallel_verify_per_sec: 39_000.0,
            parallel_certificates_per_sec: 29_000.0,
        };
        Report {
            label: label.into(),
            target: Target::Ca,
            mode,
            body: BodyFormat::Json,
            connections,
            batch_size: 100,
            key_type: CsrKey::EcP256,
            ca_key_type: "ec-p256".into(),
            rate_cap: 0.0,
            seconds: 10.0,
            certificates: (per_sec * 10.0) as u64,
            certificates_per_sec: per_sec,
            fraction_of_limit: Some(per_sec / limit.certificates_per_sec),
            latency_ms: BTreeMap::from([("p50", 5.0), ("p90", 7.0), ("p99", 10.0), ("max", 18.0)]),
            errors: BTreeMap::new(),
            limit: Some(limit),
            cpu_us_per_certificate: BTreeMap::from([
                ("client".to_string(), 10.0),
                ("server:ca-http".to_string(), 26.0),
                ("server:ca-store-writer".to_string(), 23.0),
                ("server:ca-worker".to_string(), 80.0),
            ]),
        }
    }

    fn read_json(path: &std::path::Path) -> Value {
        let text = std::fs::read_to_string(path).expect("written");
        serde_json::from_str(&text).expect("JSON")
    }

    #[test]
    fn a_report_folder_holds_each_result_where_the_renderer_reads_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = ReportDir::new(dir.path().join("mine"));
        let label = ScenarioLabel::new("single-c64").expect("label");
        let path = write_report(
            &folder,
            &label,
            &synthetic("single-c64", Mode::Single, 64, 12_000.0),
        )
        .expect("written");
        assert_eq!(path, dir.path().join("mine/results/single-c64.json"));
        // The fields bench/render-results.py reads, under the names it reads.
        let result = read_json(&path);
        assert_eq!(result["label"], "single-c64");
        assert_eq!(result["mode"], "single");
        assert_eq!(result["target"], "ca");
        assert_eq!(result["certificates_per_sec"], 12_000.0);
        assert_eq!(result["fraction_of_limit"], 0.4);
        assert_eq!(result["latency_ms"]["p99"], 10.0);
        assert_eq!(result["limit"]["cores"], 2);
        assert_eq!(result["limit"]["parallel_certificates_per_sec"], 29_000.0);
        assert_eq!(result["cpu_us_per_certificate"]["server:ca-worker"], 80.0);
        let run = read_json(&dir.path().join("mine/run.json"));
        assert_eq!(run["by"], "ca-bench --report");
        assert!(
            run["machine"].as_str().is_some_and(|m| m.contains("vCPUs")),
            "{run}"
        );
        assert!(
            run["date"].as_str().is_some_and(|d| d.ends_with(" UTC")),
            "{run}"
        );
    }

    #[test]
    fn the_renderer_draws_a_folder_with_some_scenarios_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = ReportDir::new(dir.path());
        for (label, mode, connections, per_sec) in [
            ("single-c64", Mode::Single, 64, 12_000.0),
            ("batch100-c4", Mode::Batch, 4, 18_000.0),
        ] {
            let label_ = ScenarioLabel::new(label).expect("label");
            write_report(
                &folder,
                &label_,
                &synthetic(label, mode, connections, per_sec),
            )
            .expect("written");
        }
        let renderer = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/render-results.py"));
        match folder.render(&renderer).expect("rendered") {
            Rendered::Drawn { markdown, figures } => {
                let text = std::fs::read_to_string(markdown).expect("RESULTS.md");
                assert!(text.contains("| single-c64 | 12,000 | 0.40 |"), "{text}");
                assert!(text.contains("| batch100-c4 | 18,000 | 0.60 |"), "{text}");
                // Scenarios this folder does not have read "not run", never "not met".
                assert!(
                    text.contains("run with `bench/run-all.sh --long` | not run |"),
                    "{text}"
                );
                assert!(
                    text.contains("| 1 → 2 workers ≥ 1.8x | - | not run |"),
                    "{text}"
                );
                let names: Vec<String> = figures
                    .iter()
                    .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                for figure in [
                    "cpu-per-certificate.png",
                    "p99-latency-vs-concurrency.png",
                    "throughput-vs-concurrency.png",
                ] {
                    assert!(names.iter().any(|n| n == figure), "{names:?}");
                    assert!(text.contains(&format!("]({figure})")), "{text}");
                }
            }
            // Without matplotlib here, the folder is left to render later.
            Rendered::Later { why, command } => {
                assert!(why.contains("matplotlib"), "{why}");
                assert!(command.contains("render-results.py"), "{command}");
            }
        }
    }
}
