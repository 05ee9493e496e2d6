//! The persistent namespace: files, chunk reference counts and known nodes, in sled.
//!
//! Trees:
//! - `files`: path → [`FileRecord`]. Directories are implicit: the common prefixes of paths.
//! - `chunk_refs`: 32-byte chunk id → [`ChunkRefs`]: reference count and wanted copies (the
//!   highest replication of the files referencing it), only while the count is above zero.
//! - `nodes`: node id → address, every node that ever registered (for safe mode).
//!
//! Every change is one sled transaction. Nothing here flushes: callers batch their changes and
//! then await [`Namespace::flush`] before acknowledging, so concurrent commits share a flush.
//! sled may run a transaction closure more than once, so closures only read and write trees.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::path::Path;

use prost::Message;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use bigfs_proto::{ChunkId, FsPath};

use crate::error::MetaError;
use crate::records::FileRecord;

/// sled's log segment size (its default is 512 KiB).
const SEGMENT_SIZE: usize = 8 << 20;

pub struct Namespace {
    db: sled::Db,
    files: sled::Tree,
    chunk_refs: sled::Tree,
    nodes: sled::Tree,
    /// Nodes an operator asked to drain (id → nothing): draining is for good.
    drains: sled::Tree,
}

/// A chunk's entry in the chunk table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRefs {
    pub refs: u64,
    /// The highest replication factor among the files that referenced it while it was
    /// referenced; it does not shrink when such a file goes, until the count drops to zero.
    pub wanted: u32,
}

impl ChunkRefs {
    fn encode(self) -> [u8; 12] {
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&self.refs.to_be_bytes());
        bytes[8..].copy_from_slice(&self.wanted.to_be_bytes());
        bytes
    }

    fn decode(id: &ChunkId, bytes: &[u8]) -> Result<Self, MetaError> {
        let bad = || MetaError::BadRecord {
            key: format!("chunk_refs/{id}"),
            reason: format!("{} bytes, want 12", bytes.len()),
        };
        let refs = bytes.get(..8).ok_or_else(bad)?;
        let wanted = bytes.get(8..12).ok_or_else(bad)?;
        Ok(Self {
            refs: u64::from_be_bytes(refs.try_into().map_err(|_| bad())?),
            wanted: u32::from_be_bytes(wanted.try_into().map_err(|_| bad())?),
        })
    }
}

/// One file to write with [`Namespace::commit_many`].
pub struct FileWrite {
    pub path: FsPath,
    pub record: FileRecord,
    /// Replace an existing file; without it an existing path is refused.
    pub overwrite: bool,
}

/// The outcome of a committed file write.
#[derive(Debug)]
pub struct Committed {
    pub version: u64,
    /// Chunks whose reference count fell to zero (the overwritten version's).
    pub freed: Vec<ChunkId>,
}

