//! The ACME protocol's pure layer (RFC 8555): JWS requests, account keys, problem documents.
//! No storage, no async runtime.
//!
//! - [`jws`]: request authentication (RFC 8555 section 6.2): [`ParsedJws::parse`], then
//!   [`ParsedJws::verify`] with the account's key, which alone gives a [`VerifiedJws`] and its
//!   payload.
//! - [`jwk`]: account keys (RFC 7517, RFC 7518 section 6, RFC 8037), their RFC 7638
//!   thumbprints and signature verification.
//! - [`alg`]: the accepted JWS algorithms.
//! - [`problem`]: the error types of RFC 8555 section 6.7 with their HTTP statuses, and the
//!   problem document (RFC 7807).

#![forbid(unsafe_code)]

pub mod alg;
mod b64;
pub mod jwk;
pub mod jws;
pub mod problem;

pub use alg::JwsAlgorithm;
pub use jwk::{AccountKey, AccountKeyKind};
pub use jws::{JwsHeader, KeyRef, ParsedJws, VerifiedJws, MAX_JWS_BODY};
pub use problem::{Identifier, Problem, ProblemType, Subproblem};
