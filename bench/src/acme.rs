//! The ACME load (`ca-bench --mode acme`): complete RFC 8555 orders against an ACME server
//! (ca-server's `/acme/directory`, or pebble's `/dir` for the comparison), from accounts
//! created before the clock starts, with pre-generated CSRs, each order's http-01 challenge
//! answered by a responder this process runs itself.
//!
//! Each worker owns one keep-alive HTTP/1.1 connection (TLS with `--ca-file`, for pebble) and
//! the nonce of its last answer (`Replay-Nonce`), so that no order needs a newNonce; a
//! `badNonce` is retried once with the nonce that came with it. One order is: newOrder →
//! authorization (POST-as-GET) → challenge `{}` → the authorization polled until valid
//! (unless the challenge's answer already says `valid`, as lego reads it) → finalize → the
//! order polled while processing → the certificate (POST-as-GET). Each of these is one JWS
//! the server verifies.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use serde_json::Value;

/// How long one request may take before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What an ACME run does.
#[derive(Clone, Debug)]
pub struct AcmeOptions {
    /// The directory URL (`http://` or `https://`).
    pub directory: String,
    /// Accounts created before the run; worker `i` orders with account `i mod accounts`.
    pub accounts: usize,
    /// Concurrent workers, each with its own connection.
    pub connections: usize,
    /// How long orders are started for.
    pub duration: Duration,
    /// Pre-generated CSRs, one per order, for `o{n}.bench.example.com`; used again from the
    /// first when the run needs more.
    pub csrs: usize,
    /// The port of the http-01 responder (on 127.0.0.1, and on ::1 when it can).
    pub http01_port: u16,
    /// PEM CA certificates to trust for an `https://` directory (pebble's).
    pub ca_file: Option<PathBuf>,
    /// The wait before the first poll of an authorization or order; each next wait is twice
    /// the last, up to `poll_max`. Both servers answer `Retry-After: 1`, which would hold a
    /// worker to about one order a second: the benchmark polls sooner and reports how often.
    pub poll_first: Duration,
    /// The longest wait between two polls.
    pub poll_max: Duration,
}

/// What an ACME run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AcmeOutcome {
    /// Seconds the run lasted.
    pub seconds: f64,
    /// Orders completed (certificate downloaded) within the run.
    pub orders: u64,
    /// Authorization polls (after the challenge) of the completed orders.
    pub authz_polls: u64,
    /// Order polls (after finalize) of the completed orders.
    pub order_polls: u64,
    /// JWS requests sent within the run, those of failed and unfinished orders and the
    /// retries included.
    pub jws_requests: u64,
    /// `badNonce` answers retried.
    pub bad_nonce_retries: u64,
    /// newNonce requests (one per connection opened, and after an answer without a nonce).
    pub new_nonce_requests: u64,
    /// http-01 requests the responder answered with a key authorization.
    pub http01_answered: u64,
    /// http-01 requests for a token the responder did not know.
    pub http01_unknown: u64,
    /// Whether the run used more orders than CSRs (names were ordered again).
    pub names_reused: bool,
    /// Orders completed in each second of the run (the last one may be partial).
    pub orders_each_second: Vec<u64>,
    /// No order completed in two consecutive seconds: the server stalled (pebble 2.4 can
    /// deadlock under concurrent orders, its memory store's locks taken in two orders).
    pub stalled: bool,
    /// Failed orders by the problem type (without `urn:ietf:params:acme:error:`) or
    /// `transport: ...`, with the step that failed.
    pub errors: BTreeMap<String, u64>,
    /// Each completed order's time from newOrder to its certificate, in microseconds.
    #[serde(skip)]
    pub latencies_us: Vec<u32>,
}

impl AcmeOutcome {
    /// JWS requests a completed order took in this client's flow: newOrder, authorization,
    /// challenge, the authorization polls, finalize, the order polls, the download.
    pub fn jws_per_order(&self) -> f64 {
        if self.orders == 0 {
            return 0.0;
        }
        5.0 + (self.authz_polls + self.order_polls) as f64 / self.orders as f64
    }
}

/// The resources of a directory.
#[derive(Clone, Debug)]
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

