//! Anti-replay nonces (RFC 8555 section 6.5). A nonce is this process's 8-byte prefix, a
//! counter, its expiry and an HMAC over them, so that a forged or expired one is refused
//! without any lookup. Each is accepted once:
//!
//! - on a store of one node, by this process's memory of the newest [`WINDOW`] counters
//!   (older ones, and every nonce from before a restart, are refused);
//! - on a store shared by several nodes, by the store, which every node asks
//!   ([`ca_core::store::AcmeStore::acme_spend_nonce`]), under a key every node derives from
//!   the store ([`ca_core::store::AcmeStore::acme_nonce_key`]): a nonce one node hands out
//!   is accepted once by any node.
//!
//! A refused nonce is `badNonce`; the client retries with the fresh one every answer carries.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use ca_core::error::CaError;
use keys::SecureRandom;
use ring::hmac;
use subtle::ConstantTimeEq;

/// How many of the newest nonces a node of its own accepts: older ones are refused, so that
/// what it remembers stays bounded.
pub const WINDOW: u64 = 1 << 20;

/// How long a nonce may be used, in seconds.
pub const LIFETIME_SECS: i64 = 3600;

/// Prefix, counter, expiry.
const BODY: usize = 24;
/// Length of the MAC part, in bytes.
const TAG: usize = 16;

/// Where spent nonces are remembered.
#[derive(Debug)]
enum Spent {
    /// In this process: the window of counters.
    Local(Mutex<Window>),
    /// In the shared store.
    Shared,
}

#[derive(Debug, Default)]
struct Window {
    /// Counters above `latest - WINDOW` that were used.
    used: HashSet<u64>,
    /// `used` in order, to drop what falls out of the window.
    order: BTreeSet<u64>,
}

/// The nonces of this process.
pub struct Nonces {
    key: hmac::Key,
    prefix: [u8; 8],
    counter: std::sync::atomic::AtomicU64,
    spent: Spent,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces").finish_non_exhaustive()
    }
}

/// A nonce's parts, once its seal verified.
struct Opened {
    prefix: [u8; 8],
    counter: u64,
    expires: i64,
}

impl Nonces {
    /// Nonces of a node of its own: sealed with a key drawn from `rng`, remembered here.
    pub fn local(rng: &dyn SecureRandom) -> Result<Self, keys::RandomError> {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(secret.as_mut())?;
        Self::with(rng, secret.as_ref(), Spent::Local(Mutex::default()))
    }

    /// Nonces of a node that shares its store: sealed with the store's `key`, spent in the
    /// store.
    pub fn shared(rng: &dyn SecureRandom, key: &[u8; 32]) -> Result<Self, keys::RandomError> {
        Self::with(rng, key, Spent::Shared)
    }

