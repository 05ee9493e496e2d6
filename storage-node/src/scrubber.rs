//! The scrubber: re-reads and verifies every stored chunk at a bounded rate, so that bit rot,
//! truncated files and files lost behind the node's back are found before a client needs them.
//!
//! A pass takes a snapshot of the chunk index and checks each chunk with [`ChunkStore::scrub`]:
//! a copy that fails verification is quarantined and reported corrupt, a file missing from disk
//! is reported removed, and the next heartbeat tells the metadata server, which re-replicates
//! from a good copy. Reads are paced so that a pass reads at most `rate` bytes a second on
//! average (with at most a second's worth of catching up after a stall), leaving the disk to
//! clients.
//!
//! Passes start `interval` apart, counted from the start of one pass to the start of the next:
//! a pass that takes longer than the interval is followed at once by the next, so the disk then
//! sees a steady `rate`, never more. The first pass starts after a random delay of up to a
//! minute (at most the interval), so that nodes started together do not scrub in step. Progress
//! is not saved: a restarted node begins with a fresh pass. The snapshot costs 32 bytes a chunk
//! for the length of a pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use bigfs_proto::ChunkId;

use crate::chunk_store::{ChunkStore, Scrubbed};

/// The longest first delay.
const MAX_START_DELAY: Duration = Duration::from_secs(60);
/// How far behind its schedule a pass may fall and then read faster to catch up.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);
/// Read errors logged one by one in a pass; the rest are only counted.
const LOGGED_ERRORS: u64 = 10;

pub struct Scrubber {
    store: Arc<ChunkStore>,
    interval: Duration,
    rate: u64,
}

/// What one pass found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    /// Chunks checked: found good, corrupt or missing.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Copies that failed verification (now quarantined).
    pub corrupt: u64,
    /// Chunks whose file was gone from disk.
    pub missing: u64,
    /// Chunks that could not be read (an I/O error; left in place, tried again next pass).
    pub errors: u64,
}

impl Scrubber {
    /// A scrubber reading at most `rate` bytes a second (at least 1), a pass every `interval`;
    /// a zero interval disables it.
    pub fn new(store: Arc<ChunkStore>, interval: Duration, rate: u64) -> Self {
        Self {
            store,
            interval,
            rate: rate.max(1),
        }
    }

    /// Runs passes until `cancel` fires; returns at once when scrubbing is disabled.
    /// Cancellation is seen between chunks and during waits, so it takes at most one chunk read.
    pub async fn run(self, cancel: CancellationToken) {
        if self.interval.is_zero() {
            tracing::info!("scrubber disabled");
            return;
        }
        let max_delay = self.interval.min(MAX_START_DELAY).as_millis() as u64;
        let delay = Duration::from_millis(rand::random_range(0..=max_delay));
        let mut next = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            next = started + self.interval;
            let Some(stats) = self.pass(&cancel).await else {
                break;
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            let counters = self.store.counters();
            counters
                .scrub_last_pass
                .set(now.unwrap_or_default().as_secs_f64());
            tracing::info!(
                checked = stats.checked,
                corrupt = stats.corrupt,
                missing = stats.missing,
                errors = stats.errors,
                bytes = stats.bytes,
                elapsed = ?started.elapsed(),
                "scrub pass finished"
            );
        }
        tracing::info!("scrubber stopped");
    }

    /// Checks every chunk indexed when the pass starts. Returns `None` when cancelled.
    pub async fn pass(&self, cancel: &CancellationToken) -> Option<PassStats> {
        let store = self.store.clone();
        let listed = tokio::task::spawn_blocking(move || store.list())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let ids = listed.unwrap_or_else(|e| {
            tracing::warn!("scrubber cannot list chunks: {e}");
            Vec::new()
        });
        let mut stats = PassStats::default();
        let mut pacer = Pacer::new(self.rate);
        for id in ids {
            if cancel.is_cancelled() {
                return None;
            }
            let bytes = self.check(id, &mut stats).await;
            stats.bytes += bytes;
            if let Some(due) = pacer.after(bytes) {
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
        }
        Some(stats)
    }

    /// Checks one chunk, counts the outcome, and returns the bytes read.
    async fn check(&self, id: ChunkId, stats: &mut PassStats) -> u64 {
        let store = self.store.clone();
        let outcome = tokio::task::spawn_blocking(move || store.scrub(id))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match outcome {
            Ok(Scrubbed::Good { bytes }) => {
                stats.checked += 1;
                bytes
            }
            Ok(Scrubbed::Corrupt { bytes }) => {
                // The store logged and quarantined it.
                stats.checked += 1;
                stats.corrupt += 1;
                bytes
            }
            Ok(Scrubbed::Missing) => {
                // The store logged it.
                stats.checked += 1;
                stats.missing += 1;
                0
            }
            Ok(Scrubbed::NotStored) => 0,
            Err(e) => {
                stats.errors += 1;
                if stats.errors <= LOGGED_ERRORS {
                    tracing::warn!(chunk = %id, "scrubber cannot check chunk: {e}");
                }
                if stats.errors == LOGGED_ERRORS {
                    tracing::warn!("further scrub errors in this pass are counted, not logged");
                }
                0
            }
        }
    }
}

/// Spaces reads so that they average at most `rate` bytes a second.
struct Pacer {
    rate: u64,
    since: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(rate: u64) -> Self {
        Self {
            rate,
            since: Instant::now(),
            bytes: 0,
        }
    }

