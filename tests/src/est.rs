//! EST (RFC 7030) as a device speaks it: curl for HTTP over TLS and openssl for requests,
//! certs-only answers and keys, against a server with the CA's own TLS certificate and
//! `[est] enabled = true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::binary::ca_server_ok;
use crate::command::{openssl, output_within, COMMAND_DEADLINE};
use crate::data_dir::configure;
use crate::judges::certificates::CaCert;
use crate::server::Server;
use crate::unique;

/// The name the CA's TLS certificate is for; curl resolves it to the loopback port.
pub const EST_HOST: &str = "ca.test.example";

/// Turns TLS on in `dir` with the CA's own server certificate for [`EST_HOST`], and EST on
/// with `tls-client` as its default profile and `personal` as a labelled one, plus `toml`.
pub fn est_on(dir: &Path, toml: &str) {
    ca_server_ok(&[
        "tls-cert",
        "--data-dir",
        dir.to_str().unwrap(),
        "--name",
        EST_HOST,
        "--name",
        "127.0.0.1",
    ]);
    configure(
        dir,
        &[
            ("[est]\nenabled = false", "[est]\nenabled = true"),
            (
                "profile = \"tls-client\"\nprofiles = []",
                "profile = \"tls-client\"\nprofiles = [\"personal\"]",
            ),
        ],
        toml,
    );
}

/// One curl exchange: the status, the response headers (lower-case names) and the body.
#[derive(Debug)]
pub struct Curl {
    /// The HTTP status (0 when curl failed to connect).
    pub status: u16,
    /// The response head as curl wrote it, lower-cased.
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Curl {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim().to_string())
        })
    }
}

/// curl over TLS to `path` of `s` as [`EST_HOST`], trusting only the CA (`--cacert`), with
/// `extra` arguments.
pub fn curl(s: &Server, path: &str, extra: &[&str]) -> Curl {
    let port = s.base.rsplit(':').next().unwrap();
    let head = s.scratch().join(format!("head-{}", unique()));
    let out = output_within(
        Command::new("curl")
            .args(["-s", "-m", "60", "-o", "-", "-w", "%{http_code}", "-D"])
            .arg(&head)
            .arg("--cacert")
            .arg(s.dir.join("ca.pem"))
            .args(["--resolve", &format!("{EST_HOST}:{port}:127.0.0.1")])
            .args(extra)
            .arg(format!("https://{EST_HOST}:{port}{path}")),
        COMMAND_DEADLINE,
    );
    let mut body = out.stdout;
    let status_at = body.len().saturating_sub(3);
    let status = String::from_utf8_lossy(&body[status_at..])
        .parse()
        .unwrap_or(0);
    body.truncate(status_at);
    let headers = std::fs::read_to_string(&head)
        .unwrap_or_default()
        .to_ascii_lowercase();
    Curl {
        status,
        headers,
        body,
    }
}

/// A JSON API call over TLS with curl and a bearer token: (status, JSON body or Null).
pub fn curl_json(
    s: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let bearer = format!("Authorization: Bearer {token}");
    let mut args = vec!["-X", method, "-H", &bearer];
    let text = body.map(Value::to_string);
    if let Some(text) = &text {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            text,
        ]);
    }
    let r = curl(s, path, &args);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// Creates an enrolment with the RA token through the JSON API: (id, code).
pub fn create_enrolment(s: &Server, body: &Value) -> (String, String) {
    let (status, json) = curl_json(s, "POST", "/v1/enrollments", &s.tokens.ra, Some(body));
    assert_eq!(status, 201, "POST /v1/enrollments: {json}");
    (
        json["id"].as_str().expect("id").to_string(),
        json["code"].as_str().expect("code").to_string(),
    )
}

/// `openssl req -new` for `key` and `subj` (and `extra` arguments), written as an EST body:
/// base64 of the DER request, by `openssl base64`.
pub fn est_csr(dir: &Path, key: &Path, subj: &str, extra: &[&str]) -> PathBuf {
    let der = dir.join(format!("csr-{}.der", unique()));
    let b64 = der.with_extension("b64");
    let mut args = vec![
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        subj,
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ];
    args.extend(extra);
    openssl(&args);
    openssl(&[
        "base64",
        "-in",
        der.to_str().unwrap(),
        "-out",
        b64.to_str().unwrap(),
    ]);
    b64
}

/// The certificates of a base64 certs-only answer, as `openssl base64 -d | openssl pkcs7
/// -inform DER -print_certs` prints them (PEM with subject and issuer lines), written to a
/// PEM file of the certificates alone: (text, file).
pub fn print_certs(dir: &Path, body: &[u8]) -> (String, PathBuf) {
    let der = base64_part_to_der(dir, body);
    let pem = der.with_extension("pem");
    let text = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-print_certs",
        "-out",
        pem.to_str().unwrap(),
    ]);
    let text = text + &std::fs::read_to_string(&pem).unwrap();
    // The certificates alone (no subject and issuer lines), for pkilint.
    let blocks: String = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter_map(|b| b.find("-----BEGIN CERTIFICATE-----").map(|at| &b[at..]))
        .map(|b| format!("{b}\n"))
        .collect();
    std::fs::write(&pem, blocks).unwrap();
    (text, pem)
}

/// The CA of `s` as its data directory holds it (`ca.pem`): the JSON client of the harness
/// does not speak TLS to the CA's own certificate.
pub fn est_ca(s: &Server) -> CaCert {
    let pem = std::fs::read_to_string(s.dir.join("ca.pem")).unwrap();
    CaCert::from_pem(&pem, s.scratch())
}

