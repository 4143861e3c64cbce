//! Reading back what the CA issued: the subject and SANs of a stored certificate, for the
//! API's certificate view.

use x509_parser::extensions::ParsedExtension;

use crate::csr::{san_from, subject_attributes, subject_key, San, VerifiedCsr};
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
    let request = as_request(der)?;
    Ok(CertificateView {
        subject: to_rfc4514(&request.subject),
        sans: request.sans,
    })
}

/// The subject, SANs and public key of an issued certificate, in the form a verified CSR
/// gives them: what a renewal issues again.
pub fn as_request(der: &[u8]) -> Result<VerifiedCsr, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CaError::Storage(format!("a stored certificate does not parse: {e}")))?;
    let mut sans = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                sans.push(san_from(name)?);
            }
        }
    }
    Ok(VerifiedCsr {
        key: subject_key(cert.public_key())?,
        subject: subject_attributes(cert.subject())?,
        sans,
    })
}

/// A certificate's subject and issuer as RFC 4514 strings (RFC 5280 §4.1.2.4, §4.1.2.6), in
/// the form the API and the configuration write names.
pub fn subject_and_issuer(der: &[u8]) -> Result<(String, String), CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CaError::InvalidRequest(format!("the certificate does not parse: {e}")))?;
    Ok((
        to_rfc4514(&subject_attributes(cert.subject())?),
        to_rfc4514(&subject_attributes(cert.issuer())?),
    ))
}
