//! The CA server: the HTTP API of `docs/API.md` over the CA core, and the `ca-server`
//! command line.

#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod acme;
pub mod api;
pub mod api_client;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod client_auth;
pub mod cmp;
pub mod config;
pub mod datadir;
pub mod disk;
pub mod durable;
pub mod est;
pub mod limits;
pub mod listener;
pub mod offline;
pub mod request_log;
pub mod responder_key;
pub mod revoke_matching;
pub mod serve;
pub mod va_agent;
