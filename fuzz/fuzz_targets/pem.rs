//! `pem`: the PEM armor of ca-core: `armor::parse_certificates` on arbitrary text (as the
//! offline tools and the server read chain files), the `armor::to_pem` /
//! `armor::certificates_to_pem` round trip of whatever it finds and of the raw input, and
//! `csr::decode_input` (the CSR's PEM-or-DER front door).

#![no_main]

use std::borrow::Cow;

use ca_core::armor::{certificates_to_pem, parse_certificates, to_pem};
use ca_core::csr::decode_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // decode_input: DER passes through untouched; PEM must be a CSR block.
    match decode_input(data) {
        Ok(Cow::Borrowed(der)) => assert_eq!(der, data),
        Ok(Cow::Owned(der)) => {
            let again = to_pem("CERTIFICATE REQUEST", &der);
            let back = decode_input(again.as_bytes()).expect("re-armored CSR decodes");
            assert_eq!(back.as_ref(), der.as_slice());
        }
        Err(_) => {}
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(ders) = parse_certificates(&text) {
        let pem = certificates_to_pem(&ders).concat();
        let back = parse_certificates(&pem).expect("re-armored certificates parse");
        assert_eq!(back, ders);
    }

    // Any bytes armor and unarmor to themselves.
    let pem = to_pem("CERTIFICATE", data);
    let back = parse_certificates(&pem).expect("to_pem output parses");
    assert_eq!(back, vec![data.to_vec()]);
});
