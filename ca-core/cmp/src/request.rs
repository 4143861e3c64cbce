//! Reading a request PKIMessage (RFC 9810 section 5.1) and what the lightweight profile (RFC
//! 9483 section 3) requires of it.

use cmpv2::body::PkiBody;
use cmpv2::message::{PkiMessage, ProtectedPart};
use cmpv2::status::CertStatus;
use crmf::pop::ProofOfPossession;
use crmf::request::{CertReqMsg, CertTemplate};
use der::{Decode, Encode, Tagged};
use x509_cert::request::CertReq;

use crate::error::CmpError;

/// The largest PKIMessage read (the HTTP front refuses a longer body before decoding).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Longest transactionID accepted (RFC 9483 section 3.1 asks for 128 random bits; the server
/// keys a transaction's certificate by it).
pub const MAX_TRANSACTION_ID: usize = 64;

/// Shortest senderNonce accepted (RFC 9483 section 3.1: 128 bits).
const MIN_NONCE: usize = 16;

/// Decodes a DER PKIMessage of at most [`MAX_MESSAGE`] bytes (strict DER: BER and trailing
/// bytes are refused).
pub fn decode(der: &[u8]) -> Result<PkiMessage<'_>, CmpError> {
    if der.len() > MAX_MESSAGE {
        return Err(CmpError::Malformed(format!(
            "{} bytes exceed the limit of {MAX_MESSAGE}",
            der.len()
        )));
    }
    PkiMessage::from_der(der).map_err(|e| CmpError::Malformed(e.to_string()))
}

/// The DER of ProtectedPart (header and body): what a message's protection covers (RFC 9810
/// section 5.1.3).
pub fn protected_part(message: &PkiMessage<'_>) -> Result<Vec<u8>, CmpError> {
    Ok(ProtectedPart {
        header: message.header.clone(),
        body: message.body.clone(),
    }
    .to_der()?)
}

/// The kind of a certificate request carried in CRMF (RFC 9810 sections 5.3.1, 5.3.3, 5.3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// Initialization request: answered with `ip`.
    Ir,
    /// Certification request: answered with `cp`.
    Cr,
    /// Key update request: answered with `kup`.
    Kur,
}

impl CertKind {
    /// The message type's name (for logs and errors).
    pub fn name(self) -> &'static str {
        match self {
            CertKind::Ir => "ir",
            CertKind::Cr => "cr",
            CertKind::Kur => "kur",
        }
    }
}

/// What a request asks, with its parts borrowed from the message.
#[derive(Debug)]
pub enum Request<'m> {
    /// `ir`, `cr` or `kur` with its one CertReqMsg (RFC 9483 section 4.1.1: exactly one).
    Certificate(CertKind, &'m CertReqMsg),
    /// `p10cr`: a PKCS#10 request (RFC 9483 section 4.1.4).
    P10cr(&'m CertReq),
    /// `certConf` for the certificates of this transaction (RFC 9483 section 4.1.1).
    CertConf(&'m [CertStatus<'m>]),
    /// `rr` for one certificate (RFC 9483 section 4.2): its issuer and serial number.
    Rr(&'m CertTemplate),
    /// `genm` with its InfoTypeAndValues (RFC 9483 section 4.3).
    Genm(&'m [cmpv2::gen::InfoTypeAndValue]),
    /// `pollReq` (RFC 9483 section 4.4).
    PollReq,
}

impl Request<'_> {
    /// Reads what `message` asks, after the header checks RFC 9483 section 3.1 makes of every
    /// request: a transactionID (of at most [`MAX_TRANSACTION_ID`] bytes) and a senderNonce of
    /// at least 128 bits.
    pub fn read<'m>(message: &'m PkiMessage<'m>) -> Result<Request<'m>, CmpError> {
        let header = &message.header;
        match &header.trans_id {
            Some(id) if id.as_bytes().len() <= MAX_TRANSACTION_ID => {}
            Some(_) => {
                return Err(CmpError::BadHeader(format!(
                    "transactionID longer than {MAX_TRANSACTION_ID} bytes"
                )))
            }
            None => return Err(CmpError::BadHeader("transactionID missing".into())),
        }
        match &header.sender_nonce {
            Some(nonce) if nonce.as_bytes().len() >= MIN_NONCE => {}
            _ => {
                return Err(CmpError::BadHeader(
                    "senderNonce missing or shorter than 128 bits".into(),
                ))
            }
        }
        let one = |messages: &'m [CertReqMsg]| match messages {
            [one] => Ok(one),
            _ => Err(CmpError::BadRequest(format!(
                "{} certificate requests in one message (exactly one is served)",
                messages.len()
            ))),
        };
        Ok(match &message.body {
            PkiBody::Ir(m) => Request::Certificate(CertKind::Ir, one(m)?),
            PkiBody::Cr(m) => Request::Certificate(CertKind::Cr, one(m)?),
            PkiBody::KUr(m) => Request::Certificate(CertKind::Kur, one(m)?),
            PkiBody::P10cr(csr) => Request::P10cr(csr),
            PkiBody::CertConf(statuses) => Request::CertConf(statuses),
            PkiBody::Rr(details) => match details.as_slice() {
                [one] => Request::Rr(&one.cert_details),
                _ => {
                    return Err(CmpError::BadRequest(
                        "an rr must name exactly one certificate".into(),
                    ))
                }
            },
            PkiBody::GenM(infos) => Request::Genm(infos),
            PkiBody::PollReq(_) => Request::PollReq,
            other => return Err(CmpError::UnsupportedBody(body_name(other))),
        })
    }
}

