//! Weak subject keys are never certified (issue 15, finding 7): a small-order Ed25519 key
//! whose forged signature R = B, s = 1 "verifies" for any message, on the single, batch and
//! enrollment paths; an EC point at infinity or off the curve; RSA exponents other than
//! 65537 under the default profiles; RSA keys whose factors can be computed (CA/Browser Forum
//! Baseline Requirements 6.1.1.3: primes close enough for Fermat's method, a small factor,
//! the ROCA fingerprint), each with its own code, on the single, batch and enrollment paths.
//! Each is refused and nothing is stored.

use e2e_tests::prelude::*;
use serde_json::{json, Value};
use x509_parser::num_bigint::BigUint;

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

    // Enrollment redeemed with the CSR (tls-client: personal takes no Ed25519 key at all).
    let (id, code) = s.create_enrollment(
        &json!({"profile": "tls-client", "subject": "CN=Weak Key", "sans": [],
                "expires_in_hours": 1, "max_attempts": 3}),
    );
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

// ---------------------------------------------------------------------------------------------
// RSA keys whose factors can be computed (CA/Browser Forum Baseline Requirements 6.1.1.3)
// ---------------------------------------------------------------------------------------------

/// `bytes` random octets from `openssl rand`.
fn random_bytes(bytes: usize) -> Vec<u8> {
    let hex_digits = openssl(&["rand", "-hex", &bytes.to_string()]);
    hex::decode(hex_digits.trim()).expect("openssl rand -hex prints hex")
}

/// Miller-Rabin with the twelve prime bases up to 37, after trial division by the odd numbers
/// below 1000.
fn is_probable_prime(n: &BigUint) -> bool {
    if !n.bit(0) || (3u32..1000).step_by(2).any(|d| n % d == BigUint::ZERO) {
        return false;
    }
    let one = BigUint::from(1u32);
    let minus_one = n - &one;
    let s = minus_one.trailing_zeros().expect("n > 1");
    let d = &minus_one >> s;
    [2u32, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]
        .iter()
        .all(|base| {
            let mut x = BigUint::from(*base).modpow(&d, n);
            if x == one || x == minus_one {
                return true;
            }
            (1..s).any(|_| {
                x = &x * &x % n;
                x == minus_one
            })
        })
}

/// The first probable prime from `n`.
fn next_prime(mut n: BigUint) -> BigUint {
    n |= BigUint::from(1u32);
    while !is_probable_prime(&n) {
        n += 2u32;
    }
    n
}

/// A random 1024-bit number with the top two bits set (a product of two has 2048 bits).
fn random_1024() -> BigUint {
    let mut bytes = random_bytes(128);
    bytes[0] |= 0xc0;
    BigUint::from_bytes_be(&bytes)
}

/// A DER INTEGER of a non-negative number.
fn der_uint(x: &BigUint) -> Vec<u8> {
    let mut bytes = x.to_bytes_be();
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    tlv(0x02, &bytes)
}

const F4: u32 = 65_537;

/// A PKCS#1 RSAPrivateKey (RFC 8017 appendix A.1.2) PEM of the modulus `p * q`, exponent
/// 65537, where `q` is the product of the primes `q_factors`: the product of two primes
/// normally, or a composite "prime" for a modulus with a small factor. OpenSSL signs with it
/// all the same: the CRT halves are computed modulo `p` and `q` with exponents reduced by
/// their totients, which is right for a square-free `q` too (and OpenSSL checks the result
/// with the public exponent).
fn rsa_private_key_pem(p: &BigUint, q_factors: &[&BigUint]) -> String {
    let one = BigUint::from(1u32);
    let e = BigUint::from(F4);
    let q: BigUint = q_factors.iter().copied().product();
    let phi_q: BigUint = q_factors.iter().map(|f| *f - &one).product();
    let phi = (p - &one) * &phi_q;
    let d = e.modinv(&phi).expect("65537 is prime to the totient");
    let fields = [
        tlv(0x02, &[0]),
        der_uint(&(p * &q)),
        der_uint(&e),
        der_uint(&d),
        der_uint(p),
        der_uint(&q),
        der_uint(&(&d % (p - &one))),
        der_uint(&(&d % &phi_q)),
        der_uint(&q.modinv(p).expect("q is prime to p")),
    ];
    to_pem("RSA PRIVATE KEY", &seq(&fields))
}

/// A CSR for `CN=cn` signed by `openssl req` with the key `key_pem`.
fn rsa_csr(s: &Server, cn: &str, key_pem: &str) -> Csr {
    let path = s.scratch().join(format!("{cn}.key.pem"));
    std::fs::write(&path, key_pem).expect("writing the key");
    make_csr_for_key(&path, "rsa-2048", &format!("/CN={cn}"), &[], &[])
}

/// An RSA-2048 key whose primes are so close that Fermat's method factors it in its first
/// round: q is the prime after p + a random 400-bit number (|p - q| below 2^401, where about
/// 2^514 would still be found within the 100 rounds).
fn fermat_weak_csr(s: &Server) -> Csr {
    let p = next_prime(random_1024());
    let q = next_prime(&p + BigUint::from_bytes_be(&random_bytes(50)));
    rsa_csr(s, "fermat.example", &rsa_private_key_pem(&p, &[&q]))
}

/// An RSA-2048 key whose modulus is divisible by 991: p * (991 * r) with p and r prime.
fn small_factor_csr(s: &Server) -> Csr {
    let small = BigUint::from(991u32);
    let p = next_prime(random_1024());
    let r = next_prime(random_1024() / &small);
    rsa_csr(
        s,
        "small-factor.example",
        &rsa_private_key_pem(&p, &[&small, &r]),
    )
}

