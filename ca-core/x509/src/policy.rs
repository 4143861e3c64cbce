//! What a profile adds to its certificates beyond names and key usages, as configured and
//! as DER: certificate policies (RFC 5280 section 4.2.1.4), qualified certificate statements
//! (RFC 3739 section 3.2.6, ETSI EN 319 412-5) and extensions the operator fixes byte for
//! byte.
//!
//! Each is encoded once, into the profile's template ([`crate::template`]); nothing here
//! runs per certificate.

use der::asn1::{Ia5String, ObjectIdentifier, OctetString, PrintableString};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::certpolicy::{
    CertificatePolicies, DisplayText, PolicyInformation, PolicyQualifierInfo, UserNotice,
};
use x509_cert::ext::Extension;

use crate::oid;

/// One policy of a profile's `certificate_policies` (RFC 5280 section 4.2.1.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy OID, dotted: a private arc, or a reserved one such as the CA/Browser
    /// Forum's `2.23.140.1.2.1` (domain validated).
    pub oid: String,
    /// A CPS pointer qualifier: the URI of the certification practice statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cps: Option<String>,
    /// A user notice qualifier's explicitText, at most 200 characters (RFC 5280 section
    /// 4.2.1.4), written as a UTF8String.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl PolicyConfig {
    /// The configured OID, parsed.
    pub fn object_identifier(&self) -> Result<ObjectIdentifier, PolicyError> {
        parse_oid(&self.oid)
    }

    fn information(&self) -> Result<PolicyInformation, PolicyError> {
        let mut qualifiers = Vec::new();
        if let Some(cps) = &self.cps {
            let uri = Ia5String::new(cps).map_err(|_| PolicyError::NotIa5 {
                what: "cps",
                value: cps.clone(),
            })?;
            qualifiers.push(PolicyQualifierInfo {
                policy_qualifier_id: oid::ID_QT_CPS,
                qualifier: Some(any(&uri)?),
            });
        }
        if let Some(text) = &self.notice {
            if text.is_empty() || text.chars().count() > 200 {
                return Err(PolicyError::NoticeLength);
            }
            let notice = UserNotice {
                notice_ref: None,
                explicit_text: Some(DisplayText::Utf8String(text.clone())),
            };
            qualifiers.push(PolicyQualifierInfo {
                policy_qualifier_id: oid::ID_QT_UNOTICE,
                qualifier: Some(any(&notice)?),
            });
        }
        Ok(PolicyInformation {
            policy_identifier: self.object_identifier()?,
            policy_qualifiers: (!qualifiers.is_empty()).then_some(qualifiers),
        })
    }
}

/// The certificatePolicies extension (not critical) for `policies`, in order.
pub(crate) fn certificate_policies(policies: &[PolicyConfig]) -> Result<Vec<u8>, PolicyError> {
    let list = policies
        .iter()
        .map(PolicyConfig::information)
        .collect::<Result<Vec<_>, _>>()?;
    extension(
        oid::ID_CE_CERTIFICATE_POLICIES,
        false,
        &CertificatePolicies(list),
    )
}

/// A QcType of ETSI EN 319 412-5 section 4.2.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QcType {
    /// id-etsi-qct-esign: electronic signatures (natural persons).
    Esign,
    /// id-etsi-qct-eseal: electronic seals (legal persons).
    Eseal,
    /// id-etsi-qct-web: website authentication.
    Web,
}

impl QcType {
    fn object_identifier(self) -> ObjectIdentifier {
        match self {
            QcType::Esign => oid::ID_ETSI_QCT_ESIGN,
            QcType::Eseal => oid::ID_ETSI_QCT_ESEAL,
            QcType::Web => oid::ID_ETSI_QCT_WEB,
        }
    }
}

/// One PKI disclosure statement of QcPDS (ETSI EN 319 412-5 section 4.3.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdsLocation {
    /// Where the statement is published (an https URL).
    pub url: String,
    /// Its language: two lower-case letters of ISO 639-1.
    pub language: String,
}

/// A profile's `qc_statements` (ETSI EN 319 412-5 section 4): what makes a certificate an
/// EU qualified certificate, and of which kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QcStatementsConfig {
    /// esi4-qcStatement-1, QcCompliance: issued as a qualified certificate.
    pub compliance: bool,
    /// esi4-qcStatement-4, QcSSCD: the private key is in a qualified signature creation
    /// device.
    pub sscd: bool,
    /// esi4-qcStatement-6, QcType: what the certificate is for.
    pub qc_type: Vec<QcType>,
    /// esi4-qcStatement-5, QcPDS: the PKI disclosure statements, at least one in English.
    pub pds: Vec<PdsLocation>,
}

/// QCStatement (RFC 3739 section 3.2.6).
#[derive(der::Sequence)]
struct QcStatement {
    statement_id: ObjectIdentifier,
    statement_info: Option<der::Any>,
}

