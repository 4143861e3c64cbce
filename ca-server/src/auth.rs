//! API tokens and roles.
//!
//! A token is 32 random bytes, shown once as `cat_` + base64url. The store keeps only its
//! SHA-256, so lookups go by hash: the secret itself is never compared byte by byte, and a
//! stolen database holds no usable token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ca_core::store::{Store, TokenRecord};
use ca_core::CaError;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What a token may do (API contract: Conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A registration authority: issue, renew, revoke, enrol.
    Ra,
    /// Read-only access to everything.
    Auditor,
    /// Metrics, CRL generation, administration.
    Operator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Ra, Role::Auditor, Role::Operator];

    /// The role's name as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ra => "ra",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: Role,
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
}

tokio::task_local! {
    /// The caller a verified TLS client certificate maps to, for the request being handled
    /// (set by [`crate::limits::limit`]); used when the request has no bearer token.
    pub static CERTIFICATE_CALLER: Option<Caller>;
}

/// The caller of the current request's client certificate, if any.
pub fn certificate_caller() -> Option<Caller> {
    CERTIFICATE_CALLER.try_with(Clone::clone).ok().flatten()
}

/// SHA-256 of a token, the key it is stored under.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A freshly drawn token, before it is stored.
#[derive(Debug)]
pub struct NewToken {
    /// The token, to show once.
    pub token: String,
    /// Its SHA-256, the key it is stored under.
    pub hash: [u8; 32],
    /// What is stored.
    pub record: TokenRecord,
}

/// Draws a token for a role and a name (1 to 128 printable characters).
pub fn new_token(role: Role, name: &str) -> Result<NewToken, CaError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(CaError::InvalidRequest(
            "a token name must have 1 to 128 printable characters".into(),
        ));
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("cat_{}", URL_SAFE_NO_PAD.encode(secret));
    let record = TokenRecord {
        name: name.to_string(),
        role: role.name().to_string(),
        created_at: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    Ok(NewToken {
        hash: token_hash(&token),
        token,
        record,
    })
}

/// Creates a token with a role and a name directly in a store that no server has open
/// (first start, the command line), with its audit entry under `actor`, and returns the token
/// (the only time it exists outside the caller's hands).
pub fn create_token(store: &Store, role: Role, name: &str, actor: &str) -> Result<String, CaError> {
    let new = new_token(role, name)?;
    store.put_token(&new.hash, &new.record, actor)?;
    Ok(new.token)
}

/// Looks up the caller of a bearer token; `None` for an unknown token.
pub fn authenticate(store: &Store, token: &str) -> Result<Option<Caller>, CaError> {
    let hash = token_hash(token);
    let Some(record) = store.token(&hash)? else {
        return Ok(None);
    };
    let role = Role::parse(&record.role)
        .ok_or_else(|| CaError::Storage(format!("token with unknown role {:?}", record.role)))?;
    Ok(Some(Caller {
        name: record.name,
        role,
        token_hash: hash,
    }))
}
