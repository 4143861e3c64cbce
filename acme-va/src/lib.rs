//! The ACME validation authority: checks that an applicant controls an identifier before the
//! CA issues for it.
//!
//! - [`Va::validate`]: one challenge, `http-01` (RFC 8555 section 8.3), `dns-01` (RFC 8555
//!   section 8.4) or `tls-alpn-01` (RFC 8737), for a DNS name or an IP address (RFC 8738).
//! - [`Va::check_caa`]: the CAA records of a name (RFC 8659) with the `accounturi` and
//!   `validationmethods` parameters of RFC 8657.
//!
//! - [`Perspectives`]: multi-perspective validation (CA/B Forum Baseline Requirements
//!   3.2.2.9): the local [`Va`] and remote validation agents ([`RemoteVa`], over mutually
//!   authenticated TLS, the [`wire`] format), with a quorum of remote agreement.
//!
//! Every failure is a [`ca_acme::Problem`] of an RFC 8555 section 6.7 type, ready to be put in
//! the challenge's `error`. Validations run in a bounded pool ([`VaConfig::max_in_flight`],
//! [`VaConfig::queue`]), each within [`VaConfig::timeout`].
//!
//! # Network safety
//!
//! Every address a validation would connect to (the identifier's, each address a name
//! resolves to, each redirect target's) is checked against [`VaConfig::deny_networks`] first,
//! and the connection goes to that exact address: the name is never resolved a second time by
//! someone else. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are checked as the IPv4
//! address they reach too.
//!
//! # Addresses tried
//!
//! As Boulder does: of the addresses a name resolves to (A and AAAA, none denied), the first
//! IPv6 one is tried first and, if the TCP connection to it fails (refused, unreachable, or no
//! answer within half the validation's timeout), the first IPv4 one. Only failures to connect
//! fall back; an answer that is wrong is final.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod caa;
mod dns;
mod dns01;
mod http01;
mod net;
mod perspectives;
mod pool;
mod remote;
mod tls;
mod tlsalpn01;
pub mod wire;

pub use perspectives::{BoxFuture, Check, Observer, Perspective, Perspectives};
pub use remote::{server_authority, RemoteTls, RemoteVa};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ca_acme::{Problem, ProblemType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The settings of a [`Va`].
#[derive(Clone, Debug)]
pub struct VaConfig {
    /// The port `http-01` connects to (RFC 8555 section 8.3: 80). Tests use another one.
    pub http01_port: u16,
    /// The port `tls-alpn-01` connects to (RFC 8737 section 3: 443).
    pub tlsalpn01_port: u16,
    /// The DNS resolver to ask (UDP, then TCP for truncated answers); `None`: the system's,
    /// from `/etc/resolv.conf`. `/etc/hosts` is never read.
    pub resolver: Option<SocketAddr>,
    /// Addresses the VA never connects to: the addresses of a name in these networks are left
    /// out (the others are tried); a name that resolves only to such addresses, or a redirect
    /// to one, fails with `connection`, an IP identifier among them with `rejectedIdentifier`.
    /// IPv4-mapped IPv6 addresses are checked as the IPv4 address too.
    pub deny_networks: Vec<IpNet>,
    /// The longest one validation or CAA check may take, every step included (DNS, connect,
    /// TLS, redirects, reading); the time spent waiting in the queue is not counted.
    pub timeout: Duration,
    /// The most redirects an `http-01` validation follows (Boulder: 10).
    pub max_redirects: usize,
    /// The most validations and CAA checks running at once.
    pub max_in_flight: usize,
    /// The most waiting for a place beyond [`VaConfig::max_in_flight`]; one more is refused at
    /// once with `serverInternal`.
    pub queue: usize,
}

impl VaConfig {
    /// The networks no validation may reach unless a deployment decides otherwise: loopback
    /// (`127.0.0.0/8`, `::1`), link-local (`169.254.0.0/16`, which holds the cloud metadata
    /// address `169.254.169.254`, and `fe80::/10`), the unspecified addresses (`0.0.0.0/8`,
    /// "this network", which Linux connects to the host itself, and `::`) and the IPv6 cloud
    /// metadata address `fd00:ec2::254`.
    ///
    /// Private ranges (RFC 1918, `fc00::/7`) are not in it: a public CA adds them.
    pub fn default_deny_networks() -> Vec<IpNet> {
        vec![
            v4(Ipv4Addr::new(127, 0, 0, 0), 8),
            v6(Ipv6Addr::LOCALHOST, 128),
            v4(Ipv4Addr::new(169, 254, 0, 0), 16),
            v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
            v4(Ipv4Addr::UNSPECIFIED, 8),
            v6(Ipv6Addr::UNSPECIFIED, 128),
            v6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 128),
        ]
    }
}

