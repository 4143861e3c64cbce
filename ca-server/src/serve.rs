//! `ca-server serve`: bootstrap the data directory, start the engine and the HTTP listener,
//! and shut down gracefully on SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ca_core::audit::Checkpoint;
use ca_core::crl::CrlPublisher;
use ca_core::engine::{Engine, StatusObserver};
use ca_core::ocsp::{OcspCache, OcspResponder};
use ca_core::CaError;
use keys::Signer;
use tokio::net::TcpListener;

use crate::api::{
    self, AppState, BackupSite, BodyLimits, EnrollmentLimits, HttpMetrics, KeyGeneration,
    OcspBudget,
};
use crate::cli::error_chain;
use crate::client_auth::{ClientCertificates, ClientMappingError};
use crate::config::{Config, StatusUrlError, StoreBackend};
use crate::datadir::{
    self, Core, Created, DataDirError, OcspDelegate, ResponderIssuer, DEV_CA_SUBJECT,
    ROOT_VALIDITY_DAYS,
};
use crate::disk::DiskMetrics;
use crate::limits::{self, Limits, RateLimiter};
use crate::listener::{self, ListenerOptions, TlsConfigError};
use crate::request_log::{self, RequestLog};

/// Why `ca-server serve` could not start, or stopped with an error. Each variant says what
/// to fix or names the step that failed; the error underneath is its source.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `[acme]` is enabled but cannot start.
    #[error(transparent)]
    Acme(#[from] crate::acme::AcmeStartError),
    /// `[est]` is enabled but cannot start.
    #[error(transparent)]
    Est(#[from] crate::est::EstStartError),
    /// `[cmp]` is enabled but cannot start.
    #[error(transparent)]
    Cmp(#[from] crate::cmp::CmpStartError),
    /// The data directory, its configuration, the CA or the store cannot be used.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// No URLs can be derived for the certificates the server issues.
    #[error(transparent)]
    StatusUrls(#[from] StatusUrlError),
    /// The TLS configuration of `[tls]` cannot be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// A `[[tls.clients]]` entry is refused.
    #[error(transparent)]
    ClientCertificates(#[from] ClientMappingError),
    /// The CA core failed: the store, the metrics registry, the OCSP responder.
    #[error(transparent)]
    Core(#[from] CaError),
    /// The data directory has a CA key but no CA certificate: an intermediate that was not
    /// imported yet, or a lost certificate.
    #[error(
        "{} has a CA key but no certificate at {}; if this is an intermediate CA, sign {} with \
         the parent CA and run `ca-server import`",
        dir.display(),
        chain.display(),
        csr.display()
    )]
    NoCaCertificate {
        /// The data directory.
        dir: PathBuf,
        /// Where the certificate chain belongs.
        chain: PathBuf,
        /// The intermediate's request.
        csr: PathBuf,
    },
    /// Plain HTTP on an address other than loopback, which `[tls] allow_plain_http` does not
    /// allow.
    #[error(
        "refusing to serve plain HTTP on {listen}: configure [tls] cert_file and key_file \
         (`ca-server tls-cert` issues them), or set [tls] allow_plain_http = true behind a \
         TLS-terminating proxy"
    )]
    PlainHttp {
        /// The API's address.
        listen: std::net::SocketAddr,
    },
    /// A listener's address could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What binding failed with.
        source: std::io::Error,
    },
    /// The address a listener is bound to could not be read.
    #[error("reading the bound address")]
    BoundAddress(#[source] std::io::Error),
    /// The client CA file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading failed with.
        source: std::io::Error,
    },
    /// The client CA file is not PEM.
    #[error("{}", path.display())]
    ClientCaFile {
        /// The file.
        path: PathBuf,
        /// Why it is not PEM.
        source: ca_core::armor::InvalidPem,
    },
    /// The first CRL could not be built.
    #[error("generating the first CRL")]
    FirstCrl(#[source] CaError),
    /// A task on the blocking pool failed (it panicked or was cancelled).
    #[error("{what}")]
    Task {
        /// What the task did.
        what: &'static str,
        /// How it failed.
        source: tokio::task::JoinError,
    },
    /// A shutdown signal handler could not be installed.
    #[error("installing the {signal} handler")]
    Signal {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
        /// What installing it failed with.
        source: std::io::Error,
    },
}

/// Options of `serve` that override the configuration.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Listen address instead of the configured one.
    pub listen: Option<std::net::SocketAddr>,
    /// The plain-HTTP status listener's address instead of `[public] listen`.
    pub public_listen: Option<std::net::SocketAddr>,
}

