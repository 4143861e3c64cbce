//! The PostgreSQL store: ca-core's store seam ([`ca_core::store::Storage`]) on one database
//! that several CA nodes share.
//!
//! What the embedded store's single writer serializes in memory, the database serializes for
//! every node at once:
//!
//! - Each writer group is one transaction that first locks the one row of `ca_head` (the
//!   counters: issuance and change sequences, CRL number, audit head). Groups of all nodes
//!   therefore commit one after another, each seeing everything committed before it: the
//!   audit log stays one chain, the issuance sequence has no gaps, a CRL number never repeats.
//! - Serial uniqueness is the primary key of `certificates.serial`; idempotency keys,
//!   enrollment redemptions and token names are checked under the same lock.
//! - A group commits with `synchronous_commit` on; nothing is answered before its commit.
//!
//! The seam's methods are synchronous (the engine calls them from its threads and the HTTP
//! handlers from the runtime's); this crate runs the asynchronous client on a small runtime of
//! its own and waits for it ([`PgStore::run`]).

mod feed;
mod groups;
mod index;
pub mod passfile;
mod reads;
pub mod schema;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ca_core::error::CaError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

pub use schema::SCHEMA_VERSION;

/// How to reach the database.
#[derive(Clone)]
pub struct PgConfig {
    /// A libpq connection URL or key/value string without a password (several hosts and
    /// `target_session_attrs` are allowed).
    pub url: String,
    /// The password, from a 0600 file or `PGPASSFILE`; never in the URL.
    pub password: Option<Zeroizing<String>>,
    /// Connections in the pool (the writer takes one for itself besides).
    pub pool_size: usize,
    /// The certificates (PEM) that the database server's certificate must chain to. Given,
    /// every connection is TLS (rustls), the server's certificate verified against them and
    /// the URL's host; absent, connections are plain (`sslmode=require` is then refused).
    pub tls_roots_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(redacted)"))
            .field("pool_size", &self.pool_size)
            .field("tls", &self.tls_roots_pem.is_some())
            .finish()
    }
}

impl PgConfig {
    /// The TLS connector: rustls with the roots of `tls_roots_pem`, and the URL's TLS mode
    /// made to match (required with roots, off without).
    fn tls(&self, config: &mut tokio_postgres::Config) -> Result<MakeRustlsConnect, CaError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.tls_roots_pem {
            Some(pem_text) => {
                let blocks = pem::parse_many(pem_text).map_err(|e| {
                    CaError::Storage(format!("the database's CA certificates: {e}"))
                })?;
                for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
                    roots
                        .add(rustls::pki_types::CertificateDer::from(
                            block.contents().to_vec(),
                        ))
                        .map_err(|e| {
                            CaError::Storage(format!("the database's CA certificates: {e}"))
                        })?;
                }
                if roots.is_empty() {
                    return Err(CaError::Storage(
                        "the database's CA certificate file holds no certificate".into(),
                    ));
                }
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
            }
            None if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require => {
                return Err(CaError::Storage(
                    "sslmode=require needs the database's CA certificates ([store] ca_file) to \
                     verify its certificate"
                        .into(),
                ))
            }
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CaError::Storage(format!("TLS to the database: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(tls))
    }

    /// Parses the URL and refuses one that carries a password.
    fn client_config(&self) -> Result<tokio_postgres::Config, CaError> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| CaError::Storage(format!("the database URL is not valid: {e}")))?;
        if config.get_password().is_some() {
            return Err(CaError::Storage(
                "the database URL holds a password: give it in a 0600 password file instead".into(),
            ));
        }
        if let Some(password) = &self.password {
            config.password(password.as_bytes());
        }
        if config.get_application_name().is_none() {
            config.application_name("ca-server");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(config)
    }
}

impl PgConfig {
    /// The password that libpq's password file ([`passfile::default_path`]) gives `url`'s
    /// first host, port, database and user, if the file exists and has a matching line. The
    /// file must not be readable by group or others.
    pub fn passfile_password(url: &str) -> Result<Option<Zeroizing<String>>, CaError> {
        let Some(path) = passfile::default_path().filter(|p| p.exists()) else {
            return Ok(None);
        };
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| CaError::Storage(format!("the database URL is not valid: {e}")))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or_default();
        let database = config.get_dbname().unwrap_or(user);
        let text = keys::read_secret_file(&path)
            .map_err(|e| CaError::Storage(format!("the password file {}: {e}", path.display())))?;
        let text = std::str::from_utf8(&text).map_err(|_| {
            CaError::Storage(format!("the password file {} is not UTF-8", path.display()))
        })?;
        Ok(passfile::lookup(text, &host, port, database, user))
    }
}

/// How long a connection attempt may take before the store reports itself unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The smallest pool: the CRL builder's lock and its reads each need a connection.
const MIN_POOL_SIZE: usize = 2;
/// How long a request waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The PostgreSQL store. Cheap to clone; every clone shares the pool and runtime.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// Other nodes' changes, and the token cache they keep current.
    pub(crate) feed: Arc<feed::Feed>,
    /// Where the store's tasks run.
    handle: tokio::runtime::Handle,
    /// The runtime itself, shut down in the background when the store goes (it may go on a
    /// runtime's thread, where waiting for it is not allowed).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("hosts", &self.inner.config.get_hosts())
            .field("dbname", &self.inner.config.get_dbname())
            .finish()
    }
}

impl PgStore {
    /// Connects and checks that the database holds this build's schema (created by
    /// [`PgStore::create`]); refuses a newer one.
    pub fn open(config: &PgConfig) -> Result<Self, CaError> {
        let store = Self::connect(config)?;
        store.run(|client| async move { schema::check(&**client).await })?;
        Ok(store)
    }

