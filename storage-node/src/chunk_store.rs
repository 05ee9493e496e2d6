//! The content-addressed chunk store on local disk.
//!
//! Layout under the data directory:
//! - `chunks/<first 2 hex>/<64 hex>`: one file per chunk, named by its BLAKE3 id;
//! - `tmp/`: chunks being written, renamed into `chunks/` only once complete, so a process crash
//!   never leaves a torn file under a chunk's name. With fsync a machine crash does not either;
//!   without, a copy the machine lost is found by the verification of its next read or scrub;
//! - `quarantine/<64 hex>.<unix ms>`: copies that failed verification, kept for inspection;
//! - `free/<n>`: emptied files of deleted chunks, reused by later writes ([`free_files`]);
//! - `volumes/<n>.vol`: chunks of at most `small_chunk_max` bytes, appended as needles to
//!   volume files ([`volume`], [`needle`], [`compaction`]; docs/SMALL-CHUNKS.md). Every call
//!   below serves needles and files alike: `put` picks the store by length, the rest follow
//!   the index entry. A data directory written before volumes existed keeps its chunk files.
//!
//! Every write is verified against the claimed id and every read is verified before its bytes
//! are returned. The store also records what changed since the last heartbeat, so the metadata
//! server learns of new, deleted and corrupt copies.
//!
//! The store keeps an in-memory index of the chunks under `chunks/` and in volumes (id → length
//! and needle place, 44 bytes a chunk plus hash-table slack, about 52), built by a directory
//! scan and a volume scan at open and updated by every put,
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
//!
//! A write failed by a failpoint leaves what any failed write leaves: no temp file (its drop
//! guard removes it), no file under `chunks/`, and the space figures as they were.
//!
//! The small-chunk store's failpoints (same rules, except that the `return` argument of those
//! that act on a whole volume, `volume::fsync`, `volume::compact_*` and `volume::index_*`, is
//! part of the volume (or index) file's path instead of a chunk id prefix, such as a test's data directory):
//! - `volume::append`: before a needle is appended. `return` fails the put with ENOSPC.
//! - `volume::torn_append`: in place of the append. `return` writes half of the needle, then
//!   fails with ENOSPC; the failed append is cut from the volume and the put fails.
//! - `volume::fsync`: before a group commit's fsync (with `--fsync`, and when a volume is
//!   sealed or compacted). `return` fails it with EIO, which poisons the volume: every put
//!   waiting on it fails and later puts go to a new volume. `pause` holds every put waiting
//!   for it, for a test to kill the node mid-group-commit.
//! - `volume::compact_copy`: before compaction copies or drops each needle. `return` stops the
//!   compaction with EIO there, as a crash would (the old volume stays, intact).
//! - `volume::compact_unlink`: after compaction's copies are durable, before the old volume is
//!   removed. `return` stops it with EIO there.
//! - `volume::index_write`: before entries are appended to a volume's index file (their
//!   needles are durable). `return` fails the write with EIO: the index gets no more entries
//!   until the next open, which scans the volume past its last one.
//! - `volume::index_torn`: in place of that write. `return` writes all but the last half entry,
//!   then fails with EIO, as a crash mid-write; the next open cuts the torn entry.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use bigfs_proto::ChunkId;

use crate::chunk_io::{ChunkIo, IoMode};
use crate::error::NodeError;
use crate::metrics::NodeCounters;
use free_files::FreeFiles;
use state::{Entry, Reservation, StoreState};
use volume::Volumes;

/// Writes, renames and deletes of one chunk are serialised by one of these locks, so that the
/// index sees each file appear and disappear exactly once, in the order the disk did. A put of
/// a small chunk holds its lock through the group commit's fsync (see `small::put_needle`):
/// one lock per possible first byte of the id, so that concurrent puts rarely share one.
const LOCK_SHARDS: usize = 256;

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

pub mod compaction;
mod free_files;
pub mod needle;
mod small;
mod state;
pub mod volume;
mod volume_index;

/// How a [`ChunkStore`] stores chunks.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Space the chunks may take.
    pub capacity: u64,
    /// Make every write durable before acknowledging it.
    pub fsync: bool,
    pub io: IoMode,
    /// Chunks of at most this many bytes go to volumes; 0 keeps every chunk a file.
    pub small_chunk_max: u32,
    /// Volumes are sealed at about this size.
    pub volume_size: u64,
}

