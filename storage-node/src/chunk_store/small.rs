//! The [`ChunkStore`]'s calls on needles: put, read, delete and quarantine of chunks kept in
//! volumes (docs/SMALL-CHUNKS.md). The calls on chunk files are in the parent module, which
//! routes to these by the chunk's length (put) or index entry (the rest).

use std::fs;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use bigfs_proto::ChunkId;

use super::needle::{self, Header, Kind, HEADER};
use super::volume::{NeedleAt, Volume};
use super::{ChunkStore, Read, Reservation};
use crate::error::NodeError;

/// A needle the index points at, and its volume (`None` only if the volume is gone, which the
/// index never allows; then the chunk is treated as vanished).
pub(super) struct Found {
    at: NeedleAt,
    len: u32,
    volume: Option<Arc<Volume>>,
}

/// The small-chunk store's share of the node's space figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeUsage {
    pub volumes: u64,
    /// Bytes of the volume files.
    pub bytes: u64,
    /// Bytes of the needles of chunks stored: what compaction would keep.
    pub live: u64,
}

impl ChunkStore {
    /// Appends `data` (verified by the caller) as a needle, waits for the group commit when
    /// writes are synced, and indexes it with the space `reservation` holds.
    ///
    /// The chunk's lock is held from the append to the index, through the group commit's wait:
    /// compaction and deletes decide by the index under that lock, and a needle on disk that
    /// the index does not know yet would be taken for garbage. Compaction would copy a
    /// tombstone of the chunk's earlier copy after it (the next open would then drop the
    /// acknowledged chunk), or unlink its sealed volume; a delete would put its tombstone after
    /// it. Puts of other chunks share the fsync as before.
    pub(super) fn put_needle(
        &self,
        id: ChunkId,
        data: &[u8],
        reservation: Reservation<'_>,
    ) -> Result<(), NodeError> {
        let _guard = self.lock(&id);
        let appended = self
            .volumes
            .append(id, &needle::encode(Kind::Chunk, id, data))?;
        if self.fsync {
            appended.volume.sync_through(appended.end, &self.counters)?;
        }
        reservation.commit(id, Some(appended.at));
        Ok(())
    }

    /// The needle of `id` if the index has the chunk in a volume. The volume is looked up
    /// under the index's lock: compaction repoints the index before it drops a volume, so a
    /// volume the index names is always there.
    pub(super) fn find_needle(&self, id: ChunkId) -> Option<Found> {
        let state = self.state();
        let entry = state.index.get(&id)?;
        let at = entry.needle?;
        Some(Found {
            at,
            len: entry.len,
            volume: self.volumes.get(at.volume),
        })
    }

    /// Reads and verifies the needle `found` of `id`: its header must name the chunk and its
    /// length, and its payload must hash to the id. A bad one is quarantined.
    pub(super) fn read_needle(&self, id: ChunkId, found: Found) -> Result<Read, NodeError> {
        let Some(volume) = found.volume else {
            let _guard = self.lock(&id);
            let mut state = self.state();
            let indexed = state.index.get(&id).and_then(|e| e.needle) == Some(found.at);
            if indexed {
                state.remove(id);
                tracing::warn!(chunk = %id, "chunk's volume is gone; reporting the chunk removed");
            }
            return Ok(Read::Missing { indexed });
        };
        let at = found.at;
        let bytes = match volume.read_at(at.offset(), HEADER + found.len as usize) {
            Ok(bytes) => bytes,
            // The volume is shorter than the index says: cut behind the node's back.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Vec::new(),
            Err(e) => {
                let context = format!("read chunk {id} from {}", volume.path().display());
                return Err(NodeError::io(context, e));
            }
        };
        let expected = Header {
            kind: Kind::Chunk,
            len: found.len,
            id,
        };
        if needle::decode(&bytes) == Some(expected) && id.matches(&bytes[HEADER..]) {
            return Ok(Read::Good(Bytes::from(bytes).slice(HEADER..)));
        }
        if !self.quarantine_needle(id, at, &bytes)? {
            return Ok(Read::Missing { indexed: false });
        }
        self.counters.verification_failed("stored");
        Ok(Read::Corrupt {
            bytes: found.len.into(),
        })
    }

