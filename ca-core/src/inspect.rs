//! Reading back what the CA issued: the subject and SANs of a stored certificate, for the
//! API's certificate view.

use x509_parser::extensions::ParsedExtension;

use crate::csr::{san_from, subject_attributes, San};
use crate::error::CaError;
use crate::name::to_rfc4514;

/// The parts of an issued certificate that the API shows besides its stored metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateView {
    /// The subject as an RFC 4514 string.
    pub subject: String,
    /// The subject alternative names.
    pub sans: Vec<San>,
}

/// Parses an issued certificate's subject and SANs.
pub fn view(der: &[u8]) -> Result<CertificateView, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CaError::Storage(format!("a stored certificate does not parse: {e}")))?;
    let subject = to_rfc4514(&subject_attributes(cert.subject())?);
    let mut sans = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                sans.push(san_from(name)?);
            }
        }
    }
    Ok(CertificateView { subject, sans })
}
