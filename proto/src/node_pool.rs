//! A pool of connections to storage nodes, shared by the client and by nodes forwarding
//! chunks down a replication chain.
//!
//! Small chunks bound for the same chain, or read from the same node, at the same time travel
//! together ([`BatchQueues`]): in one PutChunks or GetChunks call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::batch_queue::{BatchQueues, Unanswered};
use crate::limits::{BATCH_CHUNK_MAX, MAX_CHUNK_MESSAGE, MAX_GET_BATCH, MAX_PUT_BATCH};
use crate::pb::node_client::NodeClient;
use crate::pb::{
    ChunkData, GetChunkRequest, GetChunksRequest, NodeAddr, NodeFailure, PutChunkRequest,
    PutChunkResponse, PutChunksRequest,
};
use crate::transport;

/// A few lazily connected channels per peer address, shared by all requests to it (HTTP/2
/// multiplexes them) in turn. Clones share the connections and the batch queues.
#[derive(Default, Clone)]
pub struct NodePool {
    clients: Arc<Mutex<HashMap<String, Peer>>>,
    /// Small chunks waiting for a PutChunks call, by chain.
    puts: BatchQueues<ChunkData, PutChunkResponse>,
    /// Ids of small chunks waiting for a GetChunks call, by node address.
    gets: BatchQueues<String, Result<Bytes, Status>>,
    /// Puts are repair copies, and say so (see [`REPAIR_HEADER`]).
    repair: bool,
}

/// Connections to each peer. One HTTP/2 connection is driven by one task, and a tonic channel
/// queues every request through one more: all the chunks one node forwards to another (every
/// client's puts through that pair) would otherwise be framed, copied and flow-controlled on
/// one core, whatever the number of clients and cores. Requests take the connections in turn.
pub const CONNECTIONS_PER_PEER: usize = 4;

/// The connections to one peer, and which one the next request takes.
struct Peer {
    clients: Vec<NodeClient<Channel>>,
    next: usize,
}

/// The gRPC metadata key marking a PutChunk or PutChunks as a repair copy, so that the nodes
/// it reaches count it as one (a chunk's bytes are the same whoever sends them).
pub const REPAIR_HEADER: &str = "bigfs-repair";

