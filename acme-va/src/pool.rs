//! The bound on concurrent validations: a semaphore of `max_in_flight` places and a counted
//! queue of at most `queue` waiting for one; past that, a refusal at once.

use std::sync::atomic::{AtomicUsize, Ordering};

use ca_acme::{Problem, ProblemType};
use tokio::sync::{Semaphore, SemaphorePermit};

pub(crate) struct Pool {
    places: Semaphore,
    max_in_flight: usize,
    waiting: AtomicUsize,
    queue: usize,
}

/// Decrements the waiting count when dropped: when the place is had, or when the caller
/// gives up waiting (its future dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    pub(crate) fn new(max_in_flight: usize, queue: usize) -> Self {
        Self {
            places: Semaphore::new(max_in_flight),
            max_in_flight,
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A place in the pool, held until the permit is dropped: at once when one is free, after
    /// waiting in the queue (first come, first served) when the queue has room, otherwise a
    /// `serverInternal` problem at once.
    pub(crate) async fn enter(&self) -> Result<SemaphorePermit<'_>, Problem> {
        if let Ok(permit) = self.places.try_acquire() {
            return Ok(permit);
        }
        let mut waiting = self.waiting.load(Ordering::Acquire);
        loop {
            if waiting >= self.queue {
                return Err(Problem::new(
                    ProblemType::ServerInternal,
                    format!(
                        "the validation authority is busy: {} validations running and {} \
                         waiting, its queue is full; try again later",
                        self.in_flight(),
                        waiting
                    ),
                ));
            }
            match self.waiting.compare_exchange_weak(
                waiting,
                waiting + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => waiting = now,
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.places.acquire().await.map_err(|_| {
            Problem::new(
                ProblemType::ServerInternal,
                "the validation authority is shutting down",
            )
        })
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.max_in_flight - self.places.available_permits()
    }

    pub(crate) fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = Pool::new(1, 1);
        let first = pool.enter().await.unwrap();
        assert_eq!((pool.in_flight(), pool.queued()), (1, 0));
        let second = pool.enter();
        tokio::pin!(second);
        // Polled once: waiting in the queue.
        assert!(futures_poll_once(second.as_mut()).await.is_none());
        assert_eq!(pool.queued(), 1);
        let refused = tokio::time::timeout(std::time::Duration::from_secs(2), pool.enter())
            .await
            .expect("refused at once, not queued")
            .unwrap_err();
        assert_eq!(refused.kind, ProblemType::ServerInternal);
        assert!(
            refused.detail.contains("queue is full"),
            "{}",
            refused.detail
        );
        drop(first);
        let _second = second.await.unwrap();
        assert_eq!((pool.in_flight(), pool.queued()), (1, 0));
    }

    #[tokio::test]
    async fn giving_up_leaves_the_queue() {
        let pool = Pool::new(1, 1);
        let _first = pool.enter().await.unwrap();
        {
            let second = pool.enter();
            tokio::pin!(second);
            assert!(futures_poll_once(second.as_mut()).await.is_none());
            assert_eq!(pool.queued(), 1);
        }
        assert_eq!(pool.queued(), 0);
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(fut: F) -> Option<F::Output> {
        let mut fut = fut;
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }
}
