//! Invalidity dates (RFC 5280 section 5.3.2) from the RA to the CRL and OCSP: dates before
//! 1970 are published as GeneralizedTime, dates that cannot be meaningful are refused, and no
//! stored date can stop CRL publication or start-up (issue 15, finding 1).

use std::path::Path;

use e2e_tests::prelude::*;
use serde_json::Value;

fn serial_of(v: &Value) -> String {
    v["serial"].as_str().expect("serial").to_string()
}

/// The DER of a GeneralizedTime (tag 0x18, 15 octets) holding `text` (`YYYYMMDDHHMMSSZ`).
fn generalized_time_der(text: &str) -> Vec<u8> {
    assert_eq!(text.len(), 15);
    let mut der = vec![0x18, 0x0f];
    der.extend_from_slice(text.as_bytes());
    der
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An RA revokes with invalidity dates of 1969 and of the 1950 floor (accepted); CRL
/// generation succeeds and the CRL carries invalidityDate 19691231235959Z; dates that cannot
/// be meaningful are refused; a restarted server starts and publishes the CRL again.
#[test]
fn pre_1970_invalidity_dates_are_published_and_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    let old = s.issue(&server_csr("old-key.example.com"), "tls-server", None);
    let floor = s.issue(&server_csr("floor.example.com"), "tls-server", None);
    let plain = s.issue(&server_csr("plain.example.com"), "tls-server", None);
    let refused = s.issue(&server_csr("refused.example.com"), "tls-server", None);
    let (old_sn, floor_sn) = (serial_of(&old), serial_of(&floor));
    let (plain_sn, refused_sn) = (serial_of(&plain), serial_of(&refused));

    // 1969 and the floor itself are accepted and answered as given.
    for (sn, date) in [
        (&old_sn, "1969-12-31T23:59:59Z"),
        (&floor_sn, "1950-01-01T00:00:00Z"),
    ] {
        let r = s.revoke(sn, "keyCompromise", Some(date));
        assert_eq!(
            r.status, 200,
            "revoke {sn} with invalidity_date {date}: {r}"
        );
        assert_eq!(
            parse_rfc3339(
                r.json["revocation"]["invalidity_date"]
                    .as_str()
                    .unwrap_or("")
            ),
            parse_rfc3339(date),
            "{r}"
        );
    }
    s.revoke_ok(&plain_sn, "superseded");

    // CRL generation works and the CRL lists all three, with GeneralizedTime invalidity
    // dates (RFC 5280 section 5.3.2), as openssl reads them.
    let gen = s.generate_crl();
    assert_eq!(gen["entries"], 3, "{gen}");
    let serials = [old_sn.as_str(), floor_sn.as_str(), plain_sn.as_str()];
    check_old_invalidity_dates_on_the_crl(&s, "after-revoke", serials);
    // OCSP answers revoked, with the invalidity date (RFC 6960 section 4.4.5).
    let out = s.ocsp_ask(
        &format!("{}/ocsp", s.base),
        &["-serial", &format!("0x{old_sn}")],
    );
    assert!(out.contains(": revoked"), "OCSP for {old_sn}:\n{out}");
    meaningless_dates_are_refused(&s, &refused_sn);

    // A restart builds the first CRL from the store at start, and publishes it.
    s.terminate();
    let s = Server::serve(dir);
    check_old_invalidity_dates_on_the_crl(&s, "after-restart", serials);
    s.terminate();
}

/// The served CRL (`name` names the check) lists the three revoked serials (`old` with
/// invalidity date 1969-12-31T23:59:59Z, `floor` with 1950-01-01, then `plain`), with
/// GeneralizedTime invalidity dates, as x509-parser and openssl read them.
fn check_old_invalidity_dates_on_the_crl(s: &Server, name: &str, serials: [&str; 3]) {
    let [old_sn, floor_sn, _] = serials;
    let crl = s.check_crl(&s.crl(), name);
    for sn in serials {
        assert!(
            crl.entry(sn).is_some(),
            "{name}: {sn} not on the CRL:\n{}",
            crl.text
        );
    }
    assert_eq!(crl.entry(old_sn).and_then(|e| e.invalidity_date), Some(-1));
    assert_eq!(
        crl.entry(floor_sn).and_then(|e| e.invalidity_date),
        Some(parse_rfc3339("1950-01-01T00:00:00Z"))
    );
    assert!(
        contains(&crl.der, &generalized_time_der("19691231235959Z"))
            && contains(&crl.der, &generalized_time_der("19500101000000Z")),
        "{name}: the invalidity dates are not GeneralizedTime 19691231235959Z and \
         19500101000000Z"
    );
    let text = crl.entry_text(old_sn).expect("entry text");
    assert!(
        text.contains("Invalidity Date") && text.contains("Dec 31 23:59:59 1969 GMT"),
        "{name}: openssl shows no invalidity date of 1969-12-31T23:59:59Z:\n{text}"
    );
    let text = crl.entry_text(floor_sn).expect("entry text");
    assert!(
        text.contains("Jan  1 00:00:00 1950 GMT"),
        "{name}: openssl shows no invalidity date of 1950-01-01:\n{text}"
    );
}

