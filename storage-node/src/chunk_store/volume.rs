//! Volume files: append-only files of needles, the small-chunk store's disk (docs/SMALL-CHUNKS.md).
//!
//! [`Volumes`] owns `DATA/volumes/`: the set of open volume files, the one *active* volume
//! that needles are appended to, and each volume's group commit. It knows nothing of chunks'
//! liveness: the [`ChunkStore`](super::ChunkStore)'s index does, and applies what
//! [`Volumes::open`]'s scan finds.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bigfs_proto::lock::lock;
use bigfs_proto::ChunkId;

#[cfg(feature = "failpoints")]
use super::failpoint_applies;
use super::needle::{self, Header, Kind, ALIGN, HEADER};
use super::sync_dir;
use super::volume_index::{self, IndexEntry, IndexFile};
use crate::error::NodeError;
use crate::metrics::NodeCounters;

/// Evaluates failpoint `$name` for the volume at `$path`. When its `return` action applies
/// (no argument, or an argument that is part of the volume's path, such as a test's temp
/// directory), the enclosing function returns `Err($error)`. Nothing without `failpoints`.
macro_rules! volume_failpoint {
    ($name:literal, $path:expr, $error:expr) => {
        #[cfg(feature = "failpoints")]
        {
            let path: &std::path::Path = $path;
            let applies = |arg: Option<String>| {
                arg.is_none_or(|part| path.to_string_lossy().contains(part.trim()))
            };
            if fail::eval($name, applies) == Some(true) {
                return Err($error);
            }
        }
    };
}
pub(super) use volume_failpoint;

/// Bytes before the first needle: magic, format version, reserved.
pub const SUPERBLOCK: u64 = 16;
const VOLUME_MAGIC: &[u8; 8] = b"BIGFSVOL";
const VERSION: u32 = 1;
/// A volume is sealed once the next needle would take it past this.
pub const DEFAULT_VOLUME_SIZE: u64 = 256 << 20;
/// The most a volume may grow to: offsets are kept in units of [`ALIGN`] in a `u32`.
pub const MAX_VOLUME_SIZE: u64 = (u32::MAX as u64) * ALIGN;
/// Payloads bigger than this are not needles whatever a header says (a scan's sanity check).
const MAX_PAYLOAD: u32 = 64 << 20;
/// How much a scan reads at a time.
const SCAN_BUFFER: usize = 1 << 20;

/// Where a needle is: its volume's number and its offset, in 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedleAt {
    pub volume: NonZeroU32,
    offset8: u32,
}

impl NeedleAt {
    pub fn new(volume: NonZeroU32, offset: u64) -> Self {
        debug_assert_eq!(offset % ALIGN, 0);
        let offset8 = u32::try_from(offset / ALIGN).expect("volumes are at most 32 GiB");
        Self { volume, offset8 }
    }

    pub fn offset(&self) -> u64 {
        u64::from(self.offset8) * ALIGN
    }
}

/// One volume file.
pub struct Volume {
    pub number: NonZeroU32,
    path: PathBuf,
    file: File,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Its index file and the entries of needles not yet durable; `None` for a volume only
    /// read (by [`live_needles`]).
    index: Option<Mutex<VolumeIndex>>,
}

/// A volume's index file, and the entries it is owed: those of needles appended but not yet
/// covered by an fsync, in the order written. An entry is written once its needle is durable
/// ([`Volume::sync_through`]), so the file never names a needle a machine crash took back.
struct VolumeIndex {
    file: IndexFile,
    pending: VecDeque<IndexEntry>,
}

/// The group commit's state.
#[derive(Default)]
struct SyncState {
    /// The end of the needles written: a prefix without holes (appends are serialised).
    written: u64,
    /// Everything before this is durable.
    synced: u64,
    /// An fsync is running; others wait for it rather than start their own.
    syncing: bool,
    /// An fsync failed: the kernel may have dropped dirty pages, so nothing written but not
    /// yet synced can be trusted to reach the disk, whatever a later fsync says.
    poisoned: bool,
}

impl Volume {
    fn create(dir: &Path, number: NonZeroU32) -> io::Result<Self> {
        let path = dir.join(file_name(number));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut superblock = Vec::with_capacity(SUPERBLOCK as usize);
        superblock.extend_from_slice(VOLUME_MAGIC);
        superblock.extend_from_slice(&VERSION.to_le_bytes());
        superblock.extend_from_slice(&[0; 4]);
        file.write_all_at(&superblock, 0)?;
        file.sync_all()?;
        Ok(Self::new(number, path, file, SUPERBLOCK))
    }

