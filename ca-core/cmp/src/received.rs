//! A request PKIMessage as received, in either protocol version this server speaks (RFC 9810
//! section 5.1.1 and section 7, version negotiation): cmp2000 (pvno 2) and cmp2021 (pvno 3).
//!
//! RustCrypto's `cmpv2` 0.2 reads only pvno 1 and 2 and a CertStatus without the cmp2021
//! field `hashAlg` (RFC 9810 section 5.3.18). [`Received::read`] therefore reads the
//! message's outer structure itself: it keeps the received header and body as they are for
//! the protection check (ProtectedPart, RFC 9810 section 5.1.3), records pvno and each
//! CertStatus's hashAlg, and hands `cmpv2` a copy with pvno 2 and the hashAlgs left out.

use cmpv2::message::PkiMessage;
use cmpv2::status::{CertStatus, PkiStatusInfo};
use der::asn1::{AnyRef, Int, OctetString};
use der::{Decode, Encode, Reader, Sequence, SliceReader, Tagged};
use spki::AlgorithmIdentifierOwned;

use crate::error::CmpError;
use crate::request::MAX_MESSAGE;

/// A protocol version this server speaks (RFC 9810 section 5.1.1, pvno).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// cmp2000 (2): RFC 4210 syntax.
    Cmp2000 = 2,
    /// cmp2021 (3): RFC 9480 and RFC 9810 syntax (hashAlg in CertStatus, EnvelopedData).
    Cmp2021 = 3,
}

/// The tag of the certConf body: [24] EXPLICIT, constructed (RFC 9810 section 5.1.2).
const CERT_CONF_TAG: u8 = 0xb8;

/// CertStatus as RFC 9810 section 5.3.18 writes it, with the cmp2021 field hashAlg.
#[derive(Sequence)]
struct CertStatus2021<'a> {
    cert_hash: OctetString,
    cert_req_id: Int,
    status_info: Option<PkiStatusInfo<'a>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash_alg: Option<AlgorithmIdentifierOwned>,
}

/// A request PKIMessage, read.
#[derive(Debug)]
pub struct Received {
    /// The message as `cmpv2` reads it: pvno 2, no hashAlg.
    normalized: Vec<u8>,
    /// The DER of ProtectedPart as received.
    protected_part: Vec<u8>,
    /// pvno as received (saturated to the range of `i64`).
    pvno: i64,
    /// The hashAlg of each CertStatus of a certConf, in order.
    hash_algs: Vec<Option<AlgorithmIdentifierOwned>>,
}

impl Received {
    /// Reads a DER PKIMessage of at most [`MAX_MESSAGE`] bytes of any pvno (strict DER: BER
    /// and trailing bytes are refused). What is not a PKIMessage is [`CmpError::Malformed`];
    /// [`Received::version`] tells whether its version is served.
    pub fn read(der: &[u8]) -> Result<Received, CmpError> {
        if der.len() > MAX_MESSAGE {
            return Err(CmpError::Malformed(format!(
                "{} bytes exceed the limit of {MAX_MESSAGE}",
                der.len()
            )));
        }
        let malformed = |e: der::Error| CmpError::Malformed(e.to_string());
        let outer = sequence_content(der).map_err(malformed)?;
        let mut fields = SliceReader::new(outer).map_err(malformed)?;
        let header = fields.tlv_bytes().map_err(malformed)?;
        let body = fields.tlv_bytes().map_err(malformed)?;
        let mut rest = Vec::new();
        while !fields.is_finished() {
            rest.extend_from_slice(fields.tlv_bytes().map_err(malformed)?);
        }

        let mut header_fields =
            SliceReader::new(sequence_content(header).map_err(malformed)?).map_err(malformed)?;
        let pvno_tlv = header_fields.tlv_bytes().map_err(malformed)?;
        let pvno = pvno_value(pvno_tlv).map_err(malformed)?;
        let remaining = usize::try_from(header_fields.remaining_len()).map_err(malformed)?;
        let after_pvno = &header[header.len() - remaining..];
        let header_copy = wrap(0x30, &[&[0x02, 0x01, 0x02][..], after_pvno].concat());

        let (body_copy, hash_algs) = match body.first() {
            Some(&CERT_CONF_TAG) => {
                let statuses = AnyRef::from_der(body).map_err(malformed)?;
                let read =
                    Vec::<CertStatus2021<'_>>::from_der(statuses.value()).map_err(malformed)?;
                let hash_algs: Vec<_> = read.iter().map(|s| s.hash_alg.clone()).collect();
                let plain: Vec<CertStatus<'_>> = read
                    .into_iter()
                    .map(|s| CertStatus {
                        cert_hash: s.cert_hash,
                        cert_req_id: s.cert_req_id,
                        status_info: s.status_info,
                    })
                    .collect();
                let content = plain.to_der().map_err(malformed)?;
                (wrap(CERT_CONF_TAG, &content), hash_algs)
            }
            _ => (body.to_vec(), Vec::new()),
        };
        let normalized = wrap(0x30, &[&header_copy[..], &body_copy, &rest].concat());
        PkiMessage::from_der(&normalized).map_err(malformed)?;
        Ok(Received {
            normalized,
            protected_part: wrap(0x30, &[header, body].concat()),
            pvno,
            hash_algs,
        })
    }

