//! The ACME protocol's pure layer (RFC 8555): JWS requests, account keys, request payloads,
//! identifiers, key authorizations, object states, problem documents. No storage, no async
//! runtime.
//!
//! - [`jws`]: request authentication (RFC 8555 section 6.2): [`ParsedJws::parse`], then
//!   [`ParsedJws::verify`] with the account's key, which alone gives a [`VerifiedJws`] and its
//!   payload.
//! - [`jwk`]: account keys (RFC 7517, RFC 7518 section 6, RFC 8037), their RFC 7638
//!   thumbprints and signature verification.
//! - [`alg`]: the accepted JWS algorithms.
//! - [`messages`]: the payloads of the requests (RFC 8555 section 7).
//! - [`identifier`]: `dns` and `ip` identifiers (RFC 8555 section 7.1.3, RFC 8738).
//! - [`eab`]: External Account Binding (RFC 8555 section 7.3.4).
//! - [`challenge`]: challenge types and key authorizations (RFC 8555 section 8).
//! - [`status`]: the states of accounts, orders, authorizations and challenges.
//! - [`problem`]: the error types of RFC 8555 section 6.7 with their HTTP statuses, and the
//!   problem document (RFC 7807).

#![forbid(unsafe_code)]

pub mod alg;
mod b64;
pub mod challenge;
pub mod eab;
pub mod identifier;
pub mod jwk;
pub mod jws;
pub mod messages;
pub mod problem;
pub mod status;

pub use alg::JwsAlgorithm;
pub use challenge::ChallengeType;
pub use identifier::AcmeIdentifier;
pub use jwk::{AccountKey, AccountKeyKind};
pub use jws::{JwsHeader, KeyRef, ParsedJws, VerifiedJws, MAX_JWS_BODY};
pub use problem::{Identifier, Problem, ProblemType, Subproblem};
pub use status::{AccountStatus, AuthzStatus, ChallengeStatus, OrderStatus};

/// base64url without padding (RFC 7515 section 2), as ACME objects use it for tokens,
/// nonces and certificate identifiers.
pub fn b64url(bytes: &[u8]) -> String {
    b64::encode(bytes)
}
