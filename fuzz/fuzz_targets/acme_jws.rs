//! `acme_jws`: an ACME request body (RFC 8555 section 6.2) through `ca_acme::ParsedJws::parse`;
//! one that parses with an embedded `jwk` is verified with that key, and every refusal's
//! problem document is built.

#![no_main]

use ca_acme::{ParsedJws, Problem};
use libfuzzer_sys::fuzz_target;

fn document(problem: &Problem) {
    let doc = problem.to_json();
    assert_eq!(doc["status"], u64::from(problem.status()));
    assert_eq!(doc["type"], problem.kind.urn());
}

fuzz_target!(|data: &[u8]| {
    let parsed = match ParsedJws::parse(data) {
        Ok(parsed) => parsed,
        Err(problem) => return document(&problem),
    };
    assert!(!parsed.header().nonce().is_empty());
    let Some(key) = parsed.header().embedded_key() else {
        return;
    };
    // The canonical JWK reads back to the same key.
    let again = ca_acme::AccountKey::from_json(key.to_canonical_json().as_bytes());
    assert_eq!(again.as_ref(), Ok(key));
    match parsed.verify_embedded() {
        Ok(verified) => assert!(verified.payload().len() <= data.len()),
        Err(problem) => document(&problem),
    }
});
