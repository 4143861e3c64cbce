//! The ACME front end (RFC 8555): the protocol translated into engine calls. Accounts,
//! orders and authorizations live in the engine's versioned object store
//! ([`records`]); certificates are issued, stored and revoked by the engine like any other,
//! with the account's RA (External Account Binding) or the account itself as requester.
//!
//! Every POST is a JWS ([`ca_acme::ParsedJws`]) checked here in the order RFC 8555 section
//! 6 gives: form, nonce (section 6.5), `url` (section 6.4), key (section 6.2: `jwk` only for
//! newAccount and revokeCert, `kid` an account URL of a valid account), signature. Every
//! answer carries a fresh `Replay-Nonce` and the directory's `Link` (section 7.1).

mod account;
mod authz;
pub(crate) mod cert;
pub mod config;
pub mod nonce;
mod order;
pub mod records;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ca_acme::{AccountKey, AccountStatus, KeyRef, ParsedJws, Problem, ProblemType, VerifiedJws};
use ca_acme_va::{Perspectives, RemoteTls, RemoteVa, Va};
use ca_core::engine::Engine;
use ca_core::error::CaError;
use serde_json::{json, Value};
use time::OffsetDateTime;

pub use config::AcmeConfig;
use nonce::Nonces;
use records::{AccountRecord, Id, Versioned};

use crate::api::AppState;

/// Where the ACME routes live.
pub const PREFIX: &str = "/acme";

/// What the ACME handlers share.
pub struct AcmeFront {
    engine: Arc<Engine>,
    config: AcmeConfig,
    nonces: Nonces,
    /// The local validation authority, with the remote agents of `[acme] remote_vas`.
    va: Perspectives,
    /// The CA chain, issuing CA first, as PEM: what follows the leaf in a download.
    chain_pem: String,
    /// `https` when the listener is TLS.
    scheme: &'static str,
    metrics: AcmeMetrics,
}

impl std::fmt::Debug for AcmeFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeFront").finish_non_exhaustive()
    }
}

/// `ca_acme_*` metrics.
#[derive(Clone)]
pub struct AcmeMetrics {
    /// Requests answered, by resource and outcome (`ok` or the problem type).
    pub requests: prometheus::IntCounterVec,
    /// Validations finished, by challenge type and outcome.
    pub validations: prometheus::IntCounterVec,
    /// Each perspective's outcome of each validation and CAA check: `local` or a remote
    /// agent's URL, `validation` or `caa`, `valid` or the problem type.
    pub perspectives: prometheus::IntCounterVec,
}

impl AcmeMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let requests = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "acme_requests_total",
                "ACME requests answered, by resource and outcome",
            ),
            &["resource", "outcome"],
        )?;
        let validations = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "acme_validations_total",
                "ACME challenge validations finished, by type and outcome",
            ),
            &["type", "outcome"],
        )?;
        let perspectives = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                // The registry prefixes `ca_`: exposed as ca_acme_perspective_results_total.
                "acme_perspective_results_total",
                "ACME validations and CAA checks by network perspective (local or a remote \
                 agent) and outcome",
            ),
            &["perspective", "check", "outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(validations.clone()))?;
        registry.register(Box::new(perspectives.clone()))?;
        Ok(AcmeMetrics {
            requests,
            validations,
            perspectives,
        })
    }
}

