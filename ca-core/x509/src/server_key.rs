//! Encrypted server-generated keys of EST (RFC 7030 section 4.4.2): the key part of a
//! `serverkeygen` answer when the request carries an `AsymmetricDecryptKeyIdentifier` (RFC
//! 7030 section 4.4.1.2), `application/pkcs7-mime; smime-type=server-generated-key`.
//!
//! The message is a CMS `SignedData` (RFC 5652 section 5) signed by the CA's key through
//! [`keys::Signer`] (so an HSM key signs it as it signs certificates), with the CA chain as
//! its certificates, whose encapsulated content is an `EnvelopedData` (RFC 5652 section 6)
//! of content type `id-ct-KP-aKeyPackage`: an `AsymmetricKeyPackage` (RFC 5958 section 2)
//! holding the one generated key as its PKCS#8 `OneAsymmetricKey`.
//!
//! - The content is encrypted with a fresh AES-256-CBC key (RFC 3565), which OpenSSL's `cms
//!   -decrypt` and every CMS reader handle.
//! - That key is transported to an RSA recipient with RSAES-OAEP, SHA-256 and MGF1-SHA-256
//!   (RFC 3560, RFC 8551 section 2.3) in a `KeyTransRecipientInfo` whose `rid` is the
//!   requested subjectKeyIdentifier (RFC 5652 section 6.2.1, version 2).
//! - An EC or Ed25519 recipient (`KeyAgreeRecipientInfo`, RFC 5753) is not implemented:
//!   [`RecipientError::Unsupported`].
//!
//! Which public key is the recipient is the caller's rule; [`Recipient::from_certificate`]
//! takes a certificate whose subjectKeyIdentifier must be the requested identifier.

use ::pkcs12::cms::cert::x509::attr::{Attribute, Attributes};
use ::pkcs12::cms::cert::x509::ext::pkix::SubjectKeyIdentifier;
use ::pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
use ::pkcs12::cms::cert::x509::Certificate;
use ::pkcs12::cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use ::pkcs12::cms::content_info::{CmsVersion, ContentInfo};
use ::pkcs12::cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use ::pkcs12::cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use keys::{SignatureScheme, Signer};
use pkcs5::der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use pkcs5::der::{Any, Decode, Encode, Header, Length, Tag};
use ring::rand::{SecureRandom, SystemRandom};
use rsa::pkcs8::DecodePublicKey;
use sha2::Digest;
use zeroize::Zeroizing;

use crate::error::CaError;
use crate::oid;

/// The RSAES-OAEP-params of SHA-256 and MGF1 with SHA-256, the default (empty) label (RFC
/// 4055 section 4.1), DER, with NULL hash parameters as OpenSSL writes them.
const RSAES_OAEP_SHA256_PARAMS: [u8; 49] = [
    0x30, 0x2f, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00,
];

/// Why a server-generated key cannot be encrypted to the requested key.
#[derive(Debug, thiserror::Error)]
pub enum RecipientError {
    /// The identifier is not the subjectKeyIdentifier of the certificate the caller's rule
    /// allows (or that certificate has none): a 4xx, the client asked for a key the server
    /// does not know.
    #[error(
        "the AsymmetricDecryptKeyIdentifier is not the subjectKeyIdentifier of {0}; the \
         server encrypts a generated key only to that key"
    )]
    UnknownIdentifier(&'static str),
    /// The recipient key is of a type the key transport is not implemented for (EC and
    /// Ed25519 keys need a KeyAgreeRecipientInfo, RFC 5753): 501.
    #[error(
        "the key identified by the AsymmetricDecryptKeyIdentifier is {0}: an encrypted \
         server-generated key is sent to RSA keys only (KeyTransRecipientInfo with RSAES-OAEP)"
    )]
    Unsupported(String),
    /// The certificate or its key does not parse.
    #[error("the recipient certificate is unusable: {0}")]
    Certificate(String),
}

/// The key an encrypted server-generated key is sent to, with the subjectKeyIdentifier
/// that names it in the `KeyTransRecipientInfo`.
#[derive(Debug)]
pub struct Recipient {
    identifier: Vec<u8>,
    key: rsa::RsaPublicKey,
}

