//! Request authentication (RFC 8555 section 6.2): the flattened JWS JSON serialization
//! (RFC 7515 section 7.2.2) of every ACME POST, parsed once and verified with the account's
//! key. Only verification yields the payload: [`ParsedJws`] becomes [`VerifiedJws`].
//!
//! The nonce (RFC 8555 section 6.5) and the URL (section 6.4) are only read here; checking
//! them against the server's nonces and the request's URL is the server's.

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::alg::JwsAlgorithm;
use crate::b64;
use crate::jwk::AccountKey;
use crate::problem::{quote, Problem, ProblemType};

/// Largest request body accepted, in bytes: a `finalize` with an RSA-8192 CSR of a hundred
/// names is ~10 KiB of JWS.
pub const MAX_JWS_BODY: usize = 64 * 1024;

/// How a request names its key (RFC 8555 section 6.2): exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// The `jwk` header parameter: the key itself, for `newAccount` and for `revokeCert`
    /// signed with the certificate's key (RFC 8555 sections 7.3 and 7.6).
    Jwk(AccountKey),
    /// The `kid` header parameter: the account URL, for every other request.
    Kid(String),
}

/// The members of the flattened serialization (RFC 7515 section 7.2.2). `header` and
/// `signatures` are named only to refuse them; any other member is refused by
/// `deny_unknown_fields`, and a repeated one by serde.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: Option<String>,
    payload: Option<String>,
    signature: Option<String>,
    #[serde(default, deserialize_with = "present")]
    header: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    signatures: Option<IgnoredAny>,
}

/// The protected header's parameters this layer reads (RFC 7515 section 4.1, RFC 8555
/// section 6.2). Others are ignored (RFC 7515 section 4); a repeated one is refused by serde.
#[derive(Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "present")]
    alg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nonce: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    url: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    jwk: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    kid: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    b64: Option<IgnoredAny>,
}

/// A member that is there, even as `null`: `Some`, so that `"jwk": null` counts as present.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Which JWS [`ParsedJws::parse_as`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A request (RFC 8555 section 6.2).
    Request,
    /// The inner JWS of a key change (section 7.3.5).
    KeyChange,
}

/// The protected header parameters of a request that RFC 8555 section 6.2 requires, as a
/// [`ParsedJws`] read them and a [`VerifiedJws`] keeps them.
#[derive(Clone, Debug)]
pub struct JwsHeader {
    alg: JwsAlgorithm,
    nonce: String,
    url: String,
    key: KeyRef,
}

impl JwsHeader {
    /// The `alg` header parameter.
    pub fn alg(&self) -> JwsAlgorithm {
        self.alg
    }

    /// The `nonce` header parameter, as received (base64url), for the server to check and
    /// consume (RFC 8555 section 6.5).
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The `url` header parameter, for the server to compare with the request's URL (RFC 8555
    /// section 6.4).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key the request names: `jwk` or `kid` (RFC 8555 section 6.2).
    pub fn key_ref(&self) -> &KeyRef {
        &self.key
    }

    /// The key of the `jwk` form, `None` for the `kid` form: what `newAccount` and
    /// `revokeCert` signed with the certificate's key verify with (RFC 8555 sections 7.3 and
    /// 7.6).
    pub fn embedded_key(&self) -> Option<&AccountKey> {
        match &self.key {
            KeyRef::Jwk(key) => Some(key),
            KeyRef::Kid(_) => None,
        }
    }
}