/// Why the ACME front could not start.
#[derive(Debug, thiserror::Error)]
pub enum AcmeStartError {
    /// `[acme] profile` or `profiles` names a profile that does not exist or is a CA profile.
    #[error("[acme] names the profile {0:?}, which is not an end-entity profile of this CA")]
    Profile(String),
    /// A `deny_networks` entry or `dns_resolver` does not parse.
    #[error("[acme] {0}")]
    Setting(String),
    /// The validation authority could not start.
    #[error("[acme] the validation authority: {0}")]
    Va(String),
    /// No randomness for the nonces.
    #[error("no randomness for the ACME nonces")]
    Random,
    /// The store's nonce key cannot be read.
    #[error("[acme] the store's nonce key: {0}")]
    Store(#[from] CaError),
}

impl AcmeFront {
    /// Starts the front for `engine` with `config`: checks its profiles and starts the
    /// validation authority.
    pub fn start(
        engine: Arc<Engine>,
        config: AcmeConfig,
        chain_pem: &[String],
        tls: bool,
        metrics: AcmeMetrics,
    ) -> Result<Self, AcmeStartError> {
        for name in std::iter::once(&config.profile).chain(&config.profiles) {
            match engine.ca().profile(name) {
                Ok(profile) if profile.ca.is_none() => {}
                _ => return Err(AcmeStartError::Profile(name.clone())),
            }
        }
        let mut deny = Vec::new();
        for net in &config.deny_networks {
            deny.push(net.parse().map_err(|_| {
                AcmeStartError::Setting(format!("deny_networks: {net:?} is not a network (CIDR)"))
            })?);
        }
        let resolver = match config.dns_resolver.as_str() {
            "" => None,
            addr => Some(addr.parse().map_err(|_| {
                AcmeStartError::Setting(format!("dns_resolver: {addr:?} is not address:port"))
            })?),
        };
        let va = Va::new(ca_acme_va::VaConfig {
            http01_port: config.http01_port,
            tlsalpn01_port: config.tlsalpn01_port,
            resolver,
            deny_networks: deny,
            timeout: std::time::Duration::from_secs(config.validation_timeout_secs.max(1)),
            max_in_flight: config.validation_concurrency.max(1),
            queue: config.validation_queue,
            ..ca_acme_va::VaConfig::default()
        })
        .map_err(|e| AcmeStartError::Va(e.to_string()))?;
        let counter = metrics.perspectives.clone();
        let va = perspectives(&config, va)?.observed(Arc::new(move |check, name, outcome| {
            counter
                .with_label_values(&[name, check.name(), outcome])
                .inc()
        }));
        let rng = engine.ca().random().as_ref();
        let nonces = match engine.acme_nonce_key()? {
            Some(key) => Nonces::shared(rng, &key),
            None => Nonces::local(rng),
        }
        .map_err(|_| AcmeStartError::Random)?;
        Ok(AcmeFront {
            engine,
            config,
            nonces,
            va,
            chain_pem: chain_pem.concat(),
            scheme: if tls { "https" } else { "http" },
            metrics,
        })
    }

    /// The base URL of this request: `[acme] base_url`, or the listener's scheme and the
    /// request's host.
    fn base(&self, host: &RequestHost) -> String {
        if !self.config.base_url.is_empty() {
            return self.config.base_url.trim_end_matches('/').to_string();
        }
        format!("{}://{}", self.scheme, host.host)
    }

    fn profile_enabled(&self, name: &str) -> bool {
        self.config.profile == name || self.config.profiles.iter().any(|p| p == name)
    }

    fn random_id(&self) -> Result<Id, CaError> {
        let mut id = [0u8; 16];
        self.engine.ca().random().fill(&mut id)?;
        Ok(id)
    }
}

/// The local VA with the remote agents of `[acme] remote_vas`: their TLS material read
/// (the key must be mode 0600) and the quorum checked. Every refusal names its setting.
fn perspectives(config: &AcmeConfig, va: Va) -> Result<Perspectives, AcmeStartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    if config.remote_vas.is_empty() {
        if config.remote_va_quorum.is_some_and(|q| q > 0) {
            return Err(AcmeStartError::Setting(
                "remote_va_quorum is set but remote_vas is empty".into(),
            ));
        }
        return Ok(Perspectives::local(va));
    }
    let setting = |key: &str, why: String| AcmeStartError::Setting(format!("{key}: {why}"));
    let path = |key: &str, value: &str| {
        if value.is_empty() {
            Err(setting(
                key,
                "must be set when remote_vas names remote validation agents".into(),
            ))
        } else {
            Ok(std::path::PathBuf::from(value))
        }
    };
    let certificates = |key: &str, value: &str| {
        let file = path(key, value)?;
        let text = std::fs::read(&file)
            .map_err(|e| setting(key, format!("reading {}: {e}", file.display())))?;
        let certs = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setting(key, format!("{}: {e}", file.display())))?;
        if certs.is_empty() {
            return Err(setting(
                key,
                format!("{} holds no certificate", file.display()),
            ));
        }
        Ok(certs)
    };
    let chain = certificates("remote_va_cert", &config.remote_va_cert)?;
    let key_file = path("remote_va_key", &config.remote_va_key)?;
    let key = keys::load_pkcs8_file(&key_file)
        .map_err(|e| setting("remote_va_key", crate::cli::error_chain(&e)))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec()));
    let roots = certificates("remote_va_ca_file", &config.remote_va_ca_file)?;
    let tls =
        RemoteTls::new(chain, key, roots).map_err(|e| setting("remote_va_cert", e.to_string()))?;
    let timeout = std::time::Duration::from_secs(config.remote_timeout_secs());
    let mut remotes = Vec::new();
    for url in &config.remote_vas {
        remotes.push(
            RemoteVa::new(url, &tls, timeout).map_err(|e| setting("remote_vas", e.to_string()))?,
        );
    }
    let quorum = config
        .remote_va_quorum
        .unwrap_or_else(|| Perspectives::default_quorum(remotes.len()));
    if quorum == 0 || quorum > remotes.len() {
        return Err(setting(
            "remote_va_quorum",
            format!(
                "{quorum} must be between 1 and the number of remote_vas ({})",
                remotes.len()
            ),
        ));
    }
    let perspectives = Perspectives::new(va, remotes, quorum, timeout)
        .map_err(|e| setting("remote_va_quorum", e.to_string()))?;
    tracing::info!(
        remotes = ?perspectives.remotes(),
        quorum,
        "ACME validation from several perspectives"
    );
    Ok(perspectives)
}

