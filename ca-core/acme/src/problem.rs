//! ACME problem documents (RFC 8555 section 6.7, RFC 7807): the error types, the HTTP status
//! each is answered with, and the JSON document.

use serde_json::{json, Map, Value};

use crate::alg::JwsAlgorithm;

/// Longest piece of client input a problem's detail quotes, in characters.
pub const MAX_QUOTED: usize = 32;

macro_rules! problem_types {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $status:literal;)*) => {
        /// An ACME error type (RFC 8555 section 6.7), the `type` of a problem document.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ProblemType {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemType {
            /// Every error type of RFC 8555 section 6.7, in its table's order, and RFC 9773's.
            pub const ALL: &'static [ProblemType] = &[$(Self::$variant,)*];

            /// The name after `urn:ietf:params:acme:error:` (RFC 8555 section 6.7).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The URN of the type: `urn:ietf:params:acme:error:<name>` (RFC 8555 section 6.7).
            pub fn urn(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!("urn:ietf:params:acme:error:", $name),)*
                }
            }

            /// The HTTP status a problem of this type is answered with: the one table from
            /// type to status. RFC 8555 fixes some (400 for `badNonce` in section 6.5, 403 for
            /// `orderNotReady` in section 7.4 and `userActionRequired` in section 7.3.3, 429
            /// for `rateLimited` in section 6.6); the others follow the usual practice of
            /// ACME servers.
            pub fn status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)*
                }
            }
        }
    };
}

problem_types! {
    /// The request names an account that does not exist.
    AccountDoesNotExist = "accountDoesNotExist", 400;
    /// The certificate to revoke is already revoked.
    AlreadyRevoked = "alreadyRevoked", 400;
    /// The certificate a new order `replaces` was replaced by another order already
    /// (RFC 9773 section 5: 409).
    AlreadyReplaced = "alreadyReplaced", 409;
    /// The CSR is unacceptable.
    BadCsr = "badCSR", 400;
    /// The request's nonce is missing, malformed or not one the server issued (section 6.5).
    BadNonce = "badNonce", 400;
    /// The JWS was signed by a public key the server does not support.
    BadPublicKey = "badPublicKey", 400;
    /// The revocation reason is not allowed.
    BadRevocationReason = "badRevocationReason", 400;
    /// The JWS was signed with an algorithm the server does not support (section 6.2).
    BadSignatureAlgorithm = "badSignatureAlgorithm", 400;
    /// CAA records forbid the CA from issuing.
    Caa = "caa", 403;
    /// Several errors; see the subproblems (section 6.7.1).
    Compound = "compound", 400;
    /// The server could not connect to a validation target.
    Connection = "connection", 400;
    /// A DNS lookup failed during validation.
    Dns = "dns", 400;
    /// The request must include an external account binding (section 7.3.4).
    ExternalAccountRequired = "externalAccountRequired", 403;
    /// The response to a challenge did not match the server's expectation.
    IncorrectResponse = "incorrectResponse", 403;
    /// A contact URL of an account is invalid.
    InvalidContact = "invalidContact", 400;
    /// The request message is malformed.
    Malformed = "malformed", 400;
    /// The order is not ready to be finalized (section 7.4).
    OrderNotReady = "orderNotReady", 403;
    /// The request exceeds a rate limit (section 6.6).
    RateLimited = "rateLimited", 429;
    /// The server will not issue for the identifier.
    RejectedIdentifier = "rejectedIdentifier", 400;
    /// The server experienced an internal error.
    ServerInternal = "serverInternal", 500;
    /// The server received a TLS error during validation.
    Tls = "tls", 400;
    /// The client lacks sufficient authorization.
    Unauthorized = "unauthorized", 403;
    /// A contact URL's scheme is not supported.
    UnsupportedContact = "unsupportedContact", 400;
    /// An identifier's type is not supported.
    UnsupportedIdentifier = "unsupportedIdentifier", 400;
    /// The client must visit the `instance` URL and act (section 7.3.3).
    UserActionRequired = "userActionRequired", 403;
}