    /// Gives the volume its index file, which trusts the needles before `end` (all of them
    /// durable).
    fn set_index(&mut self, file: IndexFile) {
        self.index = Some(Mutex::new(VolumeIndex {
            file,
            pending: VecDeque::new(),
        }));
    }

    /// Notes the entry of a needle just appended (call before advancing the written end, with
    /// the writer lock held, so that entries are owed in order).
    fn owe_entry(&self, entry: IndexEntry) {
        if let Some(index) = &self.index {
            lock(index).pending.push_back(entry);
        }
    }

    /// Writes the owed entries of the needles before `end`, which an fsync just made durable;
    /// with `seal`, fsyncs the index too (a sealed volume's index is then complete).
    fn write_index(&self, end: u64, seal: bool) {
        let Some(index) = &self.index else {
            return;
        };
        let mut index = lock(index);
        let due = index.pending.iter().take_while(|e| e.end() <= end).count();
        let entries: Vec<IndexEntry> = index.pending.drain(..due).collect();
        index.file.append(&entries);
        if seal {
            index.file.sync();
        }
    }

    fn open(path: PathBuf, number: NonZeroU32) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut superblock = [0; SUPERBLOCK as usize];
        file.read_exact_at(&mut superblock, 0)?;
        if &superblock[..8] != VOLUME_MAGIC || superblock[8..12] != VERSION.to_le_bytes() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a version 1 volume file",
            ));
        }
        let len = file.metadata()?.len();
        Ok(Self::new(number, path, file, len))
    }

    fn new(number: NonZeroU32, path: PathBuf, file: File, len: u64) -> Self {
        Self {
            number,
            path,
            file,
            sync: Mutex::new(SyncState {
                written: len,
                synced: len,
                ..SyncState::default()
            }),
            synced: Condvar::new(),
            index: None,
        }
    }

    /// The end of the needles written.
    pub fn end(&self) -> u64 {
        self.sync_state().written
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `len` bytes at `offset`. A read past the end is an `UnexpectedEof` error.
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Returns once everything written up to `end` is durable: the group commit. One caller
    /// runs an fsync covering all that was written when it started; callers arriving meanwhile
    /// wait for it, and the first of them still uncovered runs the next one.
    pub fn sync_through(&self, end: u64, counters: &NodeCounters) -> Result<(), NodeError> {
        let mut state = self.sync_state();
        loop {
            if state.synced >= end {
                return Ok(());
            }
            if state.poisoned {
                return Err(NodeError::io(
                    format!("fsync volume {}", self.path.display()),
                    io::Error::other("an earlier fsync of this volume failed"),
                ));
            }
            if state.syncing {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.syncing = true;
            let target = state.written;
            drop(state);
            let result = self.fsync(counters);
            state = self.sync_state();
            state.syncing = false;
            match &result {
                Ok(()) => state.synced = state.synced.max(target),
                Err(_) => state.poisoned = true,
            }
            self.synced.notify_all();
            drop(state);
            result?;
            self.write_index(target, false);
            state = self.sync_state();
        }
    }

    fn fsync(&self, counters: &NodeCounters) -> Result<(), NodeError> {
        let context = || format!("fsync volume {}", self.path.display());
        volume_failpoint!(
            "volume::fsync",
            &self.path,
            super::injected(context(), "volume::fsync", super::EIO)
        );
        counters.volume_fsyncs.inc();
        self.file
            .sync_data()
            .map_err(|e| NodeError::io(context(), e))
    }

    fn is_poisoned(&self) -> bool {
        self.sync_state().poisoned
    }

    fn sync_state(&self) -> MutexGuard<'_, SyncState> {
        lock(&self.sync)
    }
}

fn file_name(number: NonZeroU32) -> String {
    format!("{number:08}.vol")
}

/// A needle just appended.
pub struct Appended {
    pub volume: Arc<Volume>,
    pub at: NeedleAt,
    /// The end of the needle in its volume: what [`Volume::sync_through`] must reach.
    pub end: u64,
}

