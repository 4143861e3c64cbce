//! The CA server's own TLS certificate: issued by the CA under an internal profile that no
//! RA can request (RFC 5280 section 4.2.1.6 names, RFC 6125 section 6 for how clients match
//! them).
//!
//! The `tls-server` subscriber profile refuses names a public CA must not certify, such as a
//! single label (`localhost`, a host on the operator's network), an internal name
//! (`ca.internal`) or a reserved IP address (`127.0.0.1`, `10.0.0.1`). The server's own
//! certificate answers to whatever names the CA operator reaches it by, so it has its own
//! rules: each name is an IP address or a syntactically valid DNS name (no wildcard), and
//! nothing else is checked.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use keys::Signer;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

use crate::authority::{CertificateAuthority, Urls};
use crate::csr::{subject_key, AttributeKind, San, SubjectAttribute};
use crate::error::CaError;
use crate::profile::{ExtendedKeyUsage, KeyUsage, Profile, ValidatedRequest, Validation};
use crate::serial::Serial;

/// The profile name of the server certificate template (never a configured profile), also
/// the profile its stored record names.
pub const SERVER_TLS_PROFILE: &str = "ca-server-tls";

/// Validity of the server's TLS certificate, in days (the CA/Browser Forum's ceiling for TLS
/// certificates, which clients that check validity length accept).
pub const SERVER_TLS_VALIDITY_DAYS: u32 = 397;

/// A name refused for the server's own certificate: the name, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadServerName {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for BadServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.name, self.reason)
    }
}

/// Parses one name for the server's certificate: an IP address (iPAddress SAN) or a DNS name
/// (dNSName SAN, lower-cased, a trailing dot dropped) of labels of letters, digits and
/// hyphens, 1 to 63 characters each, not starting or ending with a hyphen, at most 253
/// characters in all (RFC 1123 section 2.1). A single label such as `localhost` is allowed.
pub fn server_name(name: &str) -> Result<San, BadServerName> {
    let bad = |reason| BadServerName {
        name: name.to_string(),
        reason,
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(San::Ip(ip));
    }
    let dns = name.strip_suffix('.').unwrap_or(name);
    if dns.is_empty() {
        return Err(bad("is empty"));
    }
    if dns.len() > 253 {
        return Err(bad("is longer than 253 characters"));
    }
    if dns.starts_with("*.") {
        return Err(bad("is a wildcard; name the server's host itself"));
    }
    for label in dns.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad(
                "has a label that is empty or longer than 63 characters",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("has a label that starts or ends with a hyphen"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "is neither an IP address nor a DNS name (letters, digits, hyphens and dots)",
            ));
        }
    }
    Ok(San::Dns(dns.to_ascii_lowercase()))
}

/// Parses every name ([`server_name`]); none twice.
pub fn server_names(names: &[String]) -> Result<Vec<San>, BadServerName> {
    let mut sans: Vec<San> = Vec::with_capacity(names.len());
    for name in names {
        let san = server_name(name)?;
        if sans.contains(&san) {
            return Err(BadServerName {
                name: name.clone(),
                reason: "is given twice",
            });
        }
        sans.push(san);
    }
    Ok(sans)
}

/// Issues the server's TLS certificate for `key` (its SubjectPublicKeyInfo, DER), signed by
/// the CA (`ca_signer`, `ca_cert_der`) through [`CertificateAuthority::sign`]: subject
/// `CN=<the first name>`, subjectAltName the `names` in order, extended key usage
/// id-kp-serverAuth, key usage digitalSignature (critical), basicConstraints cA false, key
/// identifiers, and the CRL, OCSP and caIssuers `urls`; valid [`SERVER_TLS_VALIDITY_DAYS`]
/// from a minute before `now`. Returns its DER.
pub fn issue_server_certificate(
    ca_signer: Arc<dyn Signer>,
    ca_cert_der: &[u8],
    key: &[u8],
    names: &[San],
    urls: &Urls,
    serial: Serial,
    now: OffsetDateTime,
) -> Result<Vec<u8>, CaError> {
    let first = names.first().ok_or_else(|| {
        CaError::InvalidRequest("the server's certificate needs at least one name".into())
    })?;
    let profile = Profile {
        max_validity_days: SERVER_TLS_VALIDITY_DAYS,
        default_validity_days: SERVER_TLS_VALIDITY_DAYS,
        key_usage: vec![KeyUsage::DigitalSignature],
        extended_key_usage: vec![ExtendedKeyUsage::ServerAuth],
        ..Profile::default()
    };
    let profiles = BTreeMap::from([(SERVER_TLS_PROFILE.to_string(), profile)]);
    let ca = CertificateAuthority::new(ca_signer, vec![ca_cert_der.to_vec()], &profiles, urls)?;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(key).map_err(|e| {
        CaError::ca_material_from("the server's TLS key does not parse", e.to_string())
    })?;
    let request = ValidatedRequest {
        subject: vec![SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: first.value(),
        }],
        sans: names.to_vec(),
        key: subject_key(&spki)?,
        validity_days: SERVER_TLS_VALIDITY_DAYS,
        validation: Validation::Basic,
    };
    Ok(ca.sign(SERVER_TLS_PROFILE, serial, &request, now)?.der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_operator_reaches_the_server_by() {
        let dns = |d: &str| San::Dns(d.into());
        assert_eq!(server_name("localhost"), Ok(dns("localhost")));
        assert_eq!(server_name("CA.Example."), Ok(dns("ca.example")));
        assert_eq!(server_name("ca-1"), Ok(dns("ca-1")));
        assert_eq!(
            server_name("::1"),
            Ok(San::Ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])))
        );
        assert_eq!(
            server_name("10.0.0.7"),
            Ok(San::Ip(IpAddr::from([10, 0, 0, 7])))
        );
        for bad in [
            "",
            ".",
            "a..b",
            "-a",
            "a-",
            "a_b",
            "*.example",
            "a b",
            "é.example",
        ] {
            assert!(server_name(bad).is_err(), "{bad:?} is refused");
        }
        assert!(server_name(&"a".repeat(64)).is_err());
        assert!(server_name(&["a"; 128].join(".")).is_err());
        let twice = server_names(&["localhost".into(), "LOCALHOST".into()]).unwrap_err();
        assert_eq!(twice.reason, "is given twice");
    }
}
