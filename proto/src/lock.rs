//! A poison-tolerant mutex lock.
//!
//! The servers abort on panic (see [`crate::process::abort_on_panic`]), so a poisoned lock
//! only happens in tests or the CLI, where the data under it is still the best there is.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking it over if a panicking thread poisoned it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