/// PdsLocation (ETSI EN 319 412-5 section 4.3.4).
#[derive(der::Sequence)]
struct PdsLocationDer {
    url: Ia5String,
    language: PrintableString,
}

impl QcStatementsConfig {
    /// The qcStatements extension (not critical, ETSI EN 319 412-5 section 4.1).
    pub(crate) fn extension(&self) -> Result<Vec<u8>, PolicyError> {
        let mut statements = Vec::new();
        if self.compliance {
            statements.push(QcStatement {
                statement_id: oid::ID_ETSI_QCS_QC_COMPLIANCE,
                statement_info: None,
            });
        }
        if self.sscd {
            statements.push(QcStatement {
                statement_id: oid::ID_ETSI_QCS_QC_SSCD,
                statement_info: None,
            });
        }
        if !self.qc_type.is_empty() {
            let types: Vec<ObjectIdentifier> =
                self.qc_type.iter().map(|t| t.object_identifier()).collect();
            statements.push(QcStatement {
                statement_id: oid::ID_ETSI_QCS_QC_TYPE,
                statement_info: Some(any(&types)?),
            });
        }
        if !self.pds.is_empty() {
            let mut locations = Vec::new();
            for pds in &self.pds {
                let language = &pds.language;
                if language.len() != 2 || !language.bytes().all(|b| b.is_ascii_lowercase()) {
                    return Err(PolicyError::PdsLanguage(language.clone()));
                }
                locations.push(PdsLocationDer {
                    url: Ia5String::new(&pds.url).map_err(|_| PolicyError::NotIa5 {
                        what: "pds url",
                        value: pds.url.clone(),
                    })?,
                    language: PrintableString::new(language).map_err(PolicyError::Encoding)?,
                });
            }
            statements.push(QcStatement {
                statement_id: oid::ID_ETSI_QCS_QC_PDS,
                statement_info: Some(any(&locations)?),
            });
        }
        if statements.is_empty() {
            return Err(PolicyError::EmptyQcStatements);
        }
        extension(oid::ID_PE_QC_STATEMENTS, false, &statements)
    }
}

/// An extension the operator fixes for every certificate of a profile: its OID, criticality
/// and extnValue's content as hex DER (one complete TLV).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraExtension {
    /// The extension's OID, dotted.
    pub oid: String,
    /// Whether it is critical.
    #[serde(default)]
    pub critical: bool,
    /// The DER inside extnValue, in hex (`0500` for NULL).
    pub der: String,
}

/// The extensions the CA writes itself, which no `extra_extensions` entry may name.
pub(crate) const WRITTEN_BY_THE_CA: [ObjectIdentifier; 11] = [
    oid::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    oid::ID_CE_SUBJECT_ALT_NAME,
    oid::ID_CE_KEY_USAGE,
    oid::ID_CE_EXT_KEY_USAGE,
    oid::ID_CE_CRL_DISTRIBUTION_POINTS,
    oid::ID_CE_SUBJECT_KEY_IDENTIFIER,
    oid::ID_CE_BASIC_CONSTRAINTS,
    oid::ID_PE_AUTHORITY_INFO_ACCESS,
    oid::ID_PKIX_OCSP_NOCHECK,
    oid::ID_CE_CERTIFICATE_POLICIES,
    oid::ID_PE_QC_STATEMENTS,
];

impl ExtraExtension {
    /// The configured OID, parsed.
    pub fn object_identifier(&self) -> Result<ObjectIdentifier, PolicyError> {
        parse_oid(&self.oid)
    }

    /// The Extension's DER, after checking that `der` is hex of exactly one DER TLV and the
    /// OID is not one the CA writes itself.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, PolicyError> {
        let extn_id = self.object_identifier()?;
        if WRITTEN_BY_THE_CA.contains(&extn_id) {
            return Err(PolicyError::ReservedExtension(self.oid.clone()));
        }
        let value = hex::decode(&self.der).map_err(|_| PolicyError::NotHex(self.oid.clone()))?;
        der::asn1::AnyRef::from_der(&value).map_err(|e| PolicyError::NotDer {
            oid: self.oid.clone(),
            source: e,
        })?;
        Extension {
            extn_id,
            critical: self.critical,
            extn_value: OctetString::new(value).map_err(PolicyError::Encoding)?,
        }
        .to_der()
        .map_err(PolicyError::Encoding)
    }
}

