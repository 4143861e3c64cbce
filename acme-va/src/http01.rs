//! `http-01` (RFC 8555 section 8.3): `GET http://{identifier}/.well-known/acme-challenge/{token}`
//! must answer 200 with the key authorization (trailing whitespace ignored).
//!
//! Redirects (301, 302, 303, 307, 308) are followed, [`crate::VaConfig::max_redirects`] at
//! most, never twice to the same URL, only to `http` or `https` URLs on port 80, 443 or
//! [`crate::VaConfig::http01_port`] (an `http` URL without a port, or with port 80, which the
//! URL parser cannot tell apart, goes to `http01_port`; an `https` one without a port to 443),
//! and every target's addresses are checked against `deny_networks` like the identifier's. An
//! `https` target's certificate is not verified (see [`crate::tls`]), as Boulder does.

use bytes::Bytes;
use ca_acme::problem::quote;
use ca_acme::{Problem, ProblemType};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::net::{self, Host};
use crate::{Ident, Inner, VaConfig, ValidationRecord};

/// The most bytes of a response body read; a longer one fails.
pub(crate) const MAX_BODY: usize = 4096;

/// The longest redirect target path and query (Boulder's limit).
const MAX_PATH: usize = 2000;

/// The `User-Agent` of validation requests.
const USER_AGENT_VALUE: &str = concat!("ca-acme-va/", env!("CARGO_PKG_VERSION"));

/// Where one request of the validation goes.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: Host,
    port: u16,
    https: bool,
    /// The identifier itself (a denied address is then `rejectedIdentifier`).
    is_identifier: bool,
}

