//! A CMP client of the tests' own, on RustCrypto's typed structures (`cmpv2`, `crmf`), for
//! what OpenSSL 3.0's `openssl cmp` cannot send: PBMAC1 protection (RFC 9481 section 6.1.1)
//! and the general messages added after 3.0 (RFC 9483 section 4.3: rootCaCert,
//! certReqTemplate, crlStatusList). Its key derivation, MAC and DER of the parameters are
//! its own (ring's PBKDF2 and HMAC, hand-written TLVs), not the server's.

use cmpv2::body::PkiBody;
use cmpv2::gen::InfoTypeAndValue;
use cmpv2::header::{PkiHeader, Pvno};
use cmpv2::message::{PkiMessage, ProtectedPart};
use cmpv2::status::CertStatus;
use crmf::pop::{PopoSigningKey, ProofOfPossession};
use crmf::request::{CertReqMsg, CertRequest, CertTemplate};
use der::asn1::{BitString, Int, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tagged};
use ring::rand::SecureRandom;
use ring::signature::KeyPair;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::Certificate;

/// id-PBMAC1, id-PBKDF2, hmacWithSHA256 (RFC 8018 appendix B).
const PBMAC1: &str = "1.2.840.113549.1.5.14";
const PBKDF2: &str = "1.2.840.113549.1.5.12";
const HMAC_SHA256: &str = "1.2.840.113549.2.9";

/// The general message info types of RFC 9483 section 4.3.
pub mod info {
    /// id-it-caCerts.
    pub const CA_CERTS: &str = "1.3.6.1.5.5.7.4.17";
    /// id-it-rootCaKeyUpdate.
    pub const ROOT_CA_KEY_UPDATE: &str = "1.3.6.1.5.5.7.4.18";
    /// id-it-certReqTemplate.
    pub const CERT_REQ_TEMPLATE: &str = "1.3.6.1.5.5.7.4.19";
    /// id-it-rootCaCert.
    pub const ROOT_CA_CERT: &str = "1.3.6.1.5.5.7.4.20";
    /// id-it-crlStatusList.
    pub const CRL_STATUS_LIST: &str = "1.3.6.1.5.5.7.4.22";
    /// id-it-crls.
    pub const CRLS: &str = "1.3.6.1.5.5.7.4.23";
}

fn oid(text: &str) -> ObjectIdentifier {
    ObjectIdentifier::new(text).expect("an OID")
}

/// A DER TLV with a one-byte tag.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// PBMAC1 protection with PBKDF2-HMAC-SHA256 and HMAC-SHA256 (RFC 9481 section 6.1.1).
pub struct Pbmac1 {
    /// The salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
}

impl Pbmac1 {
    /// The protectionAlg: id-PBMAC1 with PBMAC1-params { id-PBKDF2 { salt, iterations,
    /// keyLength 32, hmacWithSHA256 }, hmacWithSHA256 }, DER written out by hand.
    pub fn algorithm(&self) -> AlgorithmIdentifierOwned {
        let hmac = [tlv(0x06, oid(HMAC_SHA256).as_bytes()), vec![0x05, 0x00]].concat();
        let hmac = tlv(0x30, &hmac);
        let kdf_params = [
            tlv(0x04, &self.salt),
            self.iterations.to_der().expect("an INTEGER"),
            32u32.to_der().expect("an INTEGER"),
            hmac.clone(),
        ]
        .concat();
        let kdf = tlv(
            0x30,
            &[tlv(0x06, oid(PBKDF2).as_bytes()), tlv(0x30, &kdf_params)].concat(),
        );
        let params = tlv(0x30, &[kdf, hmac].concat());
        AlgorithmIdentifierOwned {
            oid: oid(PBMAC1),
            parameters: Some(der::Any::from_der(&params).expect("DER")),
        }
    }

    /// HMAC-SHA256 of `data` under PBKDF2-HMAC-SHA256(`secret`).
    pub fn mac(&self, secret: &[u8], data: &[u8]) -> Vec<u8> {
        let mut key = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(self.iterations).expect("iterations > 0"),
            &self.salt,
            secret,
            &mut key,
        );
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key), data)
            .as_ref()
            .to_vec()
    }
}

/// An EC P-256 key pair of the client's.
pub struct ClientKey {
    pair: ring::signature::EcdsaKeyPair,
}

impl ClientKey {
    /// A fresh one.
    pub fn generate() -> ClientKey {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("keygen");
        ClientKey {
            pair: ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
                .expect("the key just made"),
        }
    }

