//! Metadata server errors, and their one mapping to gRPC status codes.

use bigfs_proto::{ChunkIdError, PathError};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error(transparent)]
    BadPath(#[from] PathError),
    #[error(transparent)]
    BadChunkId(#[from] ChunkIdError),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} is a directory")]
    IsDirectory(String),
    #[error("{0} is a file, not a directory")]
    NotADirectory(String),
    #[error(
        "cannot create {path}: its parent directory {parent} does not exist (mkdir -p creates it)"
    )]
    NoParent { path: String, parent: String },
    #[error("{path} is at version {actual}, not {expected}: {changed}", changed = bigfs_proto::VERSION_CHANGED)]
    VersionMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("directory {0} is not empty")]
    NotEmpty(String),
    #[error("not enough storage nodes: need {need}, {usable} usable")]
    NotEnoughNodes { need: u32, usable: u32 },
    #[error("unknown storage node {0:?}")]
    UnknownNode(String),
    #[error(
        "cannot drain {node}: its chunks want {need} copies and only {others} other node(s) \
         take new chunks; add a node first"
    )]
    CannotDrain {
        node: String,
        need: u32,
        others: u32,
    },
    #[error(
        "node {node} is still running (last heartbeat {seconds_ago:.1}s ago): stop it, then \
         remove it once `bigfs nodes` shows it dead"
    )]
    NodeStillRunning { node: String, seconds_ago: f64 },
    #[error(
        "node {node} holds the only copy of {chunks} chunk(s): start it again so they can be \
         copied (or drain it) before removing it"
    )]
    NodeHoldsOnlyCopies { node: String, chunks: usize },
    #[error(
        "node {0} has not reported since the metadata server restarted, so what it holds is \
         unknown: start it, or remove it once safe mode ends"
    )]
    NodeNotReported(String),
    #[error("metadata store: {0}")]
    Store(#[from] sled::Error),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("metadata store holds a bad record for {key}: {reason}")]
    BadRecord { key: String, reason: String },
}

impl From<MetaError> for Status {
    fn from(e: MetaError) -> Self {
        let message = e.to_string();
        match e {
            MetaError::BadPath(_) | MetaError::BadChunkId(_) | MetaError::InvalidArgument(_) => {
                Status::invalid_argument(message)
            }
            MetaError::NotFound(_) | MetaError::UnknownNode(_) | MetaError::NoParent { .. } => {
                Status::not_found(message)
            }
            MetaError::AlreadyExists(_) => Status::already_exists(message),
            MetaError::IsDirectory(_)
            | MetaError::NotADirectory(_)
            | MetaError::NotEmpty(_)
            | MetaError::VersionMismatch { .. }
            | MetaError::CannotDrain { .. }
            | MetaError::NodeStillRunning { .. }
            | MetaError::NodeHoldsOnlyCopies { .. }
            | MetaError::NodeNotReported(_) => Status::failed_precondition(message),
            MetaError::NotEnoughNodes { .. } => Status::unavailable(message),
            MetaError::Store(_) | MetaError::Internal(_) => Status::internal(message),
            MetaError::BadRecord { .. } => Status::data_loss(message),
        }
    }
}
