//! The content-addressed chunk store on local disk.
//!
//! Layout under the data directory:
//! - `chunks/<first 2 hex>/<64 hex>`: one file per chunk, named by its BLAKE3 id;
//! - `tmp/`: chunks being written, renamed into `chunks/` only once complete (and, with fsync,
//!   durable), so a crash never leaves a torn file under a chunk's name;
//! - `quarantine/<64 hex>.<unix ms>`: copies that failed verification, kept for inspection.
//!
//! Every write is verified against the claimed id and every read is verified before its bytes
//! are returned. The store also records what changed since the last heartbeat, so the metadata
//! server learns of new, deleted and corrupt copies.
//!
//! The store keeps an in-memory index of the chunks under `chunks/` (id → length, about 40 bytes
//! a chunk plus hash-table slack), built by a directory scan at open and updated by every put,
//! delete and quarantine while that chunk's lock is held, so that index and disk change together.
//! The chunk list, the chunk count and the bytes used all derive from it. The index is what the
//! node believes, not a guarantee: a file removed or damaged behind the node's back is noticed
//! when it is next read, by a client or by the [scrubber](crate::scrubber), and is then dropped
//! from the index and reported.
//!
//! All methods do blocking I/O: call them from `spawn_blocking`.
//!
//! # Failpoints
//!
//! Built with the `failpoints` feature, the write path holds these failpoints of the `fail`
//! crate, set with the `FAILPOINTS` environment variable of `bigfs-node` (for example
//! `FAILPOINTS='chunk_store::fsync=return'`) or `fail::cfg` in tests. Without the feature they
//! compile to nothing. Each one's `return` action may name a prefix of chunk ids in hex,
//! `return(3fa)`, to fail only the writes of chunks whose id starts with it; a plain `return`
//! fails every write. The other actions of the `fail` crate (`sleep`, `pause`, `panic`, `print`)
//! act on every write.
//! - `chunk_store::write`: after the temp file is created, before it is written. `return` fails
//!   the write with ENOSPC (os error 28); `sleep(ms)` makes a slow disk.
//! - `chunk_store::short_write`: in place of writing the temp file. `return` writes half of the
//!   bytes, then fails with ENOSPC, as a disk that fills up mid-write.
//! - `chunk_store::fsync`: before the temp file's fsync, so only with `--fsync`. `return` fails
//!   the fsync with EIO (os error 5); the write fails and is never acknowledged.
//! - `chunk_store::before_rename`: the temp file is complete (and synced), not yet renamed into
//!   place. `panic` crashes there, leaving a complete temp file behind (the binary aborts on a
//!   panic; [`ChunkStore::open`] removes the file at the next start); `pause` holds the write
//!   there, for a test to kill the process; `return` fails the rename with EIO.
//!
//! A write failed by a failpoint leaves what any failed write leaves: no temp file (its drop
//! guard removes it), no file under `chunks/`, and the space figures as they were.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use bigfs_proto::ChunkId;

use crate::error::NodeError;

/// Writes, renames and deletes of one chunk are serialised by one of these locks, so that the
/// index sees each file appear and disappear exactly once, in the order the disk did.
const LOCK_SHARDS: usize = 64;

/// Evaluates failpoint `$name` for a write of chunk `$id`. When its `return` action applies to
/// the chunk (see the module doc), the enclosing function returns `Err($error)`; `$error` is
/// evaluated only then. Compiles to nothing without the `failpoints` feature.
macro_rules! chunk_failpoint {
    ($name:literal, $id:expr, $error:expr) => {
        #[cfg(feature = "failpoints")]
        {
            let applies = |arg: Option<String>| failpoint_applies(&$id, arg.as_deref());
            if fail::eval($name, applies) == Some(true) {
                return Err($error);
            }
        }
    };
}

pub struct ChunkStore {
    chunks_dir: PathBuf,
    tmp_dir: PathBuf,
    quarantine_dir: PathBuf,
    fsync: bool,
    capacity: u64,
    shards: Vec<Mutex<()>>,
    state: Mutex<StoreState>,
}

