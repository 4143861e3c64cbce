//! The `ca-server` command line.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use ca_core::server_tls::{self, BadServerName};
use ca_core::CaError;
use clap::{Parser, Subcommand};
use keys::KeyAlgorithm;

use crate::api::MAX_TOKEN_LIFETIME_DAYS;
use crate::auth::{create_token_expiring, Role};
use crate::config::StatusUrlError;
use crate::datadir::{self, Created, DataDirError, ROOT_VALIDITY_DAYS};
use crate::offline::{self, ExportFormat, OfflineError, Redaction};
use crate::serve::{serve, ServeError, ServeOptions};

/// The actor the audit log names for changes made from the command line.
const CLI_ACTOR: &str = "command-line";

/// Why a `ca-server` command failed. [`main`] prints it on one line with its sources
/// ([`error_chain`]) and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `serve` could not start or stopped with an error.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The data directory, its configuration, the CA or the store cannot be used.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// `audit verify` or `export` failed.
    #[error(transparent)]
    Offline(#[from] OfflineError),
    /// `backup` or `restore` failed.
    #[error(transparent)]
    Backup(#[from] crate::backup::CliBackupError),
    /// No URLs can be derived for the CRL that `crl generate` builds.
    #[error(transparent)]
    StatusUrls(#[from] StatusUrlError),
    /// The CA core refused or failed: a token, a CRL, the store.
    #[error(transparent)]
    Core(#[from] CaError),
    /// The async runtime of `serve` could not start.
    #[error("starting the runtime")]
    Runtime(#[source] std::io::Error),
    /// A `--tls-name` of `init` is not a name for the server's certificate.
    #[error("--tls-name {0}")]
    TlsName(BadServerName),
    /// A `--name` of `tls-cert` is not a name for the server's certificate.
    #[error("--name {0}")]
    Name(BadServerName),
    /// A file given on the command line could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading failed with.
        source: std::io::Error,
    },
    /// An output file could not be created.
    #[error("creating {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// What creating it failed with.
        source: std::io::Error,
    },
    /// An output file could not be written (durably).
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What writing failed with.
        source: std::io::Error,
    },
    /// `token create --role` names no role.
    #[error("unknown role {role:?}; expected ra, auditor, operator or ca-admin")]
    UnknownRole {
        /// The role as given.
        role: String,
    },
    /// `token create --expires-in-days` is out of range.
    #[error("--expires-in-days must be between 1 and {}", MAX_TOKEN_LIFETIME_DAYS)]
    ExpiresInDays,
    /// The token's name is the name of a `[[tls.clients]]` client certificate.
    #[error(
        "{name:?} is the name of a [[tls.clients]] client certificate; a token may not take it"
    )]
    NameOfClientCertificate {
        /// The name.
        name: String,
    },
    /// The manual page could not be written.
    #[error("writing the manual page")]
    Man(#[source] std::io::Error),
    /// A request to a running server failed.
    #[error(transparent)]
    Client(#[from] crate::api_client::ClientError),
    /// `va` could not start.
    #[error(transparent)]
    Va(#[from] crate::va_agent::AgentError),
}

/// `path` made absolute against the working directory, as the configuration keeps it (the
/// server runs from anywhere).
fn absolute(path: PathBuf) -> Result<PathBuf, CliError> {
    std::path::absolute(&path).map_err(|source| CliError::Read { path, source })
}

/// `error` and its sources (`source()`, `source().source()`, ...) on one line, joined by
/// `": "`, as the command line prints a failure: `reading ca.pem: No such file or directory`.
/// A source whose message the line holds already (an error that writes its source into its
/// own message, as [`keys::KeyError`] does) is not repeated. Trailing line breaks of each
/// message are dropped; line breaks inside one (the TOML parser draws the offending line) are
/// kept.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string().trim_end().to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        let text = text.trim_end();
        if !text.is_empty() && !line.contains(text) {
            line.push_str(": ");
            line.push_str(text);
        }
        source = e.source();
    }
    line
}

