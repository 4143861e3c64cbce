//! The listener: accepts connections, optionally terminates TLS (rustls, RFC 8446), and
//! serves HTTP/1.1 and HTTP/2 with hyper under the server's limits: a bounded number of
//! connections (beyond it a connection gets one `429` answer and is closed within
//! [`REFUSAL_DEADLINE`]), deadlines for the TLS handshake, for a connection's first request
//! (protocol detection included) and for request headers, an idle timeout, HTTP/2 keep-alive
//! pings, and a bounded header size. Each request carries a [`Peer`] extension: the client's
//! address and, with TLS client authentication, its certificate's subject.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::client_auth::ClientCertificate;

/// Who is on the other end of a request's connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client's TLS certificate, verified against the configured client CA, if it
    /// presented one.
    pub client_certificate: Option<Arc<ClientCertificate>>,
    /// The DER of the end-entity certificate the client presented in the TLS handshake,
    /// whose key the handshake proved it holds, whether or not it chains to the client CA
    /// (EST's `simplereenroll` judges it against this CA's own certificates).
    pub tls_certificate: Option<Arc<[u8]>>,
}

/// How the listener serves.
#[derive(Clone)]
pub struct ListenerOptions {
    /// TLS, when configured.
    pub tls: Option<Arc<ServerConfig>>,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Deadline for a TLS handshake, for a connection's first request and for a request's
    /// headers; also the HTTP/2 keep-alive ping timeout.
    pub header_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
    /// With TLS: the routes served to a connection that starts in plain HTTP instead of a TLS
    /// handshake (told apart by the first byte, 0x16 for a TLS record), so that status URLs
    /// naming this port keep working; `None`: such a connection fails its handshake.
    pub plain: Option<Router>,
    /// Connections holding a slot (`ca_http_connections{listener}`).
    pub connections: prometheus::IntGauge,
    /// How a client certificate is judged for [`Peer::client_certificate`].
    pub client_chain: ClientChain,
}

/// How a connection's client certificate becomes [`Peer::client_certificate`] (the API's
/// callers by certificate).
#[derive(Clone, Debug)]
pub enum ClientChain {
    /// The handshake verified its chain (or asked for none): it counts as it is.
    Handshake,
    /// The handshake accepted any certificate ([`ClientCertificates::Any`], for EST): it
    /// counts only when this verifier accepts its chain, and without a verifier never.
    After(Option<Arc<dyn ClientCertVerifier>>),
}

