//! `bigfs fsck` on the store: every referenced chunk classified by its live copies, the
//! cluster lock taken one batch of chunks at a time so that heartbeats are never held up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bigfs_proto::ChunkId;

use super::nodes::{safe_mode_status, SafeModeStatus};
use super::{blocking, MetaStore, FSCK_BATCH};
use crate::cluster::{ChunkHealth, FsckCounts};
use crate::error::MetaError;
use crate::namespace::Namespace;

/// A problem chunk, with a file that references it.
#[derive(Debug)]
pub struct FsckProblem {
    pub chunk: ChunkId,
    /// "under_replicated", "missing" or "corrupt".
    pub state: &'static str,
    pub live: u32,
    pub wanted: u32,
    pub path: Option<String>,
}

#[derive(Debug)]
pub struct FsckReport {
    pub files: u64,
    pub counts: FsckCounts,
    /// Chunks with any problem, listed or not.
    pub problem_chunks: u64,
    pub problems: Vec<FsckProblem>,
    pub safe_mode: Option<SafeModeStatus>,
    pub repairs_in_flight: u64,
}

impl MetaStore {
    /// Every referenced chunk classified by its live copies, and up to `limit` problem chunks
    /// with a file each. The cluster lock is taken one batch of chunks at a time, so heartbeats
    /// are never held up by a long check.
    pub async fn fsck(self: &Arc<Self>, limit: usize) -> Result<FsckReport, MetaError> {
        let store = self.clone();
        blocking(move || store.fsck_blocking(limit)).await
    }

    fn fsck_blocking(&self, limit: usize) -> Result<FsckReport, MetaError> {
        let mut counts = FsckCounts::default();
        let mut problems = Vec::new();
        let mut problem_chunks = 0;
        let mut table = self.ns.chunk_table();
        loop {
            let batch = table
                .by_ref()
                .take(FSCK_BATCH)
                .collect::<Result<Vec<_>, MetaError>>()?;
            if batch.is_empty() {
                break;
            }
            let cluster = self.cluster();
            let now = Instant::now();
            for (id, refs) in batch {
                let (live, health, corrupt) = cluster.classify(&id, refs.wanted(), now);
                counts.add(health, corrupt);
                if health == ChunkHealth::Healthy && !corrupt {
                    continue;
                }
                problem_chunks += 1;
                if problems.len() < limit {
                    problems.push(FsckProblem {
                        chunk: id,
                        state: match health {
                            ChunkHealth::Healthy => "corrupt",
                            other => other.as_str(),
                        },
                        live,
                        wanted: refs.wanted(),
                        path: None,
                    });
                }
            }
        }
        let (safe_mode, repairs_in_flight) = {
            let cluster = self.cluster();
            (
                safe_mode_status(&cluster, Instant::now()),
                cluster.repairs_in_flight() as u64,
            )
        };
        let mut paths = paths_of(&self.ns, problems.iter().map(|p| p.chunk).collect())?;
        for problem in &mut problems {
            problem.path = paths.remove(&problem.chunk);
        }
        Ok(FsckReport {
            files: self.ns.file_count()?,
            counts,
            problem_chunks,
            problems,
            safe_mode,
            repairs_in_flight,
        })
    }
}

/// A file referencing each of `chunks` (one scan of the namespace).
fn paths_of(ns: &Namespace, chunks: Vec<ChunkId>) -> Result<HashMap<ChunkId, String>, MetaError> {
    let mut wanted: HashSet<ChunkId> = chunks.into_iter().collect();
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    for file in ns.all_files() {
        let (path, record) = file?;
        for entry in &record.chunks {
            let id = entry.chunk_id()?;
            if wanted.remove(&id) {
                found.insert(id, path.clone());
            }
        }
        if wanted.is_empty() {
            break;
        }
    }
    Ok(found)
}
