//! The ACME objects as the front end keeps them through the engine's versioned object store
//! ([`ca_core::store::AcmeWrite`]): JSON documents, so that fields can be added with
//! defaults, under random 16-byte ids (base64url in URLs).

use ca_acme::{AccountStatus, AcmeIdentifier, AuthzStatus, ChallengeStatus, OrderStatus, Problem};
use ca_core::engine::Engine;
use ca_core::error::CaError;
use ca_core::store::{AcmeKind, AcmePut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An object id: 16 random bytes.
pub type Id = [u8; 16];

/// An account (RFC 8555 section 7.1.2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The account key, as its canonical JWK (RFC 7638).
    pub key: String,
    /// Its status.
    pub status: AccountStatus,
    /// `mailto:` URLs.
    #[serde(default)]
    pub contact: Vec<String>,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// The EAB key id it was bound with, if any.
    #[serde(default)]
    pub eab_kid: Option<String>,
    /// Who requests its certificates: the RA that owns the EAB key, or the account itself
    /// (`(acme <id>)`: a name no token may take, since names starting with `(` are the
    /// CA's own).
    pub requester: String,
    /// The SHA-256 of the RA's token (scopes idempotency keys), zero for the account itself.
    #[serde(default)]
    pub requester_token_hash: [u8; 32],
}

/// An identifier as stored: its type and value as an order shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredIdentifier {
    /// `dns` or `ip`.
    pub kind: String,
    /// The value (`*.example.com` for a wildcard).
    pub value: String,
}

impl StoredIdentifier {
    /// The stored form of `id`.
    pub fn from_identifier(id: &AcmeIdentifier) -> Self {
        StoredIdentifier {
            kind: id.kind().into(),
            value: id.value(),
        }
    }

    /// Reads it back.
    pub fn identifier(&self) -> Result<AcmeIdentifier, Problem> {
        match self.kind.as_str() {
            "ip" => self
                .value
                .parse()
                .map(AcmeIdentifier::Ip)
                .map_err(|_| Problem::malformed("a stored ip identifier does not parse")),
            _ => AcmeIdentifier::dns(&self.value),
        }
    }
}

/// An order (RFC 8555 section 7.1.3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The account that created it.
    pub account: Id,
    /// The profile it issues under.
    pub profile: String,
    /// Its identifiers.
    pub identifiers: Vec<StoredIdentifier>,
    /// Its status as last stored: `pending` is refined from the authorizations when read.
    pub status: OrderStatus,
    /// When it expires, Unix seconds.
    pub expires: i64,
    /// Its authorizations.
    pub authorizations: Vec<Id>,
    /// Why it is invalid, as a problem document.
    #[serde(default)]
    pub error: Option<Value>,
    /// The certificate's serial (hex) once valid.
    #[serde(default)]
    pub serial: Option<String>,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// The ARI CertID of the certificate it replaces (RFC 9773 section 5).
    #[serde(default)]
    pub replaces: Option<String>,
}

/// A challenge of an authorization (RFC 8555 section 8).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// `http-01`, `dns-01` or `tls-alpn-01`.
    pub kind: String,
    /// The token (base64url).
    pub token: String,
    /// Its status.
    pub status: ChallengeStatus,
    /// When it was validated, Unix seconds.
    #[serde(default)]
    pub validated: Option<i64>,
    /// When its validation started, Unix seconds (a validation that never finished, its
    /// node gone, is started again after this plus the validation timeout).
    #[serde(default)]
    pub started: Option<i64>,
    /// Why it failed, as a problem document.
    #[serde(default)]
    pub error: Option<Value>,
    /// What validation saw (`validationRecord`).
    #[serde(default)]
    pub validation_record: Option<Value>,
}

/// An authorization (RFC 8555 section 7.1.4).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthzRecord {
    /// The account it belongs to.
    pub account: Id,
    /// The identifier (the base name of a wildcard).
    pub identifier: StoredIdentifier,
    /// Whether it was created for a wildcard order (then only dns-01 is offered).
    pub wildcard: bool,
    /// Its status as last stored: `pending` and `valid` turn `expired` when read after
    /// `expires`.
    pub status: AuthzStatus,
    /// When it expires, Unix seconds.
    pub expires: i64,
    /// Its challenges.
    pub challenges: Vec<ChallengeRecord>,
}

/// An External Account Binding key (RFC 8555 section 7.3.4), created by an operator for an
/// RA.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EabKeyRecord {
    /// The MAC key. It must be kept to verify MACs, so unlike tokens it is not stored as a
    /// hash; it binds one account once and is useless afterwards.
    #[serde(with = "serde_bytes")]
    pub mac_key: Vec<u8>,
    /// The RA (token name) the accounts bound with it belong to.
    pub owner: String,
    /// The SHA-256 of that RA's token.
    pub owner_token_hash: [u8; 32],
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// The account it bound, once used.
    #[serde(default)]
    pub bound_account: Option<Id>,
}