/// `ca-server --version`: the version, the commit, the store's schema version
/// ([`ca_core::store::SCHEMA_VERSION`], the newest store layout this build reads and writes),
/// and a digest of the sources it was built from (the end-to-end tests compare it with their
/// own, so that they never run a binary built from other sources), e.g.
/// `0.1.0 (commit 8642ae5, schema 5, sources 3f…)`.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {}, schema {}, sources {})",
        env!("CARGO_PKG_VERSION"),
        env!("CA_BUILD_COMMIT"),
        ca_core::store::SCHEMA_VERSION,
        env!("CA_SOURCE_DIGEST"),
    )
});

/// A high-throughput certificate authority.
#[derive(Debug, Parser)]
#[command(name = "ca-server", version = VERSION.as_str())]
pub struct Cli {
    /// The data directory: configuration, CA key and certificate, store.
    #[arg(long, global = true, default_value = "./ca-data")]
    pub data_dir: PathBuf,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (creates a development CA and bootstrap tokens on first start).
    Serve {
        /// Listen address, overriding the configuration (e.g. 127.0.0.1:0 for any port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Address of the plain-HTTP listener for CRLs, OCSP and the CA certificate,
        /// overriding `[public] listen`.
        #[arg(long)]
        public_listen: Option<std::net::SocketAddr>,
    },
    /// Create a CA: a self-signed root, or with --intermediate a key and a CSR for the
    /// parent CA to sign (then `import` the certificate).
    Init {
        /// Key type: ec-p256, ec-p384, ed25519, rsa-3072, rsa-4096.
        #[arg(long, default_value = "ec-p256")]
        key_type: KeyAlgorithm,
        /// Subject as an RFC 4514 string. Give a countryName (C=): the CA/Browser Forum
        /// requires one in every CA certificate (TLS BR 7.1.2.10.2).
        #[arg(long, default_value = "CN=ca-core Root CA,O=ca-core,C=XX")]
        subject: String,
        /// Validity of a root certificate in days.
        #[arg(long, default_value_t = ROOT_VALIDITY_DAYS)]
        validity_days: u32,
        /// Create an intermediate's key and CSR instead of a self-signed root.
        #[arg(long)]
        intermediate: bool,
        /// With a root: also issue the server's own TLS certificate for these names (DNS
        /// names and IP addresses) and turn TLS on, as `tls-cert` does.
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
        /// Keep the CA key in a PKCS#11 token: the module (shared library) of the HSM. The
        /// key pair is generated inside the token (never extractable), or the one labelled
        /// `--pkcs11-key-label` is used when the token has it; no key file is written.
        #[arg(long, requires = "pkcs11_token")]
        pkcs11_module: Option<PathBuf>,
        /// The token's label.
        #[arg(long, requires = "pkcs11_module")]
        pkcs11_token: Option<String>,
        /// The file holding the token's user PIN (mode 0600); without it the PIN is read
        /// from the environment variable CA_PKCS11_PIN. Never give the PIN itself.
        #[arg(long, requires = "pkcs11_module")]
        pkcs11_pin_file: Option<PathBuf>,
        /// The label of the CA key's objects in the token.
        #[arg(long, default_value = "ca-key", requires = "pkcs11_module")]
        pkcs11_key_label: String,
        /// PKCS#11 sessions: signatures in flight at once.
        #[arg(long, default_value_t = crate::config::DEFAULT_PKCS11_SESSIONS, requires = "pkcs11_module")]
        pkcs11_sessions: usize,
        /// Keep the CA's records in this PostgreSQL database (a libpq URL without a password,
        /// e.g. postgres://ca@db.example/ca) instead of RocksDB in the data directory: creates
        /// the schema, and writes `[store] backend = "postgres"`. Every node of the CA uses the
        /// same database.
        #[arg(long)]
        store_url: Option<String>,
        /// The file holding the database password (mode 0600); without it, libpq's password
        /// file (PGPASSFILE or ~/.pgpass). Never put the password in the URL.
        #[arg(long, requires = "store_url")]
        store_password_file: Option<PathBuf>,
    },
    /// Install an intermediate CA's certificate signed by the parent CA.
    Import {
        /// The signed certificate, PEM.
        #[arg(long)]
        cert: PathBuf,
        /// The parent's chain up to the root, PEM.
        #[arg(long)]
        chain: PathBuf,
        /// Replace a CA chain that is installed already (the certificate must still certify
        /// the CA key).
        #[arg(long)]
        force: bool,
    },
    /// CRLs (with the server stopped).
    Crl {
        /// What to do with CRLs.
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// Manage API tokens (with the server stopped; a running server has `POST /v1/tokens`).
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Issue the server's own TLS certificate from the CA (with the server stopped) and
    /// configure `[tls]` to use it.
    TlsCert {
        /// DNS names (the first is the CN) and IP addresses for the certificate.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
    },
    /// The audit log (works while the server runs).
    Audit {
        /// What to do with the audit log.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Back up the data directory into a new directory: a consistent copy of the store, the
    /// configuration, CA chain and key files, and a manifest (audit head, last CRL number,
    /// certificate count, SHA-256 of each file). Works while the server runs: the command
    /// then asks it (`POST /v1/backup`, with an operator token) and moves the backup it wrote.
    Backup {
        /// The backup directory to create (never overwritten). It holds the CA key file when
        /// the data directory does: keep it as you keep the key.
        #[arg(long)]
        out: PathBuf,
        /// The running server's API URL; default: from the configuration's `listen`.
        #[arg(long)]
        url: Option<String>,
        /// The file holding an operator token, to ask a running server.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// CA certificates (PEM) the server's TLS certificate must chain to; default: the CA
        /// chain of the data directory.
        #[arg(long)]
        cacert: Option<PathBuf>,
    },
    /// Restore a backup into a new data directory (--data-dir, absent or empty): verifies the
    /// manifest first, then raises the CRL numbers to come above every number the CA may have
    /// published since the backup (recorded in the audit log).
    Restore {
        /// The backup directory (from `ca-server backup`).
        #[arg(long)]
        from: PathBuf,
        /// The last CRL number seen published (e.g. `openssl crl -noout -crlnumber` of the
        /// CRL at the distribution point), when above the floor the restore computes.
        #[arg(long)]
        crl_number_floor: Option<u64>,
    },
    /// Write every certificate, in issuance order, for offline audit (works while the server
    /// runs).
    Export {
        /// jsonl (the API's view, one object per line) or csv.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Where to write; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave out identity data (certificate, subject, SANs): each row names its
        /// certificate by `certificate_sha256` instead.
        #[arg(long)]
        redact: bool,
    },
    /// Run a remote validation agent for ACME multi-perspective validation (CA/B Forum BR
    /// 3.2.2.9): serves `POST /va/v1/validate` and `/va/v1/caa` over TLS to a CA presenting a
    /// client certificate from --client-ca (`[acme] remote_vas`). Needs no data directory.
    Va {
        /// Listen address (e.g. 0.0.0.0:8443; 127.0.0.1:0 for any port). Prints `listening on
        /// https://ADDR`.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The agent's TLS certificate chain, PEM (its names are what the CA's URL names).
        #[arg(long)]
        cert: PathBuf,
        /// The agent's PKCS#8 key, PEM, mode 0600.
        #[arg(long)]
        key: PathBuf,
        /// The CA certificates the CA's client certificate must chain to, PEM; a client
        /// without such a certificate fails the TLS handshake.
        #[arg(long)]
        client_ca: PathBuf,
        /// The port http-01 validation connects to.
        #[arg(long, default_value_t = 80)]
        http01_port: u16,
        /// The port tls-alpn-01 validation connects to.
        #[arg(long, default_value_t = 443)]
        tlsalpn01_port: u16,
        /// The DNS resolver (address:port); default: the system's.
        #[arg(long)]
        dns_resolver: Option<std::net::SocketAddr>,
        /// A network validation never connects to (CIDR; repeat it). Without any: loopback,
        /// link-local, unspecified and cloud metadata addresses; `none` denies nothing.
        #[arg(long = "deny-network")]
        deny_networks: Vec<String>,
        /// Time for one validation or CAA check, seconds.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
    },
    /// Revoke every certificate matching a filter through a running server (an operator
    /// token): a dry run counts first, then the action walks in steps with a progress line per
    /// step on standard error; the last answer is printed as JSON (docs/API.md, "Mass
    /// revocation").
    RevokeMatching {
        /// The server's API, http(s)://host:port.
        #[arg(long)]
        url: String,
        /// The file holding an operator token (its first line).
        #[arg(long)]
        token_file: PathBuf,
        /// For an https URL: the CA certificates (PEM) of the server's TLS certificate.
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// SHA-256 of the SubjectPublicKeyInfo of the key, hex.
        #[arg(long)]
        spki_sha256: Option<String>,
        /// The token name the certificates were issued to.
        #[arg(long)]
        requester: Option<String>,
        /// The profile they were issued under.
        #[arg(long)]
        profile: Option<String>,
        /// Issued at or after this RFC 3339 time.
        #[arg(long)]
        issued_after: Option<String>,
        /// Issued before this RFC 3339 time.
        #[arg(long)]
        issued_before: Option<String>,
        /// The RFC 5280 reason name (keyCompromise also blocks each key).
        #[arg(long, required_unless_present = "continuation")]
        reason: Option<String>,
        /// When the keys are known or suspected to have been compromised, RFC 3339.
        #[arg(long)]
        invalidity_date: Option<String>,
        /// Count only: what would be revoked, changing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Resume an action from the continuation a stopped run printed.
        #[arg(long, conflicts_with_all = ["spki_sha256", "requester", "profile", "issued_after", "issued_before", "reason", "invalidity_date", "dry_run"])]
        continuation: Option<String>,
        /// Seconds to wait for one step's answer.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell), e.g.
    /// `ca-server completions bash > /etc/bash_completion.d/ca-server`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `ca-server man | man -l -`.
    Man,
}

/// Audit log subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the log and check its hash chain, its recorded head and its signed checkpoints;
    /// exit 1 naming the first broken entry.
    Verify {
        /// A checkpoint kept outside the CA (the JSON of `GET /v1/audit/checkpoint`), which
        /// the log must still contain.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Stream the log's entries and its newer signed checkpoints as JSON lines (`{"entry":
    /// ...}`, `{"checkpoint": ...}`) for a collector off the host; resumable with the last
    /// entry's sequence number and hash; stops at a log that does not continue the chain.
    Follow {
        /// Start after this entry's sequence number (0: from the first entry).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// The hash of entry `--from` (hex), as the collector holds it.
        #[arg(long)]
        from_hash: Option<String>,
        /// Print what is there and exit instead of following.
        #[arg(long)]
        once: bool,
        /// Milliseconds between looks at the log.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
    },
}

/// CRL subcommands.
#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Build a new complete CRL (a new CRL number) and write it, DER, to a file.
    Generate {
        /// Where to write the CRL.
        #[arg(long, default_value = "crl.der")]
        out: PathBuf,
    },
    /// Make every CRL from now on numbered above N (e.g. after restoring the database from
    /// its own backup: the last number seen published); recorded in the audit log.
    Floor {
        /// The last CRL number that may have been published.
        #[arg(long)]
        above: u64,
    },
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once.
    Create {
        /// ra, auditor, operator or ca-admin (issues from CA profiles; only this command
        /// creates such tokens).
        #[arg(long)]
        role: String,
        /// A name for the token's holder (shown as requester and actor); unique for ever.
        #[arg(long)]
        name: String,
        /// The token expires this many days from now (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token by its name: it no longer authenticates; the name stays taken.
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

/// Parses the command line, runs the command and maps failure to exit code 1, printing the
/// error with its sources ([`error_chain`]).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ca-server: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Tells the operator about the `[public] listen` address `tls-cert` configured, if it did.
fn print_public(public: Option<std::net::SocketAddr>) {
    if let Some(addr) = public {
        println!(
            "CRLs, OCSP and the CA certificate will be served over plain HTTP on {addr} \
             ([public] listen; RFC 5280 section 8), and new certificates name it"
        );
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let dir = cli.data_dir;
    match cli.command {
        Command::Serve {
            listen,
            public_listen,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("ca-http")
                .build()
                .map_err(CliError::Runtime)?;
            runtime.block_on(serve(
                &dir,
                ServeOptions {
                    listen,
                    public_listen,
                },
            ))?;
            Ok(())
        }
        Command::Init {
            key_type,
            subject,
            validity_days,
            intermediate,
            tls_names,
            pkcs11_module,
            pkcs11_token,
            pkcs11_pin_file,
            pkcs11_key_label,
            pkcs11_sessions,
            store_url,
            store_password_file,
        } => {
            let pkcs11 = match (pkcs11_module, pkcs11_token) {
                (Some(module), Some(token_label)) => Some(crate::config::Pkcs11Settings {
                    module: absolute(module)?,
                    token_label,
                    key_label: pkcs11_key_label,
                    pin_file: pkcs11_pin_file.map(absolute).transpose()?,
                    sessions: pkcs11_sessions,
                }),
                _ => None,
            };
            let done = datadir::init(
                &dir,
                &datadir::InitRequest {
                    key_type,
                    subject: &subject,
                    validity_days,
                    intermediate,
                    tls_names: &server_tls::server_names(&tls_names).map_err(CliError::TlsName)?,
                    pkcs11,
                    store: match store_url {
                        Some(url) => Some((url, store_password_file.map(absolute).transpose()?)),
                        None => None,
                    },
                },
            )?;
            match done.created {
                Created::Root(path) => {
                    println!("root CA certificate written to {}", path.display());
                    if let Some(tls) = done.tls {
                        println!(
                            "TLS certificate written to {}; TLS is on",
                            tls.chain.display()
                        );
                        print_public(tls.public);
                    }
                }
                Created::IntermediateCsr(path) => println!(
                    "intermediate CA request written to {}; have the parent CA sign it, then run \
                     `ca-server import --cert SIGNED.pem --chain PARENT-CHAIN.pem`",
                    path.display()
                ),
            }
            Ok(())
        }
        Command::Import { cert, chain, force } => {
            let config = datadir::prepare(&dir)?;
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|source| CliError::Read {
                    path: p.clone(),
                    source,
                })
            };
            let path = datadir::import(&dir, &config, &read(&cert)?, &read(&chain)?, force)?;
            println!("CA chain written to {}", path.display());
            Ok(())
        }
        Command::Crl {
            command: CrlCommand::Generate { out },
        } => {
            let core = datadir::start_offline_core(&dir)?;
            let published = core.crl.generate()?;
            crate::durable::write(&out, &published.full, crate::durable::PUBLIC).map_err(
                |source| CliError::Write {
                    path: out.clone(),
                    source,
                },
            )?;
            println!(
                "CRL number {} with {} entries written to {}",
                published.number,
                published.entries,
                out.display()
            );
            Ok(())
        }
        Command::Crl {
            command: CrlCommand::Floor { above },
        } => {
            let core = datadir::start_offline_core(&dir)?;
            let position =
                core.engine
                    .raise_crl_number_blocking(above, CLI_ACTOR, "ca-server crl floor")?;
            println!(
                "the next CRL is numbered above {} (asked: above {above})",
                position.number
            );
            Ok(())
        }
        Command::Backup {
            out,
            url,
            token_file,
            cacert,
        } => {
            crate::backup::backup_command(
                &dir,
                &out,
                &crate::backup::Remote {
                    url,
                    token_file,
                    cacert,
                },
            )?;
            Ok(())
        }
        Command::Restore {
            from,
            crl_number_floor,
        } => {
            crate::backup::restore_command(&from, &dir, crl_number_floor, CLI_ACTOR)?;
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    role,
                    name,
                    expires_in_days,
                },
        } => {
            let role = Role::parse(&role).ok_or_else(|| CliError::UnknownRole { role })?;
            let expires_at = match expires_in_days {
                Some(days @ 1..=MAX_TOKEN_LIFETIME_DAYS) => Some(
                    time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(days) * 86_400,
                ),
                Some(_) => return Err(CliError::ExpiresInDays),
                None => None,
            };
            let config = datadir::prepare(&dir)?;
            if config.tls.clients.iter().any(|c| c.name == name) {
                return Err(CliError::NameOfClientCertificate { name });
            }
            let store = datadir::open_store(&dir, &config)?;
            let token = create_token_expiring(store.as_ref(), role, &name, CLI_ACTOR, expires_at)?;
            println!("{token}");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Revoke { name },
        } => {
            let config = datadir::prepare(&dir)?;
            let store = datadir::open_store(&dir, &config)?;
            let at = time::OffsetDateTime::now_utc().unix_timestamp();
            let revoked = store.revoke_token(&name, at, CLI_ACTOR)?;
            println!("token {:?} (role {}) revoked", revoked.name, revoked.role);
            Ok(())
        }
        Command::TlsCert { names } => {
            let names = server_tls::server_names(&names).map_err(CliError::Name)?;
            let issued = datadir::issue_tls_certificate(&dir, &names)?;
            println!(
                "TLS certificate written to {}; [tls] in {} now uses it",
                issued.chain.display(),
                dir.join(crate::config::CONFIG_FILE).display()
            );
            print_public(issued.public);
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { checkpoint },
        } => Ok(offline::audit_verify(&dir, checkpoint.as_deref())?),
        Command::Audit {
            command:
                AuditCommand::Follow {
                    from,
                    from_hash,
                    once,
                    poll_ms,
                },
        } => Ok(offline::audit_follow(
            &dir,
            &offline::Follow {
                from,
                from_hash,
                once,
                poll: std::time::Duration::from_millis(poll_ms.max(10)),
            },
        )?),
        Command::Export {
            format,
            out,
            redact,
        } => {
            let redaction = if redact {
                Redaction::IdentityData
            } else {
                Redaction::None
            };
            match out {
                Some(path) => {
                    let file = std::fs::File::create(&path).map_err(|source| CliError::Create {
                        path: path.clone(),
                        source,
                    })?;
                    let mut out = std::io::BufWriter::new(file);
                    offline::export(&dir, format, redaction, &mut out)?;
                    out.into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|file| file.sync_all())
                        .and_then(|()| crate::durable::sync_parent(&path))
                        .map_err(|source| CliError::Write {
                            path: path.clone(),
                            source,
                        })?
                }
                None => {
                    offline::export(
                        &dir,
                        format,
                        redaction,
                        &mut std::io::BufWriter::new(std::io::stdout().lock()),
                    )?;
                }
            }
            Ok(())
        }
        Command::Va {
            listen,
            cert,
            key,
            client_ca,
            http01_port,
            tlsalpn01_port,
            dns_resolver,
            deny_networks,
            timeout_secs,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("ca-va")
                .build()
                .map_err(CliError::Runtime)?;
            runtime.block_on(crate::va_agent::run(crate::va_agent::AgentOptions {
                listen,
                cert,
                key,
                client_ca,
                http01_port,
                tlsalpn01_port,
                dns_resolver,
                deny_networks,
                timeout_secs,
            }))?;
            Ok(())
        }
        Command::RevokeMatching {
            url,
            token_file,
            cacert,
            spki_sha256,
            requester,
            profile,
            issued_after,
            issued_before,
            reason,
            invalidity_date,
            dry_run,
            continuation,
            timeout_secs,
        } => {
            let filter = [
                ("spki_sha256", spki_sha256),
                ("requester", requester),
                ("profile", profile),
                ("issued_after", issued_after),
                ("issued_before", issued_before),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), serde_json::Value::String(v))))
            .collect();
            let options = crate::revoke_matching::RevokeMatching {
                url,
                token_file,
                cacert,
                filter,
                reason: reason.unwrap_or_default(),
                invalidity_date,
                dry_run,
                continuation,
                timeout: std::time::Duration::from_secs(timeout_secs.max(1)),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(CliError::Runtime)?;
            let answer = runtime.block_on(crate::revoke_matching::run(&options))?;
            println!("{answer}");
            Ok(())
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "ca-server", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .map_err(CliError::Man)
        }
    }
}
