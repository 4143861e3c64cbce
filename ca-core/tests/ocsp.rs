//! The OCSP responder, judged by the OpenSSL command line: requests are made by
//! `openssl ocsp -reqout`, responses are verified by `openssl ocsp -respin`; signed by the CA
//! and by a delegated responder (RFC 6960 section 4.2.2.2).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ca_core::armor::to_pem;
use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::csr::{AttributeKind, SubjectAttribute, SubjectKey, SubjectKeyType};
use ca_core::name::parse_rfc4514;
use ca_core::ocsp::{
    check_responder_certificate, decode_get_request, issue_responder_certificate, CertStatus,
    OcspCache, OcspResponder, ResponderValidity, SignatureKind, MALFORMED_REQUEST, MAX_CERT_IDS,
    MAX_RESPONDER_VALIDITY_DAYS, TRY_LATER,
};
use ca_core::profile::{Profile, ValidatedRequest};
use ca_core::revocation::{Revocation, RevocationReason};
use ca_core::{CaError, Serial};
use der::{Decode, Encode};
use keys::SystemRandom;
use keys::{KeyAlgorithm, Signer, SoftwareKey};
use time::{Duration, OffsetDateTime};
use x509_ocsp::{BasicOcspResponse, OcspRequest, OcspResponse, OcspResponseStatus, ResponderId};
use x509_parser::extensions::ParsedExtension;

const VALIDITY: Duration = Duration::hours(4);

/// A CA with one issued leaf, both written as PEM into a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    signer: Arc<dyn Signer>,
    ca_der: Vec<u8>,
    leaf_serial: Serial,
}

impl Fixture {
    fn new(algorithm: KeyAlgorithm) -> Fixture {
        Fixture::named(algorithm, "CN=OCSP Test CA,O=Example")
    }

    fn named(algorithm: KeyAlgorithm, subject: &str) -> Fixture {
        let rng = SystemRandom::new();
        let pkcs8 = keys::generate_pkcs8(algorithm).unwrap();
        let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&pkcs8).unwrap());
        let subject = parse_rfc4514(subject).unwrap();
        let ca_der =
            create_root(signer.clone(), &subject, 365, Serial::random(&rng).unwrap()).unwrap();
        let ca = CertificateAuthority::new(
            signer.clone(),
            vec![ca_der.clone()],
            &Profile::builtin(),
            &Urls::default(),
        )
        .unwrap();

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["leaf.example.com".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).unwrap();
        let verified = ca_core::csr::parse_and_verify(csr.der()).unwrap();
        let validated = ca
            .profile("tls-server")
            .unwrap()
            .validate(
                "tls-server",
                verified,
                &Default::default(),
                Some(30),
                time::OffsetDateTime::now_utc().unix_timestamp(),
            )
            .unwrap();
        let leaf_serial = Serial::random(&rng).unwrap();
        let leaf = ca
            .sign(
                "tls-server",
                leaf_serial,
                &validated,
                OffsetDateTime::now_utc(),
            )
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), to_pem("CERTIFICATE", &ca_der)).unwrap();
        std::fs::write(
            dir.path().join("leaf.pem"),
            to_pem("CERTIFICATE", &leaf.der),
        )
        .unwrap();
        Fixture {
            dir,
            signer,
            ca_der,
            leaf_serial,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn responder(&self) -> OcspResponder {
        OcspResponder::new(self.signer.clone(), &self.ca_der, VALIDITY).unwrap()
    }

    /// A delegated responder's new ECDSA P-256 key and its certificate from this CA, valid
    /// 30 days; the certificate is also written to `name`.
    fn delegate(&self, name: &str) -> (Arc<dyn Signer>, Vec<u8>) {
        let pkcs8 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
        let key: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&pkcs8).unwrap());
        let cert = issue_responder_certificate(
            self.signer.clone(),
            &self.ca_der,
            key.as_ref(),
            30,
            Serial::random(&SystemRandom::new()).unwrap(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        std::fs::write(self.path(name), to_pem("CERTIFICATE", &cert)).unwrap();
        (key, cert)
    }

    /// A responder that signs with a new delegate (its certificate in `ocsp.pem`).
    fn delegated_responder(&self) -> (OcspResponder, Arc<dyn Signer>, Vec<u8>) {
        let (key, cert) = self.delegate("ocsp.pem");
        let responder = OcspResponder::delegated(&self.ca_der, key.clone(), &cert, VALIDITY);
        (responder.unwrap(), key, cert)
    }

    /// `openssl x509 -noout -ocspid -in <name>`: the SHA-1 of the certificate's public key.
    fn ocsp_key_hash(&self, name: &str) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-ocspid", "-in", name])
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("Public key OCSP hash:"))
            .unwrap_or_else(|| panic!("{text}"));
        line.trim_start_matches("Public key OCSP hash:")
            .trim()
            .replace(':', "")
            .to_lowercase()
    }

    /// `openssl ocsp <args> -reqout <name>`, returning the request's DER.
    fn request(&self, name: &str, args: &[&str]) -> Vec<u8> {
        let mut all: Vec<&str> = args.to_vec();
        let out = self.path(name);
        all.extend(["-reqout", out.to_str().unwrap()]);
        let (ok, text) = openssl(self.dir.path(), &all);
        assert!(ok, "openssl ocsp failed to make a request: {text}");
        std::fs::read(out).unwrap()
    }

    /// Writes a response and runs `openssl ocsp -respin` on it with `args`.
    fn check(&self, response: &[u8], args: &[&str]) -> (bool, String) {
        std::fs::write(self.path("resp.der"), response).unwrap();
        let mut all = vec!["-respin", "resp.der"];
        all.extend_from_slice(args);
        openssl(self.dir.path(), &all)
    }
}

