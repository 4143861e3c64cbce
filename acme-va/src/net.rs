//! Where a validation connects: the addresses of a host, checked against `deny_networks`, and
//! the TCP connection to exactly one of them (first IPv6, then IPv4 when connecting fails).

use std::net::{IpAddr, SocketAddr};

use ca_acme::{Problem, ProblemType};
use ipnet::IpNet;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::{Ident, Inner};

/// A host to connect to: a name to resolve or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    pub(crate) fn of(ident: &Ident) -> Self {
        match ident {
            Ident::Dns(name) => Host::Name(name.clone()),
            Ident::Ip(ip) => Host::Ip(*ip),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Whether `ip` is in one of `deny`, as itself or, for an IPv4-mapped IPv6 address, as the
/// IPv4 address a connection to it reaches.
pub(crate) fn denied(deny: &[IpNet], ip: IpAddr) -> bool {
    let canonical = ip.to_canonical();
    deny.iter()
        .any(|net| net.contains(&ip) || net.contains(&canonical))
}

/// The addresses of a host and those to try, in order.
#[derive(Debug)]
pub(crate) struct Addresses {
    /// Every address the host resolved to (or the address itself).
    pub(crate) resolved: Vec<IpAddr>,
    /// The first allowed IPv6 address, then the first allowed IPv4 address.
    pub(crate) to_try: Vec<IpAddr>,
}

/// The addresses of `host`, none of them denied. A denied address that is the identifier
/// itself is a `rejectedIdentifier` problem; a name that resolves only to denied addresses,
/// or a redirect to a denied address, a `connection` one. A lookup that does not answer
/// before `deadline` is a `dns` problem.
pub(crate) async fn addresses(
    inner: &Inner,
    host: &Host,
    is_identifier: bool,
    deadline: Instant,
) -> Result<Addresses, Problem> {
    let deny = &inner.config.deny_networks;
    let resolved = match host {
        Host::Ip(ip) => {
            if denied(deny, *ip) {
                let (kind, what) = if is_identifier {
                    (ProblemType::RejectedIdentifier, "the identifier")
                } else {
                    (ProblemType::Connection, "the redirect target")
                };
                return Err(Problem::new(
                    kind,
                    format!(
                        "{what} {ip} is in a network the validation authority never connects \
                         to (deny_networks)"
                    ),
                ));
            }
            vec![*ip]
        }
        Host::Name(name) => tokio::time::timeout_at(deadline, inner.dns.addresses(name))
            .await
            .map_err(|_| {
                Problem::new(
                    ProblemType::Dns,
                    format!("DNS problem: query timed out looking up A and AAAA for {name}"),
                )
            })??,
    };
    let allowed: Vec<IpAddr> = resolved
        .iter()
        .copied()
        .filter(|ip| !denied(deny, *ip))
        .collect();
    if allowed.is_empty() {
        let list: Vec<String> = resolved.iter().map(ToString::to_string).collect();
        return Err(Problem::new(
            ProblemType::Connection,
            format!(
                "{host} resolves only to addresses the validation authority never connects to \
                 (deny_networks): {}",
                list.join(", ")
            ),
        ));
    }
    let v6 = allowed.iter().find(|ip| ip.is_ipv6());
    let v4 = allowed.iter().find(|ip| ip.is_ipv4());
    let to_try = v6.into_iter().chain(v4).copied().collect();
    Ok(Addresses { resolved, to_try })
}

/// A TCP connection to `port` on the first of `to_try` that accepts one, and its address; or
/// a `connection` problem and the last address tried. Each try but the last has half of
/// `timeout` (the validation's) at most; all end by `deadline`. Every address is checked
/// against `deny_networks` once more right before connecting to it.
pub(crate) async fn connect(
    inner: &Inner,
    to_try: &[IpAddr],
    port: u16,
    deadline: Instant,
) -> Result<(TcpStream, IpAddr), (Problem, Option<IpAddr>)> {
    let mut last: Option<(IpAddr, String)> = None;
    for (i, ip) in to_try.iter().copied().enumerate() {
        if denied(&inner.config.deny_networks, ip) {
            // addresses() filtered these out: never reached, kept as a backstop.
            return Err((
                Problem::new(ProblemType::Connection, format!("{ip} is in deny_networks")),
                Some(ip),
            ));
        }
        let until = if i + 1 < to_try.len() {
            deadline.min(Instant::now() + inner.config.timeout / 2)
        } else {
            deadline
        };
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout_at(until, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, ip)),
            Ok(Err(err)) => last = Some((ip, connect_error(&err))),
            Err(_) => {
                last = Some((
                    ip,
                    "Timeout during connect (likely firewall problem)".to_string(),
                ))
            }
        }
    }
    match last {
        Some((ip, why)) => Err((
            Problem::new(
                ProblemType::Connection,
                format!("{}: {why}", SocketAddr::new(ip, port)),
            ),
            Some(ip),
        )),
        None => Err((
            Problem::new(ProblemType::Connection, "no address to connect to"),
            None,
        )),
    }
}

fn connect_error(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut => "Timeout during connect (likely firewall problem)".into(),
        _ => format!("Error connecting: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_denied_as_the_ipv4_address_they_reach() {
        let deny = crate::VaConfig::default_deny_networks();
        assert!(denied(&deny, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(denied(&deny, "::ffff:169.254.169.254".parse().unwrap()));
        assert!(!denied(&deny, "::ffff:192.0.2.1".parse().unwrap()));
        assert!(!denied(&[], "127.0.0.1".parse().unwrap()));
    }
}