/// Runs the server until a shutdown signal; the error says what to fix.
pub async fn serve(dir: &Path, options: ServeOptions) -> Result<(), ServeError> {
    let config = datadir::prepare(dir)?;
    let key_path = crate::config::Config::resolve(dir, &config.ca.key_file);
    let chain_path = crate::config::Config::resolve(dir, &config.ca.chain_file);
    // A development root only where no CA key is configured at all (never in a token).
    if config.ca.pkcs11.is_none() && !key_path.exists() && !chain_path.exists() {
        let created = datadir::init_ca(
            dir,
            &config,
            keys::KeyAlgorithm::EcdsaP256,
            DEV_CA_SUBJECT,
            ROOT_VALIDITY_DAYS,
            false,
        )?;
        if let Created::Root(path) = created {
            tracing::warn!(path = %path.display(), "created a DEVELOPMENT root CA (ECDSA P-256); do not use it in production");
        }
    } else if !chain_path.exists() {
        return Err(ServeError::NoCaCertificate {
            dir: dir.to_path_buf(),
            chain: chain_path,
            csr: dir.join(datadir::CA_CSR_FILE),
        });
    }
    let material = datadir::load_ca(dir, &config)?;
    let store = datadir::open_store(dir, &config)?;
    if let Some(ca) = material.chain.first() {
        store.bind_ca(<sha2::Sha256 as sha2::Digest>::digest(ca).into())?;
    }
    if config.store.verify_on_start {
        let started = std::time::Instant::now();
        if let Some(entries) = store.verify_files()? {
            tracing::info!(
                entries,
                seconds = started.elapsed().as_secs_f64(),
                "store checksums verified"
            );
        }
    }
    match datadir::bootstrap_tokens(dir, store.as_ref())? {
        Some(path) => println!("bootstrap tokens written to {}", path.display()),
        None => datadir::warn_bootstrap_file(dir),
    }
    datadir::record_configuration(dir, store.as_ref())?;

    let listen = options.listen.unwrap_or(config.listen);
    let tls = tls_options(dir, &config)?;
    if tls.is_none() && !listen.ip().is_loopback() && !config.tls.allow_plain_http {
        return Err(ServeError::PlainHttp { listen });
    }
    let (listener, bound) = bind(listen).await?;
    let public = match options.public_listen.or(config.public.listen) {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let status = config.status_urls(bound, tls.is_some(), public.as_ref().map(|p| p.1))?;
    for warning in &status.warnings {
        tracing::warn!("{warning}");
    }
    let urls = status.urls;
    let Core {
        engine,
        crl,
        signer,
    } = datadir::start_core(dir, &config, material, store, &urls)?;
    let chain_pem = ca_core::armor::certificates_to_pem(engine.ca().chain());
    let ca_der = engine.ca().certificate().to_vec();
    let first = crl.clone();
    tokio::task::spawn_blocking(move || first.generate())
        .await
        .map_err(|source| ServeError::Task {
            what: "generating the first CRL",
            source,
        })?
        .map_err(ServeError::FirstCrl)?;
    let ocsp_cache = Arc::new(OcspCache::new(config.ocsp.cache_capacity));
    engine.observe_status(Arc::downgrade(&ocsp_cache) as Weak<dyn StatusObserver>);
    let validity =
        time::Duration::seconds(i64::try_from(config.ocsp.validity_secs).unwrap_or(3600));
    let (responder, renewal) = if config.ocsp.delegated {
        let issuer = Arc::new(ResponderIssuer {
            dir: dir.to_path_buf(),
            keys: datadir::responder_keys(dir, &config)?,
            validity_days: config.ocsp.delegated_validity_days,
            ca_signer: signer.clone(),
            ca_der: ca_der.clone(),
            engine: engine.clone(),
        });
        let at_start = issuer.clone();
        let delegate = tokio::task::spawn_blocking(move || {
            let delegate = at_start.delegate(None, time::OffsetDateTime::now_utc())?;
            // Nothing signs with the replaced key yet.
            if let Some(serial) = delegate.replaced {
                at_start.retire(serial);
            }
            Ok::<_, DataDirError>(delegate)
        })
        .await
        .map_err(|source| ServeError::Task {
            what: "preparing the delegated OCSP responder",
            source,
        })??;
        let responder = OcspResponder::delegated(
            &ca_der,
            delegate.signer.clone(),
            &delegate.cert_der,
            validity,
        );
        (responder, Some((issuer, delegate)))
    } else {
        (OcspResponder::new(signer.clone(), &ca_der, validity), None)
    };
    let ocsp = Arc::new(
        responder?
            .with_cache(ocsp_cache.clone())
            .with_degraded(engine.metrics().degraded_entries()),
    );
    let ocsp_renewal = renewal
        .map(|(issuer, delegate)| tokio::spawn(ocsp_renewal(issuer, delegate, ocsp.clone())));
    let log = Arc::new(RequestLog::new(config.log.outcome_lines_per_second));
    let acme_front = if config.acme.enabled {
        let metrics = crate::acme::AcmeMetrics::register(engine.metrics().registry())
            .map_err(|e| crate::acme::AcmeStartError::Setting(e.to_string()))?;
        Some(Arc::new(crate::acme::AcmeFront::start(
            engine.clone(),
            config.acme.clone(),
            &chain_pem,
            tls.is_some(),
            metrics,
        )?))
    } else {
        None
    };
    let est_front = if config.est.enabled {
        Some(Arc::new(crate::est::EstFront::start(
            engine.clone(),
            config.est.clone(),
        )?))
    } else {
        None
    };
    let cmp_front = if config.cmp.enabled {
        Some(Arc::new(crate::cmp::CmpFront::start(
            engine.clone(),
            config.cmp.clone(),
            dir,
            crl.clone(),
            urls.crl.clone(),
        )?))
    } else {
        None
    };
    let state = Arc::new(AppState {
        engine: engine.clone(),
        backup: Arc::new(BackupSite::new(dir.to_path_buf(), config.clone())),
        chain_pem,
        max_batch: config.max_batch,
        crl: crl.clone(),
        ocsp,
        http_metrics: HttpMetrics::new(engine.metrics().registry())?,
        disk: DiskMetrics::register(
            engine.metrics().registry(),
            match config.store.backend {
                StoreBackend::Rocksdb => Some(Config::resolve(dir, &config.ca.db_dir)),
                StoreBackend::Postgres => None,
            },
            dir,
        )?,
        enrollment: EnrollmentLimits {
            min_password_length: config.enrollment.min_password_length,
            max_lifetime_hours: config.enrollment.max_lifetime_hours,
        },
        min_invalidity_date: config.revocation.min_invalidity_unix()?,
        key_generation: KeyGeneration::new(config.enrollment.key_generation_concurrency),
        ocsp_budget: OcspBudget::new(&config.ocsp),
        client_certificate_names: config.tls.clients.iter().map(|c| c.name.clone()).collect(),
        log: log.clone(),
        signer_check: crate::api::SignerCheck::default(),
        acme: acme_front,
        est: est_front,
        cmp: cmp_front,
    });
    let log_timer = tokio::spawn(request_log::flush_timer(log.clone()));
    let crl_timer = tokio::spawn(crl_timer(crl));
    checkpoint(&engine, &signer).await;
    let checkpoint_timer = (config.audit.checkpoint_interval_secs > 0).then(|| {
        tokio::spawn(checkpoint_timer(
            engine.clone(),
            signer.clone(),
            config.audit.checkpoint_interval_secs,
        ))
    });
    let limits = Arc::new(limits_of(dir, &config, &engine, log.clone())?);
    let bodies = BodyLimits {
        single: config.body_limit_bytes,
        batch: config.batch_body_limit_bytes,
        inflight: config.limits.max_inflight_body_bytes,
    };
    let limited = |router: axum::Router| {
        router.layer(axum::middleware::from_fn_with_state(
            limits.clone(),
            limits::limit,
        ))
    };
    let connections = state.http_metrics.connections.clone();
    let app = limited(api::router(state.clone(), bodies));
    let status_app = limited(api::status_router(state, bodies));
    tracing::info!(%bound, public = ?public.as_ref().map(|p| p.1), crl = ?urls.crl, ocsp = ?urls.ocsp, tls = tls.is_some(), "serving");
    // Before `listening on`: a SIGTERM right after that line must stop the server gracefully.
    let shutdown = shutdown_signal()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let options = ListenerOptions {
        max_connections: config.limits.max_connections,
        header_timeout: Duration::from_secs(config.limits.header_timeout_secs.max(1)),
        idle_timeout: Duration::from_secs(config.limits.idle_timeout_secs.max(1)),
        max_header_bytes: config.limits.max_header_bytes,
        // Certificates issued before the status listener name the TLS port.
        plain: tls.is_some().then(|| status_app.clone()),
        tls: tls.as_ref().map(|(config, _)| config.clone()),
        connections: connections.with_label_values(&["api"]),
        client_chain: tls
            .as_ref()
            .map_or(listener::ClientChain::Handshake, |(_, chain)| chain.clone()),
    };
    let public_task = public.map(|(public_listener, public_bound)| {
        println!("serving CRLs, OCSP and the CA certificate on http://{public_bound}");
        let options = ListenerOptions {
            tls: None,
            plain: None,
            connections: connections.with_label_values(&["public"]),
            ..options.clone()
        };
        let mut stopped = stopped.clone();
        tokio::spawn(listener::serve(
            public_listener,
            status_app,
            options,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ))
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{bound}");
    let mut api_stopped = stopped;
    tokio::join!(
        async move {
            shutdown.await;
            let _ = stop.send(true);
        },
        listener::serve(listener, app, options, async move {
            let _ = api_stopped.wait_for(|s| *s).await;
        }),
    );
    if let Some(task) = public_task {
        let _ = task.await;
    }
    crl_timer.abort();
    let _ = crl_timer.await;
    log_timer.abort();
    let _ = log_timer.await;
    log.finish();
    if let Some(task) = checkpoint_timer {
        task.abort();
        let _ = task.await;
    }
    checkpoint(&engine, &signer).await;
    if let Some(task) = ocsp_renewal {
        task.abort();
        let _ = task.await;
    }
    tracing::info!("no more connections; stopping the engine");
    // Handlers are done, so this is the last reference; stopping joins threads, off the runtime.
    tokio::task::spawn_blocking(move || match Arc::try_unwrap(engine) {
        Ok(engine) => engine.shutdown(),
        Err(_) => tracing::warn!("engine still referenced at shutdown; it stops on drop"),
    })
    .await
    .map_err(|source| ServeError::Task {
        what: "stopping the engine",
        source,
    })?;
    Ok(())
}

/// A listener bound to `addr`, and the address it is bound to (the port chosen for port 0).
async fn bind(
    addr: std::net::SocketAddr,
) -> Result<(TcpListener, std::net::SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(ServeError::BoundAddress)?;
    Ok((listener, bound))
}

/// The rustls configuration named by `[tls]`, if any, and how its client certificates count
/// for the API. With `[est] enabled` any client certificate is accepted at the handshake
/// (EST's `simplereenroll` judges certificates this CA issued per request), and one counts for
/// the API only when it chains to `client_ca_file`, as without EST.
fn tls_options(
    dir: &Path,
    config: &Config,
) -> Result<Option<(Arc<rustls::ServerConfig>, listener::ClientChain)>, TlsConfigError> {
    let tls = &config.tls;
    if tls.cert_file.as_os_str().is_empty() {
        return Ok(None);
    }
    let client_ca = (!tls.client_ca_file.as_os_str().is_empty())
        .then(|| Config::resolve(dir, &tls.client_ca_file));
    let est_chain = if config.est.enabled {
        let verifier = client_ca
            .as_deref()
            .map(|path| listener::client_verifier(path, true))
            .transpose()?;
        Some(verifier)
    } else {
        None
    };
    let (clients, chain) = match (&est_chain, &client_ca) {
        (Some(verifier), _) => (
            listener::ClientCertificates::Any(verifier.as_ref()),
            listener::ClientChain::After(verifier.clone()),
        ),
        (None, Some(path)) => (
            listener::ClientCertificates::Optional(path),
            listener::ClientChain::Handshake,
        ),
        (None, None) => (
            listener::ClientCertificates::None,
            listener::ClientChain::Handshake,
        ),
    };
    let config = listener::tls_config(
        &Config::resolve(dir, &tls.cert_file),
        &Config::resolve(dir, &tls.key_file),
        clients,
        &[b"h2", b"http/1.1"],
    )?;
    Ok(Some((config, chain)))
}

/// The request limits of `[limits]` and the client certificates of `[tls]`; every warning
/// about the client certificate mappings is logged, naming the entry.
fn limits_of(
    dir: &Path,
    config: &Config,
    engine: &Engine,
    log: Arc<RequestLog>,
) -> Result<Limits, ServeError> {
    let tls = &config.tls;
    let client_cas = if tls.client_ca_file.as_os_str().is_empty() {
        Vec::new()
    } else {
        let path = Config::resolve(dir, &tls.client_ca_file);
        let text = std::fs::read_to_string(&path).map_err(|source| ServeError::Read {
            path: path.clone(),
            source,
        })?;
        ca_core::armor::parse_certificates(&text)
            .map_err(|source| ServeError::ClientCaFile { path, source })?
    };
    let loaded = ClientCertificates::load(
        &tls.clients,
        &client_cas,
        engine.ca().chain(),
        Some(engine.store().clone()),
    )?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    for c in &tls.clients {
        if engine.store().token_name_holder(&c.name)?.is_some() {
            tracing::warn!(
                "{} acts under a name a token holds: the certificates requested under it \
                 belong to that token, not to this client certificate; give it a name of its own",
                c.describe()
            );
        }
    }
    Ok(Limits {
        rate: RateLimiter::new(config.limits.requests_per_second, config.limits.burst),
        public_rate: RateLimiter::new(
            config.limits.public_requests_per_second,
            config.limits.public_burst,
        ),
        store: engine.store().clone(),
        request_timeout: Duration::from_secs(config.limits.request_timeout_secs.max(1)),
        certificates: loaded.certificates,
        log,
    })
}

/// Rebuilds the CRLs every `interval_secs` when a revocation changed or half their validity
/// has passed. The build runs on the blocking pool; issuance goes on meanwhile.
async fn crl_timer(crl: Arc<CrlPublisher>) {
    let period = std::time::Duration::from_secs(crl.config().interval_secs.max(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if !crl.due(time::OffsetDateTime::now_utc().unix_timestamp()) {
            continue;
        }
        let job = crl.clone();
        match tokio::task::spawn_blocking(move || job.generate()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(
                error = %error_chain(&e),
                "CRL generation failed; retrying next tick"
            ),
            Err(e) => tracing::error!(error = %e, "CRL generation task failed"),
        }
    }
}

/// Signs a checkpoint of the audit log's head every `interval_secs` (when the head moved).
async fn checkpoint_timer(engine: Arc<Engine>, signer: Arc<dyn Signer>, interval_secs: u64) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(interval_secs));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        checkpoint(&engine, &signer).await;
    }
}

/// Signs and stores a checkpoint of the audit log's head with the CA key, unless the newest
/// checkpoint already covers it. Failures are logged: they leave the log itself intact.
async fn checkpoint(engine: &Arc<Engine>, signer: &Arc<dyn Signer>) {
    let result = async {
        let head = engine.audit_head().await?;
        let latest = engine.store().latest_checkpoint()?;
        if head.seq == 0 || latest.is_some_and(|cp| cp.head == head) {
            return Ok(None);
        }
        let signer = signer.clone();
        let at = time::OffsetDateTime::now_utc().unix_timestamp();
        let cp = tokio::task::spawn_blocking(move || Checkpoint::sign(signer.as_ref(), head, at))
            .await
            .map_err(|e| CaError::internal("the checkpoint task failed", Some(Box::new(e))))??;
        engine.store_checkpoint(cp.clone()).await?;
        Ok::<_, CaError>(Some(cp))
    }
    .await;
    match result {
        Ok(Some(cp)) => {
            engine.metrics().checkpoint(&cp);
            let seq = cp.head.seq;
            tracing::info!(seq, hash = %hex::encode(cp.head.hash), "signed an audit checkpoint");
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %error_chain(&e), "signing an audit checkpoint failed"),
    }
}

/// How often a running server checks whether its delegated OCSP responder is due for renewal.
const OCSP_RENEWAL_CHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// Keeps the delegated OCSP responder fresh while the server runs: every
/// [`OCSP_RENEWAL_CHECK`], the check made at start ([`ResponderIssuer::delegate`], which issues
/// a new key and certificate when a third of the validity remains); a responder other than
/// `current`, the one in use, is taken into use at once, and the key it replaced retired
/// [`RESPONDER_KEY_GRACE`] later.
async fn ocsp_renewal(
    issuer: Arc<ResponderIssuer>,
    mut current: OcspDelegate,
    ocsp: Arc<OcspResponder>,
) {
    let mut ticks = tokio::time::interval(OCSP_RENEWAL_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (checker, in_use) = (issuer.clone(), current.clone());
        let job = tokio::task::spawn_blocking(move || {
            checker.delegate(Some(&in_use), time::OffsetDateTime::now_utc())
        });
        let delegate = match job.await {
            Ok(Ok(delegate)) => delegate,
            Ok(Err(e)) => {
                tracing::error!(
                    error = %error_chain(&e),
                    "renewing the OCSP responder failed; retrying later"
                );
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "the OCSP responder renewal task failed");
                continue;
            }
        };
        if ocsp.responder_certificate().as_ref() == Some(&delegate.cert_der) {
            continue;
        }
        if let Err(e) = ocsp.set_delegate(delegate.signer.clone(), &delegate.cert_der) {
            tracing::error!(
                error = %error_chain(&e),
                "taking the new OCSP responder into use failed"
            );
            continue;
        }
        tracing::info!("the OCSP responder now signs with its new key");
        let replaced = delegate.replaced;
        current = delegate;
        if let Some(serial) = replaced {
            // Answers being signed with the old key finish first.
            tokio::time::sleep(RESPONDER_KEY_GRACE).await;
            let retiring = issuer.clone();
            let _ = tokio::task::spawn_blocking(move || retiring.retire(serial)).await;
        }
    }
}

/// How long the replaced OCSP responder key is kept after the new one took over, so that
/// answers being signed with it finish.
const RESPONDER_KEY_GRACE: Duration = Duration::from_secs(10);

/// Installs the SIGINT and SIGTERM handlers at once; the future resolves on either signal.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let handler = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| ServeError::Signal {
            signal: name,
            source,
        })
    };
    let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
    let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutdown signal received; finishing open requests");
    })
}
