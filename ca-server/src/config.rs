//! The server's configuration: one TOML file, every option with a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ca_core::authority::Urls;
use ca_core::crl::CrlConfig;
use ca_core::engine::EngineConfig;
use ca_core::ocsp::MAX_RESPONDER_VALIDITY_DAYS;
use ca_core::profile::{Profile, ProfileError};
use ca_core::revocation::RevocationConfig;
use ca_core::CaError;
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// Why the configuration file cannot be used. Every variant names the file; what is wrong in
/// it is the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// What reading it failed with.
        source: std::io::Error,
    },
    /// The text is not a configuration: a TOML syntax error, an unknown key, a value of the
    /// wrong type or not one of the allowed ones.
    #[error("{}", path.display())]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// The refused key and the parser's message.
        source: ParseError,
    },
    /// A `[profiles.NAME]` table is not coherent.
    #[error("{}", path.display())]
    Profile {
        /// The configuration file.
        path: PathBuf,
        /// The first fault of the profile.
        source: ProfileError,
    },
    /// No profile is configured, so no certificate could be issued.
    #[error("{}: no [profiles.NAME] configured", path.display())]
    NoProfiles {
        /// The configuration file.
        path: PathBuf,
    },
    /// `[store] backend = "postgres"` without a `url`.
    #[error("{}: [store] backend = \"postgres\" needs a url", path.display())]
    StoreUrlMissing {
        /// The configuration file.
        path: PathBuf,
    },
    /// The `[ocsp]` settings are out of range or contradict each other.
    #[error("{}", path.display())]
    Ocsp {
        /// The configuration file.
        path: PathBuf,
        /// The first fault of `[ocsp]`.
        source: OcspConfigError,
    },
    /// The `[crl]` settings are out of the Baseline Requirements' range.
    #[error("{}", path.display())]
    Crl {
        /// The configuration file.
        path: PathBuf,
        /// The first fault of `[crl]`.
        source: CrlConfigError,
    },
    /// `[revocation] min_invalidity_date` is not a time the CA can use.
    #[error("{}", path.display())]
    Revocation {
        /// The configuration file.
        path: PathBuf,
        /// Why the date is refused.
        source: CaError,
    },
}

/// Why configuration text does not parse, naming the TOML key of the refused value
/// (`[profiles.tls-server] key_types`) when there is one; the TOML parser's error, which
/// shows the line and, for an enumerated value, the allowed values, is the source.
#[derive(Debug)]
pub struct ParseError {
    key: Option<String>,
    // Boxed: the parser's error is large, and travels inside every error of the data directory.
    source: Box<toml::de::Error>,
}

impl ParseError {
    /// The refused value's key as the file spells it, when the error is about one value.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key.as_deref().unwrap_or("not valid TOML"))
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Why the `[ocsp]` settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum OcspConfigError {
    /// `delegated_validity_days` is 0 or longer than a responder certificate may live.
    #[error(
        "[ocsp] delegated_validity_days must be between 1 and {}",
        MAX_RESPONDER_VALIDITY_DAYS
    )]
    DelegatedValidityDays,
    /// An on-demand signing rate or burst is negative or not a number.
    #[error("[ocsp] {key} must be a number of at least 0")]
    Rate {
        /// The key of the rate or burst.
        key: &'static str,
    },
    /// `responder_key = "token"` names no token: `[ca.pkcs11]` is not configured.
    #[error("[ocsp] responder_key = \"token\" needs the CA key in a token ([ca.pkcs11])")]
    ResponderKeyWithoutToken,
    /// With a delegated responder, responses would outlive the certificate that signed them.
    #[error(
        "[ocsp] validity_secs must not exceed a third of delegated_validity_days, so that no \
         response outlives the responder certificate that signed it"
    )]
    ValidityOutlivesResponder,
    /// A publicly trusted CA's responses must be valid 8 hours to 10 days (Baseline
    /// Requirements 4.9.9, which count the interval inclusively: nextUpdate - thisUpdate + 1 s).
    #[error(
        "[ocsp] validity_secs must be between {} (8 hours) and {} (10 days, counted \
         inclusively) for a publicly trusted CA (CA/Browser Forum Baseline Requirements \
         4.9.9); set [ca] publicly_trusted = false for a CA that is not",
        BR_OCSP_VALIDITY_SECS.start(),
        BR_OCSP_VALIDITY_SECS.end()
    )]
    ValidityOutsideBaselineRequirements,
}

/// Why the `[crl]` settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum CrlConfigError {
    /// A publicly trusted CA's CRLs may be valid at most 10 days (Baseline Requirements
    /// 4.9.7); 0 would make every CRL stale when published.
    #[error(
        "[crl] next_update_hours must be between {} and {} (10 days) for a publicly trusted CA \
         (CA/Browser Forum Baseline Requirements 4.9.7); set [ca] publicly_trusted = false for \
         a CA that is not",
        BR_CRL_NEXT_UPDATE_HOURS.start(),
        BR_CRL_NEXT_UPDATE_HOURS.end()
    )]
    NextUpdateHours,
    /// A publicly trusted CA publishes a new CRL within 24 hours of a revocation (Baseline
    /// Requirements 4.9.7).
    #[error(
        "[crl] interval_secs must be between 0 and {BR_CRL_INTERVAL_SECS} (a new CRL within 24 \
         hours of a revocation) for a publicly trusted CA (CA/Browser Forum Baseline \
         Requirements 4.9.7); set [ca] publicly_trusted = false for a CA that is not"
    )]
    IntervalSecs,
}

/// The OCSP response validity (`nextUpdate - thisUpdate`, seconds) a publicly trusted CA may
/// use: the Baseline Requirements (4.9.9; 4.9.10 before version 2.0.1) ask for an interval of
/// 8 hours to 10 days, counted inclusively (a difference of 863,999 s is an interval of 10
/// days).
pub const BR_OCSP_VALIDITY_SECS: std::ops::RangeInclusive<u64> = 28_800..=863_999;

/// `[crl] next_update_hours` a publicly trusted CA may use: nextUpdate at most 10 days after
/// thisUpdate (Baseline Requirements 4.9.7). The publisher rebuilds when half of it has
/// passed, so a new CRL follows at most 5 days (plus `interval_secs`) after the last, within
/// the 7 days the Baseline Requirements allow when every certificate names an OCSP responder,
/// as this CA's do.
pub const BR_CRL_NEXT_UPDATE_HOURS: std::ops::RangeInclusive<u64> = 1..=240;

