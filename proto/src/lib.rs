//! The BigFS wire protocol and the small types that every component shares.
//!
//! - [`pb`]: the generated tonic/prost code for `proto/bigfs.proto`.
//! - [`ChunkId`]: a chunk's BLAKE3 hash; the only form in which ids reach a disk path.
//! - [`path`]: the namespace's path rules.
//! - [`content_hash`]: a file's hash derived from its chunk ids.
//! - [`units`]: human-readable sizes and durations for flags ("64MiB", "3s").
//! - [`codec`]: the gRPC codec of every service, prost's with chunk-sized buffers.
//! - [`limits`]: protocol constants, such as gRPC message sizes.
//! - [`node_pool`]: shared connections to storage nodes.
//! - [`batch_queue`]: small chunk requests for the same node sent together.
//! - [`transport`]: gRPC endpoint and server settings every component uses.
//! - [`process`]: logging, panic and signal set-up for the server binaries.
//! - [`observe`]: metrics, health probes and request spans of the servers.
//! - [`lock`]: a poison-tolerant mutex lock.
//! - [`VERSION`]: what every binary's `--version` says.

pub mod batch_queue;
pub mod chunk_id;
pub mod codec;
pub mod content_hash;
pub mod limits;
pub mod lock;
pub mod node_pool;
pub mod observe;
pub mod path;
pub mod process;
pub mod transport;
pub mod units;

pub use chunk_id::{ChunkId, ChunkIdError};
pub use path::{FsPath, PathError};

/// The git commit the binaries were built from (short hash), "unknown" outside git.
pub const COMMIT: &str = env!("BIGFS_GIT_COMMIT");

/// The version every binary reports (`--version`): the workspace version and the git commit
/// it was built from, e.g. "0.1.0 (commit 1e17558)"; "unknown" when built outside git.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BIGFS_GIT_COMMIT"),
    ")"
);

/// How the metadata server's refusal of a change asked only at a version (`if_version`) ends,
/// so that a client tells it from its other FAILED_PRECONDITION answers (a directory where a
/// file must be, ...).
pub const VERSION_CHANGED: &str = "it changed since it was read";

/// Generated protobuf messages and gRPC clients and servers.
pub mod pb {
    tonic::include_proto!("bigfs.v1");
}

/// A storage node as the metadata server hands it out: its stable id and its gRPC address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef {
    pub id: String,
    /// e.g. "http://127.0.0.1:9401".
    pub addr: String,
}

impl From<NodeRef> for pb::NodeAddr {
    fn from(node: NodeRef) -> Self {
        Self {
            id: node.id,
            addr: node.addr,
        }
    }
}
