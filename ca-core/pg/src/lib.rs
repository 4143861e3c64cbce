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

mod groups;
mod reads;
pub mod schema;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ca_core::error::CaError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
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
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(redacted)"))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl PgConfig {
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

/// How long a connection attempt may take before the store reports itself unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The PostgreSQL store. Cheap to clone; every clone shares the pool and runtime.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    runtime: tokio::runtime::Runtime,
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

    fn connect(config: &PgConfig) -> Result<Self, CaError> {
        let client_config = config.client_config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ca-pg")
            .enable_all()
            .build()
            .map_err(|e| CaError::internal("starting the database runtime", Some(Box::new(e))))?;
        let manager = Manager::from_config(
            client_config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| CaError::Storage(format!("the database pool: {e}")))?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                config: client_config,
                runtime,
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
        self.inner.runtime.spawn(async move {
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

    /// A connection of its own, outside the pool (the writer's, held across a group).
    pub(crate) fn dedicated(&self) -> Result<tokio_postgres::Client, CaError> {
        let config = self.inner.config.clone();
        let handle = self.inner.runtime.handle().clone();
        self.block_on(async move {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(db_error)?;
            handle.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "the store writer's database connection ended");
                }
            });
            Ok(client)
        })
    }
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
        CaError::StoreUnavailable(format!("the database: {e}"))
    } else {
        CaError::Database(Box::new(e))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> CaError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => CaError::StoreUnavailable(format!("no database connection: {other}")),
    }
}
