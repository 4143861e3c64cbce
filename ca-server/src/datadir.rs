//! The data directory: first-start bootstrap, CA creation and import, bootstrap tokens.
//!
//! Layout (every name configurable in `config.toml`):
//! `config.toml`, `ca-key.pem` (0600), `ca.pem` (CA certificate and its issuers),
//! `ca.csr.pem` (an intermediate's request, until `import`), `db/` (RocksDB),
//! `bootstrap-tokens.json` (0600, written once); with `[ocsp] delegated`, the delegated OCSP
//! responder's `ocsp-key.pem` (0600) and `ocsp.pem` (its certificate, issued by the CA).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use ca_core::armor::InvalidPem;
use ca_core::audit::{AuditAction, AuditEvent};
use ca_core::authority::{create_intermediate_csr, create_root, CertificateAuthority, Urls};
use ca_core::crl::{CrlBuilder, CrlPublisher};
use ca_core::csr::San;
use ca_core::engine::{Engine, StatusObserver};
use ca_core::metered_signer::MeteredSigner;
use ca_core::ocsp::{
    check_responder_certificate, issue_responder_certificate, ResponderValidity, RESPONDER_PROFILE,
};
use ca_core::server_tls::{self, SERVER_TLS_PROFILE};
use ca_core::store::{Storage, Store};
use ca_core::{armor, name, CaError, Serial};
use ca_store_pg::{PgConfig, PgStore};
use keys::pkcs11::{Pkcs11Config, Pkcs11Pin, Pkcs11Signer};
use keys::{
    KeyAlgorithm, KeyError, KeyProvider, RandomError, SecureRandom, Signer, SoftwareKey,
    SoftwareKeys,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::error::X509Error;

use crate::auth::{create_token, Role};
use crate::config::{
    Config, ConfigError, Pkcs11Settings, ResponderKeyStore, StatusUrlError, StoreBackend,
    CONFIG_FILE, PKCS11_PIN_ENV,
};
use crate::durable;
use crate::responder_key::ResponderKeys;

/// What parsing a certificate with x509-parser fails with.
pub type X509ParseError = x509_parser::nom::Err<X509Error>;

/// Why the data directory could not be prepared, created, loaded or changed (`init`,
/// `import`, `tls-cert`, `crl generate`, the start of `serve`). Each variant names the file,
/// the argument or the step concerned; the error underneath, when there is one, is its source.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The configuration file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration could not be written as TOML.
    #[error("encoding the configuration as TOML")]
    EncodeConfig(#[from] toml::ser::Error),
    /// No URLs can be derived for the certificates the command issues.
    #[error(transparent)]
    StatusUrls(#[from] StatusUrlError),
    /// A key could not be generated, read, written or loaded (the key file is named).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The CA core failed or refused: the store, the engine, the CA's certificate.
    #[error(transparent)]
    Core(#[from] CaError),
    /// A file or directory could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What reading failed with.
        source: std::io::Error,
    },
    /// The CA chain file could not be read.
    #[error("reading the CA chain {}", path.display())]
    ReadChain {
        /// The chain file.
        path: PathBuf,
        /// What reading failed with.
        source: std::io::Error,
    },
    /// A file could not be written (durably).
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What writing failed with.
        source: std::io::Error,
    },
    /// A directory could not be created.
    #[error("creating {}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// What creating it failed with.
        source: std::io::Error,
    },
    /// The existing configuration could not be copied into the directory `init` builds.
    #[error("copying {}", path.display())]
    Copy {
        /// The configuration file.
        path: PathBuf,
        /// What copying failed with.
        source: std::io::Error,
    },
    /// A file `init` built could not be moved into the data directory.
    #[error("moving {} to {}", from.display(), to.display())]
    Move {
        /// Where the file is.
        from: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// What moving failed with.
        source: std::io::Error,
    },
    /// A file or directory could not be renamed into place.
    #[error("renaming {} to {}", from.display(), to.display())]
    Rename {
        /// The new file or directory.
        from: PathBuf,
        /// Its place.
        to: PathBuf,
        /// What renaming failed with.
        source: std::io::Error,
    },
    /// The emptied temporary directory of `init` could not be removed.
    #[error("removing {}", path.display())]
    Remove {
        /// The directory.
        path: PathBuf,
        /// What removing failed with.
        source: std::io::Error,
    },
    /// A directory could not be synced to disk.
    #[error("syncing {}", path.display())]
    Sync {
        /// The directory.
        path: PathBuf,
        /// What syncing failed with.
        source: std::io::Error,
    },
    /// The data directory's path names something other than a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The data directory belongs to another user, who could replace what it holds.
    #[error(
        "refusing the data directory {}: it belongs to uid {owner}, not to this process's \
         user (uid {user}); chown it to the user that runs ca-server",
        path.display()
    )]
    NotOwned {
        /// The data directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        user: u32,
    },
    /// The data directory is group- or world-writable.
    #[error(
        "refusing the data directory {}: its mode {mode:04o} lets others write to it; run \
         `chmod 700 {}`",
        path.display(),
        path.display()
    )]
    WritableByOthers {
        /// The data directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The data directory's path has no last component (`/`, `..`).
    #[error("{} does not name a directory", path.display())]
    NoDirectoryName {
        /// The path.
        path: PathBuf,
    },
    /// `init --intermediate` with `--tls-name`: an intermediate has no certificate yet.
    #[error(
        "--tls-name needs a root; an intermediate issues its TLS certificate with `tls-cert` \
         after `import`"
    )]
    TlsNameNeedsRoot,
    /// `--validity-days` of a root is 0 or beyond [`MAX_ROOT_VALIDITY_DAYS`].
    #[error(
        "--validity-days {days} is out of range: give 1 to {} days",
        MAX_ROOT_VALIDITY_DAYS
    )]
    ValidityDays {
        /// The days asked for.
        days: u32,
    },
    /// The CA subject (`--subject`) is not an RFC 4514 name this CA can write.
    #[error("--subject")]
    Subject(#[source] CaError),
    /// The CA subject is empty.
    #[error("the CA subject (--subject) must not be empty")]
    EmptySubject,
    /// The configuration names a CA key or certificate that exists: `init` never replaces a CA.
    #[error(
        "a CA exists already in {} ({} / {}); refusing to replace it",
        dir.display(),
        key.display(),
        chain.display()
    )]
    CaExists {
        /// The data directory.
        dir: PathBuf,
        /// The CA key file.
        key: PathBuf,
        /// The CA chain file.
        chain: PathBuf,
    },
    /// `init --store-url` named a database that belongs to a CA already (a second node is a
    /// copy of the first node's data directory, not a new `init`).
    #[error(
        "the database holds a CA's records already: a new CA needs a database of its own; a \
         second node of the same CA is a copy of the first node's data directory"
    )]
    StoreInUse,
    /// A file `init` would move into the data directory is there already.
    #[error("{} exists already; move it away and run `init` again", path.display())]
    Exists {
        /// The file in the way.
        path: PathBuf,
    },
    /// No serial could be drawn for a certificate the data directory issues itself.
    #[error("the system random generator failed")]
    Random(#[source] RandomError),
    /// `import` without `--force` where a CA chain is installed.
    #[error(
        "a CA chain is installed already at {}; to replace it with this certificate and \
         chain, run `ca-server import --force --cert ... --chain ...`",
        path.display()
    )]
    ChainInstalled {
        /// The installed chain file.
        path: PathBuf,
    },
    /// A PEM file given to `import` is not PEM.
    #[error("{what}")]
    ImportPem {
        /// Which file: the certificate (`--cert`) or the chain (`--chain`).
        what: &'static str,
        /// Why it is not PEM.
        source: InvalidPem,
    },
    /// The certificate file of `import` holds no certificate or several.
    #[error("the certificate file (--cert) must hold exactly one certificate")]
    CertificateCount,
    /// The chain file of `import` holds no certificate.
    #[error(
        "the chain file (--chain) holds no certificate; give the parent CA's certificate and \
         its issuers up to the root"
    )]
    EmptyChainFile,
    /// The certificate of `import` does not parse.
    #[error("the certificate (--cert) does not parse")]
    CertificateParse(#[source] X509ParseError),
    /// The certificate of `import` certifies another key than the CA's.
    #[error(
        "the certificate's public key does not match the CA key at {}",
        key.display()
    )]
    KeyMismatch {
        /// The CA key file.
        key: PathBuf,
    },
    /// The certificate of `import` is not a CA certificate.
    #[error("the certificate is not a CA certificate (basicConstraints cA)")]
    NotCa,
    /// A link of the imported chain does not hold.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A certificate file of the data directory is not PEM.
    #[error("{}", path.display())]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// Why it is not PEM.
        source: InvalidPem,
    },
    /// A certificate file of the data directory holds no certificate.
    #[error("{} holds no certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The bootstrap tokens could not be encoded as JSON.
    #[error("encoding the bootstrap tokens")]
    EncodeTokens(#[source] serde_json::Error),
    /// The CA key and certificate do not make a CA: not the same key pair, or a certificate
    /// the CA cannot use.
    #[error(
        "the CA key ({}) and certificate ({}) must belong together: restore the matching pair \
         from your backup (never serve with another key)",
        key.display(),
        chain.display()
    )]
    KeyCertificateMismatch {
        /// The CA key file.
        key: PathBuf,
        /// The CA chain file.
        chain: PathBuf,
        /// Why the CA refused them.
        source: Box<CaError>,
    },
    /// `tls-cert` where a TLS key or certificate file exists.
    #[error(
        "{} or {} exists; move them away to issue a new TLS certificate",
        key.display(),
        cert.display()
    )]
    TlsFilesExist {
        /// The TLS key file.
        key: PathBuf,
        /// The TLS certificate file.
        cert: PathBuf,
    },
    /// The CA could not issue the server's TLS certificate.
    #[error("issuing the server's TLS certificate")]
    IssueTlsCertificate(#[source] CaError),
    /// The server's TLS certificate could not be recorded in the store and the audit log.
    #[error("recording the server's TLS certificate")]
    RecordTlsCertificate(#[source] CaError),
    /// The CA could not issue the delegated OCSP responder's certificate.
    #[error("issuing the OCSP responder certificate")]
    IssueResponder(#[source] CaError),
    /// The OCSP responder's certificate could not be recorded in the store and the audit log.
    #[error("recording the OCSP responder certificate")]
    RecordResponder(#[source] CaError),
    /// The OCSP responder's certificate file does not hold exactly one certificate.
    #[error("{} must hold one certificate", path.display())]
    ResponderCertificateCount {
        /// The file.
        path: PathBuf,
    },
    /// The OCSP responder's certificate is not the CA's OCSP signing certificate for its key.
    #[error("{}", path.display())]
    ResponderCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        source: CaError,
    },
    /// A profile's standard needs URLs in its certificates that `[urls]` does not give.
    #[error("the CA's URLs do not give a profile what its standard requires")]
    ProfileUrls(#[source] ca_core::profile::ProfileError),
    /// A CA profile asks for CA certificates that the CA's own certificate cannot issue (its
    /// path length leaves no room for them).
    #[error("the CA certificate cannot issue what a CA profile asks for")]
    ProfileIssuer(#[source] ca_core::profile::ProfileError),
}

/// Why a CA chain (the imported certificate, then the `--chain` certificates up to the root)
/// is refused. Each variant names the failing link by position (1 is the imported
/// certificate, 2 the first of `--chain`) and subject.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A certificate does not parse.
    #[error("{position} does not parse")]
    Parse {
        /// The certificate's position.
        position: String,
        /// The parser's error.
        source: X509ParseError,
    },
    /// The current time cannot be compared with certificate times.
    #[error("the current time")]
    Time(#[source] X509Error),
    /// A certificate is not valid now.
    #[error("{link} is not valid now (valid from {not_before} to {not_after})")]
    NotValidNow {
        /// The certificate.
        link: String,
        /// Its notBefore.
        not_before: String,
        /// Its notAfter.
        not_after: String,
    },
    /// The next certificate is not the one whose subject issued this one.
    #[error(
        "{link} was issued by {issuer}, but the next certificate of the chain is {next}: the \
         chain (--chain) is not the one of the CA that signed it"
    )]
    WrongIssuer {
        /// The certificate.
        link: String,
        /// Its issuer name.
        issuer: String,
        /// The next certificate of the chain.
        next: String,
    },
    /// An issuer is not a CA certificate.
    #[error("{link} is not a CA certificate (basicConstraints cA)")]
    NotCa {
        /// The certificate.
        link: String,
    },
    /// A certificate's authority key identifier is not its issuer's subject key identifier.
    #[error(
        "the authority key identifier of {link} ({aki}) differs from the subject key \
         identifier of {issuer} ({ski}): the chain (--chain) is not the one of the CA that \
         signed it"
    )]
    KeyIdentifierMismatch {
        /// The certificate.
        link: String,
        /// Its authority key identifier, hex.
        aki: String,
        /// The next certificate of the chain.
        issuer: String,
        /// That certificate's subject key identifier, hex.
        ski: String,
    },
    /// A certificate's signature does not verify with the next certificate's key.
    #[error(
        "the signature of {link} does not verify with the key of {issuer}: the chain \
         (--chain) is not the one of the CA that signed it"
    )]
    Signature {
        /// The certificate.
        link: String,
        /// The next certificate of the chain.
        issuer: String,
        /// The verifier's error.
        source: X509Error,
    },
    /// The last certificate is not a self-signed root.
    #[error(
        "{link} is not a self-signed root (issued by {issuer}); end --chain with the root CA's \
         certificate"
    )]
    NotSelfSigned {
        /// The last certificate.
        link: String,
        /// Its issuer name.
        issuer: String,
    },
}