/// What an ACME handler reads from the request's head: the host it was sent to (its `Host`
/// header in HTTP/1.1, the authority of its URI in HTTP/2; `localhost` when it has neither or
/// it is not printable ASCII), and whether its body is declared `application/jose+json`.
pub struct RequestHost {
    host: String,
    jose: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestHost {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_string()))
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| "localhost".into());
        let jose = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(JOSE_JSON));
        Ok(RequestHost { host, jose })
    }
}

/// The media type of every ACME POST body (RFC 8555 section 6.2).
const JOSE_JSON: &str = "application/jose+json";

/// The URLs of one request: the base and the resources under it.
#[derive(Clone, Debug)]
pub struct Urls {
    base: String,
}

impl Urls {
    fn new(base: String) -> Self {
        Urls { base }
    }
    fn at(&self, path: &str) -> String {
        format!("{}{PREFIX}{path}", self.base)
    }
    fn directory(&self) -> String {
        self.at("/directory")
    }
    fn account(&self, id: &Id) -> String {
        self.at(&format!("/acct/{}", ca_acme::b64url(id)))
    }
    fn order(&self, id: &Id) -> String {
        self.at(&format!("/order/{}", ca_acme::b64url(id)))
    }
    fn authz(&self, id: &Id) -> String {
        self.at(&format!("/authz/{}", ca_acme::b64url(id)))
    }
    fn challenge(&self, authz: &Id, kind: &str) -> String {
        self.at(&format!("/chall/{}/{kind}", ca_acme::b64url(authz)))
    }
    fn certificate(&self, serial_hex: &str) -> String {
        self.at(&format!("/cert/{serial_hex}"))
    }
}

/// Reads an id from a URL path segment.
fn parse_id(segment: &str) -> Option<Id> {
    parse_b64url(segment)
}

/// Reads `N` bytes written in base64url (an id, a list cursor).
fn parse_b64url<const N: usize>(text: &str) -> Option<[u8; N]> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    bytes.try_into().ok()
}

/// An ACME answer: a status, headers, and a JSON or other body.
pub struct Answer {
    status: StatusCode,
    headers: Vec<(header::HeaderName, String)>,
    body: Body,
}

enum Body {
    Json(Value),
    Pem(String),
    Empty,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Body::Json(body),
        }
    }

    fn with(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn location(self, url: String) -> Self {
        self.with(header::LOCATION, url)
    }

    fn link(self, url: &str, rel: &str) -> Self {
        self.with(header::LINK, format!("<{url}>;rel=\"{rel}\""))
    }
}

/// A refused ACME request: its problem, and a `Retry-After` when the refusal passes.
#[derive(Debug)]
pub struct Refusal {
    problem: Box<Problem>,
    /// Answer with this status rather than the type's (503 for an unavailable store).
    status: Option<StatusCode>,
    retry_after: Option<u64>,
    /// A `Location` to send with it (the account that holds a key).
    location: Option<String>,
}

impl From<Problem> for Refusal {
    fn from(problem: Problem) -> Self {
        Refusal {
            problem: Box::new(problem),
            status: None,
            retry_after: None,
            location: None,
        }
    }
}