/// Why the TLS configuration of `[tls]` cannot be built. Each variant names the file or the
/// step concerned; the error of rustls, of the PEM reader or of the key loader is its source.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A certificate file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading failed with.
        source: std::io::Error,
    },
    /// A certificate file is not PEM.
    #[error("{}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM reader's error.
        source: rustls::pki_types::pem::Error,
    },
    /// The server's certificate file holds no certificate.
    #[error("{} holds no certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The server's key could not be loaded (the key file is named).
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// rustls refused the protocol versions.
    #[error("TLS versions")]
    Versions(#[source] rustls::Error),
    /// A certificate of the client CA file cannot be a trust anchor.
    #[error("{}", path.display())]
    ClientCa {
        /// The client CA file.
        path: PathBuf,
        /// Why rustls refused the certificate.
        source: rustls::Error,
    },
    /// The verifier of client certificates could not be built.
    #[error("client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the server's certificate chain and key (a key that is not the
    /// certificate's, say).
    #[error("the TLS certificate and key")]
    CertificateAndKey(#[source] rustls::Error),
}

/// The first byte of a TLS connection: a handshake record (RFC 8446 section 5.1).
const TLS_HANDSHAKE: u8 = 0x16;

/// Which client certificates a TLS listener asks for.
#[derive(Clone, Copy, Debug)]
pub enum ClientCertificates<'a> {
    /// None.
    None,
    /// Optional, chaining to one of this file's certificates (the API: without one a request
    /// needs a bearer token).
    Optional(&'a Path),
    /// Required, chaining to one of this file's certificates (a remote validation agent).
    Required(&'a Path),
    /// Optional, and any certificate is accepted once the handshake proved its key is held
    /// (EST, RFC 7030 section 3.3.2: a certificate this CA issued is judged per request);
    /// this verifier's chain check, if any, is made after the handshake
    /// ([`ClientChain::After`]) and its CA names are the hints sent to clients.
    Any(Option<&'a Arc<dyn ClientCertVerifier>>),
}

/// The verifier of client certificates chaining to one of the certificates of `path` (PEM),
/// RFC 5280 section 6 by `webpki`; with `optional`, a client may present none.
pub fn client_verifier(
    path: &Path,
    optional: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsConfigError> {
    let text = std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|source| TlsConfigError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
        roots.add(cert).map_err(|source| TlsConfigError::ClientCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let verifier = if optional {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    verifier.build().map_err(TlsConfigError::Verifier)
}

/// Accepts any client certificate whose key the handshake proves (its CertificateVerify
/// signature, RFC 8446 section 4.4.3), without judging its chain: see
/// [`ClientCertificates::Any`].
#[derive(Debug)]
struct AnyClientCertificate {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Builds the rustls configuration from PEM files: the server's certificate chain, its
/// PKCS#8 key (mode 0600, as for CA keys), the client certificates it asks for, and the
/// application protocols it offers (ALPN, in order of preference).
pub fn tls_config(
    cert_file: &Path,
    key_file: &Path,
    clients: ClientCertificates<'_>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsConfigError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let pem = |p: &Path| {
        let path = p.to_path_buf();
        move |source: rustls::pki_types::pem::Error| TlsConfigError::Pem { path, source }
    };
    let certs = CertificateDer::pem_slice_iter(&read(cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(cert_file))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: cert_file.to_path_buf(),
        });
    }
    let der = keys::load_pkcs8_file(key_file)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Versions)?;
    let builder = match clients {
        ClientCertificates::None => builder.with_no_client_auth(),
        ClientCertificates::Optional(path) => {
            builder.with_client_cert_verifier(client_verifier(path, true)?)
        }
        ClientCertificates::Required(path) => {
            builder.with_client_cert_verifier(client_verifier(path, false)?)
        }
        ClientCertificates::Any(chain) => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCertificate {
                hints: chain
                    .map(|v| v.root_hint_subjects().to_vec())
                    .unwrap_or_default(),
                algorithms: provider.signature_verification_algorithms,
            }))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(TlsConfigError::CertificateAndKey)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// How long a connection over the limit may take, TLS handshake and reading its request
/// included, to receive its `429` before it is closed.
pub const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);
/// Interval of HTTP/2 keep-alive pings (RFC 9113 section 6.7); a ping unanswered within the
/// header timeout closes the connection.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long an idle connection told to close may take to do so (an HTTP/2 client to read
/// the GOAWAY) before it is dropped; it has no request in progress.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long open requests may take to finish once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish
/// (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ListenerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(options.header_timeout)
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    // Connections being refused are bounded too: beyond, a connection is closed at once.
    let refusals = Arc::new(Semaphore::new((options.max_connections / 4).max(16)));
    // Each connection holds a receiver; the sender learns when the last one is gone.
    let (stopping, stop) = watch::channel(false);
    let options = Arc::new(options);
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once (no Nagle delay on keep-alive connections).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%addr, error = %e, "setting TCP_NODELAY");
        }
        let (builder, acceptor, app) = (builder.clone(), acceptor.clone(), app.clone());
        let (options, stop) = (options.clone(), stop.clone());
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let Ok(refusal) = refusals.clone().try_acquire_owned() else {
                tracing::debug!(%addr, "connection limit reached and refusals busy; closing");
                continue;
            };
            tokio::spawn(async move {
                let _refusal = refusal;
                let _stop = stop;
                tracing::warn!(%addr, "connection limit reached; answering 429");
                let refused = refuse(tcp, acceptor, &builder);
                if tokio::time::timeout(REFUSAL_DEADLINE, refused)
                    .await
                    .is_err()
                {
                    tracing::debug!(%addr, "refused connection closed at its deadline");
                }
            });
            continue;
        };
        let slot = crate::limits::CountedPermit::new(permit, &options.connections);
        tokio::spawn(async move {
            let _slot = slot;
            let Some(acceptor) = acceptor else {
                let peer = Peer {
                    addr,
                    client_certificate: None,
                    tls_certificate: None,
                };
                return connection(tcp, peer, app, &builder, &options, stop).await;
            };
            if let Some(plain) = &options.plain {
                let mut first = [0u8; 1];
                match tokio::time::timeout(options.header_timeout, tcp.peek(&mut first)).await {
                    Ok(Ok(1..)) if first[0] != TLS_HANDSHAKE => {
                        let peer = Peer {
                            addr,
                            client_certificate: None,
                            tls_certificate: None,
                        };
                        let plain = plain.clone();
                        return connection(tcp, peer, plain, &builder, &options, stop).await;
                    }
                    Ok(Ok(1..)) => {}
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => return tracing::debug!(%addr, error = %e, "reading a connection"),
                    Err(_) => return tracing::debug!(%addr, "no first byte in time"),
                }
            }
            let tls = match tokio::time::timeout(options.header_timeout, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%addr, "TLS handshake timed out"),
            };
            let presented = tls.get_ref().1.peer_certificates().unwrap_or_default();
            let tls_certificate = presented.first().map(|c| Arc::<[u8]>::from(c.as_ref()));
            let client_certificate = presented
                .split_first()
                .filter(|(leaf, rest)| match &options.client_chain {
                    ClientChain::Handshake => true,
                    ClientChain::After(None) => false,
                    ClientChain::After(Some(verifier)) => verifier
                        .verify_client_cert(leaf, rest, UnixTime::now())
                        .is_ok(),
                })
                .and_then(|(leaf, _)| ClientCertificate::parse(leaf))
                .map(Arc::new);
            let peer = Peer {
                addr,
                client_certificate,
                tls_certificate,
            };
            connection(tls, peer, app, &builder, &options, stop).await;
        });
    }
    drop(listener);
    drop(stop);
    let _ = stopping.send(true);
    tokio::select! {
        () = stopping.closed() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open 30 s after shutdown began; closing them");
        }
    }
}

