//! Stored revocation times of every kind (before 1970, before 1950, beyond year 9999, the
//! ends of i64) in CRLs and OCSP answers: what X.509 can carry is encoded exactly, what it
//! cannot is left out (invalidityDate) or replaced by thisUpdate (revocation time), counted in
//! `ca_status_entries_degraded_total`, and never makes the CRL or answer unbuildable
//! (issue 15, finding 1).

use std::sync::Arc;

use ca_core::authority::create_root;
use ca_core::crl::{CrlBuilder, CrlEntry, EntryReason};
use ca_core::metrics::Metrics;
use ca_core::name::parse_rfc4514;
use ca_core::ocsp::{CertStatus, OcspResponder};
use ca_core::revocation::{Revocation, RevocationReason};
use ca_core::Serial;
use ca_x509::oid;
use der::asn1::OctetString;
use der::{Decode, Encode};
use keys::SystemRandom;
use keys::{KeyAlgorithm, Signer, SoftwareKey};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, OcspRequest, OcspResponse, OcspResponseStatus, Request, TbsRequest,
    Version,
};
use x509_parser::prelude::FromDer;

/// 10000-01-01T00:00:00Z: the first second GeneralizedTime's four-digit year cannot carry.
const YEAR_10000: i64 = 253_402_300_800;
/// 1900-01-01T00:00:00Z.
const YEAR_1900: i64 = -2_208_988_800;
/// 1940-01-01T00:00:00Z: before UTCTime's window, so GeneralizedTime (RFC 5280 5.1.2.6).
const YEAR_1940: i64 = -946_771_200;

struct Ca {
    signer: Arc<dyn Signer>,
    der: Vec<u8>,
}

fn ca() -> Ca {
    let pkcs8 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&pkcs8).unwrap());
    let subject = parse_rfc4514("CN=Stored Times CA").unwrap();
    let serial = Serial::random(&SystemRandom::new()).unwrap();
    let der = create_root(signer.clone(), &subject, 365, serial).unwrap();
    Ca { signer, der }
}

fn serial() -> Serial {
    Serial::random(&SystemRandom::new()).unwrap()
}

fn degraded(metrics: &Metrics, field: &str) -> u64 {
    metrics
        .status_entries_degraded
        .with_label_values(&[field])
        .get()
}

fn entry(serial: Serial, revoked_at: i64, invalidity_date: Option<i64>) -> CrlEntry {
    CrlEntry {
        serial,
        revoked_at,
        reason: Some(EntryReason::Revoked(RevocationReason::KeyCompromise)),
        invalidity_date,
    }
}

