//! General messages (RFC 9810 section 5.3.19, RFC 9483 section 4.3): what a `genm` asks and
//! the `genp` InfoTypeAndValues that answer it.

use cmpv2::gen::InfoTypeAndValue;
use der::asn1::ObjectIdentifier;
use der::{Choice, Decode, Encode, Sequence};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, GeneralNames};
use x509_cert::name::Name;
use x509_cert::time::Time;
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
/// id-it-crlStatusList: the CRLs a client has (RFC 9483 section 4.3.4).
pub const CRL_STATUS_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.22");
/// id-it-crls: the newer CRLs that answer a crlStatusList (RFC 9483 section 4.3.4).
pub const CRLS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.23");

/// CRLSource (RFC 9810 section 5.3.19.16): where a CRL comes from, by its distribution point
/// or its issuer. (The CMP ASN.1 module has explicit tags.)
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub enum CrlSource {
    /// The CRL's distribution point name.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", constructed = "true")]
    Dpn(DistributionPointName),
    /// The CRL's issuer.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    Issuer(GeneralNames),
}

/// CRLStatus (RFC 9810 section 5.3.19.16): a CRL the client has, and its thisUpdate.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CrlStatus {
    /// Which CRL.
    pub source: CrlSource,
    /// The thisUpdate of the client's copy; absent when it has none.
    #[asn1(optional = "true")]
    pub this_update: Option<Time>,
}

/// The complete CRL this CA serves, for answering a crlStatusList.
#[derive(Clone, Copy, Debug)]
pub struct CurrentCrl<'a> {
    /// The CRL, DER.
    pub der: &'a [u8],
    /// Its thisUpdate, Unix seconds.
    pub this_update: i64,
    /// The URLs it is published at (its distribution points in the certificates).
    pub urls: &'a [String],
    /// Its issuer: the issuing CA's subject.
    pub issuer: &'a Name,
}

impl CurrentCrl<'_> {
    /// Whether `source` names this CRL: one of its URLs among the distribution point's full
    /// name, or its issuer's directory name among the issuer names.
    fn is_named_by(&self, source: &CrlSource) -> bool {
        let names = match source {
            CrlSource::Dpn(DistributionPointName::FullName(names)) | CrlSource::Issuer(names) => {
                names
            }
            CrlSource::Dpn(DistributionPointName::NameRelativeToCRLIssuer(_)) => return false,
        };
        names.iter().any(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => {
                self.urls.iter().any(|url| url == uri.as_str())
            }
            GeneralName::DirectoryName(name) => name == self.issuer,
            _ => false,
        })
    }

    /// Whether a client's copy of thisUpdate `have` is older than this CRL.
    fn is_newer_than(&self, have: Option<&Time>) -> bool {
        have.is_none_or(|t| (t.to_unix_duration().as_secs() as i64) < self.this_update)
    }
}

/// The genp InfoTypeAndValues answering `asked` for the CA `chain` (issuing CA first) and
/// its current CRL (RFC 9483 section 4.3):
/// - id-it-caCerts: the chain;
/// - id-it-rootCaCert: id-it-rootCaKeyUpdate without value (this CA has no root key update
///   to announce);
/// - id-it-certReqTemplate: without value (no template beyond the profile's, which the
///   enrollment fixes);
/// - id-it-crlStatusList: id-it-crls with the current CRL when one of the listed CRLs is this
///   CA's and older than it (or its thisUpdate absent), else without value.
///
/// Info types this server does not know are left out (RFC 9810 section 5.3.19). An empty
/// genm is answered with the CA certificates. A crlStatusList that does not parse is
/// `badDataFormat`.
pub fn answer(
    asked: &[InfoTypeAndValue],
    chain: &[Certificate],
    crl: Option<CurrentCrl<'_>>,
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
        } else if info.oid == CRL_STATUS_LIST {
            out.push(crls(info, crl)?);
        }
    }
    Ok(out)
}

