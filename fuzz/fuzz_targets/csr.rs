//! `csr`: a CSR as `POST /v1/certificates` receives it, through `ca_core::fuzzing::csr` (the
//! same body the corpus replay test of `./test` runs).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ca_core::fuzzing::csr(data);
});
