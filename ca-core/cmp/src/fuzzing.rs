//! The body of the `cmp_message` fuzz target (`fuzz/fuzz_targets/cmp_message.rs`), here so
//! that `ca-server/tests/fuzz_corpus.rs` replays its corpus through the same code in every
//! `./test`.

#![allow(clippy::expect_used, clippy::panic)]

use x509_cert::ext::pkix::name::GeneralName;

use crate::answer::{Answer, Envelope, FailureInfo};
use crate::general::CurrentCrl;
use crate::mac::PasswordMac;
use crate::Request;

/// A request body of `POST /.well-known/cmp` (a DER PKIMessage, RFC 9810 section 5.1) through
/// `decode`, `Request::read`, the proof-of-possession readers (an enrollment's and an RA's),
/// the certTemplate's names as the profile reads them, the password-based MAC parameters
/// (PBM and PBMAC1) and computation, the genm answer (a crlStatusList among its info types),
/// and an error answer to it, which must always encode. Panics on a broken rule.
pub fn cmp_message(data: &[u8]) {
    let Ok(message) = crate::decode(data) else {
        return;
    };
    let part = crate::protected_part(&message).expect("a decoded message re-encodes");
    assert!(part.len() <= data.len() + 16);
    match Request::read(&message) {
        Ok(Request::Certificate(_, request)) => {
            let _ = crate::signature_pop(request);
            let _ = crate::ra_key_proof(request);
            if let Ok(names) = crate::template_names(&request.cert_req.cert_template) {
                let _ = ca_x509::csr::template_names(
                    names.subject.as_deref(),
                    names.subject_alt_name.as_deref(),
                );
            }
        }
        Ok(Request::Genm(infos)) => {
            let issuer = x509_cert::name::Name::default();
            let urls = vec!["http://ca.example/crl".to_string()];
            let crl = CurrentCrl {
                der: &[0x30, 0x00],
                this_update: 1_700_000_000,
                urls: &urls,
                issuer: &issuer,
            };
            let _ = crate::general::answer(infos, &[], Some(crl));
        }
        _ => {}
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
}