/// The longest `[crl] interval_secs` of a publicly trusted CA: a revocation is on a new CRL
/// within 24 hours (Baseline Requirements 4.9.7).
pub const BR_CRL_INTERVAL_SECS: u64 = 86_400;

/// Checks `[crl]` against the Baseline Requirements when the CA is `publicly_trusted`; a CA
/// that is not may use any value, as before.
pub fn check_crl(crl: &CrlConfig, publicly_trusted: bool) -> Result<(), CrlConfigError> {
    if !publicly_trusted {
        return Ok(());
    }
    if !BR_CRL_NEXT_UPDATE_HOURS.contains(&crl.next_update_hours) {
        return Err(CrlConfigError::NextUpdateHours);
    }
    if crl.interval_secs > BR_CRL_INTERVAL_SECS {
        return Err(CrlConfigError::IntervalSecs);
    }
    Ok(())
}

/// Why no URLs can be derived for certificates ([`Config::status_urls`]).
#[derive(Debug, thiserror::Error)]
pub enum StatusUrlError {
    /// The API speaks TLS and no plain-HTTP listener serves the status routes.
    #[error(
        "the API on {api} speaks TLS, but relying parties fetch CRLs, OCSP answers and the CA \
         certificate over plain HTTP (RFC 5280 section 8): set [public] listen = \"IP:PORT\" \
         for a plain-HTTP listener that serves them, or set public_base_url (or every [urls] \
         list) to where they are served"
    )]
    NoPlainListener {
        /// The API's address.
        api: SocketAddr,
    },
    /// The listener serving the status routes is bound to an unspecified address (`0.0.0.0`,
    /// `::`), which no URL can name.
    #[error(
        "the URLs in certificates would name {addr}, which no client can reach: set \
         public_base_url to the address relying parties use (e.g. http://ca.example.com:{})",
        addr.port()
    )]
    UnreachableAddress {
        /// The listener's address.
        addr: SocketAddr,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the API listener (TLS when `[tls]` names a certificate; plain HTTP only on
    /// loopback addresses unless `[tls] allow_plain_http`).
    pub listen: SocketAddr,
    /// Base URL that relying parties use to reach the CRLs, OCSP and the CA certificate; the
    /// URLs in certificates are derived from it unless `[urls]` sets them. Empty: derived from
    /// the address of the plain-HTTP listener that serves them ([`Config::status_urls`]).
    pub public_base_url: String,
    /// Largest request body on single-request endpoints, in bytes (413 beyond).
    pub body_limit_bytes: usize,
    /// Largest request body on the batch endpoint, in bytes.
    pub batch_body_limit_bytes: usize,
    /// Most requests in one batch call.
    pub max_batch: usize,
    /// The plain-HTTP listener for relying parties.
    pub public: PublicConfig,
    /// Where the CA's key and certificates are.
    pub ca: CaFiles,
    /// URLs written into certificates; empty lists are derived from `public_base_url`.
    pub urls: Urls,
    /// Engine sizing.
    pub engine: EngineConfig,
    /// CRL generation.
    pub crl: CrlConfig,
    /// The OCSP responder.
    pub ocsp: OcspConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// Enrollments (one-time codes, PKCS#12 delivery).
    pub enrollment: EnrollmentConfig,
    /// TLS on the listener.
    pub tls: TlsConfig,
    /// Connection, rate and time limits.
    pub limits: LimitsConfig,
    /// Store checks.
    pub store: StoreConfig,
    /// The log of request outcomes.
    pub log: LogConfig,
    /// Revocation requests.
    pub revocation: RevocationConfig,
    /// The ACME front end.
    pub acme: crate::acme::AcmeConfig,
    /// The EST front end.
    pub est: crate::est::EstConfig,
    /// The CMP front end.
    pub cmp: crate::cmp::CmpConfig,
    /// Certificate profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

/// The plain-HTTP listener for relying parties: CRLs, OCSP and the CA certificate are fetched
/// over plain HTTP (RFC 5280 section 8 advises against https URIs there, which would make
/// checking the status of the server's own certificate circular).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicConfig {
    /// Address of a plain-HTTP listener serving only `/crl`, `/crl/delta`, `/ocsp`,
    /// `/ca.der` and `/ca.pem`, under the API's connection, header and rate limits. Needed
    /// when the API is on TLS and the status URLs are derived; `ca-server tls-cert` sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// The URLs written into certificates, and warnings about explicit ones this server does not
/// serve.
#[derive(Clone, Debug)]
pub struct StatusUrls {
    /// The CRL, OCSP and caIssuers URLs.
    pub urls: Urls,
    /// One message per configured URL that points elsewhere (fine for a CDN or a proxy).
    pub warnings: Vec<String>,
}

/// TLS settings (rustls). Without `cert_file`, the server speaks plain HTTP, which it allows
/// only on loopback addresses unless `allow_plain_http` is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM (`ca-server tls-cert` issues one from the CA).
    pub cert_file: PathBuf,
    /// Its PKCS#8 key, PEM, mode 0600.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates may chain to; empty: no client
    /// certificates.
    pub client_ca_file: PathBuf,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy).
    pub allow_plain_http: bool,
    /// Client certificate subjects allowed in without a bearer token, and as whom: the
    /// `[[tls.clients]]` entries. Not written when empty, so that a generated file takes
    /// appended `[[tls.clients]]` tables (`clients = []` is still read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientCertificateConfig>,
}

/// A client certificate mapped to a role ([`crate::client_auth`]): by the SHA-256 of the
/// certificate or of its public key, or (only when `client_ca_file` is another CA) by subject.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificateConfig {
    /// SHA-256 of the certificate's DER, hex (colons allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo DER, hex (colons allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    /// The certificate's subject as an RFC 4514 string (e.g. `CN=portal,O=Example`): with a
    /// fingerprint, it must match too; alone, it maps only certificates of a client CA other
    /// than this CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `ra`, `auditor` or `operator`; any other value fails loading.
    pub role: Role,
    /// The name shown as requester and actor.
    pub name: String,
}

