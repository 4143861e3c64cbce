//! API tokens and roles.
//!
//! A token is 32 random bytes, shown once as `cat_` + base64url. The store keeps only its
//! SHA-256, so lookups go by hash: the secret itself is never compared byte by byte, and a
//! stolen database holds no usable token.
//!
//! A token's name is unique for ever (the store refuses a name any token ever had, revoked
//! or not), and certificates and enrollments belong to the token whose name they record: so
//! no new token can inherit another's certificates. Tokens may expire and be revoked; such a
//! token no longer authenticates (401).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ca_core::store::{Storage, TokenRecord};
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
    /// Issues subordinate CA certificates from CA profiles (`[profiles.NAME.ca]`), and
    /// revokes those it requested; nothing else. Its tokens come only from the command line
    /// (`ca-server token create --role ca-admin`): no API call, first start or client
    /// certificate grants it (docs/SECURITY.md).
    CaAdmin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Ra, Role::Auditor, Role::Operator, Role::CaAdmin];

    /// The role's name as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ra => "ra",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::CaAdmin => "ca-admin",
        }
    }

    /// Whether a running server may grant the role: to a token an operator creates (`POST
    /// /v1/tokens`), to a bootstrap token of the first start, to a `[[tls.clients]]` client
    /// certificate. Every role but [`Role::CaAdmin`], which only `ca-server token create`
    /// grants, with the store in the hands of whoever runs it.
    pub fn granted_online(self) -> bool {
        self != Role::CaAdmin
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// Written as its name (`ra`, `auditor`, `operator`, `ca-admin`).
impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Read from its name, as the configuration gives a `[[tls.clients]]` entry its role: a role a
/// running server may grant ([`Role::granted_online`]); `ca-admin` and any other string are
/// errors that list those roles.
impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match Role::parse(&name) {
            Some(role) if role.granted_online() => Ok(role),
            Some(role) => Err(serde::de::Error::custom(format!(
                "role {} is granted only to tokens made by `ca-server token create`, never to \
                 a client certificate (allowed: ra, auditor, operator)",
                role.name()
            ))),
            None => Err(serde::de::Error::custom(format!(
                "unknown role {name:?} (allowed: ra, auditor, operator)"
            ))),
        }
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

/// Token names the CA keeps for its own actors and requesters: `ca-server`
/// ([`crate::datadir::ACTOR`]), and every name that starts with `(` (`(public)`, `(ca)`,
/// `(upgrade)`).
fn reserved_name(name: &str) -> bool {
    name == crate::datadir::ACTOR || name.starts_with('(')
}

/// Draws a token for a role and a name (1 to 128 printable characters) that does not expire.
pub fn new_token(role: Role, name: &str) -> Result<NewToken, CaError> {
    new_token_expiring(role, name, None)
}

/// Draws a token for a role and a name (1 to 128 printable characters, not reserved) that
/// expires at `expires_at` (Unix seconds), if given.
pub fn new_token_expiring(
    role: Role,
    name: &str,
    expires_at: Option<i64>,
) -> Result<NewToken, CaError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(CaError::InvalidRequest(
            "a token name must have 1 to 128 printable characters".into(),
        ));
    }
    if reserved_name(name) {
        return Err(CaError::InvalidRequest(format!(
            "the token name {name:?} is reserved for the CA itself (`{}` and names starting \
             with `(`)",
            crate::datadir::ACTOR
        )));
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("cat_{}", URL_SAFE_NO_PAD.encode(secret));
    let record = TokenRecord {
        name: name.to_string(),
        role: role.name().to_string(),
        created_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        id: ca_core::store::new_token_id()?,
        expires_at,
        revoked_at: None,
    };
    Ok(NewToken {
        hash: token_hash(&token),
        token,
        record,
    })
}

/// Creates a token with a role and a name directly in a store that no server has open
/// (first start, the command line), with its audit entry under `actor`, and returns the token
/// (the only time it exists outside the caller's hands). A name that is or was taken is
/// refused ([`CaError::TokenNameTaken`]).
pub fn create_token(
    store: &dyn Storage,
    role: Role,
    name: &str,
    actor: &str,
) -> Result<String, CaError> {
    create_token_expiring(store, role, name, actor, None)
}

/// [`create_token`] for a token that expires at `expires_at` (Unix seconds), if given.
pub fn create_token_expiring(
    store: &dyn Storage,
    role: Role,
    name: &str,
    actor: &str,
    expires_at: Option<i64>,
) -> Result<String, CaError> {
    let new = new_token_expiring(role, name, expires_at)?;
    store.put_token(&new.hash, &new.record, actor)?;
    Ok(new.token)
}

/// Looks up the caller of a bearer token; `None` for an unknown, revoked or expired token.
pub fn authenticate(store: &dyn Storage, token: &str) -> Result<Option<Caller>, CaError> {
    let hash = token_hash(token);
    let Some(record) = store.token(&hash)? else {
        return Ok(None);
    };
    if !record.is_active(time::OffsetDateTime::now_utc().unix_timestamp()) {
        return Ok(None);
    }
    let role = Role::parse(&record.role)
        .ok_or_else(|| CaError::Storage(format!("token with unknown role {:?}", record.role)))?;
    Ok(Some(Caller {
        name: record.name,
        role,
        token_hash: hash,
    }))
}

/// Whether `caller` is the requester recorded as `requester` (a certificate's or an
/// enrollment's): the names match and the store's name index gives that name to the caller's
/// own token. A caller without a token (a mapped client certificate) owns only names that no
/// token holds.
pub fn owns(store: &dyn Storage, caller: &Caller, requester: &str) -> Result<bool, CaError> {
    if caller.name != requester {
        return Ok(false);
    }
    Ok(store
        .token_name_holder(requester)?
        .is_none_or(|holder| holder == caller.token_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_admin_is_a_role_only_the_command_line_grants() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Some(role));
            assert_eq!(role.granted_online(), role != Role::CaAdmin, "{role:?}");
        }
        assert_eq!(Role::parse("ca-admin"), Some(Role::CaAdmin));
        assert_eq!(Role::parse("admin"), None);
        // The configuration reads roles for client certificates: ca-admin is not one.
        #[derive(Debug, serde::Deserialize)]
        struct Entry {
            #[allow(dead_code)]
            role: Role,
        }
        let e = toml::from_str::<Entry>("role = \"ca-admin\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ca-server token create"), "{e}");
        let ok = toml::from_str::<Entry>("role = \"operator\"").unwrap();
        assert_eq!(ok.role, Role::Operator);
    }
}
