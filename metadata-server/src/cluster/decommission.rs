//! Taking nodes out of service: drains, their undoing, and forgetting a node for good.
//!
//! A drain is refused when the other nodes could not hold the copies its chunks want, since it
//! could never finish. A node is forgotten only when it holds nothing the cluster needs: it must
//! be stopped (dead), and no chunk may have its only copy there.

use std::time::Instant;

use bigfs_proto::ChunkId;

use super::{Cluster, NodeState};
use crate::error::MetaError;

impl Cluster {
    /// Nodes being drained before a restart, each with whether its drain had finished: each
    /// drains again as soon as it registers. Safe mode does not wait for the drained ones:
    /// every chunk they hold had enough copies elsewhere. (One still draining may hold the
    /// only copy of a chunk, so it is waited for.)
    pub fn resume_drains(&mut self, drains: Vec<(String, bool)>) {
        for (id, drained) in drains {
            if drained {
                self.stop_waiting_for(&id);
            }
            self.drains.insert(id);
        }
    }

    /// The nodes whose drain finished since the last call, to be remembered durably.
    pub fn take_newly_drained(&mut self) -> Vec<String> {
        std::mem::take(&mut self.newly_drained)
    }

    /// Starts decommissioning a node; returns how many chunks it holds. Refused when the
    /// other nodes that take new chunks are fewer than the copies one of its chunks wants.
    pub fn drain(
        &mut self,
        id: &str,
        wanted: impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) -> Result<usize, MetaError> {
        let Some(&idx) = self.by_id.get(id) else {
            // Asked before a restart, the node has not registered since: it will drain then.
            if self.drains.contains(id) {
                return Ok(0);
            }
            return Err(MetaError::UnknownNode(id.to_string()));
        };
        let node = &self.nodes[idx as usize];
        if !node.draining {
            let need = node.chunks.iter().map(&wanted).max().unwrap_or(0);
            let others = self
                .nodes
                .iter()
                .enumerate()
                .filter(|&(i, other)| {
                    i != idx as usize
                        && !other.removed
                        && !other.draining
                        && self.state(other, now) != NodeState::Dead
                })
                .count() as u32;
            if others < need {
                return Err(MetaError::CannotDrain {
                    node: id.to_string(),
                    need,
                    others,
                });
            }
            tracing::info!(node = id, chunks = node.chunks.len(), "draining node");
        }
        let node = &mut self.nodes[idx as usize];
        node.draining = true;
        self.drains.insert(id.to_string());
        let chunks: Vec<ChunkId> = node.chunks.iter().copied().collect();
        let count = chunks.len();
        self.attention.extend(chunks);
        Ok(count)
    }

    /// Cancels a drain: the node takes new chunks again, and copies made for the drain that
    /// are now extra are trimmed by repair.
    pub fn undrain(&mut self, id: &str) -> Result<(), MetaError> {
        let was_draining = self.drains.remove(id);
        let Some(&idx) = self.by_id.get(id) else {
            return match was_draining {
                true => Ok(()),
                false => Err(MetaError::UnknownNode(id.to_string())),
            };
        };
        let node = &mut self.nodes[idx as usize];
        if !node.draining {
            return Err(MetaError::InvalidArgument(format!(
                "node {id} is not being drained"
            )));
        }
        tracing::info!(node = id, "drain cancelled");
        node.draining = false;
        node.drained = false;
        let chunks: Vec<ChunkId> = node.chunks.iter().copied().collect();
        self.attention.extend(chunks);
        Ok(())
    }

    /// Forgets node `id`: it no longer shows, safe mode no longer waits for it, and if it ever
    /// registers again it is a new node. Returns whether the node was known in memory (the
    /// caller checks its persistent list for one that has not registered since a restart).
    pub fn remove_node(
        &mut self,
        id: &str,
        wanted: impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) -> Result<bool, MetaError> {
        let Some(&idx) = self.by_id.get(id) else {
            let waited_for = self
                .safe_mode
                .as_ref()
                .is_some_and(|safe| safe.waiting_for.contains(id));
            if waited_for && !self.drains.contains(id) {
                return Err(MetaError::NodeNotReported(id.to_string()));
            }
            self.drains.remove(id);
            self.stop_waiting_for(id);
            return Ok(false);
        };
        let node = &self.nodes[idx as usize];
        if self.state(node, now) != NodeState::Dead {
            return Err(MetaError::NodeStillRunning {
                node: id.to_string(),
                seconds_ago: now
                    .saturating_duration_since(node.last_heartbeat)
                    .as_secs_f64(),
            });
        }
        let only_copies = node
            .chunks
            .iter()
            .filter(|chunk| wanted(chunk) > 0 && self.live_holders(chunk, now).is_empty())
            .count();
        if only_copies > 0 {
            return Err(MetaError::NodeHoldsOnlyCopies {
                node: id.to_string(),
                chunks: only_copies,
            });
        }
        let chunks: Vec<ChunkId> = node.chunks.iter().copied().collect();
        for chunk in &chunks {
            self.remove_location(idx, chunk, now);
        }
        let node = &mut self.nodes[idx as usize];
        node.removed = true;
        node.draining = false;
        node.pending_deletes.clear();
        node.inflight_deletes.clear();
        node.pending_replications.clear();
        node.tombstones.clear();
        self.by_id.remove(id);
        self.placement.remove(id);
        self.drains.remove(id);
        self.stop_waiting_for(id);
        tracing::info!(node = id, "node removed from the cluster");
        Ok(true)
    }

    /// Nodes that can hold copies now or after they return: registered, not draining and not
    /// removed. A file may not ask for more copies than this.
    pub fn storage_nodes(&self) -> u32 {
        self.nodes
            .iter()
            .filter(|node| !node.removed && !node.draining)
            .count() as u32
    }
}