/// The subject of the development CA created on first start, with the countryName the
/// CA/Browser Forum require in CA certificates (TLS BR 7.1.2.10.2); `XX` is ISO 3166's
/// user-assigned code, for a CA that is no country's.
pub const DEV_CA_SUBJECT: &str = "CN=ca-core Development Root CA,O=ca-core development,C=XX";
/// Validity of a root CA created by `init`, in days (10 years).
pub const ROOT_VALIDITY_DAYS: u32 = 3650;
/// The actor the audit log names for the CA's own actions (first start, timers).
pub const ACTOR: &str = "ca-server";
/// Name of the bootstrap token file.
pub const BOOTSTRAP_TOKENS: &str = "bootstrap-tokens.json";
/// Name of an intermediate CA's pending request.
pub const CA_CSR_FILE: &str = "ca.csr.pem";
/// Name of the delegated OCSP responder's key file (mode 0600).
pub const OCSP_KEY_FILE: &str = "ocsp-key.pem";
/// Name of the delegated OCSP responder's certificate file.
pub const OCSP_CERT_FILE: &str = "ocsp.pem";

/// Creates the data directory (mode 0700) and a default `config.toml` if they are missing,
/// then loads the configuration. An existing directory must pass [`check_dir_permissions`].
pub fn prepare(dir: &Path) -> Result<Config, DataDirError> {
    if dir.exists() {
        check_dir_permissions(dir)?;
    } else {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| DataDirError::Create {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.exists() {
        let text = Config::default().to_toml()?;
        write_public(&config_path, text.as_bytes())?;
        tracing::info!(path = %config_path.display(), "wrote the default configuration");
    }
    Ok(Config::load(&config_path)?)
}

/// Writes a file others may read ([`durable::PUBLIC`]), durably.
fn write_public(path: &Path, contents: &[u8]) -> Result<(), DataDirError> {
    durable::write(path, contents, durable::PUBLIC).map_err(|source| DataDirError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a data directory that someone other than this process's user could change: it
/// must be a directory owned by the effective user, and neither group- nor world-writable
/// (whoever can write to it can replace the configuration, the CA certificate or the store).
pub fn check_dir_permissions(dir: &Path) -> Result<(), DataDirError> {
    use std::os::unix::fs::MetadataExt;
    let path = || dir.to_path_buf();
    let meta = fs::metadata(dir).map_err(|source| DataDirError::Read {
        path: path(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(DataDirError::NotADirectory { path: path() });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(DataDirError::NotOwned {
            path: path(),
            owner: meta.uid(),
            user: me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DataDirError::WritableByOthers { path: path(), mode });
    }
    Ok(())
}

/// Warns when `bootstrap-tokens.json` is still in `dir`: the tokens it holds are live until
/// revoked, so it should be deleted once its tokens are handed to their holders.
pub fn warn_bootstrap_file(dir: &Path) {
    let path = dir.join(BOOTSTRAP_TOKENS);
    if path.exists() {
        tracing::warn!(
            path = %path.display(),
            "the bootstrap token file is still on disk; hand its tokens to their holders \
             (or revoke them) and delete it"
        );
    }
}

/// Records in the audit log that the server starts with the configuration in `dir`, by the
/// SHA-256 of the file (before the engine runs).
pub fn record_configuration(dir: &Path, store: &dyn Storage) -> Result<(), DataDirError> {
    let path = dir.join(CONFIG_FILE);
    let text = fs::read(&path).map_err(|source| DataDirError::Read {
        path: path.clone(),
        source,
    })?;
    let event = AuditEvent::new(
        OffsetDateTime::now_utc().unix_timestamp(),
        ACTOR,
        AuditAction::ConfigurationLoaded,
        path.display().to_string(),
    )
    .with("sha256", hex::encode(Sha256::digest(&text)))
    .with("version", env!("CARGO_PKG_VERSION"));
    store.record_event(event)?;
    Ok(())
}

/// What `init` created.
#[derive(Debug)]
pub enum Created {
    /// A self-signed root; its certificate is at this path.
    Root(PathBuf),
    /// An intermediate key; its CSR (to be signed by the parent) is at this path.
    IntermediateCsr(PathBuf),
}

/// The longest validity `init` gives a root certificate, in days (100 years).
pub const MAX_ROOT_VALIDITY_DAYS: u32 = 36_500;

/// Removes a temporary directory when dropped, also when a step panics.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// What `ca-server init` is asked to create.
#[derive(Debug)]
pub struct InitRequest<'a> {
    /// The CA key's type.
    pub key_type: KeyAlgorithm,
    /// The CA subject, RFC 4514.
    pub subject: &'a str,
    /// Validity of a root certificate, days.
    pub validity_days: u32,
    /// A key and CSR for an intermediate instead of a root.
    pub intermediate: bool,
    /// Names for the server's own TLS certificate (root only; see
    /// [`server_tls::server_names`]); none: no TLS certificate.
    pub tls_names: &'a [San],
    /// The CA key in this PKCS#11 token instead of a key file (`[ca.pkcs11]`).
    pub pkcs11: Option<Pkcs11Settings>,
    /// The records in this PostgreSQL database instead of RocksDB (`[store]`): its URL and
    /// password file.
    pub store: Option<(String, Option<PathBuf>)>,
}

/// What `ca-server init` created, with paths in the data directory.
#[derive(Debug)]
pub struct Initialized {
    /// The root certificate or the intermediate's CSR.
    pub created: Created,
    /// The TLS certificate, when `--tls-name` was given.
    pub tls: Option<TlsIssued>,
}

/// `ca-server init`, all or nothing: checks the request first, builds the whole data
/// directory (configuration, CA key, certificate or CSR, store, TLS certificate) in a
/// temporary directory beside `dir`, and only when every step succeeded moves it into place
/// (renames the directory, or moves its files into an existing `dir`, which may hold only a
/// `config.toml`, copied in first). On failure the temporary directory is removed, so `dir`
/// is as it was (or absent) and `init` can simply be run again.
pub fn init(dir: &Path, req: &InitRequest<'_>) -> Result<Initialized, DataDirError> {
    if req.intermediate && !req.tls_names.is_empty() {
        return Err(DataDirError::TlsNameNeedsRoot);
    }
    if !(1..=MAX_ROOT_VALIDITY_DAYS).contains(&req.validity_days) {
        return Err(DataDirError::ValidityDays {
            days: req.validity_days,
        });
    }
    let attrs = name::parse_rfc4514(req.subject).map_err(DataDirError::Subject)?;
    if attrs.is_empty() {
        return Err(DataDirError::EmptySubject);
    }
    let existing = dir.exists();
    if existing {
        check_dir_permissions(dir)?;
        let config_path = dir.join(CONFIG_FILE);
        if config_path.exists() {
            refuse_existing_ca(dir, &Config::load(&config_path)?)?;
        }
    }
    let file_name = dir
        .file_name()
        .ok_or_else(|| DataDirError::NoDirectoryName {
            path: dir.to_path_buf(),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(|source| DataDirError::Create {
                path: parent.clone(),
                source,
            })?;
    }
    let tmp = parent.join(format!(".{file_name}.init-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|source| DataDirError::Create {
            path: tmp.clone(),
            source,
        })?;
    let mut guard = RemoveOnDrop(Some(tmp.clone()));
    let result = build_and_install(dir, &tmp, existing, req);
    if result.is_ok() {
        // Renamed into place (or emptied and removed): nothing to clean up.
        guard.0 = None;
    }
    result
}

fn build_and_install(
    dir: &Path,
    tmp: &Path,
    existing: bool,
    req: &InitRequest<'_>,
) -> Result<Initialized, DataDirError> {
    let config_path = dir.join(CONFIG_FILE);
    if existing && config_path.exists() {
        fs::copy(&config_path, tmp.join(CONFIG_FILE)).map_err(|source| DataDirError::Copy {
            path: config_path.clone(),
            source,
        })?;
    }
    let mut config = prepare(tmp)?;
    if let Some(pkcs11) = &req.pkcs11 {
        config.ca.pkcs11 = Some(pkcs11.clone());
        write_public(&tmp.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
    }
    if let Some((url, password_file)) = &req.store {
        config.store.backend = StoreBackend::Postgres;
        config.store.url = Some(url.clone());
        config.store.password_file = password_file.clone();
        // Creates the schema (or finds it); a database with records belongs to a CA already.
        let store = PgStore::create(&pg_config(tmp, &config)?)?;
        if store.in_use()? {
            return Err(DataDirError::StoreInUse);
        }
        write_public(&tmp.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
    }
    // A key generated in the token is destroyed again when a later step fails (dropped).
    let (created, generated) = init_ca_key(
        tmp,
        &config,
        req.key_type,
        req.subject,
        req.validity_days,
        req.intermediate,
    )?;
    let tls = if req.tls_names.is_empty() {
        None
    } else {
        Some(issue_tls_certificate(tmp, req.tls_names)?)
    };
    let moved = |p: PathBuf| match p.strip_prefix(tmp) {
        Ok(rel) => dir.join(rel),
        Err(_) => p,
    };
    if existing {
        let entries = fs::read_dir(tmp)
            .and_then(|d| d.collect::<Result<Vec<_>, _>>())
            .map_err(|source| DataDirError::Read {
                path: tmp.to_path_buf(),
                source,
            })?;
        for entry in &entries {
            let target = dir.join(entry.file_name());
            if entry.file_name() != CONFIG_FILE && fs::symlink_metadata(&target).is_ok() {
                return Err(DataDirError::Exists { path: target });
            }
        }
        // The configuration last: until it is in place, `dir` has no CA.
        let mut entries = entries;
        entries.sort_by_key(|e| e.file_name() == CONFIG_FILE);
        for entry in entries {
            let target = dir.join(entry.file_name());
            fs::rename(entry.path(), &target).map_err(|source| DataDirError::Move {
                from: entry.path(),
                to: target.clone(),
                source,
            })?;
        }
        fs::remove_dir(tmp).map_err(|source| DataDirError::Remove {
            path: tmp.to_path_buf(),
            source,
        })?;
        durable::sync_dir(dir).map_err(|source| DataDirError::Sync {
            path: dir.to_path_buf(),
            source,
        })?;
    } else {
        rename(tmp, dir)?;
    }
    if let Some(generated) = generated {
        generated.keep();
    }
    let created = match created {
        Created::Root(p) => Created::Root(moved(p)),
        Created::IntermediateCsr(p) => Created::IntermediateCsr(moved(p)),
    };
    Ok(Initialized {
        created,
        tls: tls.map(|t| TlsIssued {
            chain: moved(t.chain),
            public: t.public,
        }),
    })
}

/// Refuses to create a CA where `config` already names a CA key or certificate that exists.
fn refuse_existing_ca(dir: &Path, config: &Config) -> Result<(), DataDirError> {
    let key_path = Config::resolve(dir, &config.ca.key_file);
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    if key_path.exists() || chain_path.exists() {
        return Err(DataDirError::CaExists {
            dir: dir.to_path_buf(),
            key: key_path,
            chain: chain_path,
        });
    }
    Ok(())
}

/// Renames `from` to `to` durably ([`durable::rename`]).
pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), DataDirError> {
    durable::rename(from, to).map_err(|source| DataDirError::Rename {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

/// Creates a CA key and either a self-signed root certificate or an intermediate's CSR.
pub fn init_ca(
    dir: &Path,
    config: &Config,
    key_type: KeyAlgorithm,
    subject: &str,
    validity_days: u32,
    intermediate: bool,
) -> Result<Created, DataDirError> {
    let (created, generated) =
        init_ca_key(dir, config, key_type, subject, validity_days, intermediate)?;
    if let Some(generated) = generated {
        generated.keep();
    }
    Ok(created)
}

/// A CA key pair that `init` generated in a PKCS#11 token: destroyed again when dropped
/// before [`GeneratedTokenKey::keep`], so that a failed `init` leaves no orphan key in the
/// token (the key ceremony is all or nothing, as the data directory is).
pub struct GeneratedTokenKey(Option<Arc<Pkcs11Signer>>);

impl GeneratedTokenKey {
    /// `init` completed: the key stays.
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for GeneratedTokenKey {
    fn drop(&mut self) {
        let Some(key) = self.0.take() else { return };
        match Arc::try_unwrap(key) {
            Ok(key) => {
                if let Err(e) = key.destroy() {
                    tracing::error!(error = %e, "init failed and the key it generated in the token could not be destroyed: destroy it by its label");
                }
            }
            Err(_) => tracing::error!(
                "init failed and the key it generated in the token is still in use: destroy it by its label"
            ),
        }
    }
}

/// The CA key `init` uses: a new PKCS#8 file, or in the configured PKCS#11 token the key
/// labelled `key_label` (generated there when the token has none, with the guard that
/// destroys it again unless `init` completes).
fn new_ca_key(
    dir: &Path,
    config: &Config,
    key_type: KeyAlgorithm,
) -> Result<(Arc<dyn Signer>, Option<GeneratedTokenKey>), DataDirError> {
    let Some(settings) = &config.ca.pkcs11 else {
        let key_path = Config::resolve(dir, &config.ca.key_file);
        let der = keys::generate_pkcs8(key_type)?;
        keys::write_key_file(&key_path, &der)?;
        return Ok((Arc::new(SoftwareKey::from_pkcs8(&der)?), None));
    };
    let token = pkcs11_config(dir, settings)?;
    match Pkcs11Signer::generate(&token, key_type) {
        Ok(key) => {
            let key = Arc::new(key);
            tracing::info!(token = %settings.token_label, label = %settings.key_label, key_type = %key_type, "generated the CA key pair in the token");
            Ok((key.clone(), Some(GeneratedTokenKey(Some(key)))))
        }
        Err(KeyError::Pkcs11LabelExists { .. }) => {
            let key = Pkcs11Signer::open(&token)?;
            tracing::info!(token = %settings.token_label, label = %settings.key_label, key_type = %key.algorithm(), "using the CA key pair already in the token");
            Ok((Arc::new(key), None))
        }
        Err(e) => Err(e.into()),
    }
}

/// The PKCS#11 settings with the user PIN, read from `pin_file` (mode 0600) or from the
/// environment variable [`PKCS11_PIN_ENV`].
pub(crate) fn pkcs11_config(
    dir: &Path,
    settings: &Pkcs11Settings,
) -> Result<Pkcs11Config, DataDirError> {
    let pin = match &settings.pin_file {
        Some(path) => Pkcs11Pin::from_file(&Config::resolve(dir, path))?,
        None => Pkcs11Pin::from_env(PKCS11_PIN_ENV)?,
    };
    Ok(Pkcs11Config {
        module: settings.module.clone(),
        token_label: settings.token_label.clone(),
        key_label: settings.key_label.clone(),
        pin,
        sessions: settings.sessions,
    })
}

/// The CA's signing key where the configuration keeps it: in the `[ca.pkcs11]` token, or in
/// the 0600 PKCS#8 file `key_file`.
pub fn open_ca_key(dir: &Path, config: &Config) -> Result<Arc<dyn Signer>, DataDirError> {
    match &config.ca.pkcs11 {
        Some(settings) => Ok(Arc::new(Pkcs11Signer::open(&pkcs11_config(
            dir, settings,
        )?)?)),
        None => Ok(SoftwareKeys::new().load_signer(&Config::resolve(dir, &config.ca.key_file))?),
    }
}

/// Where the CA key is, for messages: the key file, or the token object as an RFC 7512
/// PKCS#11 URI.
fn ca_key_location(dir: &Path, config: &Config) -> PathBuf {
    match &config.ca.pkcs11 {
        Some(p) => PathBuf::from(format!(
            "pkcs11:token={};object={}",
            p.token_label, p.key_label
        )),
        None => Config::resolve(dir, &config.ca.key_file),
    }
}

/// [`init_ca`], also returning the guard of a key generated in a token.
fn init_ca_key(
    dir: &Path,
    config: &Config,
    key_type: KeyAlgorithm,
    subject: &str,
    validity_days: u32,
    intermediate: bool,
) -> Result<(Created, Option<GeneratedTokenKey>), DataDirError> {
    refuse_existing_ca(dir, config)?;
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    let attrs = name::parse_rfc4514(subject).map_err(DataDirError::Subject)?;
    if attrs.is_empty() {
        return Err(DataDirError::EmptySubject);
    }
    let (signer, generated) = new_ca_key(dir, config, key_type)?;
    if intermediate {
        let csr = create_intermediate_csr(signer, &attrs)?;
        let path = dir.join(CA_CSR_FILE);
        write_public(&path, armor::to_pem("CERTIFICATE REQUEST", &csr).as_bytes())?;
        return Ok((Created::IntermediateCsr(path), generated));
    }
    let serial = new_serial()?;
    let cert = create_root(signer, &attrs, validity_days, serial)?;
    write_chain(&chain_path, &[cert])?;
    Ok((Created::Root(chain_path), generated))
}

/// A fresh serial for a certificate the data directory issues itself (root, OCSP responder).
fn new_serial() -> Result<Serial, DataDirError> {
    Serial::random(&keys::SystemRandom::new()).map_err(DataDirError::Random)
}

/// Installs an intermediate CA's signed certificate (and its issuers) after checking that it
/// certifies the CA key created by `init --intermediate` and that every link of the chain holds
/// (see [`verify_chain`]); nothing is written unless all checks pass. An installed chain is
/// replaced only with `force` (`import --force`).
pub fn import(
    dir: &Path,
    config: &Config,
    cert_pem: &str,
    chain_pem: &str,
    force: bool,
) -> Result<PathBuf, DataDirError> {
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    if chain_path.exists() && !force {
        return Err(DataDirError::ChainInstalled { path: chain_path });
    }
    let key = open_ca_key(dir, config)?;
    let mut chain =
        armor::parse_certificates(cert_pem).map_err(|source| DataDirError::ImportPem {
            what: "the certificate file (--cert)",
            source,
        })?;
    if chain.len() != 1 {
        return Err(DataDirError::CertificateCount);
    }
    let parents =
        armor::parse_certificates(chain_pem).map_err(|source| DataDirError::ImportPem {
            what: "the chain file (--chain)",
            source,
        })?;
    if parents.is_empty() {
        return Err(DataDirError::EmptyChainFile);
    }
    chain.extend(parents);
    let (_, cert) =
        x509_parser::parse_x509_certificate(&chain[0]).map_err(DataDirError::CertificateParse)?;
    if cert.tbs_certificate.subject_pki.raw != key.spki_der() {
        return Err(DataDirError::KeyMismatch {
            key: ca_key_location(dir, config),
        });
    }
    if !cert.is_ca() {
        return Err(DataDirError::NotCa);
    }
    verify_chain(&chain, OffsetDateTime::now_utc())?;
    write_chain(&chain_path, &chain)?;
    Ok(chain_path)
}

/// Checks a CA chain (`chain[0]` the CA certificate, then its issuers): every certificate
/// parses and is valid at `now`; every issuer is a CA (basicConstraints cA), its subject is
/// the issuer name of the certificate below it, its subject key identifier matches that
/// certificate's authority key identifier where both are present, and its key verifies that
/// certificate's signature; the last certificate is a self-signed root. The error names the
/// failing link by position (1 is the imported certificate, 2 the first of `--chain`) and
/// subject.
pub fn verify_chain(chain: &[Vec<u8>], now: OffsetDateTime) -> Result<(), ChainError> {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::{ASN1Time, X509Certificate};
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, c)| c)
                .map_err(|source| ChainError::Parse {
                    position: position(i),
                    source,
                })
        })
        .collect::<Result<Vec<X509Certificate<'_>>, ChainError>>()?;
    let at = ASN1Time::from_timestamp(now.unix_timestamp()).map_err(ChainError::Time)?;
    let label = |i: usize| format!("{} ({})", position(i), certs[i].subject());
    let ski = |c: &X509Certificate<'_>| {
        c.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
    };
    let aki = |c: &X509Certificate<'_>| {
        c.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
    };
    for (i, cert) in certs.iter().enumerate() {
        if !cert.validity().is_valid_at(at) {
            return Err(ChainError::NotValidNow {
                link: label(i),
                not_before: cert.validity().not_before.to_string(),
                not_after: cert.validity().not_after.to_string(),
            });
        }
        let Some(parent) = certs.get(i + 1) else {
            continue;
        };
        if cert.issuer().as_raw() != parent.subject().as_raw() {
            return Err(ChainError::WrongIssuer {
                link: label(i),
                issuer: cert.issuer().to_string(),
                next: label(i + 1),
            });
        }
        if !parent.is_ca() {
            return Err(ChainError::NotCa { link: label(i + 1) });
        }
        if let (Some(a), Some(k)) = (aki(cert), ski(parent)) {
            if a != k {
                return Err(ChainError::KeyIdentifierMismatch {
                    link: label(i),
                    aki: hex::encode(a),
                    issuer: label(i + 1),
                    ski: hex::encode(k),
                });
            }
        }
        cert.verify_signature(Some(parent.public_key()))
            .map_err(|source| ChainError::Signature {
                link: label(i),
                issuer: label(i + 1),
                source,
            })?;
    }
    let last = certs.len() - 1;
    let root = &certs[last];
    if root.issuer().as_raw() != root.subject().as_raw() || root.verify_signature(None).is_err() {
        return Err(ChainError::NotSelfSigned {
            link: label(last),
            issuer: root.issuer().to_string(),
        });
    }
    if !root.is_ca() {
        return Err(ChainError::NotCa { link: label(last) });
    }
    Ok(())
}

/// "certificate N" of a chain, with what it is.
fn position(i: usize) -> String {
    match i {
        0 => "certificate 1 (the imported --cert)".to_string(),
        n => format!("certificate {} (--chain certificate {n})", n + 1),
    }
}

fn write_chain(path: &Path, chain: &[Vec<u8>]) -> Result<(), DataDirError> {
    let pem = armor::certificates_to_pem(chain).concat();
    write_public(path, pem.as_bytes())
}

/// The CA's key and certificate chain as loaded from the data directory.
pub struct CaMaterial {
    /// The CA's signing key.
    pub signer: Arc<dyn Signer>,
    /// The random generator of the key's provider: serials, identifiers and codes.
    pub random: Arc<dyn SecureRandom>,
    /// The CA certificate then its issuers up to the root, DER.
    pub chain: Vec<Vec<u8>>,
}

/// Loads the CA key, through its key provider (software keys: a 0600 PKCS#8 file), and the
/// chain named by the configuration.
pub fn load_ca(dir: &Path, config: &Config) -> Result<CaMaterial, DataDirError> {
    let provider = SoftwareKeys::new();
    let signer = open_ca_key(dir, config)?;
    let chain = load_ca_certificates(dir, config)?;
    Ok(CaMaterial {
        signer,
        random: provider.secure_random(),
        chain,
    })
}

/// Loads the CA certificate and its issuers (no key): what verifying needs.
pub fn load_ca_certificates(dir: &Path, config: &Config) -> Result<Vec<Vec<u8>>, DataDirError> {
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    let text = fs::read_to_string(&chain_path).map_err(|source| DataDirError::ReadChain {
        path: chain_path.clone(),
        source,
    })?;
    let chain =
        armor::parse_certificates(&text).map_err(|source| DataDirError::CertificateFile {
            path: chain_path.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(DataDirError::NoCertificate { path: chain_path });
    }
    Ok(chain)
}

/// On a store with no tokens yet, creates one token per role and writes them, mode 0600, to
/// `bootstrap-tokens.json`; returns its path when it did.
pub fn bootstrap_tokens(dir: &Path, store: &dyn Storage) -> Result<Option<PathBuf>, DataDirError> {
    if store.has_tokens()? {
        return Ok(None);
    }
    let path = dir.join(BOOTSTRAP_TOKENS);
    let mut tokens = serde_json::Map::new();
    // Not ca-admin: only `ca-server token create` grants it.
    for role in Role::ALL.into_iter().filter(|r| r.granted_online()) {
        let token = create_token(store, role, &format!("bootstrap-{}", role.name()), ACTOR)?;
        tokens.insert(role.name().into(), token.into());
    }
    let text = serde_json::to_string_pretty(&tokens).map_err(DataDirError::EncodeTokens)?;
    let _ = fs::remove_file(&path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| durable::sync_parent(&path))
        .map_err(|source| DataDirError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(Some(path))
}

/// The running core: engine (with CA and store), CRL publisher, and the CA key.
pub struct Core {
    /// The issuance engine.
    pub engine: Arc<Engine>,
    /// The CRL publisher (no CRL is built yet).
    pub crl: Arc<CrlPublisher>,
    /// The CA's signing key.
    pub signer: Arc<dyn Signer>,
}

/// The CA core of the data directory `dir` with no server running (`crl generate`, `crl
/// floor`, `restore`): its configuration, CA key and store, with the status URLs the
/// configuration gives ([`Config::offline_status_urls`]).
pub fn start_offline_core(dir: &Path) -> Result<Core, DataDirError> {
    let config = prepare(dir)?;
    let material = load_ca(dir, &config)?;
    let store = open_store(dir, &config)?;
    let urls = config.offline_status_urls()?;
    start_core(dir, &config, material, store, &urls)
}

/// Builds the CA (checking that key and certificate belong together), starts the engine and
/// prepares the CRL publisher.
pub fn start_core(
    dir: &Path,
    config: &Config,
    material: CaMaterial,
    store: Arc<dyn Storage>,
    urls: &Urls,
) -> Result<Core, DataDirError> {
    for (name, profile) in &config.profiles {
        ca_core::conformance::check_urls(profile, name, urls).map_err(DataDirError::ProfileUrls)?;
        if let Some(ca_cert) = material.chain.first() {
            ca_core::conformance::check_issuer(profile, name, ca_cert)
                .map_err(DataDirError::ProfileIssuer)?;
        }
    }
    // Every signature of the CA key goes through the metered signer: certificates, CRLs,
    // OCSP answers, checkpoints, the server's TLS certificate.
    let metered = Arc::new(MeteredSigner::new(material.signer)?);
    let signer: Arc<dyn Signer> = metered.clone();
    let ca = CertificateAuthority::new(signer.clone(), material.chain, &config.profiles, urls)
        .map_err(|source| DataDirError::KeyCertificateMismatch {
            key: ca_key_location(dir, config),
            chain: Config::resolve(dir, &config.ca.chain_file),
            source: Box::new(source),
        })?
        .with_random(material.random);
    let ca_der = ca.certificate().to_vec();
    let engine = Arc::new(Engine::start(Arc::new(ca), store, &config.engine)?);
    engine
        .metrics()
        .registry()
        .register(metered.collector())
        .map_err(|e| CaError::Storage(format!("registering the signer's metrics: {e}")))?;
    let crl_url = config
        .crl
        .issuing_distribution_point
        .then(|| urls.crl.first().cloned())
        .flatten();
    let builder = CrlBuilder::new(signer.clone(), &ca_der, crl_url)?
        .with_degraded(engine.metrics().degraded_entries());
    let crl = Arc::new(CrlPublisher::new(
        builder,
        engine.clone(),
        config.crl.clone(),
    ));
    engine.observe_status(Arc::downgrade(&crl) as Weak<dyn StatusObserver>);
    Ok(Core {
        engine,
        crl,
        signer,
    })
}

/// Name of the TLS server key file written by `tls-cert` (mode 0600).
pub const TLS_KEY_FILE: &str = "tls-key.pem";
/// Name of the TLS server certificate chain written by `tls-cert`.
pub const TLS_CERT_FILE: &str = "tls.pem";

/// `ca-server tls-cert`: issues the server's own TLS certificate from the CA (the internal
/// profile [`SERVER_TLS_PROFILE`], an ECDSA P-256 key in `tls-key.pem`, mode 0600; the
/// certificate and the CA chain in `tls.pem`), records it in the store and the audit log like
/// every certificate the CA key signs (requester `(ca)`), and points `[tls]` of the
/// configuration at the two files. Relying parties fetch CRLs, OCSP answers and the CA
/// certificate over plain HTTP (RFC 5280 section 8), so a configuration without a plain
/// listener for them gets `[public] listen`: the API's address, the next port (see
/// [`default_public_listen`]). `names`: DNS names (the first is the CN) and IP addresses.
pub fn issue_tls_certificate(dir: &Path, names: &[San]) -> Result<TlsIssued, DataDirError> {
    let mut config = prepare(dir)?;
    let (key_path, cert_path) = (dir.join(TLS_KEY_FILE), dir.join(TLS_CERT_FILE));
    if key_path.exists() || cert_path.exists() {
        return Err(DataDirError::TlsFilesExist {
            key: key_path,
            cert: cert_path,
        });
    }
    let public = match config.public.listen {
        Some(_) => None,
        None => {
            let listen = default_public_listen(config.listen);
            config.public.listen = Some(listen);
            Some(listen)
        }
    };
    let pkcs8 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256)?;
    let key = SoftwareKey::from_pkcs8(&pkcs8)?;
    let material = load_ca(dir, &config)?;
    let store = open_store(dir, &config)?;
    let urls = config
        .status_urls(config.listen, true, config.public.listen)?
        .urls;
    let core = start_core(dir, &config, material, store, &urls)?;
    let ca_der = core.engine.ca().certificate().to_vec();
    let now = OffsetDateTime::now_utc();
    let der = server_tls::issue_server_certificate(
        core.signer.clone(),
        &ca_der,
        key.spki_der(),
        names,
        &urls,
        new_serial()?,
        now,
    )
    .map_err(DataDirError::IssueTlsCertificate)?;
    core.engine
        .record_signed_certificate(&der, SERVER_TLS_PROFILE)
        .map_err(DataDirError::RecordTlsCertificate)?;
    keys::write_key_file(&key_path, &pkcs8)?;
    let mut chain = vec![der];
    chain.extend_from_slice(core.engine.ca().chain());
    write_chain(&cert_path, &chain)?;
    config.tls.cert_file = TLS_CERT_FILE.into();
    config.tls.key_file = TLS_KEY_FILE.into();
    write_public(&dir.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
    Ok(TlsIssued {
        chain: cert_path,
        public,
    })
}

/// What [`issue_tls_certificate`] wrote.
#[derive(Debug)]
pub struct TlsIssued {
    /// The certificate chain file.
    pub chain: PathBuf,
    /// The `[public] listen` address it configured, when none was.
    pub public: Option<SocketAddr>,
}

/// The plain-HTTP status listener's address for an API on `api`: the same address, the next
/// port (the API's own when it is 0, the highest).
pub fn default_public_listen(api: SocketAddr) -> SocketAddr {
    let port = match api.port() {
        0 => 0,
        p => p.checked_add(1).unwrap_or(p - 1),
    };
    SocketAddr::new(api.ip(), port)
}

/// Opens the store named by the configuration; refuses one whose audit log does not end
/// where the store recorded its head.
pub fn open_store(dir: &Path, config: &Config) -> Result<Arc<dyn Storage>, DataDirError> {
    match config.store.backend {
        StoreBackend::Rocksdb => {
            let store = Store::open(&Config::resolve(dir, &config.ca.db_dir))?;
            store.checked_audit_head()?;
            store.set_min_free_bytes(config.store.min_free_bytes);
            Ok(Arc::new(store))
        }
        StoreBackend::Postgres => {
            let store = PgStore::open(&pg_config(dir, config)?)?;
            store.checked_audit_head()?;
            Ok(Arc::new(store))
        }
    }
}

/// How to reach the PostgreSQL store: `[store] url`, the password from `[store]
/// password_file` (mode 0600) or else libpq's password file, the pool size, and the CA
/// certificates of `[store] ca_file` (TLS).
pub fn pg_config(dir: &Path, config: &Config) -> Result<PgConfig, DataDirError> {
    let url = config
        .store
        .url
        .clone()
        .ok_or_else(|| CaError::Storage("[store] backend = \"postgres\" needs a url".into()))?;
    let password = match &config.store.password_file {
        Some(file) => {
            let path = Config::resolve(dir, file);
            let bytes = keys::read_secret_file(&path)?;
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                CaError::Storage(format!("the password file {} is not UTF-8", path.display()))
            })?;
            Some(zeroize::Zeroizing::new(
                text.trim_end_matches(['\n', '\r']).to_string(),
            ))
        }
        None => PgConfig::passfile_password(&url)?,
    };
    let tls_roots_pem = match &config.store.ca_file {
        Some(file) => {
            let path = Config::resolve(dir, file);
            Some(fs::read(&path).map_err(|source| DataDirError::Read { path, source })?)
        }
        None => None,
    };
    Ok(PgConfig {
        url,
        password,
        pool_size: config.store.pool_size,
        tls_roots_pem,
    })
}

/// A delegated OCSP responder (RFC 6960 section 4.2.2.2): its key and its certificate.
#[derive(Clone)]
pub struct OcspDelegate {
    /// The responder's signing key.
    pub signer: Arc<dyn Signer>,
    /// Its certificate, issued by the CA, DER.
    pub cert_der: Vec<u8>,
    /// The serial of the responder certificate this one replaced, whose key is to be retired
    /// ([`ResponderKeys::retire`]) once nothing signs with it.
    pub replaced: Option<Serial>,
}

/// Where the configuration keeps the delegated OCSP responder's key (`[ocsp] responder_key`).
pub fn responder_keys(dir: &Path, config: &Config) -> Result<ResponderKeys, DataDirError> {
    let in_token = config.ca.pkcs11.as_ref();
    match (
        config.ocsp.responder_key_store(in_token.is_some()),
        in_token,
    ) {
        (ResponderKeyStore::Token, Some(settings)) => {
            Ok(ResponderKeys::in_token(pkcs11_config(dir, settings)?))
        }
        _ => Ok(ResponderKeys::in_file(&dir.join(OCSP_KEY_FILE))),
    }
}

/// Issues and renews the delegated OCSP responder (RFC 6960 section 4.2.2.2): where its
/// certificate (`ocsp.pem` in the data directory) and its key ([`ResponderKeys`]) live, the CA
/// that certifies it, and the engine that records it like every certificate the CA key signs.
pub struct ResponderIssuer {
    /// The data directory.
    pub dir: PathBuf,
    /// Where the responder's keys live.
    pub keys: ResponderKeys,
    /// Validity of a new responder certificate, in days.
    pub validity_days: u32,
    /// The CA key.
    pub ca_signer: Arc<dyn Signer>,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    /// The engine that records the responder certificates.
    pub engine: Arc<Engine>,
}

impl ResponderIssuer {
    /// The delegated OCSP responder of `ocsp.pem` and its key, or a new one: a new ECDSA
    /// P-256 key and a certificate for it, valid `validity_days`, issued by the CA. A new one
    /// is issued when the certificate or its key is missing or unusable, when the certificate
    /// is not the CA's OCSP signing certificate for that key, or when it is not valid yet or
    /// less than a third of its validity remains at `now`.
    ///
    /// The responder's certificate is recorded through the engine (profile
    /// `ocsp-responder`, requester `(ca)`, audited) before it is used or written; one kept
    /// from a build that did not record it is recorded now. A new key is removed again
    /// ([`ResponderKeys::discard`]) when its certificate cannot be issued or recorded.
    ///
    /// `current` is the responder in use, if any: while `ocsp.pem` still holds its
    /// certificate, its key is taken as it is instead of being opened again (a token key
    /// would take another pool of sessions at each check).
    pub fn delegate(
        &self,
        current: Option<&OcspDelegate>,
        now: OffsetDateTime,
    ) -> Result<OcspDelegate, DataDirError> {
        let ResponderIssuer {
            dir,
            keys,
            validity_days,
            ca_signer,
            ca_der,
            engine,
        } = self;
        let validity_days = *validity_days;
        let cert_path = dir.join(OCSP_CERT_FILE);
        let record = |der: &[u8]| {
            engine
                .record_signed_certificate(der, RESPONDER_PROFILE)
                .map_err(DataDirError::RecordResponder)
        };
        let mut replaced = None;
        match load_ocsp_delegate(keys, current, &cert_path, ca_der) {
            Ok((delegate, validity, _)) if !validity.renewal_due(now) => {
                record(&delegate.cert_der)?;
                return Ok(delegate);
            }
            Ok((_, validity, serial)) => {
                replaced = Some(serial);
                tracing::info!(
                    not_before = %validity.not_before,
                    not_after = %validity.not_after,
                    "the delegated OCSP responder is due for renewal"
                )
            }
            Err(_) if !cert_path.exists() => tracing::info!("no delegated OCSP responder yet"),
            Err(e) => tracing::warn!(
                reason = %crate::cli::error_chain(&e),
                "the delegated OCSP responder is not usable"
            ),
        }
        let serial = new_serial()?;
        let key = keys.create(serial)?;
        let issued = issue_responder_certificate(
            ca_signer.clone(),
            ca_der,
            key.signer.as_ref(),
            validity_days,
            serial,
            now,
        )
        .map_err(DataDirError::IssueResponder)
        .and_then(|der| record(&der).map(|_| der));
        let cert_der = match issued {
            Ok(der) => der,
            Err(e) => {
                keys.discard(key);
                return Err(e);
            }
        };
        // Key first: a crash between the two leaves a certificate that does not match the key
        // (or names a key not in the token), which the next start replaces.
        keys.keep(&key)?;
        write_public(
            &cert_path,
            armor::to_pem("CERTIFICATE", &cert_der).as_bytes(),
        )?;
        tracing::info!(
            serial = %serial,
            path = %cert_path.display(),
            key = %keys.location(serial),
            validity_days,
            "issued a new delegated OCSP responder key and certificate"
        );
        Ok(OcspDelegate {
            signer: key.signer,
            cert_der,
            replaced,
        })
    }

    /// Removes the key of the replaced responder certificate with `serial`
    /// ([`ResponderKeys::retire`]); a failure is logged and the key left for the operator.
    pub fn retire(&self, serial: Serial) {
        if let Err(e) = self.keys.retire(serial) {
            tracing::warn!(
                error = %crate::cli::error_chain(&e),
                key = %self.keys.location(serial),
                "removing the replaced OCSP responder key failed"
            );
        }
    }
}

/// The responder of `cert_path` with its key (`current`'s when it is that responder, else
/// from `keys`), its validity and its serial.
fn load_ocsp_delegate(
    keys: &ResponderKeys,
    current: Option<&OcspDelegate>,
    cert_path: &Path,
    ca_der: &[u8],
) -> Result<(OcspDelegate, ResponderValidity, Serial), DataDirError> {
    let path = || cert_path.to_path_buf();
    let text = fs::read_to_string(cert_path).map_err(|source| DataDirError::Read {
        path: path(),
        source,
    })?;
    let certs =
        armor::parse_certificates(&text).map_err(|source| DataDirError::CertificateFile {
            path: path(),
            source,
        })?;
    let cert_der = match certs.as_slice() {
        [one] => one.clone(),
        _ => return Err(DataDirError::ResponderCertificateCount { path: path() }),
    };
    let refused = |why: &str| DataDirError::ResponderCertificate {
        path: path(),
        source: CaError::ca_material(why.to_owned()),
    };
    let serial = x509_parser::parse_x509_certificate(&cert_der)
        .ok()
        .and_then(|(_, cert)| Serial::from_bytes(cert.raw_serial()))
        .ok_or_else(|| refused("has no serial number this CA gives"))?;
    let key = match current {
        Some(current) if current.cert_der == cert_der => current.signer.clone(),
        _ => keys.load(serial)?,
    };
    let validity =
        check_responder_certificate(ca_der, key.as_ref(), &cert_der).map_err(|source| {
            DataDirError::ResponderCertificate {
                path: path(),
                source,
            }
        })?;
    let delegate = OcspDelegate {
        signer: key,
        cert_der,
        replaced: None,
    };
    Ok((delegate, validity, serial))
}
