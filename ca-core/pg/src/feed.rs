//! What other nodes change, as they commit: every group that changes revocation state sends
//! `NOTIFY ca_revocations` with the serials and `NOTIFY ca_blocked_keys` with the keys its
//! keyCompromise revocations blocked, and every group that changes tokens `NOTIFY ca_tokens`
//! with their hashes (PostgreSQL delivers a notification at commit, to every listening
//! session). Each node listens on a connection of its own: revocations and blocked keys go to
//! the engine's listeners (which drop cached OCSP answers, have the CRLs rebuilt and block the
//! keys), token changes to the store's [`TokenCache`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ca_core::store::{ChangeListener, RemoteChange, TokenRecord};
use ca_core::Serial;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The channel of revocation changes.
pub(crate) const REVOCATIONS: &str = "ca_revocations";
/// The channel of token changes.
pub(crate) const TOKENS: &str = "ca_tokens";
/// The channel of keys blocked by keyCompromise revocations.
pub(crate) const BLOCKED_KEYS: &str = "ca_blocked_keys";

/// The payload meaning "any may have changed" (PostgreSQL caps a payload at 8000 bytes).
const ANY: &str = "*";
/// The longest list of keys sent; beyond it, [`ANY`].
const MAX_PAYLOAD: usize = 7_000;
/// Most tokens the cache holds (beyond, it starts again empty).
const MAX_CACHED_TOKENS: usize = 10_000;

/// The payload that names `keys` (hex, comma-separated), or [`ANY`] for too many.
pub(crate) fn payload(keys: &[Vec<u8>]) -> String {
    let text = keys.iter().map(hex::encode).collect::<Vec<_>>().join(",");
    if text.len() > MAX_PAYLOAD {
        ANY.to_string()
    } else {
        text
    }
}

/// The keys a payload names; `None` for [`ANY`] or a payload that cannot be read.
fn keys_of(payload: &str) -> Option<Vec<Vec<u8>>> {
    if payload == ANY {
        return None;
    }
    payload.split(',').map(|k| hex::decode(k).ok()).collect()
}

/// Tokens read from the database, kept while the feed is connected (so that a token changed
/// on any node is dropped at once), and not at all while it is down. Only tokens that exist
/// are kept: unknown hashes always go to the database.
#[derive(Default)]
pub(crate) struct TokenCache {
    live: AtomicBool,
    /// Moves on every invalidation: a token read before one is not kept after it.
    generation: AtomicU64,
    entries: Mutex<HashMap<[u8; 32], TokenRecord>>,
}

impl TokenCache {
    /// The cached token with this hash.
    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<TokenRecord> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.lock().get(hash).cloned()
    }

    /// The generation to give [`TokenCache::put`] for a read that starts now.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `record`, read from the database since `generation`, unless something was
    /// invalidated meanwhile.
    pub(crate) fn put(&self, generation: u64, hash: [u8; 32], record: TokenRecord) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_CACHED_TOKENS {
            entries.clear();
        }
        entries.insert(hash, record);
    }

    /// Drops the tokens with these hashes (`None`: every token).
    pub(crate) fn invalidate(&self, hashes: Option<&[Vec<u8>]>) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        match hashes {
            Some(hashes) => {
                for hash in hashes {
                    if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                        entries.remove(&hash);
                    }
                }
            }
            None => entries.clear(),
        }
    }

    fn set_live(&self, live: bool) {
        self.invalidate(None);
        self.live.store(live, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], TokenRecord>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The feed's state, shared by the store and the task that listens.
#[derive(Default)]
pub(crate) struct Feed {
    started: AtomicBool,
    listeners: Mutex<Vec<ChangeListener>>,
    pub(crate) tokens: TokenCache,
}

impl Feed {
    /// Whether the listening task still has to be started (true once).
    pub(crate) fn start_once(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn add_listener(&self, listener: ChangeListener) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Tells every listener of `change`.
    fn tell(&self, change: RemoteChange) {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in listeners {
            listener(change);
        }
    }
}

/// Listens for ever, reconnecting after a failure. While the feed is down, changes may be
/// missed: tokens are read from the database every time, and the listeners are told once a
/// second that anything may have changed (every cached status dropped, so that no node
/// answers from a cache older than a second).
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    feed: Arc<Feed>,
) {
    loop {
        if let Err(e) = listen_once(&config, &tls, &feed).await {
            tracing::warn!(error = %e, "the database's feed of changes is interrupted; retrying");
        }
        feed.tokens.set_live(false);
        feed.tell(RemoteChange::Any);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    feed: &Feed,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let message = (n.channel().to_string(), n.payload().to_string());
                    if tx.send(message).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute(&format!(
            "LISTEN {REVOCATIONS}; LISTEN {TOKENS}; LISTEN {BLOCKED_KEYS}"
        ))
        .await?;
    // Whatever changed before the LISTEN took effect is covered by dropping everything once.
    feed.tokens.set_live(true);
    feed.tell(RemoteChange::Any);
    while let Some((channel, payload)) = rx.recv().await {
        let keys = keys_of(&payload);
        if channel == TOKENS {
            feed.tokens.invalidate(keys.as_deref());
            continue;
        }
        let Some(keys) = keys else {
            feed.tell(RemoteChange::Any);
            continue;
        };
        for key in keys {
            let change = if channel == BLOCKED_KEYS {
                <[u8; 32]>::try_from(key.as_slice())
                    .ok()
                    .map(RemoteChange::BlockedKey)
            } else {
                Serial::from_bytes(&key).map(RemoteChange::Revocation)
            };
            feed.tell(change.unwrap_or(RemoteChange::Any));
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