impl Fixture {
    /// Verifies a response against the request in `request` (`-reqin`), so that OpenSSL
    /// checks the nonce; asserts success and no nonce complaint and returns the response text.
    /// (`-cert` would make OpenSSL build a new request, with a new nonce.)
    fn check_with_request(&self, response: &[u8], request: &str) -> String {
        let (ok, text) = self.check(
            response,
            &[
                "-reqin",
                request,
                "-issuer",
                "ca.pem",
                "-CAfile",
                "ca.pem",
                "-resp_text",
            ],
        );
        assert!(ok, "{text}");
        assert!(text.contains("Response verify OK"), "{text}");
        assert!(!text.contains("Nonce Verify error"), "{text}");
        assert!(!text.contains("WARNING"), "{text}");
        text
    }
}

/// Runs `openssl ocsp` in `dir`; success and stdout + stderr.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("ocsp")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line is needed for these tests");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn parse(response: &[u8]) -> (OcspResponseStatus, Option<BasicOcspResponse>) {
    let resp = OcspResponse::from_der(response).unwrap();
    let basic = resp
        .response_bytes
        .map(|b| BasicOcspResponse::from_der(b.response.as_bytes()).unwrap());
    (resp.response_status, basic)
}

fn revoked(reason: RevocationReason) -> CertStatus {
    CertStatus::Revoked {
        revoked_at: OffsetDateTime::now_utc() - Duration::hours(1),
        reason,
        invalidity_date: None,
    }
}

fn random_serial_hex() -> String {
    Serial::random(&SystemRandom::new()).unwrap().to_hex()
}

/// good (with a nonce that OpenSSL checks), revoked and unknown, for each kind of CA key.
/// `openssl ocsp -respin` arguments that check a response for leaf.pem against the CA.
/// `-no_nonce`: with `-cert`, OpenSSL builds a request of its own, whose nonce would differ.
const VERIFY: [&str; 7] = [
    "-issuer",
    "ca.pem",
    "-CAfile",
    "ca.pem",
    "-cert",
    "leaf.pem",
    "-no_nonce",
];

/// Has `responder` answer good (to a request with OpenSSL's nonce), revoked (keyCompromise)
/// and unknown, and has OpenSSL verify each against the CA; a response with one bit flipped
/// in its signature must fail. Returns the good response.
fn answers_verify_in_openssl(
    f: &Fixture,
    responder: &OcspResponder,
    algorithm: KeyAlgorithm,
) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    let req = f.request("req.der", &["-issuer", "ca.pem", "-cert", "leaf.pem"]);
    let looked_up = Cell::new(None);
    let good = responder.respond(&req, now, |s| {
        looked_up.set(Some(*s));
        Ok(CertStatus::Good)
    });
    assert_eq!(looked_up.get(), Some(f.leaf_serial), "{algorithm}");
    let (ok, text) = f.check(&good, &VERIFY);
    assert!(ok, "{algorithm}: {text}");
    assert!(text.contains("Response verify OK"), "{algorithm}: {text}");
    assert!(text.contains("leaf.pem: good"), "{algorithm}: {text}");
    assert!(!text.contains("WARNING"), "{algorithm}: {text}");
    let text = f.check_with_request(&good, "req.der");
    assert!(text.contains("OCSP Nonce"), "{algorithm}: {text}");
    assert!(text.contains("Cert Status: good"), "{algorithm}: {text}");

    // The signature is really checked: the last octet of the response is the signature's.
    let mut tampered = good.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let (ok, text) = f.check(&tampered, &VERIFY);
    assert!(
        !ok && !text.contains("Response verify OK"),
        "{algorithm}: {text}"
    );
    assert!(
        text.contains("Response Verify Failure"),
        "{algorithm}: {text}"
    );

    // revoked, keyCompromise, without a nonce.
    let req = f.request(
        "req.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    let resp = responder.respond(&req, now, |_| Ok(revoked(RevocationReason::KeyCompromise)));
    let (ok, text) = f.check(&resp, &VERIFY);
    assert!(ok, "{algorithm}: {text}");
    assert!(text.contains("Response verify OK"), "{algorithm}: {text}");
    assert!(text.contains("leaf.pem: revoked"), "{algorithm}: {text}");
    assert!(
        text.contains("Reason: keyCompromise"),
        "{algorithm}: {text}"
    );
    assert!(text.contains("Revocation Time:"), "{algorithm}: {text}");

    // unknown: the lookup says the serial was never issued.
    let resp = responder.respond(&req, now, |_| Ok(CertStatus::Unknown));
    let (ok, text) = f.check(&resp, &VERIFY);
    assert!(ok, "{algorithm}: {text}");
    assert!(text.contains("Response verify OK"), "{algorithm}: {text}");
    assert!(text.contains("leaf.pem: unknown"), "{algorithm}: {text}");
    good
}

fn statuses_verify_in_openssl(algorithm: KeyAlgorithm) {
    let f = Fixture::new(algorithm);
    answers_verify_in_openssl(&f, &f.responder(), algorithm);
}

#[test]
fn ocsp_ec_p256_responses_verify_in_openssl() {
    statuses_verify_in_openssl(KeyAlgorithm::EcdsaP256);
}

#[test]
fn ocsp_ed25519_responses_verify_in_openssl() {
    statuses_verify_in_openssl(KeyAlgorithm::Ed25519);
}

#[test]
fn ocsp_rsa_3072_responses_verify_in_openssl() {
    statuses_verify_in_openssl(KeyAlgorithm::Rsa3072);
}

#[test]
fn ocsp_ec_p384_responses_verify_in_openssl() {
    statuses_verify_in_openssl(KeyAlgorithm::EcdsaP384);
}