#[derive(Default)]
struct StoreState {
    /// Every chunk under `chunks/` with its length. Lengths fit in `u32` (chunks are at most
    /// 64 MiB), which keeps an entry near 40 bytes.
    index: HashMap<ChunkId, u32>,
    /// The sum of the index's lengths.
    stored: u64,
    /// Bytes promised to writes in progress (see [`Reservation`]).
    reserved: u64,
    /// The latest state (present or not) of each chunk that changed since the last heartbeat.
    /// Only the final state matters to the metadata server, so a put and a delete of the same
    /// chunk between two beats collapse into one entry.
    changes: HashMap<ChunkId, bool>,
    corrupt: Vec<ChunkId>,
}

impl StoreState {
    fn used(&self) -> u64 {
        self.stored + self.reserved
    }

    /// Records `id` as stored with `len` bytes, replacing an earlier entry.
    fn insert(&mut self, id: ChunkId, len: u32) {
        if let Some(old) = self.index.insert(id, len) {
            self.stored -= u64::from(old);
        }
        self.stored += u64::from(len);
        self.changes.insert(id, true);
    }

    /// Records `id` as gone from disk. Returns whether the index held it.
    fn remove(&mut self, id: ChunkId) -> bool {
        let Some(len) = self.index.remove(&id) else {
            return false;
        };
        self.stored -= u64::from(len);
        self.changes.insert(id, false);
        true
    }
}

/// Space promised to one write in progress. It is given back when dropped (the write failed,
/// or unwound), unless [`Reservation::commit`] turned it into an index entry.
struct Reservation<'a> {
    store: &'a ChunkStore,
    len: u32,
}

impl Reservation<'_> {
    /// Turns the reservation into the index entry of `id`, whose file was just renamed into
    /// place. Call with the chunk's lock held.
    fn commit(mut self, id: ChunkId) {
        let mut state = self.store.state();
        state.reserved -= u64::from(self.len);
        state.insert(id, self.len);
        // Nothing left to give back; `drop` must not take the state lock held here.
        self.len = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.store.state().reserved -= u64::from(self.len);
        }
    }
}

/// What [`ChunkStore::scrub`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scrubbed {
    /// The copy verified.
    Good { bytes: u64 },
    /// The copy failed verification: it was quarantined and is reported corrupt.
    Corrupt { bytes: u64 },
    /// The index listed the chunk but its file was gone: it is now reported removed.
    Missing,
    /// The chunk was not stored (deleted since it was listed): nothing to check.
    NotStored,
}

/// The outcome of reading a chunk file and verifying it.
enum Read {
    Good(Vec<u8>),
    /// Failed verification and quarantined.
    Corrupt {
        bytes: u64,
    },
    /// No file; `indexed` says whether the index listed it (and was corrected).
    Missing {
        indexed: bool,
    },
}

/// What changed since the last call to [`ChunkStore::take_changes`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkChanges {
    pub added: Vec<ChunkId>,
    pub removed: Vec<ChunkId>,
    pub corrupt: Vec<ChunkId>,
}

/// Space figures for heartbeats.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub capacity: u64,
    pub used: u64,
    pub chunks: u64,
}

impl ChunkStore {
    /// Opens (creating if needed) the store under `data_dir`, removes writes left unfinished
    /// by a crash, and indexes the chunks it holds. Files under `chunks/` that are not named
    /// like a chunk in its shard directory are logged and left alone, never counted.
    pub fn open(data_dir: &Path, capacity: u64, fsync: bool) -> Result<Self, NodeError> {
        let store = Self {
            chunks_dir: data_dir.join("chunks"),
            tmp_dir: data_dir.join("tmp"),
            quarantine_dir: data_dir.join("quarantine"),
            fsync,
            capacity,
            shards: (0..LOCK_SHARDS).map(|_| Mutex::new(())).collect(),
            state: Mutex::new(StoreState::default()),
        };
        for dir in [&store.chunks_dir, &store.tmp_dir, &store.quarantine_dir] {
            fs::create_dir_all(dir)
                .map_err(|e| NodeError::io(format!("create {}", dir.display()), e))?;
        }
        store.remove_unfinished_writes()?;
        let (index, stored) = store.scan()?;
        {
            let mut state = store.state();
            state.index = index;
            state.stored = stored;
        }
        Ok(store)
    }