/// Whether `request` carries a repair copy.
pub fn is_repair<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(REPAIR_HEADER)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl NodePool {
    /// A pool whose puts are marked as repair copies, for a node copying chunks on the
    /// metadata server's orders, or forwarding such a copy.
    pub fn for_repairs() -> Self {
        Self {
            repair: true,
            ..Self::default()
        }
    }

    fn mark<T>(&self, request: &mut Request<T>) {
        if self.repair {
            request
                .metadata_mut()
                .insert(REPAIR_HEADER, MetadataValue::from_static("1"));
        }
    }

    /// A client for the node at `addr`, on the next of its [`CONNECTIONS_PER_PEER`]
    /// connections (each dialled on its first use).
    pub fn client(&self, addr: &str) -> Result<NodeClient<Channel>, tonic::transport::Error> {
        let mut clients = lock(&self.clients);
        let peer = match clients.get_mut(addr) {
            Some(peer) => peer,
            None => {
                let endpoint = transport::endpoint(addr)?;
                let clients_of_peer = (0..CONNECTIONS_PER_PEER)
                    .map(|_| {
                        NodeClient::new(endpoint.connect_lazy())
                            .max_decoding_message_size(MAX_CHUNK_MESSAGE)
                            .max_encoding_message_size(MAX_CHUNK_MESSAGE)
                    })
                    .collect();
                clients.entry(addr.to_string()).or_insert(Peer {
                    clients: clients_of_peer,
                    next: 0,
                })
            }
        };
        let client = peer.clients[peer.next].clone();
        peer.next = (peer.next + 1) % peer.clients.len();
        Ok(client)
    }

    /// Stores a chunk on the first node of `chain`, which forwards it down the rest. A head
    /// that cannot be reached (or fails) is recorded as failed and the chain goes on from the
    /// next node, so one dead node costs one copy, not the whole chain. The reply lists every
    /// node that acknowledged a durable copy and every node that failed.
    ///
    /// A small chunk may travel in a batch with others bound for the same chain; it is
    /// answered as if it had gone alone.
    pub async fn put_chain(
        &self,
        chunk_id: &str,
        data: Bytes,
        chain: &[NodeAddr],
    ) -> PutChunkResponse {
        if data.len() > BATCH_CHUNK_MAX || chain.is_empty() {
            return self.put_chain_unbatched(chunk_id, data, chain).await;
        }
        let chunk = ChunkData {
            chunk_id: chunk_id.to_string(),
            data,
        };
        let (pool, route) = (self.clone(), chain.to_vec());
        let send = move |chunks| {
            let (pool, route) = (pool.clone(), route.clone());
            async move { pool.put_chain_batch(chunks, &route).await }
        };
        // Room for a batch ahead in the queue, and for this one's failing over to the tail.
        let deadline = 2 * transport::chunk_batch_write_timeout(chain.len(), MAX_PUT_BATCH);
        let answer = self
            .puts
            .submit(chain_key(chain), chunk, MAX_PUT_BATCH, deadline, send)
            .await;
        answer.unwrap_or_else(|unanswered| PutChunkResponse {
            stored: Vec::new(),
            failed: vec![NodeFailure {
                node_id: chain[0].id.clone(),
                error: format!("{}: {}", chain[0].addr, describe(unanswered, deadline)),
            }],
        })
    }

    /// Reads a chunk of `size` bytes from the node at `addr`, verified by the node (the caller
    /// verifies it again). A small chunk may travel in a batch with others read from the same
    /// node; it is answered as if it had gone alone.
    pub async fn get_chunk(&self, addr: &str, chunk_id: &str, size: u64) -> Result<Bytes, Status> {
        if size > BATCH_CHUNK_MAX as u64 {
            return self.get_one(addr, chunk_id).await;
        }
        let (pool, node) = (self.clone(), addr.to_string());
        let send = move |ids| {
            let (pool, node) = (pool.clone(), node.clone());
            async move { pool.get_batch(&node, ids).await }
        };
        let deadline = transport::chunk_batch_read_timeout(MAX_GET_BATCH);
        let answer = self
            .gets
            .submit(
                addr.to_string(),
                chunk_id.to_string(),
                MAX_GET_BATCH,
                deadline,
                send,
            )
            .await;
        answer.unwrap_or_else(|unanswered| {
            let message = format!("{addr}: {}", describe(unanswered, deadline));
            Err(match unanswered {
                Unanswered::TimedOut => Status::deadline_exceeded(message),
                Unanswered::SenderGone => Status::unavailable(message),
            })
        })
    }

    async fn get_one(&self, addr: &str, chunk_id: &str) -> Result<Bytes, Status> {
        let mut client = self.client_at(addr)?;
        let mut request = Request::new(GetChunkRequest {
            chunk_id: chunk_id.to_string(),
        });
        request.set_timeout(transport::CHUNK_READ_TIMEOUT);
        Ok(client.get_chunk(request).await?.into_inner().data)
    }

    /// [`Self::get_chunk`] of several chunks in one call; the answers are in the order of
    /// `chunk_ids`. A call that fails as a whole fails every chunk with its status.
    async fn get_batch(&self, addr: &str, chunk_ids: Vec<String>) -> Vec<Result<Bytes, Status>> {
        let count = chunk_ids.len();
        let call = async {
            let mut client = self.client_at(addr)?;
            let mut request = Request::new(GetChunksRequest { chunk_ids });
            request.set_timeout(transport::chunk_batch_read_timeout(count));
            let results = client.get_chunks(request).await?.into_inner().results;
            one_result_per_chunk(results, count)
        };
        match call.await {
            Ok(results) => results
                .into_iter()
                .map(|read| match Code::from_i32(read.error_code) {
                    Code::Ok => Ok(read.data),
                    code => Err(Status::new(code, read.error)),
                })
                .collect(),
            Err(status) => vec![Err(status); count],
        }
    }

    /// [`Self::put_chain`] without batching: for a node forwarding a PutChunk, whose sender's
    /// deadline leaves no room for waiting behind other batches.
    pub async fn put_chain_unbatched(
        &self,
        chunk_id: &str,
        data: Bytes,
        chain: &[NodeAddr],
    ) -> PutChunkResponse {
        let mut reply = PutChunkResponse::default();
        let mut rest = chain;
        while let Some((head, tail)) = rest.split_first() {
            match self.put_one(head, chunk_id, data.clone(), tail).await {
                Ok(answer) => {
                    reply.stored.extend(answer.stored);
                    reply.failed.extend(answer.failed);
                    return reply;
                }
                Err(status) => {
                    reply.failed.push(head_failure(head, &status));
                    rest = tail;
                }
            }
        }
        reply
    }

    /// [`Self::put_chain`] for several chunks in one call per node; the replies are in the
    /// order of `chunks`.
    pub async fn put_chain_batch(
        &self,
        chunks: Vec<ChunkData>,
        chain: &[NodeAddr],
    ) -> Vec<PutChunkResponse> {
        let mut replies = vec![PutChunkResponse::default(); chunks.len()];
        let mut rest = chain;
        while let Some((head, tail)) = rest.split_first() {
            match self.put_batch_one(head, chunks.clone(), tail).await {
                Ok(answers) => {
                    for (reply, answer) in replies.iter_mut().zip(answers) {
                        reply.stored.extend(answer.stored);
                        reply.failed.extend(answer.failed);
                    }
                    return replies;
                }
                Err(status) => {
                    for reply in &mut replies {
                        reply.failed.push(head_failure(head, &status));
                    }
                    rest = tail;
                }
            }
        }
        replies
    }

    async fn put_one(
        &self,
        head: &NodeAddr,
        chunk_id: &str,
        data: Bytes,
        tail: &[NodeAddr],
    ) -> Result<PutChunkResponse, Status> {
        let mut client = self.client_at(&head.addr)?;
        let mut request = Request::new(PutChunkRequest {
            chunk_id: chunk_id.to_string(),
            data,
            chain: tail.to_vec(),
        });
        request.set_timeout(transport::chunk_write_timeout(tail.len() + 1));
        self.mark(&mut request);
        Ok(client.put_chunk(request).await?.into_inner())
    }

    async fn put_batch_one(
        &self,
        head: &NodeAddr,
        chunks: Vec<ChunkData>,
        tail: &[NodeAddr],
    ) -> Result<Vec<PutChunkResponse>, Status> {
        let mut client = self.client_at(&head.addr)?;
        let count = chunks.len();
        let mut request = Request::new(PutChunksRequest {
            chunks,
            chain: tail.to_vec(),
        });
        request.set_timeout(transport::chunk_batch_write_timeout(tail.len() + 1, count));
        self.mark(&mut request);
        let results = client.put_chunks(request).await?.into_inner().results;
        one_result_per_chunk(results, count)
    }

    fn client_at(&self, addr: &str) -> Result<NodeClient<Channel>, Status> {
        self.client(addr)
            .map_err(|e| Status::invalid_argument(format!("bad node address {addr}: {e}")))
    }
}