/// A certificate file's subject (`openssl x509 -noout -subject`), serial and public key
/// (PEM).
pub fn subject_serial_key(cert: &Path) -> (String, String, String) {
    let path = cert.to_str().unwrap();
    let subject = openssl(&[
        "x509", "-in", path, "-noout", "-subject", "-nameopt", "RFC2253",
    ]);
    let serial = openssl(&["x509", "-in", path, "-noout", "-serial"]);
    let key = openssl(&["x509", "-in", path, "-noout", "-pubkey"]);
    (
        subject.trim().trim_start_matches("subject=").to_string(),
        serial
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase(),
        key,
    )
}

/// Which key-encryption attribute a `serverkeygen` request carries (RFC 7030 section 4.4.1).
#[derive(Clone, Copy, Debug)]
pub enum DecryptKeyId<'a> {
    /// `AsymmetricDecryptKeyIdentifier` (id-aa-asymmDecryptKeyID, section 4.4.1.2).
    Asymmetric(&'a [u8]),
    /// `DecryptKeyIdentifier` (id-aa-decryptKeyID, section 4.4.1.1).
    Symmetric(&'a [u8]),
}

/// An EST body (base64 DER) of a PKCS#10 request for `cn` with a fresh P-256 key, signed,
/// carrying `attribute`: built here because `openssl req` cannot add these attributes.
pub fn csr_with_decrypt_key_id(dir: &Path, cn: &str, attribute: DecryptKeyId<'_>) -> PathBuf {
    use der::asn1::{Any, BitString, ObjectIdentifier, OctetString, SetOfVec};
    use der::Encode;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use std::str::FromStr;
    use x509_cert::request::{CertReq, CertReqInfo, Version};

    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let oid = |s| ObjectIdentifier::new_unwrap(s);
    let (attribute_oid, identifier) = match attribute {
        DecryptKeyId::Asymmetric(id) => (oid("1.2.840.113549.1.9.16.2.54"), id),
        DecryptKeyId::Symmetric(id) => (oid("1.2.840.113549.1.9.16.2.37"), id),
    };
    let mut values = SetOfVec::new();
    values
        .insert(Any::encode_from(&OctetString::new(identifier).unwrap()).unwrap())
        .unwrap();
    let mut attributes = SetOfVec::new();
    attributes
        .insert(x509_cert::attr::Attribute {
            oid: attribute_oid,
            values,
        })
        .unwrap();
    let info = CertReqInfo {
        version: Version::V1,
        subject: x509_cert::name::Name::from_str(&format!("CN={cn}")).unwrap(),
        public_key: spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: oid("1.2.840.10045.2.1"),
                parameters: Some(Any::encode_from(&oid("1.2.840.10045.3.1.7")).unwrap()),
            },
            subject_public_key: BitString::from_bytes(key.public_key().as_ref()).unwrap(),
        },
        attributes,
    };
    let signature = key.sign(&rng, &info.to_der().unwrap()).unwrap();
    let request = CertReq {
        info,
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: oid("1.2.840.10045.4.3.2"),
            parameters: None,
        },
        signature: BitString::from_bytes(signature.as_ref()).unwrap(),
    };
    let b64 = dir.join(format!("csr-{}.b64", unique()));
    std::fs::write(&b64, base64_lines(&request.to_der().unwrap())).unwrap();
    b64
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
        .collect()
}

/// The subjectKeyIdentifier of a PEM certificate file, as `openssl x509 -ext` prints it.
pub fn subject_key_identifier(cert: &Path) -> Vec<u8> {
    let text = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectKeyIdentifier",
    ]);
    let hex_text: String = text
        .lines()
        .nth(1)
        .expect("a subjectKeyIdentifier")
        .trim()
        .replace(':', "");
    hex::decode(hex_text).unwrap()
}

/// The parts of a `multipart/mixed` `serverkeygen` answer (RFC 7030 section 4.4.2): each
/// part's headers (lower case) and base64 body, in order.
pub fn multipart_parts(r: &Curl) -> Vec<(String, String)> {
    let content_type = r.header("content-type").expect("a content type");
    assert!(
        content_type.starts_with("multipart/mixed"),
        "{content_type}"
    );
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a boundary")
        .to_string();
    let text = r.text();
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 4, "two parts and the end: {text}");
    assert!(parts[3].starts_with("--"), "the closing boundary: {text}");
    parts[1..3]
        .iter()
        .map(|p| {
            let (head, body) = p.split_once("\r\n\r\n").expect("part headers");
            (head.to_ascii_lowercase(), body.to_string())
        })
        .collect()
}

/// Decodes a base64 part to a DER file in `dir` with `openssl base64 -d`.
pub fn base64_part_to_der(dir: &Path, body: impl AsRef<[u8]>) -> PathBuf {
    let b64 = dir.join(format!("part-{}.b64", unique()));
    let der = b64.with_extension("der");
    std::fs::write(&b64, body).unwrap();
    openssl(&[
        "base64",
        "-d",
        "-in",
        b64.to_str().unwrap(),
        "-out",
        der.to_str().unwrap(),
    ]);
    der
}

/// `openssl pkey -pubout` of a DER private key file (PKCS#8).
pub fn der_key_public(key_der: &Path) -> String {
    openssl(&[
        "pkey",
        "-inform",
        "DER",
        "-in",
        key_der.to_str().unwrap(),
        "-pubout",
    ])
}

/// The audit log's entries made through EST (`details.protocol` is `est`), oldest first, as
/// (action, actor) pairs.
pub fn est_audit(s: &Server) -> Vec<(Value, Value)> {
    let (_, audit) = curl_json(s, "GET", "/v1/audit?limit=1000", &s.tokens.auditor, None);
    audit["items"]
        .as_array()
        .expect("the audit page lists items")
        .iter()
        .filter(|e| e["details"]["protocol"] == "est")
        .map(|e| (e["action"].clone(), e["actor"].clone()))
        .collect()
}
