//! Records persisted by the metadata server, encoded with prost so they can grow new fields.

use bigfs_proto::ChunkId;

use crate::error::MetaError;

/// A file's metadata; its path is the key it is stored under.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileRecord {
    #[prost(uint64, tag = "1")]
    pub size: u64,
    #[prost(uint64, tag = "2")]
    pub chunk_size: u64,
    #[prost(uint32, tag = "3")]
    pub replication: u32,
    #[prost(message, repeated, tag = "4")]
    pub chunks: Vec<ChunkEntry>,
    /// Milliseconds since the Unix epoch.
    #[prost(uint64, tag = "5")]
    pub mtime_ms: u64,
    /// 1 for the first version of a path, bumped on every overwrite.
    #[prost(uint64, tag = "6")]
    pub version: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkEntry {
    /// The 32-byte BLAKE3 id.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub size: u64,
}

impl ChunkEntry {
    pub fn new(id: ChunkId, size: u64) -> Self {
        Self {
            id: id.as_bytes().to_vec(),
            size,
        }
    }

    pub fn chunk_id(&self) -> Result<ChunkId, MetaError> {
        ChunkId::from_slice(&self.id).map_err(|e| MetaError::BadRecord {
            key: "chunk entry".to_string(),
            reason: e.to_string(),
        })
    }
}