#[test]
fn ocsp_several_cert_ids_sha256_and_foreign_serials() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let responder = f.responder();
    let now = OffsetDateTime::now_utc();
    let unknown = random_serial_hex();
    let not_ours = "0x0102"; // cannot be a serial of this CA: never looked up.
    let req = f.request(
        "req.der",
        &[
            "-sha256",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-serial",
            &format!("0x{unknown}"),
            "-serial",
            not_ours,
        ],
    );
    let lookups = Cell::new(0);
    let resp = responder.respond(&req, now, |s| {
        lookups.set(lookups.get() + 1);
        if *s == f.leaf_serial {
            Ok(revoked(RevocationReason::CertificateHold))
        } else {
            Ok(CertStatus::Unknown)
        }
    });
    assert_eq!(lookups.get(), 2);
    let (ok, text) = f.check(
        &resp,
        &[
            "-no_nonce",
            "-CAfile",
            "ca.pem",
            "-sha256",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-serial",
            &format!("0x{unknown}"),
            "-serial",
            not_ours,
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("leaf.pem: revoked"), "{text}");
    assert!(text.contains("Reason: certificateHold"), "{text}");
    assert!(text.contains(&format!("0x{unknown}: unknown")), "{text}");
    assert!(text.contains(&format!("{not_ours}: unknown")), "{text}");
    let text = f.check_with_request(&resp, "req.der");
    assert_eq!(text.matches("Cert Status: unknown").count(), 2, "{text}");

    let (status, basic) = parse(&resp);
    assert_eq!(status, OcspResponseStatus::Successful);
    let basic = basic.unwrap();
    let tbs = &basic.tbs_response_data;
    assert_eq!(tbs.responses.len(), 3);
    let request = OcspRequest::from_der(&req).unwrap();
    for (single, asked) in tbs.responses.iter().zip(&request.tbs_request.request_list) {
        assert_eq!(
            single.cert_id, asked.req_cert,
            "the CertID is repeated as asked"
        );
    }
    assert!(basic.certs.is_none());
}

#[test]
fn ocsp_unspecified_revocations_carry_no_reason() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let req = f.request(
        "req.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    let resp = f.responder().respond(&req, OffsetDateTime::now_utc(), |_| {
        Ok(revoked(RevocationReason::Unspecified))
    });
    let (ok, text) = f.check(
        &resp,
        &[
            "-issuer", "ca.pem", "-CAfile", "ca.pem", "-cert", "leaf.pem",
        ],
    );
    assert!(ok && text.contains("Response verify OK"), "{text}");
    assert!(text.contains("leaf.pem: revoked"), "{text}");
    assert!(!text.contains("Reason:"), "{text}");
}

#[test]
fn ocsp_another_issuers_cert_ids_are_unknown_and_never_looked_up() {
    let ours = Fixture::new(KeyAlgorithm::EcdsaP256);
    // Same subject, another key: the name hash matches, the key hash does not.
    let twin = Fixture::named(KeyAlgorithm::EcdsaP256, "CN=OCSP Test CA,O=Example");
    let req = twin.request(
        "req.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    let resp = ours
        .responder()
        .respond(&req, OffsetDateTime::now_utc(), |s| {
            panic!("looked up {s} of another issuer")
        });
    let (status, basic) = parse(&resp);
    assert_eq!(status, OcspResponseStatus::Successful);
    let tbs = basic.unwrap().tbs_response_data;
    assert_eq!(tbs.responses.len(), 1);
    assert_eq!(
        tbs.responses[0].cert_status,
        x509_ocsp::CertStatus::unknown()
    );
}

#[test]
fn ocsp_response_fields_follow_rfc_6960_and_5019() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let req = f.request("req.der", &["-issuer", "ca.pem", "-cert", "leaf.pem"]);
    let now = OffsetDateTime::now_utc();
    let resp = f.responder().respond(&req, now, |_| Ok(CertStatus::Good));
    let (_, basic) = parse(&resp);
    let basic = basic.unwrap();
    let tbs = &basic.tbs_response_data;

    // producedAt = thisUpdate = now (whole seconds); nextUpdate = now + validity.
    let secs = |t: &x509_ocsp::OcspGeneralizedTime| t.0.to_unix_duration().as_secs() as i64;
    assert_eq!(secs(&tbs.produced_at), now.unix_timestamp());
    let single = &tbs.responses[0];
    assert_eq!(secs(&single.this_update), now.unix_timestamp());
    assert_eq!(
        secs(single.next_update.as_ref().unwrap()),
        (now + VALIDITY).unix_timestamp()
    );

    // The nonce is echoed byte for byte.
    let request = OcspRequest::from_der(&req).unwrap();
    assert_eq!(basic.nonce().unwrap(), request.nonce().unwrap());

    // responderID byKey is the CA's public key hash as `openssl x509 -ocspid` computes it.
    let ResponderId::ByKey(key_hash) = &tbs.responder_id else {
        panic!("responderID byName")
    };
    assert_eq!(hex::encode(key_hash.as_bytes()), f.ocsp_key_hash("ca.pem"));
    // Signed by the CA itself: no certificates.
    assert!(basic.certs.is_none());
    assert!(f.responder().responder_certificate().is_none());

    // ECDSA P-256 signs with ecdsa-with-SHA256 and no parameters (RFC 5758 section 3.2).
    assert_eq!(
        basic.signature_algorithm.oid.to_string(),
        "1.2.840.10045.4.3.2"
    );
    assert!(basic.signature_algorithm.parameters.is_none());
}