impl ClientCertificateConfig {
    /// The entry as messages name it: `[[tls.clients]] name "portal"`.
    pub fn describe(&self) -> String {
        format!("[[tls.clients]] name {:?}", self.name)
    }
}

/// Limits of the listener and of each client.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections open at once; beyond, a connection is answered 429 and closed.
    pub max_connections: usize,
    /// Requests per second per authenticated client (valid token or mapped client
    /// certificate); 0: no limit.
    pub requests_per_second: f64,
    /// Burst above that rate.
    pub burst: f64,
    /// Requests per second per client address (IPv4 address, IPv6 /64) for requests without
    /// valid credentials: public routes (OCSP, CRL, redemption, ...) and failed
    /// authentications; 0: no limit.
    pub public_requests_per_second: f64,
    /// Burst above that rate.
    pub public_burst: f64,
    /// Deadline for a request's headers, for a new connection's first request (protocol
    /// detection included) and for a TLS handshake, seconds; also the HTTP/2 keep-alive ping
    /// timeout.
    pub header_timeout_secs: u64,
    /// A connection with no request in progress is closed after this many seconds (HTTP/2:
    /// GOAWAY; HTTP/1.1 keep-alive connections also by `header_timeout_secs`).
    pub idle_timeout_secs: u64,
    /// Bytes of request bodies in flight across the server; beyond, a request with a body
    /// waits up to a second, then is answered 503 `overloaded`.
    pub max_inflight_body_bytes: usize,
    /// Deadline for a whole request, seconds (408 beyond).
    pub request_timeout_secs: u64,
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 1024,
            requests_per_second: 0.0,
            burst: 100.0,
            public_requests_per_second: 100.0,
            public_burst: 1000.0,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_inflight_body_bytes: 256 << 20,
            request_timeout_secs: 60,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The log of request outcomes ([`crate::request_log`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Outcome lines (certificate issued, request refused) logged at `info` one by one per
    /// second; beyond, outcomes are counted and summed up in one line per second. 0: every
    /// outcome on its own line.
    pub outcome_lines_per_second: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            outcome_lines_per_second: 100,
        }
    }
}

/// Where the CA's records live (`[store]`), and the checks made on them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `rocksdb` (the embedded default, in `[ca] db_dir`) or `postgres` (a database that
    /// several nodes share, at `url`).
    pub backend: StoreBackend,
    /// PostgreSQL: a libpq URL or key/value string without a password (several hosts and
    /// `target_session_attrs=read-write` allowed). A URL with a password is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL: the file holding the password (mode 0600), relative to the data directory
    /// unless absolute; absent: libpq's password file (`PGPASSFILE`, else `~/.pgpass`), or
    /// none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PostgreSQL: connections for reads (the writer has one of its own).
    pub pool_size: usize,
    /// PostgreSQL: the CA certificates (PEM) that the database server's certificate must
    /// chain to, relative to the data directory unless absolute. Given, every connection is
    /// TLS and the certificate is verified against them and the URL's host; absent, the
    /// connections are plain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// RocksDB: read the whole store with checksums verified before serving (2.4 s for a
    /// store of 1,000,000 certificates, 551 MB, on the project's 2-vCPU machine); a damaged
    /// store is refused. Off only where a store is too large for it and is verified by other
    /// means. (PostgreSQL checks its own pages.)
    pub verify_on_start: bool,
    /// RocksDB: the free space, in bytes, kept on the filesystem of `[ca] db_dir`. Below it
    /// every write (issuance, revocation, enrollment, ...) is refused before it starts with 503
    /// `storage_unavailable` and `/readyz` is not ready, until space is freed; 0: no reserve.
    pub min_free_bytes: u64,
    /// RocksDB: where `POST /v1/backup` writes backups, relative to the data directory unless
    /// absolute (on the store's filesystem, the store's table files are hard-linked, not
    /// copied); `ca-server backup --out` moves them from there.
    pub backup_dir: PathBuf,
}

/// The free space kept on the store's filesystem by default (`[store] min_free_bytes`):
/// 64 MiB, enough for RocksDB to flush its memtables and finish a compaction.
pub const DEFAULT_STORE_MIN_FREE_BYTES: u64 = 64 << 20;

/// The store implementation (`[store] backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// RocksDB in the data directory.
    #[default]
    Rocksdb,
    /// A PostgreSQL database, shared by every node of the CA.
    Postgres,
}

/// Read connections per node to PostgreSQL by default.
pub const DEFAULT_STORE_POOL_SIZE: usize = 16;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Rocksdb,
            url: None,
            password_file: None,
            pool_size: DEFAULT_STORE_POOL_SIZE,
            ca_file: None,
            verify_on_start: true,
            min_free_bytes: DEFAULT_STORE_MIN_FREE_BYTES,
            backup_dir: PathBuf::from("backups"),
        }
    }
}

/// Enrollment settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// Shortest PKCS#12 password accepted when the CA generates the key (422 below).
    pub min_password_length: usize,
    /// Longest code lifetime an RA may ask for, in hours.
    pub max_lifetime_hours: u32,
    /// Keys (and their PKCS#12 files) generated for subscribers at once; 0: half the cores,
    /// at least one. A redemption waits at most 5 s for a slot (then 429 `overloaded`).
    pub key_generation_concurrency: usize,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig {
            min_password_length: 8,
            max_lifetime_hours: 720,
            key_generation_concurrency: 0,
        }
    }
}

/// Audit log settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How often the CA signs a checkpoint of the audit log's head (when it moved), in
    /// seconds; one is also signed at start and at shutdown. 0 signs only at those two.
    pub checkpoint_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_interval_secs: 300,
        }
    }
}

