//! Volume index files: where each needle of a volume is, so that opening a store reads a few
//! bytes a needle instead of every byte of every volume (docs/SMALL-CHUNKS.md, "Index files").
//!
//! `volumes/<n>.idx` holds a 16-byte header (magic `BIGFSIDX`, format version 1, the volume's
//! number) and then one 52-byte entry per needle of volume `<n>`, in the order written: offset
//! (`u64`), payload length (`u32`), kind (1 byte), 3 zero bytes, chunk id (32 bytes), and the
//! first 4 bytes of BLAKE3 of those 48 bytes. Needles are contiguous in a volume, so each entry
//! must start where the one before it ends (the first at the superblock's end): with the check
//! bytes, that makes a valid prefix of the file self-evident, and anything after it (a torn
//! write, a gap left by a failed one, garbage) is simply not trusted. The volume's bytes past
//! the last trusted entry are scanned as before.
//!
//! An entry is written only after its needle is durable (after the volume's fsync that covers
//! it), so a trusted entry never points at bytes a machine crash took back; and every read
//! verifies BLAKE3 anyway, so even a wrong entry could cost a copy (quarantined, repaired),
//! never serve wrong bytes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bigfs_proto::ChunkId;

use super::needle::{self, Kind};
use super::volume::{volume_failpoint, SUPERBLOCK};
use crate::error::NodeError;

const MAGIC: &[u8; 8] = b"BIGFSIDX";
const VERSION: u32 = 1;
/// Bytes before the first entry.
pub const INDEX_HEADER: u64 = 16;
/// Bytes of one entry.
pub const ENTRY: usize = 52;
/// The bytes an entry's check covers.
const CHECKED: usize = 48;

/// One needle of a volume, as its index file records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub kind: Kind,
    pub len: u32,
    pub id: ChunkId,
}

impl IndexEntry {
    /// Where the needle after this one starts.
    pub fn end(&self) -> u64 {
        self.offset + needle::size(self.len)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(self.id.as_bytes());
        let check = check(&out[start..]);
        out.extend_from_slice(&check);
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; ENTRY] = bytes.try_into().ok()?;
        if bytes[CHECKED..] != check(&bytes[..CHECKED]) || bytes[13..16] != [0; 3] {
            return None;
        }
        let kind = match bytes[12] {
            1 => Kind::Chunk,
            2 => Kind::Tombstone,
            _ => return None,
        };
        Some(Self {
            offset: u64::from_le_bytes(bytes[..8].try_into().ok()?),
            len: u32::from_le_bytes(bytes[8..12].try_into().ok()?),
            kind,
            id: ChunkId::from_slice(&bytes[16..48]).ok()?,
        })
    }
}

fn check(bytes: &[u8]) -> [u8; 4] {
    ChunkId::of(bytes).as_bytes()[..4]
        .try_into()
        .expect("4 bytes")
}

/// The index file of the volume file at `volume_path`.
pub fn index_path(volume_path: &Path) -> PathBuf {
    volume_path.with_extension("idx")
}

/// What [`load`] found in an index file.
pub struct Loaded {
    /// The trusted entries, in order: each starts where the one before ends, and none runs
    /// past the volume's end.
    pub entries: Vec<IndexEntry>,
    /// The bytes of the index file those entries take, header included: the rest is cut.
    pub trusted_len: u64,
    /// The index file held more than the trusted entries (a torn or failed write, damage).
    pub damaged: bool,
}

/// Reads the index file at `path` of volume `number`, whose file is `volume_len` bytes long.
/// A missing file, or one whose header is not this volume's, trusts nothing.
pub fn load(path: &Path, number: NonZeroU32, volume_len: u64) -> io::Result<Loaded> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Loaded {
                entries: Vec::new(),
                trusted_len: 0,
                damaged: false,
            })
        }
        Err(e) => return Err(e),
    };
    if bytes.len() < INDEX_HEADER as usize || bytes[..INDEX_HEADER as usize] != header(number) {
        return Ok(Loaded {
            entries: Vec::new(),
            trusted_len: 0,
            damaged: true,
        });
    }
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY);
    let mut next = SUPERBLOCK;
    for raw in bytes[INDEX_HEADER as usize..].chunks(ENTRY) {
        match IndexEntry::decode(raw) {
            Some(entry) if entry.offset == next && entry.end() <= volume_len => {
                next = entry.end();
                entries.push(entry);
            }
            _ => break,
        }
    }
    let trusted_len = INDEX_HEADER + (entries.len() * ENTRY) as u64;
    Ok(Loaded {
        entries,
        trusted_len,
        damaged: trusted_len < bytes.len() as u64,
    })
}

fn header(number: NonZeroU32) -> [u8; INDEX_HEADER as usize] {
    let mut header = [0; INDEX_HEADER as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&number.get().to_le_bytes());
    header
}