#[test]
fn ocsp_nonces_are_checked_by_openssl() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let responder = f.responder();
    let now = OffsetDateTime::now_utc();
    let a = f.request("a.der", &["-issuer", "ca.pem", "-cert", "leaf.pem"]);
    f.request("b.der", &["-issuer", "ca.pem", "-cert", "leaf.pem"]);
    let resp_a = responder.respond(&a, now, |_| Ok(CertStatus::Good));
    f.check_with_request(&resp_a, "a.der");

    // The same response against another request's nonce: OpenSSL must object, which shows
    // that the check above is real.
    let against_b = ["-reqin", "b.der", "-issuer", "ca.pem", "-CAfile", "ca.pem"];
    let (_, text) = f.check(&resp_a, &against_b);
    assert!(text.contains("Nonce Verify error"), "{text}");

    // Nonces of 1 to 128 octets are echoed (RFC 9654 section 2.1, which obsoletes RFC 8954's
    // 32): OpenSSL checks the 128-octet one without a warning.
    let with_nonce = |name: &str, len: usize| {
        let mut request = OcspRequest::from_der(&a).unwrap();
        let ext = &mut request.tbs_request.request_extensions.as_mut().unwrap()[0];
        ext.extn_value = der::asn1::OctetString::new(
            der::asn1::OctetString::new(vec![7u8; len])
                .unwrap()
                .to_der()
                .unwrap(),
        )
        .unwrap();
        let der = request.to_der().unwrap();
        std::fs::write(f.path(name), &der).unwrap();
        der
    };
    for len in [1, 33, 128] {
        let name = format!("nonce-{len}.der");
        let request = with_nonce(&name, len);
        let resp = responder.respond(&request, now, |_| Ok(CertStatus::Good));
        let basic = parse(&resp).1.unwrap();
        assert_eq!(
            basic.nonce().map(|n| n.0.as_bytes().len()),
            Some(len),
            "a nonce of {len} octets is echoed"
        );
        let text = f.check_with_request(&resp, &name);
        assert!(text.contains("Cert Status: good"), "{text}");
    }
    // Shorter than 1 or longer than 128 octets: malformedRequest (RFC 9654 section 2.1).
    for len in [0, 129, 1000] {
        let request = with_nonce(&format!("nonce-{len}.der"), len);
        let resp = responder.respond(&request, now, |_| Ok(CertStatus::Good));
        assert_eq!(
            parse(&resp).0,
            OcspResponseStatus::MalformedRequest,
            "a nonce of {len} octets"
        );
    }
}

#[test]
fn ocsp_bad_input_gets_malformed_request_and_lookup_failure_internal_error() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let responder = f.responder();
    let now = OffsetDateTime::now_utc();
    let never = |s: &Serial| -> Result<CertStatus, CaError> { panic!("looked up {s}") };

    let req = f.request(
        "req.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    let mut truncated = req.clone();
    truncated.pop();
    let mut trailing = req.clone();
    trailing.push(0);
    let huge = vec![0x30; 70 * 1024];
    for garbage in [
        &b""[..],
        b"\x30\x00",
        b"hello, OCSP",
        &truncated,
        &trailing,
        &huge,
        &f.ca_der, // a certificate is not a request
    ] {
        let resp = responder.respond(garbage, now, never);
        assert_eq!(parse(&resp), (OcspResponseStatus::MalformedRequest, None));
        let (_, text) = f.check(&resp, &["-resp_text"]);
        assert!(text.contains("malformedrequest"), "{text}");
    }

    // MAX_CERT_IDS CertIDs are answered; one more is refused.
    let mut many = OcspRequest::from_der(&req).unwrap();
    let one = many.tbs_request.request_list[0].clone();
    many.tbs_request.request_list = vec![one.clone(); MAX_CERT_IDS];
    let resp = responder.respond(&many.to_der().unwrap(), now, |_| Ok(CertStatus::Good));
    let (status, basic) = parse(&resp);
    assert_eq!(status, OcspResponseStatus::Successful);
    assert_eq!(
        basic.unwrap().tbs_response_data.responses.len(),
        MAX_CERT_IDS
    );
    many.tbs_request.request_list.push(one.clone());
    let resp = responder.respond(&many.to_der().unwrap(), now, never);
    assert_eq!(parse(&resp).0, OcspResponseStatus::MalformedRequest);
    many.tbs_request.request_list.clear();
    let resp = responder.respond(&many.to_der().unwrap(), now, never);
    assert_eq!(parse(&resp).0, OcspResponseStatus::MalformedRequest);

    // An unknown critical extension cannot be ignored (RFC 6960 section 4.4).
    let mut critical = OcspRequest::from_der(&req).unwrap();
    critical.tbs_request.request_extensions = Some(vec![x509_cert::ext::Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.2.3.4"),
        critical: true,
        extn_value: der::asn1::OctetString::new(vec![5, 0]).unwrap(),
    }]);
    let resp = responder.respond(&critical.to_der().unwrap(), now, never);
    assert_eq!(parse(&resp).0, OcspResponseStatus::MalformedRequest);
    // Non-critical, it is ignored.
    critical.tbs_request.request_extensions.as_mut().unwrap()[0].critical = false;
    let resp = responder.respond(&critical.to_der().unwrap(), now, |_| Ok(CertStatus::Good));
    assert_eq!(parse(&resp).0, OcspResponseStatus::Successful);

    // Times out of GeneralizedTime's or OffsetDateTime's range are an internal error, not a
    // panic.
    let end_of_time = time::macros::datetime!(9999-12-31 23:00 UTC);
    let resp = responder.respond(&req, end_of_time, |_| Ok(CertStatus::Good));
    assert_eq!(parse(&resp), (OcspResponseStatus::InternalError, None));
    // A stored revocation time GeneralizedTime cannot carry does not make the answer
    // unbuildable: the certificate is still answered revoked, as of thisUpdate.
    let resp = responder.respond(&req, now, |_| {
        Ok(CertStatus::Revoked {
            revoked_at: time::macros::datetime!(1900-01-01 0:00 UTC),
            reason: RevocationReason::Superseded,
            invalidity_date: None,
        })
    });
    let (status, basic) = parse(&resp);
    assert_eq!(status, OcspResponseStatus::Successful);
    let single = &basic.unwrap().tbs_response_data.responses[0];
    match &single.cert_status {
        x509_ocsp::CertStatus::Revoked(info) => {
            assert_eq!(info.revocation_time, single.this_update)
        }
        other => panic!("expected revoked, got {other:?}"),
    }

    // The store failing is the responder's fault.
    let resp = responder.respond(&req, now, |_| Err(CaError::Storage("disk on fire".into())));
    assert_eq!(parse(&resp), (OcspResponseStatus::InternalError, None));
    let (_, text) = f.check(&resp, &["-resp_text"]);
    assert!(text.contains("internalerror"), "{text}");
}

