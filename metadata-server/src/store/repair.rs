//! The store's side of repair: the copy orders planned, to be sent at once, and their answers.

use std::time::Instant;

use bigfs_proto::ChunkId;

use super::MetaStore;
use crate::cluster::{CopyAnswer, OrderBatch};

impl MetaStore {
    /// Plans copies for the chunks short of copies (see [`crate::cluster::Cluster::plan_repairs`])
    /// and takes every order planned so far, to be sent now.
    pub fn plan_repairs(&self) -> Vec<OrderBatch> {
        self.with_cluster(|cluster, wanted| {
            cluster.plan_repairs(wanted, Instant::now());
            cluster.take_orders()
        })
    }

    /// The orders planned by the last maintenance round, to be sent now.
    pub fn take_orders(&self) -> Vec<OrderBatch> {
        self.cluster().take_orders()
    }

    /// A source node answered its order to copy `chunk`.
    pub fn copy_done(&self, source: &str, chunk: ChunkId, answer: &CopyAnswer) {
        self.with_cluster(|cluster, wanted| {
            cluster.copy_done(source, chunk, answer, wanted, Instant::now())
        });
    }

    /// The call carrying `source`'s orders for `chunks` ended without answering them.
    pub fn orders_unanswered(&self, source: &str, chunks: &[ChunkId]) {
        self.cluster().orders_unanswered(source, chunks);
    }
}
