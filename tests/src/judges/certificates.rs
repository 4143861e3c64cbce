//! Issued certificates judged: every field of an issuance answer and of the certificate, parsed
//! with x509-parser ([`check_issued`]), the stored record ([`check_record`]), `openssl verify
//! -x509_strict` with the profile's purpose, and pkilint.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use x509_parser::extensions::{
    AuthorityInfoAccess, CRLDistributionPoints, DistributionPointName, GeneralName, ParsedExtension,
};
use x509_parser::prelude::{FromDer, X509Certificate, X509CertificationRequest};

use super::pkilint::pkilint;
use crate::command::{output_within, COMMAND_DEADLINE};
use crate::fixtures::Csr;
use crate::formats::{is_serial, now_unix, parse_rfc3339, pem_certs};
use crate::server::Server;

/// The CA chain as served, with what leaf checks need.
#[derive(Clone, Debug)]
pub struct CaCert {
    pub pem: String,
    pub ders: Vec<Vec<u8>>,
    /// The issuing CA's subjectKeyIdentifier.
    pub ski: Vec<u8>,
    /// The issuing CA's subject, DER.
    pub subject_der: Vec<u8>,
    /// The chain written to a file, for `openssl verify -CAfile`.
    pub file: PathBuf,
}

impl CaCert {
    pub fn from_pem(pem: &str, dir: &Path) -> CaCert {
        let ders = pem_certs(pem);
        assert!(
            !ders.is_empty(),
            "the CA chain holds no certificate: {pem:?}"
        );
        let (_, ca) = X509Certificate::from_der(&ders[0]).expect("the CA certificate parses");
        assert!(ca.is_ca(), "the first certificate of the chain is not a CA");
        let ski = ca
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .expect("the CA certificate has a subjectKeyIdentifier");
        let subject_der = ca.subject().as_raw().to_vec();
        let file = dir.join(format!("ca-{}.pem", hex::encode(&ski)));
        std::fs::write(&file, pem).expect("writing the CA file");
        CaCert {
            pem: pem.to_string(),
            ders,
            ski,
            subject_der,
            file,
        }
    }
}

impl Server {
    /// Runs every check on a 201/200 issuance answer for `csr` (see [`check_issued`]).
    pub fn check_issued(&self, resp: &Value, csr: &Csr, profile: &str, validity_days: u32) {
        check_issued(self.ca(), self.scratch(), resp, csr, profile, validity_days);
    }

    /// Writes the certificate of an issuance answer or record to the scratch directory.
    pub fn leaf_file(&self, issued: &Value) -> PathBuf {
        let serial = issued["serial"].as_str().expect("serial");
        let file = self.scratch().join(format!("leaf-{serial}.pem"));
        let pem = issued["certificate"].as_str().expect("certificate PEM");
        std::fs::write(&file, pem).expect("writing the leaf");
        file
    }
}

fn short_name_oid(short: &str) -> &'static str {
    match short {
        "CN" => "2.5.4.3",
        "C" => "2.5.4.6",
        "ST" => "2.5.4.8",
        "L" => "2.5.4.7",
        "O" => "2.5.4.10",
        "OU" => "2.5.4.11",
        "serialNumber" => "2.5.4.5",
        "GN" => "2.5.4.42",
        "SN" => "2.5.4.4",
        other => panic!("no OID known for {other}"),
    }
}

/// The openssl verify purpose fitting a profile.
fn purpose(profile: &str) -> &'static str {
    match profile {
        "tls-server" => "sslserver",
        "tls-client" => "sslclient",
        "personal" => "smimesign",
        _ => "any",
    }
}

/// Key usage flags (x509-parser's bit order: digitalSignature = 1, nonRepudiation = 2, ...) and
/// the EKU of a built-in profile.
fn profile_usages(profile: &str) -> (u16, &'static str) {
    match profile {
        "tls-server" => (1, "serverAuth"),
        "tls-client" => (1, "clientAuth"),
        "personal" => (1 | 2, "emailProtection"),
        other => panic!("no expectations for profile {other}"),
    }
}

