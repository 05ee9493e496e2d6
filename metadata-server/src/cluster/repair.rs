//! Repair: bringing every referenced chunk back to its wanted number of copies.
//!
//! Each maintenance tick looks at the chunks whose copies changed (a node died, a copy was
//! lost, corrupt or reported, a commit left fewer than R, a node came back or started
//! draining). Chunks short of copies are repaired fewest-copies-first: a live holder is told,
//! on its next heartbeat, to copy the chunk to new targets chosen by placement, and the target
//! verifies it. At most `repair_concurrency` copies are in flight per node as source and as
//! target. A copy that is not confirmed (by the target's report) within [`REPAIR_TIMEOUT`] is
//! planned again. Chunks with more copies than wanted lose the extras, but only confirmed
//! copies count, so the last good copy is never removed.

use std::time::{Duration, Instant};

use bigfs_proto::ChunkId;

use super::{Cluster, NodeState, Replication};
use crate::placement::NodeIdx;

/// How long a copy order may take before it is planned again.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// One copy in flight.
#[derive(Debug)]
pub(super) struct Repair {
    pub(super) source: NodeIdx,
    pub(super) target: NodeIdx,
    started: Instant,
}

impl Cluster {
    /// Notices nodes that died or came back, expires stuck copies, plans copies for chunks short
    /// of copies (fewest first) and trims chunks with too many. Does nothing in safe mode.
    pub fn plan_repairs(&mut self, wanted: impl Fn(&ChunkId) -> u32, now: Instant) {
        self.note_liveness_changes(now);
        self.expire_repairs(now);
        if self.safe_mode.is_some() {
            return;
        }
        let mut short = Vec::new();
        for chunk in std::mem::take(&mut self.attention) {
            let want = wanted(&chunk) as usize;
            if want == 0 {
                // Unreferenced: garbage collection's business, not repair's.
                self.corrupt.remove(&chunk);
                continue;
            }
            let holders = self.repair_holders(&chunk, now);
            let in_flight = self.repairs.get(&chunk).map_or(0, Vec::len);
            if holders.len() >= want {
                self.corrupt.remove(&chunk);
            }
            if holders.len() + in_flight < want {
                short.push((holders.len(), chunk, want - holders.len() - in_flight));
            } else if holders.len() > want && in_flight == 0 {
                self.trim(&chunk, &holders, want);
            }
        }
        short.sort_by_key(|&(live, ..)| live);
        for (_, chunk, missing) in short {
            if !self.start_repair(&chunk, missing, now) {
                self.attention.insert(chunk);
            }
        }
        self.update_drained(&wanted, now);
    }

    pub fn repairs_in_flight(&self) -> usize {
        self.repairs.values().map(Vec::len).sum()
    }

    /// Copies that count towards a chunk's wanted number: on live, non-draining nodes and not
    /// about to be deleted.
    pub(super) fn repair_holders(&self, chunk: &ChunkId, now: Instant) -> Vec<NodeIdx> {
        self.live_holders(chunk, now)
            .into_iter()
            .filter(|&idx| !self.nodes[idx as usize].draining)
            .collect()
    }

    /// A target reported the chunk: its copy order is done.
    pub(super) fn finish_repair(&mut self, chunk: &ChunkId, target: NodeIdx) {
        let Some(repairs) = self.repairs.get_mut(chunk) else {
            return;
        };
        let Some(pos) = repairs.iter().position(|r| r.target == target) else {
            return;
        };
        let repair = repairs.swap_remove(pos);
        if repairs.is_empty() {
            self.repairs.remove(chunk);
        }
        self.release(&repair);
    }

    fn release(&mut self, repair: &Repair) {
        let source = &mut self.nodes[repair.source as usize];
        source.repairs_as_source = source.repairs_as_source.saturating_sub(1);
        let target = &mut self.nodes[repair.target as usize];
        target.repairs_as_target = target.repairs_as_target.saturating_sub(1);
    }

    /// A node that died takes its copies and copy orders with it; one that came back may
    /// hold copies that are now extra. Either way its chunks need a look.
    fn note_liveness_changes(&mut self, now: Instant) {
        for idx in 0..self.nodes.len() {
            let state = self.state(&self.nodes[idx], now);
            let node = &mut self.nodes[idx];
            let was = std::mem::replace(&mut node.last_state, state);
            if (was == NodeState::Dead) == (state == NodeState::Dead) {
                continue;
            }
            if state == NodeState::Dead {
                tracing::warn!(node = %node.id, chunks = node.chunks.len(), "node is dead");
                node.pending_replications.clear();
                let idx = idx as NodeIdx;
                let stuck: Vec<ChunkId> = self
                    .repairs
                    .iter()
                    .filter(|(_, rs)| rs.iter().any(|r| r.source == idx || r.target == idx))
                    .map(|(chunk, _)| *chunk)
                    .collect();
                for chunk in stuck {
                    self.drop_repairs(&chunk, |r| r.source == idx || r.target == idx);
                }
            } else {
                tracing::info!(node = %node.id, "node is back");
            }
            let chunks: Vec<ChunkId> = self.nodes[idx].chunks.iter().copied().collect();
            self.attention.extend(chunks);
        }
    }

