//! A pool of connections to storage nodes, shared by the client and by nodes forwarding
//! chunks down a replication chain.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::limits::MAX_CHUNK_MESSAGE;
use crate::pb::node_client::NodeClient;
use crate::pb::{NodeAddr, NodeFailure, PutChunkRequest, PutChunkResponse};
use crate::transport;

/// One lazily connected channel per peer address, shared by all requests to it (HTTP/2
/// multiplexes them).
#[derive(Default)]
pub struct NodePool {
    clients: Mutex<HashMap<String, NodeClient<Channel>>>,
}

impl NodePool {
    pub fn client(&self, addr: &str) -> Result<NodeClient<Channel>, tonic::transport::Error> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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
}

impl NodePool {
    /// Stores a chunk on the first node of `chain`, which forwards it down the rest. A head
    /// that cannot be reached (or fails) is recorded as failed and the chain goes on from the
    /// next node, so one dead node costs one copy, not the whole chain. The reply lists every
    /// node that acknowledged a durable copy and every node that failed.
    pub async fn put_chain(
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
                    reply.failed.push(NodeFailure {
                        node_id: head.id.clone(),
                        error: format!("{}: {}", head.addr, status.message()),
                    });
                    rest = tail;
                }
            }
        }
        reply
    }

    async fn put_one(
        &self,
        head: &NodeAddr,
        chunk_id: &str,
        data: Bytes,
        tail: &[NodeAddr],
    ) -> Result<PutChunkResponse, Status> {
        let mut client = self
            .client(&head.addr)
            .map_err(|e| Status::invalid_argument(format!("bad node address: {e}")))?;
        let mut request = Request::new(PutChunkRequest {
            chunk_id: chunk_id.to_string(),
            data,
            chain: tail.to_vec(),
        });
        request.set_timeout(transport::chunk_write_timeout(tail.len() + 1));
        Ok(client.put_chunk(request).await?.into_inner())
    }
}
