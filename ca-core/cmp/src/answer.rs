//! Building the answers (RFC 9810 section 5.3, RFC 9483 sections 4.1 to 4.4) and their
//! header (RFC 9483 section 3.1) and protection (section 3.2).

use cmpv2::body::PkiBody;
use cmpv2::certified_key_pair::{CertOrEncCert, CertifiedKeyPair};
use cmpv2::gen::InfoTypeAndValue;
use cmpv2::header::{PkiFreeText, PkiHeader, Pvno};
use cmpv2::response::{CertRepMessage, CertResponse};
use cmpv2::rev::RevRepContent;
use cmpv2::status::{PkiStatus, PkiStatusInfo};
use der::asn1::{
    BitString, ContextSpecific, GeneralizedTime, Int, Null, OctetString, Utf8StringRef,
};
use der::{Decode, Encode, Sequence, TagMode, TagNumber};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::Certificate;

use crate::error::CmpError;
use crate::mac::PasswordMac;
use crate::received::{set_pvno, Version};
use crate::request::CertKind;

/// The PKIFailureInfo bits (RFC 9810 section 5.2.3), by bit number. (`cmpv2` 0.2's own
/// `PkiFailureInfoValues` numbers them as masks and cannot hold bits above 15, so answers
/// use this.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FailureInfo {
    BadAlg = 0,
    BadMessageCheck = 1,
    BadRequest = 2,
    BadTime = 3,
    BadCertId = 4,
    BadDataFormat = 5,
    WrongAuthority = 6,
    IncorrectData = 7,
    MissingTimeStamp = 8,
    BadPop = 9,
    CertRevoked = 10,
    CertConfirmed = 11,
    WrongIntegrity = 12,
    BadRecipientNonce = 13,
    TimeNotAvailable = 14,
    UnacceptedPolicy = 15,
    UnacceptedExtension = 16,
    AddInfoNotAvailable = 17,
    BadSenderNonce = 18,
    BadCertTemplate = 19,
    SignerNotTrusted = 20,
    TransactionIdInUse = 21,
    UnsupportedVersion = 22,
    NotAuthorized = 23,
    SystemUnavail = 24,
    SystemFailure = 25,
    DuplicateCertReq = 26,
}

impl FailureInfo {
    /// The DER named-bit BIT STRING with this one bit set (trailing zero bits removed, X.690
    /// section 11.2.2).
    pub fn bit_string(self) -> Result<BitString, CmpError> {
        let bit = self as usize;
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        Ok(BitString::new((7 - bit % 8) as u8, bytes)?)
    }
}

/// How an answer is protected (RFC 9483 section 3.2).
pub trait Protector {
    /// The protectionAlg.
    fn algorithm(&self) -> AlgorithmIdentifierOwned;
    /// The senderKID of the answer.
    fn sender_kid(&self) -> Option<Vec<u8>>;
    /// The protection of `protected_part` (the DER of ProtectedPart).
    fn protect(&self, protected_part: &[u8]) -> Result<Vec<u8>, CmpError>;
}

/// MAC protection of an answer with the parameters and secret of the request it answers
/// (RFC 9483 section 3.2: a MAC-protected request gets a MAC-protected answer).
pub struct MacProtector<'a> {
    /// The request's parameters.
    pub pbm: &'a PasswordMac,
    /// The shared secret.
    pub secret: &'a [u8],
    /// The request's senderKID, echoed.
    pub kid: Vec<u8>,
}

impl Protector for MacProtector<'_> {
    fn algorithm(&self) -> AlgorithmIdentifierOwned {
        self.pbm.algorithm().clone()
    }
    fn sender_kid(&self) -> Option<Vec<u8>> {
        Some(self.kid.clone())
    }
    fn protect(&self, protected_part: &[u8]) -> Result<Vec<u8>, CmpError> {
        Ok(self.pbm.compute(self.secret, protected_part))
    }
}

/// An answer's body.
#[derive(Debug)]
pub enum Answer {
    /// `ip`, `cp` or `kup` (by the request's kind; `cp` for a `p10cr`) with the issued
    /// certificate, accepted.
    Issued {
        /// The request's kind (`None`: a `p10cr`).
        kind: Option<CertKind>,
        /// The certReqId answered (-1 for a `p10cr`, RFC 9483 section 4.1.4).
        cert_req_id: i64,
        /// The certificate.
        certificate: Box<Certificate>,
        /// caPubs: the trust anchor of the new certificate, where the profile hands it.
        ca_pubs: Vec<Certificate>,
    },
    /// `rp`: the certificate is revoked.
    Revoked,
    /// `pkiConf`: the certConf is taken.
    Confirmed,
    /// `genp` with these InfoTypeAndValues.
    General(Vec<InfoTypeAndValue>),
    /// `error` with status rejection, one failure bit and a text (never a secret).
    Error {
        /// The PKIFailureInfo bit.
        failure: FailureInfo,
        /// The statusString.
        text: String,
    },
}

/// Everything of an answer's header that is not copied from the request.
pub struct Envelope<'a> {
    /// The request's header (transactionID, nonces and sender are taken from it).
    pub request: &'a PkiHeader<'a>,
    /// The answer's pvno: the request's when served (RFC 9810 section 7).
    pub version: Version,
    /// The answer's sender: the CA's name.
    pub sender: GeneralName,
    /// A fresh senderNonce.
    pub nonce: [u8; 16],
    /// messageTime, Unix seconds.
    pub now: u64,
    /// extraCerts (RFC 9483 section 3.3: the protection certificate and its chain).
    pub extra_certs: Vec<Certificate>,
}