/// When a connection last had a request in progress, and how many it has.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    served: AtomicU64,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        })
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// When the connection is due to close if nothing happens: `first` after it opened while
    /// it has had no request, `idle` after its last request ended; `None` while a request is
    /// in progress.
    fn deadline(&self, first: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        let wait = if self.served.load(Ordering::Acquire) == 0 {
            first
        } else {
            idle
        };
        Some(last + wait)
    }
}

/// Counts a request in progress on its connection while alive.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.served.fetch_add(1, Ordering::AcqRel);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until hyper has sent it
/// (and dropped it), so that a slow client reading a large answer is not taken for idle.
struct CountedBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves one admitted connection until the client closes it, it stays without a request
/// (the first one within the header timeout, later ones within the idle timeout), or the
/// server stops; in the last two cases it is asked to close gracefully (HTTP/2 GOAWAY, or
/// HTTP/1.1 closing after the response in progress) and dropped after [`CLOSE_GRACE`]
/// (idle) or [`SHUTDOWN_GRACE`] (stopping, requests may be in progress).
async fn connection<S>(
    stream: S,
    peer: Peer,
    app: Router,
    builder: &Builder<TokioExecutor>,
    options: &ListenerOptions,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let app = TowerToHyperService::new(app.layer(axum::Extension(peer)));
    let counted = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let in_flight = InFlight::begin(&counted);
        let answer = app.call(request);
        async move {
            let response = answer.await;
            response.map(|response| {
                response.map(|body| CountedBody {
                    body,
                    _in_flight: in_flight,
                })
            })
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    loop {
        let wake = closing.unwrap_or_else(|| {
            activity
                .deadline(options.header_timeout, options.idle_timeout)
                .unwrap_or_else(|| Instant::now() + options.idle_timeout)
        });
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            () = tokio::time::sleep_until(wake) => {
                if closing.is_some() {
                    tracing::debug!("connection did not close in time; dropping it");
                    return;
                }
                let due = activity.deadline(options.header_timeout, options.idle_timeout);
                if due.is_some_and(|due| due <= Instant::now()) {
                    tracing::debug!("connection idle; closing it");
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + CLOSE_GRACE);
                }
            }
        }
    }
}

/// Answers a connection over the limit: one `429` (after the TLS handshake, if any), then
/// the connection is closed. The caller bounds the whole with [`REFUSAL_DEADLINE`].
async fn refuse(
    tcp: tokio::net::TcpStream,
    acceptor: Option<TlsAcceptor>,
    builder: &Builder<TokioExecutor>,
) {
    match acceptor {
        None => refuse_on(tcp, builder).await,
        Some(acceptor) => {
            if let Ok(tls) = acceptor.accept(tcp).await {
                refuse_on(tls, builder).await;
            }
        }
    }
}

async fn refuse_on<S>(stream: S, builder: &Builder<TokioExecutor>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut refusing = builder.clone();
    refusing.http1().keep_alive(false);
    let service = hyper::service::service_fn(|_: Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(too_many_connections())
    });
    if let Err(e) = refusing
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "refused connection ended with an error");
    }
}

fn too_many_connections() -> Response<Body> {
    let body =
        r#"{"error":{"code":"overloaded","message":"too many open connections; retry shortly"}}"#;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
