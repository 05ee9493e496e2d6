//! The persistent namespace: files, explicit directories, chunk reference counts and known
//! nodes, in sled.
//!
//! Trees:
//! - `files`: path → [`FileRecord`], a file or (flagged) an explicit directory. Directories
//!   are also implied by the paths below them (records written before directories were kept),
//!   so a directory exists when it has a record or anything below it.
//! - `chunk_refs`: 32-byte chunk id → [`ChunkRefs`]: references by replication factor, only
//!   while there are any.
//! - `nodes`: node id → address, every node that registered and was not removed (safe mode).
//! - `drains`: node id → empty, or "drained" once the drain finished: the nodes an operator
//!   asked to drain.
//!
//! Every change is one sled transaction, and changes are serialized by a lock of this type's
//! own, so the checks a change makes before its transaction still hold when it commits.
//! Nothing here flushes: callers batch changes and await [`Namespace::flush`] before
//! acknowledging, so concurrent changes share a flush (group commit, see [`GroupFlush`]). sled may run a transaction closure
//! more than once, so closures only read and write trees.

mod concat;
mod refs;
mod writes;
mod xattrs;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use bigfs_proto::{ChunkId, FsPath};

use crate::error::MetaError;
use crate::group_flush::GroupFlush;
use crate::records::{DirAttrs, FileRecord, Stored};

pub use concat::Concat;
pub use refs::ChunkRefs;
pub use writes::{now_ms, AttrChange, Committed, Copied, FileWrite, Moved};
pub use xattrs::{MAX_XATTRS_TOTAL, MAX_XATTR_NAME, MAX_XATTR_VALUE};

/// The value of a finished drain in the `drains` tree (a drain in progress has an empty one).
const DRAINED: &[u8] = b"drained";

/// sled's log segment size (its default is 512 KiB).
const SEGMENT_SIZE: usize = 8 << 20;

pub struct Namespace {
    db: sled::Db,
    files: sled::Tree,
    chunk_refs: sled::Tree,
    nodes: sled::Tree,
    drains: sled::Tree,
    /// Held by every change from its checks to its commit.
    writer: Mutex<()>,
    /// Concurrent flushes share one sled flush; see [`Namespace::flush`].
    group: GroupFlush,
}

/// What a path names.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    File(FileRecord),
    /// A directory: its attributes when it has a record, `None` when only implied by the
    /// paths below it (and for the root).
    Dir(Option<DirAttrs>),
    Missing,
}

/// One entry of a directory listing.
#[derive(Debug, PartialEq)]
pub enum Entry {
    Dir(FsPath, Option<DirAttrs>),
    File(FsPath, FileRecord),
}

/// What lies below a path (du).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    /// Directories below the path, explicit or implied.
    pub dirs: u64,
    pub bytes: u64,
    /// Each file's size times its replication factor.
    pub raw_bytes: u64,
}

impl Namespace {
    pub fn open(dir: &Path) -> Result<Self, MetaError> {
        // Every acknowledged change is flushed explicitly, so sled's periodic flusher only adds
        // a concurrent writer; larger segments roll over less often. Both narrow the window of
        // a deadlock sled 0.34 has between a segment roll-over and a concurrent log write
        // (spacejam/sled#1412), seen here under sustained commits and removals.
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .segment_size(SEGMENT_SIZE)
            .open()?;
        let flushed = db.clone();
        Ok(Self {
            group: GroupFlush::new(std::sync::Arc::new(move || {
                Ok(flushed.flush().map(drop)?)
            })),
            files: db.open_tree("files")?,
            chunk_refs: db.open_tree("chunk_refs")?,
            nodes: db.open_tree("nodes")?,
            drains: db.open_tree("drains")?,
            db,
            writer: Mutex::new(()),
        })
    }

