//! Properties on generated input: the parsers never panic, whatever they are given.

use ca_acme::{AccountKey, ParsedJws};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON values of a few levels, strings drawn from JWK-like text so that some reach the
/// per-type checks.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[A-Za-z0-9_=+/-]{0,80}".prop_map(Value::String),
        prop_oneof![
            Just("EC"),
            Just("RSA"),
            Just("OKP"),
            Just("P-256"),
            Just("P-384"),
            Just("Ed25519"),
            Just("AQAB"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((jwk_member(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn jwk_member() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kty"),
        Just("crv"),
        Just("x"),
        Just("y"),
        Just("n"),
        Just("e"),
        Just("d"),
        Just("kid"),
    ]
    .prop_map(String::from)
}

proptest! {
    #[test]
    fn jws_parse_never_panics(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(parsed) = ParsedJws::parse(&body) {
            let _ = parsed.verify_embedded();
        }
    }

    #[test]
    fn jws_parse_of_json_objects_never_panics(
        members in prop::collection::vec(
            (prop_oneof![Just("protected"), Just("payload"), Just("signature"), Just("header")],
             "[A-Za-z0-9_=-]{0,64}"),
            0..5,
        )
    ) {
        let body: Map<String, Value> = members
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::String(value)))
            .collect();
        let _ = ParsedJws::parse(Value::Object(body).to_string().as_bytes());
    }

    #[test]
    fn jwk_parse_never_panics(jwk in json_value()) {
        if let Ok(key) = AccountKey::from_jwk(&jwk) {
            let again = AccountKey::from_json(key.to_canonical_json().as_bytes());
            prop_assert_eq!(again.ok(), Some(key));
        }
    }
}