/// Every check on an issuance answer (201 body, or one batch result) for `csr` under a
/// built-in profile: the answer's fields, the certificate's content parsed with x509-parser,
/// `openssl verify -x509_strict -purpose P -CAfile ca.pem`, and pkilint's RFC 5280 linter.
pub fn check_issued(
    ca: &CaCert,
    scratch: &Path,
    resp: &Value,
    csr: &Csr,
    profile: &str,
    validity_days: u32,
) {
    let what = format!("{profile} certificate for {} ({})", csr.subj, csr.key_type);
    let (serial, cert_pem, der) = check_answer_fields(ca, resp, profile, &what);

    let (rest, cert) = X509Certificate::from_der(&der)
        .unwrap_or_else(|e| panic!("{what}: certificate does not parse: {e}"));
    assert!(
        rest.is_empty(),
        "{what}: trailing bytes after the certificate"
    );
    assert_eq!(cert.version().0, 2, "{what}: not an X.509 v3 certificate");
    check_serial_and_names(&cert, serial, ca, csr, &what);
    check_public_key(&cert, csr, &what);
    check_validity(&cert, resp, validity_days, &what);
    check_constraints_and_usages(&cert, profile, &what);
    let extensions = LeafExtensions::collect(&cert, &what);
    extensions.check(ca, csr, profile, &what);

    // The independent judges.
    let leaf = scratch.join(format!("leaf-{serial}.pem"));
    std::fs::write(&leaf, cert_pem).expect("writing the leaf");
    openssl_verify(ca, &leaf, profile, &what);
    pkilint(&leaf, &what);
}

/// The answer's fields: serial, profile, status, exactly one certificate, and the chain as
/// GET /ca.pem serves it, without the leaf. Returns the serial, the certificate's PEM and its
/// DER.
fn check_answer_fields<'a>(
    ca: &CaCert,
    resp: &'a Value,
    profile: &str,
    what: &str,
) -> (&'a str, &'a str, Vec<u8>) {
    let serial = resp["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no serial in {resp}"));
    assert!(
        is_serial(serial),
        "{what}: serial {serial:?} is not 32 lower-case hex digits"
    );
    assert_eq!(resp["profile"], profile, "{what}: profile in {resp}");
    assert_eq!(resp["status"], "valid", "{what}: status in {resp}");
    let cert_pem = resp["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no certificate in {resp}"));
    let mut ders = pem_certs(cert_pem);
    assert_eq!(
        ders.len(),
        1,
        "{what}: `certificate` should hold exactly one certificate"
    );
    let der = ders.remove(0);
    let chain: Vec<Vec<u8>> = resp["chain"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: chain is not a list in {resp}"))
        .iter()
        .flat_map(|p| pem_certs(p.as_str().expect("chain entries are PEM strings")))
        .collect();
    assert_eq!(chain, ca.ders, "{what}: `chain` differs from GET /ca.pem");
    assert!(!chain.contains(&der), "{what}: `chain` contains the leaf");
    (serial, cert_pem, der)
}