    /// Quarantines the needle of `id` at `at`, whose bytes as read were `seen`. Returns whether
    /// it did: not if the index no longer points there (deleted, or replaced by a new put).
    pub(super) fn quarantine_needle(
        &self,
        id: ChunkId,
        at: NeedleAt,
        seen: &[u8],
    ) -> Result<bool, NodeError> {
        let _guard = self.lock(&id);
        self.quarantine_needle_locked(id, at, seen)
    }

    /// [`Self::quarantine_needle`] with the chunk's lock held: keeps the bytes as read under
    /// `quarantine/`, appends a tombstone so that a restart does not index the bad needle
    /// again, drops it from the index and reports it corrupt.
    pub(super) fn quarantine_needle_locked(
        &self,
        id: ChunkId,
        at: NeedleAt,
        seen: &[u8],
    ) -> Result<bool, NodeError> {
        if self.state().index.get(&id).and_then(|e| e.needle) != Some(at) {
            return Ok(false);
        }
        let target = self.quarantine_target(id);
        fs::write(&target, seen).map_err(|e| NodeError::io(format!("quarantine chunk {id}"), e))?;
        if let Err(e) = self
            .volumes
            .append(id, &needle::tombstone(id, at.volume.get()))
        {
            // Not served either way; without the tombstone a restart indexes the needle
            // again and its next read finds it bad again.
            tracing::warn!(chunk = %id, "cannot record a quarantined needle: {e}");
        }
        tracing::warn!(
            chunk = %id, volume = at.volume.get(), offset = at.offset(), to = %target.display(),
            "corrupt needle quarantined"
        );
        self.counters.quarantined.inc();
        let mut state = self.state();
        state.remove(id);
        state.corrupt.push(id);
        Ok(true)
    }

    /// Quarantines a needle that [`Volumes::open`](super::volume::Volumes::open) found bad:
    /// keeps its bytes, and appends a tombstone so that it is not found again, unless a later
    /// needle of the same chunk is indexed (a tombstone now would delete that one).
    pub(super) fn quarantine_found_at_open(
        &self,
        id: ChunkId,
        at: NeedleAt,
        seen: &[u8],
    ) -> Result<(), NodeError> {
        let target = self.quarantine_target(id);
        fs::write(&target, seen).map_err(|e| NodeError::io(format!("quarantine chunk {id}"), e))?;
        if !self.state().index.contains_key(&id) {
            self.volumes
                .append(id, &needle::tombstone(id, at.volume.get()))?;
        }
        tracing::warn!(
            chunk = %id, volume = at.volume.get(), offset = at.offset(), to = %target.display(),
            "corrupt needle found at start quarantined"
        );
        self.counters.quarantined.inc();
        self.counters.verification_failed("stored");
        Ok(())
    }

    /// Deletes `id` if it is a needle (call with its lock held): appends a tombstone naming
    /// the needle's volume and drops the index entry. Returns whether it was a needle.
    pub(super) fn delete_needle(&self, id: ChunkId) -> Result<bool, NodeError> {
        let Some(at) = self.state().index.get(&id).and_then(|e| e.needle) else {
            return Ok(false);
        };
        self.volumes
            .append(id, &needle::tombstone(id, at.volume.get()))?;
        self.state().remove(id);
        Ok(true)
    }

    /// The small-chunk store's volumes and bytes, for metrics.
    pub fn volume_usage(&self) -> VolumeUsage {
        let (volumes, bytes) = self.volumes.usage();
        let live = self.state().volume_live_total;
        VolumeUsage {
            volumes,
            bytes,
            live,
        }
    }
}
