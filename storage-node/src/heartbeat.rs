//! Membership: register with the metadata server, then heartbeat and carry out its commands.
//!
//! The node registers with its full chunk report, then sends, every interval, its usage and the
//! chunks added, removed and found corrupt since the previous beat (the HDFS DataNode model).
//! The reply carries commands: delete these chunks, copy these chunks to other nodes (repair),
//! or register again (the metadata server restarted and lost its soft state). Deletes are
//! carried out before the next beat is sent, so that beat already reports their effects. Copies
//! run in the background, a few at a time; finished ones are reported (with the nodes that
//! acknowledged them) on a beat sent early, so repair is not paced by the heartbeat interval.
//!
//! After each beat the node's readiness is brought up to date: it is not ready while the
//! metadata server says it is draining, or while it has no room for another chunk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Request;

use bigfs_proto::limits::{DEFAULT_CHUNK_SIZE, MAX_META_MESSAGE};
use bigfs_proto::node_pool::NodePool;
use bigfs_proto::observe::health::Health;
use bigfs_proto::pb::meta_client::MetaClient;
use bigfs_proto::pb::{CopiedChunk, HeartbeatRequest, RegisterNodeRequest, ReplicateCommand};
use bigfs_proto::{transport, ChunkId};

use crate::chunk_store::{ChunkStore, Usage};

pub struct Heartbeat {
    pub node_id: String,
    /// The address other nodes and clients reach this node at.
    pub addr: String,
    pub interval: Duration,
    pub meta: MetaClient<Channel>,
    pub store: Arc<ChunkStore>,
    peers: Arc<NodePool>,
    /// Bounds the copies this node sends at once.
    copies: Arc<Semaphore>,
    /// Copies finished since the last beat, and the signal to send that beat early.
    copied: Arc<Mutex<Vec<CopiedChunk>>>,
    copied_wake: Arc<Notify>,
    health: Health,
    /// What the last heartbeat reply said.
    draining: bool,
}

/// The shortest gap between two beats when finished copies call for an early one.
const EARLY_BEAT_GAP: Duration = Duration::from_millis(100);

/// Copies a node sends at once; the metadata server bounds what it orders, this bounds what
/// runs.
const CONCURRENT_COPIES: usize = 8;

enum Beat {
    Ok,
    Reregister,
}

impl Heartbeat {
    pub fn connect(
        node_id: String,
        addr: String,
        meta_url: &str,
        interval: Duration,
        store: Arc<ChunkStore>,
        health: Health,
    ) -> anyhow::Result<Self> {
        let channel = transport::endpoint(meta_url)
            .map_err(|e| anyhow::anyhow!("invalid --meta {meta_url:?}: {e}"))?
            .connect_lazy();
        let meta = MetaClient::new(channel)
            .max_decoding_message_size(MAX_META_MESSAGE)
            .max_encoding_message_size(MAX_META_MESSAGE);
        Ok(Self {
            node_id,
            addr,
            interval,
            meta,
            store,
            peers: Arc::new(NodePool::for_repairs()),
            copies: Arc::new(Semaphore::new(CONCURRENT_COPIES)),
            copied: Arc::default(),
            copied_wake: Arc::new(Notify::new()),
            health,
            draining: false,
        })
    }

