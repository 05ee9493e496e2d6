//! Holds of commits under way: chunks of accepted commits whose transaction runs outside the
//! cluster lock, held like leased ones since the namespace does not count their references yet.
//!
//! A hold is a guard ([`CommitHold`]): whatever path leaves the commit (an error returned with
//! `?`, a panic, a future dropped), dropping the guard releases it, so no chunk is held for
//! ever. The counts live behind their own small lock, not the cluster's, so that the guard can
//! release itself from anywhere, also while its thread holds the cluster lock (lock order:
//! cluster, then holds; the holds lock is never held while taking another).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bigfs_proto::lock::lock;
use bigfs_proto::ChunkId;

#[derive(Default)]
struct Counts {
    /// How many commits under way name each chunk.
    held: HashMap<ChunkId, u32>,
    /// Chunks of holds dropped with no outcome recorded: the cluster gives them a fresh write
    /// lease at its next garbage collection (see [`CommitHolds::take_released`]), so they
    /// become garbage the usual way if no file references them.
    released: Vec<ChunkId>,
}

/// The holds of every commit under way.
#[derive(Clone, Default)]
pub(super) struct CommitHolds(Arc<Mutex<Counts>>);

impl CommitHolds {
    pub(super) fn hold(&self, chunks: Vec<ChunkId>) -> CommitHold {
        let mut counts = lock(&self.0);
        for chunk in &chunks {
            *counts.held.entry(*chunk).or_default() += 1;
        }
        CommitHold {
            holds: self.clone(),
            chunks,
        }
    }

    pub(super) fn is_held(&self, chunk: &ChunkId) -> bool {
        lock(&self.0).held.contains_key(chunk)
    }

    /// The chunks of holds dropped without an outcome since the last call.
    pub(super) fn take_released(&self) -> Vec<ChunkId> {
        std::mem::take(&mut lock(&self.0).released)
    }

    fn release(&self, chunks: &[ChunkId], outcome_known: bool) {
        let mut counts = lock(&self.0);
        for chunk in chunks {
            if let Some(count) = counts.held.get_mut(chunk) {
                *count -= 1;
                if *count == 0 {
                    counts.held.remove(chunk);
                }
            }
        }
        if !outcome_known {
            counts.released.extend_from_slice(chunks);
        }
    }
}

/// One commit's hold on its chunks, from [`super::Cluster::begin_commit`] until its outcome is
/// recorded ([`super::Cluster::committed`], [`super::Cluster::commit_failed`]) or it is dropped.
#[must_use = "dropping the hold releases the commit's chunks"]
pub struct CommitHold {
    holds: CommitHolds,
    chunks: Vec<ChunkId>,
}

impl CommitHold {
    pub fn chunks(&self) -> &[ChunkId] {
        &self.chunks
    }

    /// Releases the hold with its outcome recorded by the caller.
    pub(super) fn end(mut self) -> Vec<ChunkId> {
        let chunks = std::mem::take(&mut self.chunks);
        self.holds.release(&chunks, true);
        chunks
    }
}

impl Drop for CommitHold {
    fn drop(&mut self) {
        if !self.chunks.is_empty() {
            self.holds.release(&self.chunks, false);
        }
    }
}