/// A signature proof of possession (RFC 4211 section 4.1) to verify: the key it proves, the
/// algorithm, what was signed and the signature.
#[derive(Debug)]
pub struct SignaturePop {
    /// The DER SubjectPublicKeyInfo of certTemplate.publicKey.
    pub public_key: Vec<u8>,
    /// The content octets of the signature algorithm's OID.
    pub algorithm: Vec<u8>,
    /// The DER of the CertRequest: what the signature covers when poposkInput is absent.
    pub signed: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
}

/// The signature proof of possession of `request`, which must carry a public key in its
/// template and a POPOSigningKey without poposkInput (RFC 4211 section 4.1, RFC 9483 section
/// 4.1.1); anything else is `badPOP` or `badCertTemplate`.
pub fn signature_pop(request: &CertReqMsg) -> Result<SignaturePop, CmpError> {
    let public_key = request
        .cert_req
        .cert_template
        .subject_public_key_info
        .as_ref()
        .ok_or_else(|| CmpError::BadCertTemplate("the template has no public key".into()))?
        .to_der()?;
    let Some(ProofOfPossession::Signature(pop)) = &request.popo else {
        return Err(CmpError::BadPop);
    };
    if pop.poposk_input.is_some() {
        return Err(CmpError::BadPop);
    }
    Ok(SignaturePop {
        public_key,
        algorithm: pop.alg_id.oid.as_bytes().to_vec(),
        signed: request.cert_req.to_der()?,
        signature: pop.signature.raw_bytes().to_vec(),
    })
}

/// How a request from a registered RA proves possession of its template's key (RFC 9483
/// section 5): the subscriber's signature, or the RA's word (`raVerified`, RFC 4211 section
/// 4.3: the RA checked possession itself).
#[derive(Debug)]
pub enum KeyProof {
    /// A signature proof of possession to verify.
    Signature(SignaturePop),
    /// `raVerified`: the DER SubjectPublicKeyInfo of certTemplate.publicKey.
    RaVerified(Vec<u8>),
}

/// The proof of possession of an RA's `request`: [`signature_pop`], or `raVerified` with the
/// template's key.
pub fn ra_key_proof(request: &CertReqMsg) -> Result<KeyProof, CmpError> {
    match &request.popo {
        Some(ProofOfPossession::RaVerified(_)) => Ok(KeyProof::RaVerified(
            request
                .cert_req
                .cert_template
                .subject_public_key_info
                .as_ref()
                .ok_or_else(|| CmpError::BadCertTemplate("the template has no public key".into()))?
                .to_der()?,
        )),
        _ => Ok(KeyProof::Signature(signature_pop(request)?)),
    }
}

/// The names a certTemplate asks for (RFC 4211 section 5), as DER.
#[derive(Debug, Default)]
pub struct TemplateNames {
    /// The DER of its subject.
    pub subject: Option<Vec<u8>>,
    /// The DER of its subjectAltName extension's value.
    pub subject_alt_name: Option<Vec<u8>>,
}

/// The names `template` asks for.
pub fn template_names(template: &CertTemplate) -> Result<TemplateNames, CmpError> {
    Ok(TemplateNames {
        subject: template.subject.as_ref().map(|n| n.to_der()).transpose()?,
        subject_alt_name: template
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ca_x509::oid::ID_CE_SUBJECT_ALT_NAME)
            .map(|e| e.extn_value.as_bytes().to_vec()),
    })
}