/// An account: its ES256 key, its URL (`kid`) and its key's thumbprint.
struct Account {
    key: EcdsaKeyPair,
    jwk: String,
    thumbprint: String,
    kid: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Account {
    fn generate(rng: &SystemRandom) -> Result<Self, String> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map_err(|_| "generating an account key".to_string())?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
            .map_err(|_| "reading the account key".to_string())?;
        let point = key.public_key().as_ref();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        // RFC 7638: the required members in lexicographic order, no white space.
        let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = b64(ring::digest::digest(&ring::digest::SHA256, jwk.as_bytes()).as_ref());
        Ok(Account {
            key,
            jwk,
            thumbprint,
            kid: String::new(),
        })
    }

    /// A flattened JWS (RFC 8555 section 6.2) of `payload` (empty: POST-as-GET) to `url`.
    fn jws(&self, rng: &SystemRandom, nonce: &str, url: &str, payload: &str) -> Bytes {
        let key_ref = if self.kid.is_empty() {
            format!(r#""jwk":{}"#, self.jwk)
        } else {
            format!(r#""kid":"{}""#, self.kid)
        };
        let protected = b64(format!(
            r#"{{"alg":"ES256",{key_ref},"nonce":"{nonce}","url":"{url}"}}"#
        )
        .as_bytes());
        let payload = b64(payload.as_bytes());
        let input = format!("{protected}.{payload}");
        let signature = self
            .key
            .sign(rng, input.as_bytes())
            .map(|s| b64(s.as_ref()))
            .unwrap_or_default();
        Bytes::from(format!(
            r#"{{"protected":"{protected}","payload":"{payload}","signature":"{signature}"}}"#
        ))
    }
}

/// Where the server is and how to reach it.
struct Endpoint {
    /// `host:port` to connect to.
    address: String,
    host: HeaderValue,
    /// `scheme://host:port`, which every resource URL starts with.
    origin: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Endpoint {
    fn new(directory: &str, ca_file: Option<&std::path::Path>) -> Result<(Self, String), String> {
        let (scheme, rest) = directory
            .split_once("://")
            .ok_or("--url must be the directory's URL, http:// or https://")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let https = match scheme {
            "http" => false,
            "https" => true,
            _ => return Err(format!("unsupported scheme {scheme}")),
        };
        let address = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let tls = if https {
            let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host}: {e}"))?;
            Some((tokio_rustls::TlsConnector::from(tls_config(ca_file)?), name))
        } else {
            None
        };
        Ok((
            Endpoint {
                address,
                host: HeaderValue::from_str(authority).map_err(|e| e.to_string())?,
                origin: format!("{scheme}://{authority}"),
                tls,
            },
            path.to_string(),
        ))
    }

    /// The request target of one of the server's URLs.
    fn path<'a>(&self, url: &'a str) -> Result<&'a str, String> {
        url.strip_prefix(&self.origin)
            .filter(|p| p.starts_with('/'))
            .ok_or_else(|| format!("the server sent a URL elsewhere: {url}"))
    }
}

fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let file = ca_file.ok_or("an https:// directory needs --ca-file (the server's CA, PEM)")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
    {
        roots
            .add(cert.map_err(|e| format!("{}: {e}", file.display()))?)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(endpoint: &Endpoint) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(&endpoint.address)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    match &endpoint.tls {
        None => handshake(TokioIo::new(stream)).await,
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            handshake(TokioIo::new(tls)).await
        }
    }
}

async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// An answer.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Bytes,
}

impl Answer {
    fn json(&self, step: &str) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|_| format!("{step}: the answer is not JSON"))
    }
}

/// Counters all workers share.
#[derive(Default)]
struct Counters {
    orders: AtomicU64,
    authz_polls: AtomicU64,
    order_polls: AtomicU64,
    jws: AtomicU64,
    bad_nonce: AtomicU64,
    new_nonce: AtomicU64,
    http01_answered: AtomicU64,
    http01_unknown: AtomicU64,
}

/// One worker's connection and nonce.
struct Client {
    endpoint: Arc<Endpoint>,
    new_nonce: String,
    sender: Option<Sender>,
    nonce: Option<String>,
    counters: Arc<Counters>,
    rng: SystemRandom,
}

