//! Group commit: concurrent callers that each need their writes durable share one flush.
//!
//! A caller's writes are durable once a flush that *started after them* has finished. So a
//! caller arriving while a flush is in flight cannot use that one (it may have started before
//! its writes), but everyone who arrives during it can share the next one: when the flush in
//! flight ends, one waiter starts the next, and every caller that arrived before that start
//! returns with it. Under N concurrent callers this costs about two flushes per round instead
//! of N, whatever N is; a lone caller pays one flush, as before.
//!
//! The flush itself runs in a task of its own on the blocking pool, not in the caller's future:
//! a caller that goes away (a client that timed out) must not leave a flush marked in flight
//! that nobody finishes, or every later caller would wait for ever.

use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use bigfs_proto::lock::lock;

use crate::error::MetaError;

/// The flush a [`GroupFlush`] runs: makes everything written before it started durable.
pub type FlushFn = Arc<dyn Fn() -> Result<(), MetaError> + Send + Sync>;

pub struct GroupFlush {
    shared: Arc<Shared>,
}

struct Shared {
    flush: FlushFn,
    state: Mutex<State>,
    /// Woken when a flush ends.
    finished: Notify,
    /// Flushes started, and callers that asked for durability: their ratio is the flushes
    /// each change paid for (exported as metrics).
    flushes: Counter,
    requests: Counter,
}

#[derive(Default)]
struct State {
    /// Flushes started so far; the one in flight, if any, is number `started`.
    started: u64,
    in_flight: bool,
    /// Flushes finished so far, and how the latest one ended.
    finished: u64,
    last_error: Option<String>,
}

impl GroupFlush {
    pub fn new(flush: FlushFn) -> Self {
        Self {
            shared: Arc::new(Shared {
                flush,
                state: Mutex::new(State::default()),
                finished: Notify::new(),
                flushes: Counter::default(),
                requests: Counter::default(),
            }),
        }
    }

    /// Returns once everything the caller wrote before calling is durable: after a flush that
    /// started after this call began has finished. Fails when that flush (or the latest one
    /// finished by then, which covers it too) failed.
    pub async fn flush(&self) -> Result<(), MetaError> {
        let shared = &self.shared;
        shared.requests.inc();
        // The next flush to start is the first that surely covers this caller's writes.
        let needed = lock(&shared.state).started + 1;
        loop {
            // Registered before the state is read, so an end between the two is not missed.
            let finished = shared.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            {
                let mut state = lock(&shared.state);
                if state.finished >= needed {
                    return match &state.last_error {
                        None => Ok(()),
                        Some(e) => Err(MetaError::Internal(format!("flush the namespace: {e}"))),
                    };
                }
                if !state.in_flight {
                    state.started += 1;
                    state.in_flight = true;
                    let number = state.started;
                    shared.flushes.inc();
                    tokio::spawn(run(shared.clone(), number));
                }
            }
            finished.await;
        }
    }

    /// Counts flushes started so far.
    pub fn flushes(&self) -> Counter {
        self.shared.flushes.clone()
    }

    /// Counts calls of [`Self::flush`] so far.
    pub fn requests(&self) -> Counter {
        self.shared.requests.clone()
    }
}

/// Runs flush `number` on the blocking pool and tells the waiters how it ended.
async fn run(shared: Arc<Shared>, number: u64) {
    let flush = shared.flush.clone();
    let result = match tokio::task::spawn_blocking(move || flush()).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("flush task failed: {e}")),
    };
    {
        let mut state = lock(&shared.state);
        state.in_flight = false;
        state.finished = number;
        state.last_error = result.err();
    }
    shared.finished.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    /// A stand-in store: writes bump `written`, a flush makes durable what was written when
    /// it started (and takes a while, so that callers pile up behind it).
    #[derive(Default)]
    struct Log {
        written: AtomicU64,
        durable: AtomicU64,
        fail: AtomicBool,
    }

    fn group(log: &Arc<Log>) -> GroupFlush {
        let log = log.clone();
        GroupFlush::new(Arc::new(move || {
            let upto = log.written.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            if log.fail.load(Ordering::SeqCst) {
                return Err(MetaError::Internal("disk gone".into()));
            }
            log.durable.fetch_max(upto, Ordering::SeqCst);
            Ok(())
        }))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Every caller's write is durable when its flush returns, though it was written while
    /// another flush was in flight; and the callers shared flushes.
    #[test]
    fn concurrent_callers_share_flushes_and_each_write_is_covered() {
        let log = Arc::new(Log::default());
        let group = Arc::new(group(&log));
        let callers = 64;
        let rounds = 20;
        runtime().block_on(async {
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let (log, group) = (log.clone(), group.clone());
                    tokio::spawn(async move {
                        for _ in 0..rounds {
                            let mine = log.written.fetch_add(1, Ordering::SeqCst) + 1;
                            group.flush().await.unwrap();
                            let durable = log.durable.load(Ordering::SeqCst);
                            assert!(
                                durable >= mine,
                                "write {mine} acknowledged, {durable} durable"
                            );
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let (flushes, requests) = (group.flushes().get(), group.requests().get());
        assert_eq!(requests, callers * rounds);
        // Each of the 64 callers waits for at most two flushes per round.
        assert!(
            flushes * 4 < requests,
            "{flushes} flushes for {requests} requests"
        );
    }

    #[test]
    fn a_lone_caller_pays_one_flush_each_time() {
        let log = Arc::new(Log::default());
        let group = group(&log);
        runtime().block_on(async {
            for _ in 0..3 {
                group.flush().await.unwrap();
            }
        });
        assert_eq!((group.flushes().get(), group.requests().get()), (3, 3));
    }

    #[test]
    fn a_failed_flush_fails_its_callers_and_the_next_one_retries() {
        let log = Arc::new(Log::default());
        let group = group(&log);
        runtime().block_on(async {
            log.fail.store(true, Ordering::SeqCst);
            let error = group.flush().await.unwrap_err();
            assert!(error.to_string().contains("disk gone"), "{error}");
            log.fail.store(false, Ordering::SeqCst);
            group.flush().await.unwrap();
        });
    }

    /// A caller that goes away mid-flush leaves nothing stuck for the next ones.
    #[test]
    fn a_cancelled_caller_does_not_strand_the_flush() {
        let log = Arc::new(Log::default());
        let group = group(&log);
        runtime().block_on(async {
            let cancelled = tokio::time::timeout(Duration::from_micros(1), group.flush()).await;
            assert!(cancelled.is_err(), "the flush takes 2 ms");
            tokio::time::timeout(Duration::from_secs(10), group.flush())
                .await
                .expect("flush after a cancelled one hung")
                .unwrap();
        });
    }
}
