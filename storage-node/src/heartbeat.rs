//! Membership: register with the metadata server, then heartbeat and carry out its commands.
//!
//! The node registers with its full chunk report, then sends, every interval, its usage and the
//! chunks added, removed and found corrupt since the previous beat (the HDFS DataNode model).
//! The reply carries commands: delete these chunks, or register again (the metadata server
//! restarted and lost its soft state). Deletes are carried out before the next beat is sent, so
//! that beat already reports their effects. Repair copies do not wait for beats: the metadata
//! server sends them as it plans them (Node.Replicate, see [`crate::repair`]).
//!
//! After each beat the node's readiness is brought up to date: it is not ready while the
//! metadata server says it is draining, or while it has no room for another chunk.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Request;

use bigfs_proto::limits::{DEFAULT_CHUNK_SIZE, MAX_META_MESSAGE};
use bigfs_proto::observe::health::Health;
use bigfs_proto::pb::meta_client::MetaClient;
use bigfs_proto::pb::{HeartbeatRequest, RegisterNodeRequest};
use bigfs_proto::{transport, ChunkId};

use crate::chunk_store::{ChunkStore, Usage};

pub struct Heartbeat {
    pub node_id: String,
    /// The address other nodes and clients reach this node at.
    pub addr: String,
    pub interval: Duration,
    pub meta: MetaClient<Channel>,
    pub store: Arc<ChunkStore>,
    health: Health,
    /// What the last heartbeat reply said.
    draining: bool,
}

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
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.tick() => {}
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
        });
        request.set_timeout(transport::META_RPC_TIMEOUT);
        let reply = match self.meta.heartbeat(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                self.store.restore_changes(changes);
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
        Ok(Beat::Ok)
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
