//! RFC 8555 section 6.2 request authentication on JWS signed here with `ring`: what parses,
//! what verifies, and the problem type of each refusal.

mod common;

use ca_acme::{AccountKey, KeyRef, ParsedJws, Problem, ProblemType, MAX_JWS_BODY};
use common::{b64, edit_part, flattened, members, TestKey, KID, NONCE, URL};
use serde_json::{json, Value};

const PAYLOAD: &[u8] = br#"{"identifiers":[{"type":"dns","value":"example.org"}]}"#;

fn kind(result: Result<impl std::fmt::Debug, Problem>) -> ProblemType {
    result.unwrap_err().kind
}

fn account_key(key: &TestKey) -> AccountKey {
    AccountKey::from_jwk(&key.jwk()).unwrap()
}

#[test]
fn each_algorithm_round_trips_in_both_forms() {
    for key in TestKey::all() {
        let parsed = ParsedJws::parse(&key.jws(&key.jwk_header(), PAYLOAD)).unwrap();
        assert_eq!(parsed.header().alg().name(), key.alg());
        assert_eq!(parsed.header().embedded_key(), Some(&account_key(&key)));
        let verified = parsed.verify_embedded().unwrap();
        assert_eq!(verified.payload(), PAYLOAD, "{}", key.alg());
        assert_eq!(
            (verified.header().nonce(), verified.header().url()),
            (NONCE, URL)
        );
        assert_eq!(verified.key(), &account_key(&key));

        let parsed = ParsedJws::parse(&key.jws(&key.kid_header(), PAYLOAD)).unwrap();
        assert_eq!(parsed.header().key_ref(), &KeyRef::Kid(KID.into()));
        assert_eq!(parsed.header().embedded_key(), None);
        let verified = parsed.verify(&account_key(&key)).unwrap();
        assert_eq!(verified.payload(), PAYLOAD);
        assert!(!verified.is_post_as_get());
    }
}

#[test]
fn post_as_get_has_an_empty_payload() {
    let key = TestKey::p256();
    let verified = ParsedJws::parse(&key.jws(&key.kid_header(), b""))
        .unwrap()
        .verify(&account_key(&key))
        .unwrap();
    assert!(verified.is_post_as_get());
    assert_eq!(verified.payload(), b"");
}

#[test]
fn a_flipped_bit_in_any_part_fails_verification() {
    for key in TestKey::all() {
        let body = key.jws(&key.kid_header(), PAYLOAD);
        let tampered = [
            // The last character of the url (the header stays JSON).
            edit_part(&body, "protected", |header| {
                let at = header.iter().rposition(|b| *b == b'r').unwrap();
                header[at] ^= 0x01;
            }),
            edit_part(&body, "payload", |payload| payload[5] ^= 0x01),
            edit_part(&body, "signature", |signature| signature[10] ^= 0x01),
        ];
        for body in tampered {
            let parsed = ParsedJws::parse(&body).unwrap();
            assert_eq!(
                kind(parsed.verify(&account_key(&key))),
                ProblemType::Malformed,
                "{}",
                key.alg()
            );
        }
    }
}

#[test]
fn a_key_other_than_the_signers_fails_verification() {
    let (signer, other) = (TestKey::p256(), TestKey::p256());
    let parsed = ParsedJws::parse(&signer.jws(&signer.kid_header(), PAYLOAD)).unwrap();
    assert_eq!(
        kind(parsed.verify(&account_key(&other))),
        ProblemType::Malformed
    );
    // The jwk form verifies only with its own key.
    let parsed = ParsedJws::parse(&signer.jws(&signer.jwk_header(), PAYLOAD)).unwrap();
    let problem = parsed.verify(&account_key(&other)).unwrap_err();
    assert_eq!(problem.kind, ProblemType::Malformed);
    assert!(problem.detail.contains("jwk other than"), "{problem}");
    // And the kid form has no embedded key to verify with.
    let parsed = ParsedJws::parse(&signer.jws(&signer.kid_header(), PAYLOAD)).unwrap();
    assert_eq!(kind(parsed.verify_embedded()), ProblemType::Malformed);
}