/// id-it-crls answering one id-it-crlStatusList.
fn crls(
    asked: &InfoTypeAndValue,
    crl: Option<CurrentCrl<'_>>,
) -> Result<InfoTypeAndValue, CmpError> {
    let value = asked
        .value
        .as_ref()
        .ok_or_else(|| CmpError::Malformed("id-it-crlStatusList without value".into()))?
        .to_der()?;
    let statuses = Vec::<CrlStatus>::from_der(&value)
        .map_err(|e| CmpError::Malformed(format!("crlStatusList: {e}")))?;
    if statuses.is_empty() {
        return Err(CmpError::Malformed("an empty crlStatusList".into()));
    }
    let newer = crl.filter(|crl| {
        statuses
            .iter()
            .any(|s| crl.is_named_by(&s.source) && crl.is_newer_than(s.this_update.as_ref()))
    });
    let value = match newer {
        Some(crl) => {
            let list = vec![der::Any::from_der(crl.der)?];
            Some(der::Any::from_der(&list.to_der()?)?)
        }
        None => None,
    };
    Ok(InfoTypeAndValue { oid: CRLS, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::Ia5String;
    use std::str::FromStr;

    fn status_list(statuses: Vec<CrlStatus>) -> InfoTypeAndValue {
        InfoTypeAndValue {
            oid: CRL_STATUS_LIST,
            value: Some(der::Any::from_der(&statuses.to_der().unwrap()).unwrap()),
        }
    }

    fn by_url(url: &str, this_update: Option<i64>) -> CrlStatus {
        CrlStatus {
            source: CrlSource::Dpn(DistributionPointName::FullName(vec![
                GeneralName::UniformResourceIdentifier(Ia5String::new(url).unwrap()),
            ])),
            this_update: this_update.map(|t| {
                Time::try_from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64))
                    .unwrap()
            }),
        }
    }

    /// A stand-in CRL: any DER value is carried as it is.
    const CRL: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x07];

    fn current<'a>(urls: &'a [String], issuer: &'a Name) -> CurrentCrl<'a> {
        CurrentCrl {
            der: CRL,
            this_update: 1_000_000,
            urls,
            issuer,
        }
    }

    #[test]
    fn a_crl_status_list_gets_the_crl_when_it_is_newer() {
        let urls = vec!["http://ca.example/crl".to_string()];
        let issuer = Name::from_str("CN=Example CA").unwrap();
        let answer = |statuses| {
            let out = super::answer(&[status_list(statuses)], &[], Some(current(&urls, &issuer)))
                .unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].oid, CRLS);
            out[0].value.as_ref().map(|v| v.to_der().unwrap())
        };
        let carried = Some([&[0x30, 0x05][..], CRL].concat());
        assert_eq!(answer(vec![by_url("http://ca.example/crl", None)]), carried);
        assert_eq!(
            answer(vec![by_url("http://ca.example/crl", Some(999_999))]),
            carried
        );
        assert_eq!(
            answer(vec![by_url("http://ca.example/crl", Some(1_000_000))]),
            None
        );
        assert_eq!(answer(vec![by_url("http://other.example/crl", None)]), None);
        let by_issuer = CrlStatus {
            source: CrlSource::Issuer(vec![GeneralName::DirectoryName(issuer.clone())]),
            this_update: None,
        };
        assert_eq!(answer(vec![by_issuer]), carried);
    }

    #[test]
    fn crl_sources_are_explicitly_tagged() {
        // [0] { [0] { [6] "u" } }: the dpn choice wraps DistributionPointName explicitly.
        let status = by_url("u", None);
        assert_eq!(
            status.to_der().unwrap(),
            [0x30, 0x07, 0xa0, 0x05, 0xa0, 0x03, 0x86, 0x01, b'u']
        );
    }

    #[test]
    fn a_malformed_crl_status_list_is_refused() {
        let bad = InfoTypeAndValue {
            oid: CRL_STATUS_LIST,
            value: Some(der::Any::from_der(&[0x04, 0x01, 0x00]).unwrap()),
        };
        assert!(matches!(
            super::answer(&[bad], &[], None),
            Err(CmpError::Malformed(_))
        ));
    }
}
