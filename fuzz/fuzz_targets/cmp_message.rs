//! `cmp_message`: a request body of `POST /.well-known/cmp` (a DER PKIMessage, RFC 9810
//! section 5.1) through `ca_cmp::decode`, `Request::read`, the proof-of-possession reader,
//! the password-based MAC parameters and computation, and an error answer to it, which must
//! always encode.

#![no_main]

use ca_cmp::answer::{Answer, Envelope, FailureInfo};
use ca_cmp::mac::PasswordMac;
use ca_cmp::Request;
use libfuzzer_sys::fuzz_target;
use x509_cert::ext::pkix::name::GeneralName;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = ca_cmp::decode(data) else {
        return;
    };
    let part = ca_cmp::protected_part(&message).expect("a decoded message re-encodes");
    assert!(part.len() <= data.len() + 16);
    if let Ok(Request::Certificate(_, request)) = Request::read(&message) {
        let _ = ca_cmp::signature_pop(request);
    }
    if let Some(algorithm) = &message.header.protection_alg {
        if let Ok(pbm) = PasswordMac::from_algorithm(algorithm) {
            let tag = pbm.compute(b"0123-4567-89AB-CDEF", &part);
            assert!(pbm.verify(b"0123-4567-89AB-CDEF", &part, &tag));
        }
    }
    let answer = Answer::Error {
        failure: FailureInfo::BadRequest,
        text: "refused".into(),
    };
    answer
        .encode(
            Envelope {
                request: &message.header,
                sender: GeneralName::DirectoryName(Default::default()),
                nonce: [7; 16],
                now: 1_700_000_000,
                extra_certs: Vec::new(),
            },
            None,
        )
        .expect("an error answer to any decoded request encodes");
});