fn v4(addr: Ipv4Addr, len: u8) -> IpNet {
    // The prefix lengths above are constants no longer than the address.
    IpNet::V4(Ipv4Net::new_assert(addr, len))
}

fn v6(addr: Ipv6Addr, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(addr, len))
}

impl Default for VaConfig {
    /// Ports 80 and 443, the system's resolver, [`VaConfig::default_deny_networks`], 10 s, 10
    /// redirects, 64 in flight and 1024 waiting.
    fn default() -> Self {
        Self {
            http01_port: 80,
            tlsalpn01_port: 443,
            resolver: None,
            deny_networks: Self::default_deny_networks(),
            timeout: Duration::from_secs(10),
            max_redirects: 10,
            max_in_flight: 64,
            queue: 1024,
        }
    }
}

/// An ACME challenge type the VA validates (RFC 8555 section 8, RFC 8737).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Challenge {
    /// `http-01` (RFC 8555 section 8.3): the key authorization served over HTTP.
    Http01,
    /// `dns-01` (RFC 8555 section 8.4): its digest in a TXT record.
    Dns01,
    /// `tls-alpn-01` (RFC 8737): its digest in a certificate served with ALPN `acme-tls/1`.
    TlsAlpn01,
}

impl Challenge {
    /// Every challenge type.
    pub const ALL: &'static [Challenge] = &[Self::Http01, Self::Dns01, Self::TlsAlpn01];

    /// The challenge's `type` in ACME: `http-01`, `dns-01` or `tls-alpn-01`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }

    /// The challenge type named `name` ([`Challenge::name`]), if the VA knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The identifier a challenge is for (RFC 8555 section 9.7.7, RFC 8738).
///
/// A DNS name is lower-case, without a trailing dot and without `*.`: a wildcard order's
/// authorization is for its base name, and [`Va::check_caa`] is told it is a wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ident {
    /// A DNS name (`dns` identifier).
    Dns(String),
    /// An IP address (`ip` identifier, RFC 8738).
    Ip(IpAddr),
}

impl Ident {
    /// The identifier as a problem document names it (RFC 8555 section 7.1.3).
    pub fn to_identifier(&self) -> ca_acme::Identifier {
        match self {
            Self::Dns(name) => ca_acme::Identifier {
                kind: "dns".into(),
                value: name.clone(),
            },
            Self::Ip(ip) => ca_acme::Identifier {
                kind: "ip".into(),
                value: ip.to_string(),
            },
        }
    }
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// What a validation looked up and connected to: one per HTTP request (each redirect adds
/// one), one for `tls-alpn-01`, one for `dns-01`. Serialized as Boulder's `validationRecord`
/// entries of a challenge: `url`, `hostname`, `port` (a string, as Boulder writes it),
/// `addressesResolved`, `addressUsed`, each left out when empty.
///
/// Read back (a remote agent's answer, [`wire`]) with the port as a string or a number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRecord {
    /// The URL requested (`http-01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name or address looked up or connected to.
    pub hostname: String,
    /// The port connected to (`http-01`, `tls-alpn-01`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "port_as_string",
        deserialize_with = "port_from_string"
    )]
    pub port: Option<u16>,
    /// Every address the name resolved to (denied ones included), or the IP identifier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses_resolved: Vec<IpAddr>,
    /// The address connected to (the last one tried when every try failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_used: Option<IpAddr>,
}

