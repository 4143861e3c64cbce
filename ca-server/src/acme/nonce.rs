//! Anti-replay nonces (RFC 8555 section 6.5): each is a counter sealed with an HMAC key drawn
//! at start, accepted once. A window of the newest [`WINDOW`] counters bounds the memory: a
//! nonce older than the window, already used, from before a restart or forged, is
//! `badNonce`, and the client retries with the fresh nonce every answer carries (section
//! 6.5).

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use keys::SecureRandom;
use ring::hmac;
use subtle::ConstantTimeEq;

/// How many of the newest nonces are accepted: older ones are refused, so that what is
/// remembered stays bounded.
pub const WINDOW: u64 = 1 << 20;

/// Length of the MAC part, in bytes.
const TAG: usize = 16;

/// The nonces of this process.
pub struct Nonces {
    key: hmac::Key,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The counter of the newest nonce handed out.
    latest: u64,
    /// Nonces of the window handed out and not used yet are those above `floor` not in
    /// `used`.
    used: HashSet<u64>,
    /// `used` in order, to drop what falls out of the window.
    used_order: BTreeSet<u64>,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces").finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces sealed with a key drawn from `rng`.
    pub fn new(rng: &dyn SecureRandom) -> Result<Self, keys::RandomError> {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(secret.as_mut())?;
        Ok(Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()),
            state: Mutex::new(State::default()),
        })
    }

    /// A fresh nonce: base64url of the counter and its MAC.
    pub fn issue(&self) -> String {
        let counter = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.latest += 1;
            state.latest
        };
        let mut raw = [0u8; 8 + TAG];
        raw[..8].copy_from_slice(&counter.to_be_bytes());
        let tag = hmac::sign(&self.key, &raw[..8]);
        raw[8..].copy_from_slice(&tag.as_ref()[..TAG]);
        ca_acme::b64url(&raw)
    }

    /// Accepts `nonce` once: true when this process issued it, it is within the window and
    /// it was not used before.
    pub fn redeem(&self, nonce: &str) -> bool {
        use base64::Engine as _;
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if raw.len() != 8 + TAG {
            return false;
        }
        let tag = hmac::sign(&self.key, &raw[..8]);
        // The MAC comparison is constant-time: a forger learns nothing from the timing.
        if !bool::from(tag.as_ref()[..TAG].ct_eq(&raw[8..])) {
            return false;
        }
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&raw[..8]);
        let counter = u64::from_be_bytes(counter);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let floor = state.latest.saturating_sub(WINDOW);
        if counter <= floor || counter > state.latest || !state.used.insert(counter) {
            return false;
        }
        state.used_order.insert(counter);
        while let Some(&oldest) = state.used_order.first() {
            if oldest > floor {
                break;
            }
            state.used_order.remove(&oldest);
            state.used.remove(&oldest);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::SystemRandom;

    #[test]
    fn a_nonce_is_accepted_once_and_only_from_this_process() {
        let nonces = Nonces::new(&SystemRandom::new()).unwrap();
        let a = nonces.issue();
        let b = nonces.issue();
        assert_ne!(a, b);
        assert!(nonces.redeem(&b));
        assert!(!nonces.redeem(&b), "replayed");
        assert!(nonces.redeem(&a), "out of order is fine");
        let other = Nonces::new(&SystemRandom::new()).unwrap();
        assert!(!other.redeem(&nonces.issue()));
        assert!(!nonces.redeem("AAAA"));
        assert!(!nonces.redeem("not base64!"));
        // A forged counter ahead of the newest, with a made-up tag.
        let mut forged = [0u8; 24];
        forged[..8].copy_from_slice(&1000u64.to_be_bytes());
        assert!(!nonces.redeem(&ca_acme::b64url(&forged)));
    }

    #[test]
    fn nonces_older_than_the_window_are_refused() {
        let nonces = Nonces::new(&SystemRandom::new()).unwrap();
        let old = nonces.issue();
        nonces.state.lock().unwrap().latest += WINDOW;
        assert!(!nonces.redeem(&old));
    }
}