/// OCSP settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OcspConfig {
    /// nextUpdate minus thisUpdate of each response, in seconds. A publicly trusted CA
    /// (`[ca] publicly_trusted`, the default) may use 28800 (8 hours) to 863999 (10 days,
    /// counted inclusively), as the CA/Browser Forum Baseline Requirements (4.9.9) ask.
    ///
    /// Default 345600 (4 days), as many public CAs use: a relying party that keeps a response
    /// needs a fresh one only every few days, so an unreachable responder does not fail its
    /// checks at once, while a response cached before a revocation outlives it by at most
    /// four days (this server's own cache forgets a revoked serial's answer at once). Cached
    /// responses are signed anew after half the validity (2 days), within the Baseline
    /// Requirements' "no later than four days after thisUpdate", and the delegated
    /// responder's default 30 days leave room for it (at most a third of them).
    pub validity_secs: u64,
    /// Responses kept in the cache (RFC 5019 requests: one CertID, no nonce).
    pub cache_capacity: usize,
    /// Sign responses with a delegated OCSP responder's key (RFC 6960 section 4.2.2.2), whose
    /// certificate the CA issues with id-kp-OCSPSigning, instead of with the CA key.
    pub delegated: bool,
    /// Validity of the delegated responder's certificate, in days; it is replaced (with a new
    /// key) when less than a third of it remains.
    pub delegated_validity_days: u32,
    /// Where the delegated responder's key lives: `"token"` (generated in the `[ca.pkcs11]`
    /// token, never extractable) or `"file"` (`ocsp-key.pem`, mode 0600). Absent: in the
    /// token when the CA key is in one, else in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_key: Option<ResponderKeyStore>,
    /// Signatures on demand (answers with a nonce, several CertIDs or an `unknown` status) per
    /// second for one client address (an IPv6 client by its /64); 0: no per-client limit.
    pub on_demand_per_client_per_second: f64,
    /// Burst of signatures on demand above that rate, per client address.
    pub on_demand_per_client_burst: f64,
    /// Signatures on demand per second for all clients together; 0: no global limit.
    pub on_demand_global_per_second: f64,
    /// Burst of signatures on demand above that rate, for all clients together.
    pub on_demand_global_burst: f64,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            validity_secs: 4 * 86_400,
            cache_capacity: 100_000,
            delegated: false,
            delegated_validity_days: 30,
            responder_key: None,
            on_demand_per_client_per_second: 50.0,
            on_demand_per_client_burst: 100.0,
            on_demand_global_per_second: 2000.0,
            on_demand_global_burst: 4000.0,
        }
    }
}

/// Where the delegated OCSP responder's key lives (`[ocsp] responder_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponderKeyStore {
    /// `ocsp-key.pem` in the data directory, mode 0600.
    File,
    /// The `[ca.pkcs11]` token, beside the CA key.
    Token,
}

impl OcspConfig {
    /// Where the delegated responder's key lives, given whether the CA key is in a token.
    pub fn responder_key_store(&self, ca_key_in_token: bool) -> ResponderKeyStore {
        match self.responder_key {
            Some(store) => store,
            None if ca_key_in_token => ResponderKeyStore::Token,
            None => ResponderKeyStore::File,
        }
    }

    /// Checks the response validity (against the Baseline Requirements when the CA is
    /// `publicly_trusted`), the delegated responder's settings and the on-demand signing
    /// budget; the error names the first fault.
    pub fn check(&self, publicly_trusted: bool) -> Result<(), OcspConfigError> {
        if publicly_trusted && !BR_OCSP_VALIDITY_SECS.contains(&self.validity_secs) {
            return Err(OcspConfigError::ValidityOutsideBaselineRequirements);
        }
        let days = self.delegated_validity_days;
        if days == 0 || days > MAX_RESPONDER_VALIDITY_DAYS {
            return Err(OcspConfigError::DelegatedValidityDays);
        }
        let rates = [
            (
                "on_demand_per_client_per_second",
                self.on_demand_per_client_per_second,
            ),
            (
                "on_demand_per_client_burst",
                self.on_demand_per_client_burst,
            ),
            (
                "on_demand_global_per_second",
                self.on_demand_global_per_second,
            ),
            ("on_demand_global_burst", self.on_demand_global_burst),
        ];
        for (key, value) in rates {
            if !value.is_finite() || value < 0.0 {
                return Err(OcspConfigError::Rate { key });
            }
        }
        // The certificate is replaced when a third of its validity remains: responses signed
        // just before must not outlive it.
        if self.delegated && self.validity_secs > u64::from(days) * 86_400 / 3 {
            return Err(OcspConfigError::ValidityOutlivesResponder);
        }
        Ok(())
    }
}

/// Files of the CA, relative to the data directory unless absolute.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaFiles {
    /// The CA's PKCS#8 private key (mode 0600).
    pub key_file: PathBuf,
    /// The CA's certificate followed by its issuers up to the root, PEM.
    pub chain_file: PathBuf,
    /// The RocksDB directory.
    pub db_dir: PathBuf,
    /// Whether the CA is publicly trusted (its certificates chain to a root that browsers or
    /// operating systems trust), so that the CA/Browser Forum Baseline Requirements apply:
    /// `[ocsp] validity_secs` and the `[crl]` timing must then be within their ranges (refused
    /// at start otherwise). `false` for a private CA allows any value accepted before.
    pub publicly_trusted: bool,
    /// The CA key in a PKCS#11 token (`[ca.pkcs11]`) instead of `key_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Settings>,
}

/// The environment variable that holds the PKCS#11 user PIN when `[ca.pkcs11]` names no
/// `pin_file`.
pub const PKCS11_PIN_ENV: &str = keys::pkcs11::PIN_ENV;

/// The default number of PKCS#11 sessions: signatures in flight at once.
pub const DEFAULT_PKCS11_SESSIONS: usize = 16;

/// Where the CA key lives in a PKCS#11 token (`[ca.pkcs11]`). The PIN is never in the
/// configuration: it is read from `pin_file` (mode 0600) or from [`PKCS11_PIN_ENV`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Settings {
    /// The PKCS#11 module (shared library) of the HSM.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The label (CKA_LABEL) of the CA's private and public key objects.
    pub key_label: String,
    /// The file holding the user PIN (mode 0600), relative to the data directory unless
    /// absolute; absent: the PIN is in the environment variable `CA_PKCS11_PIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    /// Sessions in the pool: signatures in flight at once (capped by the token's maximum).
    #[serde(default = "default_pkcs11_sessions")]
    pub sessions: usize,
}

fn default_pkcs11_sessions() -> usize {
    DEFAULT_PKCS11_SESSIONS
}

