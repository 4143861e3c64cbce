//! Multi-perspective validation (CA/B Forum Baseline Requirements 3.2.2.9, as Boulder's
//! remote VAs): the local [`Va`] is the primary perspective, remote agents ([`RemoteVa`]) the
//! others. Every check runs on all of them at once; its outcome is:
//!
//! - the primary's problem when the primary fails;
//! - otherwise success when at least `quorum` remote perspectives succeed (so `remotes -
//!   quorum` may fail, Boulder's "maximum remote failures"); a remote that errors or does not
//!   answer in time counts as a failure;
//! - otherwise a problem saying how many perspectives agreed and what each remote found: of the
//!   failing remotes' type when they all share one (Boulder: "During secondary validation"),
//!   `unauthorized` when they differ, with one subproblem per failing remote.
//!
//! With no remote, [`Perspectives`] is the local [`Va`] alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_acme::{Problem, ProblemType, Subproblem};

use crate::{Challenge, Ident, RemoteVa, Va, VaError, ValidationRecord};

/// A boxed future, as [`Perspective`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One network perspective: the local [`Va`], a [`RemoteVa`], or a stand-in in tests.
pub trait Perspective: Send + Sync {
    /// How logs, problems and metrics name it (`local`, an agent's URL).
    fn name(&self) -> &str;

    /// [`Va::validate`] from this perspective.
    fn validate<'a>(
        &'a self,
        challenge: Challenge,
        ident: &'a Ident,
        token: &'a str,
        key_authorization: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ValidationRecord>, Problem>>;

    /// [`Va::check_caa`] from this perspective.
    fn check_caa<'a>(
        &'a self,
        ident: &'a Ident,
        wildcard: bool,
        identities: &'a [String],
        account_uri: &'a str,
        method: Challenge,
    ) -> BoxFuture<'a, Result<(), Problem>>;
}

impl Perspective for Va {
    fn name(&self) -> &str {
        "local"
    }

    fn validate<'a>(
        &'a self,
        challenge: Challenge,
        ident: &'a Ident,
        token: &'a str,
        key_authorization: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ValidationRecord>, Problem>> {
        Box::pin(Va::validate(
            self,
            challenge,
            ident,
            token,
            key_authorization,
        ))
    }

    fn check_caa<'a>(
        &'a self,
        ident: &'a Ident,
        wildcard: bool,
        identities: &'a [String],
        account_uri: &'a str,
        method: Challenge,
    ) -> BoxFuture<'a, Result<(), Problem>> {
        Box::pin(Va::check_caa(
            self,
            ident,
            wildcard,
            identities,
            account_uri,
            method,
        ))
    }
}

impl Perspective for RemoteVa {
    fn name(&self) -> &str {
        self.url()
    }

    fn validate<'a>(
        &'a self,
        challenge: Challenge,
        ident: &'a Ident,
        token: &'a str,
        key_authorization: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ValidationRecord>, Problem>> {
        Box::pin(RemoteVa::validate(
            self,
            challenge,
            ident,
            token,
            key_authorization,
        ))
    }

    fn check_caa<'a>(
        &'a self,
        ident: &'a Ident,
        wildcard: bool,
        identities: &'a [String],
        account_uri: &'a str,
        method: Challenge,
    ) -> BoxFuture<'a, Result<(), Problem>> {
        Box::pin(RemoteVa::check_caa(
            self,
            ident,
            wildcard,
            identities,
            account_uri,
            method,
        ))
    }
}

/// What a perspective checked, for [`Observer`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A challenge.
    Validation,
    /// CAA.
    Caa,
}

impl Check {
    /// `validation` or `caa`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Validation => "validation",
            Check::Caa => "caa",
        }
    }
}

/// Told each perspective's outcome of each check: the check, the perspective's name, and
/// `valid` or the problem type's name (`connection`, `serverInternal` for an agent that could
/// not be asked, ...). For a metric.
pub type Observer = Arc<dyn Fn(Check, &str, &str) + Send + Sync>;