    /// The message, as `cmpv2` types it (its header's pvno reads 2: [`Received::version`]
    /// tells the one received).
    pub fn message(&self) -> Result<PkiMessage<'_>, CmpError> {
        PkiMessage::from_der(&self.normalized).map_err(|e| CmpError::Malformed(e.to_string()))
    }

    /// The DER of ProtectedPart (header and body) exactly as received: what the request's
    /// protection covers (RFC 9810 section 5.1.3).
    pub fn protected_part(&self) -> &[u8] {
        &self.protected_part
    }

    /// The version of the request, when this server speaks it. Otherwise the error RFC 9810
    /// section 7 requires, `unsupportedVersion`, with the version to answer it in: the
    /// highest served for a higher pvno, the lowest for a lower one.
    pub fn version(&self) -> Result<Version, (Version, CmpError)> {
        match self.pvno {
            2 => Ok(Version::Cmp2000),
            3 => Ok(Version::Cmp2021),
            other => Err((
                if other > 3 {
                    Version::Cmp2021
                } else {
                    Version::Cmp2000
                },
                CmpError::UnsupportedVersion(other),
            )),
        }
    }

    /// The version to answer in: the request's when served, else as [`Received::version`].
    pub fn answer_version(&self) -> Version {
        self.version().unwrap_or_else(|(v, _)| v)
    }

    /// Checks the syntax of a served version against what the message uses: hashAlg in a
    /// CertStatus is cmp2021 syntax (RFC 9810 section 5.3.18: "the CMP version indicated by
    /// the certConf message header must be cmp2021(3)").
    pub fn check_syntax(&self) -> Result<Version, CmpError> {
        let version = self.version().map_err(|(_, e)| e)?;
        if version == Version::Cmp2000 && self.hash_algs.iter().any(Option::is_some) {
            return Err(CmpError::BadRequest(
                "hashAlg in a CertStatus needs pvno 3 (cmp2021)".into(),
            ));
        }
        Ok(version)
    }

    /// The hashAlg of the certConf's CertStatus number `index` (from 0), if it has one.
    pub fn hash_alg(&self, index: usize) -> Option<&AlgorithmIdentifierOwned> {
        self.hash_algs.get(index).and_then(Option::as_ref)
    }
}

/// The content octets of the DER SEQUENCE `der`, which must be all of `der`.
fn sequence_content(der: &[u8]) -> der::Result<&[u8]> {
    let any = AnyRef::from_der(der)?;
    if any.tag() != der::Tag::Sequence {
        return Err(der::Error::from(der::ErrorKind::TagUnexpected {
            expected: Some(der::Tag::Sequence),
            actual: any.tag(),
        }));
    }
    Ok(any.value())
}

/// The value of pvno's DER INTEGER, saturated to the range of `i64`.
fn pvno_value(tlv: &[u8]) -> der::Result<i64> {
    let any = AnyRef::from_der(tlv)?;
    if any.tag() != der::Tag::Integer {
        return Err(der::Error::from(der::ErrorKind::TagUnexpected {
            expected: Some(der::Tag::Integer),
            actual: any.tag(),
        }));
    }
    // The INTEGER's DER rules (minimal, not empty) are checked by decoding it.
    let int = Int::from_der(tlv)?;
    let bytes = int.as_bytes();
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    if bytes.len() > 8 {
        return Ok(if negative { i64::MIN } else { i64::MAX });
    }
    let mut full = [if negative { 0xff } else { 0 }; 8];
    full[8 - bytes.len()..].copy_from_slice(bytes);
    Ok(i64::from_be_bytes(full))
}