/// Chunks up to this size go to volumes unless told otherwise.
pub const DEFAULT_SMALL_CHUNK_MAX: u32 = 64 * 1024;

pub struct ChunkStore {
    chunks_dir: PathBuf,
    tmp_dir: PathBuf,
    quarantine_dir: PathBuf,
    free: FreeFiles,
    fsync: bool,
    io: ChunkIo,
    capacity: u64,
    shards: Vec<Mutex<()>>,
    state: Mutex<StoreState>,
    counters: NodeCounters,
    volumes: Volumes,
    small_chunk_max: u32,
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
    Good(Bytes),
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
    /// Opens the store under `data_dir` keeping every new chunk a file (no volumes are
    /// written; needles already there stay readable): [`Self::open_with`] with
    /// `small_chunk_max` 0.
    pub fn open(
        data_dir: &Path,
        capacity: u64,
        fsync: bool,
        io: IoMode,
    ) -> Result<Self, NodeError> {
        let options = StoreOptions {
            capacity,
            fsync,
            io,
            small_chunk_max: 0,
            volume_size: volume::DEFAULT_VOLUME_SIZE,
        };
        Self::open_with(data_dir, options)
    }

    /// Opens (creating if needed) the store under `data_dir`, removes writes left unfinished
    /// by a crash, and indexes the chunks it holds: files, then volumes in the order written
    /// (cutting a torn tail, see [`Volumes::open`]). Files under `chunks/` that are not named
    /// like a chunk in its shard directory are logged and left alone, never counted.
    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Self, NodeError> {
        let StoreOptions {
            capacity,
            fsync,
            io,
            small_chunk_max,
            volume_size,
        } = options;
        let counters = NodeCounters::default();
        let mut state = StoreState::default();
        let mut corrupt = Vec::new();
        let volumes = Volumes::open(
            data_dir.join("volumes"),
            volume_size.min(volume::MAX_VOLUME_SIZE),
            counters.clone(),
            |record| match record {
                volume::Record::Chunk { id, len, at } => {
                    let needle = Some(at);
                    state.insert(id, Entry { len, needle });
                }
                volume::Record::Tombstone { id } => {
                    state.remove(id);
                }
                volume::Record::Corrupt { id, at, bytes } => corrupt.push((id, at, bytes)),
            },
        )?;
        state.changes.clear();
        let store = Self {
            chunks_dir: data_dir.join("chunks"),
            tmp_dir: data_dir.join("tmp"),
            quarantine_dir: data_dir.join("quarantine"),
            free: FreeFiles::open(data_dir.join("free")).map_err(|e| {
                NodeError::io(format!("clear {}", data_dir.join("free").display()), e)
            })?,
            fsync,
            io: ChunkIo::new(io),
            capacity,
            shards: (0..LOCK_SHARDS).map(|_| Mutex::new(())).collect(),
            state: Mutex::new(state),
            counters,
            volumes,
            small_chunk_max,
        };
        for dir in [&store.chunks_dir, &store.tmp_dir, &store.quarantine_dir] {
            fs::create_dir_all(dir)
                .map_err(|e| NodeError::io(format!("create {}", dir.display()), e))?;
        }
        store.remove_unfinished_writes()?;
        for (id, at, bytes) in corrupt {
            store.quarantine_found_at_open(id, at, &bytes)?;
        }
        let files = store.scan()?;
        {
            let mut state = store.state();
            for (id, len) in files {
                // A chunk in a volume too (written as a file by an older node, then again as
                // a needle) is served from its needle; the file is never reached again.
                if !state.index.contains_key(&id) {
                    state.account(Entry::file(len));
                    state.index.insert(id, Entry::file(len));
                }
            }
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
            self.counters.verification_failed("received");
            return Err(NodeError::ChecksumMismatch {
                claimed: id,
                actual,
            });
        }
        if self.holds_good_copy(id, len.into())? {
            // Reported again: the metadata server trusts a node's acknowledgement of a chunk it
            // had told that node to delete only once the node itself reports holding it.
            self.state().changes.insert(id, true);
            self.count_write(len);
            return Ok(());
        }
        let reservation = self.reserve(len)?;
        if self.small_chunk_max > 0 && len <= self.small_chunk_max {
            self.put_needle(id, data, reservation)?;
        } else {
            self.write_file(id, data, reservation)?;
        }
        self.count_write(len);
        Ok(())
    }

