//! Compaction: gives back the space of deleted and quarantined needles (docs/SMALL-CHUNKS.md,
//! "Compaction").
//!
//! A sealed volume at least half garbage is read in order; each needle the index still points
//! at is verified and appended to the active volume (the index repointed under the chunk's
//! lock), each tombstone still needed is appended too, the active volume is fsynced, and only
//! then the old volume is unlinked. Until that unlink the old volume is untouched, so a crash
//! (or a cancellation, or an error) at any point leaves every chunk readable: at the next open
//! the later copy wins and the old one is garbage again. Memory is one needle and the scan's
//! buffer; reads are paced by the caller.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use bigfs_proto::ChunkId;

use super::needle::{self, Kind, HEADER};
use super::volume::{volume_failpoint, Appended, NeedleAt, Scanner, Step, Volume, SUPERBLOCK};
use super::ChunkStore;
use crate::error::NodeError;

/// A sealed volume is compacted once at least this share of it, in percent, is garbage.
const MIN_GARBAGE_PERCENT: u64 = 50;
/// How often the background task looks for a volume to compact.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Most bytes a second compaction reads unless told otherwise (`--compact-rate`), leaving the
/// disk to clients.
pub const DEFAULT_RATE: u64 = 32 << 20;

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub volume: u32,
    /// Needles copied to the active volume (chunks and tombstones still needed).
    pub copied: u64,
    /// Bytes given back: the old volume's size less what was copied.
    pub reclaimed: u64,
}

