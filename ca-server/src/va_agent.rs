//! `ca-server va`: a remote validation agent (CA/B Forum Baseline Requirements 3.2.2.9,
//! multi-perspective issuance corroboration). It runs the ACME validation authority
//! ([`ca_acme_va::Va`]) from its own network, for a CA that asks it over TLS with a client
//! certificate: POSTs to `/va/v1/validate` and `/va/v1/caa`, whose JSON is
//! [`ca_acme_va::wire`]'s. A connection without a client certificate chaining to
//! `--client-ca` fails its handshake. Each validation and CAA check is one log line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use ca_acme::Problem;
use ca_acme_va::wire::{self, Answer, CaaRequest, ValidateRequest};
use ca_acme_va::{Va, VaConfig};

use crate::listener::{self, ListenerOptions, Peer, TlsConfigError};

/// How `ca-server va` runs (its command-line options).
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The agent's certificate chain, PEM.
    pub cert: PathBuf,
    /// Its PKCS#8 key, PEM, mode 0600.
    pub key: PathBuf,
    /// The CA certificates a client certificate must chain to, PEM.
    pub client_ca: PathBuf,
    /// The port `http-01` connects to.
    pub http01_port: u16,
    /// The port `tls-alpn-01` connects to.
    pub tlsalpn01_port: u16,
    /// The DNS resolver; `None`: the system's.
    pub dns_resolver: Option<SocketAddr>,
    /// Networks never connected to (CIDR); empty: [`VaConfig::default_deny_networks`];
    /// `none` alone: nothing denied.
    pub deny_networks: Vec<String>,
    /// Time for one validation or CAA check, seconds.
    pub timeout_secs: u64,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The TLS certificate, key or client CA cannot be used (the file is named).
    #[error("va: TLS")]
    Tls(#[from] TlsConfigError),
    /// An option is out of range.
    #[error("va: {0}")]
    Setting(String),
    /// The validation authority could not be built.
    #[error("va: the validation authority")]
    Va(#[from] ca_acme_va::VaError),
    /// The listen address cannot be bound.
    #[error("va: listening on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The shutdown signal handlers could not be installed.
    #[error("va: installing the signal handlers")]
    Signal(#[source] std::io::Error),
}

/// The validation authority of `options`.
pub fn build_va(options: &AgentOptions) -> Result<Va, AgentError> {
    let deny = match options.deny_networks.as_slice() {
        [] => VaConfig::default_deny_networks(),
        [none] if none == "none" => Vec::new(),
        nets => nets
            .iter()
            .map(|net| {
                net.parse().map_err(|_| {
                    AgentError::Setting(format!(
                        "--deny-network {net:?} is not a network (CIDR), nor `none`"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if options.timeout_secs == 0 {
        return Err(AgentError::Setting(
            "--timeout-secs must be at least 1".into(),
        ));
    }
    Ok(Va::new(VaConfig {
        http01_port: options.http01_port,
        tlsalpn01_port: options.tlsalpn01_port,
        resolver: options.dns_resolver,
        deny_networks: deny,
        timeout: Duration::from_secs(options.timeout_secs),
        ..VaConfig::default()
    })?)
}

/// The agent's two resources, [`wire::VALIDATE_PATH`] and [`wire::CAA_PATH`] (POST only),
/// dispatched by one handler: they are the agent's own, not routes of the API listener
/// that docs/openapi.yaml describes (docs/API.md, *Multi-perspective validation*).
pub fn router(va: Va) -> Router {
    Router::new().fallback(dispatch).with_state(va)
}

async fn dispatch(
    State(va): State<Va>,
    method: Method,
    uri: Uri,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Response {
    let path = uri.path();
    if path != wire::VALIDATE_PATH && path != wire::CAA_PATH {
        return problem(
            StatusCode::NOT_FOUND,
            &Problem::malformed("no such resource"),
        );
    }
    if method != Method::POST {
        let mut answer = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            &Problem::malformed("only POST"),
        );
        answer
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return answer;
    }
    if path == wire::VALIDATE_PATH {
        validate(va, peer, body).await
    } else {
        caa(va, peer, body).await
    }
}

/// Runs the agent until SIGINT or SIGTERM: prints `listening on https://ADDR` once it accepts
/// connections.
pub async fn run(options: AgentOptions) -> Result<(), AgentError> {
    // A client certificate required; HTTP/1.1 only, what the CA's client speaks.
    let tls = listener::tls_config(
        &options.cert,
        &options.key,
        listener::ClientCertificates::Required(&options.client_ca),
        &[b"http/1.1"],
    )?;
    let va = build_va(&options)?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| AgentError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AgentError::Bind {
        addr: options.listen,
        source,
    })?;
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
    let shutdown = async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutdown signal received; finishing open validations");
    };
    let connections = prometheus::IntGauge::new("ca_va_connections", "open connections")
        .map_err(|e| AgentError::Setting(e.to_string()))?;
    let listener_options = ListenerOptions {
        tls: Some(tls),
        max_connections: 1024,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_header_bytes: 16 * 1024,
        plain: None,
        connections,
        client_chain: listener::ClientChain::Handshake,
    };
    tracing::info!(
        %addr,
        http01_port = options.http01_port,
        tlsalpn01_port = options.tlsalpn01_port,
        timeout_secs = options.timeout_secs,
        "validation agent started"
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on https://{addr}");
        let _ = out.flush();
    }
    listener::serve(listener, router(va), listener_options, shutdown).await;
    Ok(())
}

/// A problem document answer (`application/problem+json`) with `status`.
fn problem(status: StatusCode, problem: &Problem) -> Response {
    let mut doc = problem.to_json();
    doc["status"] = status.as_u16().into();
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        doc.to_string(),
    )
        .into_response()
}

/// Beyond [`wire::MAX_REQUEST_BYTES`], how much of a request body is still read (and
/// dropped) before the `413`, so that the client, still sending, receives the answer rather
/// than a reset connection; and how long that may take.
const DRAIN_BYTES: usize = 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads a JSON request of at most [`wire::MAX_REQUEST_BYTES`]: `413` beyond, `400` when it
/// is not a `T`.
async fn read<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Response> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    let reading = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                seen = seen.saturating_add(data.len());
                if seen <= wire::MAX_REQUEST_BYTES {
                    bytes.extend_from_slice(&data);
                } else if seen > DRAIN_BYTES {
                    break;
                }
            }
        }
    };
    let finished = tokio::time::timeout(DRAIN_TIME, reading).await.is_ok();
    if !finished && seen <= wire::MAX_REQUEST_BYTES {
        return Err(problem(
            StatusCode::REQUEST_TIMEOUT,
            &Problem::malformed(format!(
                "the request was not received within {DRAIN_TIME:?}"
            )),
        ));
    }
    if seen > wire::MAX_REQUEST_BYTES {
        return Err(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            &Problem::malformed(format!(
                "the request is longer than {} bytes",
                wire::MAX_REQUEST_BYTES
            )),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json's message may quote the input: keep it short and printable.
        let why: String = e
            .to_string()
            .chars()
            .take(200)
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        problem(
            StatusCode::BAD_REQUEST,
            &Problem::malformed(format!("the request does not read: {why}")),
        )
    })
}

/// The client certificate's subject, for the log.
fn client(peer: &Option<Extension<Peer>>) -> (String, String) {
    match peer {
        Some(Extension(peer)) => (
            peer.addr.to_string(),
            peer.client_certificate
                .as_ref()
                .map_or_else(String::new, |c| c.subject.clone()),
        ),
        None => (String::new(), String::new()),
    }
}

/// The log line of one check.
fn log_outcome<T>(
    check: &str,
    kind: &str,
    ident: &ca_acme_va::Ident,
    peer: &Option<Extension<Peer>>,
    started: Instant,
    result: &Result<T, Problem>,
) {
    let (addr, subject) = client(peer);
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(_) => tracing::info!(
            check,
            challenge = kind,
            identifier = %ident,
            client = %addr,
            client_subject = %subject,
            outcome = "valid",
            elapsed_ms,
            "remote validation"
        ),
        Err(p) => tracing::info!(
            check,
            challenge = kind,
            identifier = %ident,
            client = %addr,
            client_subject = %subject,
            outcome = p.kind.name(),
            detail = %p.detail,
            elapsed_ms,
            "remote validation"
        ),
    }
}

/// A validation ([`wire::VALIDATE_PATH`]).
async fn validate(va: Va, peer: Option<Extension<Peer>>, body: Body) -> Response {
    let request: ValidateRequest = match read(body).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let (challenge, ident) = match request.parts() {
        Ok(parts) => parts,
        Err(p) => return problem(StatusCode::BAD_REQUEST, &p),
    };
    let started = Instant::now();
    let result = va
        .validate(
            challenge,
            &ident,
            &request.token,
            &request.key_authorization,
        )
        .await;
    log_outcome(
        "validation",
        challenge.name(),
        &ident,
        &peer,
        started,
        &result,
    );
    axum::Json(Answer::of_validation(&result)).into_response()
}

/// A CAA check ([`wire::CAA_PATH`]).
async fn caa(va: Va, peer: Option<Extension<Peer>>, body: Body) -> Response {
    let request: CaaRequest = match read(body).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let (ident, method) = match request.parts() {
        Ok(parts) => parts,
        Err(p) => return problem(StatusCode::BAD_REQUEST, &p),
    };
    let started = Instant::now();
    let result = va
        .check_caa(
            &ident,
            request.wildcard,
            &request.identities,
            &request.account_uri,
            method,
        )
        .await;
    log_outcome("caa", method.name(), &ident, &peer, started, &result);
    axum::Json(Answer::of_caa(&result)).into_response()
}
