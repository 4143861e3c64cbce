//! Waiting for something to become true: [`poll`], which every test uses instead of a fixed
//! sleep.

use std::time::{Duration, Instant};

/// Calls `check` every 50 ms until it returns `Ok`, for at most `within`; beyond that, panics
/// with `what` and the last error. Tests wait with this, never with a fixed sleep.
pub fn poll<T>(what: &str, within: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