    /// Runs until `cancel` fires. Failures are logged and retried every interval: a node
    /// keeps serving reads while the metadata server is away.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut registered = false;
        let mut failures = 0u32;
        // Beats keep their pace whatever a beat's work took (deleting thousands of chunks, say):
        // a late beat would make the metadata server think the node is failing.
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            let outcome = if registered {
                self.beat().await
            } else {
                self.register().await.map(|()| Beat::Ok)
            };
            match outcome {
                Ok(Beat::Ok) => {
                    if !registered || failures > 0 {
                        tracing::info!(meta_failures = failures, "registered with metadata server");
                    }
                    registered = true;
                    failures = 0;
                }
                Ok(Beat::Reregister) => {
                    tracing::info!("metadata server asked for a full chunk report");
                    registered = false;
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    // Say it once, then every minute or so, not every beat.
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(failures, "heartbeat to metadata server failed: {e:#}");
                    }
                    registered = registered && failures < 3;
                }
            }
            self.health
                .set(not_ready(self.draining, self.store.usage()))
                .await;
            let wake = self.copied_wake.clone();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.tick() => {}
                _ = wake.notified() => tokio::time::sleep(EARLY_BEAT_GAP).await,
            }
        }
        tracing::info!("heartbeat stopped");
    }

    async fn register(&mut self) -> anyhow::Result<()> {
        // The full report supersedes whatever changes were pending.
        self.store.clear_changes();
        let store = self.store.clone();
        let chunks = tokio::task::spawn_blocking(move || store.list()).await??;
        let usage = self.store.usage();
        let mut request = Request::new(RegisterNodeRequest {
            node_id: self.node_id.clone(),
            addr: self.addr.clone(),
            capacity: usage.capacity,
            used: usage.used,
            chunks: chunks.iter().map(ChunkId::to_hex).collect(),
        });
        request.set_timeout(transport::META_RPC_TIMEOUT);
        self.meta.register_node(request).await?;
        Ok(())
    }

    async fn beat(&mut self) -> anyhow::Result<Beat> {
        let changes = self.store.take_changes();
        let copied = std::mem::take(&mut *lock(&self.copied));
        let usage = self.store.usage();
        let hex = |ids: &[ChunkId]| ids.iter().map(ChunkId::to_hex).collect::<Vec<_>>();
        let mut request = Request::new(HeartbeatRequest {
            node_id: self.node_id.clone(),
            capacity: usage.capacity,
            used: usage.used,
            chunk_count: usage.chunks,
            added: hex(&changes.added),
            removed: hex(&changes.removed),
            corrupt: hex(&changes.corrupt),
            copied: copied.clone(),
        });
        request.set_timeout(transport::META_RPC_TIMEOUT);
        let reply = match self.meta.heartbeat(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                self.store.restore_changes(changes);
                lock(&self.copied).extend(copied);
                return Err(status.into());
            }
        };
        if reply.reregister {
            return Ok(Beat::Reregister);
        }
        self.draining = reply.draining;
        if !reply.delete_chunks.is_empty() {
            self.delete(reply.delete_chunks).await?;
        }
        for order in reply.replicate {
            self.copy_in_background(order);
        }
        Ok(Beat::Ok)
    }

    /// Sends this node's verified copy of a chunk down the order's chain of targets.
    fn copy_in_background(&self, order: ReplicateCommand) {
        let store = self.store.clone();
        let counters = self.store.counters().clone();
        let peers = self.peers.clone();
        let copies = self.copies.clone();
        let copied = self.copied.clone();
        let wake = self.copied_wake.clone();
        tokio::spawn(async move {
            let Ok(_permit) = copies.acquire_owned().await else {
                return;
            };
            let id: ChunkId = match order.chunk_id.parse() {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!("metadata server sent a bad copy order: {e}");
                    return;
                }
            };
            // The read verifies the copy (and quarantines a bad one), so only good bytes leave.
            let data = match tokio::task::spawn_blocking(move || store.get(id)).await {
                Ok(Ok(data)) => data,
                Ok(Err(e)) => {
                    tracing::warn!(chunk = %id, "cannot copy chunk: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!(chunk = %id, "cannot copy chunk: read task failed: {e}");
                    return;
                }
            };
            let reply = peers.put_chain(&order.chunk_id, data, &order.targets).await;
            counters
                .repair_copies_sent
                .inc_by(reply.stored.len() as u64);
            for failure in &reply.failed {
                tracing::warn!(chunk = %id, target = %failure.node_id, "copy failed: {}", failure.error);
            }
            tracing::debug!(chunk = %id, stored = ?reply.stored, "chunk copied");
            if !reply.stored.is_empty() {
                lock(&copied).push(CopiedChunk {
                    chunk_id: order.chunk_id,
                    nodes: reply.stored,
                });
                wake.notify_one();
            }
        });
    }

    async fn delete(&self, ids: Vec<String>) -> anyhow::Result<()> {
        let count = ids.len();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            for hex in ids {
                match hex.parse::<ChunkId>() {
                    Ok(id) => {
                        if let Err(e) = store.delete(id) {
                            tracing::warn!(chunk = %id, "cannot delete chunk: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("metadata server sent a bad delete command: {e}"),
                }
            }
            store.finish_deletes();
        })
        .await?;
        tracing::info!(
            chunks = count,
            "deleted chunks on the metadata server's command"
        );
        Ok(())
    }
}

/// Why the node should get no new work: it is being drained, or it cannot take another chunk
/// (of the default size; the metadata server knows the cluster's).
fn not_ready(draining: bool, usage: Usage) -> Option<String> {
    if draining {
        return Some("draining: the metadata server moves this node's chunks elsewhere".into());
    }
    let free = usage.capacity.saturating_sub(usage.used);
    (free < DEFAULT_CHUNK_SIZE).then(|| {
        format!(
            "full: {free} bytes free of {} (less than a chunk)",
            usage.capacity
        )
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_while_draining_or_without_room_for_a_chunk() {
        let usage = |used| Usage {
            capacity: 10 << 20,
            used,
            chunks: 0,
        };
        assert_eq!(not_ready(false, usage(0)), None);
        assert_eq!(not_ready(false, usage(9 << 20)), None);
        let draining = not_ready(true, usage(0)).unwrap();
        assert!(draining.starts_with("draining"), "{draining}");
        let full = not_ready(false, usage((9 << 20) + 1)).unwrap();
        assert!(full.starts_with("full"), "{full}");
    }
}