#[test]
fn every_stored_entry_is_on_the_crl_and_unencodable_fields_are_counted() {
    let ca = ca();
    let metrics = Metrics::new().unwrap();
    let builder = CrlBuilder::new(ca.signer.clone(), &ca.der, None)
        .unwrap()
        .with_degraded(metrics.degraded_entries());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (min, max, y10k, before_1970, y1900) = (serial(), serial(), serial(), serial(), serial());
    let (old_revocation, absurd_revocation) = (serial(), serial());
    let entries = vec![
        entry(min, now - 60, Some(i64::MIN)),
        entry(max, now - 60, Some(i64::MAX)),
        entry(y10k, now - 60, Some(YEAR_10000)),
        entry(before_1970, now - 60, Some(-1)),
        entry(y1900, now - 60, Some(YEAR_1900)),
        entry(old_revocation, YEAR_1940, None),
        entry(absurd_revocation, i64::MIN, Some(now - 3600)),
    ];
    let der = builder
        .full(7, now, now + 86_400, entries)
        .expect("a CRL whatever the stored times");

    let (rest, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    assert!(rest.is_empty());
    let this_update = crl.last_update().timestamp();
    assert_eq!(this_update, now);
    let listed = |s: &Serial| {
        crl.iter_revoked_certificates()
            .find(|r| r.raw_serial() == s.as_bytes())
            .unwrap_or_else(|| panic!("{s} is not on the CRL"))
    };
    for s in [&min, &max, &y10k] {
        let r = listed(s);
        assert!(r.invalidity_date().is_none(), "{s}: invalidityDate written");
        assert_eq!(
            r.reason_code().map(|(_, c)| c.0),
            Some(1),
            "{s}: reason lost"
        );
    }
    let invalidity = |s: &Serial| listed(s).invalidity_date().map(|(_, t)| t.timestamp());
    assert_eq!(invalidity(&before_1970), Some(-1));
    assert_eq!(invalidity(&y1900), Some(YEAR_1900));
    assert_eq!(
        listed(&old_revocation).revocation_date.timestamp(),
        YEAR_1940
    );
    assert_eq!(
        listed(&absurd_revocation).revocation_date.timestamp(),
        this_update
    );
    assert_eq!(invalidity(&absurd_revocation), Some(now - 3600));

    // The encodings: GeneralizedTime for invalidityDate and outside 1950..2049.
    let gt = |text: &str| [&[0x18u8, 0x0f][..], text.as_bytes()].concat();
    let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    assert!(has(&gt("19691231235959Z")), "1969 invalidityDate");
    assert!(has(&gt("19000101000000Z")), "1900 invalidityDate");
    assert!(has(&gt("19400101000000Z")), "1940 revocationDate");

    assert_eq!(degraded(&metrics, "invalidity_date"), 3);
    assert_eq!(degraded(&metrics, "revocation_date"), 1);
}

/// The CertID (SHA-1) of `serial` under the CA `ca_der`.
fn ocsp_request(ca_der: &[u8], serial: &Serial) -> Vec<u8> {
    let cert = x509_cert::Certificate::from_der(ca_der).unwrap();
    let sha1 = |data: &[u8]| {
        OctetString::new(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
                .as_ref()
                .to_vec(),
        )
        .unwrap()
    };
    let tbs = &cert.tbs_certificate;
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: CertId {
                    hash_algorithm: AlgorithmIdentifierOwned {
                        oid: oid::ID_SHA1,
                        parameters: None,
                    },
                    issuer_name_hash: sha1(&tbs.subject.to_der().unwrap()),
                    issuer_key_hash: sha1(
                        tbs.subject_public_key_info.subject_public_key.raw_bytes(),
                    ),
                    serial_number: SerialNumber::new(serial.as_bytes()).unwrap(),
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request.to_der().unwrap()
}

fn single_status(der: &[u8]) -> x509_ocsp::SingleResponse {
    let resp = OcspResponse::from_der(der).unwrap();
    assert_eq!(resp.response_status, OcspResponseStatus::Successful);
    let basic =
        BasicOcspResponse::from_der(resp.response_bytes.unwrap().response.as_bytes()).unwrap();
    basic.tbs_response_data.responses[0].clone()
}

#[test]
fn ocsp_answers_revocations_whatever_their_stored_times() {
    let ca = ca();
    let metrics = Metrics::new().unwrap();
    let responder = OcspResponder::new(ca.signer.clone(), &ca.der, time::Duration::hours(1))
        .unwrap()
        .with_degraded(metrics.degraded_entries());
    let now = OffsetDateTime::now_utc();
    let answer = |revocation: Revocation| {
        let s = serial();
        let der = responder.respond(&ocsp_request(&ca.der, &s), now, |_| {
            CertStatus::issued(Some(&revocation))
        });
        single_status(&der)
    };
    let stored = |revoked_at: i64, invalidity_date: Option<i64>| Revocation {
        reason: RevocationReason::KeyCompromise,
        revoked_at,
        invalidity_date,
        not_after: now.unix_timestamp() + 86_400,
    };
    let revoked_at = now.unix_timestamp() - 60;

    // Absurd invalidity dates: answered revoked, without the extension, counted.
    for date in [i64::MIN, i64::MAX, YEAR_10000] {
        let single = answer(stored(revoked_at, Some(date)));
        match &single.cert_status {
            x509_ocsp::CertStatus::Revoked(info) => assert_eq!(
                info.revocation_time.0.to_unix_duration().as_secs() as i64,
                revoked_at
            ),
            other => panic!("{date}: expected revoked, got {other:?}"),
        }
        assert!(
            single.single_extensions.is_none(),
            "{date}: extension written"
        );
    }
    assert_eq!(degraded(&metrics, "invalidity_date"), 3);

    // A date before 1970 is sent as the invalidityDate single extension (RFC 6960 4.4.5).
    let single = answer(stored(revoked_at, Some(-1)));
    let exts = single.single_extensions.expect("invalidityDate");
    assert_eq!(exts.len(), 1);
    assert_eq!(exts[0].extn_id, oid::ID_CE_INVALIDITY_DATE);
    assert_eq!(
        exts[0].extn_value.as_bytes(),
        [&[0x18u8, 0x0f][..], b"19691231235959Z"].concat()
    );

    // A revocation time GeneralizedTime cannot carry here: still revoked, as of thisUpdate.
    for at in [i64::MIN, YEAR_1900] {
        let single = answer(stored(at, None));
        match &single.cert_status {
            x509_ocsp::CertStatus::Revoked(info) => {
                assert_eq!(info.revocation_time, single.this_update)
            }
            other => panic!("{at}: expected revoked, got {other:?}"),
        }
    }
    assert_eq!(degraded(&metrics, "revocation_time"), 2);
    assert_eq!(degraded(&metrics, "invalidity_date"), 3);
}
