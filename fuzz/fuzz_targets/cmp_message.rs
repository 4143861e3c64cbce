//! `cmp_message`: a request body of `POST /.well-known/cmp` through
//! [`ca_cmp::fuzzing::cmp_message`] (the same function `ca-server/tests/fuzz_corpus.rs`
//! replays the corpus with).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ca_cmp::fuzzing::cmp_message(data);
});