/// The certificate's serial is the answer's; its issuer is the CA's subject; its subject is
/// the CSR's, attribute by attribute in DER order.
fn check_serial_and_names(
    cert: &X509Certificate<'_>,
    serial: &str,
    ca: &CaCert,
    csr: &Csr,
    what: &str,
) {
    assert_eq!(
        hex::encode(cert.raw_serial()),
        serial,
        "{what}: certificate serial vs answer"
    );
    assert_eq!(
        cert.issuer().as_raw(),
        &ca.subject_der[..],
        "{what}: issuer is not the CA's subject"
    );
    let subject: Vec<(String, String)> = cert
        .subject()
        .iter_attributes()
        .map(|a| {
            (
                a.attr_type().to_id_string(),
                a.as_str().unwrap_or("<non-string>").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = csr
        .subject_attrs()
        .into_iter()
        .map(|(k, v)| (short_name_oid(&k).to_string(), v))
        .collect();
    assert_eq!(subject, expected, "{what}: subject");
}

/// The certificate's subjectPublicKeyInfo is the CSR's.
fn check_public_key(cert: &X509Certificate<'_>, csr: &Csr, what: &str) {
    let csr_der = csr.der();
    let (_, req) = X509CertificationRequest::from_der(&csr_der).expect("CSR parses");
    assert_eq!(
        cert.public_key().raw,
        req.certification_request_info.subject_pki.raw,
        "{what}: subjectPublicKeyInfo differs from the CSR's"
    );
}

/// The validity spans `validity_days` (or one second less), starts around now, and the
/// answer's `not_before` and `not_after` are the certificate's.
fn check_validity(cert: &X509Certificate<'_>, resp: &Value, validity_days: u32, what: &str) {
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    let span = na - nb;
    let want = i64::from(validity_days) * 86_400;
    assert!(
        span == want || span == want - 1,
        "{what}: validity is {span} s, expected {validity_days} days ({want} s, or 1 s less)"
    );
    let now = now_unix();
    assert!(
        nb <= now + 5 && nb >= now - 3600,
        "{what}: notBefore {nb} is not around now ({now})"
    );
    for (field, t) in [("not_before", nb), ("not_after", na)] {
        let s = resp[field]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no {field} in {resp}"));
        assert_eq!(
            parse_rfc3339(s),
            t,
            "{what}: {field} {s:?} vs the certificate"
        );
    }
}

/// No extension twice; basicConstraints critical and not a CA; keyUsage critical with the
/// profile's bits; extendedKeyUsage the profile's purpose alone.
fn check_constraints_and_usages(cert: &X509Certificate<'_>, profile: &str, what: &str) {
    let mut seen = HashMap::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        assert!(
            seen.insert(oid.clone(), ()).is_none(),
            "{what}: extension {oid} appears twice"
        );
    }
    let bc = cert
        .basic_constraints()
        .expect("basicConstraints parses")
        .unwrap_or_else(|| panic!("{what}: no basicConstraints"));
    assert!(bc.critical, "{what}: basicConstraints not critical");
    assert!(!bc.value.ca, "{what}: basicConstraints cA is true");
    assert_eq!(
        bc.value.path_len_constraint, None,
        "{what}: pathLen on an end entity"
    );

    let (ku_flags, eku_name) = profile_usages(profile);
    let ku = cert
        .key_usage()
        .expect("keyUsage parses")
        .unwrap_or_else(|| panic!("{what}: no keyUsage"));
    assert!(ku.critical, "{what}: keyUsage not critical");
    assert_eq!(
        ku.value.flags, ku_flags,
        "{what}: keyUsage bits ({})",
        ku.value
    );

    let eku = cert
        .extended_key_usage()
        .expect("extendedKeyUsage parses")
        .unwrap_or_else(|| panic!("{what}: no extendedKeyUsage"))
        .value;
    let purposes = [
        ("serverAuth", eku.server_auth),
        ("clientAuth", eku.client_auth),
        ("emailProtection", eku.email_protection),
        ("codeSigning", eku.code_signing),
        ("timeStamping", eku.time_stamping),
        ("OCSPSigning", eku.ocsp_signing),
        ("anyExtendedKeyUsage", eku.any),
    ];
    let present: Vec<&str> = purposes.iter().filter(|p| p.1).map(|p| p.0).collect();
    assert_eq!(present, vec![eku_name], "{what}: extendedKeyUsage");
    assert!(
        eku.other.is_empty(),
        "{what}: unexpected EKU OIDs {:?}",
        eku.other
    );
}

/// What a leaf's SAN, key identifier, CRL distribution point and AIA extensions hold.
#[derive(Default)]
struct LeafExtensions {
    /// In OpenSSL's form (`DNS:...`, `email:...`, `IP:...`).
    sans: Vec<String>,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    crl_uris: Vec<String>,
    ocsp: Vec<String>,
    ca_issuers: Vec<String>,
}

impl LeafExtensions {
    /// Reads the extensions, asserting that each parses, that SAN is critical only with an
    /// empty subject, that SKI, AKI and AIA are not critical, that every SAN is a DNS name,
    /// an e-mail address or an IP address, and that AIA holds only OCSP and caIssuers URIs.
    fn collect(cert: &X509Certificate<'_>, what: &str) -> LeafExtensions {
        let mut found = LeafExtensions::default();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    assert!(
                        !ext.critical || cert.subject().iter_attributes().next().is_none(),
                        "{what}: SAN critical although the subject is not empty"
                    );
                    for name in &san.general_names {
                        found.sans.push(san_string(name, what));
                    }
                }
                ParsedExtension::SubjectKeyIdentifier(k) => {
                    assert!(!ext.critical, "{what}: SKI critical");
                    found.ski = Some(k.0.to_vec());
                }
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    assert!(!ext.critical, "{what}: AKI critical");
                    found.aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                ParsedExtension::CRLDistributionPoints(points) => {
                    found.crl_uris.extend(distribution_point_uris(points));
                }
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    assert!(!ext.critical, "{what}: AIA critical");
                    found.add_access_descriptions(aia, what);
                }
                ParsedExtension::ParseError { error } => {
                    panic!("{what}: extension {} does not parse: {error:?}", ext.oid)
                }
                _ => {}
            }
        }
        found
    }

    /// The AIA's OCSP and caIssuers URIs; any other method or location fails the check.
    fn add_access_descriptions(&mut self, aia: &AuthorityInfoAccess<'_>, what: &str) {
        for ad in &aia.accessdescs {
            let uri = match &ad.access_location {
                GeneralName::URI(u) => u.to_string(),
                other => panic!("{what}: AIA location {other:?} is not a URI"),
            };
            match ad.access_method.to_id_string().as_str() {
                "1.3.6.1.5.5.7.48.1" => self.ocsp.push(uri),
                "1.3.6.1.5.5.7.48.2" => self.ca_issuers.push(uri),
                m => panic!("{what}: unexpected AIA method {m}"),
            }
        }
    }

    /// The SANs are the CSR's; SKI is present, AKI is the CA's SKI; there are CRL, OCSP and
    /// caIssuers URLs, all of them http(s).
    /// Checks the collected extensions; `profile` decides the subject key identifier, which
    /// the TLS BR do not recommend in subscriber certificates (the built-in `tls-server`
    /// has none) and every other built-in profile writes.
    fn check(self, ca: &CaCert, csr: &Csr, profile: &str, what: &str) {
        let mut sans = self.sans;
        let mut want_sans = csr.sans.clone();
        want_sans.sort();
        sans.sort();
        assert_eq!(sans, want_sans, "{what}: subjectAltName");
        if profile == "tls-server" {
            assert!(
                self.ski.is_none(),
                "{what}: a subjectKeyIdentifier in a TLS subscriber certificate"
            );
        } else {
            let ski = self
                .ski
                .unwrap_or_else(|| panic!("{what}: no subjectKeyIdentifier"));
            assert!(!ski.is_empty(), "{what}: empty subjectKeyIdentifier");
        }
        assert_eq!(
            self.aki.as_deref(),
            Some(&ca.ski[..]),
            "{what}: authorityKeyIdentifier.keyIdentifier is not the CA's subjectKeyIdentifier"
        );
        let is_url = |u: &String| u.starts_with("http://") || u.starts_with("https://");
        let crl_uris = self.crl_uris;
        assert!(
            !crl_uris.is_empty() && crl_uris.iter().all(is_url),
            "{what}: CRL distribution point URLs {crl_uris:?}"
        );
        let ocsp = self.ocsp;
        assert!(
            !ocsp.is_empty() && ocsp.iter().all(is_url),
            "{what}: AIA OCSP URLs {ocsp:?}"
        );
        let ca_issuers = self.ca_issuers;
        assert!(
            !ca_issuers.is_empty() && ca_issuers.iter().all(is_url),
            "{what}: AIA caIssuers URLs {ca_issuers:?}"
        );
    }
}