    fn count_write(&self, len: u32) {
        self.counters.chunk_writes.inc();
        self.counters.chunk_written_bytes.inc_by(len.into());
    }

    /// The node's counters, which the store and the rest of the node add to.
    pub fn counters(&self) -> &NodeCounters {
        &self.counters
    }

    /// Reads a chunk and verifies it. A copy that fails verification is quarantined and
    /// reported as corrupt; its bytes are never returned. A file missing though the index
    /// lists it is reported removed.
    pub fn get(&self, id: ChunkId) -> Result<Bytes, NodeError> {
        match self.read_verified(id)? {
            Read::Good(data) => {
                self.counters.chunk_reads.inc();
                self.counters.chunk_read_bytes.inc_by(data.len() as u64);
                Ok(data)
            }
            Read::Corrupt { .. } => Err(NodeError::ChunkCorrupt(id)),
            Read::Missing { .. } => Err(NodeError::ChunkNotFound(id)),
        }
    }

    /// Re-reads and verifies one chunk for the scrubber, with the effects of [`Self::get`]
    /// (quarantine, reports), and says what it found without returning the bytes.
    pub fn scrub(&self, id: ChunkId) -> Result<Scrubbed, NodeError> {
        let scrubbed = match self.read_verified(id)? {
            Read::Good(data) => Scrubbed::Good {
                bytes: data.len() as u64,
            },
            Read::Corrupt { bytes } => Scrubbed::Corrupt { bytes },
            Read::Missing { indexed: true } => Scrubbed::Missing,
            Read::Missing { indexed: false } => Scrubbed::NotStored,
        };
        if let Scrubbed::Good { bytes } | Scrubbed::Corrupt { bytes } = scrubbed {
            self.counters.scrubbed_bytes.inc_by(bytes);
        }
        Ok(scrubbed)
    }