/// What a scan at open found, in the order written.
pub enum Record {
    Chunk {
        id: ChunkId,
        len: u32,
        at: NeedleAt,
    },
    Tombstone {
        id: ChunkId,
    },
    /// A needle of the newest volume that failed verification (not part of its torn tail):
    /// never indexed; `bytes` are its header and payload as read, to quarantine.
    Corrupt {
        id: ChunkId,
        at: NeedleAt,
        bytes: Vec<u8>,
    },
}

pub struct Volumes {
    dir: PathBuf,
    max_size: u64,
    counters: NodeCounters,
    files: Mutex<BTreeMap<NonZeroU32, Arc<Volume>>>,
    /// The volume files' bytes, all together: space the node's capacity must count.
    bytes: AtomicU64,
    writer: Mutex<Writer>,
}

struct Writer {
    active: Option<Arc<Volume>>,
    next: NonZeroU32,
}

impl Volumes {
    /// Opens the volumes under `dir` (creating it), scanning each in number order and passing
    /// every valid needle to `apply`. The highest-numbered volume's needles are verified too,
    /// and its file is cut at the first that is torn, short or corrupt (docs/SMALL-CHUNKS.md,
    /// "Recovery after a crash"); in older volumes a bad header is skipped over.
    pub fn open(
        dir: PathBuf,
        max_size: u64,
        counters: NodeCounters,
        mut apply: impl FnMut(Record),
    ) -> Result<Self, NodeError> {
        fs::create_dir_all(&dir)
            .map_err(|e| NodeError::io(format!("create {}", dir.display()), e))?;
        let mut numbers = Vec::new();
        let mut indexes = Vec::new();
        let entries =
            fs::read_dir(&dir).map_err(|e| NodeError::io(format!("list {}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| NodeError::io(format!("list {}", dir.display()), e))?;
            let name = entry.file_name();
            let numbered = |suffix: &str| {
                let n = name.to_str()?.strip_suffix(suffix)?;
                (n.len() == 8).then(|| n.parse::<NonZeroU32>().ok())?
            };
            match (numbered(".vol"), numbered(".idx")) {
                (Some(number), _) => numbers.push(number),
                (_, Some(number)) => indexes.push(number),
                _ => {
                    tracing::warn!(file = %entry.path().display(), "ignoring stray file among volumes")
                }
            }
        }
        numbers.sort();
        // The index of a volume compaction removed, left by a crash before it went too.
        for number in indexes.iter().filter(|n| numbers.binary_search(n).is_err()) {
            let path = dir.join(file_name(*number)).with_extension("idx");
            remove_if_there(&path)?;
        }
        let mut files = BTreeMap::new();
        for (i, &number) in numbers.iter().enumerate() {
            let path = dir.join(file_name(number));
            let last = i + 1 == numbers.len();
            let volume = match Volume::open(path.clone(), number) {
                Ok(volume) => volume,
                // A crash while creating the newest volume, before anything was appended.
                Err(e) if last && fs::metadata(&path).is_ok_and(|m| m.len() <= SUPERBLOCK) => {
                    tracing::warn!(file = %path.display(), "removing a volume torn at creation: {e}");
                    remove_if_there(&path)?;
                    remove_if_there(&volume_index::index_path(&path))?;
                    continue;
                }
                // Bit rot in a superblock costs that volume's chunks (absent from the node's
                // report, so the metadata server repairs them), not the node.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::error!(
                        file = %path.display(),
                        "skipping a volume whose superblock is damaged; its chunks are missing: {e}"
                    );
                    continue;
                }
                Err(e) => return Err(NodeError::io(format!("open volume {}", path.display()), e)),
            };
            let mut volume = volume;
            if let Some(index) = open_indexed(&volume, last, &counters, &mut apply)? {
                volume.set_index(index);
            }
            files.insert(number, Arc::new(volume));
        }
        let next = numbers.last().map_or(1, |n| n.get() + 1);
        let active = files
            .values()
            .next_back()
            .filter(|v| v.end() < max_size)
            .cloned();
        let bytes = files.values().map(|v| v.end()).sum();
        Ok(Self {
            dir,
            max_size,
            counters,
            files: Mutex::new(files),
            bytes: AtomicU64::new(bytes),
            writer: Mutex::new(Writer {
                active,
                next: NonZeroU32::new(next).expect("volume numbers start at 1"),
            }),
        })
    }

