//! The storage node's gRPC service: a thin edge over [`ChunkStore`].

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use futures::stream::{BoxStream, StreamExt};
use tonic::{Request, Response, Status};

use bigfs_proto::limits::{
    BATCH_CHUNK_MAX, MAX_CHUNK_SIZE, MAX_GET_BATCH, MAX_PUT_BATCH, MAX_REPLICATION,
};
use bigfs_proto::node_pool::{is_repair, NodePool};
use bigfs_proto::observe::span;
use bigfs_proto::pb::node_server::Node;
use bigfs_proto::pb::{
    ChunkData, ChunkRead, GetChunkRequest, GetChunkResponse, GetChunksRequest, GetChunksResponse,
    NodeAddr, NodeFailure, NodeInfoRequest, NodeInfoResponse, PutChunkRequest, PutChunkResponse,
    PutChunksRequest, PutChunksResponse, ReplicateRequest, ReplicateResult,
};
use bigfs_proto::ChunkId;

use crate::chunk_store::ChunkStore;
use crate::error::NodeError;
use crate::repair::Copier;

/// The most copy orders one Replicate call may carry.
const MAX_REPLICATE_ORDERS: usize = 4096;

pub struct NodeService {
    node_id: String,
    store: Arc<ChunkStore>,
    peers: NodePool,
    /// Forwards repair copies, marked as such to the next hops too.
    repair_peers: NodePool,
    /// Sends this node's copies on the metadata server's orders.
    copier: Copier,
}

impl NodeService {
    /// `repair_window`: the bytes of repair copies this node sends at once.
    pub fn new(node_id: String, store: Arc<ChunkStore>, repair_window: u64) -> Self {
        Self {
            node_id,
            copier: Copier::new(store.clone(), repair_window),
            store,
            peers: NodePool::default(),
            repair_peers: NodePool::for_repairs(),
        }
    }

    /// The pool to forward `request`'s chunks with, and whether they are repair copies.
    fn forwarding<T>(&self, request: &Request<T>) -> (&NodePool, bool) {
        match is_repair(request) {
            true => (&self.repair_peers, true),
            false => (&self.peers, false),
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

    /// Reads a chunk and verifies it (see [`ChunkStore::get`]).
    async fn read_locally(&self, id: ChunkId) -> Result<Bytes, NodeError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.get(id))
            .await
            .map_err(|e| NodeError::io(format!("read chunk {id}"), std::io::Error::other(e)))?
    }

    /// Reads a chunk for GetChunks, which carries small chunks only: a batch of big ones would
    /// hold many chunks' bytes at once.
    async fn read_small(&self, chunk_id: &str) -> Result<Bytes, NodeError> {
        let id: ChunkId = chunk_id.parse()?;
        match self.store.stored_len(id) {
            Some(len) if len > BATCH_CHUNK_MAX as u64 => Err(NodeError::InvalidArgument(format!(
                "chunk {id} is {len} bytes, more than GetChunks carries ({BATCH_CHUNK_MAX}): \
                 read it with GetChunk"
            ))),
            _ => self.read_locally(id).await,
        }
    }

    /// Checks one chunk of a put request: its id, and its size.
    fn check_chunk(chunk_id: &str, data: &Bytes) -> Result<ChunkId, NodeError> {
        let id: ChunkId = chunk_id.parse()?;
        if data.len() as u64 > MAX_CHUNK_SIZE {
            return Err(NodeError::InvalidArgument(format!(
                "chunk {id} is {} bytes, the limit is {MAX_CHUNK_SIZE}",
                data.len()
            )));
        }
        Ok(id)
    }

