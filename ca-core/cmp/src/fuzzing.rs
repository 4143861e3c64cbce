//! The body of the `cmp_message` fuzz target (`fuzz/fuzz_targets/cmp_message.rs`), here so
//! that `ca-server/tests/fuzz_corpus.rs` replays its corpus through the same code in every
//! `./test`.

#![allow(clippy::expect_used, clippy::panic)]

use x509_cert::ext::pkix::name::GeneralName;

use crate::answer::{Answer, Envelope, FailureInfo};
use crate::general::CurrentCrl;
use crate::mac::PasswordMac;
use crate::{Received, Request, Version};

/// A request body of `POST /.well-known/cmp` (a DER PKIMessage, RFC 9810 section 5.1) through
/// `Received::read` (pvno 2 and 3, hashAlg) and `decode`, `Request::read`, certHash with each
/// CertStatus's hashAlg, the proof-of-possession readers (an enrollment's and an RA's),
/// the certTemplate's names as the profile reads them, the password-based MAC parameters
/// (PBM and PBMAC1) and computation, the genm answer (a crlStatusList among its info types),
/// and an error answer to it, which must always encode. Panics on a broken rule.
pub fn cmp_message(data: &[u8]) {
    let Ok(received) = Received::read(data) else {
        assert!(
            crate::decode(data).is_err(),
            "what decode reads, Received reads"
        );
        return;
    };
    let message = received.message().expect("a read message decodes");
    let part = received.protected_part();
    assert!(part.len() <= data.len());
    // A pvno 2 message in canonical DER reads as it was received. (`cmpv2` leaves out header
    // fields out of DER order, so only what re-encodes to the same bytes is compared; the
    // protection is checked over the bytes received in either case.)
    let canonical = der::Encode::to_der(&message).ok().as_deref() == Some(data);
    if received.version() == Ok(Version::Cmp2000) && received.hash_alg(0).is_none() && canonical {
        assert_eq!(
            crate::protected_part(&message).expect("a decoded message re-encodes"),
            part,
            "a pvno 2 message is read as it was received"
        );
    }
    let _ = received.check_syntax();
    match Request::read(&message) {
        Ok(Request::CertConf(statuses)) => {
            for (i, _) in statuses.iter().enumerate() {
                let _ = crate::cert_hash(data, received.hash_alg(i));
            }
        }
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
            let tag = pbm.compute(b"0123-4567-89AB-CDEF", part);
            assert!(pbm.verify(b"0123-4567-89AB-CDEF", part, &tag));
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
                version: received.answer_version(),
                sender: GeneralName::DirectoryName(Default::default()),
                nonce: [7; 16],
                now: 1_700_000_000,
                extra_certs: Vec::new(),
            },
            None,
        )
        .expect("an error answer to any decoded request encodes");
}
