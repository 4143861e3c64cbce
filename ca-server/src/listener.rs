//! The listener: accepts connections, optionally terminates TLS (rustls, RFC 8446), and
//! serves HTTP/1.1 and HTTP/2 with hyper under the server's limits: a bounded number of
//! connections (beyond it a connection gets one `429` answer and is closed), a deadline for
//! request headers (slow clients are dropped) and for TLS handshakes, and a bounded header
//! size. Each request carries a [`Peer`] extension: the client's address and, with TLS client
//! authentication, its certificate's subject.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
}

/// How the listener serves.
#[derive(Clone)]
pub struct ListenerOptions {
    /// TLS, when configured.
    pub tls: Option<Arc<ServerConfig>>,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Deadline for a request's headers and for a TLS handshake.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
}

/// Builds the rustls configuration from PEM files: the server's certificate chain, its
/// PKCS#8 key (mode 0600, as for CA keys), and optionally the CA whose certificates clients
/// may authenticate with (then a client certificate is optional; without one a request needs a
/// bearer token).
pub fn tls_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let certs = CertificateDer::pem_slice_iter(&read(cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert_file.display()));
    }
    let der = keys::load_pkcs8_file(key_file).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(path)?) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish
/// (at most 30 seconds).
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
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
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
        let permit = slots.clone().try_acquire_owned().ok();
        let (builder, acceptor, app) = (builder.clone(), acceptor.clone(), app.clone());
        let timeout = options.header_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit.as_ref();
            let Some(acceptor) = acceptor else {
                let peer = Peer {
                    addr,
                    client_certificate: None,
                };
                return connection(tcp, peer, app, permit.is_some(), &builder, watcher).await;
            };
            let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%addr, "TLS handshake timed out"),
            };
            let client_certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| ClientCertificate::parse(cert))
                .map(Arc::new);
            let peer = Peer {
                addr,
                client_certificate,
            };
            connection(tls, peer, app, permit.is_some(), &builder, watcher).await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("connections still open 30 s after shutdown began; closing them");
        }
    }
}

/// Serves one connection: the app, or, when it is over the connection limit, one `429`.
async fn connection<S>(
    stream: S,
    peer: Peer,
    app: Router,
    admitted: bool,
    builder: &Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let result = if admitted {
        let service = TowerToHyperService::new(app.layer(axum::Extension(peer)));
        watcher
            .watch(
                builder
                    .serve_connection_with_upgrades(io, service)
                    .into_owned(),
            )
            .await
    } else {
        tracing::warn!(addr = %peer.addr, "connection limit reached; answering 429");
        let mut refusing = builder.clone();
        refusing.http1().keep_alive(false);
        let service = hyper::service::service_fn(|_: Request<hyper::body::Incoming>| async {
            Ok::<_, std::convert::Infallible>(too_many_connections())
        });
        watcher
            .watch(refusing.serve_connection(io, service).into_owned())
            .await
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
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
