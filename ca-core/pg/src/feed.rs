//! Other nodes' revocation changes, as they commit: every group that changes revocation state
//! sends `NOTIFY ca_revocations` with the serials (PostgreSQL delivers it at commit, to every
//! listening session); each node listens on a connection of its own and tells the engine,
//! which drops the OCSP answers it cached and has the CRLs rebuilt.

use std::time::Duration;

use ca_core::store::ChangeListener;
use ca_core::Serial;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The channel of revocation changes.
pub(crate) const CHANNEL: &str = "ca_revocations";

/// The payload meaning "any serial may have changed" (PostgreSQL caps a payload at 8000
/// bytes).
const ANY: &str = "*";
/// The longest list of serials sent; beyond it, [`ANY`].
const MAX_PAYLOAD: usize = 7_000;

/// The payload that names `serials` (hex, comma-separated), or [`ANY`] for too many.
pub(crate) fn payload(serials: &[Vec<u8>]) -> String {
    let text = serials
        .iter()
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join(",");
    if text.len() > MAX_PAYLOAD {
        ANY.to_string()
    } else {
        text
    }
}

/// Listens for ever, reconnecting after a failure. While the feed is down, changes may be
/// missed: `changed(None)` is called once a second until it is back (every cached status
/// dropped, so that no node answers from a cache older than a second).
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    changed: ChangeListener,
) {
    loop {
        if let Err(e) = listen_once(&config, &tls, &changed).await {
            tracing::warn!(error = %e, "the database's feed of revocation changes is interrupted; retrying");
        }
        changed(None);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    changed: &ChangeListener,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Whatever changed before the LISTEN took effect is covered by dropping everything once.
    changed(None);
    while let Some(payload) = rx.recv().await {
        if payload == ANY {
            changed(None);
            continue;
        }
        for serial in payload.split(',') {
            match hex::decode(serial)
                .ok()
                .and_then(|b| Serial::from_bytes(&b))
            {
                Some(serial) => changed(Some(serial)),
                None => changed(None),
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
