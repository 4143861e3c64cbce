//! `est_bodies`: the EST (RFC 7030, RFC 8951) body and credential parsers of `ca_core::est`:
//! base64 PKCS#10 bodies, HTTP Basic credentials and bare base64 bodies, the first byte
//! picking the parser (`ca_core::fuzzing::est_bodies`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ca_core::fuzzing::est_bodies(data);
});
