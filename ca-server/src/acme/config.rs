//! `[acme]`: the ACME front end (RFC 8555), off unless enabled.

use serde::{Deserialize, Serialize};

/// The ACME front end's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// Serve ACME at `/acme/directory`.
    pub enabled: bool,
    /// The profile of `/acme/directory`'s orders.
    pub profile: String,
    /// Further profiles, each with its own `/acme/{profile}/directory`, and named in every
    /// directory's `meta.profiles` for the `profile` field of a newOrder.
    pub profiles: Vec<String>,
    /// Accounts must be bound to an RA by External Account Binding (RFC 8555 section 7.3.4).
    /// `false` makes an open ACME service whose certificates are requested by the accounts
    /// themselves.
    pub eab_required: bool,
    /// The terms of service URL shown in the directory, if any.
    pub terms_of_service: String,
    /// A web site about the CA, shown in the directory, if any.
    pub website: String,
    /// The issuer domain names this CA recognizes in CAA records (RFC 8659 section 4.2);
    /// shown in the directory's `meta.caaIdentities`. Empty: CAA is not checked.
    pub caa_identities: Vec<String>,
    /// The base URL clients reach the ACME server at (`https://ca.example`), when it differs
    /// from what they send in the `Host` header (a proxy in front). Empty: the request's
    /// scheme and `Host`.
    pub base_url: String,
    /// The port http-01 validation connects to (RFC 8555 section 8.3 says 80).
    pub http01_port: u16,
    /// The port tls-alpn-01 validation connects to (RFC 8737 section 3 says 443).
    pub tlsalpn01_port: u16,
    /// The DNS resolver (`address:port`) for dns-01, CAA and the addresses of the other
    /// challenges. Empty: the system's.
    pub dns_resolver: String,
    /// Networks validation never connects to (CIDR). The default denies loopback,
    /// link-local (cloud metadata among it) and unspecified addresses; a public CA adds the
    /// private ranges; tests on loopback set it to `[]`.
    pub deny_networks: Vec<String>,
    /// Time for one validation, all its lookups, connections and redirects, in seconds.
    pub validation_timeout_secs: u64,
    /// Validations at once.
    pub validation_concurrency: usize,
    /// Validations waiting beyond those; more are refused at once.
    pub validation_queue: usize,
    /// How long the answer to a challenge waits for its validation, in milliseconds: a
    /// validation done by then is answered with its outcome (sparing the client a poll),
    /// else the answer is `processing` with `Retry-After` (0: never wait).
    pub challenge_answer_wait_ms: u64,
    /// How long a valid authorization is reused for new orders of the same account, in
    /// seconds (0: never).
    pub authz_reuse_secs: i64,
    /// How old an authorization's CAA check may be at finalize before CAA is checked again,
    /// in seconds (CA/B Forum BR 3.2.2.8 allows 8 hours; the default leaves one hour's
    /// margin). Only with `caa_identities`.
    pub caa_recheck_secs: i64,
    /// How long a new order and its pending authorizations stay usable, in seconds.
    pub order_lifetime_secs: i64,
    /// Orders one account may create per hour (0: no limit).
    pub orders_per_account_per_hour: u32,
    /// Failed validations one account may have per identifier per hour before new orders
    /// for that identifier are refused (0: no limit).
    pub failed_validations_per_hour: u32,
    /// Remote validation agents (`ca-server va`), `https://host:port` each, asked alongside
    /// the local validation (multi-perspective validation, CA/B Forum BR 3.2.2.9). Empty:
    /// local validation only.
    pub remote_vas: Vec<String>,
    /// How many remote agents must agree with the local validation. Absent: all but one when
    /// there are three or more, else all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_va_quorum: Option<usize>,
    /// The CA's client certificate (PEM) it presents to the agents.
    pub remote_va_cert: String,
    /// Its PKCS#8 key (PEM, mode 0600).
    pub remote_va_key: String,
    /// The CA certificates (PEM) the agents' server certificates chain to.
    pub remote_va_ca_file: String,
    /// How long an agent is waited for, in seconds; 0: `validation_timeout_secs` + 5.
    pub remote_va_timeout_secs: u64,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: false,
            profile: "tls-server".into(),
            profiles: Vec::new(),
            eab_required: true,
            terms_of_service: String::new(),
            website: String::new(),
            caa_identities: Vec::new(),
            base_url: String::new(),
            http01_port: 80,
            tlsalpn01_port: 443,
            dns_resolver: String::new(),
            deny_networks: vec![
                "127.0.0.0/8".into(),
                "::1/128".into(),
                "169.254.0.0/16".into(),
                "fe80::/10".into(),
                "0.0.0.0/8".into(),
                "::/128".into(),
                "fd00:ec2::254/128".into(),
            ],
            validation_timeout_secs: 10,
            validation_concurrency: 64,
            validation_queue: 1024,
            challenge_answer_wait_ms: 1_000,
            authz_reuse_secs: 86_400,
            caa_recheck_secs: 7 * 3_600,
            order_lifetime_secs: 7 * 86_400,
            orders_per_account_per_hour: 300,
            failed_validations_per_hour: 5,
            remote_vas: Vec::new(),
            remote_va_quorum: None,
            remote_va_cert: String::new(),
            remote_va_key: String::new(),
            remote_va_ca_file: String::new(),
            remote_va_timeout_secs: 0,
        }
    }
}

impl AcmeConfig {
    /// How long the CA waits for a remote agent's answer, in seconds:
    /// `remote_va_timeout_secs`, or `validation_timeout_secs` + 5 when that is 0.
    pub fn remote_timeout_secs(&self) -> u64 {
        match self.remote_va_timeout_secs {
            0 => self.validation_timeout_secs.max(1) + 5,
            secs => secs,
        }
    }

    /// The longest a validation may take, in seconds: the challenge and then CAA, each
    /// bounded by the local timeout or, with remote agents, theirs. A validation that has
    /// not stored its outcome after this (and a margin) was abandoned by its node.
    pub fn longest_validation_secs(&self) -> u64 {
        let each = if self.remote_vas.is_empty() {
            self.validation_timeout_secs.max(1)
        } else {
            self.validation_timeout_secs
                .max(1)
                .max(self.remote_timeout_secs())
        };
        2 * each
    }
}
