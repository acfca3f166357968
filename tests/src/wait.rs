//! Waiting for a condition instead of sleeping for a fixed time.
use std::time::{Duration, Instant};

/// Calls `check` until it returns `Ok`, for at most `timeout`; the last error explains a timeout.
pub fn eventually<T>(
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {timeout:?}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