/// A SAN in OpenSSL's form (`DNS:...`, `email:...`, `IP:...`); any other kind fails the check.
fn san_string(name: &GeneralName<'_>, what: &str) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::IPAddress(b) => {
            let ip: IpAddr = match b.len() {
                4 => <[u8; 4]>::try_from(*b).expect("4").into(),
                16 => <[u8; 16]>::try_from(*b).expect("16").into(),
                n => panic!("{what}: IP SAN of {n} bytes"),
            };
            format!("IP:{ip}")
        }
        other => panic!("{what}: unexpected SAN {other:?}"),
    }
}

/// The URIs of the full names of CRL distribution points.
fn distribution_point_uris(points: &CRLDistributionPoints<'_>) -> Vec<String> {
    let mut uris = Vec::new();
    for p in &points.points {
        if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
            for n in names {
                if let GeneralName::URI(u) = n {
                    uris.push(u.to_string());
                }
            }
        }
    }
    uris
}

/// Checks a GET /v1/certificates/{serial} record against the issuance answer.
pub fn check_record(
    rec: &Value,
    issued: &Value,
    csr: &Csr,
    profile: &str,
    requester: Option<&str>,
) {
    let serial = issued["serial"].as_str().expect("serial");
    let what = format!("record of {serial}");
    assert_eq!(rec["serial"], serial, "{what}: serial in {rec}");
    assert_eq!(
        rec["certificate"], issued["certificate"],
        "{what}: certificate PEM differs from the issuance answer"
    );
    assert_eq!(rec["status"], "valid", "{what}: status in {rec}");
    for field in ["revocation", "renewed_from"] {
        assert!(
            rec.get(field).is_some_and(Value::is_null),
            "{what}: {field} should be present and null in {rec}"
        );
    }
    assert_eq!(
        rec["renewed_by"],
        serde_json::json!([]),
        "{what}: renewed_by should be an empty list in {rec}"
    );
    assert_eq!(rec["profile"], profile, "{what}: profile in {rec}");
    assert_eq!(
        rec["subject"],
        csr.rfc4514().as_str(),
        "{what}: subject in {rec}"
    );
    let mut sans: Vec<String> = rec["sans"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: sans is not a list in {rec}"))
        .iter()
        .map(|v| v.as_str().expect("SAN strings").to_string())
        .collect();
    let mut want = csr.san_values();
    sans.sort();
    want.sort();
    assert_eq!(sans, want, "{what}: sans in {rec}");
    let req = rec["requester"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: requester is not a string in {rec}"));
    assert!(!req.is_empty(), "{what}: empty requester");
    if let Some(r) = requester {
        assert_eq!(req, r, "{what}: requester");
    }
    for field in ["not_before", "not_after"] {
        let a = parse_rfc3339(rec[field].as_str().expect("time string"));
        let b = parse_rfc3339(issued[field].as_str().expect("time string"));
        assert_eq!(a, b, "{what}: {field} differs from the issuance answer");
    }
    let issued_at = parse_rfc3339(
        rec["issued_at"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: issued_at missing in {rec}")),
    );
    let now = now_unix();
    assert!(
        issued_at <= now + 5 && issued_at >= now - 3600,
        "{what}: issued_at {issued_at} is not around now ({now})"
    );
}

/// The URLs a certificate names: (CRL distribution points, AIA OCSP, AIA caIssuers).
pub fn cert_urls(pem: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let der = pem_certs(pem).pop().expect("a certificate");
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate parses");
    let (mut crl, mut ocsp, mut ca_issuers) = (Vec::new(), Vec::new(), Vec::new());
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(points) => {
                crl.extend(distribution_point_uris(points));
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for ad in &aia.accessdescs {
                    if let GeneralName::URI(u) = &ad.access_location {
                        match ad.access_method.to_id_string().as_str() {
                            "1.3.6.1.5.5.7.48.1" => ocsp.push(u.to_string()),
                            "1.3.6.1.5.5.7.48.2" => ca_issuers.push(u.to_string()),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (crl, ocsp, ca_issuers)
}

/// `openssl verify -x509_strict -purpose P -CAfile ca.pem leaf.pem` must say OK.
pub fn openssl_verify(ca: &CaCert, leaf: &Path, profile: &str, what: &str) {
    let out = output_within(
        Command::new("openssl")
            .args([
                "verify",
                "-x509_strict",
                "-purpose",
                purpose(profile),
                "-CAfile",
            ])
            .arg(&ca.file)
            .arg(leaf),
        COMMAND_DEADLINE,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with(": OK"),
        "{what}: openssl verify failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