#[test]
fn ocsp_get_paths_decode_to_the_request() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    // Try requests until one's base64 has '+', '/' and '=', so the escapes matter.
    let (req, b64) = (0..200)
        .find_map(|i| {
            let name = format!("req{i}.der");
            // A second CertID of 1 to 3 octets varies the length, the nonce the content.
            let extra = format!("0x{}", &random_serial_hex()[..2 * (1 + i % 3)]);
            let req = f.request(
                &name,
                &["-issuer", "ca.pem", "-cert", "leaf.pem", "-serial", &extra],
            );
            let out = Command::new("openssl")
                .args(["base64", "-A", "-in", &name])
                .current_dir(f.dir.path())
                .output()
                .unwrap();
            let b64 = String::from_utf8(out.stdout).unwrap().trim().to_string();
            (b64.contains('+') && b64.contains('/') && b64.contains('=')).then_some((req, b64))
        })
        .expect("no request with + / and = in its base64");
    let escaped = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let lower = b64
        .replace('+', "%2b")
        .replace('/', "%2f")
        .replace('=', "%3d");
    for path in [&b64, &escaped, &lower, &format!("/{escaped}")] {
        assert_eq!(decode_get_request(path).unwrap(), req, "{path}");
    }
    assert_eq!(decode_get_request(b64.trim_end_matches('=')).unwrap(), req);
    let resp = f.responder().respond(
        &decode_get_request(&escaped).unwrap(),
        OffsetDateTime::now_utc(),
        |_| Ok(CertStatus::Good),
    );
    assert_eq!(parse(&resp).0, OcspResponseStatus::Successful);

    for garbage in [
        "",
        "%",
        "%2",
        "%zz",
        "not base64!",
        "MEUw-_",
        &"A".repeat(200_000),
    ] {
        assert!(decode_get_request(garbage).is_err(), "{garbage}");
    }
}

#[test]
fn ocsp_rfc_5019_responses_are_cached_until_invalidated() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let cache = Arc::new(OcspCache::new(100));
    let responder = f.responder().with_cache(cache.clone());
    let now = OffsetDateTime::now_utc();
    let lookups = Cell::new(0);
    let status = Cell::new(CertStatus::Good);
    let lookup = |_: &Serial| {
        lookups.set(lookups.get() + 1);
        Ok(status.get())
    };

    let sha1 = f.request(
        "req.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    let first = responder.respond(&sha1, now, lookup);
    assert_eq!(lookups.get(), 1);
    let again = responder.respond(&sha1, now + Duration::minutes(5), lookup);
    assert_eq!(lookups.get(), 1, "served from the cache");
    assert_eq!(first, again);
    assert_eq!(cache.len(), 1);

    // A SHA-256 CertID gets its own response, which OpenSSL matches.
    let sha256 = f.request(
        "req256.der",
        &[
            "-sha256",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
        ],
    );
    let resp = responder.respond(&sha256, now, lookup);
    assert_eq!(lookups.get(), 2);
    let (ok, text) = f.check(
        &resp,
        &[
            "-CAfile", "ca.pem", "-sha256", "-issuer", "ca.pem", "-cert", "leaf.pem",
        ],
    );
    assert!(ok && text.contains("leaf.pem: good"), "{text}");
    assert_eq!(responder.respond(&sha256, now, lookup), resp);
    assert_eq!(lookups.get(), 2);

    // Requests with a nonce are never cached.
    let nonced = f.request("n.der", &["-issuer", "ca.pem", "-cert", "leaf.pem"]);
    responder.respond(&nonced, now, lookup);
    responder.respond(&nonced, now, lookup);
    assert_eq!(lookups.get(), 4);

    // Revocation: invalidated, the next answer is revoked and verifies.
    status.set(revoked(RevocationReason::KeyCompromise));
    cache.invalidate(&f.leaf_serial);
    assert!(cache.is_empty());
    let resp = responder.respond(&sha1, now, lookup);
    assert_eq!(lookups.get(), 5);
    let (ok, text) = f.check(
        &resp,
        &[
            "-CAfile", "ca.pem", "-issuer", "ca.pem", "-cert", "leaf.pem",
        ],
    );
    assert!(ok && text.contains("leaf.pem: revoked"), "{text}");

    // Stale after half the validity.
    responder.respond(&sha1, now + VALIDITY / 2 - Duration::seconds(1), lookup);
    assert_eq!(lookups.get(), 5);
    responder.respond(&sha1, now + VALIDITY / 2, lookup);
    assert_eq!(lookups.get(), 6);

    // A revocation landing between the lookup and the store keeps the old answer out.
    cache.clear();
    let racing = |s: &Serial| {
        lookups.set(lookups.get() + 1);
        cache.invalidate(s);
        Ok(CertStatus::Good)
    };
    responder.respond(&sha1, now, racing);
    assert!(cache.is_empty());

    // Unknown serials are not cached: the certificate may be about to be stored.
    let unknown = f.request(
        "u.der",
        &[
            "-issuer",
            "ca.pem",
            "-serial",
            &format!("0x{}", random_serial_hex()),
            "-no_nonce",
        ],
    );
    responder.respond(&unknown, now, |_| Ok(CertStatus::Unknown));
    assert!(cache.is_empty());
}

