//! The auditor's certificate queries: filters served from the store's indexes, with stable
//! cursor paging.
//!
//! A query walks one index in key order and applies every filter to each certificate it
//! meets. The index is chosen from the filters, most selective first: a SAN or a subject
//! (`names`), revoked or held certificates (`revoked`), an expiry bound (`by_expiry`), and
//! otherwise issuance order (`issued`, starting at the first certificate issued in range).
//! Index keys never change once written, so a cursor — the index and the last key visited —
//! resumes a walk exactly where it stopped: certificates that existed when it began are
//! visited once each, whatever is issued meanwhile. A page stops after [`MAX_EXAMINED`]
//! certificates even when few matched, with a cursor to go on, so that no request scans the
//! whole store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keys::{SecureRandom, SystemRandom};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

use super::{cf, decode_seq, CertRecord, CertificateStore, RevocationStore, Store};
use crate::error::CaError;
use crate::revocation::{Revocation, Status};
use crate::serial::Serial;
use crate::store::Db;

/// Most certificates one page examines.
pub const MAX_EXAMINED: usize = 10_000;

/// Tag of a subject in the `names` index.
pub const SUBJECT_TAG: u8 = b'S';
/// Tag of a SAN in the `names` index.
pub const SAN_TAG: u8 = b'N';

/// The `names` index prefix of a subject or SAN: tag, the lower-cased value, a zero byte.
/// The key continues with the certificate's issuance sequence number.
pub fn names_prefix(tag: u8, value: &str) -> Vec<u8> {
    let lower = value.to_lowercase();
    let mut key = Vec::with_capacity(lower.len() + 10);
    key.push(tag);
    key.extend_from_slice(lower.as_bytes());
    key.push(0);
    key
}

/// The `names` index key of the certificate with issuance sequence number `seq` under
/// `prefix` (a [`names_prefix`]): the prefix, then `seq` big-endian, so that a prefix's
/// certificates are in issuance order.
pub fn names_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Filters of `GET /v1/certificates`; every one given must hold.
#[derive(Clone, Debug, Default)]
pub struct CertificateQuery {
    /// Status at `now`.
    pub status: Option<Status>,
    /// Profile name.
    pub profile: Option<String>,
    /// The subject as an RFC 4514 string, compared without regard to case.
    pub subject: Option<String>,
    /// One of the SANs (a DNS name, IP address or e-mail address), without regard to case.
    pub san: Option<String>,
    /// The requesting token's name (an RA sees only its own).
    pub requester: Option<String>,
    /// Issued at or after, Unix seconds.
    pub issued_after: Option<i64>,
    /// Issued before, Unix seconds.
    pub issued_before: Option<i64>,
    /// notAfter before, Unix seconds.
    pub expires_before: Option<i64>,
    /// The time statuses are judged at, Unix seconds.
    pub now: i64,
}

/// The index a walk follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    Issued = 1,
    Subject = 2,
    San = 3,
    Revoked = 4,
    Expiry = 5,
}

impl Walk {
    fn from_tag(tag: u8) -> Option<Walk> {
        [
            Walk::Issued,
            Walk::Subject,
            Walk::San,
            Walk::Revoked,
            Walk::Expiry,
        ]
        .into_iter()
        .find(|w| *w as u8 == tag)
    }
}

/// Where a walk stopped: the index and the last key visited. The last key may belong to a
/// certificate the caller may not see (a page examines rows it does not return), so clients
/// only ever get it sealed ([`Cursor::seal`]); [`Cursor::encode`] is the plaintext inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    walk: u8,
    key: Vec<u8>,
}

/// Length of a [`CursorKey`]'s secret.
pub const CURSOR_KEY_LEN: usize = 32;
/// Bound to every sealed cursor (with the caller's context) as associated data.
const CURSOR_AAD: &[u8] = b"ca-core query cursor v1\0";

/// The store's secret for sealing cursors with ChaCha20-Poly1305 (RFC 8439): a sealed cursor
/// reveals nothing of the key it holds, and one that was altered, forged, or handed to a caller
/// other than the one it was made for is refused.
pub struct CursorKey(LessSafeKey);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    /// A key from its secret.
    pub fn new(secret: &[u8; CURSOR_KEY_LEN]) -> Result<CursorKey, CaError> {
        UnboundKey::new(&CHACHA20_POLY1305, secret)
            .map(|k| CursorKey(LessSafeKey::new(k)))
            .map_err(|_| CaError::Crypto("the cursor key is unusable".into()))
    }
}

