//! A CMP client of the tests' own, on RustCrypto's typed structures (`cmpv2`, `crmf`), for
//! what OpenSSL 3.0's `openssl cmp` cannot send: PBMAC1 protection (RFC 9481 section 6.1.1),
//! the general messages added after 3.0 (RFC 9483 section 4.3: rootCaCert,
//! certReqTemplate, crlStatusList), cmp2021 messages (pvno 3, CertStatus.hashAlg, RFC 9810
//! section 5.3.18) and chosen transactionIDs and certHashes. Its key derivation, MAC,
//! signatures and DER of what `cmpv2` 0.2 cannot write (pvno 3, hashAlg) are its own (ring,
//! hand-written TLVs), not the server's.

use cmpv2::body::PkiBody;
use cmpv2::gen::InfoTypeAndValue;
use cmpv2::header::{PkiHeader, Pvno};
use cmpv2::message::PkiMessage;
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
    /// The key of a PKCS#8 PEM file (`openssl req -newkey ec -nodes -keyout`).
    pub fn from_pem_file(path: &std::path::Path) -> ClientKey {
        let pem = std::fs::read_to_string(path).expect("reading the key");
        let [(label, der)] = &crate::formats::pem_blocks(&pem)[..] else {
            panic!("one PEM block in {}", path.display());
        };
        assert_eq!(label, "PRIVATE KEY", "a PKCS#8 key");
        let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        ClientKey {
            pair: ring::signature::EcdsaKeyPair::from_pkcs8(
                alg,
                der,
                &ring::rand::SystemRandom::new(),
            )
            .expect("an EC P-256 PKCS#8 key"),
        }
    }

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
pub struct Request {
    /// The body, DER.
    pub body: Vec<u8>,
    /// senderKID (an enrollment id for MAC protection).
    pub sender_kid: Option<Vec<u8>>,
    /// The transactionID.
    pub transaction: Vec<u8>,
}

/// The DER of `request` (pvno 2), protected by `mac` under `secret` (unprotected when
/// `None`).
pub fn encode(request: Request, mac: Option<(&Pbmac1, &[u8])>) -> Vec<u8> {
    encode_pvno(request, 2, mac)
}

/// [`encode`] with pvno `pvno`.
pub fn encode_pvno(request: Request, pvno: u8, mac: Option<(&Pbmac1, &[u8])>) -> Vec<u8> {
    let algorithm = mac.map(|(m, _)| m.algorithm());
    assemble(
        request,
        pvno,
        algorithm,
        |part| mac.map(|(m, secret)| m.mac(secret, part)),
        Vec::new(),
    )
}

/// The DER of `request` with pvno `pvno`, signed (ecdsa-with-SHA256) by `key`, whose
/// certificate `certificate` (DER) is the first of extraCerts (RFC 9483 section 3.2).
pub fn encode_signed(request: Request, pvno: u8, key: &ClientKey, certificate: &[u8]) -> Vec<u8> {
    let algorithm = AlgorithmIdentifierOwned {
        oid: oid("1.2.840.10045.4.3.2"),
        parameters: None,
    };
    assemble(
        request,
        pvno,
        Some(algorithm),
        |part| Some(key.sign(part)),
        certificate.to_vec(),
    )
}

