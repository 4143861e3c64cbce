//! `tls-alpn-01` (RFC 8737; RFC 8738 section 6 for IP addresses): a TLS handshake on the
//! identifier's port 443 with SNI the identifier (an IP address's reverse name,
//! `d.c.b.a.in-addr.arpa` or the `ip6.arpa` nibbles) and ALPN `acme-tls/1` only. The server
//! must negotiate `acme-tls/1` and present a certificate whose subjectAltName holds exactly the
//! identifier (a dNSName, or an iPAddress), with a critical acmeIdentifier extension (OID
//! 1.3.6.1.5.5.7.1.31) whose value is the DER OCTET STRING of SHA-256(key authorization).
//!
//! The certificate is not verified otherwise: RFC 8737 makes it self-signed and checks only
//! its content (Boulder also requires it to be self-signed; this VA does not).

use std::net::IpAddr;

use ca_acme::{Problem, ProblemType};
use rustls::pki_types::ServerName;
use tokio::time::Instant;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::prelude::FromDer;

use crate::net::{self, Host};
use crate::tls::ACME_TLS_1;
use crate::{key_authorization_digest, Ident, Inner, ValidationRecord};

/// The acmeIdentifier extension (RFC 8737 section 6.1).
const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";

pub(crate) async fn validate(
    inner: &Inner,
    deadline: Instant,
    ident: &Ident,
    key_authorization: &str,
) -> Result<Vec<ValidationRecord>, Problem> {
    let port = inner.config.tlsalpn01_port;
    let addresses = net::addresses(inner, &Host::of(ident), true, deadline).await?;
    let (stream, address) = net::connect(inner, &addresses.to_try, port, deadline)
        .await
        .map_err(|(problem, _)| problem)?;
    let record = ValidationRecord {
        url: None,
        hostname: ident.to_string(),
        port: Some(port),
        addresses_resolved: addresses.resolved,
        address_used: Some(address),
    };
    let sni = match ident {
        Ident::Dns(name) => name.clone(),
        Ident::Ip(ip) => reverse_name(*ip),
    };
    let server_name = ServerName::try_from(sni.as_str())
        .map(|n| n.to_owned())
        .map_err(|e| {
            Problem::new(
                ProblemType::RejectedIdentifier,
                format!("{sni} cannot be sent as a TLS server name: {e}"),
            )
        })?;
    let from = format!("{}", std::net::SocketAddr::new(address, port));
    let connector = tokio_rustls::TlsConnector::from(inner.tls.alpn.clone());
    let tls = connector.connect(server_name, stream).await.map_err(|e| {
        Problem::new(
            ProblemType::Tls,
            format!("tls-alpn-01: the TLS handshake with {from} for {ident} failed: {e}"),
        )
    })?;
    let (_, connection) = tls.get_ref();
    if connection.alpn_protocol() != Some(ACME_TLS_1) {
        return Err(Problem::new(
            ProblemType::Tls,
            format!(
                "tls-alpn-01: {from} did not negotiate the ALPN protocol \"acme-tls/1\" for \
                 {ident} (RFC 8737 section 3)"
            ),
        ));
    }
    let certificate = connection
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| {
            Problem::new(
                ProblemType::Unauthorized,
                format!("tls-alpn-01: {from} presented no certificate for {ident}"),
            )
        })?;
    check_certificate(certificate.as_ref(), ident, key_authorization, &from)?;
    Ok(vec![record])
}