    /// Makes everything written so far durable, sharing one sled flush with the callers
    /// waiting at the same time (group commit: see [`GroupFlush`]).
    ///
    /// Not sled's `flush_async`: that parks each waiting flush on sled's own small I/O pool,
    /// which also writes out the log buffers the flushes wait for, so enough concurrent
    /// flushes (`bigfs bench small`, 16 clients) fill the pool and hang the server for good.
    /// Here one flush at a time runs on tokio's blocking pool.
    pub async fn flush(&self) -> Result<(), MetaError> {
        self.group.flush().await
    }

    /// Counts sled flushes run, and calls of [`Self::flush`] (each served by one of them).
    pub fn flush_counters(&self) -> (Counter, Counter) {
        (self.group.flushes(), self.group.requests())
    }

    /// Holds the lock every change takes, as a long rename or copy does: lets tests stall
    /// changes where they wait for it.
    #[cfg(test)]
    pub fn hold_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        bigfs_proto::lock::lock(&self.writer)
    }

    /// [`Namespace::flush`] for callers already on the blocking pool.
    pub fn flush_blocking(&self) -> Result<(), MetaError> {
        self.db.flush()?;
        Ok(())
    }

    fn stored(&self, path: &str) -> Result<Option<Stored>, MetaError> {
        match self.files.get(path)? {
            Some(bytes) => Ok(Some(Stored::decode(path, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The file at `path`, if a file is there.
    pub fn get(&self, path: &FsPath) -> Result<Option<FileRecord>, MetaError> {
        match self.stored(path.as_str())? {
            Some(Stored::File(record)) => Ok(Some(record)),
            _ => Ok(None),
        }
    }

    /// What `path` names.
    pub fn lookup(&self, path: &FsPath) -> Result<Lookup, MetaError> {
        if path.is_root() {
            return Ok(Lookup::Dir(None));
        }
        Ok(match self.stored(path.as_str())? {
            Some(Stored::File(record)) => Lookup::File(record),
            Some(Stored::Dir(attrs)) => Lookup::Dir(Some(attrs)),
            None if self.has_children(path)? => Lookup::Dir(None),
            None => Lookup::Missing,
        })
    }

    /// Whether `path` is a directory (explicit, implied or the root).
    pub fn is_dir(&self, path: &FsPath) -> Result<bool, MetaError> {
        Ok(matches!(self.lookup(path)?, Lookup::Dir(_)))
    }

    /// Whether anything lives below `dir`.
    fn has_children(&self, dir: &FsPath) -> Result<bool, MetaError> {
        Ok(self
            .files
            .scan_prefix(dir.dir_prefix())
            .next()
            .transpose()?
            .is_some())
    }

    /// The first ancestor of `path` that is a file, if any: a file cannot have children.
    fn file_ancestor(&self, path: &FsPath) -> Result<Option<String>, MetaError> {
        for ancestor in ancestors(path) {
            if let Some(Stored::File(_)) = self.stored(ancestor)? {
                return Ok(Some(ancestor.to_string()));
            }
        }
        Ok(None)
    }

    /// Paths of every entry below `dir` (files and explicit directories), in order.
    pub fn entries_under(&self, dir: &FsPath) -> Result<Vec<FsPath>, MetaError> {
        self.files
            .scan_prefix(dir.dir_prefix())
            .keys()
            .map(|key| Ok(FsPath::parse(key_str(&key?)?)?))
            .collect()
    }

    /// Every entry below `dir` with what is stored there, in path order, read as it goes.
    fn stored_under(
        &self,
        dir: &FsPath,
    ) -> impl Iterator<Item = Result<(String, Stored), MetaError>> + '_ {
        self.files.scan_prefix(dir.dir_prefix()).map(|item| {
            let (key, value) = item?;
            let path = key_str(&key)?;
            Ok((path.to_string(), Stored::decode(path, &value)?))
        })
    }

    /// The immediate children of `dir`: directories first, then files, each sorted by name.
    /// Returns `None` when `dir` is not a directory.
    ///
    /// Each subdirectory costs one seek past its subtree, not a walk through it.
    pub fn list(&self, dir: &FsPath) -> Result<Option<Vec<Entry>>, MetaError> {
        if !matches!(self.lookup(dir)?, Lookup::Dir(_)) {
            return Ok(None);
        }
        let prefix = dir.dir_prefix();
        let mut dirs = Vec::new();
        let mut seen_dirs = BTreeSet::new();
        let mut files = Vec::new();
        let mut iter = self.files.range(prefix.as_bytes()..);
        while let Some(item) = iter.next() {
            let (key, value) = item?;
            let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            let rest = key_str(rest)?;
            match rest.split_once('/') {
                Some((child, _)) => {
                    if seen_dirs.insert(child.to_string()) {
                        dirs.push(Entry::Dir(dir.join(child)?, None));
                    }
                    // '0' is the byte after '/': the first key past this child's subtree.
                    let skip = format!("{prefix}{child}0");
                    iter = self.files.range(skip.into_bytes()..);
                }
                None => {
                    let path = dir.join(rest)?;
                    match Stored::decode(path.as_str(), &value)? {
                        Stored::File(record) => files.push(Entry::File(path, record)),
                        // Its subtree, if any, follows and is skipped as a child seen already.
                        Stored::Dir(attrs) => {
                            seen_dirs.insert(rest.to_string());
                            dirs.push(Entry::Dir(path, Some(attrs)));
                        }
                    }
                }
            }
        }
        dirs.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
        dirs.append(&mut files);
        Ok(Some(dirs))
    }

    /// Files, directories and bytes at and below `path`.
    pub fn usage(&self, path: &FsPath) -> Result<Usage, MetaError> {
        let mut usage = Usage::default();
        match self.lookup(path)? {
            Lookup::Missing => return Err(MetaError::NotFound(path.to_string())),
            Lookup::File(record) => usage.add_file(&record),
            Lookup::Dir(_) => {
                let prefix = path.dir_prefix();
                let mut dirs: BTreeSet<String> = BTreeSet::new();
                for entry in self.stored_under(path) {
                    let (key, stored) = entry?;
                    // Every directory between `path` and this entry exists, implied or not.
                    let rest = &key[prefix.len()..];
                    for (i, _) in rest.match_indices('/') {
                        dirs.insert(rest[..i].to_string());
                    }
                    match stored {
                        Stored::File(record) => usage.add_file(&record),
                        Stored::Dir(_) => {
                            dirs.insert(rest.to_string());
                        }
                    }
                }
                usage.dirs = dirs.len() as u64;
            }
        }
        Ok(usage)
    }

    /// How many copies `id` should have: 0 when no file references it.
    pub fn wanted_copies(&self, id: &ChunkId) -> Result<u32, MetaError> {
        match self.chunk_refs.get(id.as_bytes())? {
            Some(bytes) => refs::wanted_of(&bytes).ok_or_else(|| MetaError::BadRecord {
                key: format!("chunk_refs/{id}"),
                reason: format!("{} bytes", bytes.len()),
            }),
            None => Ok(0),
        }
    }

    /// Every referenced chunk with its entry, in id order.
    pub fn chunk_table(
        &self,
    ) -> impl Iterator<Item = Result<(ChunkId, ChunkRefs), MetaError>> + '_ {
        self.chunk_refs.iter().map(|item| {
            let (key, value) = item?;
            let id = ChunkId::from_slice(&key).map_err(|e| MetaError::BadRecord {
                key: "chunk_refs key".to_string(),
                reason: e.to_string(),
            })?;
            Ok((id, ChunkRefs::decode(&id, &value)?))
        })
    }

    /// Every file with its record, in path order (directories left out).
    pub fn all_files(&self) -> impl Iterator<Item = Result<(String, FileRecord), MetaError>> + '_ {
        self.files.iter().filter_map(|item| {
            let decoded = item.map_err(MetaError::from).and_then(|(key, value)| {
                let path = key_str(&key)?.to_string();
                Ok((Stored::decode(&path, &value)?, path))
            });
            match decoded {
                Ok((Stored::File(record), path)) => Some(Ok((path, record))),
                Ok((Stored::Dir(_), _)) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }

    /// How many files there are (one pass over the namespace).
    pub fn file_count(&self) -> Result<u64, MetaError> {
        let mut count = 0;
        for file in self.all_files() {
            file?;
            count += 1;
        }
        Ok(count)
    }

    /// Every node that registered and was not removed since, as (id, address).
    pub fn known_nodes(&self) -> Result<Vec<(String, String)>, MetaError> {
        self.nodes
            .iter()
            .map(|item| {
                let (id, addr) = item?;
                Ok((
                    String::from_utf8_lossy(&id).into_owned(),
                    String::from_utf8_lossy(&addr).into_owned(),
                ))
            })
            .collect()
    }

    /// Every node an operator asked to drain, and whether its drain had finished.
    pub fn drains(&self) -> Result<Vec<(String, bool)>, MetaError> {
        self.drains
            .iter()
            .map(|item| {
                let (id, state) = item?;
                Ok((
                    String::from_utf8_lossy(&id).into_owned(),
                    &*state == DRAINED,
                ))
            })
            .collect()
    }

    /// Remembers that node `id` is to be drained, or no longer (durable at the next flush).
    pub fn set_drain(&self, id: &str, draining: bool) -> Result<(), MetaError> {
        if draining {
            // A drain asked again of a drained node stays finished.
            self.drains
                .compare_and_swap(id.as_bytes(), None as Option<&[u8]>, Some(&[] as &[u8]))?
                .ok();
        } else {
            self.drains.remove(id.as_bytes())?;
        }
        Ok(())
    }

    /// Remembers that node `id`'s drain finished (durable at the next flush): after a restart,
    /// safe mode need not wait for it.
    pub fn mark_drained(&self, id: &str) -> Result<(), MetaError> {
        self.drains.insert(id.as_bytes(), DRAINED)?;
        Ok(())
    }

    /// Remembers a node; returns whether anything changed (and so needs a flush).
    pub fn remember_node(&self, id: &str, addr: &str) -> Result<bool, MetaError> {
        let old = self.nodes.insert(id.as_bytes(), addr.as_bytes())?;
        Ok(old.as_deref() != Some(addr.as_bytes()))
    }

    /// Forgets a node and its drain (durable at the next flush).
    pub fn forget_node(&self, id: &str) -> Result<(), MetaError> {
        self.nodes.remove(id.as_bytes())?;
        self.drains.remove(id.as_bytes())?;
        Ok(())
    }
}

impl Usage {
    fn add_file(&mut self, record: &FileRecord) {
        self.files += 1;
        self.bytes += record.size;
        self.raw_bytes += record.size * u64::from(record.replication);
    }
}

fn entry_path(entry: &Entry) -> &FsPath {
    match entry {
        Entry::Dir(path, _) | Entry::File(path, _) => path,
    }
}

/// A key as a path string; keys are written from valid paths, so anything else is damage.
fn key_str(key: &[u8]) -> Result<&str, MetaError> {
    std::str::from_utf8(key).map_err(|e| MetaError::BadRecord {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// The proper ancestors of `path` below the root, from the top: `/a`, `/a/b` for `/a/b/c`.
fn ancestors(path: &FsPath) -> impl Iterator<Item = &str> {
    let raw = path.as_str();
    raw.match_indices('/').skip(1).map(move |(i, _)| &raw[..i])
}

type TxResult<T> = Result<T, ConflictableTransactionError<MetaError>>;

fn abort(e: MetaError) -> ConflictableTransactionError<MetaError> {
    ConflictableTransactionError::Abort(e)
}

fn unwrap_transaction<T>(result: Result<T, TransactionError<MetaError>>) -> Result<T, MetaError> {
    result.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => MetaError::Store(e),
    })
}

/// Runs sled work on the blocking pool, so a long batch never stalls the runtime's threads
/// (and with them every other call and the HTTP/2 keep-alives).
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MetaError> + Send + 'static,
) -> Result<T, MetaError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| MetaError::Internal(format!("metadata task failed: {e}")))?
}

#[cfg(test)]
mod tests;