impl From<CaError> for Refusal {
    /// The engine's errors as ACME problems: what is wrong with a CSR is `badCSR`, a name
    /// the profile refuses `rejectedIdentifier`, a passing unavailability `serverInternal`
    /// with 503 and Retry-After, a conflict of concurrent changes `malformed` with 409 (the
    /// client retries), anything else `serverInternal` (logged, no detail).
    fn from(e: CaError) -> Self {
        use CaError as E;
        let problem = |kind, detail: String| Problem::new(kind, detail);
        match &e {
            E::CsrMalformed(_)
            | E::CsrSignatureInvalid
            | E::CsrSignatureAlgorithm(_)
            | E::KeyTypeNotAllowed { .. }
            | E::SubjectNotAllowed(_)
            | E::SanRequired(_)
            | E::WeakKey(_)
            | E::WeakKeySmallFactor { .. }
            | E::WeakKeyRoca { .. }
            | E::WeakKeyFermat { .. }
            | E::KeyBlocked { .. } => problem(ProblemType::BadCsr, e.to_string()).into(),
            E::SanNotAllowed(_) => problem(ProblemType::RejectedIdentifier, e.to_string()).into(),
            E::ValidityNotAllowed { .. } | E::ValidityBeyondIssuer { .. } => {
                problem(ProblemType::Malformed, e.to_string()).into()
            }
            E::AlreadyRevoked { .. } => problem(ProblemType::AlreadyRevoked, e.to_string()).into(),
            E::AcmeConflict { .. } | E::AcmeIndexTaken { .. } => Refusal {
                problem: Box::new(problem(
                    ProblemType::Malformed,
                    "the object changed while this request was handled; retry".into(),
                )),
                status: Some(StatusCode::CONFLICT),
                retry_after: None,
                location: None,
            },
            _ if e.class() == ca_core::error::ErrorClass::Unavailable => Refusal {
                problem: Box::new(problem(ProblemType::ServerInternal, e.to_string())),
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                retry_after: Some(1),
                location: None,
            },
            _ => {
                tracing::error!(error = %e.chain(), "ACME request failed");
                problem(
                    ProblemType::ServerInternal,
                    "the server could not handle this request".into(),
                )
                .into()
            }
        }
    }
}

type Handled = Result<Answer, Refusal>;