impl Client {
    async fn send(&mut self, method: Method, url: &str, body: Bytes) -> Result<Answer, String> {
        let path = self.endpoint.path(url)?.to_string();
        if let Some(sender) = self.sender.as_mut() {
            if sender.ready().await.is_err() {
                // Closed by the server between two requests (nothing was sent): open another.
                self.sender = None;
            }
        }
        let sender = match self.sender.as_mut() {
            Some(s) => s,
            None => self.sender.insert(
                connect(&self.endpoint)
                    .await
                    .map_err(|e| format!("transport: {e}"))?,
            ),
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.endpoint.host.clone());
        if !body.is_empty() {
            request = request.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jose+json"),
            );
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let exchange = async {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(format!("transport: {e}"));
            }
            Err(_) => {
                self.sender = None;
                return Err("transport: timed out".into());
            }
        };
        let text = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let Some(nonce) = text("replay-nonce") {
            self.nonce = Some(nonce);
        }
        Ok(Answer {
            status: parts.status,
            location: text("location"),
            body,
        })
    }

    async fn fresh_nonce(&mut self) -> Result<String, String> {
        self.counters.new_nonce.fetch_add(1, Ordering::Relaxed);
        let url = self.new_nonce.clone();
        let answer = self
            .send(Method::HEAD, &url, Bytes::new())
            .await
            .map_err(|e| format!("newNonce: {e}"))?;
        if !answer.status.is_success() {
            self.nonce = None;
            return Err(format!("newNonce: http_{}", answer.status.as_u16()));
        }
        self.nonce
            .take()
            .ok_or_else(|| "newNonce: no Replay-Nonce".to_string())
    }

    /// POSTs a JWS of `payload` signed by `account`; a `badNonce` is retried once with the
    /// nonce of its answer. A problem answer is an error named by its type.
    async fn post(
        &mut self,
        account: &Account,
        step: &str,
        url: &str,
        payload: &str,
    ) -> Result<Answer, String> {
        for attempt in 0..2 {
            let nonce = match self.nonce.take() {
                Some(n) => n,
                None => self.fresh_nonce().await?,
            };
            let body = account.jws(&self.rng, &nonce, url, payload);
            self.counters.jws.fetch_add(1, Ordering::Relaxed);
            let answer = self
                .send(Method::POST, url, body)
                .await
                .map_err(|e| format!("{step}: {e}"))?;
            if answer.status.is_success() {
                return Ok(answer);
            }
            let kind = serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|v| v["type"].as_str().map(problem_name))
                .unwrap_or_else(|| format!("http_{}", answer.status.as_u16()));
            if kind == "badNonce" && attempt == 0 {
                self.counters.bad_nonce.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            return Err(format!("{step}: {kind}"));
        }
        Err(format!("{step}: badNonce"))
    }
}

fn problem_name(t: &str) -> String {
    t.strip_prefix("urn:ietf:params:acme:error:")
        .unwrap_or(t)
        .to_string()
}

/// The http-01 responder's tokens: token → key authorization.
#[derive(Default)]
struct Tokens(Mutex<HashMap<String, String>>);

/// Removes a token from the responder when the order is done with it.
struct Published<'a>(&'a Tokens, String);

impl Drop for Published<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.0 .0.lock() {
            map.remove(&self.1);
        }
    }
}

/// What the workers share.
struct Shared {
    endpoint: Arc<Endpoint>,
    directory: Directory,
    accounts: Vec<Account>,
    /// `(name, base64url DER CSR)`.
    csrs: Vec<(String, String)>,
    next: AtomicU64,
    tokens: Arc<Tokens>,
    counters: Arc<Counters>,
    stop: AtomicBool,
    rng: SystemRandom,
    poll_first: Duration,
    poll_max: Duration,
    latencies_us: Mutex<Vec<u32>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn error(&self, what: String) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(what).or_default() += 1;
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

const STOPPED: &str = "(stopped)";

/// Makes `count` P-256 CSRs for `o{n}.bench.example.com`, on every core.
fn make_csrs(count: usize) -> Result<Vec<(String, String)>, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = count.div_ceil(cores).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|c| {
                s.spawn(move || {
                    (c * per..((c + 1) * per).min(count))
                        .map(|n| {
                            let name = format!("o{n}.bench.example.com");
                            crate::csr_der(crate::CsrKey::EcP256, &name)
                                .map(|der| (name, b64(&der)))
                                .map_err(|e| e.to_string())
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| "a CSR thread panicked".to_string())??,
            );
        }
        Ok(all)
    })
}