/// A PKIMessage written out: the header (`cmpv2`'s, its pvno INTEGER rewritten), the body,
/// protection over ProtectedPart, extraCerts.
fn assemble(
    request: Request,
    pvno: u8,
    algorithm: Option<AlgorithmIdentifierOwned>,
    protect: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    extra_certs: Vec<u8>,
) -> Vec<u8> {
    let header = PkiHeader {
        pvno: Pvno::Cmp2000,
        sender: GeneralName::DirectoryName(Name::default()),
        recipient: GeneralName::DirectoryName(Name::default()),
        message_time: None,
        protection_alg: algorithm,
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
    let mut header = header.to_der().expect("PKIHeader DER");
    // PKIHeader ::= SEQUENCE { pvno INTEGER, ...: the INTEGER's one content byte.
    let at = if header[1] < 0x80 {
        2
    } else {
        2 + usize::from(header[1] & 0x7f)
    };
    assert_eq!(header[at..at + 2], [0x02, 0x01], "pvno opens the header");
    header[at + 2] = pvno;
    let part = tlv_long(0x30, &[header.clone(), request.body.clone()].concat());
    let mut content = [header, request.body].concat();
    if let Some(protection) = protect(&part) {
        let bits = BitString::from_bytes(&protection).expect("a BIT STRING");
        content.extend(tlv_long(0xa0, &bits.to_der().expect("DER")));
    }
    if !extra_certs.is_empty() {
        content.extend(tlv_long(0xa1, &tlv_long(0x30, &extra_certs)));
    }
    tlv_long(0x30, &content)
}

/// A DER TLV with a one-byte tag, of any length.
fn tlv_long(tag: u8, content: &[u8]) -> Vec<u8> {
    if content.len() < 0x10000 {
        return tlv(tag, content);
    }
    let n = content.len();
    [
        vec![tag, 0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8],
        content.to_vec(),
    ]
    .concat()
}

/// An `ir` for `key` with a signature POP (RFC 4211 section 4.1, no poposkInput), DER.
pub fn ir_body(key: &ClientKey) -> Vec<u8> {
    certificate_body(key, PkiBody::Ir, None)
}

/// An `ir` as an RA sends it: [`ir_body`] with `subject` (RFC 4514) in the template.
pub fn ra_ir_body(key: &ClientKey, subject: &str) -> Vec<u8> {
    let name = std::str::FromStr::from_str(subject).expect("an RFC 4514 name");
    certificate_body(key, PkiBody::Ir, Some(name))
}

/// A `kur` for `key` with a signature POP, as [`ir_body`], DER.
pub fn kur_body(key: &ClientKey) -> Vec<u8> {
    certificate_body(key, PkiBody::KUr, None)
}

fn certificate_body(
    key: &ClientKey,
    kind: fn(Vec<CertReqMsg>) -> PkiBody<'static>,
    subject: Option<Name>,
) -> Vec<u8> {
    let cert_req = CertRequest {
        cert_req_id: Int::new(&[0]).expect("an INTEGER"),
        cert_template: CertTemplate {
            version: None,
            serial_number: None,
            signature: None,
            issuer: None,
            validity: None,
            subject,
            subject_public_key_info: Some(key.spki()),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        },
        controls: None,
    };
    let signature = key.sign(&cert_req.to_der().expect("CertRequest DER"));
    kind(vec![CertReqMsg {
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
    .to_der()
    .expect("body DER")
}

/// A `certConf` accepting `certificate` (certHash SHA-256: the CA signs with ECDSA-SHA256).
pub fn cert_conf_body(certificate: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    PkiBody::CertConf(vec![CertStatus {
        cert_hash: OctetString::new(sha2::Sha256::digest(certificate).to_vec())
            .expect("an OCTET STRING"),
        cert_req_id: Int::new(&[0]).expect("an INTEGER"),
        status_info: None,
    }])
    .to_der()
    .expect("body DER")
}

/// A `certConf` with one CertStatus written out (RFC 9810 section 5.3.18): `cert_hash`,
/// certReqId 0, status rejection when `rejected` (else none: accepted), and the cmp2021
/// field hashAlg ([0] EXPLICIT AlgorithmIdentifier, parameters absent) when given.
pub fn cert_status_body(cert_hash: &[u8], hash_alg: Option<&str>, rejected: bool) -> Vec<u8> {
    let mut status = [tlv(0x04, cert_hash), vec![0x02, 0x01, 0x00]].concat();
    if rejected {
        // PKIStatusInfo { status rejection (2) }.
        status.extend(tlv(0x30, &[0x02, 0x01, 0x02]));
    }
    if let Some(alg) = hash_alg {
        status.extend(tlv(0xa0, &tlv(0x30, &tlv(0x06, oid(alg).as_bytes()))));
    }
    tlv(0xb8, &tlv(0x30, &tlv(0x30, &status)))
}

/// A `genm` asking for these info types, with these values (DER).
pub fn genm_body(asked: &[(&str, Option<Vec<u8>>)]) -> Vec<u8> {
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
    .to_der()
    .expect("body DER")
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

/// Where the pvno's value byte of a DER PKIMessage is.
fn pvno_at(der: &[u8]) -> usize {
    let content = |at: usize| {
        if der[at + 1] < 0x80 {
            at + 2
        } else {
            at + 2 + usize::from(der[at + 1] & 0x7f)
        }
    };
    let at = content(content(0));
    assert_eq!(der[at..at + 2], [0x02, 0x01], "pvno opens the header");
    at + 2
}

/// The DER of ProtectedPart as a PKIMessage carries it: its header and body, as they are.
fn protected_part(der: &[u8]) -> Vec<u8> {
    use der::Reader;
    let outer = der::asn1::AnyRef::from_der(der).expect("a SEQUENCE");
    let mut fields = der::SliceReader::new(outer.value()).expect("DER");
    let header = fields.tlv_bytes().expect("a header");
    let body = fields.tlv_bytes().expect("a body");
    tlv_long(0x30, &[header, body].concat())
}

/// A decoded answer.
pub struct Answer {
    /// Its DER.
    pub der: Vec<u8>,
    /// Its DER with pvno 2, as `cmpv2` reads it.
    typed: Vec<u8>,
}

impl Answer {
    /// The message (a pvno 3 answer read as pvno 2: [`Answer::pvno`] tells).
    pub fn message(&self) -> PkiMessage<'_> {
        PkiMessage::from_der(&self.typed).expect("the answer is a DER PKIMessage")
    }

    /// The answer's pvno.
    pub fn pvno(&self) -> u8 {
        self.der[pvno_at(&self.der)]
    }

    /// Whether its protection is PBMAC1 with `mac`'s parameters and verifies under `secret`.
    pub fn mac_verifies(&self, mac: &Pbmac1, secret: &[u8]) -> bool {
        let message = self.message();
        let Some(algorithm) = &message.header.protection_alg else {
            return false;
        };
        let part = protected_part(&self.der);
        *algorithm == mac.algorithm()
            && message
                .protection
                .as_ref()
                .is_some_and(|p| p.raw_bytes() == mac.mac(secret, &part).as_slice())
    }

    /// Whether its protection is an ECDSA-SHA256 signature by `ca`'s key.
    pub fn signed_by(&self, ca: &Certificate) -> bool {
        let message = self.message();
        let part = protected_part(&self.der);
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
    /// Read off the DER: `cmpv2` 0.2 keeps PKIStatusInfo's fields private and decodes
    /// failInfo into 16 bits, so it cannot read an answer with a bit above 15
    /// (`transactionIdInUse`, `unsupportedVersion`, `notAuthorized`, ...).
    pub fn failure_bits(&self) -> Vec<usize> {
        let sequence =
            |der: &[u8]| -> Vec<der::Any> { Vec::<der::Any>::from_der(der).expect("a SEQUENCE") };
        // PKIMessage ::= SEQUENCE { header, body [23] ErrorMsgContent (for `error`), ... }
        let message = sequence(&self.der);
        let body = message.get(1).expect("a body");
        if body.tag()
            != (der::Tag::ContextSpecific {
                constructed: true,
                number: der::TagNumber::new(23),
            })
        {
            return Vec::new();
        }
        // ErrorMsgContent ::= SEQUENCE { PKIStatusInfo, ... }; PKIStatusInfo ::= SEQUENCE {
        // status, statusString OPTIONAL, failInfo BIT STRING OPTIONAL }.
        let content = sequence(body.value());
        let status_info = content.first().expect("PKIStatusInfo");
        let fields = sequence(&status_info.to_der().expect("DER"));
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
    let der = r.bytes().expect("the answer's body").to_vec();
    let mut typed = der.clone();
    let at = pvno_at(&typed);
    typed[at] = 2;
    Answer { der, typed }
}
