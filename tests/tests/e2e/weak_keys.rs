//! Weak subject keys are never certified (issue 15, finding 7): a small-order Ed25519 key
//! whose forged signature R = B, s = 1 "verifies" for any message, on the single, batch and
//! enrollment paths; an EC point at infinity or off the curve; RSA exponents other than
//! 65537 under the default profiles. Each is refused and nothing is stored.

use e2e_tests::prelude::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Hand-made DER
// ---------------------------------------------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    match n {
        0..=127 => out.push(n as u8),
        128..=255 => out.extend([0x81, n as u8]),
        _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// An OBJECT IDENTIFIER from its content octets.
fn oid(content: &[u8]) -> Vec<u8> {
    tlv(0x06, content)
}

const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// A PKCS#10 CertificationRequest (RFC 2986) for `CN=cn`, no attributes, with the given
/// SubjectPublicKeyInfo, signature algorithm and signature value.
fn csr_der(cn: &str, spki: Vec<u8>, signature_algorithm: Vec<u8>, signature: &[u8]) -> Vec<u8> {
    let name = seq(&[tlv(0x31, &seq(&[oid(OID_CN), tlv(0x0c, cn.as_bytes())]))]);
    let info = seq(&[tlv(0x02, &[0]), name, spki, tlv(0xa0, &[])]);
    let mut bits = vec![0];
    bits.extend_from_slice(signature);
    seq(&[info, signature_algorithm, tlv(0x03, &bits)])
}

/// The Ed25519 encoding of the base point B (RFC 8032 section 5.1: y = 4/5, x even).
fn base_point() -> [u8; 32] {
    let mut b = [0x66; 32];
    b[0] = 0x58;
    b
}

/// A CSR whose Ed25519 public key is `key` and whose signature is R = B, s = 1: for a key of
/// small order, [s]B - [k]A = B = R whatever the message, so it "verifies".
fn small_order_ed25519_csr(cn: &str, key: [u8; 32]) -> String {
    let alg = seq(&[oid(OID_ED25519)]);
    let mut key_bits = vec![0];
    key_bits.extend_from_slice(&key);
    let spki = seq(&[alg.clone(), tlv(0x03, &key_bits)]);
    let mut signature = base_point().to_vec();
    let mut s = [0u8; 32];
    s[0] = 1;
    signature.extend_from_slice(&s);
    to_pem("CERTIFICATE REQUEST", &csr_der(cn, spki, alg, &signature))
}

/// The identity point (0, 1): order 1.
fn identity() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 1;
    k
}

/// A P-256 CSR whose public key is the point `point` (SEC 1 encoding) with a syntactically
/// valid ECDSA signature (r = s = 1).
fn p256_csr(cn: &str, point: &[u8]) -> String {
    let alg = seq(&[oid(OID_EC_PUBLIC_KEY), oid(OID_P256)]);
    let mut key_bits = vec![0];
    key_bits.extend_from_slice(point);
    let spki = seq(&[alg, tlv(0x03, &key_bits)]);
    let signature = seq(&[tlv(0x02, &[1]), tlv(0x02, &[1])]);
    to_pem(
        "CERTIFICATE REQUEST",
        &csr_der(cn, spki, seq(&[oid(OID_ECDSA_SHA256)]), &signature),
    )
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// How many certificates the store holds, by the auditor's list.
fn stored(s: &Server) -> usize {
    let mut count = 0;
    let mut path = "/v1/certificates?limit=1000".to_string();
    loop {
        let r = s.get(&path, Some(&s.tokens.auditor));
        assert_eq!(r.status, 200, "GET {path}: {r}");
        count += r.json["items"].as_array().map_or(0, Vec::len);
        match r.json["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/certificates?limit=1000&cursor={c}"),
            None => return count,
        }
    }
}

fn assert_weak_key(v: &Value, status: u16, got: u16, what: &str) {
    assert_eq!(got, status, "{what}: {v}");
    assert_eq!(v["error"]["code"], "weak_key", "{what}: {v}");
    assert_error_shape(v, what);
}

