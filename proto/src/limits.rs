//! Protocol constants shared by clients and servers.

/// The chunk size of a cluster not configured otherwise.
pub const DEFAULT_CHUNK_SIZE: u64 = 1024 * 1024;

/// The largest chunk size a cluster may be configured with.
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// Room for a message's fields besides the chunk payload.
const MESSAGE_MARGIN: usize = 64 * 1024;

/// gRPC message limit for messages that carry one chunk.
pub const MAX_CHUNK_MESSAGE: usize = MAX_CHUNK_SIZE as usize + MESSAGE_MARGIN;

/// Chunks up to this size go to a node several to a call (PutChunks, GetChunks) when several are
/// bound for the same chain, or read from the same node, at once: one call per small chunk costs
/// a node more than storing or reading it.
pub const BATCH_CHUNK_MAX: usize = 256 * 1024;

/// The most chunks one PutChunks call carries.
pub const MAX_PUT_BATCH: usize = 64;

/// The most chunks one GetChunks call asks for.
pub const MAX_GET_BATCH: usize = 16;

/// gRPC message limit for metadata messages: full chunk reports and large listings.
pub const MAX_META_MESSAGE: usize = 256 * 1024 * 1024;

/// The replication factor a file may ask for at most.
pub const MAX_REPLICATION: u32 = 16;

/// The most files one CommitFiles call may carry.
pub const MAX_COMMIT_BATCH: usize = 10_000;

/// The most paths one GetFiles call may ask for.
pub const MAX_LOOKUP_BATCH: usize = 10_000;
