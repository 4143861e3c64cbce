//! `pem`: the PEM armor of ca-core and the CSR's PEM-or-DER front door, through
//! `ca_core::fuzzing::pem` (the same body the corpus replay test of `./test` runs).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ca_core::fuzzing::pem(data);
});
