//! The cluster's soft state: storage nodes, where each chunk's copies are, and what to delete.
//!
//! None of this is persisted. Locations come from the nodes' reports and the acks named in
//! commits, and are rebuilt after a restart, as HDFS rebuilds block locations from block
//! reports. The rules of DESIGN.md's chunk lifecycle live here:
//!
//! - **Late deletion.** A chunk no file references is deleted only after `gc_grace` since it
//!   was seen unreferenced: since the change that took its last reference was made durable
//!   (freed again, its grace starts again), or since a node first reported an orphan copy. Never
//!   while a put holds a write lease on it or a commit naming it is under way.
//! - **No copy counted twice.** A copy with a delete queued or in flight does not count; an
//!   allocation or commit that needs the chunk again cancels the queued deletes.
//! - **Safe mode.** After a restart, nothing is deleted until every known node has reported or
//!   the safe-mode timeout has passed.
//!
//! - **Repair copies, never moves.** A chunk short of copies is copied node to node, fewest
//!   copies first, with a bounded number of copies in flight per node ([`repair`]); a chunk
//!   with too many loses the extras only while enough confirmed copies remain.
//!
//! Deletes reach nodes on heartbeat replies. A node carries them out before its next beat, so
//! that beat confirms them; until then a copy under an in-flight delete is not trusted, even if
//! the node acknowledges a new write of the same chunk (the delete may land after the write).
//! Copy orders do not wait for beats: they are taken as soon as they are planned
//! ([`Cluster::take_orders`]) and each copy's answer confirms it ([`Cluster::copy_done`]).
//!
//! Methods take `now` so the rules are tested without sleeping.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bigfs_proto::{ChunkId, NodeRef};

use crate::error::MetaError;
use crate::placement::{NodeIdx, Placement};

mod decommission;
mod fsck;
mod gauges;
mod gc;
pub mod holds;
mod repair;

pub use fsck::{ChunkHealth, FsckCounts};
pub use gauges::ClusterGauges;
pub use holds::CommitHold;
use holds::CommitHolds;
pub use repair::{CopyAnswer, OrderBatch, REPAIR_TIMEOUT};

/// How many deletes one heartbeat reply carries at most: the node carries them out before its
/// next beat, which must not be late.
const DELETES_PER_BEAT: usize = 1024;

/// Tombstones outlive any ack that could still arrive: a put older than the write lease has lost
/// its chunks' protection anyway.
const TOMBSTONE_LEASES: u32 = 2;

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub replication: u32,
    pub min_replicas: u32,
    pub heartbeat_timeout: Duration,
    pub gc_grace: Duration,
    /// How long chunks handed out for a put are protected before it commits.
    pub write_lease: Duration,
    pub safe_mode_timeout: Duration,
    /// Copies ordered and not yet answered per node, as source and as target each: a bound
    /// per chunk, so it is set high enough for small chunks; the bytes in flight are bounded
    /// by each node's repair window.
    pub repair_concurrency: usize,
    /// The largest chunk: room a node needs to take one more.
    pub chunk_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Alive,
    /// Missed heartbeats for half the timeout: its copies still count, but it gets no new ones.
    Suspect,
    /// Missed heartbeats for the whole timeout: its copies do not count.
    Dead,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "dead",
        }
    }
}

/// Space and chunk figures a node reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeUsage {
    pub capacity: u64,
    pub used: u64,
    pub chunks: u64,
}

struct NodeEntry {
    id: String,
    addr: String,
    usage: NodeUsage,
    last_heartbeat: Instant,
    /// The state seen at the last maintenance tick, to notice deaths and returns.
    last_state: NodeState,
    /// Registered with a full report since this metadata server started.
    registered: bool,
    /// Being decommissioned: takes no new chunks, its copies do not count towards repair.
    draining: bool,
    /// Draining, and every chunk on it has enough copies elsewhere.
    drained: bool,
    /// Removed by an operator: kept only so that node indices stay valid. A node that comes
    /// back under the same id gets a new entry.
    removed: bool,
    chunks: HashSet<ChunkId>,
    pending_deletes: HashSet<ChunkId>,
    inflight_deletes: HashSet<ChunkId>,
    /// Chunks this node deleted or lost, and when: acks for them are not trusted until the
    /// node reports the chunk again. Forgotten after [`TOMBSTONE_LEASES`] write leases.
    tombstones: HashMap<ChunkId, Instant>,
    /// Copy orders planned and not yet taken to be sent ([`Cluster::take_orders`]).
    pending_replications: Vec<Replication>,
    repairs_as_source: usize,
    repairs_as_target: usize,
}

