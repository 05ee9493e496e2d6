//! A pool of connections to storage nodes, shared by the client and by nodes forwarding
//! chunks down a replication chain.
//!
//! Small chunks bound for the same chain at the same time travel together, in one PutChunks
//! call, because a call per 64 KiB chunk costs a node more than storing the chunk. No chunk
//! waits for company: a batch leaves at once while fewer than [`BATCHES_IN_FLIGHT`] are under
//! way on its chain, and the chunks that arrive meanwhile leave together in the next one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::limits::{BATCH_CHUNK_MAX, MAX_CHUNK_MESSAGE, MAX_PUT_BATCH};
use crate::pb::node_client::NodeClient;
use crate::pb::{
    ChunkData, NodeAddr, NodeFailure, PutChunkRequest, PutChunkResponse, PutChunksRequest,
};
use crate::transport;

/// Batches of small chunks under way at once on one chain.
const BATCHES_IN_FLIGHT: usize = 2;

/// One lazily connected channel per peer address, shared by all requests to it (HTTP/2
/// multiplexes them). Clones share the connections.
#[derive(Default, Clone)]
pub struct NodePool {
    clients: Arc<Mutex<HashMap<String, NodeClient<Channel>>>>,
    /// Small chunks waiting for a batch, by chain.
    queues: Arc<Mutex<HashMap<String, ChainQueue>>>,
}

/// A chunk waiting for a batch, and where its answer goes.
type Waiting = (ChunkData, oneshot::Sender<PutChunkResponse>);

#[derive(Default)]
struct ChainQueue {
    waiting: VecDeque<Waiting>,
    /// Tasks sending batches from this queue.
    senders: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl NodePool {
    pub fn client(&self, addr: &str) -> Result<NodeClient<Channel>, tonic::transport::Error> {
        let mut clients = lock(&self.clients);
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let channel = transport::endpoint(addr)?.connect_lazy();
        let client = NodeClient::new(channel)
            .max_decoding_message_size(MAX_CHUNK_MESSAGE)
            .max_encoding_message_size(MAX_CHUNK_MESSAGE);
        clients.insert(addr.to_string(), client.clone());
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
        let key = chain_key(chain);
        let (tx, rx) = oneshot::channel();
        let chunk = ChunkData {
            chunk_id: chunk_id.to_string(),
            data,
        };
        let start_sender = {
            let mut queues = lock(&self.queues);
            let queue = queues.entry(key.clone()).or_default();
            queue.waiting.push_back((chunk, tx));
            let start = queue.senders < BATCHES_IN_FLIGHT;
            queue.senders += usize::from(start);
            start
        };
        if start_sender {
            let sender = Sender {
                pool: self.clone(),
                key,
                left: false,
            };
            tokio::spawn(sender.run(chain.to_vec()));
        }
        rx.await.unwrap_or_else(|_| PutChunkResponse {
            stored: Vec::new(),
            failed: vec![NodeFailure {
                node_id: chain[0].id.clone(),
                error: format!(
                    "{}: the task sending the chunk's batch ended before it was answered",
                    chain[0].addr
                ),
            }],
        })
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
        let mut client = self.client_for(head)?;
        let mut request = Request::new(PutChunkRequest {
            chunk_id: chunk_id.to_string(),
            data,
            chain: tail.to_vec(),
        });
        request.set_timeout(transport::chunk_write_timeout(tail.len() + 1));
        Ok(client.put_chunk(request).await?.into_inner())
    }

    async fn put_batch_one(
        &self,
        head: &NodeAddr,
        chunks: Vec<ChunkData>,
        tail: &[NodeAddr],
    ) -> Result<Vec<PutChunkResponse>, Status> {
        let mut client = self.client_for(head)?;
        let count = chunks.len();
        let mut request = Request::new(PutChunksRequest {
            chunks,
            chain: tail.to_vec(),
        });
        request.set_timeout(transport::chunk_batch_write_timeout(tail.len() + 1, count));
        let results = client.put_chunks(request).await?.into_inner().results;
        if results.len() != count {
            return Err(Status::internal(format!(
                "answered {} results for {count} chunks",
                results.len()
            )));
        }
        Ok(results)
    }

    fn client_for(&self, head: &NodeAddr) -> Result<NodeClient<Channel>, Status> {
        self.client(&head.addr)
            .map_err(|e| Status::invalid_argument(format!("bad node address: {e}")))
    }
}

/// The task that sends the batches of one chain's queue. However it ends (also cancelled with
/// its runtime), it gives up its place, and the last sender of a queue removes it, failing the
/// chunks still waiting, so that no caller waits for ever.
struct Sender {
    pool: NodePool,
    key: String,
    /// Whether it has given up its place in the queue's count.
    left: bool,
}

impl Sender {
    /// Sends the chunks waiting for `chain` in batches, until none are left.
    async fn run(mut self, chain: Vec<NodeAddr>) {
        while let Some(batch) = self.next_batch() {
            let (chunks, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let results = self.pool.put_chain_batch(chunks, &chain).await;
            for (reply, result) in replies.into_iter().zip(results) {
                // A receiver gone has given up on its chunk.
                let _ = reply.send(result);
            }
        }
    }

    /// Up to a batch of the chunks waiting, leaving out those whose caller has given up. When
    /// none are left the sender leaves, under the same lock, so that a chunk queued meanwhile
    /// finds the sender count without it and starts a sender of its own.
    fn next_batch(&mut self) -> Option<Vec<Waiting>> {
        let all = Arc::clone(&self.pool.queues);
        let mut queues = lock(&all);
        let queue = queues.get_mut(&self.key)?;
        queue.waiting.retain(|(_, reply)| !reply.is_closed());
        if queue.waiting.is_empty() {
            self.leave(&mut queues);
            return None;
        }
        let n = queue.waiting.len().min(MAX_PUT_BATCH);
        Some(queue.waiting.drain(..n).collect())
    }

    fn leave(&mut self, queues: &mut HashMap<String, ChainQueue>) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        if let Some(queue) = queues.get_mut(&self.key) {
            queue.senders -= 1;
            if queue.senders == 0 {
                // Dropping the replies still waiting answers their callers with a failure.
                queues.remove(&self.key);
            }
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let queues = Arc::clone(&self.pool.queues);
        self.leave(&mut lock(&queues));
    }
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
