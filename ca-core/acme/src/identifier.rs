//! Identifiers of orders and authorizations (RFC 8555 section 7.1.3, section 9.7.7 for `dns`,
//! RFC 8738 for `ip`).

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::{quote, Identifier as ProblemIdentifier, Problem, ProblemType};

/// Longest DNS name accepted, in octets (RFC 1035 section 2.3.4, presentation form).
const MAX_DNS_NAME: usize = 253;

/// An identifier an account asks a certificate for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AcmeIdentifier {
    /// A DNS name, lower case, without a trailing dot; `wildcard` when the order asked for
    /// `*.` in front of it (RFC 8555 section 7.1.3: the authorization is for the base name).
    Dns {
        /// The name without `*.`.
        name: String,
        /// Whether `*.` was asked for.
        wildcard: bool,
    },
    /// An IP address (RFC 8738 section 3), in its canonical text form.
    Ip(IpAddr),
}

/// The JSON form of an identifier: `{"type": ..., "value": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentifier {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

impl RawIdentifier {
    /// The identifier as received, for a subproblem.
    pub(crate) fn identifier(&self) -> ProblemIdentifier {
        ProblemIdentifier {
            kind: quote(&self.kind),
            value: quote(&self.value),
        }
    }
}

impl AcmeIdentifier {
    /// Reads an identifier object of a `newOrder` (RFC 8555 section 7.4).
    ///
    /// `dns`: an LDH name (RFC 5890 A-labels included) of at most 253 octets, labels of 1 to
    /// 63 octets not starting or ending with `-`, at least two labels, optionally with `*.` in
    /// front (wildcard); upper case is folded. `ip`: an IPv4 or IPv6 address as RFC 8738
    /// section 3 writes it. Anything else is `rejectedIdentifier` (an unsupported type is
    /// `unsupportedIdentifier`).
    pub(crate) fn from_raw(raw: &RawIdentifier) -> Result<Self, Problem> {
        match raw.kind.as_str() {
            "dns" => Self::dns(&raw.value),
            "ip" => raw
                .value
                .parse::<IpAddr>()
                .map(AcmeIdentifier::Ip)
                .map_err(|_| {
                    rejected(
                        &raw.value,
                        "is not an IPv4 or IPv6 address (RFC 8738 section 3)",
                    )
                }),
            other => Err(Problem::new(
                ProblemType::UnsupportedIdentifier,
                format!(
                    "identifier type \"{}\" is not supported: dns and ip are",
                    quote(other)
                ),
            )),
        }
    }

    /// Reads a DNS identifier's value.
    pub fn dns(value: &str) -> Result<Self, Problem> {
        let lower = value.to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, lower),
        };
        if name.is_empty() || name.len() > MAX_DNS_NAME {
            return Err(rejected(value, "is not a DNS name of 1 to 253 octets"));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(rejected(value, "is not a fully qualified DNS name"));
        }
        for label in &labels {
            let ldh = label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if label.is_empty()
                || label.len() > 63
                || !ldh
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(rejected(
                    value,
                    "is not a DNS name of letters, digits and hyphens (a wildcard only as \
                     the whole leftmost label)",
                ));
            }
        }
        if name.parse::<IpAddr>().is_ok() {
            return Err(rejected(value, "is an IP address: use the ip type"));
        }
        Ok(AcmeIdentifier::Dns { name, wildcard })
    }

    /// The identifier type: `dns` or `ip`.
    pub fn kind(&self) -> &'static str {
        match self {
            AcmeIdentifier::Dns { .. } => "dns",
            AcmeIdentifier::Ip(_) => "ip",
        }
    }

    /// The value as the order shows it (`*.example.com` for a wildcard).
    pub fn value(&self) -> String {
        match self {
            AcmeIdentifier::Dns { name, wildcard } => {
                if *wildcard {
                    format!("*.{name}")
                } else {
                    name.clone()
                }
            }
            AcmeIdentifier::Ip(ip) => ip.to_string(),
        }
    }

    /// The value an authorization is for: the base name of a wildcard (RFC 8555 section
    /// 7.1.4), the value otherwise.
    pub fn authz_value(&self) -> String {
        match self {
            AcmeIdentifier::Dns { name, .. } => name.clone(),
            AcmeIdentifier::Ip(ip) => ip.to_string(),
        }
    }

    /// Whether `*.` was asked for.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, AcmeIdentifier::Dns { wildcard: true, .. })
    }

    /// The identifier object of an order: `{"type", "value"}` with the order's value.
    pub fn to_json(&self) -> Value {
        json!({"type": self.kind(), "value": self.value()})
    }

    /// The identifier object of an authorization: the base name of a wildcard (RFC 8555
    /// section 7.1.4).
    pub fn authz_json(&self) -> Value {
        json!({"type": self.kind(), "value": self.authz_value()})
    }

    /// The identifier as a problem's subproblem names it.
    pub fn for_problem(&self) -> ProblemIdentifier {
        ProblemIdentifier {
            kind: self.kind().to_string(),
            value: self.value(),
        }
    }
}

fn rejected(value: &str, why: &str) -> Problem {
    Problem::new(
        ProblemType::RejectedIdentifier,
        format!("\"{}\" {why}", quote(value)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: &str, value: &str) -> Result<AcmeIdentifier, Problem> {
        AcmeIdentifier::from_raw(&RawIdentifier {
            kind: kind.into(),
            value: value.into(),
        })
    }

    #[test]
    fn dns_names_are_folded_and_wildcards_split() {
        let id = raw("dns", "WWW.Example.COM").unwrap();
        assert_eq!(id.value(), "www.example.com");
        let id = raw("dns", "*.example.com").unwrap();
        assert!(id.is_wildcard());
        assert_eq!(id.authz_value(), "example.com");
        assert_eq!(id.value(), "*.example.com");
        assert_eq!(id.authz_json()["value"], "example.com");
    }

    #[test]
    fn bad_names_are_rejected_identifiers() {
        let long = format!("{}.com", "a".repeat(64));
        for bad in [
            "",
            "com",
            "a..com",
            "-a.com",
            "a-.com",
            "a_b.com",
            "*.*.com",
            "a.*.com",
            "*",
            "10.0.0.1",
            "example.com.",
            &long,
        ] {
            let e = raw("dns", bad).unwrap_err();
            assert_eq!(e.kind, ProblemType::RejectedIdentifier, "{bad:?}");
        }
    }

    #[test]
    fn ip_addresses_and_unsupported_types() {
        assert_eq!(raw("ip", "192.0.2.1").unwrap().value(), "192.0.2.1");
        assert_eq!(raw("ip", "2001:DB8::1").unwrap().value(), "2001:db8::1");
        assert_eq!(
            raw("ip", "example.com").unwrap_err().kind,
            ProblemType::RejectedIdentifier
        );
        assert_eq!(
            raw("email", "a@example.com").unwrap_err().kind,
            ProblemType::UnsupportedIdentifier
        );
    }
}
