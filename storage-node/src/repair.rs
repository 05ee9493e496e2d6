//! Repair copies: this node sends its verified copy of a chunk down a chain of other nodes, on
//! the metadata server's order (Node.Replicate).
//!
//! Orders arrive as soon as the metadata server plans them, and each copy is answered as soon
//! as it is done, so neither waits for a heartbeat. What runs at once is bounded by bytes, not
//! by copies ([`Copier::new`]'s window): a window holds a few big chunks or many small ones, and
//! small chunks bound for the same chain share PutChunks calls ([`NodePool::put_chain`]), so
//! small chunks repair about as fast as big ones while the client traffic beside them keeps
//! its share of the disk and the network.

use std::sync::Arc;

use futures::channel::mpsc;
use tokio::sync::Semaphore;

use bigfs_proto::node_pool::NodePool;
use bigfs_proto::pb::{ReplicateCommand, ReplicateResult};
use bigfs_proto::ChunkId;

use crate::chunk_store::ChunkStore;

/// The unit of the window: a chunk takes one permit per KiB (at least one).
const PERMIT_BYTES: u64 = 1024;

/// Copies chunks to other nodes, at most a window's worth of bytes at once.
#[derive(Clone)]
pub struct Copier {
    store: Arc<ChunkStore>,
    peers: NodePool,
    window: Arc<Semaphore>,
    /// The window in permits: the most one chunk may take, however big.
    permits: u32,
}

impl Copier {
    /// A copier that sends at most `window` bytes of chunks at once (at least one chunk).
    pub fn new(store: Arc<ChunkStore>, window: u64) -> Self {
        let permits = (window / PERMIT_BYTES).clamp(1, u32::MAX as u64 >> 3) as u32;
        Self {
            store,
            peers: NodePool::for_repairs(),
            window: Arc::new(Semaphore::new(permits as usize)),
            permits,
        }
    }

    /// Starts every order; each result comes on the returned stream as soon as its copy is
    /// done, and the stream ends after the last one.
    pub fn start(&self, orders: Vec<ReplicateCommand>) -> mpsc::UnboundedReceiver<ReplicateResult> {
        let (results, stream) = mpsc::unbounded();
        for order in orders {
            let (copier, results) = (self.clone(), results.clone());
            tokio::spawn(async move {
                let result = copier.copy(order).await;
                // The metadata server may have stopped listening: the copy is done anyway.
                let _ = results.unbounded_send(result);
            });
        }
        stream
    }

    async fn copy(&self, order: ReplicateCommand) -> ReplicateResult {
        let ReplicateCommand { chunk_id, targets } = order;
        let failed = |why: String| {
            tracing::warn!(chunk = chunk_id, "cannot copy chunk: {why}");
            ReplicateResult {
                chunk_id: chunk_id.clone(),
                stored: Vec::new(),
                failed: targets.iter().map(|t| t.id.clone()).collect(),
                source_error: why,
            }
        };
        let id: ChunkId = match chunk_id.parse() {
            Ok(id) => id,
            Err(e) => return failed(format!("bad copy order: {e}")),
        };
        let Some(len) = self.store.stored_len(id) else {
            return failed("not stored here".into());
        };
        let permits = (len.div_ceil(PERMIT_BYTES).max(1)).min(self.permits as u64) as u32;
        let Ok(_permit) = self.window.acquire_many(permits).await else {
            return failed("shutting down".into());
        };
        // The read verifies the copy (and quarantines a bad one), so only good bytes leave.
        let store = self.store.clone();
        let data = match tokio::task::spawn_blocking(move || store.get(id)).await {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return failed(e.to_string()),
            Err(e) => return failed(format!("read task failed: {e}")),
        };
        let reply = self.peers.put_chain(&chunk_id, data, &targets).await;
        self.store
            .counters()
            .repair_copies_sent
            .inc_by(reply.stored.len() as u64);
        for failure in &reply.failed {
            tracing::warn!(chunk = %id, target = %failure.node_id, "copy failed: {}", failure.error);
        }
        tracing::debug!(chunk = %id, stored = ?reply.stored, "chunk copied");
        ReplicateResult {
            chunk_id,
            stored: reply.stored,
            failed: reply.failed.into_iter().map(|f| f.node_id).collect(),
            source_error: String::new(),
        }
    }
}
