//! A client of a running server's operator API, for the commands that ask the server to act
//! (`ca-server backup` while it holds the store): the API's URL, a bearer token, and for
//! HTTPS the CA certificates the server's certificate must chain to.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::Config;

/// The environment variable a command reads the operator token from when no token file is
/// given.
pub const TOKEN_ENV: &str = "CA_TOKEN";

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No token file and no `CA_TOKEN`.
    #[error("no operator token: give --token-file FILE (mode 0600) or set {TOKEN_ENV}")]
    NoToken,
    /// The token file cannot be read (or is not private).
    #[error("the token file")]
    TokenFile(#[source] keys::KeyError),
    /// The CA certificates for the server's certificate cannot be used.
    #[error("the CA certificates for the server's TLS certificate: {0}")]
    Roots(String),
    /// The HTTP client could not be built.
    #[error("the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The server could not be reached, or its answer read.
    #[error("{url}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The server refused, with the API's error (`{"error": {"code", "message"}}`).
    #[error("the server answered {status} {code}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// Its message.
        message: String,
    },
}

/// A client of one server's operator API.
pub struct OperatorClient {
    base: String,
    token: Zeroizing<String>,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for OperatorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The URL of the server of the data directory `config` describes: `https` when `[tls]`
/// names a certificate, the listen address (loopback when it listens on every address).
pub fn default_url(config: &Config) -> String {
    let scheme = if config.tls.cert_file.as_os_str().is_empty() {
        "http"
    } else {
        "https"
    };
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("{scheme}://{addr}")
}

/// The operator token: the first line of `file` (mode 0600), else the environment's
/// [`TOKEN_ENV`].
pub fn read_token(file: Option<&Path>) -> Result<Zeroizing<String>, ClientError> {
    match file {
        Some(path) => {
            let bytes = keys::read_secret_file(path).map_err(ClientError::TokenFile)?;
            let text = String::from_utf8_lossy(&bytes);
            Ok(Zeroizing::new(
                text.lines().next().unwrap_or_default().trim().to_string(),
            ))
        }
        None => std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(Zeroizing::new)
            .ok_or(ClientError::NoToken),
    }
}

impl OperatorClient {
    /// A client of the server at `base` (`http://` or `https://host:port`), authenticating
    /// with `token`; over HTTPS the server's certificate must chain to one of `roots_pem`
    /// (PEM certificates) and name the URL's host. `timeout` bounds each call.
    pub fn new(
        base: &str,
        token: Zeroizing<String>,
        roots_pem: &[u8],
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(roots_pem)? {
            roots
                .add(cert)
                .map_err(|e| ClientError::Roots(e.to_string()))?;
        }
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !roots.is_empty() {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Roots(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder = builder.use_preconfigured_tls(tls);
        }
        Ok(OperatorClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: builder.build().map_err(ClientError::Client)?,
        })
    }

    /// POSTs `body` to `path` and answers the JSON of a 2xx answer; any other status is
    /// [`ClientError::Refused`] with the API's error.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |source| ClientError::Unreachable {
            url: url.clone(),
            source,
        };
        let answer = self
            .http
            .post(&url)
            .bearer_auth(self.token.as_str())
            .json(body)
            .send()
            .map_err(unreachable)?;
        let status = answer.status();
        let json: Value = answer.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let text = |key: &str| json["error"][key].as_str().unwrap_or_default().to_string();
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: text("code"),
            message: text("message"),
        })
    }
}

/// The certificates of a PEM bundle (other blocks are skipped).
fn rustls_pemfile_certs(pem_bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let blocks = pem::parse_many(pem_bytes).map_err(|e| ClientError::Roots(e.to_string()))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect())
}
