//! Every object identifier the X.509 layer writes or compares, each defined once with the
//! RFC section that assigns it.
//!
//! The key algorithm OIDs belong to the `keys` crate, which loads and describes CA keys with
//! them, and are re-exported here. Most constants are the `der` 0.7 [`ObjectIdentifier`] of
//! the `x509-cert`, `x509-ocsp` and `spki` crates; the PKCS#12 and CMS ones, used only with
//! the `pkcs12`, `cms` and `pkcs5` crates of the `der` 0.8 generation, are that generation's
//! [`ObjectIdentifier08`].

use der::asn1::ObjectIdentifier;
pub use keys::oid::{ID_EC_PUBLIC_KEY, ID_ED25519, RSA_ENCRYPTION, SECP256R1, SECP384R1};
/// The `der` 0.8 object identifier, of the PKCS#12 and CMS structures.
pub use pkcs5::der::asn1::ObjectIdentifier as ObjectIdentifier08;

const fn oid(dotted: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(dotted)
}

const fn oid08(dotted: &str) -> ObjectIdentifier08 {
    ObjectIdentifier08::new_unwrap(dotted)
}

// Elliptic curves no profile allows, named in refusals.

/// secp192r1 (prime192v1, NIST P-192), RFC 5480 section 2.1.1.1.
pub const SECP192R1: ObjectIdentifier = oid("1.2.840.10045.3.1.1");
/// secp224r1 (NIST P-224), RFC 5480 section 2.1.1.1.
pub const SECP224R1: ObjectIdentifier = oid("1.3.132.0.33");
/// secp521r1 (NIST P-521), RFC 5480 section 2.1.1.1.
pub const SECP521R1: ObjectIdentifier = oid("1.3.132.0.35");
/// secp256k1, SEC 2 version 2.0 section 2.4.1 (no RFC assigns it; RFC 5480 section 2.1.1.1
/// lists the curves of the same arc).
pub const SECP256K1: ObjectIdentifier = oid("1.3.132.0.10");

// EST (RFC 7030) request attributes.

/// id-aa-decryptKeyID, RFC 7030 section 4.4.1.1: a symmetric key to encrypt a
/// server-generated key with.
pub const ID_AA_DECRYPT_KEY_ID: ObjectIdentifier = oid("1.2.840.113549.1.9.16.2.37");
/// id-aa-asymmDecryptKeyID, RFC 7030 section 4.4.1.2: an asymmetric key to encrypt a
/// server-generated key with.
pub const ID_AA_ASYMM_DECRYPT_KEY_ID: ObjectIdentifier = oid("1.2.840.113549.1.9.16.2.54");

// Signature algorithms (the Ed25519 one is ID_ED25519).

