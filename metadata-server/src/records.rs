//! Records persisted by the metadata server, encoded with prost so they can grow new fields.
//!
//! One key space holds files and explicit directories alike (so a file and a directory can
//! never share a path): the value under a path is a [`FileRecord`], whose `directory` flag
//! marks a directory. [`Stored`] is the typed view the rest of the server works with.

use std::collections::BTreeMap;

use bigfs_proto::content_hash::ContentHasher;
use bigfs_proto::ChunkId;

use crate::error::MetaError;

/// A file's mode when a put does not give one.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// A directory's mode when mkdir does not give one.
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// Only permission bits are kept (no file type, setuid or sticky bits).
pub const MODE_MASK: u32 = 0o777;

/// A file's metadata (or, with `directory`, an explicit directory's); its path is its key.
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
    /// Permission bits; 0 in records written before modes were kept (read as the default).
    #[prost(uint32, tag = "7")]
    pub mode: u32,
    /// This record is an explicit directory: only `mode` and `mtime_ms` mean anything.
    #[prost(bool, tag = "8")]
    pub directory: bool,
    /// What an S3 client stored with the object (Content-Type, ETag, `x-amz-meta-*`); empty
    /// for files the CLI wrote and in records that predate it.
    #[prost(string, tag = "9")]
    pub content_type: String,
    #[prost(string, tag = "10")]
    pub etag: String,
    #[prost(btree_map = "string, string", tag = "11")]
    pub user_metadata: BTreeMap<String, String>,
}

impl FileRecord {
    /// BLAKE3 over the chunk ids and sizes in order: equal for equal bytes cut the same way,
    /// computed without reading a byte of the file.
    pub fn content_hash(&self) -> blake3::Hash {
        let mut hasher = ContentHasher::default();
        for chunk in &self.chunks {
            hasher.add(&chunk.id, chunk.size);
        }
        hasher.finish()
    }

    /// The permission bits, with the default for records that predate them.
    pub fn mode(&self) -> u32 {
        match self.mode {
            0 => DEFAULT_FILE_MODE,
            mode => mode,
        }
    }
}

/// What an S3 gateway keeps with an object beside its bytes (see [`FileRecord`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectAttrs {
    pub content_type: String,
    pub etag: String,
    pub user_metadata: BTreeMap<String, String>,
}

impl ObjectAttrs {
    /// The attributes `record` was stored with.
    pub fn of(record: &FileRecord) -> Self {
        Self {
            content_type: record.content_type.clone(),
            etag: record.etag.clone(),
            user_metadata: record.user_metadata.clone(),
        }
    }

    /// Sets them on `record`.
    pub fn apply(self, record: &mut FileRecord) {
        record.content_type = self.content_type;
        record.etag = self.etag;
        record.user_metadata = self.user_metadata;
    }
}

/// An explicit directory's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirAttrs {
    pub mode: u32,
    pub mtime_ms: u64,
}

impl DirAttrs {
    pub fn to_record(self) -> FileRecord {
        FileRecord {
            mode: self.mode,
            mtime_ms: self.mtime_ms,
            directory: true,
            ..FileRecord::default()
        }
    }
}

/// What is stored under a path.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    File(FileRecord),
    Dir(DirAttrs),
}

impl Stored {
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self, MetaError> {
        let record =
            <FileRecord as prost::Message>::decode(bytes).map_err(|e| MetaError::BadRecord {
                key: key.to_string(),
                reason: e.to_string(),
            })?;
        Ok(if record.directory {
            Stored::Dir(DirAttrs {
                mode: record.mode,
                mtime_ms: record.mtime_ms,
            })
        } else {
            Stored::File(record)
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let record = match self {
            Stored::File(record) => record.clone(),
            Stored::Dir(attrs) => attrs.to_record(),
        };
        prost::Message::encode_to_vec(&record)
    }
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