    /// Appends `needle` (encoded) to the active volume, rolling over to a new one when it does
    /// not fit or the active one is poisoned. Not durable until [`Volume::sync_through`]
    /// reaches [`Appended::end`]. `id` only names the chunk in errors and failpoints.
    pub fn append(&self, id: ChunkId, needle: &[u8]) -> Result<Appended, NodeError> {
        let mut writer = self.writer();
        let len = needle.len() as u64;
        let fits = |v: &Volume| v.end() + len <= self.max_size || v.end() == SUPERBLOCK;
        let volume = match &writer.active {
            Some(v) if fits(v) && !v.is_poisoned() => v.clone(),
            _ => self.roll(&mut writer)?,
        };
        let offset = volume.end();
        if let Err(e) = write_needle(&volume, id, needle, offset) {
            // Cut what part of the needle reached the file: the next append starts here, and
            // no scan, the node's or a tool's, mistakes the rest for a needle.
            if let Err(cut) = volume.file.set_len(offset) {
                tracing::warn!(file = %volume.path.display(), "cannot cut a failed append: {cut}");
            }
            return Err(e);
        }
        let header = needle::decode(needle).expect("an encoded needle");
        volume.owe_entry(IndexEntry {
            offset,
            kind: header.kind,
            len: header.len,
            id,
        });
        volume.sync_state().written = offset + len;
        self.bytes.fetch_add(len, Ordering::Relaxed);
        self.counters.volume_needles_written.inc();
        Ok(Appended {
            at: NeedleAt::new(volume.number, offset),
            end: offset + len,
            volume,
        })
    }

    /// Seals the active volume (fsyncs it, so that only the newest volume can ever hold a
    /// torn tail) and makes a new one active.
    fn roll(&self, writer: &mut Writer) -> Result<Arc<Volume>, NodeError> {
        if let Some(old) = writer.active.take() {
            match old.sync_through(old.end(), &self.counters) {
                Ok(()) => old.write_index(old.end(), true),
                Err(e) => tracing::error!(file = %old.path.display(), "cannot seal volume: {e}"),
            }
        }
        let number = writer.next;
        let mut volume = Volume::create(&self.dir, number).map_err(|e| {
            NodeError::io(
                format!("create volume {number} in {}", self.dir.display()),
                e,
            )
        })?;
        // Cuts any index a volume of this number left (one torn at creation and removed).
        volume.set_index(IndexFile::open(
            volume_index::index_path(&volume.path),
            number,
            0,
        )?);
        self.bytes.fetch_add(SUPERBLOCK, Ordering::Relaxed);
        sync_dir(&self.dir)?;
        writer.next = number.checked_add(1).expect("fewer than 2^32 volumes");
        let volume = Arc::new(volume);
        self.files().insert(number, volume.clone());
        writer.active = Some(volume.clone());
        Ok(volume)
    }

    /// Volume `number`, if it exists.
    pub fn get(&self, number: NonZeroU32) -> Option<Arc<Volume>> {
        self.files().get(&number).cloned()
    }

    /// Every volume but the active one: those compaction may rewrite.
    pub fn sealed(&self) -> Vec<Arc<Volume>> {
        let active = self.writer().active.as_ref().map(|v| v.number);
        let files = self.files();
        files
            .values()
            .filter(|v| Some(v.number) != active)
            .cloned()
            .collect()
    }

    /// Removes sealed volume `number` for good: unlinks its file and syncs the directory.
    /// Readers holding it keep reading the unlinked file until they let go of it.
    pub fn remove(&self, number: NonZeroU32) -> Result<(), NodeError> {
        let Some(volume) = self.files().remove(&number) else {
            return Ok(());
        };
        self.bytes.fetch_sub(volume.end(), Ordering::Relaxed);
        fs::remove_file(&volume.path)
            .map_err(|e| NodeError::io(format!("remove volume {}", volume.path.display()), e))?;
        remove_if_there(&volume_index::index_path(&volume.path))?;
        sync_dir(&self.dir)
    }

    /// How many volumes there are, and their bytes.
    pub fn usage(&self) -> (u64, u64) {
        (self.files().len() as u64, self.bytes())
    }

    /// The volume files' bytes, all together.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn files(&self) -> MutexGuard<'_, BTreeMap<NonZeroU32, Arc<Volume>>> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Volumes {
    /// A clean stop: the active volume is made durable, so that its index gets the entries it
    /// is owed and the next open scans nothing.
    fn drop(&mut self) {
        let active = self.writer().active.clone();
        if let Some(volume) = active {
            match volume.sync_through(volume.end(), &self.counters) {
                Ok(()) => volume.write_index(volume.end(), true),
                Err(e) => {
                    tracing::warn!(file = %volume.path.display(), "cannot sync volume at stop: {e}")
                }
            }
        }
    }
}

