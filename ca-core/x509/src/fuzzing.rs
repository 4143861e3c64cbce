//! The bodies of the fuzz targets of `fuzz/` for the parsers of ca-core, kept here so that the
//! fuzzers and the corpus replay test of `./test` (`ca-server/tests/fuzz_corpus.rs`) run the
//! same code: `csr`, `pem`, `ocsp_request` and `est_bodies`. Not part of the API.
//!
//! Each function feeds `data` to the parser as the server would and checks what must hold;
//! a failed check panics, which is the finding.
#![allow(clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::sync::Arc;

use der::Decode;
use keys::{Signer, SoftwareKey};
use time::{Duration, OffsetDateTime};
use x509_ocsp::OcspResponse;

use crate::armor::{certificates_to_pem, parse_certificates, to_pem};
use crate::csr::{decode_input, parse_and_verify};
use crate::error::CaError;
use crate::name::{parse_rfc4514, to_rfc4514};
use crate::ocsp::{decode_get_request, CertStatus, OcspCache, OcspResponder};
use crate::profile::{Identity, Profile};
use crate::revocation::RevocationReason;
use crate::serial::Serial;

/// `csr`: a CSR as `POST /v1/certificates` receives it (PEM or DER PKCS#10), parsed and its
/// self-signature verified by [`parse_and_verify`]; when that succeeds, checked against every
/// built-in profile with a few requested validities. Whatever a profile accepts has a
/// validity within its bounds, passes `check_names`, and its subject survives the RFC 4514
/// round trip (the form the store keeps).
pub fn csr(data: &[u8]) {
    let Ok(csr) = parse_and_verify(data) else {
        return;
    };
    for (name, profile) in Profile::builtin() {
        for validity in [None, Some(0), Some(1), Some(397), Some(u32::MAX)] {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let Ok(validated) =
                profile.validate(&name, csr.clone(), &Identity::default(), validity, now)
            else {
                continue;
            };
            assert!(validated.validity_days >= 1);
            assert!(validated.validity_days <= profile.max_validity_days);
            let text = to_rfc4514(&validated.subject);
            let back = parse_rfc4514(&text).expect("an accepted subject re-parses");
            assert_eq!(back, validated.subject, "RFC 4514 round trip of {text:?}");
            let identity = Identity {
                subject: validated.subject.clone(),
                sans: validated.sans.clone(),
            };
            assert_eq!(profile.check_names(&name, &identity).ok(), Some(identity));
        }
    }
}