/// Signatures on demand (a nonce, several CertIDs, an unknown serial) ask the budget; over
/// it, a request for one known certificate is answered without its nonce (from the cache, or
/// signed once into it), anything else gets tryLater.
#[test]
fn ocsp_signatures_on_demand_ask_the_budget() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let cache = Arc::new(OcspCache::new(100));
    let responder = f.responder().with_cache(cache.clone());
    let now = OffsetDateTime::now_utc();
    let good = |_: &Serial| Ok(CertStatus::Good);
    let nonced = f.request("n.der", &["-issuer", "ca.pem", "-cert", "leaf.pem"]);
    let plain = f.request(
        "p.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    let several = f.request(
        "s.der",
        &[
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-serial",
            "0x01",
            "-no_nonce",
        ],
    );
    let asked = Cell::new(0);
    let allow = |yes: bool| {
        let asked = &asked;
        move || {
            asked.set(asked.get() + 1);
            yes
        }
    };

    // Within the budget: the nonce is echoed, on demand.
    let a = responder.respond_within(&nonced, now, good, allow(true));
    assert_eq!(a.signature, Some(SignatureKind::OnDemand));
    assert!(!a.nonce_ignored && parse(&a.der).1.unwrap().nonce().is_some());
    assert_eq!((asked.get(), cache.len()), (1, 0));

    // Over it: signed once for the cache, without the nonce; then from the cache.
    let b = responder.respond_within(&nonced, now, good, allow(false));
    assert_eq!(b.signature, Some(SignatureKind::CacheFill));
    assert!(b.nonce_ignored && parse(&b.der).1.unwrap().nonce().is_none());
    assert_eq!((asked.get(), cache.len()), (2, 1));
    let c = responder.respond_within(&nonced, now, good, allow(false));
    assert_eq!((c.signature, c.nonce_ignored), (None, true));
    assert_eq!(c.der, b.der);
    let (ok, text) = f.check(
        &c.der,
        &[
            "-CAfile", "ca.pem", "-issuer", "ca.pem", "-cert", "leaf.pem",
        ],
    );
    assert!(ok && text.contains("leaf.pem: good"), "{text}");

    // An RFC 5019 request never asks: the cache answers.
    let d = responder.respond_within(&plain, now, good, allow(false));
    assert_eq!((d.signature, d.der), (None, b.der));
    assert_eq!(asked.get(), 3);

    // Several CertIDs, or an unknown serial, over the budget: tryLater, no signature.
    for (request, lookup_status) in [(&several, CertStatus::Good), (&plain, CertStatus::Unknown)] {
        cache.clear();
        let e = responder.respond_within(request, now, |_| Ok(lookup_status), allow(false));
        assert_eq!(e.der, TRY_LATER.to_vec());
        assert_eq!(parse(&e.der).0, OcspResponseStatus::TryLater);
        assert_eq!(e.signature, None);
    }
    // Within the budget they are signed on demand and not cached.
    let g = responder.respond_within(&several, now, good, allow(true));
    assert_eq!(g.signature, Some(SignatureKind::OnDemand));
    assert!(cache.is_empty());
    // Malformed input never asks.
    let before = asked.get();
    let h = responder.respond_within(b"junk", now, good, allow(true));
    assert_eq!(
        (h.der.as_slice(), asked.get()),
        (&MALFORMED_REQUEST[..], before)
    );
}

#[test]
fn ocsp_the_cache_stays_bounded() {
    let f = Fixture::new(KeyAlgorithm::Ed25519);
    let cache = Arc::new(OcspCache::new(8));
    let responder = f.responder().with_cache(cache.clone());
    let now = OffsetDateTime::now_utc();
    for i in 0..40 {
        let req = f.request(
            &format!("r{i}.der"),
            &[
                "-issuer",
                "ca.pem",
                "-serial",
                &format!("0x{}", random_serial_hex()),
                "-no_nonce",
            ],
        );
        responder.respond(&req, now, |_| Ok(CertStatus::Good));
        assert!(cache.len() <= 8);
    }
    assert!(!cache.is_empty());
}

#[test]
fn ocsp_construction_checks_key_and_validity() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let other = Fixture::new(KeyAlgorithm::EcdsaP256);
    assert!(OcspResponder::new(other.signer.clone(), &f.ca_der, VALIDITY).is_err());
    for validity in [
        Duration::ZERO,
        Duration::milliseconds(500),
        -VALIDITY,
        ca_core::ocsp::MAX_VALIDITY + Duration::SECOND,
    ] {
        assert!(OcspResponder::new(f.signer.clone(), &f.ca_der, validity).is_err());
    }
    assert!(OcspResponder::new(f.signer.clone(), &f.ca_der, ca_core::ocsp::MAX_VALIDITY).is_ok());
    assert!(OcspResponder::new(f.signer.clone(), b"not a certificate", VALIDITY).is_err());
}

#[test]
fn ocsp_stored_revocations_become_statuses() {
    assert_eq!(CertStatus::issued(None).unwrap(), CertStatus::Good);
    let r = Revocation {
        reason: RevocationReason::Superseded,
        revoked_at: 1_700_000_000,
        invalidity_date: None,
        not_after: 1_800_000_000,
    };
    assert_eq!(
        CertStatus::issued(Some(&r)).unwrap(),
        CertStatus::Revoked {
            revoked_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            reason: RevocationReason::Superseded,
            invalidity_date: None,
        }
    );
}

/// A delegated responder: good (with a nonce that OpenSSL checks), revoked and unknown verify
/// with `openssl ocsp -issuer ca.pem -CAfile ca.pem`, which finds the responder certificate in
/// the response, builds its chain to the CA and requires id-kp-OCSPSigning.
fn delegated_statuses_verify_in_openssl(algorithm: KeyAlgorithm) {
    let f = Fixture::new(algorithm);
    let (responder, _, cert) = f.delegated_responder();
    let resp = answers_verify_in_openssl(&f, &responder, algorithm);
    let text = f.check_with_request(&resp, "req.der");
    assert!(text.contains("OCSP Signing"), "{algorithm}: {text}");

    // The response names the delegated key and carries its certificate.
    let basic = parse(&resp).1.unwrap();
    let ResponderId::ByKey(key_hash) = &basic.tbs_response_data.responder_id else {
        panic!("responderID byName")
    };
    assert_eq!(
        hex::encode(key_hash.as_bytes()),
        f.ocsp_key_hash("ocsp.pem")
    );
    assert_ne!(f.ocsp_key_hash("ocsp.pem"), f.ocsp_key_hash("ca.pem"));
    let certs = basic.certs.unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().unwrap(), cert);
    assert_eq!(responder.responder_certificate(), Some(cert.clone()));
    // The delegated key is P-256 whatever the CA's key.
    assert_eq!(
        basic.signature_algorithm.oid.to_string(),
        "1.2.840.10045.4.3.2"
    );

    // Trusting another CA of the same name, OpenSSL cannot build the responder's chain.
    let twin = Fixture::named(algorithm, "CN=OCSP Test CA,O=Example");
    let twin_ca = twin.path("ca.pem");
    let (ok, text) = f.check(
        &resp,
        &[
            "-issuer",
            "ca.pem",
            "-CAfile",
            twin_ca.to_str().unwrap(),
            "-cert",
            "leaf.pem",
            "-no_nonce",
        ],
    );
    assert!(
        !ok && !text.contains("Response verify OK"),
        "{algorithm}: {text}"
    );
}