/// The name of a body's type, as RFC 9810 section 5.1.2 writes it.
fn body_name(body: &PkiBody<'_>) -> &'static str {
    match body {
        PkiBody::Ir(_) => "ir",
        PkiBody::Ip(_) => "ip",
        PkiBody::Cr(_) => "cr",
        PkiBody::Cp(_) => "cp",
        PkiBody::P10cr(_) => "p10cr",
        PkiBody::Popdecc(_) => "popdecc",
        PkiBody::Popdecr(_) => "popdecr",
        PkiBody::KUr(_) => "kur",
        PkiBody::Kup(_) => "kup",
        PkiBody::Krr(_) => "krr",
        PkiBody::Krp(_) => "krp",
        PkiBody::Rr(_) => "rr",
        PkiBody::Rp(_) => "rp",
        PkiBody::Ccr(_) => "ccr",
        PkiBody::Ccp(_) => "ccp",
        PkiBody::Ckuann(_) => "ckuann",
        PkiBody::Cann(_) => "cann",
        PkiBody::Rann(_) => "rann",
        PkiBody::CrlAnn(_) => "crlann",
        PkiBody::PkiConf(_) => "pkiconf",
        PkiBody::GenM(_) => "genm",
        PkiBody::GenP(_) => "genp",
        PkiBody::Error(_) => "error",
        PkiBody::CertConf(_) => "certConf",
        PkiBody::PollReq(_) => "pollReq",
        PkiBody::PollRep(_) => "pollRep",
    }
}

/// The certHash a certConf carries for `certificate` without hashAlg (RFC 9810 section
/// 5.3.18): the hash of its DER with the hash of its signature algorithm (SHA-512 for
/// Ed25519, as RFC 9810 and OpenSSL take it). `None` for a signature algorithm without a
/// known hash.
pub fn certificate_hash(certificate: &[u8]) -> Option<Vec<u8>> {
    let parsed = x509_cert::Certificate::from_der(certificate).ok()?;
    let algorithm = parsed.signature_algorithm.oid.to_string();
    let hash = match algorithm.as_str() {
        // ecdsa-with-SHA256, sha256WithRSAEncryption
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Hash::Sha256,
        // ecdsa-with-SHA384, sha384WithRSAEncryption
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Hash::Sha384,
        // ecdsa-with-SHA512, sha512WithRSAEncryption, Ed25519
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" | "1.3.101.112" => Hash::Sha512,
        _ => return None,
    };
    Some(hash.digest(certificate))
}

/// The certHash a certConf's CertStatus carries for `certificate` (RFC 9810 section
/// 5.3.18): with `hash_alg` (cmp2021), the hash of the DER with that algorithm (SHA-256,
/// SHA-384 or SHA-512, parameters absent or NULL; another is `badAlg`); without it, as
/// [`certificate_hash`] says.
pub fn cert_hash(
    certificate: &[u8],
    hash_alg: Option<&spki::AlgorithmIdentifierOwned>,
) -> Result<Option<Vec<u8>>, CmpError> {
    let Some(algorithm) = hash_alg else {
        return Ok(certificate_hash(certificate));
    };
    let null_or_absent = algorithm
        .parameters
        .as_ref()
        .is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty());
    let hash = match algorithm.oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" if null_or_absent => Hash::Sha256,
        "2.16.840.1.101.3.4.2.2" if null_or_absent => Hash::Sha384,
        "2.16.840.1.101.3.4.2.3" if null_or_absent => Hash::Sha512,
        other => {
            return Err(CmpError::BadAlg(format!(
                "hashAlg {other}: SHA-256, SHA-384 and SHA-512 are served"
            )))
        }
    };
    Ok(Some(hash.digest(certificate)))
}

/// The hash functions a certHash is computed with.
#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::ObjectIdentifier;
    use sha2::Digest;
    use spki::AlgorithmIdentifierOwned;

    /// A certificate signed with ecdsa-with-SHA256 (its signature is not checked here).
    fn certificate() -> Vec<u8> {
        use std::str::FromStr;
        let der = include_bytes!("../testdata/ecdsa-p256.der").to_vec();
        assert_eq!(
            x509_cert::Certificate::from_der(&der)
                .unwrap()
                .signature_algorithm
                .oid,
            ObjectIdentifier::from_str("1.2.840.10045.4.3.2").unwrap()
        );
        der
    }

    fn alg(oid: &str, parameters: Option<der::Any>) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid),
            parameters,
        }
    }

    #[test]
    fn without_hash_alg_the_signature_hash_is_used() {
        let der = certificate();
        let sha256 = sha2::Sha256::digest(&der).to_vec();
        assert_eq!(certificate_hash(&der), Some(sha256.clone()));
        assert_eq!(cert_hash(&der, None).unwrap(), Some(sha256));
        assert_eq!(cert_hash(b"not a certificate", None).unwrap(), None);
    }

    #[test]
    fn hash_alg_chooses_the_hash() {
        let der = certificate();
        let sha384 = alg("2.16.840.1.101.3.4.2.2", None);
        assert_eq!(
            cert_hash(&der, Some(&sha384)).unwrap(),
            Some(sha2::Sha384::digest(&der).to_vec())
        );
        let sha512 = alg(
            "2.16.840.1.101.3.4.2.3",
            Some(der::Any::from(der::asn1::Null)),
        );
        assert_eq!(
            cert_hash(&der, Some(&sha512)).unwrap(),
            Some(sha2::Sha512::digest(&der).to_vec())
        );
        // The same algorithm as the signature's still names it explicitly.
        let sha256 = alg("2.16.840.1.101.3.4.2.1", None);
        assert_eq!(
            cert_hash(&der, Some(&sha256)).unwrap(),
            certificate_hash(&der)
        );
        // SHA-1, and SHA-256 with parameters, are not served.
        let sha1 = alg("1.3.14.3.2.26", None);
        assert!(matches!(
            cert_hash(&der, Some(&sha1)),
            Err(CmpError::BadAlg(_))
        ));
        let odd = alg(
            "2.16.840.1.101.3.4.2.1",
            Some(der::Any::from_der(&[0x01, 0x01, 0xff]).unwrap()),
        );
        assert!(matches!(
            cert_hash(&der, Some(&odd)),
            Err(CmpError::BadAlg(_))
        ));
    }
}
