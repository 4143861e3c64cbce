//! `ocsp_request`: the OCSP request parser of ca-core (RFC 6960), through
//! `ca_core::fuzzing::ocsp_request` (the same body the corpus replay test of `./test` runs),
//! with real responders of a throwaway OpenSSL CA whose certificate and key are in
//! `fuzz/fixtures/`, so that the seed requests (made with `openssl ocsp -reqout` against that
//! CA) match its issuer hashes and reach the status lookup and the signer.

#![no_main]

use std::sync::OnceLock;

use ca_core::fuzzing::{ocsp_request, OcspFixture};
use libfuzzer_sys::fuzz_target;

const CA_DER: &[u8] = include_bytes!("../fixtures/ocsp-ca.der");
const CA_KEY: &[u8] = include_bytes!("../fixtures/ocsp-ca.key.der");

fuzz_target!(|data: &[u8]| {
    static FIXTURE: OnceLock<OcspFixture> = OnceLock::new();
    ocsp_request(FIXTURE.get_or_init(|| OcspFixture::new(CA_DER, CA_KEY)), data);
});
