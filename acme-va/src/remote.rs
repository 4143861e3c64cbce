//! The CA's side of a remote validation agent: [`RemoteVa`] asks one agent (`ca-server va`)
//! over HTTPS, presenting the CA's client certificate and verifying the agent's server
//! certificate against the CA bundle the operator gave ([`RemoteTls`]), every exchange within
//! a timeout. One connection per request (HTTP/1.1, `Connection: close`): validations are few
//! and the handshake is small next to a validation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ca_acme::{Problem, ProblemType};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::wire::{Answer, CaaRequest, ValidateRequest, CAA_PATH, MAX_ANSWER_BYTES, VALIDATE_PATH};
use crate::{Challenge, Ident, VaError, ValidationRecord};

/// The TLS client of the remote agents: the CA's client certificate and key, and the
/// certificates the agents' server certificates must chain to. Shared by every [`RemoteVa`].
#[derive(Clone)]
pub struct RemoteTls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTls").finish_non_exhaustive()
    }
}

impl RemoteTls {
    /// `client_chain` (the CA's client certificate first) with `client_key`, and `roots`, the
    /// trust anchors of the agents' certificates (TLS 1.2 or later; names checked as in any
    /// HTTPS client: the agent URL's host must be in its certificate).
    pub fn new(
        client_chain: Vec<CertificateDer<'static>>,
        client_key: PrivateKeyDer<'static>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, VaError> {
        if client_chain.is_empty() {
            return Err(VaError::Remote("no client certificate".into()));
        }
        let mut store = RootCertStore::empty();
        for root in roots {
            store
                .add(root)
                .map_err(|e| VaError::Remote(format!("a CA certificate of the agents: {e}")))?;
        }
        if store.is_empty() {
            return Err(VaError::Remote(
                "no CA certificate for the agents' server certificates".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| VaError::Remote(format!("the agents' certificate verifier: {e}")))?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(client_chain, client_key)
            .map_err(|e| VaError::Remote(format!("the client certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(RemoteTls {
            config: Arc::new(config),
        })
    }
}

/// The host of a server's URL, which must be `scheme://host[:port]` (nothing after the
/// authority but `/`, no user information), and the name its TLS certificate must hold (a DNS
/// name or an IP address, RFC 6125); otherwise why not.
pub fn server_authority(parsed: &url::Url) -> Result<(String, ServerName<'static>), String> {
    if !matches!(parsed.path(), "" | "/")
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(format!(
            "a server URL is {}://host:port, nothing more",
            parsed.scheme()
        ));
    }
    match parsed.host() {
        Some(url::Host::Domain(name)) => Ok((
            name.to_string(),
            ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?,
        )),
        Some(url::Host::Ipv4(ip)) => Ok((ip.to_string(), ServerName::IpAddress(ip.into()))),
        Some(url::Host::Ipv6(ip)) => Ok((ip.to_string(), ServerName::IpAddress(ip.into()))),
        None => Err("no host".into()),
    }
}

/// One remote validation agent, `https://host:port`.
#[derive(Clone)]
pub struct RemoteVa {
    url: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for RemoteVa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteVa")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteVa {
    /// The agent at `url` (`https://host[:port]`, nothing after the authority but `/`), asked
    /// with `tls`, each exchange (connection, handshake, request, answer) within `timeout`.
    pub fn new(url: &str, tls: &RemoteTls, timeout: Duration) -> Result<Self, VaError> {
        let bad = |why: &str| VaError::Remote(format!("{url:?}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "https" {
            return Err(bad("an agent URL is https://host:port"));
        }
        if timeout.is_zero() {
            return Err(bad("the timeout must not be zero"));
        }
        let (host, server_name) = server_authority(&parsed).map_err(|why| bad(&why))?;
        Ok(RemoteVa {
            url: format!("https://{}", parsed.authority()),
            host,
            port: parsed.port_or_known_default().unwrap_or(443),
            server_name,
            tls: TlsConnector::from(tls.config.clone()),
            timeout,
        })
    }

    /// The agent's URL, `https://host:port` as configured (without a trailing `/`): how
    /// logs, problems and metrics name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// [`crate::Va::validate`] from the agent's perspective. An agent that cannot be asked
    /// (refused, TLS, timeout, an answer that is not one) is a `serverInternal` problem naming
    /// it.
    pub async fn validate(
        &self,
        challenge: Challenge,
        ident: &Ident,
        token: &str,
        key_authorization: &str,
    ) -> Result<Vec<ValidationRecord>, Problem> {
        let request = ValidateRequest::new(challenge, ident, token, key_authorization);
        self.ask(VALIDATE_PATH, &request).await?.into_result()
    }

    /// [`crate::Va::check_caa`] from the agent's perspective (errors as
    /// [`RemoteVa::validate`]'s).
    pub async fn check_caa(
        &self,
        ident: &Ident,
        wildcard: bool,
        identities: &[String],
        account_uri: &str,
        method: Challenge,
    ) -> Result<(), Problem> {
        let request = CaaRequest::new(ident, wildcard, identities, account_uri, method);
        self.ask(CAA_PATH, &request).await?.into_result().map(drop)
    }

    /// POSTs `body` to `path` and reads the agent's [`Answer`].
    async fn ask<T: serde::Serialize>(&self, path: &str, body: &T) -> Result<Answer, Problem> {
        let failed = |why: String| {
            Problem::new(
                ProblemType::ServerInternal,
                format!(
                    "the remote validation agent {} could not be asked: {why}",
                    self.url
                ),
            )
        };
        let body = serde_json::to_vec(body).map_err(|e| failed(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.exchange(path, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(why)) => Err(failed(why)),
            Err(_) => Err(failed(format!("no answer within {:?}", self.timeout))),
        }
    }

    async fn exchange(&self, path: &str, body: Vec<u8>) -> Result<Answer, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "remote VA connection");
            }
        });
        let authority = match self.server_name {
            ServerName::IpAddress(_) if self.host.contains(':') => {
                format!("[{}]:{}", self.host, self.port)
            }
            _ => format!("{}:{}", self.host, self.port),
        };
        let request = Request::post(path)
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("ca-acme-va/", env!("CARGO_PKG_VERSION")),
            )
            .header(CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the request: {e}"))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
            let status = response.status();
            let mut body = response.into_body();
            let mut read = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                    if read.len() > MAX_ANSWER_BYTES {
                        return Err(format!("an answer longer than {MAX_ANSWER_BYTES} bytes"));
                    }
                }
            }
            if !status.is_success() {
                let detail = serde_json::from_slice::<serde_json::Value>(&read)
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_string))
                    .unwrap_or_else(|| ca_acme::problem::quote(&String::from_utf8_lossy(&read)));
                return Err(format!("it answered {status}: {detail}"));
            }
            serde_json::from_slice::<Answer>(&read)
                .map_err(|e| format!("its answer does not read: {e}"))
        }
        .await;
        connection.abort();
        result
    }
}
