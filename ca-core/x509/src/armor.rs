//! PEM armor (RFC 7468) as the API and the files write it: LF line endings, 64 columns.

const LF: pem::EncodeConfig = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);

/// Wraps DER in a PEM block with the given label (`CERTIFICATE`, `CERTIFICATE REQUEST`, ...).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(label, der), LF)
}

/// Concatenates certificates as PEM blocks, in order.
pub fn certificates_to_pem<'a>(ders: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<String> {
    ders.into_iter().map(|d| to_pem("CERTIFICATE", d)).collect()
}

/// A text that is not PEM (RFC 7468): a block's armor or its base64 is broken. The `pem`
/// crate's error, which says where, is the source.
#[derive(Debug, thiserror::Error)]
#[error("invalid PEM")]
pub struct InvalidPem(#[from] pem::PemError);

/// The DER of every `CERTIFICATE` block of a PEM text, in order.
pub fn parse_certificates(text: &str) -> Result<Vec<Vec<u8>>, InvalidPem> {
    let blocks = pem::parse_many(text)?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect())
}
