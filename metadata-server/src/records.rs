//! Records persisted by the metadata server, encoded with prost so they can grow new fields.
//!
//! One key space holds files and explicit directories alike (so a file and a directory can
//! never share a path): the value under a path is a [`FileRecord`], whose `directory` flag
//! marks a directory. [`Stored`] is the typed view the rest of the server works with.

use std::collections::BTreeMap;

use bigfs_proto::content_hash::ContentHasher;
use bigfs_proto::pb::ObjectMeta;
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
    /// Content-Type, ETag and `x-amz-meta-*` as records written before `object` kept them;
    /// [`Stored::decode`] moves them into `object`, and nothing writes them any more.
    #[prost(string, tag = "9")]
    pub legacy_content_type: String,
    #[prost(string, tag = "10")]
    pub legacy_etag: String,
    #[prost(btree_map = "string, string", tag = "11")]
    pub legacy_user_metadata: BTreeMap<String, String>,
    /// What an S3 client stored with the object, kept as the wire message so that a field
    /// added to it is kept with no change here; `None` for files the CLI wrote. Boxed: most
    /// records have none, and every lookup moves a record.
    #[prost(message, optional, boxed, tag = "12")]
    pub object: Option<Box<ObjectMeta>>,
    /// Extended attributes (see `Namespace::set_xattrs`); an explicit directory's too.
    #[prost(btree_map = "string, bytes", tag = "13")]
    pub xattrs: Xattrs,
}

/// Extended attributes by name.
pub type Xattrs = BTreeMap<String, Vec<u8>>;

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

    /// The S3 ETag the file was stored with; empty for files the CLI wrote.
    pub fn etag(&self) -> &str {
        self.object.as_ref().map_or("", |o| o.etag.as_str())
    }

    /// Keeps `object` with the file; an empty one (a file the CLI wrote) is kept as none.
    pub fn set_object(&mut self, object: ObjectMeta) {
        self.object = (object != ObjectMeta::default()).then(|| Box::new(object));
    }

    /// Moves the object metadata of a record written before `object` into it.
    fn upgrade(&mut self) {
        if self.object.is_none()
            && (!self.legacy_content_type.is_empty()
                || !self.legacy_etag.is_empty()
                || !self.legacy_user_metadata.is_empty())
        {
            self.object = Some(Box::new(ObjectMeta {
                content_type: std::mem::take(&mut self.legacy_content_type),
                etag: std::mem::take(&mut self.legacy_etag),
                user_metadata: std::mem::take(&mut self.legacy_user_metadata)
                    .into_iter()
                    .collect(),
                ..ObjectMeta::default()
            }));
        }
    }
}

/// An explicit directory's attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirAttrs {
    pub mode: u32,
    pub mtime_ms: u64,
    pub xattrs: Xattrs,
}

impl DirAttrs {
    /// A directory's attributes without extended attributes.
    pub fn new(mode: u32, mtime_ms: u64) -> Self {
        Self {
            mode,
            mtime_ms,
            xattrs: Xattrs::new(),
        }
    }

    pub fn to_record(&self) -> FileRecord {
        FileRecord {
            mode: self.mode,
            mtime_ms: self.mtime_ms,
            directory: true,
            xattrs: self.xattrs.clone(),
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
        let mut record =
            <FileRecord as prost::Message>::decode(bytes).map_err(|e| MetaError::BadRecord {
                key: key.to_string(),
                reason: e.to_string(),
            })?;
        Ok(if record.directory {
            Stored::Dir(DirAttrs {
                mode: record.mode,
                mtime_ms: record.mtime_ms,
                xattrs: record.xattrs,
            })
        } else {
            record.upgrade();
            Stored::File(record)
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Stored::File(record) => prost::Message::encode_to_vec(record),
            Stored::Dir(attrs) => prost::Message::encode_to_vec(&attrs.to_record()),
        }
    }

    /// The extended attributes kept with this record.
    pub fn xattrs(&self) -> &Xattrs {
        match self {
            Stored::File(record) => &record.xattrs,
            Stored::Dir(attrs) => &attrs.xattrs,
        }
    }

    pub fn xattrs_mut(&mut self) -> &mut Xattrs {
        match self {
            Stored::File(record) => &mut record.xattrs,
            Stored::Dir(attrs) => &mut attrs.xattrs,
        }
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