fn port_as_string<S: serde::Serializer>(port: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
    match port {
        Some(port) => s.serialize_str(&port.to_string()),
        None => s.serialize_none(),
    }
}

fn port_from_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Text(String),
        Number(u16),
    }
    match Option::<Port>::deserialize(d)? {
        None => Ok(None),
        Some(Port::Number(port)) => Ok(Some(port)),
        Some(Port::Text(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("a port is a number from 0 to 65535")),
    }
}

/// Why a [`Va`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VaError {
    /// The system's resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("reading the system's DNS configuration (/etc/resolv.conf): {0}")]
    SystemResolver(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The DNS resolver could not be built.
    #[error("building the DNS resolver: {0}")]
    Resolver(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The TLS client configuration could not be built.
    #[error("building the TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A setting is out of range.
    #[error("invalid VA configuration: {0}")]
    Config(&'static str),
    /// A remote validation agent's URL or TLS material cannot be used, or the quorum is out
    /// of range ([`RemoteVa`], [`Perspectives`]).
    #[error("remote validation agents: {0}")]
    Remote(String),
}

/// The validation authority: cheap to clone (the clones share the resolver and the pool),
/// `Send` and `Sync`.
#[derive(Clone)]
pub struct Va {
    inner: Arc<Inner>,
}

struct Inner {
    config: VaConfig,
    dns: dns::Dns,
    tls: tls::Clients,
    pool: pool::Pool,
}

impl std::fmt::Debug for Va {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Va")
            .field("config", &self.inner.config)
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

impl Va {
    /// A VA with `config`: reads `/etc/resolv.conf` when [`VaConfig::resolver`] is `None`.
    /// Needs a Tokio runtime only to validate, not to be built.
    pub fn new(config: VaConfig) -> Result<Va, VaError> {
        if config.max_in_flight == 0 {
            return Err(VaError::Config("max_in_flight must be at least 1"));
        }
        if config.timeout.is_zero() {
            return Err(VaError::Config("timeout must not be zero"));
        }
        let dns = dns::Dns::new(config.resolver, config.timeout)?;
        let tls = tls::Clients::new()?;
        let pool = pool::Pool::new(config.max_in_flight, config.queue);
        Ok(Va {
            inner: Arc::new(Inner {
                config,
                dns,
                tls,
                pool,
            }),
        })
    }

    /// Validates one challenge: `http-01` (RFC 8555 section 8.3), `dns-01` (RFC 8555 section
    /// 8.4) or `tls-alpn-01` (RFC 8737, RFC 8738 for IP addresses), waiting for a place in the
    /// pool first. `token` is the challenge's token, `key_authorization` the token and the
    /// account key's thumbprint (RFC 8555 section 8.1).
    ///
    /// On success, what was looked up and connected to. On failure a problem whose type says
    /// why: `dns` (a lookup failed or found nothing), `connection` (refused, timed out, denied
    /// address, bad redirect), `unauthorized` (the answer is not the expected one),
    /// `incorrectResponse` (an answer that cannot be read: a malformed certificate or
    /// extension, a redirect without a usable `Location`), `tls` (handshake failed, no
    /// `acme-tls/1`), `rejectedIdentifier` (the identifier is a wildcard or a denied address),
    /// `malformed` (a token that is not base64url, `dns-01` for an IP address), or
    /// `serverInternal` when the queue is full.
    pub async fn validate(
        &self,
        challenge: Challenge,
        ident: &Ident,
        token: &str,
        key_authorization: &str,
    ) -> Result<Vec<ValidationRecord>, Problem> {
        check_ident(ident)?;
        if challenge == Challenge::Http01 && !is_base64url(token) {
            return Err(Problem::malformed(format!(
                "the token \"{}\" is not base64url",
                ca_acme::problem::quote(token)
            )));
        }
        let _place = self.inner.pool.enter().await?;
        let timeout = self.inner.config.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let work = async {
            match challenge {
                Challenge::Http01 => {
                    http01::validate(&self.inner, deadline, ident, token, key_authorization).await
                }
                Challenge::Dns01 => {
                    dns01::validate(&self.inner, deadline, ident, key_authorization).await
                }
                Challenge::TlsAlpn01 => {
                    tlsalpn01::validate(&self.inner, deadline, ident, key_authorization).await
                }
            }
        };
        let result = tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| Err(timed_out(challenge.name(), timeout)));
        match &result {
            Ok(_) => tracing::debug!(%ident, challenge = challenge.name(), "validated"),
            Err(problem) => {
                tracing::debug!(%ident, challenge = challenge.name(), %problem, "not validated")
            }
        }
        result
    }

    /// Checks the CAA records of `ident` (RFC 8659): from the name up the tree to the first
    /// name with a CAA record set (a CNAME is followed as the resolver follows it, nothing
    /// more). `Ok` when no set is found or when the relevant one authorizes one of
    /// `identities` (issuer domain names, compared without regard to case): `issuewild` for a
    /// `wildcard` order when the set has any, `issue` otherwise; an `accounturi` parameter
    /// must equal `account_uri` and a `validationmethods` one must list `method` (RFC 8657); a
    /// record with the critical flag and a tag the VA does not know forbids (RFC 8659 section
    /// 4.1).
    ///
    /// Errors: `caa` naming where the forbidding set is and its records, `dns` when a lookup
    /// fails (SERVFAIL, timeout: the check fails closed), `serverInternal` when the queue is
    /// full. IP identifiers have no CAA: `Ok` at once.
    pub async fn check_caa(
        &self,
        ident: &Ident,
        wildcard: bool,
        identities: &[String],
        account_uri: &str,
        method: Challenge,
    ) -> Result<(), Problem> {
        let Ident::Dns(name) = ident else {
            return Ok(());
        };
        check_ident(ident)?;
        let _place = self.inner.pool.enter().await?;
        let timeout = self.inner.config.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let request = caa::Request {
            wildcard,
            identities,
            account_uri,
            method,
        };
        tokio::time::timeout_at(deadline, caa::check(&self.inner.dns, name, &request))
            .await
            .unwrap_or_else(|_| {
                Err(Problem::new(
                    ProblemType::Dns,
                    format!("CAA lookups for {name} timed out after {timeout:?}"),
                ))
            })
    }

    /// The validations and CAA checks running now.
    pub fn in_flight(&self) -> usize {
        self.inner.pool.in_flight()
    }

    /// The validations and CAA checks waiting for a place.
    pub fn queued(&self) -> usize {
        self.inner.pool.queued()
    }
}

fn timed_out(what: &str, timeout: Duration) -> Problem {
    Problem::new(
        ProblemType::Connection,
        format!("{what} validation timed out after {timeout:?}"),
    )
}

/// Refuses identifiers no challenge can be for: an empty or malformed name, a wildcard.
fn check_ident(ident: &Ident) -> Result<(), Problem> {
    let Ident::Dns(name) = ident else {
        return Ok(());
    };
    if name.contains('*') {
        return Err(Problem::new(
            ProblemType::RejectedIdentifier,
            format!(
                "\"{}\": a wildcard is validated through its base name",
                ca_acme::problem::quote(name)
            ),
        ));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemType::RejectedIdentifier,
            format!(
                "\"{}\" is not a lower-case DNS name",
                ca_acme::problem::quote(name)
            ),
        ))
    }
}

