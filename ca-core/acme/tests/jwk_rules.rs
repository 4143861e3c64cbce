//! Account keys from JWKs (RFC 7517, RFC 7518 section 6, RFC 8037 section 2): what is
//! accepted, what is refused and as which problem, the canonical form and equality.

mod common;

use ca_acme::{AccountKey, AccountKeyKind, JwsAlgorithm, ProblemType};
use common::{b64, TestKey};
use serde_json::{json, Value};

fn refused(jwk: Value) -> ProblemType {
    AccountKey::from_jwk(&jwk).unwrap_err().kind
}

#[test]
fn each_key_type_parses_with_its_one_algorithm() {
    let kinds = [
        AccountKeyKind::P256,
        AccountKeyKind::P384,
        AccountKeyKind::Rsa,
        AccountKeyKind::Ed25519,
    ];
    for (key, kind) in TestKey::all().into_iter().zip(kinds) {
        let parsed = AccountKey::from_jwk(&key.jwk()).unwrap();
        assert_eq!(parsed.kind(), kind);
        for alg in JwsAlgorithm::ALL {
            assert_eq!(
                parsed.alg_allowed(alg),
                alg.name() == key.alg(),
                "{kind:?} {alg}"
            );
        }
    }
}

#[test]
fn the_canonical_json_reads_back_to_an_equal_key() {
    for key in TestKey::all() {
        let mut jwk = key.jwk();
        jwk["kid"] = "ignored".into();
        jwk["use"] = "sig".into();
        let parsed = AccountKey::from_jwk(&jwk).unwrap();
        let canonical = parsed.to_canonical_json();
        assert!(!canonical.contains(' ') && !canonical.contains("kid"));
        let again = AccountKey::from_json(canonical.as_bytes()).unwrap();
        assert_eq!(again, parsed);
        assert_eq!(again.to_canonical_json(), canonical);
        assert_eq!(again.thumbprint_b64(), b64(&parsed.thumbprint()));
    }
    let (one, two) = (TestKey::p256(), TestKey::p256());
    let (one, two) = (
        AccountKey::from_jwk(&one.jwk()).unwrap(),
        AccountKey::from_jwk(&two.jwk()).unwrap(),
    );
    assert_ne!(one, two);
}

#[test]
fn ec_keys_need_full_size_coordinates_on_a_supported_curve() {
    let jwk = TestKey::p256().jwk();
    let x = common::unb64(jwk["x"].as_str().unwrap());
    let mut short = jwk.clone();
    short["x"] = b64(&x[1..]).into();
    assert_eq!(refused(short), ProblemType::BadPublicKey);
    let mut long = jwk.clone();
    long["y"] = b64(&[&[0u8][..], &x].concat()).into();
    assert_eq!(refused(long), ProblemType::BadPublicKey);
    let mut p521 = jwk.clone();
    p521["crv"] = "P-521".into();
    assert_eq!(refused(p521), ProblemType::BadPublicKey);
    // A P-256 point labelled P-384 has the wrong coordinate size.
    let mut relabelled = jwk.clone();
    relabelled["crv"] = "P-384".into();
    assert_eq!(refused(relabelled), ProblemType::BadPublicKey);
    let mut padded = jwk.clone();
    padded["x"] = format!("{}=", jwk["x"].as_str().unwrap()).into();
    assert_eq!(refused(padded), ProblemType::Malformed);
    let mut missing = jwk;
    missing.as_object_mut().unwrap().remove("y");
    assert_eq!(refused(missing), ProblemType::Malformed);
}

#[test]
fn an_ec_point_off_the_curve_never_verifies() {
    let key = TestKey::p256();
    let mut jwk = key.jwk();
    let mut y = common::unb64(jwk["y"].as_str().unwrap());
    y[31] ^= 1;
    jwk["y"] = b64(&y).into();
    let parsed = AccountKey::from_jwk(&jwk).unwrap();
    let signature = key.sign(b"message");
    let problem = parsed
        .verify(JwsAlgorithm::Es256, b"message", &signature)
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Malformed);
}

#[test]
fn rsa_keys_are_2048_to_8192_bits_with_an_odd_exponent_and_no_leading_zeros() {
    let jwk = TestKey::rsa().jwk();
    let n = common::unb64(jwk["n"].as_str().unwrap());
    let with = |name: &str, bytes: &[u8]| {
        let mut jwk = jwk.clone();
        jwk[name] = b64(bytes).into();
        jwk
    };
    assert_eq!(
        refused(with("n", &[&[0u8][..], &n].concat())),
        ProblemType::BadPublicKey
    );
    assert_eq!(refused(with("n", &[0xff; 255])), ProblemType::BadPublicKey);
    assert_eq!(refused(with("n", &[0xff; 1025])), ProblemType::BadPublicKey);
    assert_eq!(refused(with("n", &[])), ProblemType::BadPublicKey);
    assert!(AccountKey::from_jwk(&with("n", &[0xff; 1024])).is_ok());
    for e in [
        &[][..],
        &[1],
        &[0, 1, 0, 1],
        &[1, 0, 0],
        &[2, 0, 0, 0, 1],
        &[1; 9],
    ] {
        assert_eq!(refused(with("e", e)), ProblemType::BadPublicKey, "{e:?}");
    }
    assert!(AccountKey::from_jwk(&with("e", &[3])).is_ok());
    assert!(AccountKey::from_jwk(&with("e", &[1, 0xff, 0xff, 0xff, 0xff])).is_ok());
}

#[test]
fn only_ed25519_among_okp_keys_and_only_32_bytes() {
    let jwk = TestKey::ed25519().jwk();
    let mut x25519 = jwk.clone();
    x25519["crv"] = "X25519".into();
    assert_eq!(refused(x25519), ProblemType::BadPublicKey);
    let mut ed448 = jwk.clone();
    ed448["crv"] = "Ed448".into();
    assert_eq!(refused(ed448), ProblemType::BadPublicKey);
    let mut short = jwk;
    short["x"] = b64(&[7; 31]).into();
    assert_eq!(refused(short), ProblemType::BadPublicKey);
}

#[test]
fn other_key_types_private_members_and_non_objects_are_refused() {
    assert_eq!(
        refused(json!({"kty": "oct", "k": "AAAA"})),
        ProblemType::BadPublicKey
    );
    assert_eq!(refused(json!({"kty": "oct"})), ProblemType::BadPublicKey);
    assert_eq!(refused(json!({"kty": 1})), ProblemType::Malformed);
    assert_eq!(refused(json!({})), ProblemType::Malformed);
    assert_eq!(refused(json!("RSA")), ProblemType::Malformed);
    let mut rsa = TestKey::rsa().jwk();
    rsa["qi"] = "AQAB".into();
    assert_eq!(refused(rsa), ProblemType::BadPublicKey);
    let mut ed = TestKey::ed25519().jwk();
    ed["d"] = Value::Null;
    assert_eq!(refused(ed), ProblemType::BadPublicKey);
    assert_eq!(
        AccountKey::from_json(b"{not json").unwrap_err().kind,
        ProblemType::Malformed
    );
}
