//! The [`ChunkStore`]'s in-memory state: the index of every chunk stored (files and needles
//! alike), the space figures derived from it, the change log for heartbeats, and the space
//! reservations of writes in progress.

use std::collections::HashMap;
use std::num::NonZeroU32;

use bigfs_proto::ChunkId;

use super::needle;
use super::volume::NeedleAt;
use super::ChunkStore;

/// What the index knows of a stored chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// Lengths fit in `u32`: chunks are at most 64 MiB.
    pub(super) len: u32,
    /// Where its needle is; `None` for a chunk file under `chunks/`.
    pub(super) needle: Option<NeedleAt>,
}

impl Entry {
    pub(super) fn file(len: u32) -> Self {
        Self { len, needle: None }
    }
}

#[derive(Default)]
pub(super) struct StoreState {
    /// Every chunk stored, in a file or a volume.
    pub(super) index: HashMap<ChunkId, Entry>,
    /// Bytes of live needles (headers and padding included) in each volume: what compaction
    /// would keep of it.
    pub(super) volume_live: HashMap<NonZeroU32, u64>,
    /// The sum of `volume_live`.
    pub(super) volume_live_total: u64,
    /// The sum of the index's lengths.
    pub(super) stored: u64,
    /// Bytes promised to writes in progress (see [`Reservation`]).
    pub(super) reserved: u64,
    /// The latest state (present or not) of each chunk that changed since the last heartbeat.
    /// Only the final state matters to the metadata server, so a put and a delete of the same
    /// chunk between two beats collapse into one entry.
    pub(super) changes: HashMap<ChunkId, bool>,
    pub(super) corrupt: Vec<ChunkId>,
}

impl StoreState {
    /// The space taken: the chunks stored, the writes in progress, and the volumes' bytes that
    /// are not live needles (`volume_bytes` is their files' total): deleted needles and
    /// tombstones waiting for compaction, which are on the disk as surely as live chunks.
    pub(super) fn used(&self, volume_bytes: u64) -> u64 {
        self.stored + self.reserved + volume_bytes.saturating_sub(self.volume_live_total)
    }

    /// Forgets the live bytes of volume `number`, removed by compaction.
    pub(super) fn forget_volume(&mut self, number: NonZeroU32) {
        if let Some(live) = self.volume_live.remove(&number) {
            self.volume_live_total -= live;
        }
    }

    /// Records `id` as stored, replacing an earlier entry.
    pub(super) fn insert(&mut self, id: ChunkId, entry: Entry) {
        if let Some(old) = self.index.insert(id, entry) {
            self.unaccount(old);
        }
        self.account(entry);
        self.changes.insert(id, true);
    }

    /// Records `id` as gone from disk. Returns the entry the index held.
    pub(super) fn remove(&mut self, id: ChunkId) -> Option<Entry> {
        let entry = self.index.remove(&id)?;
        self.unaccount(entry);
        self.changes.insert(id, false);
        Some(entry)
    }

    /// Points `id`'s entry at its needle's copy `to` (compaction moved it): no change to
    /// report, the chunk is the same.
    pub(super) fn relocate(&mut self, id: ChunkId, to: NeedleAt) {
        let Some(entry) = self.index.get(&id).copied() else {
            return;
        };
        let moved = Entry {
            needle: Some(to),
            ..entry
        };
        self.index.insert(id, moved);
        self.unaccount(entry);
        self.account(moved);
    }

    pub(super) fn account(&mut self, entry: Entry) {
        self.stored += u64::from(entry.len);
        if let Some(at) = entry.needle {
            *self.volume_live.entry(at.volume).or_default() += needle::size(entry.len);
            self.volume_live_total += needle::size(entry.len);
        }
    }

    pub(super) fn unaccount(&mut self, entry: Entry) {
        self.stored -= u64::from(entry.len);
        if let Some(live) = entry
            .needle
            .and_then(|at| self.volume_live.get_mut(&at.volume))
        {
            let size = needle::size(entry.len).min(*live);
            *live -= size;
            self.volume_live_total -= size;
        }
    }
}

/// Space promised to one write in progress. It is given back when dropped (the write failed,
/// or unwound), unless [`Reservation::commit`] turned it into an index entry.
pub(super) struct Reservation<'a> {
    pub(super) store: &'a ChunkStore,
    pub(super) len: u32,
}

impl Reservation<'_> {
    /// Turns the reservation into the index entry of `id`, whose file was just renamed into
    /// place or whose needle (`needle`) was just written. Call with the chunk's lock held.
    pub(super) fn commit(mut self, id: ChunkId, needle: Option<NeedleAt>) {
        let mut state = self.store.state();
        state.reserved -= u64::from(self.len);
        state.insert(
            id,
            Entry {
                len: self.len,
                needle,
            },
        );
        // Nothing left to give back; `drop` must not take the state lock held here.
        self.len = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.store.state().reserved -= u64::from(self.len);
        }
    }
}