    /// Verifies `data` against `id` and stores it durably (with fsync when configured) under its
    /// id. A good copy already present is kept as it is; a bad one is quarantined and replaced.
    pub fn put(&self, id: ChunkId, data: &[u8]) -> Result<(), NodeError> {
        let len = u32::try_from(data.len()).map_err(|_| {
            NodeError::InvalidArgument(format!("chunk {id} is {} bytes, too big", data.len()))
        })?;
        let actual = ChunkId::of(data);
        if actual != id {
            return Err(NodeError::ChecksumMismatch {
                claimed: id,
                actual,
            });
        }
        if self.holds_good_copy(id, len.into())? {
            return Ok(());
        }
        let reservation = self.reserve(len)?;
        self.write_file(id, data, reservation)
    }

    /// Reads a chunk and verifies it. A copy that fails verification is quarantined and
    /// reported as corrupt; its bytes are never returned. A file missing though the index
    /// lists it is reported removed.
    pub fn get(&self, id: ChunkId) -> Result<Bytes, NodeError> {
        match self.read_verified(id)? {
            Read::Good(data) => Ok(Bytes::from(data)),
            Read::Corrupt { .. } => Err(NodeError::ChunkCorrupt(id)),
            Read::Missing { .. } => Err(NodeError::ChunkNotFound(id)),
        }
    }

    /// Re-reads and verifies one chunk for the scrubber, with the effects of [`Self::get`]
    /// (quarantine, reports), and says what it found without returning the bytes.
    pub fn scrub(&self, id: ChunkId) -> Result<Scrubbed, NodeError> {
        Ok(match self.read_verified(id)? {
            Read::Good(data) => Scrubbed::Good {
                bytes: data.len() as u64,
            },
            Read::Corrupt { bytes } => Scrubbed::Corrupt { bytes },
            Read::Missing { indexed: true } => Scrubbed::Missing,
            Read::Missing { indexed: false } => Scrubbed::NotStored,
        })
    }

