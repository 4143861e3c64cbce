//! The Certificate Management Protocol's pure layer: RFC 9810 (CMP, obsoleting RFC 4210 and
//! RFC 9480) as the lightweight profile of RFC 9483 uses it, over the typed ASN.1 of
//! RustCrypto's `cmpv2` and `crmf` crates.
//!
//! [`Received`] reads a request PKIMessage of pvno 2 or 3 ([`decode`] one of pvno 2); [`mac`] checks and computes password-based MAC
//! protection (RFC 9810 section 5.1.3.1); [`answer`] builds the answers (ip, cp, kup, rp,
//! genp, pkiConf, error) and protects them. No storage, no async runtime: the server's
//! front end (`ca-server/src/cmp/`) joins this to the engine.

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod answer;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod general;
pub mod mac;
pub mod received;
pub mod request;

pub use answer::{Answer, Envelope, FailureInfo, MacProtector, Protector};
pub use crmf::request::CertReqMsg;
pub use error::CmpError;
pub use received::{Received, Version};
pub use request::{
    cert_hash, certificate_hash, decode, protected_part, ra_key_proof, signature_pop,
    template_names, CertKind, KeyProof, Request, SignaturePop, TemplateNames, MAX_MESSAGE,
};

/// The media type of a DER PKIMessage over HTTP (RFC 9811 section 3.4).
pub const CONTENT_TYPE: &str = "application/pkixcmp";
