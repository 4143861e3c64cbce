//! External Account Binding (RFC 8555 section 7.3.4): the MAC-protected JWS inside a
//! `newAccount` request that binds the new account to a key the CA handed out beforehand.

use ring::hmac;
use serde::Deserialize;
use serde_json::Value;

use crate::b64;
use crate::jwk::AccountKey;
use crate::problem::{quote, Problem, ProblemType};

/// Smallest EAB MAC key accepted, in bytes.
pub const MIN_MAC_KEY: usize = 32;

/// The MAC algorithms of an EAB JWS (RFC 7518 section 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlgorithm {
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl MacAlgorithm {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(MacAlgorithm::Hs256),
            "HS384" => Some(MacAlgorithm::Hs384),
            "HS512" => Some(MacAlgorithm::Hs512),
            _ => None,
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            MacAlgorithm::Hs256 => hmac::HMAC_SHA256,
            MacAlgorithm::Hs384 => hmac::HMAC_SHA384,
            MacAlgorithm::Hs512 => hmac::HMAC_SHA512,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
    url: String,
    #[serde(default)]
    nonce: Option<Value>,
    #[serde(default)]
    crit: Option<Value>,
}

/// An `externalAccountBinding` value read but not yet verified: [`kid`](Self::kid) names the
/// MAC key to [`verify`](Self::verify) it with.
#[derive(Debug)]
pub struct ParsedEab {
    alg: MacAlgorithm,
    kid: String,
    url: String,
    signing_input: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn eab_malformed(detail: &str) -> Problem {
    Problem::malformed(format!("externalAccountBinding: {detail}"))
}

impl ParsedEab {
    /// Reads the binding: a flattened JWS whose protected header has `alg` (HS256, HS384 or
    /// HS512), `kid` and `url`, and no `nonce` (RFC 8555 section 7.3.4).
    pub fn parse(value: &Value) -> Result<Self, Problem> {
        let flattened: Flattened = serde_json::from_value(value.clone())
            .map_err(|_| eab_malformed("not a flattened JWS (protected, payload, signature)"))?;
        let header_bytes = b64::decode("the binding's protected header", &flattened.protected)?;
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|_| eab_malformed("the protected header needs alg, kid and url strings"))?;
        if header.nonce.is_some() {
            return Err(eab_malformed("the protected header must not carry a nonce"));
        }
        if header.crit.is_some() {
            return Err(eab_malformed("the crit header parameter is not accepted"));
        }
        let alg = MacAlgorithm::from_name(&header.alg).ok_or_else(|| {
            Problem::bad_signature_algorithm(format!(
                "externalAccountBinding: \"{}\" is not HS256, HS384 or HS512",
                quote(&header.alg)
            ))
        })?;
        if header.kid.is_empty() {
            return Err(eab_malformed("the kid is empty"));
        }
        let mut signing_input = flattened.protected.clone().into_bytes();
        signing_input.push(b'.');
        signing_input.extend_from_slice(flattened.payload.as_bytes());
        Ok(ParsedEab {
            alg,
            kid: header.kid,
            url: header.url,
            signing_input,
            payload: b64::decode("the binding's payload", &flattened.payload)?,
            signature: b64::decode("the binding's signature", &flattened.signature)?,
        })
    }

    /// The key identifier the binding names.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Verifies the binding: its `url` is `url` (the newAccount URL), its payload is the
    /// account key (`account_key`, compared by thumbprint), and its MAC verifies with
    /// `mac_key` (in constant time). A MAC that does not verify is `unauthorized`.
    pub fn verify(
        self,
        mac_key: &[u8],
        account_key: &AccountKey,
        url: &str,
    ) -> Result<(), Problem> {
        if self.url != url {
            return Err(eab_malformed("its url is not the newAccount URL"));
        }
        let bound = AccountKey::from_json(&self.payload)
            .map_err(|_| eab_malformed("its payload is not the account's public JWK"))?;
        if bound != *account_key {
            return Err(eab_malformed(
                "its payload is not the key the request is signed with",
            ));
        }
        let key = hmac::Key::new(self.alg.ring(), mac_key);
        hmac::verify(&key, &self.signing_input, &self.signature).map_err(|_| {
            Problem::new(
                ProblemType::Unauthorized,
                "externalAccountBinding: the MAC does not verify with the key of this kid",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JWK: &str =
        r#"{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    fn binding(alg: &str, kid: &str, url: &str, payload: &[u8], key: &[u8]) -> Value {
        let protected = b64::encode(
            json!({"alg": alg, "kid": kid, "url": url})
                .to_string()
                .as_bytes(),
        );
        let payload = b64::encode(payload);
        let input = format!("{protected}.{payload}");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
        json!({"protected": protected, "payload": payload, "signature": b64::encode(tag.as_ref())})
    }

    #[test]
    fn a_binding_verifies_only_with_its_key_url_and_account_key() {
        let account = AccountKey::from_json(JWK.as_bytes()).unwrap();
        let mac = [7u8; 32];
        let url = "https://ca.example/acme/new-account";
        let eab = ParsedEab::parse(&binding("HS256", "kid-1", url, JWK.as_bytes(), &mac)).unwrap();
        assert_eq!(eab.kid(), "kid-1");
        eab.verify(&mac, &account, url).unwrap();

        let wrong_mac = ParsedEab::parse(&binding("HS256", "kid-1", url, JWK.as_bytes(), &[8; 32]))
            .unwrap()
            .verify(&mac, &account, url)
            .unwrap_err();
        assert_eq!(wrong_mac.kind, ProblemType::Unauthorized);
        let wrong_url = ParsedEab::parse(&binding(
            "HS256",
            "kid-1",
            "https://x/",
            JWK.as_bytes(),
            &mac,
        ))
        .unwrap()
        .verify(&mac, &account, url)
        .unwrap_err();
        assert_eq!(wrong_url.kind, ProblemType::Malformed);
        let other =
            br#"{"crv":"Ed25519","kty":"OKP","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
        let wrong_key = ParsedEab::parse(&binding("HS256", "kid-1", url, other, &mac))
            .unwrap()
            .verify(&mac, &account, url)
            .unwrap_err();
        assert_eq!(wrong_key.kind, ProblemType::Malformed);
        let rs =
            ParsedEab::parse(&binding("RS256", "kid-1", url, JWK.as_bytes(), &mac)).unwrap_err();
        assert_eq!(rs.kind, ProblemType::BadSignatureAlgorithm);
    }
}