/// Runs the http-01 responder on `port` (127.0.0.1, and ::1 when it can): the key
/// authorization of `/.well-known/acme-challenge/{token}` for tokens being validated.
async fn responder(port: u16, tokens: Arc<Tokens>, counters: Arc<Counters>) -> Result<(), String> {
    let v4 = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("http-01 responder on 127.0.0.1:{port}: {e}"))?;
    let v6 = tokio::net::TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))
        .await
        .ok();
    for listener in std::iter::once(v4).chain(v6) {
        let tokens = tokens.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let tokens = tokens.clone();
                let counters = counters.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let answer = http01_answer(&tokens, &counters, &request);
                        async move { Ok::<_, std::convert::Infallible>(answer) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    Ok(())
}

fn http01_answer<B>(
    tokens: &Tokens,
    counters: &Counters,
    request: &hyper::Request<B>,
) -> hyper::Response<Full<Bytes>> {
    let found = request
        .uri()
        .path()
        .strip_prefix("/.well-known/acme-challenge/")
        .and_then(|token| tokens.0.lock().ok()?.get(token).cloned());
    let (status, body) = match found {
        Some(key_authorization) => {
            counters.http01_answered.fetch_add(1, Ordering::Relaxed);
            (StatusCode::OK, Bytes::from(key_authorization))
        }
        None => {
            counters.http01_unknown.fetch_add(1, Ordering::Relaxed);
            (StatusCode::NOT_FOUND, Bytes::new())
        }
    };
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

/// Runs the ACME load: the directory, the accounts, the CSRs and the responder first, then
/// `connections` workers for `duration`; `on_start` is called just before the workers
/// start (to sample CPU time around the orders only).
pub async fn run(options: &AcmeOptions, on_start: impl FnOnce()) -> Result<AcmeOutcome, String> {
    let (endpoint, _) = Endpoint::new(&options.directory, options.ca_file.as_deref())?;
    let endpoint = Arc::new(endpoint);
    let counters = Arc::new(Counters::default());
    let rng = SystemRandom::new();
    let mut client = Client {
        endpoint: endpoint.clone(),
        new_nonce: String::new(),
        sender: None,
        nonce: None,
        counters: counters.clone(),
        rng: rng.clone(),
    };
    let answer = client
        .send(Method::GET, &options.directory, Bytes::new())
        .await
        .map_err(|e| format!("the directory: {e}"))?;
    if !answer.status.is_success() {
        return Err(format!("the directory: HTTP {}", answer.status));
    }
    let dir = answer.json("the directory")?;
    let field = |name: &str| {
        dir[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("the directory has no {name}"))
    };
    let directory = Directory {
        new_nonce: field("newNonce")?,
        new_account: field("newAccount")?,
        new_order: field("newOrder")?,
    };
    if dir["meta"]["externalAccountRequired"] == Value::Bool(true) {
        return Err(
            "the server requires External Account Binding: benchmark with [acme] \
             eab_required = false"
                .into(),
        );
    }

    let tokens = Arc::new(Tokens::default());
    responder(options.http01_port, tokens.clone(), counters.clone()).await?;

    eprint!("generating {} CSRs ...", options.csrs.max(1));
    let csrs = tokio::task::spawn_blocking({
        let n = options.csrs.max(1);
        move || make_csrs(n)
    })
    .await
    .map_err(|e| e.to_string())??;
    eprintln!(" done");

    eprint!("creating {} accounts ...", options.accounts.max(1));
    let mut accounts = Vec::new();
    client.new_nonce = directory.new_nonce.clone();
    for _ in 0..options.accounts.max(1) {
        let mut account = Account::generate(&rng)?;
        let answer = client
            .post(
                &account,
                "newAccount",
                &directory.new_account,
                r#"{"termsOfServiceAgreed":true}"#,
            )
            .await?;
        account.kid = answer
            .location
            .ok_or("newAccount: the answer has no Location")?;
        accounts.push(account);
    }
    eprintln!(" done");
    // Counted from the run's start.
    for c in [&counters.jws, &counters.new_nonce, &counters.bad_nonce] {
        c.store(0, Ordering::Relaxed);
    }

    let shared = Arc::new(Shared {
        endpoint,
        directory,
        accounts,
        csrs,
        next: AtomicU64::new(0),
        tokens,
        counters: counters.clone(),
        stop: AtomicBool::new(false),
        rng,
        poll_first: options.poll_first,
        poll_max: options.poll_max,
        latencies_us: Mutex::new(Vec::new()),
        errors: Mutex::new(BTreeMap::new()),
    });
    on_start();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..options.connections.max(1) {
        tasks.spawn(worker(shared.clone(), i));
    }
    let mut last = 0;
    let mut each_second = Vec::new();
    while started.elapsed() < options.duration {
        tokio::time::sleep(
            Duration::from_secs(1).min(options.duration.saturating_sub(started.elapsed())),
        )
        .await;
        let orders = counters.orders.load(Ordering::Relaxed);
        let errors: u64 = shared.errors.lock().map(|e| e.values().sum()).unwrap_or(0);
        eprint!(
            "\r{:6.1} s  {:>8} orders  {:>7.0}/s now  {:>6} errors   ",
            started.elapsed().as_secs_f64(),
            orders,
            (orders - last) as f64,
            errors
        );
        each_second.push(orders - last);
        last = orders;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let orders = counters.orders.load(Ordering::Relaxed);
    let jws_requests = counters.jws.load(Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    eprintln!();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    errors.remove(STOPPED);
    Ok(AcmeOutcome {
        seconds,
        orders,
        authz_polls: load(&counters.authz_polls),
        order_polls: load(&counters.order_polls),
        jws_requests,
        bad_nonce_retries: load(&counters.bad_nonce),
        new_nonce_requests: load(&counters.new_nonce),
        http01_answered: load(&counters.http01_answered),
        http01_unknown: load(&counters.http01_unknown),
        names_reused: shared.next.load(Ordering::Relaxed) > shared.csrs.len() as u64,
        stalled: each_second.windows(2).any(|w| w == [0, 0]),
        orders_each_second: each_second,
        errors,
        latencies_us: shared
            .latencies_us
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default(),
    })
}

async fn worker(shared: Arc<Shared>, index: usize) {
    let account = &shared.accounts[index % shared.accounts.len()];
    let mut client = Client {
        endpoint: shared.endpoint.clone(),
        new_nonce: shared.directory.new_nonce.clone(),
        sender: None,
        nonce: None,
        counters: shared.counters.clone(),
        rng: shared.rng.clone(),
    };
    while !shared.stopped() {
        let n = shared.next.fetch_add(1, Ordering::Relaxed) as usize % shared.csrs.len();
        let started = Instant::now();
        let outcome = order(&shared, &mut client, account, n).await;
        if shared.stopped() {
            break; // orders finished after the end are not counted
        }
        match outcome {
            Ok((k, m)) => {
                let c = &shared.counters;
                c.orders.fetch_add(1, Ordering::Relaxed);
                c.authz_polls.fetch_add(k, Ordering::Relaxed);
                c.order_polls.fetch_add(m, Ordering::Relaxed);
                let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                if let Ok(mut l) = shared.latencies_us.lock() {
                    l.push(us);
                }
            }
            Err(e) => {
                shared.error(e);
                // A failing server is not hammered: errors are counted, not maximized.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn status_of(v: &Value) -> &str {
    v["status"].as_str().unwrap_or("")
}

/// The first problem type in an object's `error` (or a challenge's), for an error's name.
fn error_of(v: &Value) -> String {
    let from = |e: &Value| e["type"].as_str().map(problem_name);
    from(&v["error"])
        .or_else(|| {
            v["challenges"]
                .as_array()?
                .iter()
                .find_map(|c| from(&c["error"]))
        })
        .unwrap_or_else(|| "no error given".into())
}

/// One order, from newOrder to the certificate: the authorization polls and order polls it
/// took.
async fn order(
    shared: &Shared,
    client: &mut Client,
    account: &Account,
    n: usize,
) -> Result<(u64, u64), String> {
    let (name, csr) = &shared.csrs[n];
    let payload = format!(r#"{{"identifiers":[{{"type":"dns","value":"{name}"}}]}}"#);
    let answer = client
        .post(account, "newOrder", &shared.directory.new_order, &payload)
        .await?;
    let order_url = answer
        .location
        .clone()
        .ok_or("newOrder: the answer has no Location")?;
    let created = answer.json("newOrder")?;
    let authz_url = created["authorizations"][0]
        .as_str()
        .ok_or("newOrder: no authorization")?
        .to_string();
    let finalize_url = created["finalize"]
        .as_str()
        .ok_or("newOrder: no finalize URL")?
        .to_string();

    let authz = client
        .post(account, "authz", &authz_url, "")
        .await?
        .json("authz")?;
    let mut k = 0;
    if status_of(&authz) != "valid" {
        let challenge = authz["challenges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "http-01"))
            .ok_or("authz: no http-01 challenge")?;
        let (Some(token), Some(url)) = (challenge["token"].as_str(), challenge["url"].as_str())
        else {
            return Err("authz: the challenge has no token or url".into());
        };
        if let Ok(mut map) = shared.tokens.0.lock() {
            map.insert(token.to_string(), format!("{token}.{}", account.thumbprint));
        }
        let _published = Published(&shared.tokens, token.to_string());
        let answered = client
            .post(account, "challenge", url, "{}")
            .await?
            .json("challenge")?;
        match status_of(&answered) {
            // A server may answer once the validation is done (ca-server waits up to `[acme]
            // challenge_answer_wait_ms`); lego then skips the polls, and so does this client.
            "valid" => {
                return finish(shared, client, account, &order_url, &finalize_url, csr, 0).await
            }
            "invalid" => return Err(format!("challenge invalid: {}", error_of(&answered))),
            _ => {}
        }
        let mut wait = shared.poll_first;
        loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(shared.poll_max);
            if shared.stopped() {
                return Err(STOPPED.into());
            }
            k += 1;
            let authz = client
                .post(account, "authz poll", &authz_url, "")
                .await?
                .json("authz poll")?;
            match status_of(&authz) {
                "valid" => break,
                "pending" => {}
                "invalid" => return Err(format!("authz invalid: {}", error_of(&authz))),
                other => return Err(format!("authz poll: status {other}")),
            }
        }
    }
    finish(shared, client, account, &order_url, &finalize_url, csr, k).await
}

/// The rest of an order whose authorization is valid (after `k` authorization polls):
/// finalize, the order polls, the certificate.
async fn finish(
    shared: &Shared,
    client: &mut Client,
    account: &Account,
    order_url: &str,
    finalize_url: &str,
    csr: &str,
    k: u64,
) -> Result<(u64, u64), String> {
    let payload = format!(r#"{{"csr":"{csr}"}}"#);
    let mut order = client
        .post(account, "finalize", finalize_url, &payload)
        .await?
        .json("finalize")?;
    let mut m = 0;
    let mut wait = shared.poll_first;
    while matches!(status_of(&order), "processing" | "ready") {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(shared.poll_max);
        if shared.stopped() {
            return Err(STOPPED.into());
        }
        m += 1;
        order = client
            .post(account, "order poll", order_url, "")
            .await?
            .json("order poll")?;
    }
    if status_of(&order) != "valid" {
        return Err(format!("order {}: {}", status_of(&order), error_of(&order)));
    }
    let certificate = order["certificate"]
        .as_str()
        .ok_or("order: valid without a certificate URL")?
        .to_string();
    let answer = client
        .post(account, "certificate", &certificate, "")
        .await?;
    if !answer.body.starts_with(b"-----BEGIN CERTIFICATE-----") {
        return Err("certificate: the answer is not a PEM chain".into());
    }
    Ok((k, m))
}
