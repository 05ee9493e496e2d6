//! Repair: bringing every referenced chunk back to its wanted number of copies.
//!
//! Each maintenance tick looks at the chunks whose copies changed (a node died, a copy was
//! lost, corrupt or reported, a commit left fewer than R, a node came back or started
//! draining). Chunks short of copies are repaired fewest-copies-first: the least busy live
//! holder is told to copy the chunk to new targets chosen by placement, and the target
//! verifies it. Orders are taken to be sent as soon as they are planned ([`Cluster::take_orders`];
//! the metadata server calls Node.Replicate on the source), and a copy counts as soon as its
//! answer comes back ([`Cluster::copy_done`]) or the target reports the chunk, whichever is
//! first. Each answer frees room for the next plan, which does not wait for the next tick.
//!
//! At most `repair_concurrency` copies are in flight per node as source and as target. A copy
//! that failed, whose order went unanswered ([`Cluster::orders_unanswered`]: the call broke),
//! whose source or target died, or that is not confirmed within [`REPAIR_TIMEOUT`], is planned
//! again. Chunks with more copies than wanted lose the extras, but only confirmed copies count,
//! so the last good copy is never removed, and a copy confirmed twice is one location.

use std::time::{Duration, Instant};

use bigfs_proto::{ChunkId, NodeRef};

use super::{Cluster, NodeState, Replication};
use crate::placement::NodeIdx;

/// How long a copy order may go unanswered before it is planned again. A broken call and a
/// dead node are noticed sooner; this catches a node that is alive but stuck, and leaves room
/// for the orders queued behind a node's repair window.
pub const REPAIR_TIMEOUT: Duration = Duration::from_secs(60);

/// A chunk short of copies, waiting for room to copy it.
#[derive(Debug)]
pub(super) struct Short {
    /// Its live copies: the fewest go first.
    live: usize,
    chunk: ChunkId,
    /// Copies to order.
    missing: usize,
}

/// Repair copies since the start, for metrics.
#[derive(Debug, Default)]
pub(super) struct RepairCounts {
    /// Answered as stored by their source.
    pub(super) stored: u64,
    /// Given up and planned again: failed, unanswered, timed out, or their node died.
    pub(super) failed: u64,
}

/// A source's answer to its order to copy a chunk.
#[derive(Debug, Default)]
pub struct CopyAnswer {
    /// Targets that hold a copy now.
    pub stored: Vec<String>,
    /// Targets that do not.
    pub failed: Vec<String>,
    /// The source could not read its own copy (gone, or corrupt and quarantined).
    pub source_failed: bool,
}

/// Copy orders for one source node, to be sent to it in one call.
#[derive(Debug, PartialEq, Eq)]
pub struct OrderBatch {
    pub source: NodeRef,
    pub orders: Vec<Replication>,
}

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
        let looked_at = std::mem::take(&mut self.attention);
        // Chunks still short from earlier rounds, unless something changed them (then they
        // are in `looked_at` and counted afresh): no store lookup per waiting chunk, so that
        // planning after every answer stays cheap with many chunks waiting.
        let mut short: Vec<Short> = std::mem::take(&mut self.repair_queue)
            .into_iter()
            .filter(|s| !looked_at.contains(&s.chunk))
            .collect();
        for chunk in looked_at {
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
                short.push(Short {
                    live: holders.len(),
                    chunk,
                    missing: want - holders.len() - in_flight,
                });
            } else if holders.len() > want && in_flight == 0 {
                self.trim(&chunk, &holders, want);
            }
        }
        short.sort_by_key(|s| s.live);
        for mut waiting in short {
            let started = match self.has_free_source(&waiting.chunk, now) {
                true => self.start_repair(&waiting.chunk, waiting.missing, now),
                false => 0,
            };
            if started < waiting.missing {
                waiting.missing -= started;
                self.repair_queue.push(waiting);
            }
        }
        self.update_drained(&wanted, now);
    }

    /// The copy orders planned since the last call, by source node, to be sent now.
    pub fn take_orders(&mut self) -> Vec<OrderBatch> {
        let mut batches = Vec::new();
        for node in &mut self.nodes {
            if node.pending_replications.is_empty() {
                continue;
            }
            batches.push(OrderBatch {
                source: NodeRef {
                    id: node.id.clone(),
                    addr: node.addr.clone(),
                },
                orders: std::mem::take(&mut node.pending_replications),
            });
        }
        batches
    }

    /// `source` answered its order to copy `chunk`: the targets in `stored` hold a copy now
    /// (unless a delete of it is in flight there), those in `failed` do not, and their copies
    /// are planned again. A source that could not read its own copy no longer counts as a
    /// holder (its node reports the chunk gone or corrupt on its next beat anyway), so the copy
    /// is planned from another holder, not ordered from it again and again.
    pub fn copy_done(
        &mut self,
        source: &str,
        chunk: ChunkId,
        answer: &CopyAnswer,
        wanted: impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) {
        self.repair_counts.stored += answer.stored.len() as u64;
        for target in &answer.stored {
            self.record_acked_copy(chunk, target, &wanted, now);
        }
        let Some(&source) = self.by_id.get(source) else {
            return;
        };
        if answer.source_failed {
            let node = &self.nodes[source as usize].id;
            tracing::warn!(chunk = %chunk, %node, "source cannot read its copy: it no longer counts");
            self.remove_location(source, &chunk, now);
        }
        let failed: Vec<NodeIdx> = answer
            .failed
            .iter()
            .filter_map(|id| self.by_id.get(id).copied())
            .collect();
        if !failed.is_empty() {
            tracing::info!(chunk = %chunk, failed = failed.len(), "copy failed: planning it again");
            self.drop_repairs(&chunk, |r| r.source == source && failed.contains(&r.target));
        }
    }

    /// The call carrying `source`'s orders to copy `chunks` ended before answering them: they
    /// are planned again (a copy that did land is reported by its target).
    pub fn orders_unanswered(&mut self, source: &str, chunks: &[ChunkId]) {
        let Some(&source) = self.by_id.get(source) else {
            return;
        };
        for chunk in chunks {
            self.drop_repairs(chunk, |r| r.source == source);
        }
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
        self.repair_counts.failed += dropped.len() as u64;
        for repair in &dropped {
            self.release(repair);
        }
        if !kept.is_empty() {
            self.repairs.insert(*chunk, kept);
        }
        self.attention.insert(*chunk);
    }

    /// Whether some live holder of `chunk` may take one more copy as its source: a cheap
    /// test before [`Self::start_repair`], which also looks for targets.
    fn has_free_source(&self, chunk: &ChunkId, now: Instant) -> bool {
        let limit = self.config.repair_concurrency;
        self.locations.get(chunk).is_some_and(|holders| {
            holders.iter().any(|&idx| {
                let node = &self.nodes[idx as usize];
                node.repairs_as_source < limit
                    && self.state(node, now) != NodeState::Dead
                    && node.copy_counts(chunk)
            })
        })
    }

    /// Orders up to `missing` new copies of `chunk`. Returns how many were ordered.
    fn start_repair(&mut self, chunk: &ChunkId, missing: usize, now: Instant) -> usize {
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
            return 0;
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
            return 0;
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
        targets.len()
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