impl Default for CaFiles {
    fn default() -> Self {
        CaFiles {
            key_file: "ca-key.pem".into(),
            chain_file: "ca.pem".into(),
            db_dir: "db".into(),
            publicly_trusted: true,
            pkcs11: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_base_url: String::new(),
            public: PublicConfig::default(),
            body_limit_bytes: 1 << 20,
            batch_body_limit_bytes: 16 << 20,
            max_batch: 1000,
            ca: CaFiles::default(),
            urls: Urls::default(),
            engine: EngineConfig::default(),
            crl: CrlConfig::default(),
            ocsp: OcspConfig::default(),
            audit: AuditConfig::default(),
            enrollment: EnrollmentConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            revocation: RevocationConfig::default(),
            acme: crate::acme::AcmeConfig::default(),
            est: crate::est::EstConfig::default(),
            cmp: crate::cmp::CmpConfig::default(),
            profiles: Profile::builtin(),
        }
    }
}

impl Config {
    /// Reads and checks the configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let path_buf = || path.to_path_buf();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path_buf(),
            source,
        })?;
        let config = Config::parse(&text).map_err(|source| ConfigError::Parse {
            path: path_buf(),
            source,
        })?;
        for (name, profile) in &config.profiles {
            profile
                .check(name)
                .and_then(|()| ca_core::conformance::check(profile, name))
                .map_err(|source| ConfigError::Profile {
                    path: path_buf(),
                    source,
                })?;
        }
        if config.profiles.is_empty() {
            return Err(ConfigError::NoProfiles { path: path_buf() });
        }
        if config.store.backend == StoreBackend::Postgres && config.store.url.is_none() {
            return Err(ConfigError::StoreUrlMissing { path: path_buf() });
        }
        let publicly_trusted = config.ca.publicly_trusted;
        config
            .ocsp
            .check(publicly_trusted)
            .and_then(|()| {
                let in_token = config.ca.pkcs11.is_some();
                match config.ocsp.responder_key_store(in_token) {
                    ResponderKeyStore::Token if !in_token => {
                        Err(OcspConfigError::ResponderKeyWithoutToken)
                    }
                    _ => Ok(()),
                }
            })
            .map_err(|source| ConfigError::Ocsp {
                path: path_buf(),
                source,
            })?;
        check_crl(&config.crl, publicly_trusted).map_err(|source| ConfigError::Crl {
            path: path_buf(),
            source,
        })?;
        config
            .revocation
            .min_invalidity_unix()
            .map_err(|source| ConfigError::Revocation {
                path: path_buf(),
                source,
            })?;
        Ok(config)
    }

    /// Parses configuration text. The error names the TOML key of the refused value
    /// (`[profiles.tls-server] key_types`); its source, the parser's own error, shows the
    /// line and, for an enumerated value, the allowed values.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| ParseError {
            key: toml_key(e.path()),
            source: Box::new(e.into_inner()),
        })
    }

    /// The configuration as TOML text, for writing the default file.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// The URLs written into certificates, for an API listening on `api` (over TLS when
    /// `api_tls`) and a plain-HTTP status listener on `public`. Each `[urls]` list that is
    /// empty is derived from `public_base_url`, or, when that is empty too, from the address
    /// of the plain-HTTP listener that serves the routes: `public`, else the API when it is
    /// plain HTTP.
    ///
    /// Refused: derived URLs that no listener of this server serves (the API on TLS and no
    /// `[public] listen`), or that name an unspecified address (`0.0.0.0`, `::`). Warned
    /// about: configured URLs (`[urls]`, `public_base_url`) that use https (RFC 5280 section
    /// 8) or whose port is not one this server serves plain HTTP on.
    pub fn status_urls(
        &self,
        api: SocketAddr,
        api_tls: bool,
        public: Option<SocketAddr>,
    ) -> Result<StatusUrls, StatusUrlError> {
        let plain: Vec<SocketAddr> = public
            .into_iter()
            .chain((!api_tls).then_some(api))
            .collect();
        let configured_base = !self.public_base_url.is_empty();
        let base = || -> Result<String, StatusUrlError> {
            if configured_base {
                return Ok(self.public_base_url.trim_end_matches('/').to_string());
            }
            let Some(&addr) = plain.first() else {
                return Err(StatusUrlError::NoPlainListener { api });
            };
            if addr.ip().is_unspecified() {
                return Err(StatusUrlError::UnreachableAddress { addr });
            }
            Ok(format!("http://{addr}"))
        };
        let mut warnings = Vec::new();
        let mut list =
            |configured: &Vec<String>, key: &str, path: &str| -> Result<_, StatusUrlError> {
                if !configured.is_empty() {
                    for url in configured {
                        warnings.extend(unserved(url, &format!("[urls] {key}"), &plain));
                    }
                    return Ok(configured.clone());
                }
                let url = format!("{}{path}", base()?);
                if configured_base {
                    warnings.extend(unserved(&url, "public_base_url", &plain));
                }
                Ok(vec![url])
            };
        let urls = Urls {
            crl: list(&self.urls.crl, "crl", "/crl")?,
            ocsp: list(&self.urls.ocsp, "ocsp", "/ocsp")?,
            ca_issuers: list(&self.urls.ca_issuers, "ca_issuers", "/ca.der")?,
        };
        Ok(StatusUrls { urls, warnings })
    }

    /// [`Config::status_urls`] for commands that run without the server (`crl generate`,
    /// `tls-cert`): the configured addresses, TLS as `[tls]` says.
    pub fn offline_status_urls(&self) -> Result<Urls, StatusUrlError> {
        let tls = !self.tls.cert_file.as_os_str().is_empty();
        Ok(self.status_urls(self.listen, tls, self.public.listen)?.urls)
    }

    /// A path from the configuration, resolved against the data directory.
    pub fn resolve(data_dir: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            data_dir.join(path)
        }
    }
}

