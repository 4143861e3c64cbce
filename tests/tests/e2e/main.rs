//! The end-to-end tests, one module per area, in one test binary (`e2e`) that links the harness
//! (the library `e2e_tests`, in `tests/src/`) once. Each test starts its own server on its own
//! data directory and loopback port, so tests of different modules run side by side in this
//! process; none changes process-wide state (environment, working directory, fixed ports).
//!
//! Run one area, or one test:
//!
//! ```sh
//! cargo test --release -p e2e-tests --test e2e crash::
//! cargo test --release -p e2e-tests --test e2e -- --exact ca_key_types::ca_ed25519
//! ```

mod acme;
mod acme_protocol;
mod acme_remote_va;
mod audit;
mod backup;
mod batch;
mod blocked_keys;
mod ca_key_types;
mod cmp;
mod concurrency;
mod config;
mod conformance;
mod crash;
mod crl;
mod disk_full;
mod enrollment;
mod errors;
mod est;
mod hsm;
mod idempotency;
mod import;
mod invalidity_date;
mod isolation;
mod issuance;
mod judges;
mod limits;
mod logs;
mod mass_revocation;
mod metrics;
mod ocsp;
mod ocsp_delegated;
mod openapi;
mod ops;
mod postgres;
mod profile_gaps;
mod query;
mod readme;
mod renewal;
mod restart;
mod revocation;
mod revocation_errors;
mod secrets;
mod softhsm;
mod subordinate_ca;
mod tls;
mod tokens;
mod weak_keys;
