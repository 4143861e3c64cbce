//! Batch verification of CSR self-signatures (`csr::verify_all`): the same answers as one by
//! one, in order, with a bad signature refusing only its own request.

use ca_core::csr::{parse, parse_and_verify, verify_all};
use ca_core::CaError;

fn csr(alg: &'static rcgen::SignatureAlgorithm, host: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// A copy of `der` with one byte of its signature (the DER's last 64 bytes) changed.
fn tampered(der: &[u8]) -> Vec<u8> {
    let mut der = der.to_vec();
    let i = der.len() - 40;
    der[i] ^= 0x01;
    der
}

fn hosts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("h{i}.batch.example")).collect()
}

#[test]
fn a_batch_answers_as_one_by_one_in_order() {
    let mut ders: Vec<Vec<u8>> = hosts(16)
        .iter()
        .map(|h| csr(&rcgen::PKCS_ED25519, h))
        .collect();
    // Other key types in the same batch are verified one by one.
    ders.insert(3, csr(&rcgen::PKCS_ECDSA_P256_SHA256, "p256.batch.example"));
    ders.push(csr(&rcgen::PKCS_ECDSA_P384_SHA384, "p384.batch.example"));
    let parsed = ders.iter().map(|d| parse(d).unwrap()).collect();
    let batch = verify_all(parsed);
    assert_eq!(batch.len(), ders.len());
    for (der, result) in ders.iter().zip(batch) {
        let alone = parse_and_verify(der).unwrap();
        let batched = result.unwrap();
        assert_eq!(batched.key, alone.key);
        assert_eq!(batched.subject, alone.subject);
        assert_eq!(batched.sans, alone.sans);
    }
}

#[test]
fn a_bad_signature_refuses_only_its_own_request() {
    let mut ders: Vec<Vec<u8>> = hosts(12)
        .iter()
        .map(|h| csr(&rcgen::PKCS_ED25519, h))
        .collect();
    for bad in [0, 7] {
        ders[bad] = tampered(&ders[bad]);
        assert!(
            matches!(
                parse_and_verify(&ders[bad]),
                Err(CaError::CsrSignatureInvalid)
            ),
            "the tampered request must fail alone"
        );
    }
    let results = verify_all(ders.iter().map(|d| parse(d).unwrap()).collect());
    for (i, result) in results.into_iter().enumerate() {
        match (i, result) {
            (0 | 7, Err(CaError::CsrSignatureInvalid)) => {}
            (0 | 7, other) => panic!("request {i}: expected csr_signature_invalid, got {other:?}"),
            (_, Ok(v)) => assert_eq!(v.sans[0].value(), format!("h{i}.batch.example")),
            (_, Err(e)) => panic!("request {i} is valid but was refused: {e}"),
        }
    }
}

#[test]
fn one_or_two_requests_are_verified_alone() {
    let good = csr(&rcgen::PKCS_ED25519, "a.batch.example");
    let bad = tampered(&csr(&rcgen::PKCS_ED25519, "b.batch.example"));
    let results = verify_all(vec![parse(&good).unwrap(), parse(&bad).unwrap()]);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(CaError::CsrSignatureInvalid)));
}