/// Why a configured status URL (from `key`) is not served by this server's plain-HTTP
/// listeners `plain`, if it is not: it uses https, or its port is none of theirs, or it names
/// an IP address none of them is bound to. A DNS name on a served port is taken as served.
fn unserved(url: &str, key: &str, plain: &[SocketAddr]) -> Option<String> {
    let uri = match url.parse::<axum::http::Uri>() {
        Ok(uri) => uri,
        Err(e) => return Some(format!("{key}: {url:?} is not a URL ({e})")),
    };
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "http" {
        return Some(format!(
            "{key}: {url} is not an http URL; relying parties fetch CRLs, OCSP and CA \
             certificates over plain HTTP (RFC 5280 section 8)"
        ));
    }
    let port = uri.port_u16().unwrap_or(80);
    let host = uri.host().unwrap_or_default();
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    let served = plain.iter().any(|addr| {
        addr.port() == port && ip.is_none_or(|ip| addr.ip().is_unspecified() || addr.ip() == ip)
    });
    (!served).then(|| {
        format!(
            "{key}: {url} is not served by this server's plain-HTTP listeners ({}); fine if a \
             CDN or a proxy serves it",
            if plain.is_empty() {
                "none: the API is on TLS and [public] listen is not set".to_string()
            } else {
                plain
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
    })
}

/// A deserialization path as the TOML file spells it: `[profiles.tls-server] key_types`,
/// `[[tls.clients]] #2 role`, `listen`; `None` for the document itself.
fn toml_key(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    // The last named key, and the tables (and array entries) above it.
    let last_key = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))?;
    let Segment::Map { key } = segments[last_key] else {
        return None;
    };
    let mut table = String::new();
    let mut entry = None;
    for segment in &segments[..last_key] {
        match segment {
            Segment::Map { key } => {
                if !table.is_empty() {
                    table.push('.');
                }
                table.push_str(key);
            }
            Segment::Seq { index } => entry = Some(index + 1),
            _ => {}
        }
    }
    Some(match (table.is_empty(), entry) {
        (true, _) => key.clone(),
        (false, Some(n)) => format!("[[{table}]] #{n} {key}"),
        (false, None) => format!("[{table}] {key}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error_chain;

    /// Every profile example of the README (its ```toml blocks with a `[profiles.` table)
    /// loads, coherent and conforming to the standard it claims, as `serve` would load it.
    #[test]
    fn the_readme_profile_examples_load() {
        let readme = include_str!("../../README.md");
        let mut blocks = 0;
        for block in readme.split("```toml").skip(1) {
            let text = block.split("```").next().unwrap_or_default();
            if !text.contains("[profiles.") {
                continue;
            }
            let config = Config::parse(text);
            assert!(config.is_ok(), "{config:?}\n{text}");
            let config = config.unwrap();
            for (name, profile) in &config.profiles {
                let checked = profile
                    .check(name)
                    .and_then(|()| ca_core::conformance::check(profile, name));
                assert!(checked.is_ok(), "{checked:?}\n{text}");
            }
            blocks += 1;
        }
        assert!(blocks >= 2, "the README shows its profile examples");
    }

    /// Every example profile of docs/profiles loads, coherent and conforming to the standard
    /// it claims, as `serve` would load it, and the ETSI one needs the CA's URLs the default
    /// configuration gives.
    #[test]
    fn the_docs_profile_examples_load() {
        for (file, text) in [
            (
                "icp-brasil-a1.toml",
                include_str!("../../docs/profiles/icp-brasil-a1.toml"),
            ),
            (
                "etsi-qcp-n-qscd.toml",
                include_str!("../../docs/profiles/etsi-qcp-n-qscd.toml"),
            ),
        ] {
            let config = Config::parse(text);
            assert!(config.is_ok(), "{file}: {config:?}");
            let config = config.unwrap();
            assert_eq!(config.profiles.len(), 1, "{file}");
            for (name, profile) in &config.profiles {
                let checked = profile
                    .check(name)
                    .and_then(|()| ca_core::conformance::check(profile, name));
                assert!(checked.is_ok(), "{file}: {checked:?}");
            }
        }
        let text = include_str!("../../docs/profiles/etsi-qcp-n-qscd.toml");
        let config = Config::parse(&format!(
            "public_base_url = \"http://ca.example.com\"\n{text}"
        ))
        .unwrap();
        let profile = &config.profiles["etsi-qcp-n-qscd"];
        assert_eq!(profile.standard, ca_core::profile::Standard::EtsiQcpNQscd);
        let urls = config.offline_status_urls().unwrap();
        ca_core::conformance::check_urls(profile, "etsi-qcp-n-qscd", &urls).unwrap();
        // Without a caIssuers URL the profile cannot conform (EN 319 412-2 GEN-4.4.1-3).
        let bare = Urls {
            crl: urls.crl.clone(),
            ..Default::default()
        };
        let e = ca_core::conformance::check_urls(profile, "etsi-qcp-n-qscd", &bare)
            .unwrap_err()
            .to_string();
        assert!(e.contains("GEN-4.4.1-3"), "{e}");
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let text = Config::default().to_toml().unwrap();
        let dir = std::env::temp_dir().join(format!("ca-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, &text).unwrap();
        let back = Config::load(&path).unwrap();
        assert_eq!(back.profiles.len(), 3);
        assert_eq!(back.max_batch, 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn status_urls_name_a_plain_http_listener_of_this_server() {
        let config = |text: &str| toml::from_str::<Config>(text).unwrap();
        let api: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let public: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let plain = config("").status_urls(api, false, None).unwrap();
        assert_eq!(plain.urls.ocsp, ["http://127.0.0.1:8443/ocsp"]);
        let tls = config("").status_urls(api, true, Some(public)).unwrap();
        assert_eq!(tls.urls.crl, ["http://127.0.0.1:8081/crl"]);
        assert_eq!(tls.urls.ca_issuers, ["http://127.0.0.1:8081/ca.der"]);
        assert!(tls.warnings.is_empty(), "{:?}", tls.warnings);
        // Derived URLs that name a TLS port, or an address no client can reach, are refused.
        let e = config("")
            .status_urls(api, true, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[public] listen"), "{e}");
        let any: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        let e = config("")
            .status_urls(api, true, Some(any))
            .unwrap_err()
            .to_string();
        assert!(e.contains("public_base_url"), "{e}");
        // Configured ones are taken as they are, with a warning when this server does not
        // serve them.
        let cdn = config("[urls]\ncrl = [\"http://cdn.example/ca.crl\"]\nocsp = [\"http://ocsp.example:8081\"]\nca_issuers = [\"https://cdn.example/ca.der\"]");
        let urls = cdn.status_urls(api, true, Some(public)).unwrap();
        assert_eq!(urls.urls.crl, ["http://cdn.example/ca.crl"]);
        assert_eq!(urls.warnings.len(), 2, "{:?}", urls.warnings);
        assert!(
            urls.warnings[0].contains("[urls] crl"),
            "{:?}",
            urls.warnings
        );
        assert!(urls.warnings[1].contains("RFC 5280"), "{:?}", urls.warnings);
        let base = config("public_base_url = \"http://ca.example:8081/\"");
        let urls = base.status_urls(api, true, Some(public)).unwrap();
        assert_eq!(urls.urls.ocsp, ["http://ca.example:8081/ocsp"]);
        assert!(urls.warnings.is_empty(), "{:?}", urls.warnings);
        let urls = base.status_urls(api, true, None).unwrap();
        assert_eq!(urls.warnings.len(), 3, "{:?}", urls.warnings);
    }

    #[test]
    fn an_empty_file_means_every_default() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.listen.port(), 8080);
        assert!(config.profiles.contains_key("tls-server"));
        assert!(!config.ocsp.delegated);
        assert_eq!(config.ocsp.delegated_validity_days, 30);
        assert!(config.ca.publicly_trusted);
        assert_eq!(config.ocsp.validity_secs, 4 * 86_400);
        // The defaults are within the Baseline Requirements, delegated responder or not.
        config.ocsp.check(true).unwrap();
        check_crl(&config.crl, true).unwrap();
        let delegated: Config = toml::from_str("[ocsp]\ndelegated = true").unwrap();
        delegated.ocsp.check(true).unwrap();
    }

    /// The delegated responder's key goes in the token when the CA key is in one, unless
    /// `responder_key = "file"`; `"token"` without `[ca.pkcs11]` is refused at load.
    #[test]
    fn the_responder_key_is_in_the_token_of_the_ca_key_unless_configured_otherwise() {
        let parse = |text: &str| toml::from_str::<Config>(text).unwrap().ocsp;
        assert_eq!(
            parse("").responder_key_store(true),
            ResponderKeyStore::Token
        );
        assert_eq!(
            parse("").responder_key_store(false),
            ResponderKeyStore::File
        );
        let file = parse("[ocsp]\nresponder_key = \"file\"");
        assert_eq!(file.responder_key_store(true), ResponderKeyStore::File);
        let e = refusal(
            "responder-token",
            "[ocsp]\ndelegated = true\nresponder_key = \"token\"\n",
        );
        assert!(
            e.contains("responder_key") && e.contains("[ca.pkcs11]"),
            "{e}"
        );
        let text = "[ocsp]\nresponder_key = \"hsm\"\n";
        assert!(refusal("responder-bad", text).contains("responder_key"));
    }

    /// `[ocsp] validity_secs` outside 8 hours to 10 days (counted inclusively, Baseline
    /// Requirements 4.9.9) is refused at load with one line naming the key and the range,
    /// unless `[ca] publicly_trusted = false`.
    #[test]
    fn ocsp_validity_is_bounded_for_a_publicly_trusted_ca() {
        for ok in [28_800, 86_400, 863_999] {
            let config = load_text("ocsp-ok", &format!("[ocsp]\nvalidity_secs = {ok}\n")).unwrap();
            assert_eq!(config.ocsp.validity_secs, ok);
        }
        for bad in [1, 3_600, 28_799, 864_000, 30 * 86_400] {
            let text = format!("[ocsp]\nvalidity_secs = {bad}\n");
            let e = refusal("ocsp-bad", &text);
            for part in [
                CONFIG_FILE,
                "[ocsp] validity_secs",
                "between 28800 (8 hours) and 863999 (10 days",
                "[ca] publicly_trusted = false",
            ] {
                assert!(e.contains(part), "{bad}: {part} missing from {e}");
            }
            assert!(!e.contains('\n'), "one line: {e}");
            // A CA that is not publicly trusted may use them, as before.
            let private = format!("[ca]\npublicly_trusted = false\n{text}");
            let config = load_text("ocsp-private", &private).unwrap();
            assert!(!config.ca.publicly_trusted);
            assert_eq!(config.ocsp.validity_secs, bad);
        }
        // The other [ocsp] rules still hold for a private CA.
        let e = refusal(
            "ocsp-private-deleg",
            "[ca]\npublicly_trusted = false\n[ocsp]\ndelegated = true\n\
             delegated_validity_days = 1\nvalidity_secs = 86400\n",
        );
        assert!(e.contains("a third of delegated_validity_days"), "{e}");
    }

    /// `[crl] next_update_hours` beyond 10 days (or 0) and `interval_secs` beyond 24 hours are
    /// refused at load (Baseline Requirements 4.9.7), unless `[ca] publicly_trusted = false`.
    #[test]
    fn crl_timing_is_bounded_for_a_publicly_trusted_ca() {
        for ok in [
            "[crl]\nnext_update_hours = 1\n",
            "[crl]\nnext_update_hours = 240\n",
            "[crl]\ninterval_secs = 0\n",
            "[crl]\ninterval_secs = 86400\n",
        ] {
            load_text("crl-ok", ok).unwrap();
        }
        for (bad, key, range) in [
            (
                "[crl]\nnext_update_hours = 0\n",
                "[crl] next_update_hours",
                "between 1 and 240 (10 days)",
            ),
            (
                "[crl]\nnext_update_hours = 241\n",
                "[crl] next_update_hours",
                "between 1 and 240 (10 days)",
            ),
            (
                "[crl]\ninterval_secs = 86401\n",
                "[crl] interval_secs",
                "between 0 and 86400",
            ),
        ] {
            let e = refusal("crl-bad", bad);
            for part in [CONFIG_FILE, key, range, "[ca] publicly_trusted = false"] {
                assert!(e.contains(part), "{bad}: {part} missing from {e}");
            }
            assert!(!e.contains('\n'), "one line: {e}");
            let private = format!("[ca]\npublicly_trusted = false\n{bad}");
            load_text("crl-private", &private).unwrap();
        }
    }

    #[test]
    fn delegated_ocsp_settings_are_checked() {
        let ocsp = |text: &str| toml::from_str::<Config>(text).unwrap().ocsp.check(true);
        ocsp("[ocsp]\ndelegated = true").unwrap();
        ocsp("[ocsp]\ndelegated = true\ndelegated_validity_days = 1\nvalidity_secs = 28800")
            .unwrap();
        let e =
            ocsp("[ocsp]\ndelegated = true\ndelegated_validity_days = 1\nvalidity_secs = 28801")
                .unwrap_err()
                .to_string();
        assert!(e.contains("validity_secs"), "{e}");
        // Off, the response validity is not bound by the responder certificate's.
        ocsp("[ocsp]\ndelegated_validity_days = 1\nvalidity_secs = 86400").unwrap();
        for days in [0, 367] {
            let e = ocsp(&format!("[ocsp]\ndelegated_validity_days = {days}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("delegated_validity_days"), "{e}");
        }
    }

    #[test]
    fn the_invalidity_date_floor_is_checked_at_load() {
        let dir = std::env::temp_dir().join(format!("ca-config-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        std::fs::write(
            &path,
            "[revocation]\nmin_invalidity_date = \"1900-01-01T00:00:00Z\"",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(
            config.revocation.min_invalidity_unix().unwrap(),
            -2_208_988_800
        );
        std::fs::write(&path, "[revocation]\nmin_invalidity_date = \"1950\"").unwrap();
        let e = error_chain(&Config::load(&path).unwrap_err());
        assert!(e.contains("min_invalidity_date"), "{e}");
        let default: Config = toml::from_str("").unwrap();
        assert_eq!(
            default.revocation.min_invalidity_date,
            "1950-01-01T00:00:00Z"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes `text` as a configuration file and loads it.
    fn load_text(tag: &str, text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("ca-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, text).unwrap();
        let result = Config::load(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    /// The refusal of `text` as the command line prints it.
    fn refusal(tag: &str, text: &str) -> String {
        error_chain(&load_text(tag, text).unwrap_err())
    }

    #[test]
    fn unknown_key_types_are_refused_naming_the_file_key_and_allowed_values() {
        for bad in [
            "banana",
            "ec-p521",
            "rsa-1024",
            "rsa-16384",
            "rsa-",
            "RSA-2048",
        ] {
            let text = format!("[profiles.tls-server]\nkey_types = [\"ec-p256\", \"{bad}\"]\n");
            let e = refusal("keytype", &text);
            for part in [
                CONFIG_FILE,
                "[profiles.tls-server] key_types",
                &format!("{bad:?}"),
                "ec-p256, ec-p384, ed25519, rsa-BITS",
            ] {
                assert!(e.contains(part), "{bad}: {part} missing from {e}");
            }
        }
        let config = load_text(
            "keytype-ok",
            "[profiles.big]\nkey_types = [\"rsa-8192\", \"ec-p384\"]\n",
        )
        .unwrap();
        let profile = &config.profiles["big"];
        assert!(profile.allows_key_type("rsa-8192"));
        assert!(!profile.allows_key_type("ec-p256"));
        assert_eq!(profile.allowed_key_types(), "rsa-8192, ec-p384");
        let e = refusal("keytype-empty", "[profiles.none]\nkey_types = []\n");
        assert!(
            e.contains("[profiles.none] key_types must not be empty"),
            "{e}"
        );
    }

    #[test]
    fn other_enumerated_values_are_refused_naming_the_key() {
        let cases = [
            (
                "[profiles.p]\nkey_usage = [\"digitalSignature\", \"everything\"]\n",
                "[profiles.p] key_usage",
            ),
            (
                "[profiles.p]\nextended_key_usage = [\"anyPurpose\"]\n",
                "[profiles.p] extended_key_usage",
            ),
            (
                "[profiles.p.subject]\nallowed = [\"CN\", \"favouriteColour\"]\n",
                "[profiles.p.subject] allowed",
            ),
            (
                "[[tls.clients]]\nspki_sha256 = \"00\"\nrole = \"admin\"\nname = \"x\"\n",
                "[[tls.clients]] #1 role",
            ),
            ("[profiles.p.san]\nwildcard = true\n", "[profiles.p.san]"),
        ];
        for (text, key) in cases {
            let e = refusal("enum", text);
            assert!(e.contains(CONFIG_FILE), "{text}: {e}");
            assert!(e.contains(key), "{text}: {key} missing from {e}");
        }
        let e = refusal(
            "role",
            "[[tls.clients]]\nspki_sha256 = \"00\"\nrole = \"admin\"\nname = \"x\"\n",
        );
        assert!(e.contains("ra, auditor, operator"), "{e}");
    }

    #[test]
    fn no_client_certificate_acts_as_a_ca_admin() {
        let e = refusal(
            "ca-admin",
            "[[tls.clients]]\nspki_sha256 = \"00\"\nrole = \"ca-admin\"\nname = \"x\"\n",
        );
        assert!(e.contains("[[tls.clients]] #1 role"), "{e}");
        assert!(e.contains("ca-server token create"), "{e}");
    }

    #[test]
    fn the_generated_config_takes_appended_client_entries() {
        let text = Config::default().to_toml().unwrap();
        assert!(!text.contains("clients"), "{text}");
        let appended = format!(
            "{text}\n[[tls.clients]]\ncertificate_sha256 = \"{}\"\nrole = \"auditor\"\n\
             name = \"portal\"\n",
            "ab".repeat(32)
        );
        let config = load_text("clients", &appended).unwrap();
        assert_eq!(config.tls.clients.len(), 1);
        assert_eq!(config.tls.clients[0].role, Role::Auditor);
        // What earlier versions wrote is still read.
        let old = text.replace("[tls]\n", "[tls]\nclients = []\n");
        assert!(old.contains("clients = []"));
        assert!(load_text("clients-old", &old)
            .unwrap()
            .tls
            .clients
            .is_empty());
        // A valid configuration is written back as it was read.
        assert_eq!(
            config.to_toml().unwrap(),
            Config::parse(&config.to_toml().unwrap())
                .unwrap()
                .to_toml()
                .unwrap()
        );
    }

    #[test]
    fn profiles_cannot_grant_ocsp_signing() {
        let text = "[profiles.evil]\nextended_key_usage = [\"ocspSigning\"]";
        assert!(toml::from_str::<Config>(text).is_err());
    }
}