/// The local [`Va`] and the remote perspectives, with the quorum rule of the module
/// documentation. Cheap to clone.
#[derive(Clone)]
pub struct Perspectives {
    primary: Arc<dyn Perspective>,
    remotes: Vec<Arc<dyn Perspective>>,
    quorum: usize,
    /// The longest a remote perspective is waited for; beyond, it counts as failed.
    remote_timeout: Duration,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Perspectives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Perspectives")
            .field("primary", &self.primary.name())
            .field(
                "remotes",
                &self.remotes.iter().map(|r| r.name()).collect::<Vec<_>>(),
            )
            .field("quorum", &self.quorum)
            .finish_non_exhaustive()
    }
}

impl Perspectives {
    /// The local VA alone: [`Va`]'s behaviour.
    pub fn local(va: Va) -> Self {
        Perspectives {
            primary: Arc::new(va),
            remotes: Vec::new(),
            quorum: 0,
            remote_timeout: Duration::MAX,
            observer: None,
        }
    }

    /// The quorum when none is configured: all but one remote when there are three or more,
    /// else all of them.
    pub fn default_quorum(remotes: usize) -> usize {
        if remotes >= 3 {
            remotes - 1
        } else {
            remotes
        }
    }

    /// `va` as the primary with `remotes`, `quorum` of which must agree (at least 1 and at
    /// most their number when there are any), each waited for `remote_timeout` at most.
    pub fn new(
        va: Va,
        remotes: Vec<RemoteVa>,
        quorum: usize,
        remote_timeout: Duration,
    ) -> Result<Self, VaError> {
        let remotes = remotes
            .into_iter()
            .map(|r| Arc::new(r) as Arc<dyn Perspective>)
            .collect();
        Self::with_perspectives(Arc::new(va), remotes, quorum, remote_timeout)
    }

    /// [`Perspectives::new`] with any [`Perspective`]s (tests stand in for agents this way).
    pub fn with_perspectives(
        primary: Arc<dyn Perspective>,
        remotes: Vec<Arc<dyn Perspective>>,
        quorum: usize,
        remote_timeout: Duration,
    ) -> Result<Self, VaError> {
        if !remotes.is_empty() && quorum == 0 {
            return Err(VaError::Remote("the quorum must be at least 1".into()));
        }
        if quorum > remotes.len() {
            return Err(VaError::Remote(format!(
                "a quorum of {quorum} needs at least {quorum} remote agents; there are {}",
                remotes.len()
            )));
        }
        if !remotes.is_empty() && remote_timeout.is_zero() {
            return Err(VaError::Remote("the timeout must not be zero".into()));
        }
        Ok(Perspectives {
            primary,
            remotes,
            quorum,
            remote_timeout,
            observer: None,
        })
    }

