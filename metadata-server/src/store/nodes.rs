//! The store's side of cluster membership: the nodes' reports and heartbeats, and the
//! operator's drains and removals, each made durable before it is acknowledged.

use std::time::{Duration, Instant};

use bigfs_proto::{ChunkId, NodeRef};

use super::MetaStore;
use crate::cluster::{Beat, Cluster, Commands, NodeUsage, NodeView};
use crate::error::MetaError;

/// The cluster's members as `bigfs nodes` shows them.
#[derive(Debug)]
pub struct NodesReport {
    pub nodes: Vec<NodeView>,
    pub safe_mode: Option<SafeModeStatus>,
}

/// Whom safe mode waits for, and for how long at most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeModeStatus {
    pub waiting_for: Vec<String>,
    pub left: Duration,
}

/// A node's registration: its full chunk report.
#[derive(Debug)]
pub struct Registration {
    pub node: NodeRef,
    pub usage: NodeUsage,
    pub chunks: Vec<ChunkId>,
}

impl MetaStore {
    pub fn nodes(&self) -> NodesReport {
        let now = Instant::now();
        let cluster = self.cluster();
        NodesReport {
            nodes: cluster.nodes(now),
            safe_mode: safe_mode_status(&cluster, now),
        }
    }

    /// A client found a bad copy.
    pub fn report_bad(&self, chunk: &ChunkId, node: &str, reason: &str) -> Result<(), MetaError> {
        tracing::warn!(chunk = %chunk, node, reason, "bad copy reported");
        self.cluster().report_bad(chunk, node)
    }

    /// Starts draining a node, durably; returns how many chunks it holds.
    pub async fn drain(&self, node: &str) -> Result<u64, MetaError> {
        let chunks =
            self.with_cluster(|cluster, wanted| cluster.drain(node, wanted, Instant::now()))?;
        // Durable before the answer: a restarted metadata server goes on draining the node.
        self.ns.set_drain(node, true)?;
        self.flush().await?;
        Ok(chunks as u64)
    }

    /// Cancels a drain, durably.
    pub async fn undrain(&self, node: &str) -> Result<(), MetaError> {
        self.cluster().undrain(node)?;
        self.ns.set_drain(node, false)?;
        self.flush().await
    }

    /// Forgets a node that holds nothing the cluster needs, durably.
    pub async fn remove_node(&self, node: &str) -> Result<(), MetaError> {
        let known = self.ns.known_nodes()?.iter().any(|(id, _)| id == node);
        let registered =
            self.with_cluster(|cluster, wanted| cluster.remove_node(node, wanted, Instant::now()))?;
        if !registered && !known {
            return Err(MetaError::UnknownNode(node.to_string()));
        }
        self.ns.forget_node(node)?;
        self.flush().await
    }

    /// A node's full chunk report; its address is remembered durably.
    pub async fn register(&self, registration: Registration) -> Result<(), MetaError> {
        let Registration {
            node,
            usage,
            chunks,
        } = registration;
        let count = chunks.len();
        self.with_cluster(|cluster, wanted| {
            cluster.register(&node.id, &node.addr, usage, chunks, wanted, Instant::now())
        });
        if self.ns.remember_node(&node.id, &node.addr)? {
            self.flush().await?;
        }
        tracing::info!(node = %node.id, addr = %node.addr, chunks = count, "node registered");
        Ok(())
    }

    /// A heartbeat; `None` asks the node to register again.
    pub fn heartbeat(&self, node: &str, beat: Beat) -> Option<Commands> {
        self.with_cluster(|cluster, wanted| cluster.heartbeat(node, beat, wanted, Instant::now()))
    }
}

pub(super) fn safe_mode_status(cluster: &Cluster, now: Instant) -> Option<SafeModeStatus> {
    cluster
        .safe_mode_waiting(now)
        .map(|(waiting_for, left)| SafeModeStatus { waiting_for, left })
}
