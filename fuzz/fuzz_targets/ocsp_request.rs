//! `ocsp_request`: the OCSP request parser of ca-core (RFC 6960), reachable only through
//! `OcspResponder::respond`. The input is answered as a `POST /ocsp` body (DER) and, when it is
//! UTF-8, decoded as the `GET /ocsp/{b64}` path segment by `ocsp::decode_get_request` and
//! answered too. The responder is a real one, of a throwaway OpenSSL CA whose certificate and
//! key are in `fuzz/fixtures/`, so that the seed requests (made with `openssl ocsp -reqout`
//! against that CA) match its issuer hashes and reach the status lookup and the signer.
//!
//! Every answer must be a DER OCSPResponse; a second responder with a cache answers twice to
//! reach the cache paths.

#![no_main]

use std::sync::{Arc, OnceLock};

use ca_core::ocsp::{decode_get_request, CertStatus, OcspCache, OcspResponder};
use ca_core::revocation::RevocationReason;
use ca_core::{CaError, Serial};
use der::Decode;
use keys::{Signer, SoftwareKey};
use libfuzzer_sys::fuzz_target;
use time::{Duration, OffsetDateTime};
use x509_ocsp::OcspResponse;

const CA_DER: &[u8] = include_bytes!("../fixtures/ocsp-ca.der");
const CA_KEY: &[u8] = include_bytes!("../fixtures/ocsp-ca.key.der");

struct Fixture {
    plain: OcspResponder,
    cached: OcspResponder,
    cache: Arc<OcspCache>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let signer: Arc<dyn Signer> =
            Arc::new(SoftwareKey::from_pkcs8(CA_KEY).expect("fixture key loads"));
        let validity = Duration::hours(4);
        let plain = OcspResponder::new(signer.clone(), CA_DER, validity).expect("responder");
        let cache = Arc::new(OcspCache::new(8));
        let cached = OcspResponder::new(signer, CA_DER, validity)
            .expect("responder")
            .with_cache(cache.clone());
        Fixture {
            plain,
            cached,
            cache,
        }
    })
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

fn answer(request: &[u8], now: OffsetDateTime) {
    let f = fixture();
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

fuzz_target!(|data: &[u8]| {
    let now =
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    answer(data, now);
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(der) = decode_get_request(path) {
            assert!(!der.is_empty());
            answer(&der, now);
        }
    }
});