#[test]
fn ocsp_delegated_ec_p256_responses_verify_in_openssl() {
    delegated_statuses_verify_in_openssl(KeyAlgorithm::EcdsaP256);
}

#[test]
fn ocsp_delegated_ec_p384_responses_verify_in_openssl() {
    delegated_statuses_verify_in_openssl(KeyAlgorithm::EcdsaP384);
}

#[test]
fn ocsp_delegated_ed25519_responses_verify_in_openssl() {
    delegated_statuses_verify_in_openssl(KeyAlgorithm::Ed25519);
}

#[test]
fn ocsp_delegated_rsa_3072_responses_verify_in_openssl() {
    delegated_statuses_verify_in_openssl(KeyAlgorithm::Rsa3072);
}

#[test]
fn ocsp_responder_certificate_follows_rfc_6960_4_2_2_2() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let now = OffsetDateTime::now_utc();
    let (key, der) = f.delegate("ocsp.pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&f.ca_der).unwrap();

    assert_eq!(cert.subject().to_string(), "CN=OCSP Test CA OCSP Responder");
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    assert_eq!(cert.public_key().raw, key.spki_der());
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let validity = cert.validity();
    let not_before = validity.not_before.timestamp();
    assert!((not_before - (now.unix_timestamp() - 60)).abs() <= 2);
    assert_eq!(validity.not_after.timestamp() - not_before, 30 * 86_400 - 1);

    let mut seen = Vec::new();
    let mut ca_ski = None;
    for ext in ca.extensions() {
        if let ParsedExtension::SubjectKeyIdentifier(ski) = ext.parsed_extension() {
            ca_ski = Some(ski.0.to_vec());
        }
    }
    for ext in cert.extensions() {
        seen.push(ext.oid.to_id_string());
        if ext.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5" {
            // id-pkix-ocsp-nocheck (RFC 6960 section 4.2.2.2.1): NULL, not critical.
            assert!(!ext.critical && ext.value == [0x05, 0x00]);
            continue;
        }
        match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.ocsp_signing && !eku.server_auth && !eku.client_auth);
                assert!(eku.other.is_empty());
            }
            ParsedExtension::KeyUsage(ku) => {
                assert!(ext.critical, "keyUsage is critical");
                assert!(ku.digital_signature());
                assert_eq!(ku.flags, 1, "digitalSignature only");
            }
            ParsedExtension::BasicConstraints(bc) => assert!(!bc.ca),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                assert_eq!(
                    aki.key_identifier.as_ref().map(|k| k.0.to_vec()),
                    ca_ski.clone()
                );
            }
            ParsedExtension::SubjectKeyIdentifier(_) => {}
            other => panic!("unexpected extension {}: {other:?}", ext.oid),
        }
    }
    for oid in [
        "2.5.29.37",            // extKeyUsage
        "2.5.29.15",            // keyUsage
        "2.5.29.19",            // basicConstraints
        "2.5.29.35",            // authorityKeyIdentifier
        "2.5.29.14",            // subjectKeyIdentifier
        "1.3.6.1.5.5.7.48.1.5", // id-pkix-ocsp-nocheck
    ] {
        assert!(seen.iter().any(|s| s == oid), "{oid} missing: {seen:?}");
    }

    // What the server checks before reusing it.
    let checked = check_responder_certificate(&f.ca_der, key.as_ref(), &der).unwrap();
    assert_eq!(checked.not_before.unix_timestamp(), not_before);
    assert!(!checked.renewal_due(now));
}

#[test]
fn ocsp_responder_common_names_fit_64_characters() {
    let long = format!("CN={},O=Example", "L".repeat(64));
    for (subject, expected) in [
        (long.as_str(), format!("{} OCSP Responder", "L".repeat(49))),
        ("O=Example Without CN", "OCSP Responder".to_string()),
    ] {
        let f = Fixture::named(KeyAlgorithm::EcdsaP256, subject);
        let (_, der) = f.delegate("ocsp.pem");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), expected, "{subject}");
    }
}