fn remove_if_there(path: &Path) -> Result<(), NodeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(NodeError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Opens `volume`'s index at [`Volumes::open`]: applies the needles its index file trusts
/// (reading none of their bytes), then scans the volume past them (see [`scan`]), writes the
/// entries of what the scan found to the index once the volume is durable, and returns the
/// index, open for the entries of later appends. An old volume without an index is thus
/// scanned once, and a damaged index is cut to its trusted prefix and completed by a scan.
///
/// When the scan could not vouch for every needle (damage, a corrupt needle), the index stops
/// before the first it could not and `None` is returned: the volume gets no more entries
/// (they would leave a gap), and each open scans it from there.
fn open_indexed(
    volume: &Volume,
    last: bool,
    counters: &NodeCounters,
    apply: &mut impl FnMut(Record),
) -> Result<Option<IndexFile>, NodeError> {
    let path = volume_index::index_path(&volume.path);
    let loaded = volume_index::load(&path, volume.number, volume.end())
        .map_err(|e| NodeError::io(format!("read volume index {}", path.display()), e))?;
    if loaded.damaged {
        tracing::warn!(
            file = %path.display(), trusted = loaded.entries.len(),
            "volume index damaged past its trusted entries; scanning the volume from there"
        );
        counters.volume_index_damaged.inc();
    }
    let mut start = SUPERBLOCK;
    for entry in &loaded.entries {
        let at = NeedleAt::new(volume.number, entry.offset);
        apply(match entry.kind {
            Kind::Chunk => Record::Chunk {
                id: entry.id,
                len: entry.len,
                at,
            },
            Kind::Tombstone => Record::Tombstone { id: entry.id },
        });
        start = entry.end();
    }
    let found = scan(volume, start, last, counters, apply)?;
    let complete = found.last().map_or(start, IndexEntry::end) == volume.end();
    let mut index = IndexFile::open(path, volume.number, loaded.trusted_len)?;
    if !found.is_empty() {
        // After a process crash the scanned needles may be in the page cache only.
        volume
            .file
            .sync_data()
            .map_err(|e| NodeError::io(format!("fsync volume {}", volume.path.display()), e))?;
        index.append(&found);
        index.sync();
    }
    Ok(complete.then_some(index))
}

/// Writes `needle` (of chunk `id`) at `offset` of `volume`, through the write path's failpoints.
fn write_needle(volume: &Volume, id: ChunkId, needle: &[u8], offset: u64) -> Result<(), NodeError> {
    let context = || format!("append chunk {id} to volume {}", volume.path.display());
    chunk_failpoint!(
        "volume::append",
        id,
        super::injected(context(), "volume::append", super::ENOSPC)
    );
    chunk_failpoint!(
        "volume::torn_append",
        id,
        match volume
            .file
            .write_all_at(&needle[..needle.len() / 2], offset)
        {
            Ok(()) => super::injected(context(), "volume::torn_append", super::ENOSPC),
            Err(e) => NodeError::io(context(), e),
        }
    );
    volume
        .file
        .write_all_at(needle, offset)
        .map_err(|e| NodeError::io(context(), e))
}

/// Where a chunk's live needle is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedleFile {
    /// The volume file.
    pub path: PathBuf,
    /// Where the chunk's bytes (the needle's payload) start in it.
    pub offset: u64,
    pub len: u32,
}