    fn read_verified(&self, id: ChunkId) -> Result<Read, NodeError> {
        if let Some(found) = self.find_needle(id) {
            return self.read_needle(id, found);
        }
        let data = match self.io.read(&self.chunk_path(&id)) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let indexed = self.forget_missing(id);
                return Ok(Read::Missing { indexed });
            }
            Err(e) => return Err(NodeError::io(format!("read chunk {id}"), e)),
        };
        if !id.matches(&data) {
            // Read outside the chunk's lock: a bad read of a file deleted meanwhile (whose
            // emptied file may already hold another chunk) is no corrupt copy.
            if !self.quarantine(id)? {
                return Ok(Read::Missing { indexed: false });
            }
            self.counters.verification_failed("stored");
            return Ok(Read::Corrupt {
                bytes: data.len() as u64,
            });
        }
        Ok(Read::Good(data))
    }

    /// Whether a verified copy of `id` is on disk. A copy that fails verification is
    /// quarantined, so the caller writes a fresh one.
    fn holds_good_copy(&self, id: ChunkId, len: u64) -> Result<bool, NodeError> {
        // Every copy on disk is indexed (at open, or once renamed into place), so a new chunk
        // costs no lookup of a file that is not there: 7 % of a node's CPU for small chunks.
        let Some(entry) = self.state().index.get(&id).copied() else {
            return Ok(false);
        };
        if entry.needle.is_some() {
            return Ok(matches!(self.read_verified(id)?, Read::Good(_)));
        }
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
        if self.state().remove(id).is_none() {
            return false;
        }
        tracing::warn!(chunk = %id, "chunk file vanished from disk; reporting the chunk removed");
        true
    }

    /// Removes a chunk. Removing one that is not there is not an error.
    pub fn delete(&self, id: ChunkId) -> Result<(), NodeError> {
        let path = self.chunk_path(&id);
        let _guard = self.lock(&id);
        if self.delete_needle(id)? {
            return Ok(());
        }
        match self.free.discard(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(NodeError::io(format!("delete chunk {id}"), e)),
        }
        let mut state = self.state();
        if state.remove(id).is_none() {
            // Not indexed (an unknown file, or nothing at all): report it gone all the same, so
            // the metadata server sees every delete it ordered confirmed.
            state.changes.insert(id, false);
        }
        Ok(())
    }

    /// Makes the deletes so far durable and lets later writes reuse their files (see
    /// [`free_files`]). Call after a batch of [`Self::delete`]s.
    pub fn finish_deletes(&self) {
        self.free.publish();
    }

    /// Moves a bad copy out of `chunks/` so it is never served again. Returns whether it did:
    /// not if the file is gone (deleted meanwhile) or is a good copy now.
    pub fn quarantine(&self, id: ChunkId) -> Result<bool, NodeError> {
        if let Some(found) = self.find_needle(id) {
            return Ok(matches!(self.read_needle(id, found)?, Read::Corrupt { .. }));
        }
        let path = self.chunk_path(&id);
        let target = self.quarantine_target(id);
        let _guard = self.lock(&id);
        // The bad copy was read outside the lock: a concurrent put may have replaced it with a
        // good one since, which must stay.
        if self.io.read(&path).is_ok_and(|data| id.matches(&data)) {
            return Ok(false);
        }
        match fs::rename(&path, &target) {
            Ok(()) => {}
            // Another reader quarantined it first (and updated the index), or it was deleted.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.state().remove(id);
                return Ok(false);
            }
            Err(e) => return Err(NodeError::io(format!("quarantine chunk {id}"), e)),
        }
        tracing::warn!(chunk = %id, to = %target.display(), "corrupt chunk quarantined");
        self.counters.quarantined.inc();
        let mut state = self.state();
        state.remove(id);
        state.changes.insert(id, false);
        state.corrupt.push(id);
        Ok(true)
    }

    /// The length of chunk `id` as indexed, if it is.
    pub fn stored_len(&self, id: ChunkId) -> Option<u64> {
        self.state().index.get(&id).map(|e| u64::from(e.len))
    }

    /// Every chunk id in the index (the full report sent when registering), in no order.
    pub fn list(&self) -> Result<Vec<ChunkId>, NodeError> {
        Ok(self.state().index.keys().copied().collect())
    }

    /// How chunk files are read and written: buffered once the file system refused O_DIRECT.
    pub fn io_mode(&self) -> IoMode {
        self.io.mode()
    }

    pub fn usage(&self) -> Usage {
        let state = self.state();
        Usage {
            capacity: self.capacity,
            used: state.used(self.volumes.bytes()),
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

    /// Where a bad copy of `id` goes: its id and the time, so copies quarantined again later
    /// are kept too.
    fn quarantine_target(&self, id: ChunkId) -> PathBuf {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.quarantine_dir.join(format!("{id}.{stamp}"))
    }

    fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.chunks_dir.join(&hex[..2]).join(hex)
    }

    fn reserve(&self, len: u32) -> Result<Reservation<'_>, NodeError> {
        let mut state = self.state();
        let need = u64::from(len);
        let used = state.used(self.volumes.bytes());
        if used + need > self.capacity {
            return Err(NodeError::Full {
                used,
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
        let tmp = match self.free.take() {
            Some(recycled) => recycled,
            None => tempfile::Builder::new()
                .prefix(&format!("{}.", id.short()))
                .tempfile_in(&self.tmp_dir)
                .map_err(|e| NodeError::io(format!("create temp file for chunk {id}"), e))?,
        };
        chunk_failpoint!(
            "chunk_store::write",
            id,
            injected(format!("write chunk {id}"), "chunk_store::write", ENOSPC)
        );
        chunk_failpoint!(
            "chunk_store::short_write",
            id,
            match self.io.write(tmp.as_file(), &data[..data.len() / 2]) {
                Ok(()) => injected(
                    format!("write chunk {id}"),
                    "chunk_store::short_write",
                    ENOSPC
                ),
                Err(e) => NodeError::io(format!("write chunk {id}"), e),
            }
        );
        self.io
            .write(tmp.as_file(), data)
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
            reservation.commit(id, None);
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

    /// Lists the chunk files on disk with their lengths.
    fn scan(&self) -> Result<Vec<(ChunkId, u32)>, NodeError> {
        let list = |dir: &Path| {
            fs::read_dir(dir).map_err(|e| NodeError::io(format!("list {}", dir.display()), e))
        };
        let stray = |path: &Path| {
            tracing::warn!(file = %path.display(), "ignoring stray file in chunk store");
        };
        let mut files = Vec::new();
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
                files.push((id, len));
            }
        }
        Ok(files)
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
mod tests;

#[cfg(test)]
mod volume_tests;