#[test]
fn ocsp_delegated_construction_checks_key_issuer_and_usage() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let twin = Fixture::named(KeyAlgorithm::EcdsaP256, "CN=OCSP Test CA,O=Example");
    let (key, cert) = f.delegate("ocsp.pem");
    let (other_key, other_cert) = f.delegate("other.pem");
    let (twin_key, twin_cert) = twin.delegate("ocsp.pem");
    let ok = |k: &Arc<dyn Signer>, c: &[u8]| {
        OcspResponder::delegated(&f.ca_der, k.clone(), c, VALIDITY).map(|_| ())
    };
    ok(&key, &cert).unwrap();
    ok(&other_key, &other_cert).unwrap();
    // The key must be the certificate's.
    let e = ok(&other_key, &cert).unwrap_err().to_string();
    assert!(e.contains("does not match"), "{e}");
    // Issued by another CA of the same name.
    let e = ok(&twin_key, &twin_cert).unwrap_err().to_string();
    assert!(e.contains("not issued by this CA"), "{e}");
    // Not a certificate, or followed by something.
    assert!(ok(&key, b"not a certificate").is_err());
    let mut trailing = cert.clone();
    trailing.push(0);
    assert!(ok(&key, &trailing).is_err());
    // The CA's own certificate is not a delegate's.
    assert!(ok(&f.signer, &f.ca_der).is_err());

    // A certificate of this CA for the key, but without id-kp-OCSPSigning.
    let ca = CertificateAuthority::new(
        f.signer.clone(),
        vec![f.ca_der.clone()],
        &Profile::builtin(),
        &Urls::default(),
    )
    .unwrap();
    let request = ValidatedRequest {
        validation: Default::default(),
        subject: vec![SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: "not a responder".into(),
        }],
        sans: Vec::new(),
        key: SubjectKey {
            key_type: SubjectKeyType::EcP256,
            bits: key.public_key_bits().to_vec(),
        },
        validity_days: 30,
    };
    let client = ca
        .sign(
            "tls-client",
            Serial::random(&SystemRandom::new()).unwrap(),
            &request,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let e = ok(&key, &client.der).unwrap_err().to_string();
    assert!(e.contains("OCSPSigning"), "{e}");

    // The response validity is checked as for a CA-signed responder.
    assert!(OcspResponder::delegated(&f.ca_der, key.clone(), &cert, Duration::ZERO).is_err());

    // Responder certificates last 1 to MAX_RESPONDER_VALIDITY_DAYS days.
    for days in [0, MAX_RESPONDER_VALIDITY_DAYS + 1] {
        let issued = issue_responder_certificate(
            f.signer.clone(),
            &f.ca_der,
            key.as_ref(),
            days,
            Serial::random(&SystemRandom::new()).unwrap(),
            OffsetDateTime::now_utc(),
        );
        assert!(issued.is_err(), "{days} days");
    }
    // Only the CA's own key can issue them.
    assert!(issue_responder_certificate(
        twin.signer.clone(),
        &f.ca_der,
        key.as_ref(),
        30,
        Serial::random(&SystemRandom::new()).unwrap(),
        OffsetDateTime::now_utc(),
    )
    .is_err());
}

#[test]
fn ocsp_responder_renewal_is_due_with_a_third_left() {
    let start = time::macros::datetime!(2030-01-01 0:00 UTC);
    let v = ResponderValidity {
        not_before: start,
        not_after: start + Duration::days(30),
    };
    assert!(v.renewal_due(start - Duration::seconds(1)), "not valid yet");
    assert!(!v.renewal_due(start));
    assert!(!v.renewal_due(start + Duration::days(20)));
    assert!(v.renewal_due(start + Duration::days(20) + Duration::seconds(1)));
    assert!(v.renewal_due(start + Duration::days(31)), "expired");
}

#[test]
fn ocsp_a_renewed_delegate_is_taken_into_use() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let cache = Arc::new(OcspCache::new(100));
    let (responder, _, first) = f.delegated_responder();
    let responder = responder.with_cache(cache.clone());
    let now = OffsetDateTime::now_utc();
    let req = f.request(
        "req.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    responder.respond(&req, now, |_| Ok(CertStatus::Good));
    assert_eq!(cache.len(), 1);

    let (key, second) = f.delegate("ocsp.pem");
    responder.set_delegate(key, &second).unwrap();
    assert!(
        cache.is_empty(),
        "answers carrying the old certificate are dropped"
    );
    assert_eq!(responder.responder_certificate(), Some(second.clone()));
    let resp = responder.respond(&req, now, |_| Ok(CertStatus::Good));
    let certs = parse(&resp).1.unwrap().certs.unwrap();
    assert_eq!(certs[0].to_der().unwrap(), second);
    assert_ne!(first, second);
    let (ok, text) = f.check(
        &resp,
        &[
            "-issuer", "ca.pem", "-CAfile", "ca.pem", "-cert", "leaf.pem",
        ],
    );
    assert!(ok && text.contains("Response verify OK"), "{text}");
    assert!(text.contains("leaf.pem: good"), "{text}");

    // A delegate that does not fit is refused and the current one stays.
    let other = Fixture::new(KeyAlgorithm::EcdsaP256);
    let (other_key, other_cert) = other.delegate("ocsp.pem");
    assert!(responder.set_delegate(other_key, &other_cert).is_err());
    assert_eq!(responder.responder_certificate(), Some(second));
}

/// A cached answer is signed anew after half its validity, but never later than four days
/// after its thisUpdate (Baseline Requirements 4.9.9), so that a 10-day validity still gets a
/// fresh answer within four days.
#[test]
fn ocsp_cached_answers_are_renewed_within_four_days() {
    let f = Fixture::new(KeyAlgorithm::EcdsaP256);
    let cache = Arc::new(OcspCache::new(100));
    let validity = Duration::days(10) - Duration::seconds(1);
    let responder = OcspResponder::new(f.signer.clone(), &f.ca_der, validity)
        .unwrap()
        .with_cache(cache);
    let request = f.request(
        "req.der",
        &["-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce"],
    );
    let lookups = Cell::new(0);
    let lookup = |_: &Serial| {
        lookups.set(lookups.get() + 1);
        Ok(CertStatus::Good)
    };
    let now = OffsetDateTime::now_utc();
    let first = responder.respond(&request, now, lookup);
    let limit = ca_core::ocsp::MAX_CACHE_FRESHNESS;
    assert_eq!(limit, Duration::days(4));
    let cached = responder.respond(&request, now + limit - Duration::seconds(1), lookup);
    assert_eq!(
        (lookups.get(), &cached),
        (1, &first),
        "served from the cache"
    );
    let renewed = responder.respond(&request, now + limit, lookup);
    assert_eq!(lookups.get(), 2, "signed anew four days after thisUpdate");
    assert_ne!(renewed, first);
}
