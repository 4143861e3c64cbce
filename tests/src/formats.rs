//! The encodings the API and the judges use: PEM blocks, RFC 3339 times, serials, base64 in a
//! URL path.

use std::time::{SystemTime, UNIX_EPOCH};

/// The blocks of a PEM text as (label, DER).
pub fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    pem::parse_many(text)
        .unwrap_or_else(|e| panic!("bad PEM ({e}): {text}"))
        .into_iter()
        .map(|p| (p.tag().to_string(), p.into_contents()))
        .collect()
}

/// The DER certificates of a PEM text, asserting that every block is a CERTIFICATE.
pub fn pem_certs(text: &str) -> Vec<Vec<u8>> {
    pem_blocks(text)
        .into_iter()
        .map(|(label, der)| {
            assert_eq!(label, "CERTIFICATE", "unexpected PEM block in {text}");
            der
        })
        .collect()
}

/// The serial (hex, as the API writes it) of the one certificate in the PEM file `path`.
pub fn serial_of_pem(path: &std::path::Path) -> String {
    let pem = std::fs::read_to_string(path).expect("reading the certificate file");
    let certs = pem_certs(&pem);
    assert_eq!(certs.len(), 1, "{} holds one certificate", path.display());
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).expect("the certificate parses");
    hex::encode(cert.raw_serial())
}

/// PEM-encodes DER with the given label, 64 characters a line.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), lf)
}

/// Parses an RFC 3339 UTC time (`2025-01-02T03:04:05Z`, fraction and `+00:00` allowed) into
/// Unix seconds.
pub fn parse_rfc3339(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?} is not an RFC 3339 time: {e}"))
        .unix_timestamp()
}

/// Unix seconds as an RFC 3339 UTC time (`2025-01-02T03:04:05Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("a time in range")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatting a time")
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Whether a string is a serial of the API's form: 32 lower-case hex digits.
pub fn is_serial(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Percent-encodes the three base64 characters that are not safe in a URL path segment.
pub fn url_encode_base64(b64: &str) -> String {
    b64.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}
