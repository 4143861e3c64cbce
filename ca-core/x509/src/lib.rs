//! The CA's pure X.509 layer: everything that turns bytes into certificates, CRLs and OCSP
//! answers and back, with no storage, no async runtime and no thread pool, so that an offline
//! tool (a key ceremony) or a fuzz target can use it alone.
//!
//! - [`csr`] parses a PKCS#10 request (RFC 2986) once and verifies its proof of possession;
//!   [`weak_rsa`] refuses RSA keys whose factors can be computed (a small factor, ROCA,
//!   Fermat's method; CA/Browser Forum Baseline Requirements section 6.1.1.3);
//! - [`profile`] checks it against a certificate profile, giving a
//!   [`profile::ValidatedRequest`]; a CA profile ([`ca_profile`]) issues subordinate CA
//!   certificates with a path length and name constraints;
//! - [`authority`] builds and signs the certificate (RFC 5280) with a [`keys::Signer`], from
//!   a DER template per profile that leaves only the per-certificate fields to write;
//! - [`crl`] encodes complete and delta CRLs (RFC 5280 section 5), [`ocsp`] answers OCSP
//!   requests (RFC 6960) through a status lookup the caller provides, [`pkcs12`] writes
//!   PKCS#12 files (RFC 7292), [`est`] the bodies of EST (RFC 7030) and [`server_key`] its
//!   encrypted server-generated keys (RFC 7030 section 4.4.2);
//! - [`spki`] encodes a subject key's SubjectPublicKeyInfo and hashes it (the identity of a
//!   key on the block list of keys reported compromised);
//! - [`serial`], [`name`], [`revocation`], [`armor`] and [`time_format`] are the shared
//!   vocabulary, [`oid`] every object identifier with its RFC, and [`error`] the one error
//!   type with its API code.
//!
//! `ca-core` puts the engine and the store on top of this crate; `cargo tree -p ca-x509 -e
//! normal` shows no RocksDB, tokio, rayon or crossbeam (checked by
//! `ca-core/tests/layering.rs`).

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod armor;
pub mod authority;
pub mod ca_profile;
pub mod conformance;
pub mod crl;
pub mod csr;
pub mod der_util;
pub mod error;
pub mod est;
#[doc(hidden)]
pub mod fuzzing;
pub mod hostname;
pub mod inspect;
pub mod name;
pub mod ocsp;
pub mod oid;
pub mod other_name;
pub mod pkcs12;
pub mod policy;
pub mod profile;
pub mod revocation;
pub mod serial;
pub mod server_key;
pub mod server_tls;
pub mod spki;
mod template;
pub mod time_format;
pub mod urls;
pub mod weak_rsa;

pub use error::{CaError, ErrorClass};
pub use serial::Serial;
