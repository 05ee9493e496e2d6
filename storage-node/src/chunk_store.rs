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
//! All methods do blocking I/O: call them from `spawn_blocking`.

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
/// space accounting sees each file appear and disappear exactly once.
const LOCK_SHARDS: usize = 64;

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
    /// Bytes of stored chunks plus bytes reserved by writes in progress.
    used: u64,
    count: u64,
    /// The latest state (present or not) of each chunk that changed since the last heartbeat.
    /// Only the final state matters to the metadata server, so a put and a delete of the same
    /// chunk between two beats collapse into one entry.
    changes: HashMap<ChunkId, bool>,
    corrupt: Vec<ChunkId>,
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
    /// by a crash, and counts the chunks it holds.
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
        let (mut used, mut count) = (0, 0);
        store.for_each_chunk(|_, len| {
            used += len;
            count += 1;
        })?;
        {
            let mut state = store.state();
            state.used = used;
            state.count = count;
        }
        Ok(store)
    }

    /// Verifies `data` against `id` and stores it durably (with fsync when configured) under its
    /// id. A good copy already present is kept as it is; a bad one is quarantined and replaced.
    pub fn put(&self, id: ChunkId, data: &[u8]) -> Result<(), NodeError> {
        let actual = ChunkId::of(data);
        if actual != id {
            return Err(NodeError::ChecksumMismatch {
                claimed: id,
                actual,
            });
        }
        let len = data.len() as u64;
        if self.holds_good_copy(id, len)? {
            return Ok(());
        }
        self.reserve(len)?;
        match self.write_file(id, data) {
            Ok(replaced) => {
                let mut state = self.state();
                match replaced {
                    Some(old_len) => state.used -= old_len,
                    None => state.count += 1,
                }
                state.changes.insert(id, true);
                Ok(())
            }
            Err(e) => {
                self.state().used -= len;
                Err(e)
            }
        }
    }

    /// Reads a chunk and verifies it. A copy that fails verification is quarantined and
    /// reported as corrupt; its bytes are never returned.
    pub fn get(&self, id: ChunkId) -> Result<Bytes, NodeError> {
        let path = self.chunk_path(&id);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(NodeError::ChunkNotFound(id))
            }
            Err(e) => return Err(NodeError::io(format!("read chunk {id}"), e)),
        };
        if !id.matches(&data) {
            self.quarantine(id)?;
            return Err(NodeError::ChunkCorrupt(id));
        }
        Ok(Bytes::from(data))
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
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(NodeError::io(format!("stat chunk {id}"), e)),
        }
        match self.get(id) {
            Ok(_) => Ok(true),
            Err(NodeError::ChunkCorrupt(_) | NodeError::ChunkNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a chunk. Removing one that is not there is not an error.
    pub fn delete(&self, id: ChunkId) -> Result<(), NodeError> {
        let path = self.chunk_path(&id);
        let _guard = self.lock(&id);
        let len = match fs::symlink_metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(NodeError::io(format!("stat chunk {id}"), e)),
        };
        fs::remove_file(&path).map_err(|e| NodeError::io(format!("delete chunk {id}"), e))?;
        let mut state = self.state();
        state.used -= len;
        state.count -= 1;
        state.changes.insert(id, false);
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
        let len = match fs::symlink_metadata(&path) {
            Ok(meta) => meta.len(),
            // Another reader quarantined it first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(NodeError::io(format!("stat chunk {id}"), e)),
        };
        fs::rename(&path, &target)
            .map_err(|e| NodeError::io(format!("quarantine chunk {id}"), e))?;
        tracing::warn!(chunk = %id, to = %target.display(), "corrupt chunk quarantined");
        let mut state = self.state();
        state.used -= len;
        state.count -= 1;
        state.changes.insert(id, false);
        state.corrupt.push(id);
        Ok(())
    }

    /// Every chunk id on disk (the full report sent when registering).
    pub fn list(&self) -> Result<Vec<ChunkId>, NodeError> {
        let mut ids = Vec::new();
        self.for_each_chunk(|id, _| ids.push(id))?;
        Ok(ids)
    }

    pub fn usage(&self) -> Usage {
        let state = self.state();
        Usage {
            capacity: self.capacity,
            used: state.used,
            chunks: state.count,
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

    fn reserve(&self, len: u64) -> Result<(), NodeError> {
        let mut state = self.state();
        if state.used + len > self.capacity {
            return Err(NodeError::Full {
                used: state.used,
                capacity: self.capacity,
                need: len,
            });
        }
        state.used += len;
        Ok(())
    }

    /// Writes `data` to a temp file, makes it durable when configured, and renames it into
    /// place. Returns the length of the copy it replaced, if there was one.
    fn write_file(&self, id: ChunkId, data: &[u8]) -> Result<Option<u64>, NodeError> {
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
        tmp.write_all(data)
            .map_err(|e| NodeError::io(format!("write chunk {id}"), e))?;
        if self.fsync {
            // An fsync error means the kernel may have dropped the dirty pages: the write
            // fails here and is never retried on the same file and then acknowledged.
            tmp.as_file()
                .sync_all()
                .map_err(|e| NodeError::io(format!("fsync chunk {id}"), e))?;
        }
        let replaced = {
            let _guard = self.lock(&id);
            let replaced = fs::symlink_metadata(&path).ok().map(|m| m.len());
            tmp.persist(&path)
                .map_err(|e| NodeError::io(format!("rename chunk {id} into place"), e.error))?;
            replaced
        };
        if self.fsync {
            sync_dir(dir)?;
        }
        Ok(replaced)
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

    fn for_each_chunk(&self, mut visit: impl FnMut(ChunkId, u64)) -> Result<(), NodeError> {
        let list = |dir: &Path| {
            fs::read_dir(dir).map_err(|e| NodeError::io(format!("list {}", dir.display()), e))
        };
        for shard in list(&self.chunks_dir)? {
            let shard = shard.map_err(|e| NodeError::io("list chunk shards", e))?;
            for entry in list(&shard.path())? {
                let entry = entry.map_err(|e| NodeError::io("list chunks", e))?;
                let name = entry.file_name();
                let Some(id) = name.to_str().and_then(|n| n.parse::<ChunkId>().ok()) else {
                    tracing::warn!(file = %entry.path().display(), "ignoring stray file in chunk store");
                    continue;
                };
                let len = entry
                    .metadata()
                    .map_err(|e| NodeError::io(format!("stat chunk {id}"), e))?
                    .len();
                visit(id, len);
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store(capacity: u64) -> (tempfile::TempDir, ChunkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), capacity, true).unwrap();
        (dir, store)
    }

    #[test]
    fn put_get_delete_round_trip() {
        let (dir, store) = store(1 << 20);
        let data = b"some chunk bytes".to_vec();
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        assert_eq!(store.get(id).unwrap(), data);
        let hex = id.to_hex();
        assert!(dir
            .path()
            .join("chunks")
            .join(&hex[..2])
            .join(&hex)
            .is_file());
        assert_eq!(store.usage().used, data.len() as u64);
        assert_eq!(store.usage().chunks, 1);

        store.delete(id).unwrap();
        assert!(matches!(store.get(id), Err(NodeError::ChunkNotFound(_))));
        assert_eq!(store.usage().used, 0);
        assert_eq!(store.usage().chunks, 0);
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

        let hex = id.to_hex();
        let path = dir.path().join("chunks").join(&hex[..2]).join(&hex);
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 1;
        fs::write(&path, bytes).unwrap();

        assert!(matches!(store.get(id), Err(NodeError::ChunkCorrupt(_))));
        assert!(!path.exists());
        let quarantined: Vec<_> = fs::read_dir(dir.path().join("quarantine"))
            .unwrap()
            .collect();
        assert_eq!(quarantined.len(), 1);
        let changes = store.take_changes();
        assert_eq!(changes.corrupt, vec![id]);
        assert_eq!(changes.removed, vec![id]);
        assert_eq!(store.usage().chunks, 0);
    }

    #[test]
    fn storing_again_replaces_a_bad_copy() {
        let (dir, store) = store(1 << 20);
        let data = vec![5u8; 4096];
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        let hex = id.to_hex();
        let path = dir.path().join("chunks").join(&hex[..2]).join(&hex);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 0x80;
        fs::write(&path, bytes).unwrap();

        store.put(id, &data).unwrap();
        assert_eq!(store.get(id).unwrap(), data);
        assert_eq!(store.usage().chunks, 1);
        assert_eq!(store.usage().used, 4096);
        assert_eq!(
            fs::read_dir(dir.path().join("quarantine")).unwrap().count(),
            1
        );
    }

    #[test]
    fn truncated_copy_is_caught() {
        let (dir, store) = store(1 << 20);
        let data = vec![3u8; 8192];
        let id = ChunkId::of(&data);
        store.put(id, &data).unwrap();
        let hex = id.to_hex();
        let path = dir.path().join("chunks").join(&hex[..2]).join(&hex);
        fs::write(&path, &data[..100]).unwrap();
        assert!(matches!(store.get(id), Err(NodeError::ChunkCorrupt(_))));
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
    fn reopen_counts_chunks_and_drops_unfinished_writes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
            let data = vec![9u8; 1000];
            store.put(ChunkId::of(&data), &data).unwrap();
        }
        fs::write(dir.path().join("tmp").join("torn.partial"), b"half a chunk").unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20, false).unwrap();
        assert_eq!(store.usage().chunks, 1);
        assert_eq!(store.usage().used, 1000);
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