/// The token alphabet of RFC 8555 section 8.1 (base64url, no padding).
fn is_base64url(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// base64url without padding of SHA-256 of the key authorization: the `dns-01` TXT value
/// (RFC 8555 section 8.4).
fn key_authorization_digest(key_authorization: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(key_authorization.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_names_round_trip() {
        for c in Challenge::ALL {
            assert_eq!(Challenge::from_name(c.name()), Some(*c));
        }
        assert_eq!(Challenge::from_name("tls-sni-01"), None);
        assert_eq!(Challenge::TlsAlpn01.to_string(), "tls-alpn-01");
    }

    #[test]
    fn the_default_deny_list_covers_loopback_link_local_and_metadata() {
        let deny = VaConfig::default_deny_networks();
        for addr in [
            "127.0.0.1",
            "127.255.255.254",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "fd00:ec2::254",
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert!(deny.iter().any(|n| n.contains(&ip)), "{addr}");
        }
        for addr in ["192.0.2.1", "2001:db8::1", "fd00:ec2::253", "10.0.0.1"] {
            let ip: IpAddr = addr.parse().unwrap();
            assert!(!deny.iter().any(|n| n.contains(&ip)), "{addr}");
        }
        let config = VaConfig::default();
        assert_eq!(config.http01_port, 80);
        assert_eq!(config.tlsalpn01_port, 443);
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(
            (config.max_redirects, config.max_in_flight, config.queue),
            (10, 64, 1024)
        );
    }

    #[test]
    fn a_validation_record_serializes_as_boulder_writes_it() {
        let record = ValidationRecord {
            url: Some("http://example.com/.well-known/acme-challenge/t".into()),
            hostname: "example.com".into(),
            port: Some(80),
            addresses_resolved: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
            address_used: Some("2001:db8::1".parse().unwrap()),
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({
                "url": "http://example.com/.well-known/acme-challenge/t",
                "hostname": "example.com",
                "port": "80",
                "addressesResolved": ["192.0.2.1", "2001:db8::1"],
                "addressUsed": "2001:db8::1"
            })
        );
        let dns = ValidationRecord {
            url: None,
            hostname: "example.com".into(),
            port: None,
            addresses_resolved: vec![],
            address_used: None,
        };
        assert_eq!(
            serde_json::to_value(&dns).unwrap(),
            serde_json::json!({"hostname": "example.com"})
        );
    }

    #[test]
    fn a_va_is_built_outside_a_runtime_and_checks_its_settings() {
        let config = VaConfig {
            resolver: Some("127.0.0.1:53".parse().unwrap()),
            ..VaConfig::default()
        };
        let va = Va::new(config.clone()).unwrap();
        assert_eq!((va.in_flight(), va.queued()), (0, 0));
        if std::path::Path::new("/etc/resolv.conf").exists() {
            Va::new(VaConfig::default()).unwrap();
        }
        let none = VaConfig {
            max_in_flight: 0,
            ..config.clone()
        };
        assert!(matches!(Va::new(none), Err(VaError::Config(_))));
        let instant = VaConfig {
            timeout: Duration::ZERO,
            ..config
        };
        assert!(matches!(Va::new(instant), Err(VaError::Config(_))));
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(check_ident(&Ident::Dns("example.com".into())).is_ok());
        assert!(check_ident(&Ident::Dns("_x.example-1.com".into())).is_ok());
        assert!(check_ident(&Ident::Ip("::1".parse().unwrap())).is_ok());
        for bad in [
            "",
            "*.example.com",
            "Example.com",
            "a..b",
            "a/b",
            "example.com.",
        ] {
            let problem = check_ident(&Ident::Dns(bad.into())).unwrap_err();
            assert_eq!(problem.kind, ProblemType::RejectedIdentifier, "{bad}");
        }
        assert!(is_base64url("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        assert!(!is_base64url("../x"));
        assert!(!is_base64url(""));
    }
}