/// A record of a kind the store keeps.
pub trait Record: Serialize + DeserializeOwned {
    /// Its kind.
    const KIND: AcmeKind;
}

impl Record for AccountRecord {
    const KIND: AcmeKind = AcmeKind::Account;
}
impl Record for OrderRecord {
    const KIND: AcmeKind = AcmeKind::Order;
}
impl Record for AuthzRecord {
    const KIND: AcmeKind = AcmeKind::Authz;
}
impl Record for EabKeyRecord {
    const KIND: AcmeKind = AcmeKind::EabKey;
}

/// A record read with the version it was stored at: what a change must expect.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    /// The stored version.
    pub version: u64,
    /// The record.
    pub record: T,
}

/// Reads the record of type `T` with this id.
pub fn load<T: Record>(engine: &Engine, id: &[u8]) -> Result<Option<Versioned<T>>, CaError> {
    let Some(object) = engine.acme_object(T::KIND, id)? else {
        return Ok(None);
    };
    let record = serde_json::from_slice(&object.value)
        .map_err(|e| CaError::record("decoding an ACME record", e))?;
    Ok(Some(Versioned {
        version: object.version,
        record,
    }))
}

/// A put of `record`: a new object when `expect` is `None`, else a change of the version
/// `expect`.
pub fn put<T: Record>(id: &[u8], record: &T, expect: Option<u64>) -> Result<AcmePut, CaError> {
    Ok(AcmePut {
        kind: T::KIND,
        id: id.to_vec(),
        expect,
        value: serde_json::to_vec(record)
            .map_err(|e| CaError::record("encoding an ACME record", e))?,
    })
}

/// The claim key of an account key's thumbprint.
pub fn thumbprint_key(thumbprint: &[u8; 32]) -> Vec<u8> {
    let mut key = b"thumbprint:".to_vec();
    key.extend_from_slice(thumbprint);
    key
}

/// The claim key of a bound EAB key id.
pub fn eab_key(kid: &str) -> Vec<u8> {
    let mut key = b"eab:".to_vec();
    key.extend_from_slice(kid.as_bytes());
    key
}

/// The claim key that names the order (and so the account) a certificate was issued for.
pub fn certificate_key(serial_hex: &str) -> Vec<u8> {
    let mut key = b"cert:".to_vec();
    key.extend_from_slice(serial_hex.as_bytes());
    key
}

/// The unique key of a certificate's replacement: held by the order that `replaces` it
/// (RFC 9773 section 5).
pub fn replaced_key(serial_hex: &str) -> Vec<u8> {
    let mut key = b"replaced:".to_vec();
    key.extend_from_slice(serial_hex.as_bytes());
    key
}

/// The list prefix of an account's orders.
pub fn orders_prefix(account: &Id) -> Vec<u8> {
    let mut key = b"orders:".to_vec();
    key.extend_from_slice(account);
    key
}

/// The list key of one order of an account: the prefix, the creation time (so that the list
/// is in creation order) and the order id.
pub fn order_link(account: &Id, created_at: i64, order: &Id) -> Vec<u8> {
    let mut key = orders_prefix(account);
    key.extend_from_slice(&(created_at.max(0) as u64).to_be_bytes());
    key.extend_from_slice(order);
    key
}

/// The list prefix of an account's valid authorizations for one identifier (reuse): the
/// identifier enters as a SHA-256, so that every key stays short.
pub fn authz_prefix(account: &Id, identifier: &StoredIdentifier) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(identifier.kind.as_bytes());
    ctx.update(b":");
    ctx.update(identifier.value.as_bytes());
    let mut key = b"authz:".to_vec();
    key.extend_from_slice(account);
    key.extend_from_slice(ctx.finish().as_ref());
    key
}

/// The list prefix of an account's failed validations of one identifier (the rate of
/// `[acme] failed_validations_per_hour`).
pub fn failures_prefix(account: &Id, identifier: &StoredIdentifier) -> Vec<u8> {
    let mut key = b"failed:".to_vec();
    key.extend_from_slice(&authz_prefix(account, identifier)[b"authz:".len()..]);
    key
}

/// The list key of a failed validation: the prefix, when it failed, the authorization's id.
pub fn failure_link(account: &Id, identifier: &StoredIdentifier, at: i64, authz: &Id) -> Vec<u8> {
    let mut key = failures_prefix(account, identifier);
    key.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
    key.extend_from_slice(authz);
    key
}

/// The list key of a valid authorization: the prefix, its expiry, its id.
pub fn authz_link(
    account: &Id,
    identifier: &StoredIdentifier,
    expires: i64,
    authz: &Id,
) -> Vec<u8> {
    let mut key = authz_prefix(account, identifier);
    key.extend_from_slice(&(expires.max(0) as u64).to_be_bytes());
    key.extend_from_slice(authz);
    key
}
