//! `json_bodies`: the JSON request bodies of the API (issuance, batch, renewal, revocation,
//! enrollment creation and redemption, token creation), decoded into the handlers' own
//! `#[derive(Deserialize)]` types and validated as the handlers do next, through
//! `ca_server::api::fuzzing::parse_bodies`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ca_server::api::fuzzing::parse_bodies(data);
});