    /// Accounts for `bytes` just read; returns when the next read may start, if not now.
    fn after(&mut self, bytes: u64) -> Option<Instant> {
        self.bytes += bytes;
        let due = self.since + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let now = Instant::now();
        if due > now {
            return Some(due);
        }
        if now - due > MAX_CATCH_UP {
            // Reads were slower than the rate (a busy disk): start counting afresh rather than
            // make up for the lost time with a burst.
            self.since = now;
            self.bytes = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::chunk_io::IoMode;

    fn chunk_file(dir: &Path, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        dir.join("chunks").join(&hex[..2]).join(&hex)
    }

    /// A store holding `count` chunks of `len` bytes each.
    fn store_with(count: u8, len: usize) -> (tempfile::TempDir, Arc<ChunkStore>, Vec<ChunkId>) {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 30, false, IoMode::Direct).unwrap();
        let ids = (0..count)
            .map(|i| {
                let data = vec![i; len];
                let id = ChunkId::of(&data);
                store.put(id, &data).unwrap();
                id
            })
            .collect();
        store.take_changes();
        (dir, Arc::new(store), ids)
    }

    fn sorted(mut ids: Vec<ChunkId>) -> Vec<ChunkId> {
        ids.sort();
        ids
    }

    #[tokio::test(start_paused = true)]
    async fn one_pass_finds_flipped_truncated_and_deleted_chunks() {
        let (dir, store, ids) = store_with(4, 4096);
        let (flipped, truncated, deleted, good) = (ids[0], ids[1], ids[2], ids[3]);
        let path = chunk_file(dir.path(), &flipped);
        let mut bytes = fs::read(&path).unwrap();
        bytes[1000] ^= 0x04;
        fs::write(&path, bytes).unwrap();
        fs::write(chunk_file(dir.path(), &truncated), vec![1u8; 10]).unwrap();
        fs::remove_file(chunk_file(dir.path(), &deleted)).unwrap();

        let scrubber = Scrubber::new(store.clone(), Duration::from_secs(1), 1 << 20);
        let stats = scrubber.pass(&CancellationToken::new()).await.unwrap();
        assert_eq!(stats.checked, 4);
        assert_eq!(stats.corrupt, 2);
        assert_eq!(stats.missing, 1);
        assert_eq!(stats.errors, 0);

        let changes = store.take_changes();
        assert_eq!(sorted(changes.corrupt), sorted(vec![flipped, truncated]));
        assert_eq!(
            sorted(changes.removed),
            sorted(vec![flipped, truncated, deleted])
        );
        assert!(changes.added.is_empty());
        assert_eq!(store.list().unwrap(), vec![good]);
        assert_eq!(store.usage().chunks, 1);
        assert_eq!(store.usage().used, 4096);
        assert_eq!(
            fs::read_dir(dir.path().join("quarantine")).unwrap().count(),
            2
        );

        // A second pass finds nothing new.
        let stats = scrubber.pass(&CancellationToken::new()).await.unwrap();
        assert_eq!((stats.checked, stats.corrupt, stats.missing), (1, 0, 0));
        assert_eq!(store.take_changes(), Default::default());
    }

    #[tokio::test(start_paused = true)]
    async fn pass_honours_the_rate_limit() {
        let (_dir, store, _ids) = store_with(4, 256 << 10);
        let scrubber = Scrubber::new(store, Duration::from_secs(3600), 1 << 20);
        let started = Instant::now();
        let stats = scrubber.pass(&CancellationToken::new()).await.unwrap();
        assert_eq!(stats.bytes, 1 << 20);
        // 1 MiB at 1 MiB/s. The clock is paused, so this is the paced time alone.
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_scrubs_every_interval_until_cancelled() {
        let (dir, store, ids) = store_with(2, 4096);
        let cancel = CancellationToken::new();
        let scrubber = Scrubber::new(store.clone(), Duration::from_secs(10), 1 << 20);
        let task = tokio::spawn(scrubber.run(cancel.clone()));

        // Past the first delay and pass: nothing to find yet.
        tokio::time::sleep(MAX_START_DELAY + Duration::from_secs(1)).await;
        assert_eq!(store.take_changes(), Default::default());

        // Damage found by a later pass.
        fs::write(chunk_file(dir.path(), &ids[0]), b"rot").unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(store.take_changes().corrupt, vec![ids[0]]);

        cancel.cancel();
        // Virtual time: without the cancellation the task would scrub forever, and this
        // fails instead of hanging.
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("scrubber stops promptly when cancelled")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_a_pass_between_chunks() {
        let (_dir, store, _ids) = store_with(8, 256 << 10);
        // 2 MiB at 1 MiB/s: the pass would take two seconds.
        let scrubber = Scrubber::new(store, Duration::from_secs(3600), 1 << 20);
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.cancel();
        });
        assert_eq!(scrubber.pass(&cancel).await, None);
    }

    #[tokio::test]
    async fn zero_interval_disables_scrubbing() {
        let (_dir, store, _ids) = store_with(1, 16);
        Scrubber::new(store, Duration::ZERO, 1 << 20)
            .run(CancellationToken::new())
            .await;
    }
}
