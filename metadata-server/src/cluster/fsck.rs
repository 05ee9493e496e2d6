//! Health classification of chunks, for `bigfs fsck`.

use std::time::Instant;

use bigfs_proto::ChunkId;

use super::Cluster;

/// A referenced chunk's health, judged by its live copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkHealth {
    Healthy,
    UnderReplicated,
    Missing,
}

impl ChunkHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkHealth::Healthy => "healthy",
            ChunkHealth::UnderReplicated => "under_replicated",
            ChunkHealth::Missing => "missing",
        }
    }
}

/// Totals over the chunk table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsckCounts {
    pub chunks: u64,
    pub healthy: u64,
    pub under_replicated: u64,
    pub missing: u64,
    pub corrupt: u64,
}

impl Cluster {
    /// A chunk's live copies (on nodes not dead; draining ones count, they still serve) and
    /// its health given how many it should have. The second value says whether a copy of it
    /// was found corrupt and has not been replaced yet.
    pub fn classify(&self, chunk: &ChunkId, wanted: u32, now: Instant) -> (u32, ChunkHealth, bool) {
        let live = self.live_holders(chunk, now).len() as u32;
        let health = if live == 0 {
            ChunkHealth::Missing
        } else if live < wanted {
            ChunkHealth::UnderReplicated
        } else {
            ChunkHealth::Healthy
        };
        (live, health, self.corrupt.contains(chunk))
    }
}

impl FsckCounts {
    pub fn add(&mut self, health: ChunkHealth, corrupt: bool) {
        self.chunks += 1;
        match health {
            ChunkHealth::Healthy => self.healthy += 1,
            ChunkHealth::UnderReplicated => self.under_replicated += 1,
            ChunkHealth::Missing => self.missing += 1,
        }
        if corrupt {
            self.corrupt += 1;
        }
    }
}