/// Finishes an answer: the fresh nonce, the directory link, `Cache-Control: no-store`, and
/// the metric.
fn respond(front: &AcmeFront, urls: &Urls, resource: &str, result: Handled) -> Response {
    let (answer, outcome) = match result {
        Ok(answer) => (answer, "ok"),
        Err(refusal) => {
            let outcome = refusal.problem.kind.name();
            let status = refusal.status.unwrap_or_else(|| {
                StatusCode::from_u16(refusal.problem.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            });
            let mut doc = refusal.problem.to_json();
            doc["status"] = status.as_u16().into();
            let mut answer = Answer::json(status, doc);
            if let Some(secs) = refusal.retry_after {
                answer = answer.with(header::RETRY_AFTER, secs.to_string());
            }
            if let Some(location) = refusal.location {
                answer = answer.location(location);
            }
            (answer, outcome)
        }
    };
    front
        .metrics
        .requests
        .with_label_values(&[resource, outcome])
        .inc();
    let is_problem = answer.status.is_client_error() || answer.status.is_server_error();
    let answer = answer
        .with(
            header::HeaderName::from_static("replay-nonce"),
            front.nonces.issue(now()),
        )
        .link(&urls.directory(), "index")
        .with(header::CACHE_CONTROL, "no-store");
    let mut response = match answer.body {
        Body::Json(value) => {
            let content_type = if is_problem {
                "application/problem+json"
            } else {
                "application/json"
            };
            (
                answer.status,
                [(header::CONTENT_TYPE, content_type)],
                value.to_string(),
            )
                .into_response()
        }
        Body::Pem(pem) => (
            answer.status,
            [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
            pem,
        )
            .into_response(),
        Body::Empty => answer.status.into_response(),
    };
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Who sent a request that passed authentication.
pub struct Requester {
    /// The account's id and record (`None` for the `jwk` form).
    account: Option<(Id, Versioned<AccountRecord>)>,
    jws: VerifiedJws,
}

/// Which key forms a resource accepts (RFC 8555 section 6.2).
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyForm {
    /// `jwk` only: newAccount.
    Jwk,
    /// `kid` only: everything else but revokeCert.
    Kid,
    /// Either: revokeCert.
    Either,
}

impl AcmeFront {
    /// Authenticates a POST to `url` (RFC 8555 section 6): everything but what the resource
    /// itself checks.
    fn authenticate(
        &self,
        urls: &Urls,
        url: &str,
        body: &[u8],
        form: KeyForm,
    ) -> Result<Requester, Refusal> {
        let parsed = ParsedJws::parse(body)?;
        let header = parsed.header();
        let spend = |id: &[u8; 16], expires| self.engine.acme_spend_nonce(id, expires);
        if !self.nonces.redeem(header.nonce(), now(), spend)? {
            return Err(Problem::new(
                ProblemType::BadNonce,
                "the nonce is not one this server issued, or was used before; retry with the \
                 one in this answer's Replay-Nonce",
            )
            .into());
        }
        if header.url() != url {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                format!(
                    "the JWS url \"{}\" is not the URL this request was sent to",
                    ca_acme::problem::quote(header.url())
                ),
            )
            .into());
        }
        match (header.key_ref().clone(), form) {
            (KeyRef::Jwk(_), KeyForm::Kid) => Err(Problem::malformed(
                "this request must name its account with kid, not carry a jwk",
            )
            .into()),
            (KeyRef::Kid(_), KeyForm::Jwk) => {
                Err(Problem::malformed("this request must carry its key as jwk, not kid").into())
            }
            (KeyRef::Jwk(_), _) => Ok(Requester {
                account: None,
                jws: parsed.verify_embedded()?,
            }),
            (KeyRef::Kid(kid), _) => {
                let prefix = urls.at("/acct/");
                let id = kid
                    .strip_prefix(&prefix)
                    .and_then(parse_id)
                    .ok_or_else(|| {
                        Problem::new(
                            ProblemType::AccountDoesNotExist,
                            "the kid is not an account URL of this server",
                        )
                    })?;
                let account =
                    records::load::<AccountRecord>(&self.engine, &id)?.ok_or_else(|| {
                        Problem::new(ProblemType::AccountDoesNotExist, "no such account")
                    })?;
                let key = AccountKey::from_json(account.record.key.as_bytes())?;
                let jws = parsed.verify(&key)?;
                if account.record.status != AccountStatus::Valid {
                    return Err(Problem::new(
                        ProblemType::Unauthorized,
                        format!("the account is {}", account.record.status.as_str()),
                    )
                    .into());
                }
                Ok(Requester {
                    account: Some((id, account)),
                    jws,
                })
            }
        }
    }
}

impl Requester {
    /// The account of a `kid` request.
    fn account(&self) -> Result<(&Id, &Versioned<AccountRecord>), Refusal> {
        match &self.account {
            Some((id, account)) => Ok((id, account)),
            None => Err(Problem::malformed("this request must name its account with kid").into()),
        }
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A time as RFC 3339 in UTC, as ACME objects write them.
fn rfc3339(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The ACME front, when enabled (the routes exist only then).
fn front(state: &AppState) -> Option<&Arc<AcmeFront>> {
    state.acme.as_ref()
}

/// `GET /acme/directory` and `/acme/{profile}/directory` (RFC 8555 section 7.1.1).
async fn directory(state: State<Arc<AppState>>, host: RequestHost) -> Response {
    let Some(front) = front(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let urls = Urls::new(front.base(&host));
    directory_for(front, &urls, None)
}

async fn profile_directory(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(profile): Path<String>,
) -> Response {
    let Some(front) = front(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let urls = Urls::new(front.base(&host));
    if !front.profile_enabled(&profile) {
        let problem = Problem::malformed("no ACME directory for this profile");
        let mut refusal = Refusal::from(problem);
        refusal.status = Some(StatusCode::NOT_FOUND);
        return respond(front, &urls, "directory", Err(refusal));
    }
    directory_for(front, &urls, Some(&profile))
}

fn directory_for(front: &AcmeFront, urls: &Urls, profile: Option<&str>) -> Response {
    let new_order = match profile {
        Some(p) if p != front.config.profile => urls.at(&format!("/{p}/new-order")),
        _ => urls.at("/new-order"),
    };
    let mut meta = json!({
        "externalAccountRequired": front.config.eab_required,
        "profiles": std::iter::once(&front.config.profile)
            .chain(&front.config.profiles)
            .map(|p| (p.clone(), Value::from(format!("certificate profile {p}"))))
            .collect::<serde_json::Map<_, _>>(),
    });
    if !front.config.terms_of_service.is_empty() {
        meta["termsOfService"] = front.config.terms_of_service.clone().into();
    }
    if !front.config.website.is_empty() {
        meta["website"] = front.config.website.clone().into();
    }
    if !front.config.caa_identities.is_empty() {
        meta["caaIdentities"] = front.config.caa_identities.clone().into();
    }
    let body = json!({
        "newNonce": urls.at("/new-nonce"),
        "newAccount": urls.at("/new-account"),
        "newOrder": new_order,
        "revokeCert": urls.at("/revoke-cert"),
        "keyChange": urls.at("/key-change"),
        "renewalInfo": urls.at("/renewal-info"),
        "meta": meta,
    });
    // The directory is not a POST answer: no nonce needed, but harmless; clients cache it.
    respond(
        front,
        urls,
        "directory",
        Ok(Answer::json(StatusCode::OK, body)),
    )
}

/// `HEAD` and `GET /acme/new-nonce` (RFC 8555 section 7.2): 200 and 204, with the nonce.
async fn new_nonce_head(state: State<Arc<AppState>>, host: RequestHost) -> Response {
    nonce_answer(&state, &host, StatusCode::OK)
}

async fn new_nonce_get(state: State<Arc<AppState>>, host: RequestHost) -> Response {
    nonce_answer(&state, &host, StatusCode::NO_CONTENT)
}

fn nonce_answer(state: &AppState, host: &RequestHost, status: StatusCode) -> Response {
    let Some(front) = front(state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let urls = Urls::new(front.base(host));
    let answer = Answer {
        status,
        headers: Vec::new(),
        body: Body::Empty,
    };
    respond(front, &urls, "new-nonce", Ok(answer))
}

/// Runs a POST handler: authentication, then `handle` with the request, then the answer.
async fn post_with<F, Fut>(
    state: &AppState,
    host: &RequestHost,
    path: &str,
    resource: &'static str,
    form: KeyForm,
    body: Bytes,
    handle: F,
) -> Response
where
    F: FnOnce(Arc<AcmeFront>, Urls, Requester) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    let Some(front) = front(state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let urls = Urls::new(front.base(host));
    let url = urls.at(path);
    if !host.jose {
        // RFC 8555 section 6.2: any other Content-Type is 415.
        let mut refusal = Refusal::from(Problem::malformed(format!(
            "the request's Content-Type must be {JOSE_JSON}"
        )));
        refusal.status = Some(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        return respond(front, &urls, resource, Err(refusal));
    }
    let result = match front.authenticate(&urls, &url, &body, form) {
        Ok(requester) => handle(front.clone(), urls.clone(), requester).await,
        Err(refusal) => Err(refusal),
    };
    respond(front, &urls, resource, result)
}

/// The ACME routes, mounted on the API router when `[acme] enabled`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/acme/directory", get(directory))
        .route("/acme/{profile}/directory", get(profile_directory))
        .route("/acme/new-nonce", get(new_nonce_get).head(new_nonce_head))
        .route("/acme/new-account", post(account::new_account))
        .route("/acme/acct/{id}", post(account::account))
        .route("/acme/acct/{id}/orders", post(account::orders))
        .route("/acme/new-order", post(order::new_order))
        .route("/acme/{profile}/new-order", post(order::new_profile_order))
        .route("/acme/order/{id}", post(order::order))
        .route("/acme/order/{id}/finalize", post(order::finalize))
        .route("/acme/authz/{id}", post(authz::authz))
        .route("/acme/chall/{id}/{kind}", post(authz::challenge))
        .route("/acme/cert/{serial}", post(cert::certificate))
        .route("/acme/revoke-cert", post(cert::revoke))
        .route("/acme/key-change", post(account::key_change))
        .route("/acme/renewal-info/{id}", get(cert::renewal_info))
}

/// The route templates of [`routes`], for the access table.
pub const ROUTES: &[&str] = &[
    "/acme/directory",
    "/acme/{profile}/directory",
    "/acme/new-nonce",
    "/acme/new-account",
    "/acme/acct/{id}",
    "/acme/acct/{id}/orders",
    "/acme/new-order",
    "/acme/{profile}/new-order",
    "/acme/order/{id}",
    "/acme/order/{id}/finalize",
    "/acme/authz/{id}",
    "/acme/chall/{id}/{kind}",
    "/acme/cert/{serial}",
    "/acme/revoke-cert",
    "/acme/key-change",
    "/acme/renewal-info/{id}",
];

/// The answer to an ACME request refused by the server's rate limits before it reached the
/// ACME front end: a `rateLimited` problem document (RFC 8555 section 6.6), 429.
pub fn rate_limited(detail: &str) -> Response {
    let problem = Problem::new(ProblemType::RateLimited, detail);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/problem+json")],
        problem.to_json().to_string(),
    )
        .into_response()
}