impl std::fmt::Display for ProblemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An identifier a subproblem is about (RFC 8555 section 7.1.3: `type` and `value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identifier {
    /// The identifier type, `dns` or `ip` (RFC 8555 section 9.7.7, RFC 8738).
    pub kind: String,
    /// The identifier itself.
    pub value: String,
}

/// One of the errors of a `compound` problem (RFC 8555 section 6.7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subproblem {
    /// The error type.
    pub kind: ProblemType,
    /// What went wrong, for a human.
    pub detail: String,
    /// The identifier the error is about, when there is one.
    pub identifier: Option<Identifier>,
}

/// An ACME error: a problem document (RFC 7807) of an RFC 8555 section 6.7 type.
///
/// Its detail is written by this crate; when it quotes client input, the quote goes through
/// [`quote`] (short, printable ASCII only).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Problem {
    /// The error type.
    pub kind: ProblemType,
    /// What went wrong, for a human.
    pub detail: String,
    /// The errors of a `compound` problem (RFC 8555 section 6.7.1).
    pub subproblems: Vec<Subproblem>,
    /// The algorithms the server accepts, listed in a `badSignatureAlgorithm` problem (RFC 8555
    /// section 6.2); empty otherwise.
    pub algorithms: Vec<JwsAlgorithm>,
}

impl Problem {
    /// A problem of `kind` with a detail and nothing else.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            subproblems: Vec::new(),
            algorithms: Vec::new(),
        }
    }

    /// A `malformed` problem.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Malformed, detail)
    }

    /// A `badPublicKey` problem.
    pub fn bad_public_key(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::BadPublicKey, detail)
    }

    /// A `badSignatureAlgorithm` problem listing every accepted algorithm, as RFC 8555 section
    /// 6.2 requires.
    pub fn bad_signature_algorithm(detail: impl Into<String>) -> Self {
        Self {
            algorithms: JwsAlgorithm::ALL.to_vec(),
            ..Self::new(ProblemType::BadSignatureAlgorithm, detail)
        }
    }

    /// One problem for the identifiers of a request that were refused, each a subproblem
    /// (RFC 8555 section 6.7.1): of their common type when they share one, `compound`
    /// otherwise; a single refusal keeps its own detail.
    pub fn for_identifiers(refused: Vec<(Identifier, Problem)>) -> Problem {
        let kind = match refused.first() {
            Some((_, first)) if refused.iter().all(|(_, p)| p.kind == first.kind) => first.kind,
            _ => ProblemType::Compound,
        };
        let detail = match refused.as_slice() {
            [(_, only)] => only.detail.clone(),
            _ => format!("{} identifiers were refused", refused.len()),
        };
        let mut problem = Problem::new(kind, detail);
        problem.subproblems = refused
            .into_iter()
            .map(|(identifier, p)| Subproblem {
                kind: p.kind,
                detail: p.detail,
                identifier: Some(identifier),
            })
            .collect();
        problem
    }

    /// The HTTP status of the answer: [`ProblemType::status`] of its type.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The problem document (RFC 7807 section 3.1, RFC 8555 section 6.7), served as
    /// `application/problem+json`: `type`, `detail`, `status`, and `subproblems` (each with
    /// its `identifier` when it has one) or `algorithms` when there are any.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("type".into(), self.kind.urn().into());
        doc.insert("detail".into(), self.detail.clone().into());
        doc.insert("status".into(), self.status().into());
        if !self.subproblems.is_empty() {
            let subproblems = self.subproblems.iter().map(|sub| {
                let mut entry = Map::new();
                entry.insert("type".into(), sub.kind.urn().into());
                entry.insert("detail".into(), sub.detail.clone().into());
                if let Some(identifier) = &sub.identifier {
                    entry.insert(
                        "identifier".into(),
                        json!({"type": identifier.kind, "value": identifier.value}),
                    );
                }
                Value::Object(entry)
            });
            doc.insert("subproblems".into(), subproblems.collect());
        }
        if !self.algorithms.is_empty() {
            let names = self.algorithms.iter().map(|alg| Value::from(alg.name()));
            doc.insert("algorithms".into(), names.collect());
        }
        Value::Object(doc)
    }
}

/// A piece of client input fit to quote in a problem's detail: at most [`MAX_QUOTED`]
/// characters, every one outside printable ASCII replaced by `?`, and `...` when cut.
pub fn quote(input: &str) -> String {
    let mut out: String = input
        .chars()
        .take(MAX_QUOTED)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if input.chars().nth(MAX_QUOTED).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_urn_and_a_status() {
        assert_eq!(ProblemType::ALL.len(), 25);
        for kind in ProblemType::ALL {
            assert_eq!(
                kind.urn(),
                format!("urn:ietf:params:acme:error:{}", kind.name())
            );
            assert!(
                matches!(kind.status(), 400 | 403 | 409 | 429 | 500),
                "{kind}"
            );
        }
        assert_eq!(ProblemType::BadNonce.status(), 400);
        assert_eq!(ProblemType::Unauthorized.status(), 403);
        assert_eq!(ProblemType::RateLimited.status(), 429);
        assert_eq!(ProblemType::AlreadyReplaced.status(), 409);
        assert_eq!(ProblemType::ServerInternal.status(), 500);
        assert_eq!(
            ProblemType::BadCsr.urn(),
            "urn:ietf:params:acme:error:badCSR"
        );
    }

    #[test]
    fn the_document_has_type_detail_status_and_subproblems() {
        let mut problem = Problem::new(ProblemType::Compound, "two names refused");
        problem.subproblems.push(Subproblem {
            kind: ProblemType::RejectedIdentifier,
            detail: "not ours".into(),
            identifier: Some(Identifier {
                kind: "dns".into(),
                value: "example.org".into(),
            }),
        });
        problem.subproblems.push(Subproblem {
            kind: ProblemType::Caa,
            detail: "CAA forbids".into(),
            identifier: None,
        });
        assert_eq!(
            problem.to_json(),
            json!({
                "type": "urn:ietf:params:acme:error:compound",
                "detail": "two names refused",
                "status": 400,
                "subproblems": [
                    {
                        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                        "detail": "not ours",
                        "identifier": {"type": "dns", "value": "example.org"}
                    },
                    {"type": "urn:ietf:params:acme:error:caa", "detail": "CAA forbids"}
                ]
            })
        );
        assert_eq!(problem.to_string(), "compound: two names refused");
    }

    #[test]
    fn a_bad_signature_algorithm_lists_the_accepted_ones() {
        let doc = Problem::bad_signature_algorithm("no").to_json();
        assert_eq!(
            doc["algorithms"],
            json!(["ES256", "ES384", "RS256", "EdDSA"])
        );
    }

    #[test]
    fn quotes_are_short_and_printable() {
        assert_eq!(quote("HS256"), "HS256");
        assert_eq!(quote("a\nb\u{7f}\u{e9}"), "a?b??");
        let long = "x".repeat(1000);
        assert_eq!(quote(&long), format!("{}...", "x".repeat(MAX_QUOTED)));
    }
}