    fn with(rng: &dyn SecureRandom, key: &[u8], spent: Spent) -> Result<Self, keys::RandomError> {
        let mut prefix = [0u8; 8];
        rng.fill(&mut prefix)?;
        Ok(Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            prefix,
            counter: std::sync::atomic::AtomicU64::new(0),
            spent,
        })
    }

    /// A fresh nonce, usable until `now + LIFETIME_SECS`.
    pub fn issue(&self, now: i64) -> String {
        let counter = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut raw = [0u8; BODY + TAG];
        raw[..8].copy_from_slice(&self.prefix);
        raw[8..16].copy_from_slice(&counter.to_be_bytes());
        raw[16..24].copy_from_slice(&(now + LIFETIME_SECS).to_be_bytes());
        let tag = hmac::sign(&self.key, &raw[..BODY]);
        raw[BODY..].copy_from_slice(&tag.as_ref()[..TAG]);
        ca_acme::b64url(&raw)
    }

    /// The parts of `nonce` when its seal verifies (in constant time) and it has not expired
    /// at `now`.
    fn open(&self, nonce: &str, now: i64) -> Option<Opened> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()?;
        if raw.len() != BODY + TAG {
            return None;
        }
        let tag = hmac::sign(&self.key, &raw[..BODY]);
        if !bool::from(tag.as_ref()[..TAG].ct_eq(&raw[BODY..])) {
            return None;
        }
        let field = |at: usize| <[u8; 8]>::try_from(&raw[at..at + 8]).ok();
        let opened = Opened {
            prefix: field(0)?,
            counter: u64::from_be_bytes(field(8)?),
            expires: i64::from_be_bytes(field(16)?),
        };
        (opened.expires > now).then_some(opened)
    }

    /// Accepts `nonce` once at `now`: true when its seal verifies, it has not expired, and
    /// no node used it before. `spend` is the store's
    /// [`acme_spend_nonce`](ca_core::store::AcmeStore::acme_spend_nonce), asked only for
    /// shared nonces.
    pub fn redeem(
        &self,
        nonce: &str,
        now: i64,
        spend: impl FnOnce(&[u8; 16], i64) -> Result<Option<bool>, CaError>,
    ) -> Result<bool, CaError> {
        let Some(opened) = self.open(nonce, now) else {
            return Ok(false);
        };
        match &self.spent {
            Spent::Shared => {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&opened.prefix);
                id[8..].copy_from_slice(&opened.counter.to_be_bytes());
                Ok(spend(&id, opened.expires)?.unwrap_or(false))
            }
            Spent::Local(window) => {
                if opened.prefix != self.prefix {
                    return Ok(false);
                }
                let latest = self.counter.load(std::sync::atomic::Ordering::Relaxed);
                let floor = latest.saturating_sub(WINDOW);
                let mut window = window.lock().unwrap_or_else(|p| p.into_inner());
                if opened.counter <= floor
                    || opened.counter > latest
                    || !window.used.insert(opened.counter)
                {
                    return Ok(false);
                }
                window.order.insert(opened.counter);
                while let Some(&oldest) = window.order.first() {
                    if oldest > floor {
                        break;
                    }
                    window.order.remove(&oldest);
                    window.used.remove(&oldest);
                }
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::SystemRandom;
    use std::collections::HashSet;
    use std::sync::Mutex;

    const NOW: i64 = 1_800_000_000;

    fn no_store(_: &[u8; 16], _: i64) -> Result<Option<bool>, CaError> {
        Ok(None)
    }

    #[test]
    fn a_local_nonce_is_accepted_once_and_only_by_its_process() {
        let nonces = Nonces::local(&SystemRandom::new()).unwrap();
        let a = nonces.issue(NOW);
        let b = nonces.issue(NOW);
        assert_ne!(a, b);
        assert!(nonces.redeem(&b, NOW, no_store).unwrap());
        assert!(!nonces.redeem(&b, NOW, no_store).unwrap(), "replayed");
        assert!(
            nonces.redeem(&a, NOW, no_store).unwrap(),
            "out of order is fine"
        );
        let other = Nonces::local(&SystemRandom::new()).unwrap();
        assert!(!other.redeem(&nonces.issue(NOW), NOW, no_store).unwrap());
        assert!(!nonces.redeem("AAAA", NOW, no_store).unwrap());
        assert!(!nonces.redeem("not base64!", NOW, no_store).unwrap());
        let mut forged = [0u8; BODY + TAG];
        forged[8..16].copy_from_slice(&2u64.to_be_bytes());
        assert!(!nonces
            .redeem(&ca_acme::b64url(&forged), NOW, no_store)
            .unwrap());
    }

    #[test]
    fn expired_nonces_and_those_older_than_the_window_are_refused() {
        let nonces = Nonces::local(&SystemRandom::new()).unwrap();
        let old = nonces.issue(NOW);
        assert!(!nonces.redeem(&old, NOW + LIFETIME_SECS, no_store).unwrap());
        let old = nonces.issue(NOW);
        nonces
            .counter
            .fetch_add(WINDOW, std::sync::atomic::Ordering::Relaxed);
        assert!(!nonces.redeem(&old, NOW, no_store).unwrap());
    }

    /// Two nodes with the store's key: a nonce of one is accepted by the other, once, the
    /// store deciding.
    #[test]
    fn shared_nonces_are_spent_in_the_store() {
        let key = [9u8; 32];
        let a = Nonces::shared(&SystemRandom::new(), &key).unwrap();
        let b = Nonces::shared(&SystemRandom::new(), &key).unwrap();
        let store = Mutex::new(HashSet::new());
        let spend = |id: &[u8; 16], _| Ok(Some(store.lock().unwrap().insert(*id)));
        let nonce = a.issue(NOW);
        assert!(b.redeem(&nonce, NOW, spend).unwrap());
        assert!(
            !a.redeem(&nonce, NOW, spend).unwrap(),
            "spent on the other node"
        );
        let stranger = Nonces::shared(&SystemRandom::new(), &[8u8; 32]).unwrap();
        assert!(!a.redeem(&stranger.issue(NOW), NOW, spend).unwrap());
        assert_eq!(
            store.lock().unwrap().len(),
            1,
            "a bad seal never reaches the store"
        );
    }
}
