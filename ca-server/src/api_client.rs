//! A client of a running server's JSON API (docs/API.md) for the command line: the commands
//! that ask the server rather than open its store (which the running server holds). One
//! connection per request (HTTP/1.1, `Connection: close`), over plain HTTP or TLS (RFC 8446,
//! the server's certificate checked against the CA certificates the operator names, as any
//! HTTPS client checks it), each exchange within a timeout; the bearer token (RFC 6750) is read
//! from a file and never printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

/// Largest answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `--url` is not `http(s)://host[:port]`.
    #[error("--url {url:?}: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A file given on the command line could not be read or used.
    #[error("{}: {why}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The server could not be asked (connection, TLS, timeout, an answer that is no JSON).
    #[error("asking {url}: {why}")]
    Transport {
        /// The server.
        url: String,
        /// What failed.
        why: String,
    },
    /// The server answered an error (docs/API.md's error shape).
    #[error("the server answered {status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's code.
        code: String,
        /// The error's message.
        message: String,
    },
}

impl ClientError {
    /// Whether asking again later may succeed: the server could not be reached, or answered
    /// that it is busy (429, 503) or timed out (408).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => matches!(status, 408 | 429 | 503),
            _ => false,
        }
    }
}

/// A running server's API at a URL, asked with a bearer token.
pub struct ApiClient {
    url: String,
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    token: Zeroizing<String>,
    timeout: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Reads a file given on the command line.
fn read_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::File {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// The TLS client of `https://` URLs: the server's certificate must chain to a certificate
/// of `ca_file` (PEM) and name the URL's host.
fn tls_connector(ca_file: &Path) -> Result<TlsConnector, ClientError> {
    let bad = |why: String| ClientError::File {
        path: ca_file.to_path_buf(),
        why,
    };
    let pems = pem::parse_many(read_file(ca_file)?).map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for p in pems.iter().filter(|p| p.tag() == "CERTIFICATE") {
        roots
            .add(CertificateDer::from(p.contents().to_vec()))
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

impl ApiClient {
    /// The server at `url` (`http://host[:port]` or `https://host[:port]`, nothing after the
    /// authority but `/`), asked with the token in `token_file` (its first line); an https URL
    /// needs `ca_file`, the CA certificates (PEM) its certificate chains to.
    pub fn new(
        url: &str,
        token_file: &Path,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let (host, server_name) = ca_acme_va::server_authority(&parsed).map_err(|why| bad(&why))?;
        let tls = match (parsed.scheme(), ca_file) {
            ("http", _) => None,
            ("https", Some(ca_file)) => Some((tls_connector(ca_file)?, server_name)),
            ("https", None) => {
                return Err(bad(
                    "an https URL needs --cacert, the CA certificates (PEM) of the server's \
                     certificate",
                ))
            }
            _ => return Err(bad("the scheme is http or https")),
        };
        let token = Zeroizing::new(read_file(token_file)?);
        let token = std::str::from_utf8(&token)
            .ok()
            .and_then(|t| t.lines().next())
            .map(|t| Zeroizing::new(t.trim().to_string()))
            .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| ClientError::File {
                path: token_file.to_path_buf(),
                why: "its first line is not an API token".into(),
            })?;
        Ok(ApiClient {
            url: format!("{}://{}", parsed.scheme(), parsed.authority()),
            port: parsed.port_or_known_default().unwrap_or(80),
            host,
            tls,
            token,
            timeout,
        })
    }

    /// POSTs `body` to `path` and answers the JSON of a 2xx answer; any other answer is
    /// [`ClientError::Api`] with the server's error code and message.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let failed = |why: String| ClientError::Transport {
            url: self.url.clone(),
            why,
        };
        let body = serde_json::to_vec(body).map_err(|e| failed(e.to_string()))?;
        let (status, answer) = tokio::time::timeout(self.timeout, self.exchange(path, body))
            .await
            .map_err(|_| failed(format!("no answer within {:?}", self.timeout)))?
            .map_err(failed)?;
        let json: Value = serde_json::from_slice(&answer)
            .map_err(|e| failed(format!("HTTP {status}, an answer that is not JSON: {e}")))?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let text = |key: &str| json["error"][key].as_str().unwrap_or_default().to_string();
        Err(ClientError::Api {
            status,
            code: text("code"),
            message: text("message"),
        })
    }

    async fn exchange(&self, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.send(tcp, path, body).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                self.send(tls, path, body).await
            }
        }
    }

    async fn send<S>(&self, io: S, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(connection);
        let authority = self.url.split_once("://").map_or("", |(_, a)| a);
        let request = Request::post(path)
            .header(HOST, authority)
            .header(USER_AGENT, concat!("ca-server/", env!("CARGO_PKG_VERSION")))
            .header(CONTENT_TYPE, "application/json")
            .header(CONNECTION, "close")
            .header(AUTHORIZATION, format!("Bearer {}", self.token.as_str()))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let status = response.status().as_u16();
        let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, answer))
    }
}