    /// The same, telling `observer` every perspective's outcome.
    pub fn observed(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The remote perspectives' names.
    pub fn remotes(&self) -> Vec<&str> {
        self.remotes.iter().map(|r| r.name()).collect()
    }

    /// How many remote perspectives must agree.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// [`Va::validate`] from every perspective: the primary's records, or a problem as the
    /// module documentation says.
    pub async fn validate(
        &self,
        challenge: Challenge,
        ident: &Ident,
        token: &str,
        key_authorization: &str,
    ) -> Result<Vec<ValidationRecord>, Problem> {
        self.run(Check::Validation, ident, |p| {
            p.validate(challenge, ident, token, key_authorization)
        })
        .await
    }

    /// [`Va::check_caa`] from every perspective, decided as [`Perspectives::validate`].
    pub async fn check_caa(
        &self,
        ident: &Ident,
        wildcard: bool,
        identities: &[String],
        account_uri: &str,
        method: Challenge,
    ) -> Result<(), Problem> {
        self.run(Check::Caa, ident, |p| {
            p.check_caa(ident, wildcard, identities, account_uri, method)
        })
        .await
    }

    async fn run<'a, T, F>(&'a self, check: Check, ident: &Ident, ask: F) -> Result<T, Problem>
    where
        F: Fn(&'a dyn Perspective) -> BoxFuture<'a, Result<T, Problem>>,
    {
        if self.remotes.is_empty() {
            let result = ask(self.primary.as_ref()).await;
            self.observe(check, self.primary.name(), &result);
            return result;
        }
        let started = Instant::now();
        let timeout = self.remote_timeout;
        let remotes = self.remotes.iter().map(|remote| {
            let asked = ask(remote.as_ref());
            async move {
                let result = match tokio::time::timeout(timeout, asked).await {
                    Ok(result) => result.map(drop),
                    Err(_) => Err(Problem::new(
                        ProblemType::ServerInternal,
                        format!(
                            "the remote validation agent {} did not answer within {timeout:?}",
                            remote.name()
                        ),
                    )),
                };
                (remote.name(), result)
            }
        });
        let (primary, remotes) = tokio::join!(
            ask(self.primary.as_ref()),
            futures_util::future::join_all(remotes)
        );
        self.observe(check, self.primary.name(), &primary);
        for (name, result) in &remotes {
            self.observe(check, name, result);
            match result {
                Ok(()) => tracing::info!(
                    check = check.name(),
                    %ident,
                    perspective = %name,
                    outcome = "valid",
                    "remote perspective"
                ),
                Err(problem) => tracing::warn!(
                    check = check.name(),
                    %ident,
                    perspective = %name,
                    outcome = problem.kind.name(),
                    detail = %problem.detail,
                    "remote perspective failed"
                ),
            }
        }
        let decided = decide(
            primary.as_ref().map(drop).map_err(Clone::clone),
            &remotes,
            self.quorum,
            check,
            ident,
        );
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match (&decided, &primary) {
            (Err(problem), Ok(_)) => tracing::warn!(
                check = check.name(),
                %ident,
                quorum = self.quorum,
                elapsed_ms,
                %problem,
                "remote perspectives did not reach the quorum"
            ),
            _ => tracing::debug!(check = check.name(), %ident, elapsed_ms, "perspectives"),
        }
        decided.and(primary)
    }

    fn observe<T>(&self, check: Check, name: &str, result: &Result<T, Problem>) {
        if let Some(observer) = &self.observer {
            let outcome = match result {
                Ok(_) => "valid",
                Err(problem) => problem.kind.name(),
            };
            observer(check, name, outcome);
        }
    }
}

/// The quorum rule: the primary's problem if it failed; success if at least `quorum` remotes
/// succeeded; otherwise the problem of the module documentation.
fn decide(
    primary: Result<(), Problem>,
    remotes: &[(&str, Result<(), Problem>)],
    quorum: usize,
    check: Check,
    ident: &Ident,
) -> Result<(), Problem> {
    primary?;
    let agreed = remotes.iter().filter(|(_, r)| r.is_ok()).count();
    if agreed >= quorum {
        return Ok(());
    }
    let failures: Vec<(&str, &Problem)> = remotes
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|p| (*name, p)))
        .collect();
    let kind = match failures.first() {
        Some((_, first)) if failures.iter().all(|(_, p)| p.kind == first.kind) => first.kind,
        _ => ProblemType::Unauthorized,
    };
    let outcomes = remotes
        .iter()
        .map(|(name, r)| match r {
            Ok(()) => format!("{name}: valid"),
            Err(p) => format!("{name}: {}: {}", p.kind.name(), p.detail),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let what = match check {
        Check::Validation => "validation",
        Check::Caa => "CAA check",
    };
    let mut problem = Problem::new(
        kind,
        format!(
            "During secondary {what} of {ident}: {agreed} of {} remote perspectives agreed with \
             the primary, {quorum} needed ({outcomes})",
            remotes.len()
        ),
    );
    problem.subproblems = failures
        .iter()
        .map(|(name, p)| Subproblem {
            kind: p.kind,
            detail: format!("{name}: {}", p.detail),
            identifier: Some(ident.to_identifier()),
        })
        .collect();
    Err(problem)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// A perspective that answers `outcome` (after `delay`), counting the calls.
    struct Fake {
        name: String,
        outcome: Option<ProblemType>,
        delay: Duration,
        calls: AtomicUsize,
    }

    fn fake(name: &str, outcome: Option<ProblemType>) -> Arc<Fake> {
        Arc::new(Fake {
            name: name.into(),
            outcome,
            delay: Duration::ZERO,
            calls: AtomicUsize::new(0),
        })
    }

    impl Fake {
        async fn answer(&self) -> Result<(), Problem> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            match self.outcome {
                None => Ok(()),
                Some(kind) => Err(Problem::new(kind, format!("{} says no", self.name))),
            }
        }
    }

    impl Perspective for Fake {
        fn name(&self) -> &str {
            &self.name
        }
        fn validate<'a>(
            &'a self,
            _: Challenge,
            ident: &'a Ident,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Vec<ValidationRecord>, Problem>> {
            Box::pin(async move {
                self.answer().await?;
                Ok(vec![ValidationRecord {
                    url: None,
                    hostname: format!("{ident} from {}", self.name),
                    port: None,
                    addresses_resolved: Vec::new(),
                    address_used: None,
                }])
            })
        }
        fn check_caa<'a>(
            &'a self,
            _: &'a Ident,
            _: bool,
            _: &'a [String],
            _: &'a str,
            _: Challenge,
        ) -> BoxFuture<'a, Result<(), Problem>> {
            Box::pin(self.answer())
        }
    }

    fn ident() -> Ident {
        Ident::Dns("example.com".into())
    }

    fn perspectives(
        primary: &Arc<Fake>,
        remotes: &[Arc<Fake>],
        quorum: usize,
    ) -> Result<Perspectives, VaError> {
        Perspectives::with_perspectives(
            primary.clone(),
            remotes
                .iter()
                .map(|r| r.clone() as Arc<dyn Perspective>)
                .collect(),
            quorum,
            Duration::from_secs(5),
        )
    }

    async fn validate(p: &Perspectives) -> Result<Vec<ValidationRecord>, Problem> {
        p.validate(Challenge::Http01, &ident(), "t", "t.k").await
    }

    #[test]
    fn the_default_quorum_allows_one_failure_from_three_remotes() {
        let quorums: Vec<usize> = (0..6).map(Perspectives::default_quorum).collect();
        assert_eq!(quorums, [0, 1, 2, 2, 3, 4]);
    }

    #[test]
    fn a_quorum_beyond_the_remotes_or_zero_is_refused() {
        let primary = fake("local", None);
        let two = [fake("a", None), fake("b", None)];
        assert!(perspectives(&primary, &two, 2).is_ok());
        assert!(matches!(
            perspectives(&primary, &two, 3),
            Err(VaError::Remote(_))
        ));
        assert!(matches!(
            perspectives(&primary, &two, 0),
            Err(VaError::Remote(_))
        ));
        assert!(perspectives(&primary, &[], 0).is_ok());
        assert!(perspectives(&primary, &[], 1).is_err());
    }

    #[tokio::test]
    async fn success_needs_the_quorum_of_remote_successes() {
        let primary = fake("local", None);
        let remotes = [
            fake("https://a", None),
            fake("https://b", Some(ProblemType::Connection)),
            fake("https://c", None),
        ];
        // Two of three agree: a quorum of 1 or 2 passes, with the primary's records.
        for quorum in [1, 2] {
            let p = perspectives(&primary, &remotes, quorum).unwrap();
            let records = validate(&p).await.unwrap();
            assert_eq!(
                records[0].hostname, "example.com from local",
                "quorum {quorum}"
            );
            p.check_caa(&ident(), false, &[], "acct", Challenge::Http01)
                .await
                .unwrap();
        }
        // A quorum of 3 fails: the only failure's type, the count and every outcome named.
        let p = perspectives(&primary, &remotes, 3).unwrap();
        let problem = validate(&p).await.unwrap_err();
        assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
        assert!(
            problem
                .detail
                .contains("2 of 3 remote perspectives agreed with the primary, 3 needed"),
            "{problem}"
        );
        for outcome in [
            "https://a: valid",
            "https://b: connection: https://b says no",
            "https://c: valid",
        ] {
            assert!(problem.detail.contains(outcome), "{outcome}: {problem}");
        }
        assert_eq!(problem.subproblems.len(), 1);
        assert_eq!(
            problem.subproblems[0].detail,
            "https://b: https://b says no"
        );
        assert_eq!(
            problem.subproblems[0].identifier.as_ref().unwrap().value,
            "example.com"
        );
        let caa = p
            .check_caa(&ident(), true, &[], "acct", Challenge::Dns01)
            .await
            .unwrap_err();
        assert!(
            caa.detail.starts_with("During secondary CAA check"),
            "{caa}"
        );
        // Every perspective was asked each time, the primary included.
        assert_eq!(primary.calls.load(Ordering::SeqCst), 6);
        assert!(remotes.iter().all(|r| r.calls.load(Ordering::SeqCst) == 6));
    }

    #[tokio::test]
    async fn failures_of_different_types_are_unauthorized() {
        let primary = fake("local", None);
        let remotes = [
            fake("https://a", Some(ProblemType::Dns)),
            fake("https://b", Some(ProblemType::Connection)),
        ];
        let p = perspectives(&primary, &remotes, 1).unwrap();
        let problem = validate(&p).await.unwrap_err();
        assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
        assert!(problem.detail.contains("0 of 2 remote perspectives agreed"));
        assert_eq!(problem.subproblems.len(), 2);
    }

    #[tokio::test]
    async fn the_primary_failing_is_final() {
        let primary = fake("local", Some(ProblemType::IncorrectResponse));
        let remotes = [fake("https://a", None), fake("https://b", None)];
        let p = perspectives(&primary, &remotes, 2).unwrap();
        let problem = validate(&p).await.unwrap_err();
        assert_eq!(problem.kind, ProblemType::IncorrectResponse);
        assert_eq!(problem.detail, "local says no");
    }

    #[tokio::test]
    async fn a_remote_that_does_not_answer_in_time_fails() {
        let primary = fake("local", None);
        let slow = Arc::new(Fake {
            name: "https://slow".into(),
            outcome: None,
            delay: Duration::from_secs(60),
            calls: AtomicUsize::new(0),
        });
        let remotes = [fake("https://a", None), slow];
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let remotes: Vec<Arc<dyn Perspective>> = remotes
            .iter()
            .map(|r| r.clone() as Arc<dyn Perspective>)
            .collect();
        let short = Duration::from_millis(200);
        let p = Perspectives::with_perspectives(primary.clone(), remotes.clone(), 2, short)
            .unwrap()
            .observed(Arc::new(move |check, name, outcome| {
                record
                    .lock()
                    .unwrap()
                    .push(format!("{} {name} {outcome}", check.name()));
            }));
        let problem = validate(&p).await.unwrap_err();
        assert_eq!(problem.kind, ProblemType::ServerInternal, "{problem}");
        assert!(
            problem.detail.contains("did not answer within 200ms"),
            "{problem}"
        );
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            [
                "validation https://a valid",
                "validation https://slow serverInternal",
                "validation local valid"
            ]
        );
        // With a quorum of 1, the slow one is one allowed failure.
        let p = Perspectives::with_perspectives(primary, remotes, 1, short).unwrap();
        validate(&p).await.unwrap();
    }

    #[tokio::test]
    async fn without_remotes_the_primary_decides_alone() {
        let primary = fake("local", None);
        let p = perspectives(&primary, &[], 0).unwrap();
        validate(&p).await.unwrap();
        let failing = fake("local", Some(ProblemType::Dns));
        let p = perspectives(&failing, &[], 0).unwrap();
        assert_eq!(validate(&p).await.unwrap_err().kind, ProblemType::Dns);
    }
}