/// Why a profile's policies, statements or extra extensions cannot be encoded: found when
/// the profile is loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not a dotted object identifier.
    #[error("{0:?} is not a dotted object identifier")]
    Oid(String),
    /// A URI or URL outside IA5 (ASCII).
    #[error("{what} {value:?} is not ASCII (IA5String)")]
    NotIa5 {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// A user notice of no or more than 200 characters.
    #[error("notice must have 1 to 200 characters (RFC 5280 section 4.2.1.4)")]
    NoticeLength,
    /// A PDS language that is not two lower-case letters.
    #[error("pds language {0:?} is not two lower-case ISO 639-1 letters")]
    PdsLanguage(String),
    /// A `qc_statements` table that asks for nothing.
    #[error("qc_statements names no statement")]
    EmptyQcStatements,
    /// An extra extension the CA writes itself.
    #[error("extra extension {0} is one the CA writes itself")]
    ReservedExtension(String),
    /// An extra extension whose `der` is not hex.
    #[error("extra extension {0}: der is not hex")]
    NotHex(String),
    /// An extra extension whose `der` is not one DER TLV.
    #[error("extra extension {oid}: der is not one DER value")]
    NotDer {
        /// The extension's OID.
        oid: String,
        /// What the decoder said.
        #[source]
        source: der::Error,
    },
    /// The encoder refused a value.
    #[error("cannot be encoded")]
    Encoding(#[source] der::Error),
}

fn parse_oid(dotted: &str) -> Result<ObjectIdentifier, PolicyError> {
    ObjectIdentifier::new(dotted).map_err(|_| PolicyError::Oid(dotted.to_string()))
}

fn any(value: &impl Encode) -> Result<der::Any, PolicyError> {
    let der = value.to_der().map_err(PolicyError::Encoding)?;
    der::Any::from_der(&der).map_err(PolicyError::Encoding)
}

/// An Extension (RFC 5280 section 4.1) of `value`'s DER, itself DER-encoded.
fn extension(
    extn_id: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Vec<u8>, PolicyError> {
    Extension {
        extn_id,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(PolicyError::Encoding)?)
            .map_err(PolicyError::Encoding)?,
    }
    .to_der()
    .map_err(PolicyError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_with_qualifiers_parse_back() {
        let der = certificate_policies(&[
            PolicyConfig {
                oid: "2.23.140.1.2.1".into(),
                cps: None,
                notice: None,
            },
            PolicyConfig {
                oid: "1.3.6.1.4.1.55555.1.2".into(),
                cps: Some("https://ca.example/cps".into()),
                notice: Some("Só para testes".into()),
            },
        ])
        .unwrap();
        let ext = Extension::from_der(&der).unwrap();
        assert_eq!(ext.extn_id, oid::ID_CE_CERTIFICATE_POLICIES);
        let policies = CertificatePolicies::from_der(ext.extn_value.as_bytes()).unwrap();
        assert_eq!(policies.0.len(), 2);
        assert_eq!(policies.0[0].policy_identifier, oid::CABF_DOMAIN_VALIDATED);
        assert!(policies.0[0].policy_qualifiers.is_none());
        let qualifiers = policies.0[1].policy_qualifiers.as_ref().unwrap();
        assert_eq!(qualifiers[0].policy_qualifier_id, oid::ID_QT_CPS);
        let notice: UserNotice = qualifiers[1]
            .qualifier
            .as_ref()
            .unwrap()
            .decode_as()
            .unwrap();
        assert!(
            matches!(notice.explicit_text, Some(DisplayText::Utf8String(ref t)) if t == "Só para testes")
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let policy = |oid: &str, notice: Option<&str>| PolicyConfig {
            oid: oid.into(),
            cps: None,
            notice: notice.map(String::from),
        };
        assert!(matches!(
            certificate_policies(&[policy("not.an.oid", None)]),
            Err(PolicyError::Oid(_))
        ));
        let long = "x".repeat(201);
        assert!(matches!(
            certificate_policies(&[policy("1.2.3", Some(&long))]),
            Err(PolicyError::NoticeLength)
        ));
        let extra = |oid: &str, der: &str| ExtraExtension {
            oid: oid.into(),
            critical: false,
            der: der.into(),
        };
        assert!(matches!(
            extra("2.5.29.19", "3000").encode(),
            Err(PolicyError::ReservedExtension(_))
        ));
        assert!(matches!(
            extra("1.2.3.4", "zz").encode(),
            Err(PolicyError::NotHex(_))
        ));
        assert!(matches!(
            extra("1.2.3.4", "0500ff").encode(),
            Err(PolicyError::NotDer { .. })
        ));
        extra("1.2.3.4", "0500").encode().unwrap();
        assert!(matches!(
            QcStatementsConfig::default().extension(),
            Err(PolicyError::EmptyQcStatements)
        ));
    }

    #[test]
    fn qc_statements_encode_as_etsi_defines_them() {
        let qc = QcStatementsConfig {
            compliance: true,
            sscd: true,
            qc_type: vec![QcType::Esign],
            pds: vec![PdsLocation {
                url: "https://ca.example/pds-en.pdf".into(),
                language: "en".into(),
            }],
        };
        let der = qc.extension().unwrap();
        let ext = Extension::from_der(&der).unwrap();
        assert_eq!(ext.extn_id, oid::ID_PE_QC_STATEMENTS);
        let statements: Vec<der::Any> = Vec::from_der(ext.extn_value.as_bytes()).unwrap();
        assert_eq!(statements.len(), 4);
    }
}