pub(crate) async fn validate(
    inner: &Inner,
    deadline: Instant,
    ident: &Ident,
    token: &str,
    key_authorization: &str,
) -> Result<Vec<ValidationRecord>, Problem> {
    let config = &inner.config;
    let authority = match ident {
        Ident::Dns(name) => name.clone(),
        Ident::Ip(std::net::IpAddr::V4(ip)) => ip.to_string(),
        Ident::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
    };
    let first = format!(
        "http://{authority}:{}/.well-known/acme-challenge/{token}",
        config.http01_port
    );
    let mut url = Url::parse(&first).map_err(|e| {
        Problem::new(
            ProblemType::ServerInternal,
            format!("building the http-01 URL for {ident}: {e}"),
        )
    })?;
    let mut target = Target {
        host: Host::of(ident),
        port: config.http01_port,
        https: false,
        is_identifier: true,
    };
    let mut records: Vec<ValidationRecord> = Vec::new();
    loop {
        let (record, response, _connection) = fetch(inner, deadline, &url, &target).await?;
        records.push(record);
        let status = response.status();
        if is_redirect(status) {
            if records.len() > config.max_redirects {
                return Err(Problem::new(
                    ProblemType::Connection,
                    format!(
                        "Too many redirects: {url} redirects again after {} (max_redirects)",
                        config.max_redirects
                    ),
                ));
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| {
                    Problem::new(
                        ProblemType::IncorrectResponse,
                        format!("{url} answered {status} without a readable Location header"),
                    )
                })?;
            let (next_url, next_target) = redirect_target(config, &url, location)?;
            if records
                .iter()
                .any(|r| r.url.as_deref() == Some(next_url.as_str()))
            {
                return Err(Problem::new(
                    ProblemType::Connection,
                    format!("Redirect loop detected: {url} redirects to {next_url} again"),
                ));
            }
            tracing::debug!(%url, to = %next_url, "http-01 redirect");
            url = next_url;
            target = next_target;
            continue;
        }
        if status != StatusCode::OK {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                format!("Invalid response from {url}: {}", status.as_u16()),
            ));
        }
        let body = read_body(response.into_body(), &url).await?;
        let body = String::from_utf8_lossy(&body);
        let payload = body.trim_end();
        if payload == key_authorization {
            return Ok(records);
        }
        return Err(Problem::new(
            ProblemType::Unauthorized,
            format!(
                "The key authorization file from the server did not match this challenge: \
                 {url} answered \"{}\", expected \"{}\"",
                quote(payload),
                quote(key_authorization)
            ),
        ));
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Aborts the task driving an HTTP connection when the response is done with.
struct Connection(JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request: resolve, check, connect, TLS for `https`, GET. Its record, the response
/// (headers read, body not yet) and the connection the body comes through.
async fn fetch(
    inner: &Inner,
    deadline: Instant,
    url: &Url,
    target: &Target,
) -> Result<(ValidationRecord, Response<Incoming>, Connection), Problem> {
    let addresses = net::addresses(inner, &target.host, target.is_identifier, deadline).await?;
    let (stream, address) = net::connect(inner, &addresses.to_try, target.port, deadline)
        .await
        .map_err(|(problem, _)| problem)?;
    let record = ValidationRecord {
        url: Some(url.to_string()),
        hostname: target.host.to_string(),
        port: Some(target.port),
        addresses_resolved: addresses.resolved,
        address_used: Some(address),
    };
    let (response, connection) = if target.https {
        let server_name = match &target.host {
            Host::Name(name) => ServerName::try_from(name.as_str())
                .map(|n| n.to_owned())
                .map_err(|e| {
                    Problem::new(
                        ProblemType::Connection,
                        format!("Invalid host in redirect target {url}: {e}"),
                    )
                })?,
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        let connector = tokio_rustls::TlsConnector::from(inner.tls.https.clone());
        let tls = connector.connect(server_name, stream).await.map_err(|e| {
            Problem::new(
                ProblemType::Tls,
                format!("TLS handshake with {address} for {url} failed: {e}"),
            )
        })?;
        get(tls, url).await?
    } else {
        get(stream, url).await?
    };
    Ok((record, response, connection))
}

/// `GET url` over `stream` (HTTP/1.1, `Connection: close`).
async fn get<S>(stream: S, url: &Url) -> Result<(Response<Incoming>, Connection), Problem>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| {
        Problem::new(ProblemType::Connection, format!("Fetching {url}: {e}"))
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| failed(&e))?;
    let connection = Connection(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "http-01 connection");
        }
    }));
    let mut path = url.path().to_string();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut host = url.host_str().unwrap_or_default().to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!(":{port}"));
    }
    let request = Request::get(path)
        .header(HOST, host)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| {
            Problem::new(
                ProblemType::ServerInternal,
                format!("building the request for {url}: {e}"),
            )
        })?;
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    Ok((response, connection))
}

/// The body, [`MAX_BODY`] bytes at most: a longer one is `unauthorized`.
async fn read_body(mut body: Incoming, url: &Url) -> Result<Vec<u8>, Problem> {
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Problem::new(
                ProblemType::Connection,
                format!("Error reading the response body from {url}: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
            if read.len() > MAX_BODY {
                return Err(Problem::new(
                    ProblemType::Unauthorized,
                    format!(
                        "Invalid response from {url}: longer than {MAX_BODY} bytes: \"{}\"",
                        quote(&String::from_utf8_lossy(&read))
                    ),
                ));
            }
        }
    }
    Ok(read)
}