/// An index file open for appending entries.
pub struct IndexFile {
    path: PathBuf,
    /// `None` once a write failed: later entries would leave a gap, which [`load`] would stop
    /// at anyway, so none are written; the next open scans the volume past the last good one.
    file: Option<File>,
    /// The end of the entries written.
    len: u64,
}

impl IndexFile {
    /// Opens the index at `path` of volume `number` to append after its first `trusted_len`
    /// bytes (0: a new file), cutting whatever follows them.
    pub fn open(path: PathBuf, number: NonZeroU32, trusted_len: u64) -> Result<Self, NodeError> {
        let context = || format!("open volume index {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(trusted_len == 0)
            .open(&path)
            .map_err(|e| NodeError::io(context(), e))?;
        let len = if trusted_len == 0 {
            file.write_all_at(&header(number), 0)
                .map_err(|e| NodeError::io(context(), e))?;
            INDEX_HEADER
        } else {
            trusted_len
        };
        file.set_len(len).map_err(|e| NodeError::io(context(), e))?;
        Ok(Self {
            path,
            file: Some(file),
            len,
        })
    }

    /// Appends `entries` (of needles already durable). A failure is logged and ends this
    /// index's writes: it costs a longer scan at the next open, never a needle.
    pub fn append(&mut self, entries: &[IndexEntry]) {
        if entries.is_empty() {
            return;
        }
        let Some(file) = &self.file else {
            return;
        };
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY);
        for entry in entries {
            entry.encode(&mut bytes);
        }
        match write_entries(&self.path, file, &bytes, self.len) {
            Ok(()) => self.len += bytes.len() as u64,
            Err(e) => {
                tracing::warn!(
                    file = %self.path.display(),
                    "cannot write volume index entries; the next start scans the volume instead: {e}"
                );
                self.file = None;
            }
        }
    }

    /// Makes the entries written durable (a sealed volume's index is complete).
    pub fn sync(&self) {
        if let Some(Err(e)) = self.file.as_ref().map(File::sync_data) {
            tracing::warn!(file = %self.path.display(), "cannot fsync volume index: {e}");
        }
    }
}

/// Writes encoded entries at `at`, through the index's failpoints.
fn write_entries(path: &Path, file: &File, bytes: &[u8], at: u64) -> Result<(), NodeError> {
    let context = || format!("append to volume index {}", path.display());
    volume_failpoint!(
        "volume::index_write",
        path,
        super::injected(context(), "volume::index_write", super::EIO)
    );
    volume_failpoint!(
        "volume::index_torn",
        path,
        match file.write_all_at(&bytes[..bytes.len() - ENTRY / 2], at) {
            Ok(()) => super::injected(context(), "volume::index_torn", super::EIO),
            Err(e) => NodeError::io(context(), e),
        }
    );
    file.write_all_at(bytes, at)
        .map_err(|e| NodeError::io(context(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, len: u32) -> IndexEntry {
        IndexEntry {
            offset,
            kind: Kind::Chunk,
            len,
            id: ChunkId::of(&offset.to_le_bytes()),
        }
    }

    #[test]
    fn entries_round_trip_and_every_flipped_bit_is_caught() {
        let e = entry(SUPERBLOCK, 1000);
        let mut bytes = Vec::new();
        e.encode(&mut bytes);
        assert_eq!(bytes.len(), ENTRY);
        assert_eq!(IndexEntry::decode(&bytes), Some(e));
        for bit in 0..ENTRY * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(IndexEntry::decode(&flipped), None, "bit {bit}");
        }
    }

    #[test]
    fn load_trusts_the_contiguous_prefix_within_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000001.idx");
        let number = NonZeroU32::new(1).unwrap();
        let mut index = IndexFile::open(path.clone(), number, 0).unwrap();
        let a = entry(SUPERBLOCK, 100);
        let b = entry(a.end(), 200);
        let gap = entry(b.end() + 8, 300);
        index.append(&[a, b, gap]);
        let loaded = load(&path, number, 1 << 20).unwrap();
        assert_eq!((loaded.entries, loaded.damaged), (vec![a, b], true));
        // An entry past the volume's end is not trusted, nor is another volume's index.
        assert_eq!(load(&path, number, b.end() - 1).unwrap().entries, vec![a]);
        let other = load(&path, NonZeroU32::new(2).unwrap(), 1 << 20).unwrap();
        assert!(other.entries.is_empty() && other.damaged);
        // Reopened after its trusted prefix: the rest is cut.
        let trusted = load(&path, number, 1 << 20).unwrap().trusted_len;
        IndexFile::open(path.clone(), number, trusted).unwrap();
        let loaded = load(&path, number, 1 << 20).unwrap();
        assert_eq!((loaded.entries.len(), loaded.damaged), (2, false));
    }
}