/// The small-order Ed25519 key with the forged signature is refused on every issuing path:
/// `POST /v1/certificates`, the batch endpoint (whose Ed25519 requests are verified together
/// with ed25519-dalek) and an enrollment redeemed with a CSR; nothing is stored.
#[test]
fn small_order_ed25519_keys_are_refused_on_every_path() {
    let s = Server::fresh();
    let before = stored(&s);
    let weak = small_order_ed25519_csr("weak.example", identity());
    // Every path is tried and judged, so that a failure names each one that certifies.
    let mut c = Checks::default();

    // Single issuance (tls-client: a CN and no SAN needed).
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": weak, "profile": "tls-client"}),
    );
    c.error(&r, 422, "weak_key", "POST /v1/certificates, identity key");
    c.check(r.text.contains("small order"), || {
        format!("the refusal should say small order: {r}")
    });

    // The batch path, among enough good Ed25519 requests to be verified as a batch.
    the_batch_path_refuses_it_alone(&s, &weak, &mut c);

    // Enrollment redeemed with the CSR.
    let r = s.post(
        "/v1/enrollments",
        &s.tokens.ra,
        &json!({"profile": "personal", "subject": "CN=Weak Key", "sans": [],
                "expires_in_hours": 1, "max_attempts": 3}),
    );
    assert_eq!(r.status, 201, "POST /v1/enrollments: {r}");
    let id = r.json["id"].as_str().expect("id").to_string();
    let code = r.json["code"].as_str().expect("code").to_string();
    let r = s.request(
        reqwest::Method::POST,
        &format!("/v1/enrollments/{id}/redeem"),
        None,
        Some(&json!({"code": code, "csr": weak})),
    );
    c.error(&r, 422, "weak_key", "redeem with the identity key");
    let state = s.get(&format!("/v1/enrollments/{id}"), Some(&s.tokens.ra));
    c.check(state.json["state"] == "pending", || {
        format!("a refused key used up the code: {state}")
    });

    // Other small-order points: the point of order 2 (y = -1) and a non-canonical encoding
    // of the identity (y = p + 1).
    let mut order2 = [0xff; 32];
    order2[0] = 0xec;
    order2[31] = 0x7f;
    let mut p_plus_1 = [0xff; 32];
    p_plus_1[0] = 0xee;
    p_plus_1[31] = 0x7f;
    for (key, what) in [(order2, "order 2"), (p_plus_1, "non-canonical identity")] {
        let csr = small_order_ed25519_csr("weak2.example", key);
        let r = s.post(
            "/v1/certificates",
            &s.tokens.ra,
            &json!({"csr": csr, "profile": "tls-client"}),
        );
        c.error(&r, 422, "weak_key", what);
    }

    let after = stored(&s);
    c.check(after == before + 4, || {
        format!(
            "{} certificates stored; only the four good batch requests may be",
            after - before
        )
    });
    c.finish("small-order Ed25519 keys");
}

/// The batch path refuses the weak CSR (PEM) as item 2 of 5, among four good Ed25519
/// requests (enough to be verified as a batch), which are certified.
fn the_batch_path_refuses_it_alone(s: &Server, weak: &str, c: &mut Checks) {
    let good: Vec<Csr> = (0..4)
        .map(|i| make_csr("ed25519", &format!("/CN=good-{i}.example"), &[]))
        .collect();
    let mut requests: Vec<Value> = good
        .iter()
        .map(|c| json!({"csr": c.pem, "profile": "tls-client"}))
        .collect();
    requests.insert(2, json!({"csr": weak, "profile": "tls-client"}));
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({ "requests": requests }),
    );
    assert_eq!(r.status, 200, "batch: {r}");
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 5, "{r}");
    for (i, result) in results.iter().enumerate() {
        if i == 2 {
            c.check(result["error"]["code"] == "weak_key", || {
                format!("batch item {i} (identity key): expected weak_key, got {result}")
            });
        } else {
            c.check(result["serial"].is_string(), || {
                format!("batch item {i}: {result}")
            });
        }
    }
}

/// EC points at infinity and off the curve are refused before or by signature
/// verification (ring checks the point); nothing is stored.
#[test]
fn ec_points_at_infinity_or_off_the_curve_are_refused() {
    let s = Server::fresh();
    let before = stored(&s);
    let infinity = p256_csr("infinity.example", &[0x00]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": infinity, "profile": "tls-client"}),
    );
    assert_weak_key(&r.json, 422, r.status, "P-256 point at infinity");

    // (1, 1) is not on P-256 (1 != 1 - 3 + b); nor is (x, y) of a real key with y changed.
    let mut off = vec![0x04];
    off.extend([0u8; 31]);
    off.push(1);
    off.extend([0u8; 31]);
    off.push(1);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": p256_csr("off-curve.example", &off), "profile": "tls-client"}),
    );
    assert_error(&r, 400, "csr_signature_invalid", "P-256 point (1, 1)");
    // A point with a coordinate not below p.
    let mut big = vec![0x04];
    big.extend([0xff; 64]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": p256_csr("big.example", &big), "profile": "tls-client"}),
    );
    assert_error(
        &r,
        400,
        "csr_signature_invalid",
        "P-256 point with coordinates over p",
    );
    assert_eq!(stored(&s), before, "a refused key was stored");
}

/// An RSA key with public exponent 3, properly self-signed by OpenSSL, is refused under the
/// default profiles (`rsa_require_f4 = true`).
#[test]
fn rsa_exponent_3_is_refused_by_default() {
    let s = Server::fresh();
    let before = stored(&s);
    let key = s.scratch().join("rsa-e3.pem");
    let key_s = key.to_str().expect("UTF-8 path");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-pkeyopt",
        "rsa_keygen_pubexp:3",
        "-out",
        key_s,
    ]);
    let pem = openssl(&[
        "req",
        "-new",
        "-batch",
        "-key",
        key_s,
        "-subj",
        "/CN=e3.example",
    ]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": pem, "profile": "tls-client"}),
    );
    assert_weak_key(&r.json, 422, r.status, "RSA exponent 3");
    assert!(r.text.contains("65537"), "{r}");
    assert_eq!(stored(&s), before, "a refused key was stored");
}