/// A JWS whose form and protected header follow RFC 8555 section 6.2, its signature not yet
/// checked. Its payload is reachable only through [`verify`](Self::verify).
#[derive(Clone, Debug)]
pub struct ParsedJws {
    header: JwsHeader,
    signing_input: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl ParsedJws {
    /// Parses a request body (RFC 8555 section 6.2, RFC 7515 section 7.2.2).
    ///
    /// Accepted: a JSON object of at most [`MAX_JWS_BODY`] bytes with exactly the members
    /// `protected`, `payload` and `signature`, each unpadded base64url (the payload may be
    /// empty: POST-as-GET, RFC 8555 section 6.3). The protected header is a JSON object with
    /// `alg` one of [`JwsAlgorithm::ALL`], `nonce`, `url`, and exactly one of `jwk` and `kid`.
    ///
    /// Refused as `malformed`: another form (compact, or the general serialization with
    /// `signatures`), an unprotected `header` (RFC 8555 section 6.2 puts every parameter in
    /// the protected header), any other member, a `crit` (RFC 7515 section 4.1.11: this
    /// layer understands no extension) or `b64` (RFC 7797) parameter, a `url` that is not a
    /// string, a nonce that is not non-empty base64url (RFC 8555 section 6.5.2), both or
    /// neither of `jwk` and `kid`. Refused as `badSignatureAlgorithm`: any other `alg`,
    /// `none` and the MAC algorithms among them (RFC 8555 section 6.2). Refused as
    /// `badNonce`: a missing nonce (RFC 8555 section 6.5: a nonce "unacceptable (or not
    /// present)"). A `jwk` must parse as an [`AccountKey`].
    pub fn parse(body: &[u8]) -> Result<Self, Problem> {
        Self::parse_as(body, Form::Request)
    }

    /// Parses the inner JWS of a key change (RFC 8555 section 7.3.5): the payload of the
    /// outer request, signed with the new key. As [`parse`](Self::parse), except that it
    /// must carry its key as `jwk` and no `nonce` (`malformed` otherwise);
    /// [`JwsHeader::nonce`] is empty.
    pub fn parse_key_change(body: &[u8]) -> Result<Self, Problem> {
        Self::parse_as(body, Form::KeyChange)
    }

    fn parse_as(body: &[u8], form: Form) -> Result<Self, Problem> {
        if body.len() > MAX_JWS_BODY {
            return Err(Problem::malformed(format!(
                "the request body is larger than {MAX_JWS_BODY} bytes"
            )));
        }
        let flattened: Flattened = serde_json::from_slice(body).map_err(|_| {
            Problem::malformed(
                "the body is not a flattened JWS JSON serialization \
                 (exactly protected, payload, signature)",
            )
        })?;
        if flattened.signatures.is_some() {
            return Err(Problem::malformed(
                "the general JWS JSON serialization is not accepted: use the flattened one",
            ));
        }
        if flattened.header.is_some() {
            return Err(Problem::malformed(
                "an unprotected JWS header is not accepted: every parameter is protected",
            ));
        }
        let (Some(protected), Some(payload), Some(signature)) =
            (flattened.protected, flattened.payload, flattened.signature)
        else {
            return Err(Problem::malformed(
                "the JWS needs the members protected, payload and signature",
            ));
        };

        let header_bytes = b64::decode("protected", &protected)?;
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|_| Problem::malformed("the protected header is not a JSON object"))?;
        if header.crit.is_some() {
            return Err(Problem::malformed(
                "the crit header parameter is not accepted: no extension is understood",
            ));
        }
        if header.b64.is_some() {
            return Err(Problem::malformed(
                "the b64 header parameter (RFC 7797) is not accepted",
            ));
        }
        let alg = match header.alg {
            Some(Value::String(name)) => JwsAlgorithm::from_name(&name).ok_or_else(|| {
                Problem::bad_signature_algorithm(format!(
                    "the algorithm \"{}\" is not accepted",
                    quote(&name)
                ))
            })?,
            Some(_) => {
                return Err(Problem::malformed(
                    "the alg header parameter is not a string",
                ))
            }
            None => return Err(Problem::malformed("the protected header has no alg")),
        };
        let nonce = match header.nonce {
            None if form == Form::KeyChange => String::new(),
            Some(_) if form == Form::KeyChange => {
                return Err(Problem::malformed(
                    "the inner JWS of a key change must not carry a nonce",
                ))
            }
            Some(Value::String(nonce)) => nonce,
            Some(_) => {
                return Err(Problem::malformed(
                    "the nonce header parameter is not a string",
                ))
            }
            None => {
                return Err(Problem::new(
                    ProblemType::BadNonce,
                    "the protected header has no nonce",
                ))
            }
        };
        if form == Form::Request && b64::decode("the nonce", &nonce)?.is_empty() {
            return Err(Problem::malformed("the nonce is empty"));
        }
        let url = match header.url {
            Some(Value::String(url)) => url,
            Some(_) => {
                return Err(Problem::malformed(
                    "the url header parameter is not a string",
                ))
            }
            None => return Err(Problem::malformed("the protected header has no url")),
        };
        if form == Form::KeyChange && header.kid.is_some() {
            return Err(Problem::malformed(
                "the inner JWS of a key change must carry the new key as jwk",
            ));
        }
        let key = match (header.jwk, header.kid) {
            (Some(jwk), None) => KeyRef::Jwk(AccountKey::from_jwk(&jwk)?),
            (None, Some(Value::String(kid))) if !kid.is_empty() => KeyRef::Kid(kid),
            (None, Some(_)) => {
                return Err(Problem::malformed(
                    "the kid header parameter is not a URL string",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Problem::malformed(
                    "the protected header has both jwk and kid: exactly one is allowed",
                ))
            }
            (None, None) => {
                return Err(Problem::malformed(
                    "the protected header has neither jwk nor kid: exactly one is required",
                ))
            }
        };

        let payload_bytes = b64::decode("payload", &payload)?;
        let signature = b64::decode("signature", &signature)?;
        let mut signing_input = Vec::with_capacity(protected.len() + 1 + payload.len());
        signing_input.extend_from_slice(protected.as_bytes());
        signing_input.push(b'.');
        signing_input.extend_from_slice(payload.as_bytes());
        Ok(Self {
            header: JwsHeader {
                alg,
                nonce,
                url,
                key,
            },
            signing_input,
            payload: payload_bytes,
            signature,
        })
    }

    /// The protected header's parameters.
    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The JWS Signing Input (RFC 7515 section 5.1 step 8): `protected`, `.`, `payload`, as
    /// the ASCII of the base64url received.
    pub fn signing_input(&self) -> &[u8] {
        &self.signing_input
    }

    /// Verifies the signature with `key` (RFC 8555 section 6.2): the account's key for the
    /// `kid` form, the embedded one for the `jwk` form (a different key is refused as
    /// `malformed`).
    ///
    /// An `alg` that does not go with the key is `badSignatureAlgorithm` (RFC 8555 section
    /// 6.2). A signature that does not verify is `malformed`: RFC 8555 section 6.2 requires
    /// the server to reject such a request without naming a type, and Boulder and Pebble
    /// answer `malformed`.
    pub fn verify(self, key: &AccountKey) -> Result<VerifiedJws, Problem> {
        if let Some(embedded) = self.header.embedded_key() {
            if embedded != key {
                return Err(Problem::malformed(
                    "the JWS carries a jwk other than the key it is verified with",
                ));
            }
        }
        key.verify(self.header.alg, &self.signing_input, &self.signature)?;
        Ok(VerifiedJws {
            header: self.header,
            verified_with: key.clone(),
            payload: self.payload,
        })
    }

    /// [`verify`](Self::verify) with the embedded key of the `jwk` form; the `kid` form is
    /// `malformed` here (RFC 8555 section 7.3: `newAccount` must carry `jwk`).
    pub fn verify_embedded(self) -> Result<VerifiedJws, Problem> {
        match self.header.embedded_key().cloned() {
            Some(key) => self.verify(&key),
            None => Err(Problem::malformed(
                "this request must carry its key as jwk, not kid",
            )),
        }
    }
}

/// A request whose signature verified with an account key (RFC 8555 section 6.2): the only
/// way to its payload.
#[derive(Clone, Debug)]
pub struct VerifiedJws {
    header: JwsHeader,
    verified_with: AccountKey,
    payload: Vec<u8>,
}

impl VerifiedJws {
    /// The decoded payload: the request's JSON, or empty for POST-as-GET (RFC 8555 section
    /// 6.3).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether this is a POST-as-GET request: an empty payload (RFC 8555 section 6.3).
    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }

    /// The protected header's parameters.
    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The key the signature verified with.
    pub fn key(&self) -> &AccountKey {
        &self.verified_with
    }
}