/// ErrorMsgContent (RFC 9810 section 5.3.21) with a failInfo of any bit (`cmpv2` 0.2's
/// `ErrorMsgContent` cannot be built outside the crate).
#[derive(Sequence)]
struct ErrorMsg<'a> {
    pki_status_info: StatusInfo<'a>,
    error_code: Option<Int>,
    error_details: Option<PkiFreeText<'a>>,
}

/// PKIStatusInfo (RFC 9810 section 5.2.3) with a BIT STRING failInfo.
#[derive(Sequence)]
struct StatusInfo<'a> {
    status: PkiStatus,
    status_string: Option<PkiFreeText<'a>>,
    fail_info: Option<BitString>,
}

/// PKIMessage with the body already encoded (RFC 9810 section 5.1).
#[derive(Sequence)]
struct Message<'a> {
    header: PkiHeader<'a>,
    body: der::Any,
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        constructed = "false",
        optional = "true"
    )]
    protection: Option<BitString>,
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    extra_certs: Option<Vec<Certificate>>,
}

/// ProtectedPart with the body already encoded.
#[derive(Sequence)]
struct Protected<'a> {
    header: PkiHeader<'a>,
    body: der::Any,
}

fn accepted<'a>() -> PkiStatusInfo<'a> {
    PkiStatusInfo {
        status: PkiStatus::Accepted,
        status_string: None,
        fail_info: None,
    }
}

impl Answer {
    /// The answer's body, DER.
    fn body(&self) -> Result<der::Any, CmpError> {
        let der = match self {
            Answer::Issued {
                kind,
                cert_req_id,
                certificate,
                ca_pubs,
            } => {
                let content = CertRepMessage {
                    ca_pubs: (!ca_pubs.is_empty()).then(|| ca_pubs.clone()),
                    response: vec![CertResponse {
                        cert_req_id: Int::from_der(&cert_req_id.to_der()?)?,
                        status: accepted(),
                        certified_key_pair: Some(CertifiedKeyPair {
                            cert_or_enc_cert: CertOrEncCert::Certificate(certificate.clone()),
                            priv_key: None,
                            publication_info: None,
                        }),
                        rsp_info: None,
                    }],
                };
                match kind {
                    Some(CertKind::Ir) => PkiBody::Ip(content),
                    Some(CertKind::Kur) => PkiBody::Kup(content),
                    Some(CertKind::Cr) | None => PkiBody::Cp(content),
                }
                .to_der()?
            }
            Answer::Revoked => PkiBody::Rp(RevRepContent {
                status: vec![accepted()],
                rev_certs: None,
                crls: None,
            })
            .to_der()?,
            Answer::Confirmed => PkiBody::PkiConf(Null).to_der()?,
            Answer::General(infos) => PkiBody::GenP(infos.clone()).to_der()?,
            Answer::Error { failure, text } => ContextSpecific {
                tag_number: TagNumber::new(23),
                tag_mode: TagMode::Explicit,
                value: ErrorMsg {
                    pki_status_info: StatusInfo {
                        status: PkiStatus::Rejection,
                        status_string: Some(vec![Utf8StringRef::new(text)?]),
                        fail_info: Some(failure.bit_string()?),
                    },
                    error_code: None,
                    error_details: None,
                },
            }
            .to_der()?,
        };
        Ok(der::Any::from_der(&der)?)
    }

    /// The answer as a DER PKIMessage: header after RFC 9483 section 3.1 (pvno of
    /// `envelope.version`, the request's transactionID, its senderNonce as recipNonce, its sender as recipient),
    /// protected by `protector` (unprotected when `None`: only for an error whose request's
    /// protection could not be verified).
    pub fn encode(
        &self,
        envelope: Envelope<'_>,
        protector: Option<&dyn Protector>,
    ) -> Result<Vec<u8>, CmpError> {
        let request = envelope.request;
        let header = PkiHeader {
            pvno: Pvno::Cmp2000,
            sender: envelope.sender,
            recipient: request.sender.clone(),
            message_time: Some(GeneralizedTime::from_unix_duration(
                std::time::Duration::from_secs(envelope.now),
            )?),
            protection_alg: protector.map(|p| p.algorithm()),
            sender_kid: protector
                .and_then(|p| p.sender_kid())
                .map(OctetString::new)
                .transpose()?,
            recip_kid: None,
            trans_id: request.trans_id.clone(),
            sender_nonce: Some(OctetString::new(envelope.nonce.to_vec())?),
            recip_nonce: request.sender_nonce.clone(),
            free_text: None,
            general_info: None,
        };
        let body = self.body()?;
        // `cmpv2` writes pvno 2; set_pvno writes the version answered.
        let protection = match protector {
            Some(p) => {
                let mut part = Protected {
                    header: header.clone(),
                    body: body.clone(),
                }
                .to_der()?;
                set_pvno(&mut part, envelope.version)?;
                Some(BitString::from_bytes(&p.protect(&part)?)?)
            }
            None => None,
        };
        let mut der = Message {
            header,
            body,
            protection,
            extra_certs: (!envelope.extra_certs.is_empty()).then_some(envelope.extra_certs),
        }
        .to_der()?;
        set_pvno(&mut der, envelope.version)?;
        Ok(der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_bits_are_named_bits() {
        let bits = FailureInfo::BadMessageCheck.bit_string().unwrap();
        assert_eq!(bits.raw_bytes(), &[0x40]);
        assert_eq!(bits.unused_bits(), 6);
        let bits = FailureInfo::BadCertTemplate.bit_string().unwrap();
        assert_eq!(bits.raw_bytes(), &[0, 0, 0x10]);
        assert_eq!(bits.unused_bits(), 4);
    }
}
