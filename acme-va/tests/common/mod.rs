//! Test servers on loopback: a tiny HTTP/1.1 server (plain, or TLS on the same port when the
//! client starts a handshake), a tls-alpn-01 responder, and Debian's `pebble-challtestsrv` as
//! the DNS server.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ca_acme_va::VaConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A key authorization as RFC 8555 section 8.1 builds them: token "." thumbprint.
pub const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
pub const KEY_AUTHORIZATION: &str =
    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";

/// The path http-01 asks for.
pub fn challenge_path() -> String {
    format!("/.well-known/acme-challenge/{TOKEN}")
}

/// A configuration for tests: the given ports, no denied network, a resolver that is
/// `dns` or a port where nothing answers, 5 s.
pub fn config(http01_port: u16, tlsalpn01_port: u16, dns: Option<SocketAddr>) -> VaConfig {
    VaConfig {
        http01_port,
        tlsalpn01_port,
        resolver: Some(dns.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))),
        deny_networks: Vec::new(),
        timeout: Duration::from_secs(5),
        ..VaConfig::default()
    }
}

/// What the HTTP test server answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status and a body.
    Body(u16, String),
    /// A redirect status and its `Location`.
    Redirect(u16, String),
    /// Nothing, ever (the connection stays open).
    Hang,
}

pub type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// A request the server received: its request line and its `Host` header.
#[derive(Clone, Debug)]
pub struct Seen {
    pub line: String,
    pub host: Option<String>,
    pub tls: bool,
}

