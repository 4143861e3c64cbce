//! The CA server: the HTTP API of `../shared/API.md` over the CA core, and the `ca-server`
//! command line.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod serve;
