//! Figures for the metadata server's gauges that are read from the cluster's soft state at
//! each scrape: a pass over the nodes, never over the chunks.

use std::time::Instant;

use super::Cluster;

/// What the cluster is doing right now, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterGauges {
    /// Nodes by the state `bigfs nodes` shows: alive, suspect, dead, draining, drained.
    pub nodes: Vec<(&'static str, u64)>,
    /// Repair copies planned but not yet sent to their source.
    pub repairs_queued: u64,
    /// Repair copies sent to their source and not yet confirmed.
    pub repairs_sent: u64,
    /// Chunks short of copies not yet ordered: no room on a source or a target (the repair
    /// bound), or no live copy to copy from.
    pub repairs_waiting: u64,
    /// Repair copies since the start: answered as stored, and given up and planned again
    /// (failed, unanswered, timed out, or their source or target died).
    pub repairs_stored: u64,
    pub repairs_failed: u64,
    /// Unreferenced chunks waiting out their grace period.
    pub gc_waiting: u64,
    /// Deletes queued for nodes' next heartbeats.
    pub deletes_queued: u64,
    pub safe_mode: bool,
}

impl Cluster {
    pub fn gauges(&self, now: Instant) -> ClusterGauges {
        let mut nodes: Vec<(&'static str, u64)> =
            ["alive", "suspect", "dead", "draining", "drained"]
                .into_iter()
                .map(|state| (state, 0))
                .collect();
        for view in self.nodes(now) {
            if let Some(count) = nodes.iter_mut().find(|(s, _)| *s == view.state_name()) {
                count.1 += 1;
            }
        }
        let live = self.nodes.iter().filter(|n| !n.removed);
        let (queued, deletes) = live.fold((0, 0), |(queued, deletes), node| {
            let copies: usize = node
                .pending_replications
                .iter()
                .map(|r| r.targets.len())
                .sum();
            (queued + copies, deletes + node.pending_deletes.len())
        });
        ClusterGauges {
            nodes,
            repairs_queued: queued as u64,
            repairs_sent: self.repairs_in_flight().saturating_sub(queued) as u64,
            repairs_waiting: self.repair_queue.len() as u64,
            repairs_stored: self.repair_counts.stored,
            repairs_failed: self.repair_counts.failed,
            gc_waiting: self.unreferenced.len() as u64,
            deletes_queued: deletes as u64,
            safe_mode: self.in_safe_mode(),
        }
    }
}