#[test]
fn an_alg_that_does_not_go_with_the_key_is_bad_signature_algorithm() {
    for (signer, alg) in [
        (TestKey::p256(), "ES384"),
        (TestKey::p384(), "ES256"),
        (TestKey::rsa(), "EdDSA"),
        (TestKey::ed25519(), "RS256"),
    ] {
        let mut header = signer.kid_header();
        header["alg"] = alg.into();
        let parsed = ParsedJws::parse(&signer.jws(&header, PAYLOAD)).unwrap();
        let problem = parsed.verify(&account_key(&signer)).unwrap_err();
        assert_eq!(problem.kind, ProblemType::BadSignatureAlgorithm, "{alg}");
        assert_eq!(problem.to_json()["algorithms"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn none_and_mac_algorithms_are_bad_signature_algorithm() {
    let key = TestKey::p256();
    for alg in ["none", "HS256", "HS512", "es256", "PS256", "ES512"] {
        let mut header = key.kid_header();
        header["alg"] = alg.into();
        let protected = b64(header.to_string().as_bytes());
        let problem = ParsedJws::parse(&flattened(&protected, "", "")).unwrap_err();
        assert_eq!(problem.kind, ProblemType::BadSignatureAlgorithm, "{alg}");
        assert_eq!(
            problem.to_json()["algorithms"],
            json!(["ES256", "ES384", "RS256", "EdDSA"])
        );
    }
}

/// The header of `key` edited by `f`, signed: the problem type `parse` answers.
fn refusal(key: &TestKey, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> ProblemType {
    let Value::Object(mut header) = key.kid_header() else {
        unreachable!()
    };
    f(&mut header);
    kind(ParsedJws::parse(&key.jws(&Value::Object(header), PAYLOAD)))
}

#[test]
fn exactly_one_of_jwk_and_kid() {
    let key = TestKey::p256();
    let jwk = key.jwk();
    assert_eq!(
        refusal(&key, |h| {
            h.insert("jwk".into(), jwk);
        }),
        ProblemType::Malformed
    );
    assert_eq!(
        refusal(&key, |h| {
            h.remove("kid");
        }),
        ProblemType::Malformed
    );
    assert_eq!(
        refusal(&key, |h| {
            h.insert("jwk".into(), Value::Null);
        }),
        ProblemType::Malformed
    );
    assert_eq!(
        refusal(&key, |h| h["kid"] = "".into()),
        ProblemType::Malformed
    );
    assert_eq!(
        refusal(&key, |h| h["kid"] = 7.into()),
        ProblemType::Malformed
    );
}

#[test]
fn a_missing_nonce_is_bad_nonce_and_a_bad_one_malformed() {
    let key = TestKey::p256();
    assert_eq!(
        refusal(&key, |h| {
            h.remove("nonce");
        }),
        ProblemType::BadNonce
    );
    for nonce in [
        json!(""),
        json!("bm9uY2U="),
        json!("a+b/"),
        json!(1),
        json!(null),
    ] {
        assert_eq!(
            refusal(&key, |h| h["nonce"] = nonce.clone()),
            ProblemType::Malformed,
            "{nonce}"
        );
    }
}

#[test]
fn a_missing_url_is_malformed() {
    let key = TestKey::p256();
    assert_eq!(
        refusal(&key, |h| {
            h.remove("url");
        }),
        ProblemType::Malformed
    );
    assert_eq!(
        refusal(&key, |h| h["url"] = json!(["x"])),
        ProblemType::Malformed
    );
    assert_eq!(
        refusal(&key, |h| {
            h.remove("alg");
        }),
        ProblemType::Malformed
    );
}

#[test]
fn crit_and_b64_are_malformed() {
    let key = TestKey::p256();
    for (name, value) in [
        ("crit", json!(["exp"])),
        ("crit", json!(null)),
        ("b64", json!(false)),
    ] {
        assert_eq!(
            refusal(&key, |h| {
                h.insert(name.into(), value);
            }),
            ProblemType::Malformed,
            "{name}"
        );
    }
    // A registered parameter this layer does not read is ignored.
    let parsed = refusal_or_ok(&key, "typ", json!("JOSE"));
    assert!(parsed.is_ok());
}

fn refusal_or_ok(key: &TestKey, name: &str, value: Value) -> Result<ParsedJws, Problem> {
    let mut header = key.kid_header();
    header[name] = value;
    ParsedJws::parse(&key.jws(&header, PAYLOAD))
}

#[test]
fn a_private_member_in_the_jwk_is_refused() {
    let key = TestKey::p256();
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let mut header = key.jwk_header();
        header["jwk"][member] = "AQAB".into();
        let problem = ParsedJws::parse(&key.jws(&header, PAYLOAD)).unwrap_err();
        assert_eq!(problem.kind, ProblemType::BadPublicKey, "{member}");
    }
}

#[test]
fn padded_or_standard_alphabet_base64_is_malformed() {
    let key = TestKey::p256();
    let body = key.jws(&key.kid_header(), b"abcd");
    use base64::Engine as _;
    let map = members(&body);
    let part = |name: &str| map[name].as_str().unwrap().to_owned();
    let (protected, payload, signature) = (part("protected"), part("payload"), part("signature"));
    assert!(ParsedJws::parse(&flattened(&protected, &payload, &signature)).is_ok());
    // The same bytes with RFC 4648 section 5 padding (every part here has a partial block).
    let padded = |s: &str| {
        let padded = base64::engine::general_purpose::URL_SAFE.encode(common::unb64(s));
        assert!(padded.ends_with('='), "{s}");
        padded
    };
    let standard = |s: &str| s.replace('-', "+").replace('_', "/") + "+";
    let bodies = [
        flattened(&padded(&protected), &payload, &signature),
        flattened(&protected, &padded(&payload), &signature),
        flattened(&protected, &payload, &padded(&signature)),
        flattened(&protected, &payload, &format!("{signature}/")),
        flattened(&standard(&protected), &payload, &signature),
        flattened(&protected, &format!(" {payload}"), &signature),
    ];
    for body in bodies {
        assert_eq!(kind(ParsedJws::parse(&body)), ProblemType::Malformed);
    }
}

#[test]
fn only_the_flattened_serialization_with_its_three_members() {
    let key = TestKey::p256();
    let body = key.jws(&key.kid_header(), PAYLOAD);
    let map = members(&body);
    let general = json!({
        "payload": map["payload"],
        "signatures": [{"protected": map["protected"], "signature": map["signature"]}],
    });
    let with = |name: &str, value: Value| {
        let mut map = map.clone();
        map.insert(name.into(), value);
        Value::Object(map).to_string().into_bytes()
    };
    let without = |name: &str| {
        let mut map = map.clone();
        map.remove(name);
        Value::Object(map).to_string().into_bytes()
    };
    let compact = format!(
        "{}.{}.{}",
        map["protected"].as_str().unwrap(),
        map["payload"].as_str().unwrap(),
        map["signature"].as_str().unwrap()
    );
    let duplicate = String::from_utf8(body.clone()).unwrap().replacen(
        "{",
        &format!(r#"{{"payload":{},"#, map["payload"]),
        1,
    );
    let bodies = [
        general.to_string().into_bytes(),
        with("signatures", json!([])),
        with("header", json!({"kid": KID})),
        with("header", Value::Null),
        with("extra", json!(1)),
        without("payload"),
        without("signature"),
        with("payload", Value::Null),
        compact.into_bytes(),
        duplicate.into_bytes(),
        b"[]".to_vec(),
        Vec::new(),
    ];
    for body in bodies {
        assert_eq!(
            kind(ParsedJws::parse(&body)),
            ProblemType::Malformed,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn a_body_over_the_cap_is_malformed() {
    let key = TestKey::p256();
    let payload = vec![b'a'; MAX_JWS_BODY];
    let body = key.jws(&key.kid_header(), &payload);
    assert!(body.len() > MAX_JWS_BODY);
    let problem = ParsedJws::parse(&body).unwrap_err();
    assert_eq!(problem.kind, ProblemType::Malformed);
    assert!(problem.detail.contains("larger than"), "{problem}");
    // Just under the cap parses.
    let payload = vec![b'a'; MAX_JWS_BODY / 2];
    assert!(ParsedJws::parse(&key.jws(&key.kid_header(), &payload)).is_ok());
}

#[test]
fn details_quote_client_input_short_and_sanitized() {
    let key = TestKey::p256();
    let long = format!("\u{1b}[31m{}", "A".repeat(5000));
    let mut header = key.kid_header();
    header["alg"] = long.into();
    let problem = ParsedJws::parse(&key.jws(&header, PAYLOAD)).unwrap_err();
    assert!(problem.detail.len() < 120, "{}", problem.detail);
    assert!(!problem.detail.contains('\u{1b}'));
}

/// The inner JWS of a key change (RFC 8555 section 7.3.5): `jwk`, no nonce; anything else
/// is `malformed`.
#[test]
fn a_key_change_inner_jws_has_a_jwk_and_no_nonce() {
    let key = TestKey::p256();
    let mut header = key.jwk_header();
    header.as_object_mut().unwrap().remove("nonce");
    let inner = ParsedJws::parse_key_change(&key.jws(&header, PAYLOAD)).unwrap();
    assert_eq!(inner.header().nonce(), "");
    assert_eq!(inner.verify_embedded().unwrap().key(), &account_key(&key));
    // An outer request without a nonce is still badNonce.
    assert_eq!(
        kind(ParsedJws::parse(&key.jws(&header, PAYLOAD))),
        ProblemType::BadNonce
    );
    // With a nonce, or with kid, the inner JWS is refused.
    assert_eq!(
        kind(ParsedJws::parse_key_change(
            &key.jws(&key.jwk_header(), PAYLOAD)
        )),
        ProblemType::Malformed
    );
    let mut kid = key.kid_header();
    kid.as_object_mut().unwrap().remove("nonce");
    assert_eq!(
        kind(ParsedJws::parse_key_change(&key.jws(&kid, PAYLOAD))),
        ProblemType::Malformed
    );
}
