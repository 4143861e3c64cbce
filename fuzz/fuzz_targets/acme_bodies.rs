//! `acme_bodies`: the payloads of ACME requests (RFC 8555 section 7) through their parsers
//! in `ca_acme::messages` and `ca_acme::eab`. The first byte picks the parser, the rest is
//! the payload; every refusal's problem document is built.

#![no_main]

use ca_acme::eab::ParsedEab;
use ca_acme::messages::{
    parse_authz_deactivation, parse_challenge_response, Finalize, KeyChange, NewAccount,
    NewOrder, RevokeCert, MAX_CONTACTS, MAX_IDENTIFIERS,
};
use ca_acme::Problem;
use libfuzzer_sys::fuzz_target;

fn document(problem: &Problem) {
    let doc = problem.to_json();
    assert_eq!(doc["status"], u64::from(problem.status()));
    assert_eq!(doc["type"], problem.kind.urn());
}

fn check<T>(result: Result<T, Problem>, ok: impl FnOnce(T)) {
    match result {
        Ok(value) => ok(value),
        Err(problem) => document(&problem),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => check(NewAccount::parse(payload), |a| {
            assert!(a.contact.map_or(0, |c| c.len()) <= MAX_CONTACTS)
        }),
        1 => check(NewOrder::parse(payload), |o| {
            assert!(!o.identifiers.is_empty() && o.identifiers.len() <= MAX_IDENTIFIERS);
            for (i, id) in o.identifiers.iter().enumerate() {
                // Each identifier once, and its value reads back to itself.
                assert!(!o.identifiers[..i].contains(id));
                if id.kind() == "dns" {
                    assert_eq!(ca_acme::AcmeIdentifier::dns(&id.value()).as_ref(), Ok(id));
                }
            }
        }),
        2 => check(Finalize::parse(payload), |f| assert!(!f.csr.is_empty())),
        3 => check(RevokeCert::parse(payload), |r| {
            assert!(r.reason.is_none_or(|code| code <= 10))
        }),
        4 => check(parse_challenge_response(payload), |()| {}),
        5 => check(parse_authz_deactivation(payload), |()| {}),
        6 => check(KeyChange::parse(payload), |_| {}),
        _ => {
            if let Ok(value) = serde_json::from_slice(payload) {
                check(ParsedEab::parse(&value), |eab| assert!(!eab.kid().is_empty()));
            }
        }
    }
});
