//! The storage node's gRPC service: a thin edge over [`ChunkStore`].

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tonic::{Request, Response, Status};

use bigfs_proto::limits::{MAX_CHUNK_SIZE, MAX_REPLICATION};
use bigfs_proto::node_pool::NodePool;
use bigfs_proto::pb::node_server::Node;
use bigfs_proto::pb::{
    GetChunkRequest, GetChunkResponse, NodeAddr, NodeFailure, NodeInfoRequest, NodeInfoResponse,
    PutChunkRequest, PutChunkResponse,
};
use bigfs_proto::ChunkId;

use crate::chunk_store::ChunkStore;
use crate::error::NodeError;

pub struct NodeService {
    node_id: String,
    store: Arc<ChunkStore>,
    peers: NodePool,
}

impl NodeService {
    pub fn new(node_id: String, store: Arc<ChunkStore>) -> Self {
        Self {
            node_id,
            store,
            peers: NodePool::default(),
        }
    }

    /// A chain is at most a replication factor long and names each node once, never this one:
    /// otherwise one request could make the cluster hold and forward a chunk without end.
    fn check_chain(&self, chain: &[NodeAddr]) -> Result<(), NodeError> {
        if chain.len() >= MAX_REPLICATION as usize {
            return Err(NodeError::InvalidArgument(format!(
                "replication chain of {} nodes is longer than {}",
                chain.len(),
                MAX_REPLICATION - 1
            )));
        }
        let (mut ids, mut addrs) = (HashSet::new(), HashSet::new());
        for hop in chain {
            if hop.id == self.node_id || !ids.insert(&hop.id) || !addrs.insert(&hop.addr) {
                return Err(NodeError::InvalidArgument(format!(
                    "replication chain names node {} twice",
                    hop.id
                )));
            }
        }
        Ok(())
    }

    async fn store_locally(&self, id: ChunkId, data: Bytes) -> Result<(), NodeError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.put(id, &data))
            .await
            .map_err(|e| NodeError::io("store chunk", std::io::Error::other(e)))?
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn put_chunk(
        &self,
        request: Request<PutChunkRequest>,
    ) -> Result<Response<PutChunkResponse>, Status> {
        let PutChunkRequest {
            chunk_id,
            data,
            chain,
        } = request.into_inner();
        let id: ChunkId = chunk_id.parse().map_err(NodeError::from)?;
        self.check_chain(&chain)?;
        if data.len() as u64 > MAX_CHUNK_SIZE {
            return Err(NodeError::InvalidArgument(format!(
                "chunk {id} is {} bytes, the limit is {MAX_CHUNK_SIZE}",
                data.len()
            ))
            .into());
        }
        // Each hop verifies its own copy, so forwarding starts at once, alongside the local
        // hash and write, instead of after them.
        let (local, mut reply) = tokio::join!(
            self.store_locally(id, data.clone()),
            self.peers.put_chain(&chunk_id, data, &chain)
        );
        match local {
            Ok(()) => reply.stored.insert(0, self.node_id.clone()),
            // The bytes are not what the sender claims: its request is wrong, not this node.
            Err(e @ NodeError::ChecksumMismatch { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(chunk = %id, "cannot store chunk: {e}");
                reply.failed.insert(
                    0,
                    NodeFailure {
                        node_id: self.node_id.clone(),
                        error: e.to_string(),
                    },
                );
            }
        }
        Ok(Response::new(reply))
    }

    async fn get_chunk(
        &self,
        request: Request<GetChunkRequest>,
    ) -> Result<Response<GetChunkResponse>, Status> {
        let id: ChunkId = request
            .into_inner()
            .chunk_id
            .parse()
            .map_err(NodeError::from)?;
        let store = self.store.clone();
        let data = tokio::task::spawn_blocking(move || store.get(id))
            .await
            .map_err(|e| Status::internal(format!("read chunk {id}: {e}")))??;
        Ok(Response::new(GetChunkResponse { data }))
    }

    async fn node_info(
        &self,
        _request: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        let usage = self.store.usage();
        Ok(Response::new(NodeInfoResponse {
            node_id: self.node_id.clone(),
            capacity: usage.capacity,
            used: usage.used,
            chunks: usage.chunks,
        }))
    }
}