impl NodeEntry {
    /// Whether this node's copy of `chunk` counts (it may be about to disappear otherwise).
    fn copy_counts(&self, chunk: &ChunkId) -> bool {
        !self.pending_deletes.contains(chunk) && !self.inflight_deletes.contains(chunk)
    }
}

/// A node's public view, for `bigfs nodes`.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub id: String,
    pub addr: String,
    pub state: NodeState,
    pub draining: bool,
    pub drained: bool,
    pub usage: NodeUsage,
    pub since_heartbeat: Duration,
}

impl NodeView {
    /// "alive", "suspect", "dead", "draining" or "drained".
    pub fn state_name(&self) -> &'static str {
        match (self.state, self.drained, self.draining) {
            (NodeState::Dead, ..) => "dead",
            (_, true, _) => "drained",
            (_, _, true) => "draining",
            (state, ..) => state.as_str(),
        }
    }
}

/// An order to copy a chunk from the node it is sent to, down a chain of targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replication {
    pub chunk: ChunkId,
    /// In chain order.
    pub targets: Vec<NodeRef>,
}

/// What a heartbeat reports: the node's usage and its changes since the previous beat.
#[derive(Debug, Default)]
pub struct Beat {
    pub usage: NodeUsage,
    pub added: Vec<ChunkId>,
    pub removed: Vec<ChunkId>,
    pub corrupt: Vec<ChunkId>,
}

/// What a heartbeat reply tells a node to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Commands {
    pub deletes: Vec<ChunkId>,
    /// The node is being drained (or is drained): it reports itself not ready.
    pub draining: bool,
}

/// Where to send a chunk, or where it already is.
#[derive(Debug, PartialEq, Eq)]
pub struct Allocation {
    pub already_stored: bool,
    /// In chain order.
    pub targets: Vec<NodeRef>,
    /// Live copies it already has, when not already stored.
    pub holders: Vec<NodeRef>,
}

/// A chunk a client asks to store.
pub struct Want {
    pub id: ChunkId,
    pub size: u64,
    pub exclude: Vec<String>,
    /// New copies wanted; 0 means "up to the replication factor".
    pub copies: u32,
}

pub struct Cluster {
    config: ClusterConfig,
    nodes: Vec<NodeEntry>,
    by_id: HashMap<String, NodeIdx>,
    placement: Placement,
    locations: HashMap<ChunkId, Vec<NodeIdx>>,
    /// Chunks handed out for puts that have not committed, with the time of the latest hand-out.
    leases: HashMap<ChunkId, Instant>,
    /// Chunks of accepted commits whose transaction is under way outside the cluster lock.
    commits: CommitHolds,
    /// Chunks on some node that no file references, with when that was first seen.
    unreferenced: HashMap<ChunkId, Instant>,
    /// After a restart, the leases of puts that were in progress are unknown: until this time
    /// every chunk first seen unreferenced is treated as still handed out.
    leases_unknown_until: Option<Instant>,
    /// Chunks whose copies changed: the next maintenance tick checks them for repair or trim.
    attention: HashSet<ChunkId>,
    /// Copies being made, by chunk.
    repairs: HashMap<ChunkId, Vec<repair::Repair>>,
    /// Chunks short of copies that found no room at the last plan, for the next one.
    repair_queue: Vec<repair::Short>,
    repair_counts: repair::RepairCounts,
    /// Chunks with a copy found corrupt, until they have enough good copies again.
    corrupt: HashSet<ChunkId>,
    safe_mode: Option<SafeMode>,
    /// Nodes to drain, also those that have not registered since a restart: a node drains
    /// again as soon as it registers.
    drains: HashSet<String>,
    /// Nodes whose drain finished since [`Cluster::take_newly_drained`] last took them.
    newly_drained: Vec<String>,
}

struct SafeMode {
    until: Instant,
    waiting_for: HashSet<String>,
}