/// A 2048-bit modulus of a key made by the Infineon RSA library (ROCA, CVE-2017-15361), from
/// the test vectors of the ROCA detector (github.com/crocs-muni/roca,
/// roca/tests/data/mod03.txt): public, with no private key to sign with.
const ROCA_2048: &str = concat!(
    "9dcd7420e420c270a68060eb8b5aa7457a9f6648f86fafed2775cc1f79ae962f",
    "1e63f1b9e51c55f9ea6fdc7332e9b0058c9ff2eb1fc89855029cf6aafe21e689",
    "feb38ac9ffb12f1ce371bb5d0e9aae64161abce74b4244bf68f1edb4411f756a",
    "097c8929c14740245ea355f8332d1aa36bb50c7dcb4505da8de02e4e53d38f8d",
    "f06097da7524df0df93db48eac8cc4af2d3a16257eb2b2adca6ba464e5974fa9",
    "2550d31b1babf161e7692d00b86e3dd886ecab4abfbe1a8f8cc263ff4af55cdb",
    "45f4249a5193925f5e983d762f0b6800943eb0267b08f42ed311ce1f5c86eacb",
    "c8ce4d3cb7a2fee1ef5641423a1cf4114e5ecf50034a60a412523af9e6f4aa11",
);

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];

/// A CSR whose key is the ROCA modulus, with a signature that cannot verify (nobody has the
/// private key): the key is judged when the CSR is parsed, before its signature, as the
/// small-order Ed25519 and infinity keys above are.
fn roca_csr() -> String {
    let null = tlv(0x05, &[]);
    let n = BigUint::from_bytes_be(&hex::decode(ROCA_2048).expect("hex"));
    let public_key = seq(&[der_uint(&n), der_uint(&BigUint::from(F4))]);
    let mut key_bits = vec![0];
    key_bits.extend_from_slice(&public_key);
    let spki = seq(&[
        seq(&[oid(OID_RSA_ENCRYPTION), null.clone()]),
        tlv(0x03, &key_bits),
    ]);
    let algorithm = seq(&[oid(OID_SHA256_WITH_RSA), null]);
    to_pem(
        "CERTIFICATE REQUEST",
        &csr_der("roca.example", spki, algorithm, &[0x5a; 256]),
    )
}

/// RSA keys whose factors anyone can compute are refused, each with its own code, on every
/// issuing path: `POST /v1/certificates`, the batch endpoint (next to good requests, which are
/// certified) and an enrollment redeemed with a CSR (whose code stays usable); nothing else is
/// stored. Fermat-weak and small-factor keys come with valid self-signatures made by OpenSSL.
#[test]
fn rsa_keys_with_computable_factors_are_refused_on_every_path() {
    let s = Server::fresh();
    let before = stored(&s);
    let weak = [
        (fermat_weak_csr(&s).pem, "weak_key_fermat", "Fermat"),
        (
            small_factor_csr(&s).pem,
            "weak_key_small_factor",
            "divisible by 991",
        ),
        (roca_csr(), "weak_key_roca", "ROCA"),
    ];
    let mut c = Checks::default();

    // Single issuance.
    for (csr, code, says) in &weak {
        let r = s.post(
            "/v1/certificates",
            &s.tokens.ra,
            &json!({"csr": csr, "profile": "tls-client"}),
        );
        c.error(&r, 422, code, &format!("POST /v1/certificates, {code}"));
        c.check(r.text.contains(says), || {
            format!("the {code} refusal should say {says:?}: {r}")
        });
        c.check(!r.text.contains(&ROCA_2048[..32]), || {
            format!("the {code} refusal shows the modulus: {r}")
        });
    }

    // The batch path: the three among two good RSA requests.
    let good: Vec<Csr> = (0..2)
        .map(|i| make_csr("rsa-2048", &format!("/CN=good-rsa-{i}.example"), &[]))
        .collect();
    let mut requests: Vec<Value> = weak
        .iter()
        .map(|(csr, _, _)| json!({"csr": csr, "profile": "tls-client"}))
        .collect();
    requests.insert(0, json!({"csr": good[0].pem, "profile": "tls-client"}));
    requests.push(json!({"csr": good[1].pem, "profile": "tls-client"}));
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({ "requests": requests }),
    );
    assert_eq!(r.status, 200, "batch: {r}");
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 5, "{r}");
    for (i, result) in results.iter().enumerate() {
        match i.checked_sub(1).and_then(|w| weak.get(w)) {
            Some((_, code, _)) => c.check(result["error"]["code"] == *code, || {
                format!("batch item {i}: expected {code}, got {result}")
            }),
            None => c.check(result["serial"].is_string(), || {
                format!("batch item {i}: {result}")
            }),
        }
    }

    // Enrollment redeemed with each CSR: refused, and the code is not used up.
    let (id, code) = s.create_enrollment(
        &json!({"profile": "personal", "subject": "CN=weak-rsa@example.com",
                "sans": ["weak-rsa@example.com"], "expires_in_hours": 1, "max_attempts": 3}),
    );
    for (csr, error_code, _) in &weak {
        let r = s.request(
            reqwest::Method::POST,
            &format!("/v1/enrollments/{id}/redeem"),
            None,
            Some(&json!({"code": code, "csr": csr})),
        );
        c.error(
            &r,
            422,
            error_code,
            &format!("redeem with the {error_code} key"),
        );
    }
    let state = s.get(&format!("/v1/enrollments/{id}"), Some(&s.tokens.ra));
    c.check(state.json["state"] == "pending", || {
        format!("a refused key used up the code: {state}")
    });

    let after = stored(&s);
    c.check(after == before + 2, || {
        format!(
            "{} certificates stored; only the two good batch requests may be",
            after - before
        )
    });
    c.finish("RSA keys with computable factors");
}