    fn expire_repairs(&mut self, now: Instant) {
        let stuck: Vec<ChunkId> = self
            .repairs
            .iter()
            .filter(|(_, rs)| {
                rs.iter()
                    .any(|r| now.duration_since(r.started) >= REPAIR_TIMEOUT)
            })
            .map(|(chunk, _)| *chunk)
            .collect();
        for chunk in stuck {
            tracing::info!(chunk = %chunk, "copy not confirmed in time: planning it again");
            self.drop_repairs(&chunk, |r| now.duration_since(r.started) >= REPAIR_TIMEOUT);
        }
    }

    fn drop_repairs(&mut self, chunk: &ChunkId, matches: impl Fn(&Repair) -> bool) {
        let Some(mut repairs) = self.repairs.remove(chunk) else {
            return;
        };
        let (dropped, kept): (Vec<_>, Vec<_>) = repairs.drain(..).partition(|r| matches(r));
        for repair in &dropped {
            self.release(repair);
        }
        if !kept.is_empty() {
            self.repairs.insert(*chunk, kept);
        }
        self.attention.insert(*chunk);
    }

    /// Orders `missing` new copies of `chunk`. Returns whether all of them were ordered.
    fn start_repair(&mut self, chunk: &ChunkId, missing: usize, now: Instant) -> bool {
        let limit = self.config.repair_concurrency;
        let mut sources = self.live_holders(chunk, now);
        sources.retain(|&idx| self.nodes[idx as usize].repairs_as_source < limit);
        sources.sort_by_key(|&idx| {
            let node = &self.nodes[idx as usize];
            (
                self.state(node, now) != NodeState::Alive,
                node.repairs_as_source,
            )
        });
        let Some(&source) = sources.first() else {
            return false;
        };
        let holders = self.locations.get(chunk).cloned().unwrap_or_default();
        let busy: Vec<NodeIdx> = self
            .repairs
            .get(chunk)
            .map(|rs| rs.iter().map(|r| r.target).collect())
            .unwrap_or_default();
        let size = self.config.chunk_size;
        let targets = self.placement.targets(chunk, missing, |idx| {
            let node = &self.nodes[idx as usize];
            !holders.contains(&idx)
                && !busy.contains(&idx)
                && node.repairs_as_target < limit
                && self.accepts_new(node, size, now)
        });
        if targets.is_empty() {
            return false;
        }
        let order = Replication {
            chunk: *chunk,
            targets: self.addresses(&targets),
        };
        tracing::debug!(chunk = %chunk, source = %self.nodes[source as usize].id, copies = targets.len(), "repair ordered");
        self.nodes[source as usize].pending_replications.push(order);
        self.nodes[source as usize].repairs_as_source += targets.len();
        for &target in &targets {
            self.nodes[target as usize].repairs_as_target += 1;
            self.repairs.entry(*chunk).or_default().push(Repair {
                source,
                target,
                started: now,
            });
        }
        targets.len() == missing
    }

    /// Deletes the copies beyond `want`, keeping the ones placement prefers.
    fn trim(&mut self, chunk: &ChunkId, holders: &[NodeIdx], want: usize) {
        let keep = self
            .placement
            .targets(chunk, want, |idx| holders.contains(&idx));
        for &idx in holders.iter().filter(|idx| !keep.contains(idx)) {
            let node = &mut self.nodes[idx as usize];
            tracing::info!(chunk = %chunk, node = %node.id, "removing an extra copy");
            node.pending_deletes.insert(*chunk);
        }
    }

    fn update_drained(&mut self, wanted: &impl Fn(&ChunkId) -> u32, now: Instant) {
        for idx in 0..self.nodes.len() {
            // Once drained, a node stays drained: only its removal is left to the operator.
            if !self.nodes[idx].draining || self.nodes[idx].drained {
                continue;
            }
            let drained = self.nodes[idx]
                .chunks
                .iter()
                .all(|chunk| self.repair_holders(chunk, now).len() >= wanted(chunk) as usize);
            let node = &mut self.nodes[idx];
            if drained {
                tracing::info!(node = %node.id, "node drained: every chunk on it has enough copies elsewhere");
                self.newly_drained.push(node.id.clone());
            }
            node.drained = drained;
        }
    }
}