/// A DER TLV of one-byte tag `tag` around `content`.
pub(crate) fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Sets the pvno of a DER PKIMessage or ProtectedPart (both begin SEQUENCE { header
/// SEQUENCE { pvno INTEGER ...) encoded with pvno 2 by `cmpv2` to `version`.
pub(crate) fn set_pvno(der: &mut [u8], version: Version) -> Result<(), CmpError> {
    let missing = || CmpError::Encoding("no pvno where a PKIHeader begins".into());
    let start = content_start(der, 0).ok_or_else(missing)?;
    let start = content_start(der, start).ok_or_else(missing)?;
    match der.get_mut(start..start + 3) {
        Some([0x02, 0x01, value]) => {
            *value = version as u8;
            Ok(())
        }
        _ => Err(missing()),
    }
}

/// Where the content of the DER TLV at `at` (one-byte tag) begins.
fn content_start(der: &[u8], at: usize) -> Option<usize> {
    let first = *der.get(at + 1)?;
    Some(if first < 0x80 {
        at + 2
    } else {
        at + 2 + usize::from(first & 0x7f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmpv2::body::PkiBody;
    use cmpv2::header::{PkiHeader, Pvno};
    use der::asn1::ObjectIdentifier;
    use x509_cert::ext::pkix::name::GeneralName;

    fn message(body: PkiBody<'static>) -> Vec<u8> {
        PkiMessage {
            header: PkiHeader {
                pvno: Pvno::Cmp2000,
                sender: GeneralName::DirectoryName(Default::default()),
                recipient: GeneralName::DirectoryName(Default::default()),
                message_time: None,
                protection_alg: None,
                sender_kid: None,
                recip_kid: None,
                trans_id: Some(OctetString::new(vec![1; 16]).unwrap()),
                sender_nonce: Some(OctetString::new(vec![2; 16]).unwrap()),
                recip_nonce: None,
                free_text: None,
                general_info: None,
            },
            body,
            protection: None,
            extra_certs: None,
        }
        .to_der()
        .unwrap()
    }

    fn with_pvno(der: &[u8], pvno: u8) -> Vec<u8> {
        let mut der = der.to_vec();
        let at = content_start(&der, content_start(&der, 0).unwrap()).unwrap();
        der[at + 2] = pvno;
        der
    }

    #[test]
    fn pvno_2_and_3_are_served_and_others_answered_unsupported_version() {
        let der = message(PkiBody::GenM(Vec::new()));
        let two = Received::read(&der).unwrap();
        assert_eq!(two.version().unwrap(), Version::Cmp2000);
        assert_eq!(
            two.protected_part(),
            crate::protected_part(&two.message().unwrap()).unwrap()
        );

        let three = Received::read(&with_pvno(&der, 3)).unwrap();
        assert_eq!(three.check_syntax().unwrap(), Version::Cmp2021);
        // The protection covers the received pvno, not the copy cmpv2 reads.
        assert_ne!(three.protected_part(), two.protected_part());
        assert_eq!(
            three.message().unwrap().header,
            two.message().unwrap().header
        );

        let (answer, error) = Received::read(&with_pvno(&der, 4))
            .unwrap()
            .version()
            .unwrap_err();
        assert_eq!(answer, Version::Cmp2021);
        assert_eq!(error.failure(), crate::FailureInfo::UnsupportedVersion);
        let (answer, _) = Received::read(&with_pvno(&der, 1))
            .unwrap()
            .version()
            .unwrap_err();
        assert_eq!(answer, Version::Cmp2000);
    }

    #[test]
    fn cert_status_hash_alg_is_read_and_needs_cmp2021() {
        let der = message(PkiBody::CertConf(Vec::new()));
        // certConf [24] { SEQUENCE { certHash, certReqId 0, [0] { sha384 } } }.
        let sha384 = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
        let alg = AlgorithmIdentifierOwned {
            oid: sha384,
            parameters: None,
        };
        let status = CertStatus2021 {
            cert_hash: OctetString::new(vec![9; 48]).unwrap(),
            cert_req_id: Int::new(&[0]).unwrap(),
            status_info: None,
            hash_alg: Some(alg.clone()),
        };
        let body = wrap(CERT_CONF_TAG, &vec![status].to_der().unwrap());
        let empty = wrap(CERT_CONF_TAG, &[0x30, 0x00]);
        let at = der.len() - empty.len();
        assert_eq!(&der[at..], &empty[..], "the body ends the message");
        let content = [&der[content_start(&der, 0).unwrap()..at], &body[..]].concat();
        let with_hash_alg = wrap(0x30, &content);

        let two = Received::read(&with_hash_alg).unwrap();
        assert_eq!(two.hash_alg(0), Some(&alg));
        assert_eq!(
            two.check_syntax().unwrap_err().failure(),
            crate::FailureInfo::BadRequest
        );
        let three = Received::read(&with_pvno(&with_hash_alg, 3)).unwrap();
        assert_eq!(three.check_syntax().unwrap(), Version::Cmp2021);
        let message = three.message().unwrap();
        let statuses = match &message.body {
            PkiBody::CertConf(statuses) => statuses,
            other => unreachable!("a certConf, not {other:?}"),
        };
        assert_eq!(statuses[0].cert_hash.as_bytes(), &[9; 48]);
        assert_eq!(three.hash_alg(0), Some(&alg));
        assert_eq!(three.hash_alg(1), None);
    }

    #[test]
    fn set_pvno_writes_the_header_pvno() {
        let der = message(PkiBody::GenM(Vec::new()));
        let mut three = der.clone();
        set_pvno(&mut three, Version::Cmp2021).unwrap();
        assert_eq!(three, with_pvno(&der, 3));
        assert!(set_pvno(&mut [0x30, 0x00], Version::Cmp2021).is_err());
    }
}