/// The live needles among the volumes of the node whose data directory is `data_dir`, by
/// chunk, found by scanning the volumes read-only as the node's open does (the last needle or
/// tombstone of a chunk wins; payloads are not verified). For tests and tools that inspect a
/// node's disk from outside, as they would list `chunks/` for chunk files.
pub fn live_needles(data_dir: &Path) -> io::Result<BTreeMap<ChunkId, NeedleFile>> {
    let dir = data_dir.join("volumes");
    let mut live = BTreeMap::new();
    let mut names: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(live),
        Err(e) => return Err(e),
    };
    names.sort();
    for path in names {
        let number = path
            .file_stem()
            .and_then(|s| s.to_str()?.parse::<NonZeroU32>().ok());
        let Some(number) = number.filter(|_| path.extension().is_some_and(|e| e == "vol")) else {
            continue;
        };
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        let volume = Volume::new(number, path.clone(), file, len);
        let mut scanner = Scanner::new(&volume, SUPERBLOCK, len);
        loop {
            match scanner.next_step()? {
                Step::End | Step::Truncated { .. } => break,
                Step::Invalid { .. } => scanner.skip(),
                Step::Needle { offset, header, .. } if header.kind == Kind::Chunk => {
                    let needle = NeedleFile {
                        path: path.clone(),
                        offset: offset + HEADER as u64,
                        len: header.len,
                    };
                    live.insert(header.id, needle);
                }
                Step::Needle { header, .. } => {
                    live.remove(&header.id);
                }
            }
        }
    }
    Ok(live)
}

/// The live needle of `id` (see [`live_needles`]), if any.
pub fn locate(data_dir: &Path, id: ChunkId) -> io::Result<Option<NeedleFile>> {
    Ok(live_needles(data_dir)?.remove(&id))
}

/// Scans `volume` for [`Volumes::open`]: applies its valid needles in order, skipping over
/// invalid headers (bit rot) to the next valid one. In the newest volume (`last`) payloads are
/// verified too: a bad one is never indexed, so never served (it is passed on as
/// [`Record::Corrupt`] once the scan knows it is not part of the tail), and the file is cut
/// after its last good needle, which removes a torn tail.
///
/// Scans from `start`, a needle boundary, and returns the index entries of the needles found
/// while every step was good (in sync, no corrupt needle): those an index may trust.
fn scan(
    volume: &Volume,
    start: u64,
    last: bool,
    counters: &NodeCounters,
    apply: &mut impl FnMut(Record),
) -> Result<Vec<IndexEntry>, NodeError> {
    let file_len = volume.end();
    let mut scanner = Scanner::new(volume, start, file_len);
    let mut good_end = start;
    let mut skipped = Vec::new();
    let mut corrupt = Vec::new();
    let mut entries = Vec::new();
    let mut trusted = true;
    loop {
        let step = scanner
            .next_step()
            .map_err(|e| NodeError::io(format!("scan volume {}", volume.path.display()), e))?;
        match step {
            Step::End => break,
            Step::Truncated { offset } => {
                if !last {
                    skipped.push(offset);
                }
                break;
            }
            Step::Needle {
                offset,
                header,
                bytes,
            } => {
                if last && header.kind == Kind::Chunk && !header.id.matches(&bytes[HEADER..]) {
                    skipped.push(offset);
                    corrupt.push((offset, header.id, bytes.to_vec()));
                    trusted = false;
                    continue;
                }
                good_end = offset + header.size();
                if trusted {
                    entries.push(IndexEntry {
                        offset,
                        kind: header.kind,
                        len: header.len,
                        id: header.id,
                    });
                }
                // A later needle or tombstone of the same chunk supersedes a bad one (a
                // tombstone is what quarantining it at an earlier start left).
                if !corrupt.is_empty() {
                    corrupt.retain(|(_, id, _)| *id != header.id);
                }
                let at = NeedleAt::new(volume.number, offset);
                apply(match header.kind {
                    Kind::Chunk => Record::Chunk {
                        id: header.id,
                        len: header.len,
                        at,
                    },
                    Kind::Tombstone => Record::Tombstone { id: header.id },
                });
            }
            Step::Invalid { offset } => {
                if skipped.last().is_none_or(|&s| s + ALIGN < offset) {
                    skipped.push(offset);
                }
                trusted = false;
                scanner.skip();
            }
        }
    }
    counters.volume_scanned_bytes.inc_by(scanner.read);
    // What was skipped before the last good needle is damage inside the volume, not a tail.
    skipped.retain(|&offset| offset < good_end || !last);
    for (offset, id, bytes) in corrupt {
        if offset < good_end {
            let at = NeedleAt::new(volume.number, offset);
            apply(Record::Corrupt { id, at, bytes });
        }
    }
    if !skipped.is_empty() {
        tracing::error!(
            file = %volume.path.display(), offsets = ?skipped,
            "skipped invalid needles; their chunks are missing from this node"
        );
    }
    if last && good_end < file_len {
        tracing::warn!(
            file = %volume.path.display(), at = good_end, bytes = file_len - good_end,
            "cutting the torn tail of the newest volume"
        );
        volume
            .file
            .set_len(good_end)
            .and_then(|()| volume.file.sync_all())
            .map_err(|e| NodeError::io(format!("cut volume {}", volume.path.display()), e))?;
        counters.volume_torn_tail_bytes.inc_by(file_len - good_end);
        let mut state = volume.sync_state();
        state.written = good_end;
        state.synced = good_end;
    }
    Ok(entries)
}

