//! Sending repair copy orders: each source node gets the orders planned for it in one
//! Node.Replicate call as soon as they are planned, not on its next heartbeat, and each copy's
//! answer on the call's stream is fed back to the store at once: the copy counts, its room on
//! the source and the target is free again, and the next plan runs without waiting for the
//! maintenance tick ([`CopyOrders::wake`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tonic::{Request, Status};

use bigfs_proto::node_pool::NodePool;
use bigfs_proto::pb::{NodeAddr, ReplicateCommand, ReplicateRequest};
use bigfs_proto::ChunkId;

use crate::cluster::{CopyAnswer, OrderBatch, REPAIR_TIMEOUT};
use crate::store::MetaStore;

/// How long the orders of a call that failed keep their room before they are planned again:
/// a node that refuses at once (just died, not yet declared dead; or too old to know
/// Node.Replicate) would otherwise be sent the same orders again after every plan.
const FAILED_CALL_PAUSE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct CopyOrders {
    store: Arc<MetaStore>,
    nodes: NodePool,
    wake: Arc<Notify>,
}

impl CopyOrders {
    pub fn new(store: Arc<MetaStore>) -> Self {
        Self {
            store,
            nodes: NodePool::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Fires after answers came back (or a call ended): room for more copies.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Sends each batch to its source node in the background.
    pub fn send(&self, batches: Vec<OrderBatch>) {
        for batch in batches {
            tokio::spawn(self.clone().send_batch(batch));
        }
    }

    async fn send_batch(self, batch: OrderBatch) {
        let source = batch.source.id.clone();
        let mut unanswered: HashSet<ChunkId> = batch.orders.iter().map(|o| o.chunk).collect();
        let count = unanswered.len();
        if let Err(status) = self.call(batch, &mut unanswered).await {
            tracing::warn!(
                node = source,
                orders = count,
                unanswered = unanswered.len(),
                "copy orders failed: {}",
                status.message()
            );
            tokio::time::sleep(FAILED_CALL_PAUSE).await;
        }
        if !unanswered.is_empty() {
            let chunks: Vec<ChunkId> = unanswered.into_iter().collect();
            self.store.orders_unanswered(&source, &chunks);
            self.wake.notify_one();
        }
    }

    /// Calls Node.Replicate and records each answer; `unanswered` keeps the rest.
    async fn call(
        &self,
        batch: OrderBatch,
        unanswered: &mut HashSet<ChunkId>,
    ) -> Result<(), Status> {
        let OrderBatch { source, orders } = batch;
        let mut client = self
            .nodes
            .client(&source.addr)
            .map_err(|e| Status::unavailable(format!("{}: {e}", source.addr)))?;
        let orders = orders
            .into_iter()
            .map(|order| ReplicateCommand {
                chunk_id: order.chunk.to_hex(),
                targets: order.targets.into_iter().map(NodeAddr::from).collect(),
            })
            .collect();
        let call = client.replicate(Request::new(ReplicateRequest { orders }));
        let mut answers = tokio::time::timeout(REPAIR_TIMEOUT, call)
            .await
            .map_err(|_| Status::deadline_exceeded("no answer to the copy orders"))??
            .into_inner();
        // A node answers each copy as it finishes: a long silence means it is stuck.
        loop {
            let answer = tokio::time::timeout(REPAIR_TIMEOUT, answers.message())
                .await
                .map_err(|_| Status::deadline_exceeded("no copy answered in time"))??;
            let Some(answer) = answer else {
                return Ok(());
            };
            let chunk: ChunkId = answer
                .chunk_id
                .parse()
                .map_err(|e| Status::internal(format!("node answered a bad chunk id: {e}")))?;
            if unanswered.remove(&chunk) {
                let answer = CopyAnswer {
                    stored: answer.stored,
                    failed: answer.failed,
                    source_failed: !answer.source_error.is_empty(),
                };
                self.store.copy_done(&source.id, chunk, &answer);
                self.wake.notify_one();
            }
        }
    }
}
