//! General messages (RFC 9810 section 5.3.19, RFC 9483 section 4.3): what a `genm` asks and
//! the `genp` InfoTypeAndValues that answer it.

use cmpv2::gen::InfoTypeAndValue;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;

use crate::error::CmpError;

/// id-it-caCerts (RFC 9483 section 4.3.1): the value answered is the CA certificates.
pub const CA_CERTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");
/// id-it-rootCaKeyUpdate: the answer to id-it-rootCaCert (RFC 9483 section 4.3.2).
pub const ROOT_CA_KEY_UPDATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.18");
/// id-it-certReqTemplate (RFC 9483 section 4.3.3).
pub const CERT_REQ_TEMPLATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.19");
/// id-it-rootCaCert: a request for a root CA update (RFC 9483 section 4.3.2).
pub const ROOT_CA_CERT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.20");

/// The genp InfoTypeAndValues answering `asked` for the CA `chain` (issuing CA first):
/// id-it-caCerts with the chain; id-it-rootCaCert with id-it-rootCaKeyUpdate without value
/// (this CA has no root key update to announce); id-it-certReqTemplate without value (no
/// template beyond the profile's, which the enrollment fixes). Info types this server does
/// not know are left out (RFC 9810 section 5.3.19). An empty genm is answered with the CA
/// certificates.
pub fn answer(
    asked: &[InfoTypeAndValue],
    chain: &[Certificate],
) -> Result<Vec<InfoTypeAndValue>, CmpError> {
    let ca_certs = || -> Result<InfoTypeAndValue, CmpError> {
        Ok(InfoTypeAndValue {
            oid: CA_CERTS,
            value: Some(der::Any::from_der(&chain.to_vec().to_der()?)?),
        })
    };
    if asked.is_empty() {
        return Ok(vec![ca_certs()?]);
    }
    let mut out = Vec::new();
    for info in asked {
        if info.oid == CA_CERTS {
            out.push(ca_certs()?);
        } else if info.oid == ROOT_CA_CERT {
            out.push(InfoTypeAndValue {
                oid: ROOT_CA_KEY_UPDATE,
                value: None,
            });
        } else if info.oid == CERT_REQ_TEMPLATE {
            out.push(InfoTypeAndValue {
                oid: CERT_REQ_TEMPLATE,
                value: None,
            });
        }
    }
    Ok(out)
}
