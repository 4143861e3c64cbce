//! The CA core: the issuance engine and the RocksDB store, on top of the pure X.509 layer
//! ([`ca_x509`], re-exported here module by module).
//!
//! Layers, each talking to the next through a small typed interface (after Boulder's split
//! into registration authority, certificate authority and storage authority):
//!
//! - [`csr`] parses a PKCS#10 request once and verifies its proof of possession;
//! - [`profile`] checks it against a certificate profile, giving a
//!   [`profile::ValidatedRequest`];
//! - [`authority`] builds the certificate (RFC 5280) from a DER template per profile that
//!   leaves only the per-certificate fields to write, up to the signature;
//! - the signing stage has it signed by the [`keys::Signer`]: on the worker for a key in
//!   memory, on `[engine] signers` threads for a key in an HSM;
//! - [`store`] records it durably in RocksDB, through a single group-committing writer;
//! - [`engine`] runs the above on worker threads behind a bounded queue;
//! - [`crl`]'s publisher keeps the CRLs current from the store.

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub use ca_x509::{
    armor, authority, ca_profile, conformance, csr, error, est, fuzzing, hostname, inspect, name,
    ocsp, other_name, pkcs12, policy, profile, revocation, serial, server_key, server_tls, spki,
    time_format,
};

pub mod audit;
pub mod blocklist;
pub mod clock;
mod codec;
pub mod engine;
pub mod enrollment;
pub mod mass_revocation;
pub mod metered_signer;
pub mod metrics;
pub mod store;

mod crl_publisher;
mod signing;

/// Certificate revocation lists: the encoder of [`ca_x509::crl`] and the running
/// [`CrlPublisher`](crl::CrlPublisher).
pub mod crl {
    pub use crate::crl_publisher::{CrlPublisher, PublishedCrls};
    pub use ca_x509::crl::*;
}

pub use error::{CaError, ErrorClass};
pub use serial::Serial;