/// ecdsa-with-SHA256, RFC 5758 section 3.2: no parameters.
pub const ECDSA_WITH_SHA256: ObjectIdentifier = oid("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384, RFC 5758 section 3.2: no parameters.
pub const ECDSA_WITH_SHA384: ObjectIdentifier = oid("1.2.840.10045.4.3.3");
/// sha256WithRSAEncryption, RFC 4055 section 5 (RFC 8017 appendix A.2.4): NULL parameters.
pub const SHA256_WITH_RSA_ENCRYPTION: ObjectIdentifier = oid("1.2.840.113549.1.1.11");
/// id-RSASSA-PSS (RFC 4055 section 3.1).
pub const ID_RSASSA_PSS: ObjectIdentifier = oid("1.2.840.113549.1.1.10");

// Hash functions.

/// id-sha1, RFC 3279 section 2.1.3: the hash of most OCSP CertIDs (RFC 6960 section 4.1.1).
pub const ID_SHA1: ObjectIdentifier = oid("1.3.14.3.2.26");
/// id-sha256, RFC 5754 section 2.2.
pub const ID_SHA256: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.1");

// Certificate and CRL extensions (RFC 5280 sections 4.2 and 5.2).

/// id-ce-subjectKeyIdentifier, RFC 5280 section 4.2.1.2.
pub const ID_CE_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = oid("2.5.29.14");
/// id-ce-keyUsage, RFC 5280 section 4.2.1.3.
pub const ID_CE_KEY_USAGE: ObjectIdentifier = oid("2.5.29.15");
/// id-ce-subjectAltName, RFC 5280 section 4.2.1.6.
pub const ID_CE_SUBJECT_ALT_NAME: ObjectIdentifier = oid("2.5.29.17");
/// id-ce-basicConstraints, RFC 5280 section 4.2.1.9.
pub const ID_CE_BASIC_CONSTRAINTS: ObjectIdentifier = oid("2.5.29.19");
/// id-ce-cRLNumber, RFC 5280 section 5.2.3.
pub const ID_CE_CRL_NUMBER: ObjectIdentifier = oid("2.5.29.20");
/// id-ce-cRLReasons (the reasonCode CRL entry extension), RFC 5280 section 5.3.1.
pub const ID_CE_CRL_REASONS: ObjectIdentifier = oid("2.5.29.21");
/// id-ce-invalidityDate, RFC 5280 section 5.3.2.
pub const ID_CE_INVALIDITY_DATE: ObjectIdentifier = oid("2.5.29.24");
/// id-ce-deltaCRLIndicator, RFC 5280 section 5.2.4.
pub const ID_CE_DELTA_CRL_INDICATOR: ObjectIdentifier = oid("2.5.29.27");
/// id-ce-issuingDistributionPoint, RFC 5280 section 5.2.5.
pub const ID_CE_ISSUING_DISTRIBUTION_POINT: ObjectIdentifier = oid("2.5.29.28");
/// id-ce-nameConstraints, RFC 5280 section 4.2.1.10.
pub const ID_CE_NAME_CONSTRAINTS: ObjectIdentifier = oid("2.5.29.30");
/// id-ce-cRLDistributionPoints, RFC 5280 section 4.2.1.13.
pub const ID_CE_CRL_DISTRIBUTION_POINTS: ObjectIdentifier = oid("2.5.29.31");
/// id-ce-authorityKeyIdentifier, RFC 5280 section 4.2.1.1.
pub const ID_CE_AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = oid("2.5.29.35");
/// id-ce-extKeyUsage, RFC 5280 section 4.2.1.12.
pub const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = oid("2.5.29.37");
/// id-ce-freshestCRL, RFC 5280 sections 4.2.1.15 and 5.2.6.
pub const ID_CE_FRESHEST_CRL: ObjectIdentifier = oid("2.5.29.46");
/// id-pe-authorityInfoAccess, RFC 5280 section 4.2.2.1.
pub const ID_PE_AUTHORITY_INFO_ACCESS: ObjectIdentifier = oid("1.3.6.1.5.5.7.1.1");

// Access methods of authorityInfoAccess (RFC 5280 section 4.2.2.1).

/// id-ad-ocsp, RFC 5280 section 4.2.2.1 (RFC 6960 section 4.2.2.2's id-pkix-ocsp arc).
pub const ID_AD_OCSP: ObjectIdentifier = oid("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers, RFC 5280 section 4.2.2.1.
pub const ID_AD_CA_ISSUERS: ObjectIdentifier = oid("1.3.6.1.5.5.7.48.2");

// OCSP extensions (RFC 6960 section 4.4).

/// id-pkix-ocsp-nonce, RFC 6960 section 4.4.1.
pub const ID_PKIX_OCSP_NONCE: ObjectIdentifier = oid("1.3.6.1.5.5.7.48.1.2");
/// id-pkix-ocsp-nocheck, RFC 6960 section 4.2.2.2.1: a responder certificate that clients
/// need not check for revocation.
pub const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier = oid("1.3.6.1.5.5.7.48.1.5");

// Key purposes of extKeyUsage (RFC 5280 section 4.2.1.12).

/// id-kp-serverAuth, RFC 5280 section 4.2.1.12.
pub const ID_KP_SERVER_AUTH: ObjectIdentifier = oid("1.3.6.1.5.5.7.3.1");
/// id-kp-clientAuth, RFC 5280 section 4.2.1.12.
pub const ID_KP_CLIENT_AUTH: ObjectIdentifier = oid("1.3.6.1.5.5.7.3.2");
/// id-kp-codeSigning, RFC 5280 section 4.2.1.12.
pub const ID_KP_CODE_SIGNING: ObjectIdentifier = oid("1.3.6.1.5.5.7.3.3");
/// id-kp-emailProtection, RFC 5280 section 4.2.1.12.
pub const ID_KP_EMAIL_PROTECTION: ObjectIdentifier = oid("1.3.6.1.5.5.7.3.4");
/// id-kp-timeStamping, RFC 5280 section 4.2.1.12.
pub const ID_KP_TIME_STAMPING: ObjectIdentifier = oid("1.3.6.1.5.5.7.3.8");
/// id-kp-OCSPSigning, RFC 5280 section 4.2.1.12 (RFC 6960 section 4.2.2.2).
pub const ID_KP_OCSP_SIGNING: ObjectIdentifier = oid("1.3.6.1.5.5.7.3.9");

// Attribute types of names (RFC 4519 section 2; RFC 5280 appendix A.1).

/// id-at-commonName (cn), RFC 4519 section 2.3.
pub const ID_AT_COMMON_NAME: ObjectIdentifier = oid("2.5.4.3");
/// id-at-surname (sn), RFC 4519 section 2.32.
pub const ID_AT_SURNAME: ObjectIdentifier = oid("2.5.4.4");
/// id-at-serialNumber, RFC 4519 section 2.31.
pub const ID_AT_SERIAL_NUMBER: ObjectIdentifier = oid("2.5.4.5");
/// id-at-countryName (c), RFC 4519 section 2.2.
pub const ID_AT_COUNTRY_NAME: ObjectIdentifier = oid("2.5.4.6");
/// id-at-localityName (l), RFC 4519 section 2.16.
pub const ID_AT_LOCALITY_NAME: ObjectIdentifier = oid("2.5.4.7");
/// id-at-stateOrProvinceName (st), RFC 4519 section 2.33.
pub const ID_AT_STATE_OR_PROVINCE_NAME: ObjectIdentifier = oid("2.5.4.8");
/// id-at-organizationName (o), RFC 4519 section 2.19.
pub const ID_AT_ORGANIZATION_NAME: ObjectIdentifier = oid("2.5.4.10");
/// id-at-organizationalUnitName (ou), RFC 4519 section 2.20.
pub const ID_AT_ORGANIZATIONAL_UNIT_NAME: ObjectIdentifier = oid("2.5.4.11");
/// id-at-givenName, RFC 4519 section 2.12.
pub const ID_AT_GIVEN_NAME: ObjectIdentifier = oid("2.5.4.42");
/// id-at-pseudonym, RFC 5280 appendix A.1 (X.520).
pub const ID_AT_PSEUDONYM: ObjectIdentifier = oid("2.5.4.65");
/// id-at-organizationIdentifier, X.520 (2012) section 6.4.4; ETSI EN 319 412-1 section 5.1.4.
pub const ID_AT_ORGANIZATION_IDENTIFIER: ObjectIdentifier = oid("2.5.4.97");

// Certificate policies (RFC 5280 section 4.2.1.4) and the policies that standards reserve.

/// id-ce-certificatePolicies, RFC 5280 section 4.2.1.4.
pub const ID_CE_CERTIFICATE_POLICIES: ObjectIdentifier = oid("2.5.29.32");
/// id-qt-cps: a CPS pointer qualifier, RFC 5280 section 4.2.1.4.
pub const ID_QT_CPS: ObjectIdentifier = oid("1.3.6.1.5.5.7.2.1");
/// id-qt-unotice: a user notice qualifier, RFC 5280 section 4.2.1.4.
pub const ID_QT_UNOTICE: ObjectIdentifier = oid("1.3.6.1.5.5.7.2.2");
/// anyPolicy, RFC 5280 section 4.2.1.4.
pub const ANY_POLICY: ObjectIdentifier = oid("2.5.29.32.0");
/// CA/Browser Forum TLS Baseline Requirements section 7.1.6.1: domain validated.
pub const CABF_DOMAIN_VALIDATED: ObjectIdentifier = oid("2.23.140.1.2.1");
/// CA/Browser Forum TLS Baseline Requirements section 7.1.6.1: organization validated.
pub const CABF_ORGANIZATION_VALIDATED: ObjectIdentifier = oid("2.23.140.1.2.2");
/// CA/Browser Forum TLS Baseline Requirements section 7.1.6.1: individual validated.
pub const CABF_INDIVIDUAL_VALIDATED: ObjectIdentifier = oid("2.23.140.1.2.3");
/// CA/Browser Forum S/MIME Baseline Requirements section 7.1.6.1: mailbox-validated, strict.
pub const CABF_SMIME_MAILBOX_STRICT: ObjectIdentifier = oid("2.23.140.1.5.1.3");
/// CA/Browser Forum S/MIME Baseline Requirements section 7.1.6.1: individual-validated,
/// strict.
pub const CABF_SMIME_INDIVIDUAL_STRICT: ObjectIdentifier = oid("2.23.140.1.5.4.3");

// Qualified certificate statements (RFC 3739 section 3.2.6; ETSI EN 319 412-5).

/// id-pe-qcStatements, RFC 3739 section 3.2.6.
pub const ID_PE_QC_STATEMENTS: ObjectIdentifier = oid("1.3.6.1.5.5.7.1.3");
/// esi4-qcStatement-1, QcCompliance: an EU qualified certificate (ETSI EN 319 412-5 4.2.1).
pub const ID_ETSI_QCS_QC_COMPLIANCE: ObjectIdentifier = oid("0.4.0.1862.1.1");
/// esi4-qcStatement-4, QcSSCD: the key is in a qualified device (ETSI EN 319 412-5 4.2.2).
pub const ID_ETSI_QCS_QC_SSCD: ObjectIdentifier = oid("0.4.0.1862.1.4");
/// esi4-qcStatement-5, QcPDS: PKI disclosure statements (ETSI EN 319 412-5 4.3.4).
pub const ID_ETSI_QCS_QC_PDS: ObjectIdentifier = oid("0.4.0.1862.1.5");
/// esi4-qcStatement-6, QcType (ETSI EN 319 412-5 4.2.3).
pub const ID_ETSI_QCS_QC_TYPE: ObjectIdentifier = oid("0.4.0.1862.1.6");
/// id-etsi-qct-esign: a certificate for electronic signatures (ETSI EN 319 412-5 4.2.3).
pub const ID_ETSI_QCT_ESIGN: ObjectIdentifier = oid("0.4.0.1862.1.6.1");
/// id-etsi-qct-eseal: a certificate for electronic seals (ETSI EN 319 412-5 4.2.3).
pub const ID_ETSI_QCT_ESEAL: ObjectIdentifier = oid("0.4.0.1862.1.6.2");
/// id-etsi-qct-web: a certificate for website authentication (ETSI EN 319 412-5 4.2.3).
pub const ID_ETSI_QCT_WEB: ObjectIdentifier = oid("0.4.0.1862.1.6.3");
/// QCP-n: EU qualified certificate policy for natural persons (ETSI EN 319 411-2 5.3).
pub const ETSI_QCP_N: ObjectIdentifier = oid("0.4.0.194112.1.0");
/// QCP-n-qscd: the same, key in a qualified device (ETSI EN 319 411-2 5.3).
pub const ETSI_QCP_N_QSCD: ObjectIdentifier = oid("0.4.0.194112.1.2");
/// NCP+: normalized certificate policy, key in a secure device (ETSI EN 319 411-1 5.2).
pub const ETSI_NCP_PLUS: ObjectIdentifier = oid("0.4.0.2042.1.2");
/// NCP: normalized certificate policy (ETSI EN 319 411-1 5.2).
pub const ETSI_NCP: ObjectIdentifier = oid("0.4.0.2042.1.1");

// PKCS#12 files (RFC 7292) and what they hold: CMS content types (RFC 5652) and PKCS#9
// attributes (RFC 2985), of the der 0.8 generation.

/// id-data, RFC 5652 section 4.
pub const ID_DATA: ObjectIdentifier08 = oid08("1.2.840.113549.1.7.1");
/// id-encryptedData, RFC 5652 section 8.
pub const ID_ENCRYPTED_DATA: ObjectIdentifier08 = oid08("1.2.840.113549.1.7.6");
/// pkcs8ShroudedKeyBag, RFC 7292 section 4.2.2.
pub const PKCS8_SHROUDED_KEY_BAG: ObjectIdentifier08 = oid08("1.2.840.113549.1.12.10.1.2");
/// certBag, RFC 7292 section 4.2.3.
pub const CERT_BAG: ObjectIdentifier08 = oid08("1.2.840.113549.1.12.10.1.3");
/// x509Certificate, the certificate type of a certBag, RFC 7292 section 4.2.3.
pub const X509_CERTIFICATE: ObjectIdentifier08 = oid08("1.2.840.113549.1.9.22.1");
/// pkcs-9-at-friendlyName, RFC 2985 section 5.5.1.
pub const PKCS_9_AT_FRIENDLY_NAME: ObjectIdentifier08 = oid08("1.2.840.113549.1.9.20");
/// pkcs-9-at-localKeyId, RFC 2985 section 5.5.2.
pub const PKCS_9_AT_LOCAL_KEY_ID: ObjectIdentifier08 = oid08("1.2.840.113549.1.9.21");

// Encrypted server-generated keys of EST (RFC 7030 section 4.4.2): a CMS SignedData (RFC 5652
// section 5) over an EnvelopedData (section 6) of an AsymmetricKeyPackage (RFC 5958), of the
// der 0.8 generation.

/// id-signedData, RFC 5652 section 5.1.
pub const ID_SIGNED_DATA: ObjectIdentifier08 = oid08("1.2.840.113549.1.7.2");
/// id-envelopedData, RFC 5652 section 6.1.
pub const ID_ENVELOPED_DATA: ObjectIdentifier08 = oid08("1.2.840.113549.1.7.3");
/// id-ct-KP-aKeyPackage, the content type of an AsymmetricKeyPackage, RFC 5958 section 2.
pub const ID_CT_KP_A_KEY_PACKAGE: ObjectIdentifier08 = oid08("2.16.840.1.101.2.1.2.78.5");
/// id-contentType, the content-type signed attribute, RFC 5652 section 11.1.
pub const ID_CONTENT_TYPE: ObjectIdentifier08 = oid08("1.2.840.113549.1.9.3");
/// id-messageDigest, the message-digest signed attribute, RFC 5652 section 11.2.
pub const ID_MESSAGE_DIGEST: ObjectIdentifier08 = oid08("1.2.840.113549.1.9.4");
/// id-RSAES-OAEP, RFC 8017 appendix A.2.1 (in CMS: RFC 3560 section 2.2).
pub const ID_RSAES_OAEP: ObjectIdentifier08 = oid08("1.2.840.113549.1.1.7");
/// id-aes256-CBC, RFC 3565 section 4.1.
pub const ID_AES256_CBC: ObjectIdentifier08 = oid08("2.16.840.1.101.3.4.1.42");
/// id-sha256 as a CMS digest algorithm, RFC 5754 section 2.2.
pub const ID_SHA256_08: ObjectIdentifier08 = oid08("2.16.840.1.101.3.4.2.1");
/// id-sha384, RFC 5754 section 2.3.
pub const ID_SHA384_08: ObjectIdentifier08 = oid08("2.16.840.1.101.3.4.2.2");
/// id-sha512, RFC 5754 section 2.4 (the digest of Ed25519 signers, RFC 8419 section 3).
pub const ID_SHA512_08: ObjectIdentifier08 = oid08("2.16.840.1.101.3.4.2.3");