pub struct HttpServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    /// A server on `ip`, an ephemeral port.
    pub async fn start(ip: &str, handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
            .await
            .unwrap();
        Self::on(listener, Arc::new(handler), None)
    }

    /// A server on `listener`; with `tls`, a connection whose first byte starts a TLS
    /// handshake is served over TLS.
    pub fn on(listener: TcpListener, handler: Handler, tls: Option<TlsAcceptor>) -> Self {
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (handler, requests, tls) = (handler.clone(), r.clone(), tls.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
                    match (is_tls, tls) {
                        (true, Some(acceptor)) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, &handler, &requests, true).await;
                            }
                        }
                        _ => serve(stream, &handler, &requests, false).await,
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            requests,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    handler: &Handler,
    requests: &Mutex<Vec<Seen>>,
    tls: bool,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let line = head.lines().next().unwrap_or_default().to_string();
    let host = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("host: ")
                .or_else(|| l.strip_prefix("Host: "))
        })
        .map(str::to_string);
    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
    requests.lock().unwrap().push(Seen { line, host, tls });
    let (status, location, body) = match handler(&path) {
        Reply::Body(status, body) => (status, None, body),
        Reply::Redirect(status, location) => (status, Some(location), String::new()),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(location) = location {
        response.push_str(&format!("Location: {location}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A self-signed certificate and its key, from rcgen.
pub fn certificate(
    names: Vec<rcgen::SanType>,
    extensions: Vec<rcgen::CustomExtension>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = names;
    params.custom_extensions = extensions;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

pub fn dns_name(name: &str) -> rcgen::SanType {
    rcgen::SanType::DnsName(name.try_into().unwrap())
}

/// A TLS server configuration presenting `cert` and offering `alpn`. The certificate goes
/// through a resolver of its own: `with_single_cert` would refuse the critical acmeIdentifier
/// extension, which webpki does not know.
pub fn tls_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Arc<ServerConfig> {
    server_config(Arc::new(Switch::new(cert, key)), alpn, false)
}

/// A TLS 1.2 server configuration (sessions resumed by their ID), and the switch that changes
/// the certificate it presents.
pub fn tls12_config_with_switch(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> (Arc<ServerConfig>, Switch) {
    let switch = Switch::new(cert, key);
    (server_config(Arc::new(switch.clone()), alpn, true), switch)
}

fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: &[&[u8]],
    tls12_only: bool,
) -> Arc<ServerConfig> {
    let builder =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()));
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    let mut config = builder
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// The certificate a test TLS server presents, which a test may change.
#[derive(Clone, Debug)]
pub struct Switch(Arc<Mutex<Arc<CertifiedKey>>>);

impl Switch {
    fn new(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
        Self(Arc::new(Mutex::new(certified_key(cert, key))))
    }

    /// From now on, `cert`.
    pub fn set(&self, cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) {
        *self.0.lock().unwrap() = certified_key(cert, key);
    }
}

fn certified_key(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Arc<CertifiedKey> {
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .unwrap();
    Arc::new(CertifiedKey::new(vec![cert], signing_key))
}

impl ResolvesServerCert for Switch {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.lock().unwrap().clone())
    }
}

/// The acmeIdentifier extension for `key_authorization` (RFC 8737 section 3).
pub fn acme_identifier(key_authorization: &str) -> rcgen::CustomExtension {
    use sha2::Digest;
    rcgen::CustomExtension::new_acme_identifier(&sha2::Sha256::digest(key_authorization))
}

/// A tls-alpn-01 responder: completes handshakes with `config`, records the SNI of each.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    server_names: Arc<Mutex<Vec<Option<String>>>>,
    task: JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    pub async fn start(ip: &str, config: Arc<ServerConfig>) -> Self {
        let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let server_names = Arc::new(Mutex::new(Vec::new()));
        let (c, names) = (connections.clone(), server_names.clone());
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (acceptor, names) = (acceptor.clone(), names.clone());
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let name = tls.get_ref().1.server_name().map(str::to_string);
                        names.lock().unwrap().push(name);
                        // Wait for the client to go.
                        let mut buf = [0u8; 64];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            server_names,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server names (SNI) of the handshakes done, once there are `count` of them: the
    /// server finishes its side after the client.
    pub async fn server_names(&self, count: usize) -> Vec<Option<String>> {
        for _ in 0..500 {
            let names = self.server_names.lock().unwrap().clone();
            if names.len() >= count {
                return names;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {count} TLS handshakes done");
    }
}

/// A loopback port nothing listens on (bound, then let go).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Debian's `pebble-challtestsrv` as a DNS server on loopback (UDP and TCP), with its
/// management API. A answers default to 127.0.0.1 and AAAA answers to ::1 for every name.
pub struct ChallTestSrv {
    child: Child,
    pub dns: SocketAddr,
    management: SocketAddr,
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const CHALLTESTSRV: &str = "pebble-challtestsrv";

/// Held while a server picks its ports and starts, so that the tests of one binary, which
/// run at once, never pick the same free port.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl ChallTestSrv {
    pub async fn start() -> Self {
        let _starting = STARTING.lock().await;
        for _ in 0..5 {
            if let Some(server) = Self::try_start().await {
                return server;
            }
        }
        panic!("{CHALLTESTSRV} did not start (5 tries)");
    }

    /// One try on ports free a moment ago: `None` when the server exits (a port was taken in
    /// between) or does not answer within 10 s.
    async fn try_start() -> Option<Self> {
        let dns_port = loop {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let management_port = closed_port().await;
        let dns = SocketAddr::from(([127, 0, 0, 1], dns_port));
        let management = SocketAddr::from(([127, 0, 0, 1], management_port));
        let child = Command::new(CHALLTESTSRV)
            .args(["-dns01", &dns.to_string()])
            .args(["-management", &management.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "::1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {CHALLTESTSRV} ({e}): the DNS tests need Debian's `pebble` \
                     package, which scripts/setup.sh installs"
                )
            });
        let mut server = Self {
            child,
            dns,
            management,
        };
        let start = std::time::Instant::now();
        loop {
            if server.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            let up = TcpStream::connect(management).await.is_ok()
                && TcpStream::connect(dns).await.is_ok();
            if up {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Both ports answer: make sure they are this server's (it exits at once when it
        // cannot bind one of them).
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server.child.try_wait().ok().flatten().is_some() {
            return None;
        }
        Some(server)
    }

    /// POSTs `json` to the management API's `path`; panics unless it answers 200.
    pub async fn post(&self, path: &str, json: serde_json::Value) {
        let body = json.to_string();
        let mut stream = TcpStream::connect(self.management).await.unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.management,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{path} {body}: {response}"
        );
    }

    pub async fn set_txt(&self, host: &str, value: &str) {
        self.post(
            "/set-txt",
            serde_json::json!({"host": format!("{host}."), "value": value}),
        )
        .await;
    }

    pub async fn add_a(&self, host: &str, addresses: &[&str]) {
        self.post(
            "/add-a",
            serde_json::json!({"host": host, "addresses": addresses}),
        )
        .await;
    }

    pub async fn add_aaaa(&self, host: &str, addresses: &[&str]) {
        self.post(
            "/add-aaaa",
            serde_json::json!({"host": host, "addresses": addresses}),
        )
        .await;
    }

    /// CAA records (flags 0) at `host`: (tag, value) pairs.
    pub async fn add_caa(&self, host: &str, policies: &[(&str, &str)]) {
        let policies: Vec<serde_json::Value> = policies
            .iter()
            .map(|(tag, value)| serde_json::json!({"tag": tag, "value": value}))
            .collect();
        self.post(
            "/add-caa",
            serde_json::json!({"host": host, "policies": policies}),
        )
        .await;
    }

    pub async fn servfail(&self, host: &str) {
        self.post("/set-servfail", serde_json::json!({"host": host}))
            .await;
    }
}