/// Why a batched chunk got no answer, for its error.
fn describe(unanswered: Unanswered, deadline: Duration) -> String {
    match unanswered {
        Unanswered::TimedOut => format!("no answer within {deadline:?}, queueing included"),
        Unanswered::SenderGone => "the task sending the chunk's batch ended first".to_string(),
    }
}

/// A batch call's `results`, checked to answer each of its `count` chunks.
fn one_result_per_chunk<T>(results: Vec<T>, count: usize) -> Result<Vec<T>, Status> {
    if results.len() != count {
        return Err(Status::internal(format!(
            "answered {} results for {count} chunks",
            results.len()
        )));
    }
    Ok(results)
}

/// The failure of a chain's head that did not answer, or refused the whole call.
fn head_failure(head: &NodeAddr, status: &Status) -> NodeFailure {
    NodeFailure {
        node_id: head.id.clone(),
        error: format!("{}: {:?}: {}", head.addr, status.code(), status.message()),
    }
}

fn chain_key(chain: &[NodeAddr]) -> String {
    chain
        .iter()
        .map(|hop| format!("{}@{} ", hop.id, hop.addr))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::pb::NodeInfoRequest;

    /// Calls to one peer spread over its connections: a listener that never answers counts
    /// the connections dialled by calls made at once.
    #[tokio::test]
    async fn calls_to_one_peer_take_its_connections_in_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = accepted.clone();
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let pool = NodePool::default();
        let calls = (0..2 * CONNECTIONS_PER_PEER).map(|_| {
            let mut client = pool.client(&addr).unwrap();
            async move {
                let mut request = Request::new(NodeInfoRequest {});
                request.set_timeout(Duration::from_millis(300));
                client.node_info(request).await.unwrap_err()
            }
        });
        futures::future::join_all(calls).await;
        accepting.abort();
        // One connection each, or more should a channel dial again after its time-out.
        let accepted = accepted.load(Ordering::SeqCst);
        assert!(accepted >= CONNECTIONS_PER_PEER, "{accepted} connections");
    }
}