    fn read_verified(&self, id: ChunkId) -> Result<Read, NodeError> {
        let data = match fs::read(self.chunk_path(&id)) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let indexed = self.forget_missing(id);
                return Ok(Read::Missing { indexed });
            }
            Err(e) => return Err(NodeError::io(format!("read chunk {id}"), e)),
        };
        if !id.matches(&data) {
            self.quarantine(id)?;
            return Ok(Read::Corrupt {
                bytes: data.len() as u64,
            });
        }
        Ok(Read::Good(data))
    }

    /// Whether a verified copy of `id` is on disk. A copy that fails verification is
    /// quarantined, so the caller writes a fresh one.
    fn holds_good_copy(&self, id: ChunkId, len: u64) -> Result<bool, NodeError> {
        match fs::symlink_metadata(self.chunk_path(&id)) {
            Ok(meta) if meta.len() == len => {}
            Ok(_) => {
                self.quarantine(id)?;
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget_missing(id);
                return Ok(false);
            }
            Err(e) => return Err(NodeError::io(format!("stat chunk {id}"), e)),
        }
        Ok(matches!(self.read_verified(id)?, Read::Good(_)))
    }

    /// Drops `id` from the index if its file is gone, which only happens behind the node's
    /// back. Returns whether it did.
    fn forget_missing(&self, id: ChunkId) -> bool {
        // The common case, a chunk never stored here, costs no lock and no second stat.
        if !self.state().index.contains_key(&id) {
            return false;
        }
        let _guard = self.lock(&id);
        // Checked again under the lock: a put may have renamed a fresh copy into place since
        // the caller looked.
        match fs::symlink_metadata(self.chunk_path(&id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => return false,
        }
        if !self.state().remove(id) {
            return false;
        }
        tracing::warn!(chunk = %id, "chunk file vanished from disk; reporting the chunk removed");
        true
    }

    /// Removes a chunk. Removing one that is not there is not an error.
    pub fn delete(&self, id: ChunkId) -> Result<(), NodeError> {
        let path = self.chunk_path(&id);
        let _guard = self.lock(&id);
        let removed = match fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(NodeError::io(format!("delete chunk {id}"), e)),
        };
        let mut state = self.state();
        if !state.remove(id) && removed {
            // A file the index did not know of: report it gone all the same.
            state.changes.insert(id, false);
        }
        Ok(())
    }

    /// Moves a bad copy out of `chunks/` so it is never served again.
    pub fn quarantine(&self, id: ChunkId) -> Result<(), NodeError> {
        let path = self.chunk_path(&id);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let target = self.quarantine_dir.join(format!("{id}.{stamp}"));
        let _guard = self.lock(&id);
        match fs::rename(&path, &target) {
            Ok(()) => {}
            // Another reader quarantined it first (and updated the index), or it was deleted.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.state().remove(id);
                return Ok(());
            }
            Err(e) => return Err(NodeError::io(format!("quarantine chunk {id}"), e)),
        }
        tracing::warn!(chunk = %id, to = %target.display(), "corrupt chunk quarantined");
        let mut state = self.state();
        state.remove(id);
        state.changes.insert(id, false);
        state.corrupt.push(id);
        Ok(())
    }

    /// Every chunk id in the index (the full report sent when registering), in no order.
    pub fn list(&self) -> Result<Vec<ChunkId>, NodeError> {
        Ok(self.state().index.keys().copied().collect())
    }

    pub fn usage(&self) -> Usage {
        let state = self.state();
        Usage {
            capacity: self.capacity,
            used: state.used(),
            chunks: state.index.len() as u64,
        }
    }

    /// Takes the changes recorded since the previous call.
    pub fn take_changes(&self) -> ChunkChanges {
        let mut state = self.state();
        let mut changes = ChunkChanges {
            corrupt: std::mem::take(&mut state.corrupt),
            ..ChunkChanges::default()
        };
        for (id, present) in state.changes.drain() {
            if present {
                changes.added.push(id);
            } else {
                changes.removed.push(id);
            }
        }
        changes
    }

    /// Puts back changes that could not be delivered, under any newer change to the same chunk.
    pub fn restore_changes(&self, changes: ChunkChanges) {
        let mut state = self.state();
        for id in changes.added {
            state.changes.entry(id).or_insert(true);
        }
        for id in changes.removed {
            state.changes.entry(id).or_insert(false);
        }
        state.corrupt.extend(changes.corrupt);
    }

    /// Forgets recorded changes: a full report is about to supersede them.
    pub fn clear_changes(&self) {
        let mut state = self.state();
        state.changes.clear();
        state.corrupt.clear();
    }

    fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.chunks_dir.join(&hex[..2]).join(hex)
    }

    fn reserve(&self, len: u32) -> Result<Reservation<'_>, NodeError> {
        let mut state = self.state();
        let need = u64::from(len);
        if state.used() + need > self.capacity {
            return Err(NodeError::Full {
                used: state.used(),
                capacity: self.capacity,
                need,
            });
        }
        state.reserved += need;
        Ok(Reservation { store: self, len })
    }

    /// Writes `data` to a temp file, makes it durable when configured, renames it into place
    /// and indexes it (replacing any earlier copy) with the space `reservation` holds.
    fn write_file(
        &self,
        id: ChunkId,
        data: &[u8],
        reservation: Reservation<'_>,
    ) -> Result<(), NodeError> {
        let path = self.chunk_path(&id);
        let dir = path.parent().expect("chunk paths have a shard directory");
        if !dir.exists() {
            fs::create_dir_all(dir)
                .map_err(|e| NodeError::io(format!("create {}", dir.display()), e))?;
            if self.fsync {
                sync_dir(&self.chunks_dir)?;
            }
        }
        // The temp file removes itself if anything below fails.
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{}.", id.short()))
            .tempfile_in(&self.tmp_dir)
            .map_err(|e| NodeError::io(format!("create temp file for chunk {id}"), e))?;
        chunk_failpoint!(
            "chunk_store::write",
            id,
            injected(format!("write chunk {id}"), "chunk_store::write", ENOSPC)
        );
        chunk_failpoint!(
            "chunk_store::short_write",
            id,
            match tmp.write_all(&data[..data.len() / 2]) {
                Ok(()) => injected(
                    format!("write chunk {id}"),
                    "chunk_store::short_write",
                    ENOSPC
                ),
                Err(e) => NodeError::io(format!("write chunk {id}"), e),
            }
        );
        tmp.write_all(data)
            .map_err(|e| NodeError::io(format!("write chunk {id}"), e))?;
        if self.fsync {
            chunk_failpoint!(
                "chunk_store::fsync",
                id,
                injected(format!("fsync chunk {id}"), "chunk_store::fsync", EIO)
            );
            // An fsync error means the kernel may have dropped the dirty pages: the write
            // fails here and is never retried on the same file and then acknowledged.
            tmp.as_file()
                .sync_all()
                .map_err(|e| NodeError::io(format!("fsync chunk {id}"), e))?;
        }
        chunk_failpoint!(
            "chunk_store::before_rename",
            id,
            injected(
                format!("rename chunk {id} into place"),
                "chunk_store::before_rename",
                EIO
            )
        );
        {
            let _guard = self.lock(&id);
            tmp.persist(&path)
                .map_err(|e| NodeError::io(format!("rename chunk {id} into place"), e.error))?;
            reservation.commit(id);
        }
        if self.fsync {
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn remove_unfinished_writes(&self) -> Result<(), NodeError> {
        let entries = fs::read_dir(&self.tmp_dir)
            .map_err(|e| NodeError::io(format!("list {}", self.tmp_dir.display()), e))?;
        for entry in entries.flatten() {
            tracing::info!(file = %entry.path().display(), "removing unfinished chunk write");
            fs::remove_file(entry.path())
                .map_err(|e| NodeError::io(format!("remove {}", entry.path().display()), e))?;
        }
        Ok(())
    }

    /// Lists the chunk files on disk: the index and the sum of its lengths.
    fn scan(&self) -> Result<(HashMap<ChunkId, u32>, u64), NodeError> {
        let list = |dir: &Path| {
            fs::read_dir(dir).map_err(|e| NodeError::io(format!("list {}", dir.display()), e))
        };
        let stray = |path: &Path| {
            tracing::warn!(file = %path.display(), "ignoring stray file in chunk store");
        };
        let (mut index, mut stored) = (HashMap::new(), 0);
        for shard in list(&self.chunks_dir)? {
            let shard = shard.map_err(|e| NodeError::io("list chunk shards", e))?;
            let is_dir = shard.file_type().is_ok_and(|t| t.is_dir());
            let shard_name = shard.file_name();
            if !is_dir {
                stray(&shard.path());
                continue;
            }
            for entry in list(&shard.path())? {
                let entry = entry.map_err(|e| NodeError::io("list chunks", e))?;
                let name = entry.file_name();
                let id = name.to_str().and_then(|n| n.parse::<ChunkId>().ok());
                let Some(id) = id.filter(|id| shard_name.to_str() == Some(&id.to_hex()[..2]))
                else {
                    stray(&entry.path());
                    continue;
                };
                let meta = entry
                    .metadata()
                    .map_err(|e| NodeError::io(format!("stat chunk {id}"), e))?;
                let Some(len) = meta
                    .is_file()
                    .then(|| u32::try_from(meta.len()).ok())
                    .flatten()
                else {
                    stray(&entry.path());
                    continue;
                };
                index.insert(id, len);
                stored += u64::from(len);
            }
        }
        Ok((index, stored))
    }

    fn lock(&self, id: &ChunkId) -> std::sync::MutexGuard<'_, ()> {
        let shard = id.as_bytes()[0] as usize % LOCK_SHARDS;
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NodeError::io(format!("fsync directory {}", dir.display()), e))
}

