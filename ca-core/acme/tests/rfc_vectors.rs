//! The published examples: RFC 7638 section 3.1 (thumbprint), RFC 7515 appendix A.3 (ES256)
//! and RFC 8037 appendix A.4 (Ed25519).

mod common;

use ca_acme::{AccountKey, AccountKeyKind, JwsAlgorithm, ParsedJws, ProblemType};
use common::{flattened, unb64};
use serde_json::json;

const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_PROTECTED: &str = "eyJhbGciOiJFUzI1NiJ9";
const A3_PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const A3_SIGNATURE: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

const A4_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const A4_PROTECTED: &str = "eyJhbGciOiJFZERTQSJ9";
const A4_PAYLOAD: &str = "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const A4_SIGNATURE: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

#[test]
fn rfc7638_thumbprint_of_the_section_3_1_key() {
    let key = AccountKey::from_jwk(&json!({
        "kty": "RSA",
        "n": RFC7638_N,
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }))
    .unwrap();
    assert_eq!(key.kind(), AccountKeyKind::Rsa);
    assert_eq!(
        key.thumbprint_b64(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert_eq!(
        key.to_canonical_json(),
        format!(r#"{{"e":"AQAB","kty":"RSA","n":"{RFC7638_N}"}}"#)
    );
}

fn a3_key() -> AccountKey {
    AccountKey::from_jwk(&json!({"kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y})).unwrap()
}

#[test]
fn rfc7515_a3_es256_signature_verifies() {
    let key = a3_key();
    let input = format!("{A3_PROTECTED}.{A3_PAYLOAD}");
    key.verify(JwsAlgorithm::Es256, input.as_bytes(), &unb64(A3_SIGNATURE))
        .unwrap();

    let mut signature = unb64(A3_SIGNATURE);
    signature[63] ^= 1;
    let err = key
        .verify(JwsAlgorithm::Es256, input.as_bytes(), &signature)
        .unwrap_err();
    assert_eq!(err.kind, ProblemType::Malformed);
}

#[test]
fn rfc7515_a3_flattened_is_refused_for_its_header_alone() {
    // A.3's protected header is {"alg":"ES256"}: no nonce, no url, no key. Its signature is
    // good; RFC 8555 section 6.5 refuses it for the missing nonce before anything else.
    let err = ParsedJws::parse(&flattened(A3_PROTECTED, A3_PAYLOAD, A3_SIGNATURE)).unwrap_err();
    assert_eq!(err.kind, ProblemType::BadNonce);
}

#[test]
fn rfc7515_a3_key_with_its_private_d_is_refused() {
    let err = AccountKey::from_jwk(&json!({
        "kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y,
        "d": "jpsQnnGQmL-YBIffH1136cLSG7ND8CxZKswDITYENWk",
    }))
    .unwrap_err();
    assert_eq!(err.kind, ProblemType::BadPublicKey);
}

#[test]
fn rfc8037_a4_ed25519_signature_verifies() {
    let key = AccountKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": A4_X})).unwrap();
    assert_eq!(key.kind(), AccountKeyKind::Ed25519);
    let input = format!("{A4_PROTECTED}.{A4_PAYLOAD}");
    key.verify(JwsAlgorithm::EdDsa, input.as_bytes(), &unb64(A4_SIGNATURE))
        .unwrap();

    let other = format!(
        "{A4_PROTECTED}.{}",
        common::b64(b"Example of Ed25519 signinG")
    );
    let err = key
        .verify(JwsAlgorithm::EdDsa, other.as_bytes(), &unb64(A4_SIGNATURE))
        .unwrap_err();
    assert_eq!(err.kind, ProblemType::Malformed);
    // The right key, the wrong algorithm.
    let err = key
        .verify(JwsAlgorithm::Es256, input.as_bytes(), &unb64(A4_SIGNATURE))
        .unwrap_err();
    assert_eq!(err.kind, ProblemType::BadSignatureAlgorithm);
}
