//! The harness of the end-to-end tests: it starts the real `ca-server` binary on a loopback
//! port, talks to it over HTTP, makes keys and CSRs with the OpenSSL command line, and judges
//! what the server produces with x509-parser, OpenSSL and pkilint. The tests themselves are in
//! `tests/tests/e2e/` (one test binary, `e2e`, one module per area).
//!
//! Where to look:
//!
//! | module | for |
//! |---|---|
//! | [`binary`] | the `ca-server` binary (built from these sources?) and its one-shot subcommands |
//! | [`data_dir`] | data directories, `config.toml`, tokens |
//! | [`server`] | a running `ca-server serve`: start, output, stop |
//! | [`api`] | requests to the JSON API, answers, error checks |
//! | [`est`] | EST (RFC 7030) with curl and openssl over TLS |
//! | [`fixtures`] | keys and CSRs made by openssl |
//! | [`judges`] | certificates, CRLs and OCSP answers judged by x509-parser, OpenSSL and pkilint |
//! | [`secrets`] | secrets looked for in the server's output |
//! | [`formats`] | PEM, RFC 3339 times, serials |
//! | [`command`] | external programs run with a deadline |
//! | [`wait`] | [`poll`](wait::poll) until something holds |
//! | [`raw_http`] | raw HTTP/1.1 over TCP, for the listener's limits |
//! | [`audit_chain`] | the audit log read and its hash chain recomputed |
//! | [`power_loss`] | a simulated power cut (preloaded sync log, files cut back) |
//! | [`postgres`] | a throwaway PostgreSQL cluster per test, run as an unprivileged user when root |
//! | [`softhsm`] | HSM keys: a SoftHSM2 token store per test, the fault-injecting PKCS#11 module, private key material searched for in files |
//!
//! A test file starts with `use e2e_tests::prelude::*;`, which brings what most tests use.

pub mod acme;
pub mod acme_client;
pub mod api;
pub mod audit_chain;
pub mod binary;
pub mod cmp;
pub mod cmp_client;
pub mod command;
pub mod data_dir;
pub mod est;
pub mod fixtures;
pub mod formats;
pub mod judges;
pub mod parent_ca;
pub mod postgres;
pub mod power_loss;
pub mod private_tmpfs;
pub mod raw_http;
pub mod secrets;
pub mod server;
pub mod softhsm;
pub mod wait;

/// Everything a test usually needs, for `use e2e_tests::prelude::*;` (the specialised
/// modules [`raw_http`], [`audit_chain`], [`power_loss`] and [`softhsm`] are imported by
/// name).
pub mod prelude {
    pub use crate::api::*;
    pub use crate::binary::*;
    pub use crate::command::*;
    pub use crate::data_dir::*;
    pub use crate::fixtures::*;
    pub use crate::formats::*;
    pub use crate::judges::certificates::*;
    pub use crate::judges::crl::*;
    pub use crate::judges::ocsp::*;
    pub use crate::judges::pkilint::*;
    pub use crate::parent_ca::*;
    pub use crate::secrets::*;
    pub use crate::server::*;
    pub use crate::wait::*;
}

/// A process-wide counter for scratch file names.
pub(crate) fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