    /// Its SubjectPublicKeyInfo (id-ecPublicKey, prime256v1).
    pub fn spki(&self) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: oid("1.2.840.10045.2.1"),
                parameters: Some(der::Any::from(oid("1.2.840.10045.3.1.7"))),
            },
            subject_public_key: BitString::from_bytes(self.pair.public_key().as_ref())
                .expect("a BIT STRING"),
        }
    }

    /// An ECDSA-SHA256 signature of `data`, DER.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&ring::rand::SystemRandom::new(), data)
            .expect("signing")
            .as_ref()
            .to_vec()
    }
}

/// `count` random bytes.
pub fn random(count: usize) -> Vec<u8> {
    let mut out = vec![0u8; count];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("random bytes");
    out
}

/// A request: header fields the tests vary, and the body.
pub struct Request<'a> {
    /// The body.
    pub body: PkiBody<'a>,
    /// senderKID (an enrollment id for MAC protection).
    pub sender_kid: Option<Vec<u8>>,
    /// The transactionID.
    pub transaction: Vec<u8>,
}

/// The DER of `request`, protected by `mac` under `secret` (unprotected when `None`).
pub fn encode(request: Request<'_>, mac: Option<(&Pbmac1, &[u8])>) -> Vec<u8> {
    let header = PkiHeader {
        pvno: Pvno::Cmp2000,
        sender: GeneralName::DirectoryName(Name::default()),
        recipient: GeneralName::DirectoryName(Name::default()),
        message_time: None,
        protection_alg: mac.map(|(m, _)| m.algorithm()),
        sender_kid: request
            .sender_kid
            .map(|k| OctetString::new(k).expect("an OCTET STRING")),
        recip_kid: None,
        trans_id: Some(OctetString::new(request.transaction).expect("an OCTET STRING")),
        sender_nonce: Some(OctetString::new(random(16)).expect("an OCTET STRING")),
        recip_nonce: None,
        free_text: None,
        general_info: None,
    };
    let protection = mac.map(|(m, secret)| {
        let part = ProtectedPart {
            header: header.clone(),
            body: request.body.clone(),
        }
        .to_der()
        .expect("ProtectedPart DER");
        BitString::from_bytes(&m.mac(secret, &part)).expect("a BIT STRING")
    });
    PkiMessage {
        header,
        body: request.body,
        protection,
        extra_certs: None,
    }
    .to_der()
    .expect("PKIMessage DER")
}

/// An `ir` for `key` with a signature POP (RFC 4211 section 4.1, no poposkInput).
pub fn ir_body(key: &ClientKey) -> PkiBody<'static> {
    let cert_req = CertRequest {
        cert_req_id: Int::new(&[0]).expect("an INTEGER"),
        cert_template: CertTemplate {
            version: None,
            serial_number: None,
            signature: None,
            issuer: None,
            validity: None,
            subject: None,
            subject_public_key_info: Some(key.spki()),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        },
        controls: None,
    };
    let signature = key.sign(&cert_req.to_der().expect("CertRequest DER"));
    PkiBody::Ir(vec![CertReqMsg {
        cert_req,
        popo: Some(ProofOfPossession::Signature(Box::new(PopoSigningKey {
            poposk_input: None,
            alg_id: AlgorithmIdentifierOwned {
                oid: oid("1.2.840.10045.4.3.2"),
                parameters: None,
            },
            signature: BitString::from_bytes(&signature).expect("a BIT STRING"),
        }))),
        reg_info: None,
    }])
}

/// A `certConf` accepting `certificate` (certHash SHA-256: the CA signs with ECDSA-SHA256).
pub fn cert_conf_body(certificate: &[u8]) -> PkiBody<'static> {
    use sha2::Digest;
    PkiBody::CertConf(vec![CertStatus {
        cert_hash: OctetString::new(sha2::Sha256::digest(certificate).to_vec())
            .expect("an OCTET STRING"),
        cert_req_id: Int::new(&[0]).expect("an INTEGER"),
        status_info: None,
    }])
}

/// A `genm` asking for these info types, with these values (DER).
pub fn genm_body(asked: &[(&str, Option<Vec<u8>>)]) -> PkiBody<'static> {
    PkiBody::GenM(
        asked
            .iter()
            .map(|(info, value)| InfoTypeAndValue {
                oid: oid(info),
                value: value
                    .as_ref()
                    .map(|v| der::Any::from_der(v).expect("DER value")),
            })
            .collect(),
    )
}

/// A crlStatusList's value (RFC 9483 section 4.3.4): one CRLStatus naming the CRL by the URI
/// of its distribution point ([0] EXPLICIT DistributionPointName, whose fullName is [0]
/// IMPLICIT GeneralNames), with its thisUpdate as UTCTime when given ("YYMMDDHHMMSSZ").
pub fn crl_status_list(uri: &str, this_update: Option<&str>) -> Vec<u8> {
    let full_name = tlv(0xa0, &tlv(0x86, uri.as_bytes()));
    let mut status = tlv(0xa0, &full_name);
    if let Some(t) = this_update {
        status.extend(tlv(0x17, t.as_bytes()));
    }
    tlv(0x30, &tlv(0x30, &status))
}

