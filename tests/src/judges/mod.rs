//! The independent judges of what the server produces: x509-parser, the OpenSSL command line
//! and pkilint, never the server's own code. `tests/tests/e2e/judges.rs` shows that each judge
//! does refuse what it must (negative controls).

pub mod certificates;
pub mod crl;
pub mod ocsp;
pub mod pkilint;
