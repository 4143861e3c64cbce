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

use ca_core::audit::{AuditAction, AuditEvent};
use ca_core::authority::{create_intermediate_csr, create_root, CertificateAuthority, Urls};
use ca_core::crl::{CrlBuilder, CrlPublisher};
use ca_core::csr::San;
use ca_core::engine::{Engine, StatusObserver};
use ca_core::ocsp::{
    check_responder_certificate, issue_responder_certificate, ResponderValidity, RESPONDER_PROFILE,
};
use ca_core::server_tls::{self, SERVER_TLS_PROFILE};
use ca_core::store::Store;
use ca_core::{armor, name, Serial};
use keys::{KeyAlgorithm, Signer, SoftwareKey};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::auth::{create_token, Role};
use crate::config::{Config, CONFIG_FILE};
use crate::durable;

/// The subject of the development CA created on first start.
pub const DEV_CA_SUBJECT: &str = "CN=ca-core Development Root CA,O=ca-core development";
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
pub fn prepare(dir: &Path) -> Result<Config, String> {
    if dir.exists() {
        check_dir_permissions(dir)?;
    } else {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.exists() {
        let text = Config::default().to_toml()?;
        durable::write(&config_path, text.as_bytes(), durable::PUBLIC)
            .map_err(|e| format!("writing {}: {e}", config_path.display()))?;
        tracing::info!(path = %config_path.display(), "wrote the default configuration");
    }
    Config::load(&config_path)
}

/// Refuses a data directory that someone other than this process's user could change: it
/// must be a directory owned by the effective user, and neither group- nor world-writable
/// (whoever can write to it can replace the configuration, the CA certificate or the store).
pub fn check_dir_permissions(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "refusing the data directory {}: it belongs to uid {}, not to this process's user \
             (uid {me}); chown it to the user that runs ca-server",
            dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "refusing the data directory {}: its mode {mode:04o} lets others write to it; \
             run `chmod 700 {}`",
            dir.display(),
            dir.display()
        ));
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
pub fn record_configuration(dir: &Path, store: &Store) -> Result<(), String> {
    let path = dir.join(CONFIG_FILE);
    let text = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let event = AuditEvent::new(
        OffsetDateTime::now_utc().unix_timestamp(),
        ACTOR,
        AuditAction::ConfigurationLoaded,
        path.display().to_string(),
    )
    .with("sha256", hex::encode(Sha256::digest(&text)))
    .with("version", env!("CARGO_PKG_VERSION"));
    store
        .record_event(event)
        .map(drop)
        .map_err(|e| e.to_string())
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
pub fn init(dir: &Path, req: &InitRequest<'_>) -> Result<Initialized, String> {
    if req.intermediate && !req.tls_names.is_empty() {
        return Err(
            "--tls-name needs a root; an intermediate issues its TLS certificate with \
             `tls-cert` after `import`"
                .into(),
        );
    }
    if !(1..=MAX_ROOT_VALIDITY_DAYS).contains(&req.validity_days) {
        return Err(format!(
            "--validity-days {} is out of range: give 1 to {MAX_ROOT_VALIDITY_DAYS} days",
            req.validity_days
        ));
    }
    let attrs = name::parse_rfc4514(req.subject).map_err(|e| format!("--subject: {e}"))?;
    if attrs.is_empty() {
        return Err("the CA subject (--subject) must not be empty".into());
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
        .ok_or_else(|| format!("{} does not name a directory", dir.display()))?
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
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let tmp = parent.join(format!(".{file_name}.init-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
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
) -> Result<Initialized, String> {
    let config_path = dir.join(CONFIG_FILE);
    if existing && config_path.exists() {
        fs::copy(&config_path, tmp.join(CONFIG_FILE))
            .map_err(|e| format!("copying {}: {e}", config_path.display()))?;
    }
    let config = prepare(tmp)?;
    let created = init_ca(
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
            .map_err(|e| format!("reading {}: {e}", tmp.display()))?;
        for entry in &entries {
            let target = dir.join(entry.file_name());
            if entry.file_name() != CONFIG_FILE && fs::symlink_metadata(&target).is_ok() {
                return Err(format!(
                    "{} exists already; move it away and run `init` again",
                    target.display()
                ));
            }
        }
        // The configuration last: until it is in place, `dir` has no CA.
        let mut entries = entries;
        entries.sort_by_key(|e| e.file_name() == CONFIG_FILE);
        for entry in entries {
            let target = dir.join(entry.file_name());
            fs::rename(entry.path(), &target).map_err(|e| {
                format!(
                    "moving {} to {}: {e}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
        fs::remove_dir(tmp).map_err(|e| format!("removing {}: {e}", tmp.display()))?;
        durable::sync_dir(dir).map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    } else {
        durable::rename(tmp, dir)
            .map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), dir.display()))?;
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
fn refuse_existing_ca(dir: &Path, config: &Config) -> Result<(), String> {
    let key_path = Config::resolve(dir, &config.ca.key_file);
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    if key_path.exists() || chain_path.exists() {
        return Err(format!(
            "a CA exists already in {} ({} / {}); refusing to replace it",
            dir.display(),
            key_path.display(),
            chain_path.display()
        ));
    }
    Ok(())
}

/// Creates a CA key and either a self-signed root certificate or an intermediate's CSR.
pub fn init_ca(
    dir: &Path,
    config: &Config,
    key_type: KeyAlgorithm,
    subject: &str,
    validity_days: u32,
    intermediate: bool,
) -> Result<Created, String> {
    refuse_existing_ca(dir, config)?;
    let key_path = Config::resolve(dir, &config.ca.key_file);
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    let attrs = name::parse_rfc4514(subject).map_err(|e| e.to_string())?;
    if attrs.is_empty() {
        return Err("the CA subject must not be empty".into());
    }
    let der = keys::generate_pkcs8(key_type).map_err(|e| e.to_string())?;
    keys::write_key_file(&key_path, &der).map_err(|e| e.to_string())?;
    let signer: Arc<dyn Signer> =
        Arc::new(SoftwareKey::from_pkcs8(&der).map_err(|e| e.to_string())?);
    if intermediate {
        let csr = create_intermediate_csr(signer, &attrs).map_err(|e| e.to_string())?;
        let path = dir.join(CA_CSR_FILE);
        durable::write(
            &path,
            armor::to_pem("CERTIFICATE REQUEST", &csr).as_bytes(),
            durable::PUBLIC,
        )
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
        return Ok(Created::IntermediateCsr(path));
    }
    let serial = new_serial()?;
    let cert = create_root(signer, &attrs, validity_days, serial).map_err(|e| e.to_string())?;
    write_chain(&chain_path, &[cert])?;
    Ok(Created::Root(chain_path))
}

/// A fresh serial for a certificate the data directory issues itself (root, OCSP responder).
fn new_serial() -> Result<Serial, String> {
    Serial::random(&ring::rand::SystemRandom::new())
        .map_err(|_| "the system random generator failed".to_string())
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
) -> Result<PathBuf, String> {
    let key_path = Config::resolve(dir, &config.ca.key_file);
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    if chain_path.exists() && !force {
        return Err(format!(
            "a CA chain is installed already at {}; to replace it with this certificate and \
             chain, run `ca-server import --force --cert ... --chain ...`",
            chain_path.display()
        ));
    }
    let key = keys::load_key_file(&key_path).map_err(|e| e.to_string())?;
    let mut chain = armor::parse_certificates(cert_pem)?;
    if chain.len() != 1 {
        return Err("the certificate file (--cert) must hold exactly one certificate".into());
    }
    let parents = armor::parse_certificates(chain_pem)?;
    if parents.is_empty() {
        return Err(
            "the chain file (--chain) holds no certificate; give the parent CA's certificate \
             and its issuers up to the root"
                .into(),
        );
    }
    chain.extend(parents);
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| format!("the certificate (--cert) does not parse: {e}"))?;
    if cert.tbs_certificate.subject_pki.raw != key.spki_der() {
        return Err(format!(
            "the certificate's public key does not match the CA key at {}",
            key_path.display()
        ));
    }
    if !cert.is_ca() {
        return Err("the certificate is not a CA certificate (basicConstraints cA)".into());
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
pub fn verify_chain(chain: &[Vec<u8>], now: OffsetDateTime) -> Result<(), String> {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::{ASN1Time, X509Certificate};
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, c)| c)
                .map_err(|e| format!("{} does not parse: {e}", position(i)))
        })
        .collect::<Result<Vec<X509Certificate<'_>>, String>>()?;
    let at = ASN1Time::from_timestamp(now.unix_timestamp())
        .map_err(|e| format!("the current time: {e}"))?;
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
            return Err(format!(
                "{} is not valid now (valid from {} to {})",
                label(i),
                cert.validity().not_before,
                cert.validity().not_after
            ));
        }
        let Some(parent) = certs.get(i + 1) else {
            continue;
        };
        if cert.issuer().as_raw() != parent.subject().as_raw() {
            return Err(format!(
                "{} was issued by {}, but the next certificate of the chain is {}: the chain \
                 (--chain) is not the one of the CA that signed it",
                label(i),
                cert.issuer(),
                label(i + 1)
            ));
        }
        if !parent.is_ca() {
            return Err(format!(
                "{} is not a CA certificate (basicConstraints cA)",
                label(i + 1)
            ));
        }
        if let (Some(a), Some(k)) = (aki(cert), ski(parent)) {
            if a != k {
                return Err(format!(
                    "the authority key identifier of {} ({}) differs from the subject key \
                     identifier of {} ({}): the chain (--chain) is not the one of the CA that \
                     signed it",
                    label(i),
                    hex::encode(a),
                    label(i + 1),
                    hex::encode(k)
                ));
            }
        }
        cert.verify_signature(Some(parent.public_key()))
            .map_err(|e| {
                format!(
                    "the signature of {} does not verify with the key of {} ({e}): the chain \
                     (--chain) is not the one of the CA that signed it",
                    label(i),
                    label(i + 1)
                )
            })?;
    }
    let last = certs.len() - 1;
    let root = &certs[last];
    if root.issuer().as_raw() != root.subject().as_raw() || root.verify_signature(None).is_err() {
        return Err(format!(
            "{} is not a self-signed root (issued by {}); end --chain with the root CA's \
             certificate",
            label(last),
            root.issuer()
        ));
    }
    if !root.is_ca() {
        return Err(format!(
            "{} is not a CA certificate (basicConstraints cA)",
            label(last)
        ));
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

fn write_chain(path: &Path, chain: &[Vec<u8>]) -> Result<(), String> {
    let pem = armor::certificates_to_pem(chain).concat();
    durable::write(path, pem.as_bytes(), durable::PUBLIC)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The CA's key and certificate chain as loaded from the data directory.
pub struct CaMaterial {
    /// The CA's signing key.
    pub signer: Arc<dyn Signer>,
    /// The CA certificate then its issuers up to the root, DER.
    pub chain: Vec<Vec<u8>>,
}

/// Loads the CA key and chain named by the configuration.
pub fn load_ca(dir: &Path, config: &Config) -> Result<CaMaterial, String> {
    let key_path = Config::resolve(dir, &config.ca.key_file);
    let key = keys::load_key_file(&key_path).map_err(|e| e.to_string())?;
    let chain = load_ca_certificates(dir, config)?;
    Ok(CaMaterial {
        signer: Arc::new(key),
        chain,
    })
}

/// Loads the CA certificate and its issuers (no key): what verifying needs.
pub fn load_ca_certificates(dir: &Path, config: &Config) -> Result<Vec<Vec<u8>>, String> {
    let chain_path = Config::resolve(dir, &config.ca.chain_file);
    let text = fs::read_to_string(&chain_path)
        .map_err(|e| format!("reading the CA chain {}: {e}", chain_path.display()))?;
    let chain = armor::parse_certificates(&text)?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", chain_path.display()));
    }
    Ok(chain)
}

/// On a store with no tokens yet, creates one token per role and writes them, mode 0600, to
/// `bootstrap-tokens.json`; returns its path when it did.
pub fn bootstrap_tokens(dir: &Path, store: &Store) -> Result<Option<PathBuf>, String> {
    if store.has_tokens().map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let path = dir.join(BOOTSTRAP_TOKENS);
    let mut tokens = serde_json::Map::new();
    for role in Role::ALL {
        let token = create_token(store, role, &format!("bootstrap-{}", role.name()), ACTOR)
            .map_err(|e| e.to_string())?;
        tokens.insert(role.name().into(), token.into());
    }
    let text = serde_json::to_string_pretty(&tokens).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(&path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| durable::sync_parent(&path))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
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

/// Builds the CA (checking that key and certificate belong together), starts the engine and
/// prepares the CRL publisher.
pub fn start_core(
    dir: &Path,
    config: &Config,
    material: CaMaterial,
    store: Store,
    urls: &Urls,
) -> Result<Core, String> {
    let signer = material.signer.clone();
    let ca = CertificateAuthority::new(material.signer, material.chain, &config.profiles, urls)
        .map_err(|e| {
            format!(
                "{e}; the CA key ({}) and certificate ({}) must belong together: restore the \
                 matching pair from your backup (never serve with another key)",
                Config::resolve(dir, &config.ca.key_file).display(),
                Config::resolve(dir, &config.ca.chain_file).display()
            )
        })?;
    let ca_der = ca.certificate().to_vec();
    let engine =
        Arc::new(Engine::start(Arc::new(ca), store, &config.engine).map_err(|e| e.to_string())?);
    let crl_url = config
        .crl
        .issuing_distribution_point
        .then(|| urls.crl.first().cloned())
        .flatten();
    let builder = CrlBuilder::new(signer.clone(), &ca_der, crl_url)
        .map_err(|e| e.to_string())?
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
pub fn issue_tls_certificate(dir: &Path, names: &[San]) -> Result<TlsIssued, String> {
    let mut config = prepare(dir)?;
    let (key_path, cert_path) = (dir.join(TLS_KEY_FILE), dir.join(TLS_CERT_FILE));
    if key_path.exists() || cert_path.exists() {
        return Err(format!(
            "{} or {} exists; move them away to issue a new TLS certificate",
            key_path.display(),
            cert_path.display()
        ));
    }
    let public = match config.public.listen {
        Some(_) => None,
        None => {
            let listen = default_public_listen(config.listen);
            config.public.listen = Some(listen);
            Some(listen)
        }
    };
    let pkcs8 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).map_err(|e| e.to_string())?;
    let key = SoftwareKey::from_pkcs8(&pkcs8).map_err(|e| e.to_string())?;
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
    .map_err(|e| format!("issuing the server's TLS certificate: {e}"))?;
    core.engine
        .record_signed_certificate(&der, SERVER_TLS_PROFILE)
        .map_err(|e| format!("recording the server's TLS certificate: {e}"))?;
    keys::write_key_file(&key_path, &pkcs8).map_err(|e| e.to_string())?;
    let mut chain = vec![der];
    chain.extend_from_slice(core.engine.ca().chain());
    write_chain(&cert_path, &chain)?;
    config.tls.cert_file = TLS_CERT_FILE.into();
    config.tls.key_file = TLS_KEY_FILE.into();
    let config_path = dir.join(CONFIG_FILE);
    durable::write(&config_path, config.to_toml()?.as_bytes(), durable::PUBLIC)
        .map_err(|e| format!("writing {}: {e}", config_path.display()))?;
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

/// Opens the store named by the configuration.
pub fn open_store(dir: &Path, config: &Config) -> Result<Store, String> {
    let store = Store::open(&Config::resolve(dir, &config.ca.db_dir)).map_err(|e| e.to_string())?;
    // A store whose audit log does not end where the store says is not written to.
    store.checked_audit_head().map_err(|e| e.to_string())?;
    Ok(store)
}

/// A delegated OCSP responder (RFC 6960 section 4.2.2.2): its key and its certificate.
pub struct OcspDelegate {
    /// The responder's signing key.
    pub signer: Arc<dyn Signer>,
    /// Its certificate, issued by the CA, DER.
    pub cert_der: Vec<u8>,
}

/// The delegated OCSP responder of `ocsp-key.pem` and `ocsp.pem` in `dir`, or a new one: a
/// new ECDSA P-256 key and a certificate for it, valid `validity_days`, issued by the CA
/// (`ca_signer`, `ca_der`). A new one is issued when either file is missing or unusable, when
/// the certificate is not the CA's OCSP signing certificate for that key, or when it is not
/// valid yet or less than a third of its validity remains at `now`.
///
/// Like every certificate the CA key signs, the responder's is recorded through `engine`
/// (profile `ocsp-responder`, requester `(ca)`, audited) before it is used or written; one
/// kept from a build that did not record it is recorded now.
pub fn ocsp_delegate(
    dir: &Path,
    validity_days: u32,
    ca_signer: &Arc<dyn Signer>,
    ca_der: &[u8],
    engine: &Engine,
    now: OffsetDateTime,
) -> Result<OcspDelegate, String> {
    let key_path = dir.join(OCSP_KEY_FILE);
    let cert_path = dir.join(OCSP_CERT_FILE);
    let record = |der: &[u8]| {
        engine
            .record_signed_certificate(der, RESPONDER_PROFILE)
            .map_err(|e| format!("recording the OCSP responder certificate: {e}"))
    };
    match load_ocsp_delegate(&key_path, &cert_path, ca_der) {
        Ok((delegate, validity)) if !validity.renewal_due(now) => {
            record(&delegate.cert_der)?;
            return Ok(delegate);
        }
        Ok((_, validity)) => tracing::info!(
            not_before = %validity.not_before,
            not_after = %validity.not_after,
            "the delegated OCSP responder is due for renewal"
        ),
        Err(_) if !key_path.exists() && !cert_path.exists() => {
            tracing::info!("no delegated OCSP responder yet")
        }
        Err(e) => tracing::warn!(reason = %e, "the delegated OCSP responder is not usable"),
    }
    let pkcs8 = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).map_err(|e| e.to_string())?;
    let signer: Arc<dyn Signer> =
        Arc::new(SoftwareKey::from_pkcs8(&pkcs8).map_err(|e| e.to_string())?);
    let serial = new_serial()?;
    let cert_der = issue_responder_certificate(
        ca_signer.clone(),
        ca_der,
        signer.as_ref(),
        validity_days,
        serial,
        now,
    )
    .map_err(|e| format!("issuing the OCSP responder certificate: {e}"))?;
    record(&cert_der)?;
    // Key first: a crash between the two renames leaves a certificate that does not match
    // the key, which the next start replaces.
    let key_tmp = with_suffix(&key_path, ".new");
    let _ = fs::remove_file(&key_tmp);
    keys::write_key_file(&key_tmp, &pkcs8).map_err(|e| e.to_string())?;
    durable::rename(&key_tmp, &key_path).map_err(|e| {
        format!(
            "renaming {} to {}: {e}",
            key_tmp.display(),
            key_path.display()
        )
    })?;
    durable::write(
        &cert_path,
        armor::to_pem("CERTIFICATE", &cert_der).as_bytes(),
        durable::PUBLIC,
    )
    .map_err(|e| format!("writing {}: {e}", cert_path.display()))?;
    tracing::info!(
        serial = %serial,
        path = %cert_path.display(),
        validity_days,
        "issued a new delegated OCSP responder key and certificate"
    );
    Ok(OcspDelegate { signer, cert_der })
}

fn load_ocsp_delegate(
    key_path: &Path,
    cert_path: &Path,
    ca_der: &[u8],
) -> Result<(OcspDelegate, ResponderValidity), String> {
    let key = keys::load_key_file(key_path).map_err(|e| e.to_string())?;
    let text = fs::read_to_string(cert_path)
        .map_err(|e| format!("reading {}: {e}", cert_path.display()))?;
    let cert_der = match armor::parse_certificates(&text)?.as_slice() {
        [one] => one.clone(),
        _ => return Err(format!("{} must hold one certificate", cert_path.display())),
    };
    let validity = check_responder_certificate(ca_der, &key, &cert_der)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let delegate = OcspDelegate {
        signer: Arc::new(key),
        cert_der,
    };
    Ok((delegate, validity))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