/// A decoded answer.
pub struct Answer {
    /// Its DER.
    pub der: Vec<u8>,
}

impl Answer {
    /// The message.
    pub fn message(&self) -> PkiMessage<'_> {
        PkiMessage::from_der(&self.der).expect("the answer is a DER PKIMessage")
    }

    /// Whether its protection is PBMAC1 with `mac`'s parameters and verifies under `secret`.
    pub fn mac_verifies(&self, mac: &Pbmac1, secret: &[u8]) -> bool {
        let message = self.message();
        let Some(algorithm) = &message.header.protection_alg else {
            return false;
        };
        let part = ProtectedPart {
            header: message.header.clone(),
            body: message.body.clone(),
        }
        .to_der()
        .expect("ProtectedPart DER");
        *algorithm == mac.algorithm()
            && message
                .protection
                .as_ref()
                .is_some_and(|p| p.raw_bytes() == mac.mac(secret, &part).as_slice())
    }

    /// Whether its protection is an ECDSA-SHA256 signature by `ca`'s key.
    pub fn signed_by(&self, ca: &Certificate) -> bool {
        let message = self.message();
        let part = ProtectedPart {
            header: message.header.clone(),
            body: message.body.clone(),
        }
        .to_der()
        .expect("ProtectedPart DER");
        let key = ca
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        message.header.protection_alg.as_ref().map(|a| a.oid) == Some(oid("1.2.840.10045.4.3.2"))
            && message.protection.as_ref().is_some_and(|p| {
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_ASN1,
                    key,
                )
                .verify(&part, p.raw_bytes())
                .is_ok()
            })
    }

    /// The certificate of an `ip`, `cp` or `kup` answer, DER.
    pub fn certificate(&self) -> Option<Vec<u8>> {
        let message = self.message();
        let (PkiBody::Ip(rep) | PkiBody::Cp(rep) | PkiBody::Kup(rep)) = &message.body else {
            return None;
        };
        let pair = rep.response.first()?.certified_key_pair.as_ref()?;
        match &pair.cert_or_enc_cert {
            cmpv2::certified_key_pair::CertOrEncCert::Certificate(c) => c.to_der().ok(),
            _ => None,
        }
    }

    /// The PKIFailureInfo bits of an `error` answer (bit numbers, RFC 9810 section 5.2.3).
    pub fn failure_bits(&self) -> Vec<usize> {
        let message = self.message();
        let PkiBody::Error(error) = &message.body else {
            return Vec::new();
        };
        // ErrorMsgContent ::= SEQUENCE { PKIStatusInfo, ... }; PKIStatusInfo ::= SEQUENCE {
        // status, statusString OPTIONAL, failInfo BIT STRING OPTIONAL }: the BIT STRING
        // read off the DER, since `cmpv2` keeps these fields private.
        let der = error.to_der().expect("DER");
        let content: Vec<der::Any> =
            Vec::<der::Any>::from_der(&der).expect("ErrorMsgContent is a SEQUENCE");
        let status_info = content.first().expect("PKIStatusInfo");
        let fields: Vec<der::Any> =
            Vec::<der::Any>::from_der(&status_info.to_der().expect("DER")).expect("a SEQUENCE");
        let Some(bits) = fields
            .iter()
            .find(|f| f.tag() == der::Tag::BitString)
            .and_then(|f| BitString::from_der(&f.to_der().ok()?).ok())
        else {
            return Vec::new();
        };
        bits.bits()
            .enumerate()
            .filter(|(_, set)| *set)
            .map(|(i, _)| i)
            .collect()
    }

    /// The InfoTypeAndValues of a `genp`: each info type with its value's DER.
    pub fn general(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let message = self.message();
        let PkiBody::GenP(infos) = &message.body else {
            return Vec::new();
        };
        infos
            .iter()
            .map(|i| {
                (
                    i.oid.to_string(),
                    i.value.as_ref().and_then(|v| v.to_der().ok()),
                )
            })
            .collect()
    }
}

/// POSTs `der` to `url` as `application/pkixcmp`: the answer, which must be HTTP 200.
pub fn send(url: &str, der: Vec<u8>) -> Answer {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/pkixcmp")
        .body(der)
        .send()
        .expect("the CMP request is sent");
    assert_eq!(r.status(), 200, "CMP over HTTP answers 200");
    Answer {
        der: r.bytes().expect("the answer's body").to_vec(),
    }
}
