//! gRPC transport settings shared by every client and server in the cluster.
//!
//! Chunks are up to [`MAX_CHUNK_SIZE`](crate::limits::MAX_CHUNK_SIZE) bytes, far above gRPC's
//! defaults (4 MiB messages, 64 KiB HTTP/2 windows), so both ends set their limits here, once.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tower_layer::{Identity, Stack};

use crate::observe::rpc::RpcMetrics;

/// How long to wait for a TCP connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The deadline for one metadata call.
pub const META_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// The deadline for reading one chunk from one node.
pub const CHUNK_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 flow-control windows large enough that a 1 MiB chunk is never stalled on window
/// updates, and several can be in flight on one connection.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// The largest HTTP/2 frame each end accepts. The default, 16 KiB, cuts a 1 MiB chunk into 64
/// DATA frames, each parsed, flow-controlled and handed to the decoder on its own.
const MAX_FRAME: u32 = 1024 * 1024;

/// The deadline for storing one chunk through a chain of `hops` nodes: each hop stores and then
/// waits for the hops behind it, so every hop gets its own allowance.
pub fn chunk_write_timeout(hops: usize) -> Duration {
    Duration::from_secs(5) + Duration::from_secs(2) * hops.saturating_sub(1) as u32
}

/// The deadline for storing a batch of `chunks` small chunks through `hops` nodes: a node
/// stores them side by side, but they share its disk and its blocking threads.
pub fn chunk_batch_write_timeout(hops: usize, chunks: usize) -> Duration {
    chunk_write_timeout(hops) + Duration::from_millis(50) * chunks as u32 * hops as u32
}

/// The deadline for reading a batch of `chunks` small chunks from one node: it reads them side
/// by side, but they share its disk and its blocking threads.
pub fn chunk_batch_read_timeout(chunks: usize) -> Duration {
    CHUNK_READ_TIMEOUT + Duration::from_millis(50) * chunks as u32
}

/// An endpoint for `uri` (e.g. `http://127.0.0.1:9401`) with the cluster's settings. It
/// connects lazily, on first use.
pub fn endpoint(uri: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(uri.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME))
}

/// A server builder with the cluster's settings, whose every call is counted in `metrics`
/// and runs in a request span (see [`crate::observe::rpc`]).
pub fn server(metrics: RpcMetrics) -> Server<Stack<RpcMetrics, Identity>> {
    Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .layer(metrics)
}

/// Connections accepted on a listener bound by the caller, with Nagle's algorithm off. (The
/// server builder's own `tcp_nodelay` applies only to listeners it binds itself; without this,
/// every small reply waits out the peer's delayed ACK, ~40 ms.)
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}