#[cfg(feature = "failpoints")]
const ENOSPC: i32 = 28;
#[cfg(feature = "failpoints")]
const EIO: i32 = 5;

/// Whether a failpoint's `return` action, with argument `arg` (a prefix of chunk ids in hex,
/// or none for every chunk), applies to a write of chunk `id`.
#[cfg(feature = "failpoints")]
fn failpoint_applies(id: &ChunkId, arg: Option<&str>) -> bool {
    arg.is_none_or(|prefix| id.to_hex().starts_with(&prefix.trim().to_ascii_lowercase()))
}

/// The error an operating system would give, `errno`, injected by `failpoint`.
#[cfg(feature = "failpoints")]
fn injected(context: String, failpoint: &str, errno: i32) -> NodeError {
    NodeError::io(
        format!("{context} (failpoint {failpoint})"),
        io::Error::from_raw_os_error(errno),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(capacity: u64) -> (tempfile::TempDir, ChunkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), capacity, true).unwrap();
        (dir, store)
    }

    fn chunk_file(dir: &Path, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        dir.join("chunks").join(&hex[..2]).join(&hex)
    }

    fn files_in(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn put_get_delete_round_trip() {
        let (dir, store) = store(1 << 20);
        let data = b"some chunk bytes".to_vec();
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        assert_eq!(store.get(id).unwrap(), data);
        assert!(chunk_file(dir.path(), &id).is_file());
        assert_eq!(store.usage().used, data.len() as u64);
        assert_eq!(store.usage().chunks, 1);
        assert_eq!(store.list().unwrap(), vec![id]);

        store.delete(id).unwrap();
        assert!(matches!(store.get(id), Err(NodeError::ChunkNotFound(_))));
        assert_eq!(store.usage().used, 0);
        assert_eq!(store.usage().chunks, 0);
        assert!(store.list().unwrap().is_empty());
        store.delete(id).unwrap();
    }

    #[test]
    fn put_rejects_data_that_does_not_match_its_id() {
        let (_dir, store) = store(1 << 20);
        let id = ChunkId::of(b"right");
        assert!(matches!(
            store.put(id, b"wrong"),
            Err(NodeError::ChecksumMismatch { .. })
        ));
        assert_eq!(store.usage().used, 0);
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn corrupt_copy_is_quarantined_and_reported() {
        let (dir, store) = store(1 << 20);
        let data = vec![7u8; 4096];
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        store.take_changes();

        let path = chunk_file(dir.path(), &id);
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 1;
        fs::write(&path, bytes).unwrap();

        assert!(matches!(store.get(id), Err(NodeError::ChunkCorrupt(_))));
        assert!(!path.exists());
        assert_eq!(files_in(&dir.path().join("quarantine")), 1);
        let changes = store.take_changes();
        assert_eq!(changes.corrupt, vec![id]);
        assert_eq!(changes.removed, vec![id]);
        assert_eq!(store.usage().chunks, 0);
        assert_eq!(store.usage().used, 0);
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn storing_again_replaces_a_bad_copy() {
        let (dir, store) = store(1 << 20);
        let data = vec![5u8; 4096];
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        let path = chunk_file(dir.path(), &id);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 0x80;
        fs::write(&path, bytes).unwrap();

        store.put(id, &data).unwrap();
        assert_eq!(store.get(id).unwrap(), data);
        assert_eq!(store.usage().chunks, 1);
        assert_eq!(store.usage().used, 4096);
        assert_eq!(files_in(&dir.path().join("quarantine")), 1);
    }

    #[test]
    fn storing_again_keeps_a_good_copy() {
        let (dir, store) = store(1 << 20);
        let data = vec![6u8; 4096];
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        let path = chunk_file(dir.path(), &id);
        let written = fs::metadata(&path).unwrap().modified().unwrap();
        store.take_changes();

        store.put(id, &data).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), written);
        assert_eq!(store.take_changes(), ChunkChanges::default());
        assert_eq!(store.usage().used, 4096);
        assert_eq!(store.usage().chunks, 1);
    }

    #[test]
    fn truncated_copy_is_caught_and_its_indexed_length_freed() {
        let (dir, store) = store(1 << 20);
        let data = vec![3u8; 8192];
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        fs::write(chunk_file(dir.path(), &id), &data[..100]).unwrap();
        assert!(matches!(store.get(id), Err(NodeError::ChunkCorrupt(_))));
        // The space counted is the length the index knew, not the truncated file's.
        assert_eq!(store.usage().used, 0);
        assert_eq!(store.usage().chunks, 0);
    }

    #[test]
    fn vanished_file_is_reported_removed_when_read() {
        let (dir, store) = store(1 << 20);
        let data = vec![4u8; 2048];
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        store.take_changes();

        fs::remove_file(chunk_file(dir.path(), &id)).unwrap();
        assert_eq!(store.list().unwrap(), vec![id]);
        assert!(matches!(store.get(id), Err(NodeError::ChunkNotFound(_))));
        let changes = store.take_changes();
        assert_eq!(changes.removed, vec![id]);
        assert!(changes.corrupt.is_empty());
        assert_eq!(store.usage().used, 0);
        assert_eq!(store.usage().chunks, 0);
        assert!(store.list().unwrap().is_empty());
        // Only once: the index now agrees with the disk.
        assert_eq!(store.scrub(id).unwrap(), Scrubbed::NotStored);
        assert_eq!(store.take_changes(), ChunkChanges::default());
    }

    #[test]
    fn capacity_is_enforced() {
        let (_dir, store) = store(10_000);
        let big = vec![1u8; 6000];
        store.put(ChunkId::of(&big), &big).unwrap();
        let more = vec![2u8; 6000];
        assert!(matches!(
            store.put(ChunkId::of(&more), &more),
            Err(NodeError::Full { .. })
        ));
        // Storing a chunk already there needs no new space.
        store.put(ChunkId::of(&big), &big).unwrap();
        assert_eq!(store.usage().used, 6000);
        assert_eq!(store.usage().chunks, 1);
    }

    #[test]
    fn changes_collapse_to_the_latest_state() {
        let (_dir, store) = store(1 << 20);
        let a = b"a".to_vec();
        let b = b"b".to_vec();
        store.put(ChunkId::of(&a), &a).unwrap();
        store.put(ChunkId::of(&b), &b).unwrap();
        store.delete(ChunkId::of(&b)).unwrap();
        let changes = store.take_changes();
        assert_eq!(changes.added, vec![ChunkId::of(&a)]);
        assert_eq!(changes.removed, vec![ChunkId::of(&b)]);
        assert_eq!(store.take_changes(), ChunkChanges::default());

        store.restore_changes(changes);
        store.delete(ChunkId::of(&a)).unwrap();
        let changes = store.take_changes();
        assert_eq!(changes.added, vec![]);
        let mut removed = changes.removed;
        removed.sort();
        let mut want = vec![ChunkId::of(&a), ChunkId::of(&b)];
        want.sort();
        assert_eq!(removed, want);
    }

    #[test]
    fn reopen_indexes_chunks_and_drops_unfinished_writes() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![9u8; 1000];
        let id = ChunkId::of(&data);
        {
            let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
            store.put(id, &data).unwrap();
        }
        let tmp = dir.path().join("tmp");
        fs::write(tmp.join("torn.partial"), b"half a chunk").unwrap();
        // What a crash between writing and renaming leaves: a complete, valid chunk under the
        // writer's temp name.
        let whole = vec![8u8; 3000];
        let whole_id = ChunkId::of(&whole);
        fs::write(tmp.join(format!("{}.a1b2c3", whole_id.short())), &whole).unwrap();

        let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
        assert_eq!(store.usage().chunks, 1);
        assert_eq!(store.usage().used, 1000);
        assert_eq!(store.list().unwrap(), vec![id]);
        assert_eq!(files_in(&tmp), 0);
        assert!(matches!(
            store.get(whole_id),
            Err(NodeError::ChunkNotFound(_))
        ));
        assert_eq!(store.take_changes(), ChunkChanges::default());
    }

    #[test]
    fn open_ignores_stray_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![2u8; 500];
        let id = ChunkId::of(&data);
        {
            let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
            store.put(id, &data).unwrap();
        }
        let chunks = dir.path().join("chunks");
        fs::write(chunks.join("README"), b"not a shard").unwrap();
        fs::write(chunks.join(&id.to_hex()[..2]).join("notes.txt"), b"x").unwrap();
        // A valid id in the wrong shard directory would never be found by its path.
        let other = ChunkId::of(b"elsewhere");
        let wrong_shard = if other.to_hex().starts_with("00") {
            "01"
        } else {
            "00"
        };
        fs::create_dir_all(chunks.join(wrong_shard)).unwrap();
        fs::write(chunks.join(wrong_shard).join(other.to_hex()), b"elsewhere").unwrap();

        let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
        assert_eq!(store.list().unwrap(), vec![id]);
        assert_eq!(store.usage().used, 500);
    }

    #[test]
    fn reservations_are_given_back_when_a_write_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
        let data = vec![1u8; 700];
        let id = ChunkId::of(&data);
        // No temp directory: the write fails after the space was reserved.
        fs::remove_dir(dir.path().join("tmp")).unwrap();
        assert!(matches!(store.put(id, &data), Err(NodeError::Io { .. })));
        assert_eq!(store.usage().used, 0);
        assert_eq!(store.usage().chunks, 0);
        assert!(!chunk_file(dir.path(), &id).exists());
    }

    /// Tests of the write path's failpoints. The `fail` registry is global to the test binary:
    /// these tests take `SERIAL`, and their `return` actions name their own chunk's id, so the
    /// other tests' writes, running meanwhile, are never failed (a `panic` could not be aimed
    /// like that, so crashing in `before_rename` is left to the process-level tests; the temp
    /// file it leaves is covered by `reopen_indexes_chunks_and_drops_unfinished_writes`).
    #[cfg(feature = "failpoints")]
    mod failpoints {
        use super::*;

        static SERIAL: Mutex<()> = Mutex::new(());

        fn serial() -> std::sync::MutexGuard<'static, ()> {
            SERIAL
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Puts a chunk with `failpoint` set to `actions` (where `{id}` stands for the chunk's
        /// id), expects the put to fail with `errno`, and checks that it left nothing behind;
        /// then checks that the same put succeeds once the failpoint is gone.
        fn assert_write_fails_cleanly(failpoint: &str, actions: &str, fsync: bool, errno: i32) {
            let _serial = serial();
            let dir = tempfile::tempdir().unwrap();
            let store = ChunkStore::open(dir.path(), 1 << 20, fsync).unwrap();
            let first = vec![1u8; 1000];
            store.put(ChunkId::of(&first), &first).unwrap();
            store.take_changes();
            let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
            let id = ChunkId::of(&data);
            let before = store.usage();

            let guard =
                fail::FailGuard::new(failpoint, &actions.replace("{id}", &id.to_hex())).unwrap();
            let err = store.put(id, &data).unwrap_err();
            match &err {
                NodeError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(errno)),
                other => panic!("{failpoint}: expected an I/O error, got {other:?}"),
            }
            assert!(err.to_string().contains(failpoint), "{err}");
            let after = store.usage();
            assert_eq!((after.used, after.chunks), (before.used, before.chunks));
            assert!(!chunk_file(dir.path(), &id).exists());
            assert_eq!(
                files_in(&dir.path().join("tmp")),
                0,
                "{failpoint} left a temp file"
            );
            assert!(!store.list().unwrap().contains(&id));
            assert_eq!(store.take_changes(), ChunkChanges::default());

            drop(guard);
            store.put(id, &data).unwrap();
            assert_eq!(store.get(id).unwrap(), data);
            assert_eq!(store.usage().chunks, before.chunks + 1);
        }

        #[test]
        fn write_failpoint_fails_with_enospc() {
            assert_write_fails_cleanly("chunk_store::write", "return({id})", false, ENOSPC);
        }

        /// A plain `return` (what a process-level test sets) would fail the writes of the other
        /// tests running alongside, so the tests above name their chunk; this checks the rule.
        #[test]
        fn failpoint_return_argument_selects_chunks() {
            let id = ChunkId::of(b"x");
            assert!(failpoint_applies(&id, None));
            assert!(failpoint_applies(&id, Some(&id.to_hex()[..3])));
            assert!(!failpoint_applies(&ChunkId::of(b"y"), Some(&id.to_hex())));
        }

        #[test]
        fn short_write_failpoint_fails_with_enospc_and_removes_the_temp_file() {
            assert_write_fails_cleanly("chunk_store::short_write", "return({id})", true, ENOSPC);
        }

        #[test]
        fn fsync_failpoint_fails_the_write_with_eio() {
            assert_write_fails_cleanly("chunk_store::fsync", "return({id})", true, EIO);
        }

        #[test]
        fn fsync_failpoint_is_not_reached_without_fsync() {
            let _serial = serial();
            let (dir, data) = (tempfile::tempdir().unwrap(), vec![4u8; 4096]);
            let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
            let id = ChunkId::of(&data);
            let _fp = fail::FailGuard::new("chunk_store::fsync", &format!("return({id})")).unwrap();
            store.put(id, &data).unwrap();
        }

        #[test]
        fn before_rename_failpoint_return_fails_the_rename() {
            assert_write_fails_cleanly("chunk_store::before_rename", "return({id})", true, EIO);
        }

        #[test]
        fn write_failpoint_sleep_slows_the_write() {
            let _serial = serial();
            let dir = tempfile::tempdir().unwrap();
            let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
            let data = vec![6u8; 4096];
            let started = std::time::Instant::now();
            {
                let _fp = fail::FailGuard::new("chunk_store::write", "sleep(300)").unwrap();
                store.put(ChunkId::of(&data), &data).unwrap();
            }
            assert!(started.elapsed() >= std::time::Duration::from_millis(300));
            assert_eq!(store.usage().chunks, 1);
        }
    }
}