impl ChunkStore {
    /// Compacts the sealed volume with the most garbage, if at least half of it is garbage.
    /// `pace` is told the bytes of each needle read (and may sleep); `cancelled` is asked
    /// before each needle, and a cancelled compaction stops there, as safely as a crash.
    /// Returns `None` when no volume needed it or it was cancelled.
    pub fn compact_next(
        &self,
        pace: &mut dyn FnMut(u64),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Compacted>, NodeError> {
        let Some(volume) = self.most_garbage() else {
            return Ok(None);
        };
        self.compact(&volume, pace, cancelled)
    }

    fn most_garbage(&self) -> Option<Arc<Volume>> {
        let sealed = self.volumes.sealed();
        let state = self.state();
        let garbage = |v: &Volume| {
            let size = v.end() - SUPERBLOCK;
            let live = state.volume_live.get(&v.number).copied().unwrap_or(0);
            (size.saturating_sub(live), size)
        };
        sealed
            .into_iter()
            .map(|v| (garbage(&v), v))
            .filter(|((garbage, size), _)| garbage * 100 >= size * MIN_GARBAGE_PERCENT)
            .max_by_key(|((garbage, _), _)| *garbage)
            .map(|(_, v)| v)
    }

    fn compact(
        &self,
        volume: &Volume,
        pace: &mut dyn FnMut(u64),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Compacted>, NodeError> {
        let end = volume.end();
        let context = || format!("compact volume {}", volume.path().display());
        let mut scanner = Scanner::new(volume, SUPERBLOCK, end);
        let (mut copied, mut kept) = (0, 0);
        // Every volume a copy went to, with the end its copies reach: the copies may fill the
        // active volume and roll over to the next.
        let mut written: BTreeMap<NonZeroU32, (Arc<Volume>, u64)> = BTreeMap::new();
        loop {
            if cancelled() {
                return Ok(None);
            }
            let step = scanner
                .next_step()
                .map_err(|e| NodeError::io(context(), e))?;
            let (offset, header, bytes) = match step {
                Step::End | Step::Truncated { .. } => break,
                Step::Invalid { .. } => {
                    scanner.skip();
                    continue;
                }
                Step::Needle {
                    offset,
                    header,
                    bytes,
                } => (offset, header, bytes),
            };
            volume_failpoint!(
                "volume::compact_copy",
                volume.path(),
                super::injected(context(), "volume::compact_copy", super::EIO)
            );
            let at = NeedleAt::new(volume.number, offset);
            let payload = &bytes[HEADER..];
            let copy = match header.kind {
                Kind::Chunk => self.move_needle(header.id, at, bytes)?,
                Kind::Tombstone => {
                    let target = needle::tombstone_volume(payload).and_then(NonZeroU32::new);
                    self.keep_tombstone(header.id, target, volume.number)?
                }
            };
            if let Some(appended) = copy {
                copied += 1;
                kept += header.size();
                let end = appended.end;
                let entry = written
                    .entry(appended.volume.number)
                    .or_insert((appended.volume, end));
                entry.1 = entry.1.max(end);
            }
            pace(header.size());
        }
        // The copies replace needles that may have been durable for long: durable first, in
        // every volume they went to, with or without --fsync; then the old volume goes.
        for (copies, end) in written.values() {
            copies.sync_through(*end, &self.counters)?;
        }
        volume_failpoint!(
            "volume::compact_unlink",
            volume.path(),
            super::injected(context(), "volume::compact_unlink", super::EIO)
        );
        self.volumes.remove(volume.number)?;
        self.state().forget_volume(volume.number);
        let reclaimed = end.saturating_sub(kept);
        self.counters.volume_compactions.inc();
        self.counters.volume_reclaimed_bytes.inc_by(reclaimed);
        Ok(Some(Compacted {
            volume: volume.number.get(),
            copied,
            reclaimed,
        }))
    }

    /// Copies the needle of `id` at `at` (`bytes`: header and payload) to the active volume
    /// if the index still points at it, verifying it first: a bad one is quarantined instead.
    /// Returns where it copied it, if it did.
    fn move_needle(
        &self,
        id: ChunkId,
        at: NeedleAt,
        bytes: &[u8],
    ) -> Result<Option<Appended>, NodeError> {
        let _guard = self.lock(&id);
        if self.state().index.get(&id).and_then(|e| e.needle) != Some(at) {
            return Ok(None);
        }
        let payload = &bytes[HEADER..];
        if !id.matches(payload) {
            if self.quarantine_needle_locked(id, at, bytes)? {
                self.counters.verification_failed("stored");
            }
            return Ok(None);
        }
        let appended = self
            .volumes
            .append(id, &needle::encode(Kind::Chunk, id, payload))?;
        self.state().relocate(id, appended.at);
        Ok(Some(appended))
    }

    /// Copies a tombstone of `id` found in volume `this` if it is still needed: the volume it
    /// names (`target`) still exists and is another one, and the chunk is not stored again
    /// since. Returns where it copied it, if it did.
    fn keep_tombstone(
        &self,
        id: ChunkId,
        target: Option<NonZeroU32>,
        this: NonZeroU32,
    ) -> Result<Option<Appended>, NodeError> {
        let Some(target) = target.filter(|&t| t != this && self.volumes.get(t).is_some()) else {
            return Ok(None);
        };
        let _guard = self.lock(&id);
        if self.state().index.contains_key(&id) {
            return Ok(None);
        }
        let appended = self
            .volumes
            .append(id, &needle::tombstone(id, target.get()))?;
        Ok(Some(appended))
    }
}

/// Compacts volumes in the background: every `interval`, as long as one qualifies.
pub struct Compactor {
    store: Arc<ChunkStore>,
    interval: Duration,
    rate: u64,
}

impl Compactor {
    /// A zero `interval` disables compaction.
    pub fn new(store: Arc<ChunkStore>, interval: Duration, rate: u64) -> Self {
        Self {
            store,
            interval,
            rate: rate.max(1),
        }
    }

    /// Runs until `cancel` fires; a compaction in progress stops before its next needle.
    pub async fn run(self, cancel: CancellationToken) {
        if self.interval.is_zero() {
            tracing::info!("compaction disabled");
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
            while self.compact_one(&cancel).await {}
        }
        tracing::info!("compactor stopped");
    }

    /// Compacts one volume if one qualifies; returns whether it did.
    async fn compact_one(&self, cancel: &CancellationToken) -> bool {
        let (store, token, rate) = (self.store.clone(), cancel.clone(), self.rate);
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut pacer = Pacer::new(rate);
            store.compact_next(&mut |bytes| pacer.after(bytes), &|| token.is_cancelled())
        })
        .await;
        match outcome {
            Ok(Ok(Some(done))) => {
                tracing::info!(
                    volume = done.volume, copied = done.copied, reclaimed = done.reclaimed,
                    elapsed = ?started.elapsed(), "volume compacted"
                );
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                tracing::warn!("compaction failed: {e}");
                false
            }
            Err(e) => {
                tracing::warn!("compaction task failed: {e}");
                false
            }
        }
    }
}

/// Sleeps the compaction's thread so that it reads at most `rate` bytes a second.
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

    fn after(&mut self, bytes: u64) {
        self.bytes += bytes;
        let due = self.since + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}