/// One entry of a directory listing.
#[derive(Debug, PartialEq)]
pub enum Entry {
    Dir(FsPath),
    File(FsPath, FileRecord),
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
        Ok(Self {
            files: db.open_tree("files")?,
            chunk_refs: db.open_tree("chunk_refs")?,
            nodes: db.open_tree("nodes")?,
            drains: db.open_tree("drains")?,
            db,
        })
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), MetaError> {
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn get(&self, path: &FsPath) -> Result<Option<FileRecord>, MetaError> {
        match self.files.get(path.as_str())? {
            Some(bytes) => Ok(Some(decode(path.as_str(), &bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether any file lives below `dir`.
    pub fn is_dir(&self, dir: &FsPath) -> Result<bool, MetaError> {
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
            if self.files.contains_key(ancestor)? {
                return Ok(Some(ancestor.to_string()));
            }
        }
        Ok(None)
    }

    /// Writes `record` at `path` (its version is assigned here) and moves the reference counts
    /// from the old version's chunks to the new one's, in one transaction.
    pub fn commit(
        &self,
        path: &FsPath,
        record: FileRecord,
        overwrite: bool,
    ) -> Result<Committed, MetaError> {
        let write = FileWrite {
            path: path.clone(),
            record,
            overwrite,
        };
        self.commit_many(&[write])?
            .pop()
            .expect("one outcome per write")
    }

    /// Writes many files in one transaction (far cheaper per file than one each); each file gets
    /// its own outcome, and a refused file (it exists and may not be replaced, or it would clash
    /// with a directory) changes nothing. Fails as a whole only on a store error.
    pub fn commit_many(
        &self,
        writes: &[FileWrite],
    ) -> Result<Vec<Result<Committed, MetaError>>, MetaError> {
        let mut refused = self.check_placement(writes)?;
        let result = (&self.files, &self.chunk_refs).transaction(|(files, refs)| {
            let mut outcomes = Vec::with_capacity(writes.len());
            for (write, refused) in writes.iter().zip(&refused) {
                if refused.is_some() {
                    outcomes.push(None);
                    continue;
                }
                let path = write.path.as_str();
                let old = match files.get(path)? {
                    Some(bytes) => Some(decode(path, &bytes).map_err(abort)?),
                    None => None,
                };
                if old.is_some() && !write.overwrite {
                    outcomes.push(None);
                    continue;
                }
                let mut deltas = ref_deltas(&write.record, 1).map_err(abort)?;
                if let Some(old) = &old {
                    for (id, delta) in ref_deltas(old, -1).map_err(abort)? {
                        deltas.entry(id).or_default().refs += delta.refs;
                    }
                }
                let freed = apply_ref_deltas(refs, &deltas)?;
                // sled may run this closure again, so the record it writes is built afresh.
                let version = old.map_or(1, |old| old.version + 1);
                let stored = FileRecord {
                    version,
                    ..write.record.clone()
                };
                files.insert(path, stored.encode_to_vec())?;
                outcomes.push(Some(Committed { version, freed }));
            }
            Ok(outcomes)
        });
        let outcomes = unwrap_transaction(result)?;
        Ok(writes
            .iter()
            .zip(outcomes)
            .zip(refused.iter_mut())
            .map(
                |((write, outcome), refused)| match (outcome, refused.take()) {
                    (Some(committed), _) => Ok(committed),
                    (None, Some(error)) => Err(error),
                    (None, None) => Err(MetaError::AlreadyExists(write.path.to_string())),
                },
            )
            .collect())
    }

    /// Why each write may not go where it is going, if it may not: a file cannot replace a
    /// directory, nor live below another file (committed, or earlier in the same batch).
    fn check_placement(&self, writes: &[FileWrite]) -> Result<Vec<Option<MetaError>>, MetaError> {
        let mut batch: BTreeSet<&str> = BTreeSet::new();
        writes
            .iter()
            .map(|write| {
                let path = &write.path;
                let in_batch_below = batch
                    .range::<str, _>((Bound::Excluded(path.as_str()), Bound::Unbounded))
                    .next()
                    .is_some_and(|p| p.starts_with(&path.dir_prefix()));
                let refusal = if in_batch_below || self.is_dir(path)? {
                    Some(MetaError::IsDirectory(path.to_string()))
                } else if let Some(file) = ancestors(path).find(|a| batch.contains(a)) {
                    Some(MetaError::NotADirectory(file.to_string()))
                } else {
                    self.file_ancestor(path)?.map(MetaError::NotADirectory)
                };
                if refusal.is_none() {
                    batch.insert(path.as_str());
                }
                Ok(refusal)
            })
            .collect()
    }

    /// Removes the file at `path`, returning the chunks whose reference count fell to zero.
    pub fn remove(&self, path: &FsPath) -> Result<Vec<ChunkId>, MetaError> {
        let (removed, freed) = self.remove_many(std::slice::from_ref(path))?;
        if removed == 0 {
            return Err(MetaError::NotFound(path.to_string()));
        }
        Ok(freed)
    }

    /// Removes the files at `paths` that exist, in one transaction; returns how many there were
    /// and the chunks whose reference count fell to zero.
    pub fn remove_many(&self, paths: &[FsPath]) -> Result<(u64, Vec<ChunkId>), MetaError> {
        let result = (&self.files, &self.chunk_refs).transaction(|(files, refs)| {
            let mut deltas: HashMap<ChunkId, RefDelta> = HashMap::new();
            let mut removed = 0;
            for path in paths {
                let Some(bytes) = files.remove(path.as_str())? else {
                    continue;
                };
                removed += 1;
                let old = decode(path.as_str(), &bytes).map_err(abort)?;
                for (id, delta) in ref_deltas(&old, -1).map_err(abort)? {
                    deltas.entry(id).or_default().refs += delta.refs;
                }
            }
            Ok((removed, apply_ref_deltas(refs, &deltas)?))
        });
        unwrap_transaction(result)
    }

    /// Paths of all files below `dir`, in order.
    pub fn files_under(&self, dir: &FsPath) -> Result<Vec<FsPath>, MetaError> {
        self.files
            .scan_prefix(dir.dir_prefix())
            .keys()
            .map(|key| {
                let key = key?;
                let path = std::str::from_utf8(&key).map_err(|e| MetaError::BadRecord {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: e.to_string(),
                })?;
                Ok(FsPath::parse(path)?)
            })
            .collect()
    }

    /// The immediate children of `dir`: directories first, then files, each sorted by name.
    /// Returns `None` when `dir` neither is a directory nor the root.
    ///
    /// Each subdirectory costs one seek past its subtree, not a walk through it.
    pub fn list(&self, dir: &FsPath) -> Result<Option<Vec<Entry>>, MetaError> {
        let prefix = dir.dir_prefix();
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        let mut iter = self.files.range(prefix.as_bytes()..);
        while let Some(item) = iter.next() {
            let (key, value) = item?;
            let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            let rest = std::str::from_utf8(rest).map_err(|e| MetaError::BadRecord {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: e.to_string(),
            })?;
            match rest.split_once('/') {
                Some((child, _)) => {
                    dirs.push(Entry::Dir(dir.join(child)?));
                    // '0' is the byte after '/': the first key past this child's subtree.
                    let skip = format!("{prefix}{child}0");
                    iter = self.files.range(skip.into_bytes()..);
                }
                None => {
                    let path = dir.join(rest)?;
                    let record = decode(path.as_str(), &value)?;
                    files.push(Entry::File(path, record));
                }
            }
        }
        if dirs.is_empty() && files.is_empty() && !dir.is_root() {
            return Ok(None);
        }
        dirs.append(&mut files);
        Ok(Some(dirs))
    }

    /// How many copies `id` should have: 0 when no file references it.
    pub fn wanted_copies(&self, id: &ChunkId) -> Result<u32, MetaError> {
        match self.chunk_refs.get(id.as_bytes())? {
            Some(bytes) => Ok(ChunkRefs::decode(id, &bytes)?.wanted),
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

    /// Every file with its record, in path order.
    pub fn all_files(&self) -> impl Iterator<Item = Result<(String, FileRecord), MetaError>> + '_ {
        self.files.iter().map(|item| {
            let (key, value) = item?;
            let path = String::from_utf8_lossy(&key).into_owned();
            let record = decode(&path, &value)?;
            Ok((path, record))
        })
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Every node that ever registered, as (id, address).
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

    /// Every node an operator asked to drain.
    pub fn drains(&self) -> Result<Vec<String>, MetaError> {
        self.drains
            .iter()
            .keys()
            .map(|id| Ok(String::from_utf8_lossy(&id?).into_owned()))
            .collect()
    }

    /// Remembers that node `id` is to be drained (durable at the next flush).
    pub fn remember_drain(&self, id: &str) -> Result<(), MetaError> {
        self.drains.insert(id.as_bytes(), &[])?;
        Ok(())
    }

    /// Remembers a node; returns whether anything changed (and so needs a flush).
    pub fn remember_node(&self, id: &str, addr: &str) -> Result<bool, MetaError> {
        let old = self.nodes.insert(id.as_bytes(), addr.as_bytes())?;
        Ok(old.as_deref() != Some(addr.as_bytes()))
    }
}

/// The proper ancestors of `path` below the root: `/a`, `/a/b` for `/a/b/c`.
fn ancestors(path: &FsPath) -> impl Iterator<Item = &str> {
    let raw = path.as_str();
    raw.match_indices('/').skip(1).map(move |(i, _)| &raw[..i])
}

fn decode(key: &str, bytes: &[u8]) -> Result<FileRecord, MetaError> {
    FileRecord::decode(bytes).map_err(|e| MetaError::BadRecord {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// A change to one chunk's entry: references added (or removed, when negative), and the
/// replication of the file that adds them.
#[derive(Default)]
struct RefDelta {
    refs: i64,
    wanted: u32,
}

/// Each chunk's reference count change when a file's record appears (`sign` 1) or goes (-1).
/// A chunk that occurs twice in a file (two equal pieces) holds two references.
fn ref_deltas(record: &FileRecord, sign: i64) -> Result<HashMap<ChunkId, RefDelta>, MetaError> {
    let mut deltas: HashMap<ChunkId, RefDelta> = HashMap::new();
    for chunk in &record.chunks {
        let delta = deltas.entry(chunk.chunk_id()?).or_default();
        delta.refs += sign;
        if sign > 0 {
            delta.wanted = record.replication;
        }
    }
    Ok(deltas)
}

type TxResult<T> = Result<T, ConflictableTransactionError<MetaError>>;

/// Applies reference count changes, dropping counts that reach zero; returns those chunks.
fn apply_ref_deltas(
    refs: &TransactionalTree,
    deltas: &HashMap<ChunkId, RefDelta>,
) -> TxResult<Vec<ChunkId>> {
    let mut freed = Vec::new();
    for (id, delta) in deltas {
        let current = match refs.get(id.as_bytes())? {
            Some(bytes) => ChunkRefs::decode(id, &bytes).map_err(abort)?,
            None => ChunkRefs { refs: 0, wanted: 0 },
        };
        let next = current.refs as i64 + delta.refs;
        if next > 0 {
            let entry = ChunkRefs {
                refs: next as u64,
                wanted: current.wanted.max(delta.wanted),
            };
            if entry != current {
                refs.insert(id.as_bytes(), &entry.encode())?;
            }
        } else if current.refs > 0 {
            refs.remove(id.as_bytes())?;
            freed.push(*id);
        }
    }
    Ok(freed)
}

fn abort(e: MetaError) -> ConflictableTransactionError<MetaError> {
    ConflictableTransactionError::Abort(e)
}

fn unwrap_transaction<T>(result: Result<T, TransactionError<MetaError>>) -> Result<T, MetaError> {
    result.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => MetaError::Store(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ChunkEntry;

    fn ns() -> (tempfile::TempDir, Namespace) {
        let dir = tempfile::tempdir().unwrap();
        let ns = Namespace::open(dir.path()).unwrap();
        (dir, ns)
    }

    fn record(chunks: &[&[u8]]) -> FileRecord {
        FileRecord {
            size: chunks.iter().map(|c| c.len() as u64).sum(),
            chunk_size: 1 << 20,
            replication: 3,
            chunks: chunks
                .iter()
                .map(|c| ChunkEntry::new(ChunkId::of(c), c.len() as u64))
                .collect(),
            mtime_ms: 1,
            version: 0,
        }
    }

    fn p(s: &str) -> FsPath {
        FsPath::parse(s).unwrap()
    }

    #[test]
    fn commit_overwrite_and_remove_move_reference_counts() {
        let (_dir, ns) = ns();
        let a = ChunkId::of(b"a");
        let b = ChunkId::of(b"b");
        let done = ns.commit(&p("/f"), record(&[b"a", b"a"]), false).unwrap();
        assert_eq!(done.version, 1);
        assert!(done.freed.is_empty());
        assert_eq!(ns.wanted_copies(&a).unwrap(), 3);

        // Another file shares chunk a.
        ns.commit(&p("/g"), record(&[b"a"]), false).unwrap();

        let err = ns.commit(&p("/f"), record(&[b"b"]), false).unwrap_err();
        assert!(matches!(err, MetaError::AlreadyExists(_)));
        assert_eq!(ns.get(&p("/f")).unwrap().unwrap().version, 1);

        let done = ns.commit(&p("/f"), record(&[b"b"]), true).unwrap();
        assert_eq!(done.version, 2);
        assert!(done.freed.is_empty(), "a is still used by /g");
        assert_eq!(ns.wanted_copies(&b).unwrap(), 3);

        assert_eq!(ns.remove(&p("/g")).unwrap(), vec![a]);
        assert_eq!(ns.wanted_copies(&a).unwrap(), 0);
        assert_eq!(ns.remove(&p("/f")).unwrap(), vec![b]);
        assert!(matches!(ns.remove(&p("/f")), Err(MetaError::NotFound(_))));
    }

    #[test]
    fn overwrite_with_same_content_frees_nothing() {
        let (_dir, ns) = ns();
        ns.commit(&p("/f"), record(&[b"x"]), false).unwrap();
        let done = ns.commit(&p("/f"), record(&[b"x"]), true).unwrap();
        assert!(done.freed.is_empty());
        assert_eq!(ns.wanted_copies(&ChunkId::of(b"x")).unwrap(), 3);
    }

    #[test]
    fn wanted_copies_is_the_highest_replication_referencing_a_chunk() {
        let (_dir, ns) = ns();
        let x = ChunkId::of(b"x");
        let with = |r: u32| FileRecord {
            replication: r,
            ..record(&[b"x"])
        };
        ns.commit(&p("/two"), with(2), false).unwrap();
        assert_eq!(ns.wanted_copies(&x).unwrap(), 2);
        ns.commit(&p("/five"), with(5), false).unwrap();
        assert_eq!(ns.wanted_copies(&x).unwrap(), 5);
        ns.remove(&p("/five")).unwrap();
        assert_eq!(ns.wanted_copies(&x).unwrap(), 5, "kept until unreferenced");
        let table: Vec<_> = ns.chunk_table().map(Result::unwrap).collect();
        assert_eq!(table, vec![(x, ChunkRefs { refs: 1, wanted: 5 })]);
        ns.remove(&p("/two")).unwrap();
        assert_eq!(ns.wanted_copies(&x).unwrap(), 0);
        assert_eq!(ns.chunk_table().count(), 0);
    }

    #[test]
    fn list_shows_directories_first_and_skips_subtrees() {
        let (_dir, ns) = ns();
        for path in [
            "/a/x",
            "/a/b/y",
            "/a/b/deep/z",
            "/a/c/z",
            "/a/w",
            "/a0",
            "/b",
        ] {
            ns.commit(&p(path), record(&[b"data"]), false).unwrap();
        }
        let names = |dir: &str| -> Vec<String> {
            ns.list(&p(dir))
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|e| match e {
                    Entry::Dir(p) => format!("{p}/"),
                    Entry::File(p, _) => p.to_string(),
                })
                .collect()
        };
        assert_eq!(names("/a"), ["/a/b/", "/a/c/", "/a/w", "/a/x"]);
        assert_eq!(names("/"), ["/a/", "/a0", "/b"]);
        assert_eq!(names("/a/b"), ["/a/b/deep/", "/a/b/y"]);
        assert!(ns.list(&p("/missing")).unwrap().is_none());
        assert!(ns.is_dir(&p("/a/b")).unwrap());
        assert!(!ns.is_dir(&p("/a/x")).unwrap());
        assert_eq!(
            ns.files_under(&p("/a/b")).unwrap(),
            [p("/a/b/deep/z"), p("/a/b/y")]
        );
    }

    #[test]
    fn a_batch_commits_each_file_on_its_own() {
        let (_dir, ns) = ns();
        ns.commit(&p("/old"), record(&[b"o"]), false).unwrap();
        let write = |path: &str, overwrite: bool| FileWrite {
            path: p(path),
            record: record(&[path.as_bytes()]),
            overwrite,
        };
        let outcomes = ns
            .commit_many(&[
                write("/new", false),
                write("/old", false),
                write("/d/x", false),
                write("/d", false),
                write("/new/below", false),
                write("/old", true),
            ])
            .unwrap();
        let summary: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Ok(c) => format!("v{}", c.version),
                Err(MetaError::AlreadyExists(_)) => "exists".into(),
                Err(MetaError::IsDirectory(_)) => "dir".into(),
                Err(MetaError::NotADirectory(f)) => format!("under {f}"),
                Err(e) => format!("{e}"),
            })
            .collect();
        assert_eq!(summary, ["v1", "exists", "v1", "dir", "under /new", "v2"]);
        assert_eq!(outcomes[5].as_ref().unwrap().freed, vec![ChunkId::of(b"o")]);
        assert!(ns.get(&p("/d")).unwrap().is_none());
        assert!(ns.get(&p("/new/below")).unwrap().is_none());
    }

    #[test]
    fn a_directory_cannot_be_overwritten_by_a_file() {
        let (_dir, ns) = ns();
        ns.commit(&p("/d/f"), record(&[b"1"]), false).unwrap();
        assert!(matches!(
            ns.commit(&p("/d"), record(&[b"2"]), true),
            Err(MetaError::IsDirectory(_))
        ));
        assert!(matches!(
            ns.commit(&p("/d/f/g"), record(&[b"3"]), false),
            Err(MetaError::NotADirectory(f)) if f == "/d/f"
        ));
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let ns = Namespace::open(dir.path()).unwrap();
            ns.commit(&p("/keep"), record(&[b"k"]), false).unwrap();
            ns.remember_node("n1", "http://127.0.0.1:1").unwrap();
            futures_flush(&ns);
        }
        let ns = Namespace::open(dir.path()).unwrap();
        assert_eq!(ns.get(&p("/keep")).unwrap().unwrap().version, 1);
        assert_eq!(
            ns.known_nodes().unwrap(),
            vec![("n1".to_string(), "http://127.0.0.1:1".to_string())]
        );
    }

    fn futures_flush(ns: &Namespace) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(ns.flush())
            .unwrap();
    }
}
