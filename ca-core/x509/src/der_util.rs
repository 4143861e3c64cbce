//! DER building blocks shared by certificates, CRLs and OCSP answers: X.509 times, extensions
//! and signature AlgorithmIdentifiers.

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Encode, Tag};
use keys::SignatureScheme;
use time::OffsetDateTime;
use x509_cert::ext::Extension;

use crate::error::CaError;
use crate::oid;

/// A DER encoding failure, which only a fault of the CA can cause.
pub(crate) fn encoding(e: der::Error) -> CaError {
    CaError::Encoding(e)
}

/// The years an X.509 time can carry: GeneralizedTime's four digits (RFC 5280 section
/// 4.1.2.5.2; X.680 section 46).
const ENCODABLE_YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// The years UTCTime carries, its two digits read as 1950 to 2049 (RFC 5280 section
/// 4.1.2.5.1).
const UTC_TIME_YEARS: std::ops::RangeInclusive<i32> = 1950..=2049;

/// The calendar time of `unix` (seconds, negative before 1970) in UTC, if X.509 can carry it.
fn calendar(unix: i64) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .filter(|t| ENCODABLE_YEARS.contains(&t.year()))
        .ok_or_else(|| {
            CaError::internal(
                "a time outside the years 0000 to 9999 that X.509 can encode",
                None,
            )
        })
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) of whole seconds in
/// UTC, as RFC 5280 section 4.1.2.5 requires of both. `t`'s year is within
/// [`ENCODABLE_YEARS`].
fn encode_time(tag: Tag, t: OffsetDateTime) -> Result<Any, CaError> {
    let mut text = Vec::with_capacity(15);
    let mut digits = |value: u32, width: u32| {
        for place in (0..width).rev() {
            text.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    let year = t.year().unsigned_abs();
    if tag == Tag::UtcTime {
        digits(year % 100, 2);
    } else {
        digits(year, 4);
    }
    for part in [
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    ] {
        digits(u32::from(part), 2);
    }
    text.push(b'Z');
    Any::new(tag, text).map_err(encoding)
}

/// A time of a CRL or a certificate: UTCTime for the years 1950 through 2049,
/// GeneralizedTime otherwise (RFC 5280 sections 4.1.2.5 and 5.1.2.4 to 5.1.2.6). Any year
/// from 0000 to 9999 is encoded, before 1970 too.
pub fn time(unix: i64) -> Result<Any, CaError> {
    let t = calendar(unix)?;
    if UTC_TIME_YEARS.contains(&t.year()) {
        encode_time(Tag::UtcTime, t)
    } else {
        encode_time(Tag::GeneralizedTime, t)
    }
}

/// A GeneralizedTime whatever the year, as the invalidityDate CRL entry extension always is
/// (RFC 5280 section 5.3.2), of any year from 0000 to 9999.
pub fn generalized_time(unix: i64) -> Result<Any, CaError> {
    encode_time(Tag::GeneralizedTime, calendar(unix)?)
}

/// An Extension (RFC 5280 section 4.1) holding `value`'s DER, of a CRL or a certificate.
pub fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(encoding)?).map_err(encoding)?,
    })
}

/// The RSASSA-PSS-params of SHA-256, MGF1 with SHA-256 and a 32-byte salt (RFC 4055 section
/// 3.1), DER, with the NULL hash parameters the CA/Browser Forum Baseline Requirements
/// (7.1.3.2.1) require byte for byte.
const RSASSA_PSS_SHA256_PARAMS: [u8; 54] = [
    0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
];

/// The AlgorithmIdentifier of a signature scheme: RFC 5758 section 3.2 (ECDSA, no
/// parameters), RFC 8410 section 3 (Ed25519, no parameters), RFC 4055 section 5 (RSA PKCS#1
/// v1.5, NULL parameters), RFC 4055 section 3.1 (RSASSA-PSS, [`RSASSA_PSS_SHA256_PARAMS`]).
pub fn signature_algorithm(scheme: SignatureScheme) -> spki::AlgorithmIdentifierOwned {
    use der::Decode;
    let (oid, parameters) = match scheme {
        SignatureScheme::EcdsaP256Sha256 => (oid::ECDSA_WITH_SHA256, None),
        SignatureScheme::EcdsaP384Sha384 => (oid::ECDSA_WITH_SHA384, None),
        SignatureScheme::Ed25519 => (oid::ID_ED25519, None),
        SignatureScheme::RsaPkcs1Sha256 => (
            oid::SHA256_WITH_RSA_ENCRYPTION,
            Some(der::asn1::Any::null()),
        ),
        SignatureScheme::RsaPssSha256 => (
            oid::ID_RSASSA_PSS,
            // A constant that decodes (the test below), so `.ok()` never drops it.
            der::asn1::Any::from_der(&RSASSA_PSS_SHA256_PARAMS).ok(),
        ),
    };
    spki::AlgorithmIdentifierOwned { oid, parameters }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    /// The RSASSA-PSS AlgorithmIdentifier is the Baseline Requirements' (7.1.3.2.1) encoding
    /// for SHA-256, byte for byte.
    #[test]
    fn rsassa_pss_is_the_baseline_requirements_encoding() {
        let der = signature_algorithm(SignatureScheme::RsaPssSha256)
            .to_der()
            .unwrap();
        assert_eq!(
            hex::encode(der),
            "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886\
             f70d010108300d06096086480165030402010500a203020120"
        );
    }
}
