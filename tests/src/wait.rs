//! Polling for a condition with a deadline, instead of fixed sleeps.
//!
//! The suites run on small, loaded machines; a deadline is a bound on how long a broken system
//! may keep a test waiting, not an expectation of how long a working one takes, so callers pass
//! generous ones.

use std::thread;
use std::time::{Duration, Instant};

/// How often conditions are re-checked. Conditions often run a CLI process, so not too often.
pub const POLL: Duration = Duration::from_millis(150);

/// Calls `cond` until it returns true and returns how long that took; after `timeout` returns
/// `Err` with the elapsed time. Use [`crate::Cluster::wait_until`] to fail with the log tails.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration, Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(start.elapsed());
        }
        thread::sleep(POLL);
    }
}

/// Calls `cond` until it returns true; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) -> Duration {
    match poll_until(timeout, cond) {
        Ok(took) => took,
        Err(waited) => panic!("timed out after {waited:?} waiting until {what}"),
    }
}
