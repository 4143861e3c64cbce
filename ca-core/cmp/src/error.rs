//! Why a request is refused, each with the PKIFailureInfo bit it is answered with (RFC 9810
//! section 5.2.3).

use crate::answer::FailureInfo;

/// A refused CMP request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmpError {
    /// The body is not a DER PKIMessage this server reads (answered with HTTP 400, RFC 9811
    /// section 3.3: there is no header to answer in CMP).
    #[error("not a DER PKIMessage: {0}")]
    Malformed(String),
    /// A message of a type this server does not accept as a request.
    #[error("unsupported message type {0}")]
    UnsupportedBody(&'static str),
    /// A pvno this server does not speak (RFC 9810 section 7: it speaks 2 and 3).
    #[error("unsupported protocol version {0} (pvno 2 and 3 are served)")]
    UnsupportedVersion(i64),
    /// The protection algorithm (or one of its parameters) is not one this server accepts.
    #[error("unsupported protection: {0}")]
    BadAlg(String),
    /// The protection does not verify, or is missing where it is required.
    #[error("message protection does not verify: {0}")]
    BadMessageCheck(String),
    /// A required header field (transactionID, senderNonce, senderKID) is missing or wrong.
    #[error("bad header: {0}")]
    BadHeader(String),
    /// The certificate request or its template is not acceptable.
    #[error("bad certificate template: {0}")]
    BadCertTemplate(String),
    /// The proof of possession does not verify.
    #[error("proof of possession does not verify")]
    BadPop,
    /// Something is wrong with the request as a whole.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Encoding the answer failed (a fault of the server).
    #[error("encoding failed: {0}")]
    Encoding(String),
}

impl CmpError {
    /// The PKIFailureInfo bit of the error answer.
    pub fn failure(&self) -> FailureInfo {
        match self {
            CmpError::Malformed(_) => FailureInfo::BadDataFormat,
            CmpError::UnsupportedBody(_) => FailureInfo::BadRequest,
            CmpError::UnsupportedVersion(_) => FailureInfo::UnsupportedVersion,
            CmpError::BadAlg(_) => FailureInfo::BadAlg,
            CmpError::BadMessageCheck(_) => FailureInfo::BadMessageCheck,
            CmpError::BadHeader(_) => FailureInfo::BadDataFormat,
            CmpError::BadCertTemplate(_) => FailureInfo::BadCertTemplate,
            CmpError::BadPop => FailureInfo::BadPop,
            CmpError::BadRequest(_) => FailureInfo::BadRequest,
            CmpError::Encoding(_) => FailureInfo::SystemFailure,
        }
    }
}

impl From<der::Error> for CmpError {
    fn from(e: der::Error) -> Self {
        CmpError::Encoding(e.to_string())
    }
}