impl Recipient {
    /// The recipient of a request whose `AsymmetricDecryptKeyIdentifier` (RFC 7030 section
    /// 4.4.1.2) is `identifier`: the key of `certificate` (DER), whose subjectKeyIdentifier
    /// extension (RFC 5280 section 4.2.1.2) must be `identifier` byte for byte; `which` names
    /// the certificate in the refusal. Only an RSA key can be a recipient.
    pub fn from_certificate(
        certificate: &[u8],
        identifier: &[u8],
        which: &'static str,
    ) -> Result<Self, RecipientError> {
        // The OIDs of the der 0.7 generation, compared by their encoding.
        let is =
            |a: &ObjectIdentifier, b: &der::asn1::ObjectIdentifier| a.as_bytes() == b.as_bytes();
        let cert = Certificate::from_der(certificate)
            .map_err(|e| RecipientError::Certificate(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let ski = tbs
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| is(&e.extn_id, &crate::oid::ID_CE_SUBJECT_KEY_IDENTIFIER))
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .ok_or(RecipientError::UnknownIdentifier(which))?;
        if ski.as_bytes() != identifier {
            return Err(RecipientError::UnknownIdentifier(which));
        }
        let algorithm = &tbs.subject_public_key_info().algorithm.oid;
        if !is(algorithm, &crate::oid::RSA_ENCRYPTION) {
            let name = if is(algorithm, &crate::oid::ID_EC_PUBLIC_KEY) {
                "an EC key".to_string()
            } else if is(algorithm, &crate::oid::ID_ED25519) {
                "an Ed25519 key".to_string()
            } else {
                format!("a key of algorithm {algorithm}")
            };
            return Err(RecipientError::Unsupported(name));
        }
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| RecipientError::Certificate(e.to_string()))?;
        let key = rsa::RsaPublicKey::from_public_key_der(&spki)
            .map_err(|e| RecipientError::Certificate(e.to_string()))?;
        Ok(Recipient {
            identifier: identifier.to_vec(),
            key,
        })
    }
}

fn encoding(e: pkcs5::der::Error) -> CaError {
    CaError::Crypto(format!("server-generated key CMS: {e}"))
}

/// The `application/pkcs7-mime; smime-type=server-generated-key` body (RFC 7030 section
/// 4.4.2), DER before base64: a `ContentInfo` of a `SignedData` signed by `signer`, the CA
/// key whose certificate is the first of `chain` (DER, all of which the SignedData carries),
/// over an `EnvelopedData` of the `AsymmetricKeyPackage` of `pkcs8` encrypted to
/// `recipient`.
pub fn server_generated_key(
    pkcs8: &[u8],
    recipient: &Recipient,
    signer: &dyn Signer,
    chain: &[Vec<u8>],
) -> Result<Vec<u8>, CaError> {
    let enveloped = envelop(pkcs8, recipient)?;
    sign(&enveloped, signer, chain)
}

/// The `EnvelopedData` (RFC 5652 section 6.1) of the `AsymmetricKeyPackage` of `pkcs8`,
/// DER: version 2 (a version 2 KeyTransRecipientInfo, section 6.1).
fn envelop(pkcs8: &[u8], recipient: &Recipient) -> Result<Vec<u8>, CaError> {
    // AsymmetricKeyPackage ::= SEQUENCE SIZE (1..MAX) OF OneAsymmetricKey (RFC 5958): the one
    // PKCS#8 key (a OneAsymmetricKey of version 1) inside a SEQUENCE.
    let mut package = Zeroizing::new(Vec::with_capacity(pkcs8.len() + 8));
    let length = Length::try_from(pkcs8.len()).map_err(encoding)?;
    Header::new(Tag::Sequence, length)
        .encode_to_vec(&mut package)
        .map_err(encoding)?;
    package.extend_from_slice(pkcs8);

    let rng = SystemRandom::new();
    let mut content_key = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 16];
    rng.fill(content_key.as_mut_slice())
        .and_then(|()| rng.fill(&mut iv))
        .map_err(|_| CaError::Crypto("no randomness for the content key".into()))?;
    let ciphertext = cbc::Encryptor::<Aes256>::new(&(*content_key).into(), &iv.into())
        .encrypt_padded_vec::<Pkcs7>(&package);
    let encrypted_key = recipient
        .key
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            content_key.as_slice(),
        )
        .map_err(|e| CaError::Crypto(format!("RSAES-OAEP: {e}")))?;

    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V2,
        rid: RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
            OctetString::new(recipient.identifier.clone()).map_err(encoding)?,
        )),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: oid::ID_RSAES_OAEP,
            parameters: Some(Any::from_der(&RSAES_OAEP_SHA256_PARAMS).map_err(encoding)?),
        },
        enc_key: OctetString::new(encrypted_key).map_err(encoding)?,
    };
    let mut infos = SetOfVec::new();
    infos.insert(RecipientInfo::Ktri(ktri)).map_err(encoding)?;
    EnvelopedData {
        version: CmsVersion::V2,
        originator_info: None,
        recip_infos: RecipientInfos(infos),
        encrypted_content: EncryptedContentInfo {
            content_type: oid::ID_CT_KP_A_KEY_PACKAGE,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: oid::ID_AES256_CBC,
                parameters: Some(
                    Any::encode_from(&OctetString::new(iv).map_err(encoding)?).map_err(encoding)?,
                ),
            },
            encrypted_content: Some(OctetString::new(ciphertext).map_err(encoding)?),
        },
        unprotected_attrs: None,
    }
    .to_der()
    .map_err(encoding)
}

