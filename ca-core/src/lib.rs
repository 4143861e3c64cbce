//! The CA core: profiles, CSR validation, certificate building, the issuance engine and the
//! RocksDB store.
//!
//! Layers, each talking to the next through a small typed interface (after Boulder's split
//! into registration authority, certificate authority and storage authority):
//!
//! - [`csr`] parses a PKCS#10 request once and verifies its proof of possession;
//! - [`profile`] checks it against a certificate profile, giving a
//!   [`profile::ValidatedRequest`];
//! - [`authority`] builds and signs the certificate (RFC 5280) with a [`keys::Signer`], from
//!   a DER template per profile (`template`) that leaves only the per-certificate fields to
//!   write;
//! - [`store`] records it durably in RocksDB, through a single group-committing writer;
//! - [`engine`] runs the above on a worker pool behind a bounded queue.

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod armor;
pub mod audit;
pub mod authority;
pub mod crl;
pub mod csr;
pub mod engine;
pub mod enrolment;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod metrics;
pub mod name;
pub mod ocsp;
pub mod pkcs12;
pub mod profile;
pub mod revocation;
pub mod serial;
pub mod server_tls;
pub mod store;
mod template;

pub use error::{CaError, ErrorClass};
pub use serial::Serial;