impl Cluster {
    /// `known_nodes` are the nodes that registered before a restart: until they report again
    /// (or the safe-mode timeout passes) nothing is deleted.
    pub fn new(config: ClusterConfig, known_nodes: Vec<String>, now: Instant) -> Self {
        let restarted = !known_nodes.is_empty();
        let safe_mode = restarted.then(|| SafeMode {
            until: now + config.safe_mode_timeout,
            waiting_for: known_nodes.into_iter().collect(),
        });
        let leases_unknown_until = restarted.then(|| now + config.write_lease);
        Self {
            config,
            nodes: Vec::new(),
            by_id: HashMap::new(),
            placement: Placement::default(),
            locations: HashMap::new(),
            leases: HashMap::new(),
            commits: CommitHolds::default(),
            unreferenced: HashMap::new(),
            leases_unknown_until,
            attention: HashSet::new(),
            repairs: HashMap::new(),
            repair_queue: Vec::new(),
            repair_counts: repair::RepairCounts::default(),
            corrupt: HashSet::new(),
            drains: HashSet::new(),
            newly_drained: Vec::new(),
            safe_mode,
        }
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn in_safe_mode(&self) -> bool {
        self.safe_mode.is_some()
    }

    /// A node's full chunk report: it replaces everything known of that node's copies.
    /// `wanted` says how many copies a chunk should have (0: no file references it).
    pub fn register(
        &mut self,
        id: &str,
        addr: &str,
        usage: NodeUsage,
        chunks: Vec<ChunkId>,
        wanted: impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) {
        let idx = self.node_index(id, addr, now);
        let node = &mut self.nodes[idx as usize];
        node.addr = addr.to_string();
        node.usage = usage;
        node.last_heartbeat = now;
        node.registered = true;
        // Deletes sent earlier were carried out before this report was made.
        node.inflight_deletes.clear();
        let old = std::mem::take(&mut node.chunks);
        for chunk in old {
            self.remove_location(idx, &chunk, now);
        }
        for chunk in chunks {
            self.add_location(idx, chunk, &wanted, now);
        }
        self.stop_waiting_for(id);
    }

    /// Safe mode no longer waits for node `id` (it reported, or it needs no waiting for).
    fn stop_waiting_for(&mut self, id: &str) {
        if let Some(safe) = &mut self.safe_mode {
            safe.waiting_for.remove(id);
            if safe.waiting_for.is_empty() {
                tracing::info!("every known node has reported: leaving safe mode");
                self.safe_mode = None;
            }
        }
    }

    /// While in safe mode: the nodes it waits for, sorted, and how long it waits at most.
    pub fn safe_mode_waiting(&self, now: Instant) -> Option<(Vec<String>, Duration)> {
        self.safe_mode.as_ref().map(|safe| {
            let mut ids: Vec<String> = safe.waiting_for.iter().cloned().collect();
            ids.sort();
            (ids, safe.until.saturating_duration_since(now))
        })
    }

    /// A heartbeat with the changes since the previous one. Returns what the node must do, or
    /// `None` when it must register again with a full report.
    pub fn heartbeat(
        &mut self,
        id: &str,
        beat: Beat,
        wanted: impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) -> Option<Commands> {
        let Beat {
            usage,
            added,
            removed,
            corrupt,
        } = beat;
        let idx = *self.by_id.get(id)?;
        let node = &mut self.nodes[idx as usize];
        if !node.registered {
            return None;
        }
        node.usage = usage;
        node.last_heartbeat = now;
        let sent = std::mem::take(&mut node.inflight_deletes);
        for chunk in &corrupt {
            tracing::warn!(node = id, chunk = %chunk, "node reports a corrupt copy");
            self.corrupt.insert(*chunk);
        }
        for chunk in removed.iter().chain(&corrupt) {
            self.remove_location(idx, chunk, now);
        }
        // Deletes the node did not confirm (the reply carrying them was lost) are decided anew.
        let confirmed: HashSet<&ChunkId> = removed.iter().chain(&corrupt).collect();
        for chunk in sent.iter().filter(|c| !confirmed.contains(c)) {
            if !self.nodes[idx as usize].chunks.contains(chunk) {
                continue;
            }
            if wanted(chunk) == 0 && !self.held(chunk) {
                self.nodes[idx as usize].pending_deletes.insert(*chunk);
            } else {
                self.attention.insert(*chunk);
            }
        }
        for chunk in added {
            self.add_location(idx, chunk, &wanted, now);
        }
        let node = &mut self.nodes[idx as usize];
        let deletes: Vec<ChunkId> = node
            .pending_deletes
            .iter()
            .take(DELETES_PER_BEAT)
            .copied()
            .collect();
        for chunk in &deletes {
            node.pending_deletes.remove(chunk);
            node.inflight_deletes.insert(*chunk);
        }
        Some(Commands {
            deletes,
            draining: node.draining,
        })
    }

    /// Placement for a batch of chunks a put is about to store. Each chunk gets a write lease,
    /// which also cancels any delete queued for it.
    pub fn allocate(
        &mut self,
        wants: &[Want],
        replication: u32,
        now: Instant,
    ) -> Result<Vec<Allocation>, MetaError> {
        let need = self.config.min_replicas.min(replication);
        wants
            .iter()
            .map(|want| {
                self.renew_lease(&want.id, now);
                // Only copies on nodes heard from lately count: a put must not lean on a node
                // that may have died a moment ago.
                let holders: Vec<NodeIdx> = self
                    .live_holders(&want.id, now)
                    .into_iter()
                    .filter(|&idx| self.state(&self.nodes[idx as usize], now) == NodeState::Alive)
                    .collect();
                if want.copies == 0 && holders.len() >= replication as usize {
                    return Ok(Allocation {
                        already_stored: true,
                        targets: self.addresses(&holders),
                        holders: Vec::new(),
                    });
                }
                let copies = match want.copies {
                    0 => replication as usize - holders.len(),
                    n => n as usize,
                };
                let targets = self.placement.targets(&want.id, copies, |idx| {
                    let node = &self.nodes[idx as usize];
                    !holders.contains(&idx)
                        && !want.exclude.contains(&node.id)
                        && self.accepts_new(node, want.size, now)
                });
                let reachable = (holders.len() + targets.len()) as u32;
                if want.copies == 0 && reachable < need {
                    return Err(MetaError::NotEnoughNodes {
                        need,
                        usable: self.usable_nodes(now),
                    });
                }
                Ok(Allocation {
                    already_stored: false,
                    targets: self.addresses(&targets),
                    holders: self.addresses(&holders),
                })
            })
            .collect()
    }

    /// Records the copies a commit names and returns the chunks with fewer than `need` live
    /// copies (the commit must then be refused).
    pub fn check_commit(
        &mut self,
        chunks: &[(ChunkId, Vec<String>)],
        need: u32,
        now: Instant,
    ) -> Vec<ChunkId> {
        let mut short = Vec::new();
        for (chunk, acked) in chunks {
            for node_id in acked {
                // The commit references the chunk, so it is not garbage whatever the lease says.
                self.record_acked_copy(*chunk, node_id, &|_| 1, now);
            }
            if self.live_holders(chunk, now).len() < need as usize {
                short.push(*chunk);
            }
        }
        short
    }

    /// A node acknowledged storing a copy (for a put or a repair): it counts from now on,
    /// unless a delete of that chunk is in flight to that node (it may land after the write).
    fn record_acked_copy(
        &mut self,
        chunk: ChunkId,
        node_id: &str,
        wanted: &impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) {
        let Some(&idx) = self.by_id.get(node_id) else {
            return;
        };
        let node = &mut self.nodes[idx as usize];
        if node.inflight_deletes.contains(&chunk) || node.tombstones.contains_key(&chunk) {
            return;
        }
        node.pending_deletes.remove(&chunk);
        self.add_location(idx, chunk, wanted, now);
    }

    /// A commit naming `chunks` was accepted and its transaction is about to run outside the
    /// cluster lock: while the returned hold lives, garbage collection treats them as leased,
    /// whatever the namespace says (it does not count the commit's references yet, and a lease
    /// may have run out meanwhile). Its outcome goes to [`Self::committed`] or
    /// [`Self::commit_failed`]; a hold dropped without one counts as failed (see [`holds`]).
    pub fn begin_commit(&mut self, chunks: Vec<ChunkId>) -> CommitHold {
        self.commits.hold(chunks)
    }

    /// After a commit: its chunks are referenced (leases end). A chunk that `wanted` says no
    /// file references any more (a removal ran between the commit's transaction and this call)
    /// starts its grace period now, or it would never be collected. The chunks the commit freed
    /// (of the file it replaced) start theirs once it is durable, through [`Self::freed`].
    pub fn committed(&mut self, hold: CommitHold, wanted: impl Fn(&ChunkId) -> u32, now: Instant) {
        let chunks = hold.end();
        for chunk in &chunks {
            self.leases.remove(chunk);
            self.unreferenced.remove(chunk);
            // Committed with W copies, maybe fewer than R: repair tops it up.
            self.attention.insert(*chunk);
        }
        let gone: Vec<ChunkId> = chunks
            .iter()
            .filter(|chunk| !self.held(chunk) && wanted(chunk) == 0)
            .copied()
            .collect();
        self.freed(&gone, now);
    }

    /// A commit begun with [`Self::begin_commit`] was not written: its chunks get a fresh
    /// write lease, so they become garbage the usual way (after the lease and the grace).
    pub fn commit_failed(&mut self, hold: CommitHold, now: Instant) {
        for chunk in hold.end() {
            self.renew_lease(&chunk, now);
        }
    }

    /// Gives the chunks of commit holds dropped without an outcome a fresh write lease, as a
    /// failed commit's (they may have lost theirs while held).
    fn lease_released_holds(&mut self, now: Instant) {
        for chunk in self.commits.take_released() {
            self.renew_lease(&chunk, now);
        }
    }

    #[cfg(test)]
    pub fn is_committing(&self, chunk: &ChunkId) -> bool {
        self.commits.is_held(chunk)
    }

    /// When `chunk`'s grace period started, if it is waiting one out.
    #[cfg(test)]
    pub fn grace_start(&self, chunk: &ChunkId) -> Option<Instant> {
        self.unreferenced.get(chunk).copied()
    }

    /// Whether a put still holds `chunk`: a write lease, or a commit under way.
    fn held(&self, chunk: &ChunkId) -> bool {
        self.leases.contains_key(chunk) || self.commits.is_held(chunk)
    }

    /// Chunks no file references any more, now that the change that took their last reference
    /// is durable: their grace period starts now, also for a chunk already waiting out an
    /// earlier one (it was referenced again meanwhile, so that earlier start proves nothing).
    pub fn freed(&mut self, chunks: &[ChunkId], now: Instant) {
        for chunk in chunks {
            if self.locations.contains_key(chunk) {
                self.unreferenced.insert(*chunk, now);
            }
        }
    }

    /// A client found a bad copy: stop handing it out (the node quarantines it on read).
    pub fn report_bad(&mut self, chunk: &ChunkId, node_id: &str) -> Result<(), MetaError> {
        let idx = *self
            .by_id
            .get(node_id)
            .ok_or_else(|| MetaError::UnknownNode(node_id.to_string()))?;
        tracing::warn!(node = node_id, chunk = %chunk, "client reports a bad copy");
        self.corrupt.insert(*chunk);
        self.remove_location(idx, chunk, Instant::now());
        Ok(())
    }

    /// Live copies of a chunk, best first: alive nodes, then suspect ones. The starting point
    /// rotates with `spread` so that parallel reads of many chunks spread over the replicas.
    pub fn read_locations(&self, chunk: &ChunkId, spread: usize, now: Instant) -> Vec<NodeRef> {
        let mut holders = self.live_holders(chunk, now);
        if !holders.is_empty() {
            let n = holders.len();
            holders.rotate_left(spread % n);
        }
        holders.sort_by_key(|&idx| {
            let node = &self.nodes[idx as usize];
            (self.state(node, now) != NodeState::Alive, node.draining)
        });
        self.addresses(&holders)
    }

    pub fn nodes(&self, now: Instant) -> Vec<NodeView> {
        let mut views: Vec<NodeView> = self
            .nodes
            .iter()
            .filter(|node| !node.removed)
            .map(|node| NodeView {
                id: node.id.clone(),
                addr: node.addr.clone(),
                state: self.state(node, now),
                draining: node.draining,
                drained: node.drained,
                usage: node.usage,
                since_heartbeat: now.saturating_duration_since(node.last_heartbeat),
            })
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }

    fn node_index(&mut self, id: &str, addr: &str, now: Instant) -> NodeIdx {
        if let Some(&idx) = self.by_id.get(id) {
            return idx;
        }
        let idx = self.nodes.len() as NodeIdx;
        let draining = self.drains.contains(id);
        if draining {
            tracing::info!(node = id, "draining node (asked before a restart)");
        }
        self.nodes.push(NodeEntry {
            id: id.to_string(),
            addr: addr.to_string(),
            usage: NodeUsage::default(),
            last_heartbeat: now,
            last_state: NodeState::Alive,
            registered: false,
            draining,
            drained: false,
            removed: false,
            chunks: HashSet::new(),
            pending_deletes: HashSet::new(),
            inflight_deletes: HashSet::new(),
            tombstones: HashMap::new(),
            pending_replications: Vec::new(),
            repairs_as_source: 0,
            repairs_as_target: 0,
        });
        self.by_id.insert(id.to_string(), idx);
        self.placement.add(id, idx);
        tracing::info!(node = id, addr, "new storage node");
        idx
    }

    fn state(&self, node: &NodeEntry, now: Instant) -> NodeState {
        let silent = now.saturating_duration_since(node.last_heartbeat);
        if silent >= self.config.heartbeat_timeout {
            NodeState::Dead
        } else if silent >= self.config.heartbeat_timeout / 2 {
            NodeState::Suspect
        } else {
            NodeState::Alive
        }
    }

    /// Whether a node may be given a new chunk of `size` bytes.
    fn accepts_new(&self, node: &NodeEntry, size: u64, now: Instant) -> bool {
        !node.draining
            && self.state(node, now) == NodeState::Alive
            && node.usage.used + size <= node.usage.capacity
    }

    fn usable_nodes(&self, now: Instant) -> u32 {
        self.nodes
            .iter()
            .filter(|n| self.accepts_new(n, 1, now))
            .count() as u32
    }

    fn live_holders(&self, chunk: &ChunkId, now: Instant) -> Vec<NodeIdx> {
        self.locations
            .get(chunk)
            .map(|holders| {
                holders
                    .iter()
                    .copied()
                    .filter(|&idx| {
                        let node = &self.nodes[idx as usize];
                        self.state(node, now) != NodeState::Dead && node.copy_counts(chunk)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn addresses(&self, nodes: &[NodeIdx]) -> Vec<NodeRef> {
        nodes
            .iter()
            .map(|&idx| {
                let node = &self.nodes[idx as usize];
                NodeRef {
                    id: node.id.clone(),
                    addr: node.addr.clone(),
                }
            })
            .collect()
    }

    fn renew_lease(&mut self, chunk: &ChunkId, now: Instant) {
        self.leases.insert(*chunk, now);
        self.unreferenced.remove(chunk);
        if let Some(holders) = self.locations.get(chunk) {
            for &idx in holders {
                self.nodes[idx as usize].pending_deletes.remove(chunk);
            }
        }
    }

    fn add_location(
        &mut self,
        idx: NodeIdx,
        chunk: ChunkId,
        wanted: &impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) {
        self.finish_repair(&chunk, idx);
        let node = &mut self.nodes[idx as usize];
        node.tombstones.remove(&chunk);
        if !node.chunks.insert(chunk) {
            return;
        }
        self.locations.entry(chunk).or_default().push(idx);
        // A new copy may make one too many (a node came back).
        self.attention.insert(chunk);
        if !self.held(&chunk) && wanted(&chunk) == 0 {
            // Deletable no earlier than a grace period from now, nor (after a restart) before
            // a put that was in progress could have lost its lease.
            let since = match self.leases_unknown_until {
                Some(until) => now.max(until.checked_sub(self.config.gc_grace).unwrap_or(now)),
                None => now,
            };
            self.unreferenced.entry(chunk).or_insert(since);
        }
    }

    /// The node no longer holds `chunk` (deleted, lost or corrupt).
    fn remove_location(&mut self, idx: NodeIdx, chunk: &ChunkId, now: Instant) {
        let node = &mut self.nodes[idx as usize];
        node.tombstones.insert(*chunk, now);
        if node.chunks.remove(chunk) {
            self.attention.insert(*chunk);
        }
        node.pending_deletes.remove(chunk);
        if let Some(holders) = self.locations.get_mut(chunk) {
            holders.retain(|&h| h != idx);
            if holders.is_empty() {
                self.locations.remove(chunk);
                self.unreferenced.remove(chunk);
            }
        }
    }
}

#[cfg(test)]
mod tests;