/// The CMS digest algorithm of a signer's scheme and the digest of `data` with it: the hash
/// the signature algorithm itself uses (RFC 5753 section 2.1.1, RFC 4056), SHA-512 for
/// Ed25519 (RFC 8419 section 3).
fn digest(scheme: SignatureScheme, data: &[u8]) -> (ObjectIdentifier, Vec<u8>) {
    match scheme {
        SignatureScheme::EcdsaP384Sha384 => {
            (oid::ID_SHA384_08, sha2::Sha384::digest(data).to_vec())
        }
        SignatureScheme::Ed25519 => (oid::ID_SHA512_08, sha2::Sha512::digest(data).to_vec()),
        SignatureScheme::EcdsaP256Sha256
        | SignatureScheme::RsaPkcs1Sha256
        | SignatureScheme::RsaPssSha256 => (oid::ID_SHA256_08, sha2::Sha256::digest(data).to_vec()),
    }
}

/// The `ContentInfo` of a `SignedData` (RFC 5652 section 5) over `enveloped` (eContentType
/// id-envelopedData, so version 3) with one SignerInfo by issuer and serial number whose
/// signed attributes are the content type and the message digest (section 5.3, 11.1, 11.2).
fn sign(enveloped: &[u8], signer: &dyn Signer, chain: &[Vec<u8>]) -> Result<Vec<u8>, CaError> {
    let certificates = chain
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encoding)?;
    let ca = certificates
        .first()
        .ok_or_else(|| CaError::Crypto("server-generated key CMS: no CA certificate".into()))?;
    let scheme = signer.scheme();
    let (digest_oid, message_digest) = digest(scheme, enveloped);
    let digest_alg = AlgorithmIdentifierOwned {
        oid: digest_oid,
        parameters: None,
    };
    let attribute = |oid, value: Any| -> Result<Attribute, CaError> {
        let mut values = SetOfVec::new();
        values.insert(value).map_err(encoding)?;
        Ok(Attribute { oid, values })
    };
    let mut signed_attrs: Attributes = SetOfVec::new();
    signed_attrs
        .insert(attribute(
            oid::ID_CONTENT_TYPE,
            Any::encode_from(&oid::ID_ENVELOPED_DATA).map_err(encoding)?,
        )?)
        .map_err(encoding)?;
    signed_attrs
        .insert(attribute(
            oid::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(message_digest).map_err(encoding)?)
                .map_err(encoding)?,
        )?)
        .map_err(encoding)?;
    // The signature is over the DER of the attributes as a SET OF (RFC 5652 section 5.4).
    let signature = signer
        .sign(&signed_attrs.to_der().map_err(encoding)?)
        .map_err(CaError::Signing)?;
    let signature_algorithm = AlgorithmIdentifierOwned::from_der(
        &der::Encode::to_der(&crate::der_util::signature_algorithm(scheme))
            .map_err(|e| CaError::Crypto(format!("server-generated key CMS: {e}")))?,
    )
    .map_err(encoding)?;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: ca.tbs_certificate().issuer().clone(),
            serial_number: ca.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::new(signature).map_err(encoding)?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(digest_alg).map_err(encoding)?;
    let mut certs = SetOfVec::new();
    for cert in certificates {
        certs
            .insert(CertificateChoices::Certificate(cert))
            .map_err(encoding)?;
    }
    let mut signer_infos = SetOfVec::new();
    signer_infos.insert(signer_info).map_err(encoding)?;
    let signed = SignedData {
        version: CmsVersion::V3,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::ID_ENVELOPED_DATA,
            econtent: Some(
                Any::encode_from(&OctetString::new(enveloped).map_err(encoding)?)
                    .map_err(encoding)?,
            ),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signer_infos),
    };
    ContentInfo {
        content_type: oid::ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockModeDecrypt;
    use keys::{KeyAlgorithm, SoftwareKey};
    use rsa::pkcs8::EncodePrivateKey;

    /// A self-signed CA certificate for `pkcs8` (rcgen writes a subjectKeyIdentifier in a
    /// CA certificate) and its subjectKeyIdentifier.
    fn certificate(pkcs8: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::try_from(pkcs8).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ra.example".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let cert = Certificate::from_der(&der).unwrap();
        let ski = cert
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id.as_bytes() == crate::oid::ID_CE_SUBJECT_KEY_IDENTIFIER.as_bytes())
            .map(|e| OctetString::from_der(e.extn_value.as_bytes()).unwrap())
            .unwrap();
        (der, ski.as_bytes().to_vec())
    }

    fn rsa_recipient() -> (rsa::RsaPrivateKey, Vec<u8>, Vec<u8>) {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let (cert, ski) = certificate(pkcs8.as_bytes());
        (key, cert, ski)
    }

    /// A generated key sealed by [`server_generated_key`] for a new RSA recipient, with
    /// what made it.
    struct Sealed {
        recipient_key: rsa::RsaPrivateKey,
        recipient_cert: Vec<u8>,
        ski: Vec<u8>,
        ca_cert: Vec<u8>,
        signer: SoftwareKey,
        generated: Zeroizing<Vec<u8>>,
        der: Vec<u8>,
    }

    /// A P-256 CA seals a new key of `generated` type for a new RSA recipient.
    fn sealed(generated: KeyAlgorithm) -> Sealed {
        let (recipient_key, recipient_cert, ski) = rsa_recipient();
        let recipient = Recipient::from_certificate(&recipient_cert, &ski, "the test").unwrap();
        let ca_pkcs8 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (ca_cert, _) = certificate(&ca_pkcs8);
        let signer = SoftwareKey::from_pkcs8(&ca_pkcs8).unwrap();
        let generated = keys::generate_pkcs8(generated).unwrap();
        let der = server_generated_key(
            &generated,
            &recipient,
            &signer,
            std::slice::from_ref(&ca_cert),
        )
        .unwrap();
        Sealed {
            recipient_key,
            recipient_cert,
            ski,
            ca_cert,
            signer,
            generated,
            der,
        }
    }

    #[test]
    fn the_key_is_signed_by_the_ca_and_decrypts_with_the_recipient_key() {
        let Sealed {
            recipient_key,
            signer,
            generated,
            der,
            ski,
            ..
        } = sealed(KeyAlgorithm::EcdsaP384);

        // The SignedData: over an EnvelopedData, one signer, the CA's certificate.
        let info = ContentInfo::from_der(&der).unwrap();
        assert_eq!(info.content_type, oid::ID_SIGNED_DATA);
        let signed: SignedData = info.content.decode_as().unwrap();
        assert_eq!(signed.version, CmsVersion::V3);
        assert_eq!(
            signed.encap_content_info.econtent_type,
            oid::ID_ENVELOPED_DATA
        );
        assert_eq!(signed.certificates.as_ref().unwrap().0.len(), 1);
        let enveloped_der = signed
            .encap_content_info
            .econtent
            .as_ref()
            .unwrap()
            .decode_as::<OctetString>()
            .unwrap()
            .into_bytes();
        let signer_info = signed.signer_infos.0.get(0).unwrap();
        assert_eq!(signer_info.digest_alg.oid, oid::ID_SHA256_08);
        let attrs = signer_info.signed_attrs.as_ref().unwrap();
        let digest = attrs
            .iter()
            .find(|a| a.oid == oid::ID_MESSAGE_DIGEST)
            .unwrap()
            .values
            .get(0)
            .unwrap()
            .decode_as::<OctetString>()
            .unwrap();
        assert_eq!(
            digest.as_bytes(),
            sha2::Sha256::digest(&enveloped_der).as_slice()
        );
        let ca_spki = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            signer.public_key_bits(),
        );
        ca_spki
            .verify(&attrs.to_der().unwrap(), signer_info.signature.as_bytes())
            .expect("the CA's signature over the signed attributes verifies");

        // The EnvelopedData: to the recipient's subjectKeyIdentifier, with RSAES-OAEP.
        let enveloped = EnvelopedData::from_der(&enveloped_der).unwrap();
        assert_eq!(enveloped.version, CmsVersion::V2);
        let ktri = match enveloped.recip_infos.0.get(0) {
            Some(RecipientInfo::Ktri(ktri)) => ktri,
            other => unreachable!("a KeyTransRecipientInfo, not {other:?}"),
        };
        assert_eq!(
            ktri.rid,
            RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
                OctetString::new(ski).unwrap()
            ))
        );
        assert_eq!(ktri.key_enc_alg.oid, oid::ID_RSAES_OAEP);
        let content_key = recipient_key
            .decrypt(rsa::Oaep::new::<sha2::Sha256>(), ktri.enc_key.as_bytes())
            .expect("the content key decrypts with the recipient's key");
        let content = &enveloped.encrypted_content;
        assert_eq!(content.content_type, oid::ID_CT_KP_A_KEY_PACKAGE);
        assert_eq!(content.content_enc_alg.oid, oid::ID_AES256_CBC);
        let iv = content
            .content_enc_alg
            .parameters
            .as_ref()
            .unwrap()
            .decode_as::<OctetString>()
            .unwrap();
        let plain = cbc::Decryptor::<Aes256>::new_from_slices(&content_key, iv.as_bytes())
            .unwrap()
            .decrypt_padded_vec::<Pkcs7>(content.encrypted_content.as_ref().unwrap().as_bytes())
            .unwrap();
        // AsymmetricKeyPackage: a SEQUENCE OF holding the generated PKCS#8 key.
        let package: Vec<Any> = Vec::from_der(&plain).unwrap();
        assert_eq!(package.len(), 1);
        assert_eq!(package[0].to_der().unwrap(), generated.as_slice());
    }

    /// OpenSSL 3 (`openssl cms`) verifies the SignedData to the CA and decrypts the
    /// EnvelopedData with the recipient's key, as RFC 7030 clients do.
    #[test]
    fn openssl_verifies_and_decrypts_it() {
        use std::process::Command;
        let Sealed {
            recipient_key,
            recipient_cert,
            ca_cert,
            generated,
            der,
            ..
        } = sealed(KeyAlgorithm::EcdsaP256);

        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path.to_str().unwrap().to_string()
        };
        let pem = |label: &str, der: &[u8]| pem::encode(&pem::Pem::new(label, der.to_vec()));
        let ca = file("ca.pem", pem("CERTIFICATE", &ca_cert).as_bytes());
        let cert = file(
            "recipient.pem",
            pem("CERTIFICATE", &recipient_cert).as_bytes(),
        );
        let key = file(
            "recipient.key",
            pem(
                "PRIVATE KEY",
                recipient_key.to_pkcs8_der().unwrap().as_bytes(),
            )
            .as_bytes(),
        );
        let signed = file("signed.der", &der);
        let enveloped = dir.path().join("enveloped.der");
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            &signed,
            "-CAfile",
            &ca,
            "-purpose",
            "any",
            "-binary",
            "-out",
            enveloped.to_str().unwrap(),
        ]);
        let content_info = ContentInfo {
            content_type: oid::ID_ENVELOPED_DATA,
            content: Any::from_der(&std::fs::read(&enveloped).unwrap()).unwrap(),
        };
        let envelope = file("envelope.der", &content_info.to_der().unwrap());
        let package = dir.path().join("package.der");
        run(&[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            &envelope,
            "-recip",
            &cert,
            "-inkey",
            &key,
            "-binary",
            "-out",
            package.to_str().unwrap(),
        ]);
        let keys: Vec<Any> = Vec::from_der(&std::fs::read(&package).unwrap()).unwrap();
        assert_eq!(keys[0].to_der().unwrap(), generated.as_slice());
    }

    #[test]
    fn other_identifiers_and_non_rsa_recipients_are_refused() {
        let (_, recipient_cert, ski) = rsa_recipient();
        let other = [ski.as_slice(), b"x"].concat();
        assert!(matches!(
            Recipient::from_certificate(&recipient_cert, &other, "the test"),
            Err(RecipientError::UnknownIdentifier("the test"))
        ));
        let ec = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let (ec_cert, ec_ski) = certificate(&ec);
        assert!(matches!(
            Recipient::from_certificate(&ec_cert, &ec_ski, "the test"),
            Err(RecipientError::Unsupported(name)) if name == "an EC key"
        ));
        assert!(matches!(
            Recipient::from_certificate(b"\x30\x00", &ec_ski, "the test"),
            Err(RecipientError::Certificate(_))
        ));
    }

    #[test]
    fn the_oaep_parameters_are_sha256_and_mgf1_sha256() {
        let params = Any::from_der(&RSAES_OAEP_SHA256_PARAMS).unwrap();
        assert_eq!(params.to_der().unwrap(), RSAES_OAEP_SHA256_PARAMS);
        let der = RSAES_OAEP_SHA256_PARAMS;
        // hashFunc [0] sha256, maskGenFunc [1] mgf1(sha256), the default pSourceFunc.
        assert_eq!(&der[6..8], &[0x06, 0x09]);
        assert_eq!(&der[8..17], oid::ID_SHA256_08.as_bytes());
        assert_eq!(&der[38..47], oid::ID_SHA256_08.as_bytes());
    }
}
