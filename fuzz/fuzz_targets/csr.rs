//! `csr`: a CSR as `POST /v1/certificates` receives it (PEM or DER PKCS#10), parsed and its
//! self-signature verified by `ca_core::csr::parse_and_verify`; when that succeeds, checked
//! against every built-in profile with a few requested validities. Whatever a profile
//! accepts must survive the subject's RFC 4514 round trip (the form the store keeps).

#![no_main]

use ca_core::csr::parse_and_verify;
use ca_core::name::{parse_rfc4514, to_rfc4514};
use ca_core::profile::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(csr) = parse_and_verify(data) else {
        return;
    };
    for (name, profile) in Profile::builtin() {
        for validity in [None, Some(0), Some(1), Some(397), Some(u32::MAX)] {
            let Ok(validated) = profile.validate(&name, csr.clone(), validity) else {
                continue;
            };
            assert!(validated.validity_days >= 1);
            assert!(validated.validity_days <= profile.max_validity_days);
            let text = to_rfc4514(&validated.subject);
            let back = parse_rfc4514(&text).expect("an accepted subject re-parses");
            assert_eq!(back, validated.subject, "RFC 4514 round trip of {text:?}");
            assert!(profile
                .check_names(&name, &validated.subject, &validated.sans)
                .is_ok());
        }
    }
});