    /// Puts this node at the head of `reply`, as holding chunk `chunk_id` or as having failed
    /// it.
    fn record_local(
        &self,
        chunk_id: &str,
        local: Result<(), NodeError>,
        repair: bool,
        reply: &mut PutChunkResponse,
    ) {
        match local {
            Ok(()) => {
                if repair {
                    self.store.counters().repair_copies_received.inc();
                }
                reply.stored.insert(0, self.node_id.clone())
            }
            Err(e) => {
                // Bad requests are the sender's fault, reported to it, not this node's.
                if !matches!(
                    e,
                    NodeError::ChecksumMismatch { .. } | NodeError::InvalidArgument(_)
                ) {
                    tracing::warn!(chunk = chunk_id, "cannot store chunk: {e}");
                }
                reply.failed.insert(
                    0,
                    NodeFailure {
                        node_id: self.node_id.clone(),
                        error: e.to_string(),
                    },
                );
            }
        }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn put_chunk(
        &self,
        request: Request<PutChunkRequest>,
    ) -> Result<Response<PutChunkResponse>, Status> {
        let (peers, repair) = self.forwarding(&request);
        let PutChunkRequest {
            chunk_id,
            data,
            chain,
        } = request.into_inner();
        span::record_chunk(&chunk_id);
        let id = Self::check_chunk(&chunk_id, &data)?;
        self.check_chain(&chain)?;
        // Each hop verifies its own copy, so forwarding starts at once, alongside the local
        // hash and write, instead of after them.
        let (local, mut reply) = tokio::join!(
            self.store_locally(id, data.clone()),
            peers.put_chain_unbatched(&chunk_id, data, &chain)
        );
        if let Err(e @ NodeError::ChecksumMismatch { .. }) = local {
            // The bytes are not what the sender claims: its request is wrong, not this node.
            return Err(e.into());
        }
        self.record_local(&chunk_id, local, repair, &mut reply);
        Ok(Response::new(reply))
    }

    async fn put_chunks(
        &self,
        request: Request<PutChunksRequest>,
    ) -> Result<Response<PutChunksResponse>, Status> {
        let (peers, repair) = self.forwarding(&request);
        let PutChunksRequest { chunks, chain } = request.into_inner();
        if let Some(first) = chunks.first() {
            span::record_chunk(&first.chunk_id);
        }
        self.check_chain(&chain)?;
        check_batch_len(chunks.len(), MAX_PUT_BATCH)?;
        if chunks.is_empty() {
            return Ok(Response::new(PutChunksResponse::default()));
        }
        // A bad chunk (id, size or bytes) fails on its own, on every node it reaches.
        let stores = chunks.iter().map(|ChunkData { chunk_id, data }| {
            let checked = Self::check_chunk(chunk_id, data);
            let data = data.clone();
            async move { self.store_locally(checked?, data).await }
        });
        let ids: Vec<String> = chunks.iter().map(|c| c.chunk_id.clone()).collect();
        let (local, mut results) =
            tokio::join!(join_all(stores), peers.put_chain_batch(chunks, &chain));
        for ((chunk_id, local), reply) in ids.iter().zip(local).zip(&mut results) {
            self.record_local(chunk_id, local, repair, reply);
        }
        Ok(Response::new(PutChunksResponse { results }))
    }

    async fn get_chunk(
        &self,
        request: Request<GetChunkRequest>,
    ) -> Result<Response<GetChunkResponse>, Status> {
        let chunk_id = request.into_inner().chunk_id;
        span::record_chunk(&chunk_id);
        let id: ChunkId = chunk_id.parse().map_err(NodeError::from)?;
        let data = self.read_locally(id).await?;
        Ok(Response::new(GetChunkResponse { data }))
    }

    async fn get_chunks(
        &self,
        request: Request<GetChunksRequest>,
    ) -> Result<Response<GetChunksResponse>, Status> {
        let GetChunksRequest { chunk_ids } = request.into_inner();
        if let Some(first) = chunk_ids.first() {
            span::record_chunk(first);
        }
        check_batch_len(chunk_ids.len(), MAX_GET_BATCH)?;
        let reads = chunk_ids.iter().map(|chunk_id| async move {
            match self.read_small(chunk_id).await {
                Ok(data) => ChunkRead {
                    data,
                    ..ChunkRead::default()
                },
                Err(e) => {
                    let status = Status::from(e);
                    ChunkRead {
                        data: Bytes::new(),
                        error: status.message().to_string(),
                        error_code: status.code() as i32,
                    }
                }
            }
        });
        let results = join_all(reads).await;
        Ok(Response::new(GetChunksResponse { results }))
    }

    type ReplicateStream = BoxStream<'static, Result<ReplicateResult, Status>>;

    async fn replicate(
        &self,
        request: Request<ReplicateRequest>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        let orders = request.into_inner().orders;
        if let Some(first) = orders.first() {
            span::record_chunk(&first.chunk_id);
        }
        check_batch_len(orders.len(), MAX_REPLICATE_ORDERS)?;
        for order in &orders {
            self.check_chain(&order.targets)?;
        }
        Ok(Response::new(self.copier.start(orders).map(Ok).boxed()))
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

/// Refuses a batch call of more than `limit` chunks.
fn check_batch_len(count: usize, limit: usize) -> Result<(), NodeError> {
    if count > limit {
        return Err(NodeError::InvalidArgument(format!(
            "{count} chunks in one call, the limit is {limit}"
        )));
    }
    Ok(())
}