/// Where a redirect from `from` to `location` goes, if the VA follows it.
fn redirect_target(
    config: &VaConfig,
    from: &Url,
    location: &str,
) -> Result<(Url, Target), Problem> {
    let refused = |detail: String| Problem::new(ProblemType::Connection, detail);
    let mut next = from.join(location).map_err(|e| {
        Problem::new(
            ProblemType::IncorrectResponse,
            format!(
                "{from} redirects to \"{}\", which is not a URL: {e}",
                quote(location)
            ),
        )
    })?;
    next.set_fragment(None);
    let https = match next.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(refused(format!(
                "Invalid protocol scheme in redirect target {}: only \"http\" and \"https\" \
                 are supported, not \"{}\"",
                quote(next.as_str()),
                quote(other)
            )))
        }
    };
    let port = match next.port() {
        Some(port) if port == 80 || port == 443 || port == config.http01_port => port,
        Some(port) => {
            return Err(refused(format!(
                "Invalid port in redirect target {}: only ports 80, 443 and {} are \
                 supported, not {port}",
                quote(next.as_str()),
                config.http01_port
            )))
        }
        None if https => 443,
        None => config.http01_port,
    };
    let host = match next.host() {
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.');
            if domain.ends_with(".well-known") {
                return Err(refused(format!(
                    "Invalid host in redirect target \"{}\": check the web server's \
                     configuration for a missing '/' in the redirect target",
                    quote(domain)
                )));
            }
            if !is_host_name(domain) {
                return Err(refused(format!(
                    "Invalid host in redirect target \"{}\"",
                    quote(domain)
                )));
            }
            Host::Name(domain.to_string())
        }
        Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
        None => {
            return Err(refused(format!(
                "Invalid empty host in redirect target {}",
                quote(next.as_str())
            )))
        }
    };
    if next.path().len() + next.query().map_or(0, str::len) > MAX_PATH {
        return Err(refused(format!(
            "Redirect target too long: more than {MAX_PATH} characters"
        )));
    }
    Ok((
        next,
        Target {
            host,
            port,
            https,
            is_identifier: false,
        },
    ))
}

/// A DNS name fit to connect to: letters, digits, `-`, `_` in labels of 1 to 63, 253 at most.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VaConfig {
        VaConfig {
            http01_port: 5002,
            ..VaConfig::default()
        }
    }

    fn from() -> Url {
        Url::parse("http://example.com:5002/.well-known/acme-challenge/t").unwrap()
    }

    fn target(location: &str) -> Result<(Url, Target), Problem> {
        redirect_target(&config(), &from(), location)
    }

    #[test]
    fn redirects_go_to_http_or_https_on_the_allowed_ports() {
        let (url, t) = target("https://other.example/x?y=1#frag").unwrap();
        assert_eq!(url.as_str(), "https://other.example/x?y=1");
        assert_eq!(
            t,
            Target {
                host: Host::Name("other.example".into()),
                port: 443,
                https: true,
                is_identifier: false
            }
        );
        let (url, t) = target("/elsewhere").unwrap();
        assert_eq!(url.as_str(), "http://example.com:5002/elsewhere");
        assert_eq!((t.port, t.https), (5002, false));
        let (_, t) = target("http://[2001:db8::1]/").unwrap();
        assert_eq!(t.host, Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(t.port, 5002);
        let (_, t) = target("http://192.0.2.1:443/").unwrap();
        assert_eq!((t.port, t.https), (443, false));
        let (_, t) = target("https://Example.ORG:5002/").unwrap();
        assert_eq!(t.host, Host::Name("example.org".into()));
        assert_eq!((t.port, t.https), (5002, true));
    }

    #[test]
    fn bad_redirects_are_refused() {
        for (location, kind, says) in [
            ("ftp://example.com/", ProblemType::Connection, "scheme"),
            (
                "http://example.com:8080/",
                ProblemType::Connection,
                "not 8080",
            ),
            ("https://example.com:22/", ProblemType::Connection, "not 22"),
            (
                "https://example.com.well-known/acme-challenge/t",
                ProblemType::Connection,
                "missing '/'",
            ),
            (
                "http://exa mple.com/",
                ProblemType::IncorrectResponse,
                "not a URL",
            ),
            ("http://:80/", ProblemType::IncorrectResponse, "not a URL"),
        ] {
            let problem = target(location).unwrap_err();
            assert_eq!(problem.kind, kind, "{location}: {problem}");
            assert!(problem.detail.contains(says), "{location}: {problem}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH + 1));
        assert!(target(&long).unwrap_err().detail.contains("too long"));
    }
}