impl CursorKey {
    /// `data` sealed for `context`: base64url of a random 96-bit nonce and `data` encrypted
    /// with its tag, bound to `context` (who may use it).
    pub fn seal(&self, data: &[u8], context: &[u8]) -> Result<String, CaError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce)?;
        let mut data = data.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([CURSOR_AAD, context].concat()),
                &mut data,
            )
            .map_err(|_| CaError::Crypto("sealing a cursor".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The data of a [`CursorKey::seal`]ed text of at most `max_len` characters; anything this
    /// key did not seal for `context` is `None`.
    pub fn open(&self, text: &str, context: &[u8], max_len: usize) -> Option<Vec<u8>> {
        if text.len() > max_len {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut data = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plain = self
            .0
            .open_in_place(nonce, Aad::from([CURSOR_AAD, context].concat()), &mut data)
            .ok()?;
        let len = plain.len();
        data.truncate(len);
        Some(data)
    }
}

impl Cursor {
    /// The cursor as the API shows it: [`Cursor::encode`] sealed by [`CursorKey::seal`] for
    /// `context` (who may use it).
    pub fn seal(&self, key: &CursorKey, context: &[u8]) -> Result<String, CaError> {
        key.seal(self.encode().as_bytes(), context)
    }

    /// Reads a sealed cursor a client sent back; anything this CA did not seal for `context`
    /// is `invalid_request`.
    pub fn open(text: &str, key: &CursorKey, context: &[u8]) -> Result<Cursor, CaError> {
        let bad = || CaError::InvalidRequest("the cursor is not one this CA gave out".into());
        let plain = key.open(text, context, 4096).ok_or_else(bad)?;
        Cursor::decode(std::str::from_utf8(&plain).map_err(|_| bad())?)
    }

    /// The cursor's plaintext form: base64url of the index tag and the last key.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(self.key.len() + 1);
        bytes.push(self.walk);
        bytes.extend_from_slice(&self.key);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads the plaintext form of [`Cursor::encode`].
    pub fn decode(s: &str) -> Result<Cursor, CaError> {
        let bad = || CaError::InvalidRequest("the cursor is not one this CA gave out".into());
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let (&walk, key) = bytes.split_first().ok_or_else(bad)?;
        Walk::from_tag(walk).ok_or_else(bad)?;
        Ok(Cursor {
            walk,
            key: key.to_vec(),
        })
    }
}

/// One certificate of a page, with its current revocation.
#[derive(Clone, Debug)]
pub struct Row {
    /// The stored record.
    pub record: CertRecord,
    /// Its revocation or hold, if any.
    pub revocation: Option<Revocation>,
}

/// A page of results.
#[derive(Clone, Debug)]
pub struct Page {
    /// The matching certificates, in the walk's order.
    pub rows: Vec<Row>,
    /// Where to go on, or `None` when the walk is complete.
    pub next: Option<Cursor>,
}

/// The walk for a query and the key range it covers: `[start, end)`, `end` `None` for
/// unbounded; keys must also start with `prefix`.
struct Plan {
    walk: Walk,
    family: &'static str,
    prefix: Vec<u8>,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

/// A position in one of a store's indexes, walked in key order (bytewise): the seam between
/// the query logic here and a store's layout. The families and their keys are those of the
/// table at the top of `store/mod.rs`; a store names them in its own way.
pub trait IndexIter {
    /// Moves to the first entry whose key is at or after `key`.
    fn seek(&mut self, key: &[u8]);
    /// The current entry's key, `None` past the end (or after a failure).
    fn key(&self) -> Option<&[u8]>;
    /// The current entry's value.
    fn value(&self) -> Option<&[u8]>;
    /// Moves to the next entry.
    fn next(&mut self);
    /// The failure that ended the walk, if any.
    fn status(&self) -> Result<(), CaError>;
}

/// A store whose certificates can be queried: its indexes ([`IndexIter`]) and the reads a
/// query makes beside them.
pub trait Indexed: CertificateStore + RevocationStore {
    /// A walk over the index `family` (one of [`cf::ISSUED`], [`cf::NAMES`], [`cf::REVOKED`],
    /// [`cf::BY_EXPIRY`]).
    fn index(&self, family: &'static str) -> Result<Box<dyn IndexIter + '_>, CaError>;
}

/// One page of certificates of `store` matching `query`, at most `limit`, continuing after
/// `cursor`. A cursor from a query with other filters is refused when it belongs to another
/// index.
pub fn query_page<S: Indexed + ?Sized>(
    store: &S,
    query: &CertificateQuery,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<Page, CaError> {
    let plan = plan(store, query)?;
    let mut it = store.index(plan.family)?;
    match cursor {
        Some(c) if c.walk != plan.walk as u8 || !c.key.starts_with(&plan.prefix) => {
            return Err(CaError::InvalidRequest(
                "the cursor belongs to a query with other filters".into(),
            ))
        }
        Some(c) => {
            it.seek(&c.key);
            if it.key() == Some(c.key.as_slice()) {
                it.next();
            }
        }
        None => it.seek(&plan.start),
    }
    let mut rows = Vec::with_capacity(limit.min(1000));
    let mut examined = 0;
    let mut last: Option<Vec<u8>> = None;
    while let Some(key) = it.key() {
        if !key.starts_with(&plan.prefix) || plan.end.as_deref().is_some_and(|e| key >= e) {
            return Ok(Page { rows, next: None });
        }
        if rows.len() >= limit || examined >= MAX_EXAMINED {
            break;
        }
        examined += 1;
        if let Some(row) = matching_row(store, query, record_of(store, &plan, key, it.value())?)? {
            if plan.walk == Walk::Issued
                && query
                    .issued_before
                    .is_some_and(|b| row.record.issued_at >= b)
            {
                return Ok(Page { rows, next: None });
            }
            if matches(query, &row) {
                rows.push(row);
            }
        }
        last = Some(key.to_vec());
        it.next();
    }
    it.status()?;
    let next = match (it.key().is_some(), last) {
        (true, Some(key)) => Some(Cursor {
            walk: plan.walk as u8,
            key,
        }),
        _ => None,
    };
    Ok(Page { rows, next })
}

/// The certificate an index entry points at: `issued` holds it, `names` keys end with its
/// issuance sequence number, `revoked` and `by_expiry` keys hold its serial.
fn record_of<S: Indexed + ?Sized>(
    store: &S,
    plan: &Plan,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<Option<CertRecord>, CaError> {
    let malformed = || CaError::Storage(format!("malformed entry in {}", plan.family));
    match plan.walk {
        Walk::Issued => value.map(CertRecord::decode).transpose(),
        Walk::Subject | Walk::San => {
            let at = key.len().checked_sub(8).ok_or_else(malformed)?;
            store.certificate_at(decode_seq(&key[at..])?)
        }
        Walk::Revoked => store.certificate(&Serial::from_bytes(key).ok_or_else(malformed)?),
        Walk::Expiry => {
            let serial = key.get(8..).and_then(Serial::from_bytes);
            store.certificate(&serial.ok_or_else(malformed)?)
        }
    }
}

fn matching_row<S: Indexed + ?Sized>(
    store: &S,
    query: &CertificateQuery,
    record: Option<CertRecord>,
) -> Result<Option<Row>, CaError> {
    let Some(record) = record else {
        return Ok(None);
    };
    if query
        .requester
        .as_ref()
        .is_some_and(|r| *r != record.requester)
        || query.profile.as_ref().is_some_and(|p| *p != record.profile)
    {
        // Still a row for the issued-range stop check; filtered out by `matches`.
        return Ok(Some(Row {
            record,
            revocation: None,
        }));
    }
    let revocation = store.revocation(&record.serial)?;
    Ok(Some(Row { record, revocation }))
}

fn plan<S: Indexed + ?Sized>(store: &S, q: &CertificateQuery) -> Result<Plan, CaError> {
    let names = |walk, tag, value: &str| {
        let prefix = names_prefix(tag, value);
        Plan {
            walk,
            family: cf::NAMES,
            start: prefix.clone(),
            prefix,
            end: None,
        }
    };
    if let Some(san) = &q.san {
        return Ok(names(Walk::San, SAN_TAG, san));
    }
    if let Some(subject) = &q.subject {
        return Ok(names(Walk::Subject, SUBJECT_TAG, subject));
    }
    if matches!(q.status, Some(Status::Revoked | Status::OnHold)) {
        return Ok(Plan {
            walk: Walk::Revoked,
            family: cf::REVOKED,
            prefix: Vec::new(),
            start: Vec::new(),
            end: None,
        });
    }
    let expired_bound = (q.status == Some(Status::Expired)).then_some(q.now);
    if let Some(bound) = [q.expires_before, expired_bound]
        .into_iter()
        .flatten()
        .min()
    {
        return Ok(Plan {
            walk: Walk::Expiry,
            family: cf::BY_EXPIRY,
            prefix: Vec::new(),
            start: Vec::new(),
            end: Some(bound.max(0).to_be_bytes().to_vec()),
        });
    }
    let start = match q.issued_after {
        Some(t) => first_issued_at_or_after(store, t)?,
        None => 1,
    };
    Ok(Plan {
        walk: Walk::Issued,
        family: cf::ISSUED,
        prefix: Vec::new(),
        start: start.to_be_bytes().to_vec(),
        end: None,
    })
}

/// The first issuance sequence number whose certificate was issued at or after `t`, by
/// binary search over the issuance order (the store writer keeps issuance times from
/// decreasing along the sequence).
fn first_issued_at_or_after<S: Indexed + ?Sized>(store: &S, t: i64) -> Result<u64, CaError> {
    let (mut lo, mut hi) = (1u64, store.last_cert_seq()? + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let issued_at = store.certificate_at(mid)?.map_or(i64::MIN, |r| r.issued_at);
        if issued_at < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// RocksDB's indexes are its column families.
impl IndexIter for rocksdb::DBRawIteratorWithThreadMode<'_, rocksdb::DB> {
    fn seek(&mut self, key: &[u8]) {
        rocksdb::DBRawIteratorWithThreadMode::seek(self, key);
    }
    fn key(&self) -> Option<&[u8]> {
        rocksdb::DBRawIteratorWithThreadMode::key(self)
    }
    fn value(&self) -> Option<&[u8]> {
        rocksdb::DBRawIteratorWithThreadMode::value(self)
    }
    fn next(&mut self) {
        rocksdb::DBRawIteratorWithThreadMode::next(self);
    }
    fn status(&self) -> Result<(), CaError> {
        rocksdb::DBRawIteratorWithThreadMode::status(self).db()
    }
}

impl Indexed for Store {
    fn index(&self, family: &'static str) -> Result<Box<dyn IndexIter + '_>, CaError> {
        Ok(Box::new(self.db.raw_iterator_cf(self.cf(family)?)))
    }
}

impl Store {
    /// One page of certificates matching `query` ([`query_page`]).
    pub fn query(
        &self,
        query: &CertificateQuery,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, CaError> {
        query_page(self, query, cursor, limit)
    }
}

/// Whether a row satisfies every filter of `q`.
fn matches(q: &CertificateQuery, row: &Row) -> bool {
    let r = &row.record;
    let status = Status::of(
        r.not_after,
        row.revocation.as_ref(),
        time::OffsetDateTime::from_unix_timestamp(q.now)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    );
    q.status.is_none_or(|s| s == status)
        && q.profile.as_ref().is_none_or(|p| *p == r.profile)
        && q.requester.as_ref().is_none_or(|n| *n == r.requester)
        && q.issued_after.is_none_or(|t| r.issued_at >= t)
        && q.issued_before.is_none_or(|t| r.issued_at < t)
        && q.expires_before.is_none_or(|t| r.not_after < t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = Cursor {
            walk: Walk::San as u8,
            key: b"Nexample.com\0\0\0\0\0\0\0\0\x07".to_vec(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("").is_err());
        assert!(Cursor::decode("!!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode([9u8, 1, 2])).is_err());
    }

    #[test]
    fn sealed_cursors_open_only_unaltered_and_for_their_context() {
        let key = CursorKey::new(&[7u8; CURSOR_KEY_LEN]).unwrap();
        let c = Cursor {
            walk: Walk::Revoked as u8,
            key: vec![0xAB; 16],
        };
        let sealed = c.seal(&key, b"ra:one").unwrap();
        assert_eq!(Cursor::open(&sealed, &key, b"ra:one").unwrap(), c);
        assert!(
            !sealed.contains(&URL_SAFE_NO_PAD.encode([0xABu8; 12])),
            "the key does not show through"
        );
        assert_ne!(
            sealed,
            c.seal(&key, b"ra:one").unwrap(),
            "a fresh nonce each time"
        );
        assert!(Cursor::open(&sealed, &key, b"ra:two").is_err());
        let other = CursorKey::new(&[8u8; CURSOR_KEY_LEN]).unwrap();
        assert!(Cursor::open(&sealed, &other, b"ra:one").is_err());
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            let altered = URL_SAFE_NO_PAD.encode(&bytes);
            assert!(Cursor::open(&altered, &key, b"ra:one").is_err(), "byte {i}");
            bytes[i] ^= 1;
        }
        assert!(
            Cursor::open(&c.encode(), &key, b"ra:one").is_err(),
            "plaintext refused"
        );
        assert!(Cursor::open("", &key, b"").is_err());
    }

    #[test]
    fn names_are_indexed_without_regard_to_case() {
        assert_eq!(
            names_prefix(SAN_TAG, "WWW.Example.COM"),
            b"Nwww.example.com\0"
        );
    }
}