/// Dates that cannot be meaningful: 400 invalid_request, and nothing is revoked (the
/// certificate `refused_sn` stays valid).
fn meaningless_dates_are_refused(s: &Server, refused_sn: &str) {
    let mut c = Checks::default();
    let in_an_hour = now_unix() + 3600;
    let soon = time::OffsetDateTime::from_unix_timestamp(in_an_hour)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    for (date, what) in [
        ("1900-01-01T00:00:00Z", "before the 1950 floor"),
        ("1949-12-31T23:59:59Z", "one second before the floor"),
        ("0001-01-01T00:00:00Z", "year 1"),
        (soon.as_str(), "an hour after the revocation time"),
        ("9999-12-31T23:59:59Z", "year 9999"),
    ] {
        let r = s.revoke(refused_sn, "keyCompromise", Some(date));
        c.error(
            &r,
            400,
            "invalid_request",
            &format!("invalidity_date {date} ({what})"),
        );
        c.check(r.text.contains("invalidity_date"), || {
            format!("the refusal of {date} should name invalidity_date: {r}")
        });
    }
    c.check(s.record(refused_sn)["status"] == "valid", || {
        format!("{refused_sn} was revoked by a refused request")
    });
    c.finish("invalidity dates that cannot be meaningful");
}

/// Reads an unsigned LEB128 varint (postcard's integer encoding) at `*at`.
fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint too long")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Rewrites the invalidity date of the stored revocation of `serial_hex` (the `revoked`
/// column family: format version 1, then postcard of reason, revoked_at, invalidity_date,
/// not_after) to `date`, as a build that accepted any RFC 3339 date could have stored it.
fn store_invalidity_date(dir: &Path, serial_hex: &str, date: i64) {
    let path = dir.join("db");
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, &path).expect("list column families");
    let db = rocksdb::DB::open_cf(&opts, &path, cfs).expect("open the store");
    let cf = db.cf_handle("revoked").expect("revoked column family");
    let key = hex::decode(serial_hex).expect("hex serial");
    let old = db
        .get_cf(&cf, &key)
        .expect("read")
        .expect("revocation stored");
    assert_eq!(old[0], 1, "revocation record format");
    let mut at = 1;
    let reason = varint(&old, &mut at);
    let revoked_at = varint(&old, &mut at);
    assert_eq!(old[at], 1, "the revocation has an invalidity date");
    at += 1;
    let _ = varint(&old, &mut at);
    let not_after = varint(&old, &mut at);
    assert_eq!(at, old.len(), "trailing bytes in the revocation record");
    let mut new = vec![1];
    put_varint(&mut new, reason);
    put_varint(&mut new, revoked_at);
    new.push(1);
    put_varint(&mut new, zigzag(date));
    put_varint(&mut new, not_after);
    db.put_cf(&cf, &key, new).expect("write");
    db.flush().expect("flush");
}

/// A store written by a build that accepted any invalidity date (here 1900-01-01, below
/// today's floor) starts, publishes its CRL with that date, and answers OCSP.
#[test]
fn a_stored_invalidity_date_below_the_floor_does_not_stop_start_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    let issued = s.issue(&server_csr("stored-1900.example.com"), "tls-server", None);
    let sn = serial_of(&issued);
    let r = s.revoke(&sn, "keyCompromise", Some("2001-02-03T04:05:06Z"));
    assert_eq!(r.status, 200, "{r}");
    s.terminate();
    let date = parse_rfc3339("1900-01-01T00:00:00Z");
    store_invalidity_date(dir, &sn, date);

    let s = Server::serve(dir);
    let crl = s.check_crl(&s.crl(), "stored-1900");
    let entry = crl
        .entry(&sn)
        .unwrap_or_else(|| panic!("{sn} not on the CRL:\n{}", crl.text));
    assert_eq!(entry.invalidity_date, Some(date), "{entry:?}");
    assert!(
        contains(&crl.der, &generalized_time_der("19000101000000Z")),
        "the invalidity date is not GeneralizedTime 19000101000000Z"
    );
    s.generate_crl();
    let out = s.ocsp_ask(
        &format!("{}/ocsp", s.base),
        &["-serial", &format!("0x{sn}")],
    );
    assert!(out.contains(": revoked"), "OCSP for {sn}:\n{out}");
    s.terminate();
}