/// Reads a volume's needles in order, through a buffer.
///
/// Needle boundaries are known only while every header so far was valid: each gives the next
/// one's place. Once a header is invalid the scanner is *out of sync*: it searches forward, 8
/// bytes at a time, and from then on to the end of the volume it accepts a chunk needle only
/// if its payload verifies against its id. A needle image can sit inside another needle's
/// payload (a chunk's bytes are anyone's), so a candidate found by the search may be one: a
/// verified chunk needle is the chunk's true bytes wherever it lies, while an unverified one
/// found there would shadow the chunk's real copy with garbage. Tombstones, which cannot be
/// verified, are still taken (docs/SMALL-CHUNKS.md, "Resynchronising after a bad header", says
/// why and what that leaves).
pub struct Scanner<'v> {
    volume: &'v Volume,
    pos: u64,
    end: u64,
    /// Every header so far was valid, so `pos` is a needle boundary.
    in_sync: bool,
    buf: Vec<u8>,
    /// The volume offset of `buf[0]`.
    buf_at: u64,
    /// Bytes read from the volume so far.
    read: u64,
}

pub enum Step<'s> {
    Needle {
        offset: u64,
        header: Header,
        /// The header and the payload, without the padding.
        bytes: &'s [u8],
    },
    /// No needle the scanner accepts starts at `offset`.
    Invalid {
        offset: u64,
    },
    /// A valid header at a needle boundary whose needle runs past the end of the file: a torn
    /// tail (or a truncated file). Nothing after it was ever written, so the scan is over.
    Truncated {
        offset: u64,
    },
    End,
}

impl<'v> Scanner<'v> {
    /// Scans from `start` (a needle boundary) to `end`.
    pub fn new(volume: &'v Volume, start: u64, end: u64) -> Self {
        Self {
            volume,
            pos: start,
            end,
            in_sync: true,
            buf: Vec::new(),
            buf_at: start,
            read: 0,
        }
    }

    /// The next needle. After [`Step::Invalid`], call [`Self::skip`] to search on.
    pub fn next_step(&mut self) -> io::Result<Step<'_>> {
        let offset = self.pos;
        if offset >= self.end {
            return Ok(Step::End);
        }
        if offset + HEADER as u64 > self.end {
            return Ok(Step::Invalid { offset });
        }
        let header = needle::decode(self.bytes(offset, HEADER)?);
        let Some(header) = header.filter(|h| h.len <= MAX_PAYLOAD) else {
            return Ok(Step::Invalid { offset });
        };
        if offset + header.size() > self.end {
            return Ok(if self.in_sync {
                Step::Truncated { offset }
            } else {
                Step::Invalid { offset }
            });
        }
        let in_sync = self.in_sync;
        let bytes = self.bytes(offset, HEADER + header.len as usize)?;
        if !in_sync && header.kind == Kind::Chunk && !header.id.matches(&bytes[HEADER..]) {
            return Ok(Step::Invalid { offset });
        }
        self.pos = offset + header.size();
        let bytes = self.bytes(offset, HEADER + header.len as usize)?;
        Ok(Step::Needle {
            offset,
            header,
            bytes,
        })
    }

    /// Moves past an invalid position, to where the next needle could start; the scanner is
    /// out of sync from now on.
    pub fn skip(&mut self) {
        self.in_sync = false;
        self.pos += ALIGN;
    }

    /// `len` bytes at `offset`, refilling the buffer from there when they are not in it.
    fn bytes(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let start = offset.wrapping_sub(self.buf_at) as usize;
        if offset < self.buf_at || start + len > self.buf.len() {
            let want = len.max(SCAN_BUFFER).min((self.end - offset) as usize);
            self.buf.resize(want, 0);
            self.volume.file.read_exact_at(&mut self.buf, offset)?;
            self.read += want as u64;
            self.buf_at = offset;
            return Ok(&self.buf[..len]);
        }
        Ok(&self.buf[start..start + len])
    }
}
