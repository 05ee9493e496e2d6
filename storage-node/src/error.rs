//! Storage node errors, and their one mapping to gRPC status codes.

use bigfs_proto::{ChunkId, ChunkIdError};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    BadChunkId(#[from] ChunkIdError),
    #[error("chunk {0} is not stored on this node")]
    ChunkNotFound(ChunkId),
    #[error("chunk data does not hash to its id {claimed} (got {actual})")]
    ChecksumMismatch { claimed: ChunkId, actual: ChunkId },
    #[error("chunk {0} is corrupt on disk and was quarantined")]
    ChunkCorrupt(ChunkId),
    #[error("node is full: {used} of {capacity} bytes used, chunk needs {need}")]
    Full { used: u64, capacity: u64, need: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid request: {0}")]
    InvalidArgument(String),
}

impl NodeError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Self {
        let message = e.to_string();
        match e {
            NodeError::BadChunkId(_) | NodeError::InvalidArgument(_) => {
                Status::invalid_argument(message)
            }
            NodeError::ChecksumMismatch { .. } => Status::data_loss(message),
            NodeError::ChunkCorrupt(_) => Status::data_loss(message),
            NodeError::ChunkNotFound(_) => Status::not_found(message),
            NodeError::Full { .. } => Status::resource_exhausted(message),
            NodeError::Io { ref source, .. }
                if source.raw_os_error() == Some(28 /* ENOSPC */) =>
            {
                Status::resource_exhausted(message)
            }
            NodeError::Io { .. } => Status::internal(message),
        }
    }
}