/// The reverse-mapping name of an address (RFC 8738 section 6): `4.3.2.1.in-addr.arpa` for
/// 1.2.3.4, the 32 nibbles of an IPv6 address backwards then `ip6.arpa`.
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(ip) => {
            let mut name = String::with_capacity(72);
            for byte in ip.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// The checks of RFC 8737 section 3 on the certificate `der` that `from` presented.
fn check_certificate(
    der: &[u8],
    ident: &Ident,
    key_authorization: &str,
    from: &str,
) -> Result<(), Problem> {
    let wrong = |why: String| {
        Problem::new(
            ProblemType::Unauthorized,
            format!(
                "Incorrect validation certificate for tls-alpn-01 from {from} for {ident}: {why}"
            ),
        )
    };
    let malformed = |why: String| {
        Problem::new(
            ProblemType::IncorrectResponse,
            format!(
                "Malformed validation certificate for tls-alpn-01 from {from} for {ident}: {why}"
            ),
        )
    };
    let (_, certificate) = X509Certificate::from_der(der)
        .map_err(|e| malformed(format!("it cannot be parsed ({e})")))?;
    let mut san = None;
    let mut acme = None;
    for extension in certificate.extensions() {
        let slot = if extension.oid == OID_X509_EXT_SUBJECT_ALT_NAME {
            &mut san
        } else if extension.oid.to_id_string() == ACME_IDENTIFIER {
            &mut acme
        } else {
            continue;
        };
        if slot.replace(extension).is_some() {
            return Err(malformed(format!(
                "the extension {} appears twice",
                extension.oid.to_id_string()
            )));
        }
    }
    let san = san.ok_or_else(|| wrong("it has no subjectAltName extension".into()))?;
    let ParsedExtension::SubjectAlternativeName(names) = san.parsed_extension() else {
        return Err(malformed("its subjectAltName cannot be parsed".into()));
    };
    let names = &names.general_names;
    let matches = match (names.as_slice(), ident) {
        ([GeneralName::DNSName(name)], Ident::Dns(expected)) => name.eq_ignore_ascii_case(expected),
        ([GeneralName::IPAddress(bytes)], Ident::Ip(IpAddr::V4(expected))) => {
            *bytes == expected.octets().as_slice()
        }
        ([GeneralName::IPAddress(bytes)], Ident::Ip(IpAddr::V6(expected))) => {
            *bytes == expected.octets().as_slice()
        }
        _ => false,
    };
    if !matches {
        let listed: Vec<String> = names.iter().map(describe).collect();
        return Err(wrong(format!(
            "its subjectAltName must hold exactly {ident}, it holds [{}]",
            listed.join(", ")
        )));
    }
    let acme = acme
        .ok_or_else(|| wrong("it has no acmeIdentifier extension (1.3.6.1.5.5.7.1.31)".into()))?;
    if !acme.critical {
        return Err(wrong("its acmeIdentifier extension is not critical".into()));
    }
    let digest = key_authorization_digest(key_authorization);
    let value = acme.value;
    // DER OCTET STRING of 32 bytes: tag 4, length 32, the digest.
    if value.len() != 34 || value[0] != 0x04 || value[1] != 0x20 {
        return Err(malformed(
            "its acmeIdentifier extension is not an OCTET STRING of 32 bytes".into(),
        ));
    }
    if value[2..] != digest {
        return Err(wrong(format!(
            "its acmeIdentifier extension holds {}, expected {}",
            hex(&value[2..]),
            hex(&digest)
        )));
    }
    Ok(())
}

/// A subjectAltName entry for a problem's detail.
fn describe(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(name) => format!("dNSName {}", ca_acme::problem::quote(name)),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => format!("iPAddress {}", IpAddr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*bytes) {
                Ok(v6) => format!("iPAddress {}", IpAddr::from(v6)),
                Err(_) => format!("iPAddress of {} bytes", bytes.len()),
            },
        },
        other => ca_acme::problem::quote(&other.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_follow_rfc_8738() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    fn certificate(names: Vec<rcgen::SanType>, extensions: Vec<rcgen::CustomExtension>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = names;
        params.custom_extensions = extensions;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn dns(name: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(name.try_into().unwrap())
    }

    #[test]
    fn the_certificate_must_name_exactly_the_identifier_and_hold_the_digest() {
        let ka = "token.thumbprint";
        let ident = Ident::Dns("example.com".into());
        let good = rcgen::CustomExtension::new_acme_identifier(&key_authorization_digest(ka));
        let check = |der: &[u8], ident: &Ident| check_certificate(der, ident, ka, "192.0.2.1:443");

        check(
            &certificate(vec![dns("example.com")], vec![good.clone()]),
            &ident,
        )
        .unwrap();
        check(
            &certificate(vec![dns("EXAMPLE.com")], vec![good.clone()]),
            &ident,
        )
        .unwrap();

        let two = certificate(
            vec![dns("example.com"), dns("example.org")],
            vec![good.clone()],
        );
        let problem = check(&two, &ident).unwrap_err();
        assert_eq!(problem.kind, ProblemType::Unauthorized);
        assert!(problem.detail.contains("exactly"), "{problem}");

        let other = certificate(vec![dns("example.org")], vec![good.clone()]);
        assert_eq!(
            check(&other, &ident).unwrap_err().kind,
            ProblemType::Unauthorized
        );

        let none = certificate(vec![], vec![good.clone()]);
        assert_eq!(
            check(&none, &ident).unwrap_err().kind,
            ProblemType::Unauthorized
        );

        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let by_ip = certificate(vec![rcgen::SanType::IpAddress(ip)], vec![good.clone()]);
        check(&by_ip, &Ident::Ip(ip)).unwrap();
        assert_eq!(
            check(&by_ip, &Ident::Ip("192.0.2.2".parse().unwrap()))
                .unwrap_err()
                .kind,
            ProblemType::Unauthorized
        );
        // An IP identifier is not matched by a dNSName of its text.
        let ip_as_name = certificate(vec![dns("192.0.2.1")], vec![good.clone()]);
        assert_eq!(
            check(&ip_as_name, &Ident::Ip(ip)).unwrap_err().kind,
            ProblemType::Unauthorized
        );
    }

    #[test]
    fn the_acme_identifier_extension_is_critical_and_well_formed() {
        let ka = "token.thumbprint";
        let ident = Ident::Dns("example.com".into());
        let check = |extensions| {
            check_certificate(
                &certificate(vec![dns("example.com")], extensions),
                &ident,
                ka,
                "192.0.2.1:443",
            )
        };
        let missing = check(vec![]).unwrap_err();
        assert_eq!(missing.kind, ProblemType::Unauthorized);
        assert!(missing.detail.contains("no acmeIdentifier"), "{missing}");

        let wrong = check(vec![rcgen::CustomExtension::new_acme_identifier(
            &key_authorization_digest("other"),
        )])
        .unwrap_err();
        assert_eq!(wrong.kind, ProblemType::Unauthorized);
        assert!(wrong.detail.contains("expected"), "{wrong}");

        let mut not_critical =
            rcgen::CustomExtension::new_acme_identifier(&key_authorization_digest(ka));
        not_critical.set_criticality(false);
        let problem = check(vec![not_critical]).unwrap_err();
        assert_eq!(problem.kind, ProblemType::Unauthorized);
        assert!(problem.detail.contains("not critical"), "{problem}");

        // The digest itself, not wrapped in an OCTET STRING.
        let mut raw = rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 31],
            key_authorization_digest(ka).to_vec(),
        );
        raw.set_criticality(true);
        assert_eq!(
            check(vec![raw]).unwrap_err().kind,
            ProblemType::IncorrectResponse
        );

        assert_eq!(
            check_certificate(b"not a certificate", &ident, ka, "x")
                .unwrap_err()
                .kind,
            ProblemType::IncorrectResponse
        );
    }
}