    /// Connects and creates the schema, or brings an older one up to date (`ca-server init
    /// --store-url`); refuses a newer one.
    pub fn create(config: &PgConfig) -> Result<Self, CaError> {
        let store = Self::connect(config)?;
        store.run(|mut client| async move { schema::migrate(&mut client).await })?;
        Ok(store)
    }

    /// Whether the database belongs to a CA already: bound to one ([`PgStore::bind_ca`]) or
    /// holding audit entries.
    pub fn in_use(&self) -> Result<bool, CaError> {
        self.run(|c| async move {
            let row = c
                .query_one(
                    "SELECT ca_sha256 IS NOT NULL OR audit_seq > 0 FROM ca_head",
                    &[],
                )
                .await
                .map_err(db_error)?;
            col(&row, 0)
        })
    }

    /// The audit head recorded in `ca_head`, after checking that the log's last entry is that
    /// head: a database whose log was cut or edited at its end is not written to.
    pub fn checked_audit_head(&self) -> Result<ca_core::audit::AuditHead, CaError> {
        self.run(|c| async move {
            let head = c
                .query_one(
                    &format!("SELECT {} FROM ca_head", groups::HEAD_COLUMNS),
                    &[],
                )
                .await
                .map_err(db_error)?;
            let recorded = groups::counters_of(&head)?.audit;
            let last = c
                .query_opt("SELECT entry FROM audit_log ORDER BY seq DESC LIMIT 1", &[])
                .await
                .map_err(db_error)?
                .map(|r| ca_core::audit::AuditEntry::decode(col(&r, 0)?))
                .transpose()?
                .map_or(ca_core::audit::AuditHead::GENESIS, |e| e.head());
            if last != recorded {
                return Err(CaError::Storage(format!(
                    "the audit log ends at entry {} but the database recorded its head at \
                     entry {}: the database was altered or damaged; run `ca-server audit \
                     verify` and restore it from a backup",
                    last.seq, recorded.seq
                )));
            }
            Ok(recorded)
        })
    }

    fn connect(config: &PgConfig) -> Result<Self, CaError> {
        let mut client_config = config.client_config()?;
        let tls = config.tls(&mut client_config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ca-pg")
            .enable_all()
            .build()
            .map_err(|e| CaError::internal("starting the database runtime", Some(Box::new(e))))?;
        let manager = Manager::from_config(
            client_config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            // The CRL builder holds one connection (its advisory lock) while its reads take
            // another.
            .max_size(config.pool_size.max(MIN_POOL_SIZE))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| CaError::Storage(format!("the database pool: {e}")))?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                config: client_config,
                tls,
                feed: Arc::default(),
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
            }),
        })
    }

    /// Runs `f` with a pooled connection on the store's runtime and waits for its outcome.
    /// Called from a runtime's worker thread, it lets that runtime move its other tasks
    /// elsewhere while it waits.
    pub(crate) fn run<T, F, Fut>(&self, f: F) -> Result<T, CaError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, CaError>> + Send,
    {
        let pool = self.inner.pool.clone();
        self.block_on(async move {
            let client = pool.get().await.map_err(pool_error)?;
            f(client).await
        })
    }

    /// Runs `fut` on the store's runtime and waits for it, from any thread.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, CaError>> + Send + 'static,
    ) -> Result<T, CaError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let wait = || {
            rx.recv()
                .map_err(|_| CaError::internal("a database task ended without answering", None))?
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    /// Tells `changed` of other nodes' revocation changes ([`feed::listen`]).
    pub(crate) fn listen(&self, changed: ca_core::store::ChangeListener) {
        self.inner.feed.add_listener(changed);
        self.ensure_feed();
    }

    /// Starts listening for other nodes' changes, once.
    pub(crate) fn ensure_feed(&self) {
        if self.inner.feed.start_once() {
            let (config, tls) = (self.inner.config.clone(), self.inner.tls.clone());
            let feed = self.inner.feed.clone();
            self.inner.handle.spawn(feed::listen(config, tls, feed));
        }
    }

    /// A connection of its own, outside the pool (the writer's, held across a group).
    pub(crate) fn dedicated(&self) -> Result<tokio_postgres::Client, CaError> {
        let (config, tls) = (self.inner.config.clone(), self.inner.tls.clone());
        let handle = self.inner.handle.clone();
        self.block_on(async move {
            let (client, connection) = config.connect(tls).await.map_err(db_error)?;
            handle.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "the store writer's database connection ended");
                }
            });
            Ok(client)
        })
    }
}

/// Column `i` of `row` as `T`. A column of another type, or a NULL where the schema allows
/// none, means a database this build's schema did not make: a storage error, never a panic.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>, I>(
    row: &'a tokio_postgres::Row,
    i: I,
) -> Result<T, CaError>
where
    I: tokio_postgres::row::RowIndex + std::fmt::Display,
{
    row.try_get(&i)
        .map_err(|e| CaError::Storage(format!("column {i} of a row from the database: {e}")))
}

/// A database error as the seam reports it: a connection that failed or a server that is
/// shutting down or starting is [`CaError::StoreUnavailable`] (503, retry), anything else
/// [`CaError::Database`].
pub(crate) fn db_error(e: tokio_postgres::Error) -> CaError {
    let passing = match e.code() {
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
    };
    if passing {
        // The causes say what failed (a refused connection, a certificate not trusted).
        let mut what = format!("the database: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            what.push_str(&format!(": {c}"));
            cause = c.source();
        }
        CaError::StoreUnavailable(what)
    } else {
        CaError::Database(Box::new(e))
    }
}

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> CaError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => CaError::StoreUnavailable(format!("no database connection: {other}")),
    }
}