/// `pem`: [`parse_certificates`] on arbitrary text (as the offline tools and the server read
/// chain files), the [`to_pem`] / [`certificates_to_pem`] round trip of whatever it finds and
/// of the raw input, and [`decode_input`] (the CSR's PEM-or-DER front door): DER passes
/// through untouched, whatever is found re-armors to the same DER.
pub fn pem(data: &[u8]) {
    match decode_input(data) {
        Ok(Cow::Borrowed(der)) => assert_eq!(der, data),
        Ok(Cow::Owned(der)) => {
            let again = to_pem("CERTIFICATE REQUEST", &der);
            let back = decode_input(again.as_bytes()).expect("re-armored CSR decodes");
            assert_eq!(back.as_ref(), der.as_slice());
        }
        Err(_) => {}
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(ders) = parse_certificates(&text) {
        let pem = certificates_to_pem(&ders).concat();
        let back = parse_certificates(&pem).expect("re-armored certificates parse");
        assert_eq!(back, ders);
    }
    let pem = to_pem("CERTIFICATE", data);
    let back = parse_certificates(&pem).expect("to_pem output parses");
    assert_eq!(back, vec![data.to_vec()]);
}

/// Real OCSP responders for the `ocsp_request` target: one plain, one with a cache, both of
/// a CA given as its certificate and PKCS#8 key (the throwaway OpenSSL CA of
/// `fuzz/fixtures/`, whose issuer hashes the seed requests match).
pub struct OcspFixture {
    plain: OcspResponder,
    cached: OcspResponder,
    cache: Arc<OcspCache>,
}

impl OcspFixture {
    /// Responders for the CA certificate `ca_der` and its PKCS#8 key `key_der`.
    pub fn new(ca_der: &[u8], key_der: &[u8]) -> Self {
        let signer: Arc<dyn Signer> =
            Arc::new(SoftwareKey::from_pkcs8(key_der).expect("fixture key loads"));
        let validity = Duration::hours(4);
        let plain = OcspResponder::new(signer.clone(), ca_der, validity).expect("responder");
        let cache = Arc::new(OcspCache::new(8));
        let cached = OcspResponder::new(signer, ca_der, validity)
            .expect("responder")
            .with_cache(cache.clone());
        OcspFixture {
            plain,
            cached,
            cache,
        }
    }
}

/// A status for every serial, spread over good, revoked (each reason), unknown and a failing
/// lookup by the serial's last octet.
fn lookup(serial: &Serial) -> Result<CertStatus, CaError> {
    let last = serial.as_bytes()[15];
    let reasons = RevocationReason::ALL;
    match last % 4 {
        0 => Ok(CertStatus::Good),
        1 => Ok(CertStatus::Revoked {
            revoked_at: OffsetDateTime::from_unix_timestamp(1_700_000_000 + i64::from(last))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            reason: reasons[usize::from(last) % reasons.len()],
            invalidity_date: (last % 8 == 1).then_some(-1 - i64::from(last)),
        }),
        2 => Ok(CertStatus::Unknown),
        _ => Err(CaError::Storage("fuzz: lookup fails".into())),
    }
}

fn answer(f: &OcspFixture, request: &[u8], now: OffsetDateTime) {
    let out = f.plain.respond(request, now, lookup);
    OcspResponse::from_der(&out).expect("the answer is a DER OCSPResponse");
    f.cache.clear();
    let first = f.cached.respond(request, now, lookup);
    OcspResponse::from_der(&first).expect("the cached responder's answer is DER");
    let second = f.cached.respond(request, now, lookup);
    OcspResponse::from_der(&second).expect("the cached responder's second answer is DER");
    // Over the budget of signatures on demand: still a DER answer (cached, or tryLater).
    let over = f.cached.respond_within(request, now, lookup, || false);
    OcspResponse::from_der(&over.der).expect("the answer over budget is DER");
}

/// `ocsp_request`: the RFC 6960 request parser, reachable only through
/// [`OcspResponder::respond`]. The input is answered as a `POST /ocsp` body (DER) and, when it
/// is UTF-8, decoded as the `GET /ocsp/{b64}` path segment by [`decode_get_request`] and
/// answered too; every answer must be a DER OCSPResponse, from the plain responder and twice
/// from the cached one.
pub fn ocsp_request(fixture: &OcspFixture, data: &[u8]) {
    let now =
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    answer(fixture, data, now);
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(der) = decode_get_request(path) {
            assert!(!der.is_empty());
            answer(fixture, &der, now);
        }
    }
}

/// `est_bodies`: the EST (RFC 7030, RFC 8951) parsers of [`crate::est`] as the EST front end
/// feeds them. The first byte picks the parser: a base64 PKCS#10 body (`simpleenroll`), whose
/// decoded request re-encodes to the same DER, re-parses for its key encryption attributes (RFC 7030 section 4.4.1) and goes on to the
/// CSR parser; an `Authorization` header value (HTTP Basic), whose user name holds no colon;
/// or a bare base64 body, which round-trips.
pub fn est_bodies(data: &[u8]) {
    use crate::est;
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let Ok(der) = est::decode_pkcs10_body(rest) else {
                return;
            };
            assert!(der.len() <= crate::csr::MAX_CSR_DER);
            let text = est::encode_base64_body(&der);
            assert_eq!(est::decode_base64_body(text.as_bytes()), Ok(der.clone()));
            match est::key_encryption(&der) {
                Ok(est::KeyEncryption::Asymmetric(id)) => assert!(!id.is_empty()),
                Ok(_) | Err(est::EstBodyError::KeyIdentifier) => {}
                Err(e) => panic!("a decoded request re-parses: {e}"),
            }
            let _ = parse_and_verify(&der);
        }
        1 => {
            if let Ok(Some(credentials)) = est::parse_basic(rest) {
                assert!(!credentials.user.contains(':'));
                assert!(!credentials.user.chars().any(char::is_control));
            }
        }
        _ => {
            if let Ok(der) = est::decode_base64_body(rest) {
                let text = est::encode_base64_body(&der);
                assert!(text.lines().all(|l| l.len() <= 65));
                assert_eq!(est::decode_base64_body(text.as_bytes()), Ok(der));
            }
        }
    }
}
