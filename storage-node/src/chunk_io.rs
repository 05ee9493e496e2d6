//! Reading and writing chunk files around the page cache, with O_DIRECT.
//!
//! A chunk is written once and read seldom (by a client's get, a peer's copy or the scrubber),
//! and every reader verifies it end to end, so the page cache earns a node little. It costs
//! much: on a VM whose fresh guest pages fault on the host, copying 2 GiB of 1 MiB chunk files
//! into the page cache took 6.1 CPU-seconds, writing them with O_DIRECT 0.3 (docs/BENCHMARKS.md).
//! So chunk files are written and read with O_DIRECT, through aligned buffers that are pooled so
//! that steady traffic touches no fresh memory either. A file system that refuses O_DIRECT
//! (EINVAL) gets buffered I/O, from then on, with one warning.
//!
//! Small chunks are written through the page cache all the same: a direct write waits for the
//! device, one round trip per chunk, which costs a small chunk more than the copy it saves.
//! Storing 2,000 chunks of 64 KiB at R=2 took 8 % less time and CPU that way (docs/BENCHMARKS.md).
//! Reading them back cold was 7 % slower through the page cache, so reads stay direct.
//!
//! O_DIRECT needs the buffer address, the file offset and the length aligned to the device's
//! logical block size. Chunk lengths are arbitrary, so a write sends the aligned head directly
//! and then the tail (under [`ALIGN`] bytes) through the page cache.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustix::fs::OFlags;
use rustix::io::Errno;

/// Alignment of O_DIRECT buffers, offsets and lengths: the page size, a multiple of the
/// logical block size of every common device (512 or 4096 bytes).
const ALIGN: usize = 4096;
/// Chunks shorter than this are written through the page cache.
const DIRECT_WRITE_MIN: usize = 256 * 1024;
/// A write is copied into an aligned buffer this big at a time.
const STAGING: usize = 1 << 20;
/// Idle buffers kept for reuse, and the biggest kept: enough for the chunks in flight at a
/// default chunk size, bounded so a burst of big chunks does not stay resident.
const POOL_IDLE: usize = 16;
const POOL_BUFFER_MAX: usize = 2 * STAGING + ALIGN;

/// How chunk files are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// O_DIRECT where the file system supports it, else buffered.
    Direct,
    /// Through the page cache.
    Buffered,
}

pub struct ChunkIo {
    direct: AtomicBool,
    pool: Arc<BufferPool>,
}

impl ChunkIo {
    pub fn new(mode: IoMode) -> Self {
        Self {
            direct: AtomicBool::new(mode == IoMode::Direct),
            pool: Arc::new(BufferPool::default()),
        }
    }

    /// The mode in use: [`IoMode::Buffered`] once the file system refused O_DIRECT.
    pub fn mode(&self) -> IoMode {
        if self.direct.load(Ordering::Relaxed) {
            IoMode::Direct
        } else {
            IoMode::Buffered
        }
    }

    /// Writes `data` to `file`, a new, empty file open for writing.
    pub fn write(&self, file: &File, data: &[u8]) -> io::Result<()> {
        let mut out = file;
        let direct = data.len() >= DIRECT_WRITE_MIN && self.set_direct(file, true)?;
        if !direct {
            return out.write_all(data);
        }
        let (head, tail) = data.split_at(data.len() / ALIGN * ALIGN);
        if let Err(e) = self.write_staged(file, head) {
            // A short direct write leaves the rest unaligned, which O_DIRECT refuses with
            // EINVAL; finishing through the page cache from where the file ends reports the
            // real cause (ENOSPC, EIO) instead, or completes the file.
            let written = usize::try_from(out.stream_position()?).unwrap_or(usize::MAX);
            let rest = data.get(written..).ok_or(e)?;
            self.set_direct(file, false)?;
            return out.write_all(rest);
        }
        if !tail.is_empty() {
            self.set_direct(file, false)?;
            out.write_all(tail)?;
        }
        Ok(())
    }

    /// Writes `head`, whose length is a multiple of [`ALIGN`], to `file` with O_DIRECT on,
    /// copied through an aligned buffer.
    fn write_staged(&self, mut file: &File, head: &[u8]) -> io::Result<()> {
        let mut staging = self.pool.take(head.len().min(STAGING));
        for piece in head.chunks(STAGING) {
            let staged = &mut staging.space()[..piece.len()];
            staged.copy_from_slice(piece);
            file.write_all(staged)?;
        }
        Ok(())
    }

    /// Reads a whole file.
    pub fn read(&self, path: &Path) -> io::Result<Bytes> {
        if self.mode() == IoMode::Direct {
            let opened = OpenOptions::new()
                .read(true)
                .custom_flags(OFlags::DIRECT.bits() as i32)
                .open(path);
            match opened.and_then(|file| self.read_direct(file)) {
                Ok(data) => return Ok(data),
                // Refused at open, or by the read itself (a device whose blocks are bigger
                // than ALIGN).
                Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                    self.refused(path)
                }
                Err(e) => return Err(e),
            }
        }
        fs::read(path).map(Bytes::from)
    }

    fn read_direct(&self, mut file: File) -> io::Result<Bytes> {
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "chunk file too big"))?;
        let capacity = len.div_ceil(ALIGN) * ALIGN;
        let mut buf = self.pool.take(capacity);
        let mut filled = 0;
        while filled < capacity {
            let n = file.read(&mut buf.space()[filled..capacity])?;
            filled += n;
            // A short read that is not a whole number of blocks ended at the end of the file;
            // reading on from an unaligned offset would fail.
            if n == 0 || n % ALIGN != 0 {
                break;
            }
        }
        buf.len = filled;
        Ok(Bytes::from_owner(buf))
    }

    /// Turns O_DIRECT on or off for `file`. Returns whether it is on; a file system that
    /// refuses it switches this `ChunkIo` to buffered I/O.
    fn set_direct(&self, file: &File, on: bool) -> io::Result<bool> {
        if on && self.mode() == IoMode::Buffered {
            return Ok(false);
        }
        let flags = rustix::fs::fcntl_getfl(file)?;
        let flags = if on {
            flags | OFlags::DIRECT
        } else {
            flags - OFlags::DIRECT
        };
        match rustix::fs::fcntl_setfl(file, flags) {
            Ok(()) => Ok(on),
            Err(Errno::INVAL) if on => {
                self.refused(Path::new("a chunk file"));
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn refused(&self, path: &Path) {
        if self.direct.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                file = %path.display(),
                "the file system refuses O_DIRECT; chunk files go through the page cache"
            );
        }
    }
}

/// Idle aligned buffers.
#[derive(Default)]
struct BufferPool {
    idle: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// An aligned buffer of at least `capacity` bytes, reused when one is idle.
    fn take(self: &Arc<Self>, capacity: usize) -> AlignedBuf {
        let size = capacity + ALIGN;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // The smallest that fits, so that small reads leave the big buffers to big ones.
            let found = (idle.iter().enumerate())
                .filter(|(_, v)| v.len() >= size)
                .min_by_key(|(_, v)| v.len())
                .map(|(i, _)| i);
            found.map(|i| idle.swap_remove(i))
        };
        let vec = reused.unwrap_or_else(|| vec![0; size]);
        let start = vec.as_ptr().align_offset(ALIGN);
        assert!(start < ALIGN, "a byte buffer can always be aligned");
        AlignedBuf {
            vec,
            start,
            len: 0,
            pool: Arc::clone(self),
        }
    }

    fn give_back(&self, vec: Vec<u8>) {
        if vec.len() > POOL_BUFFER_MAX {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_IDLE {
            idle.push(vec);
            return;
        }
        // Full: keep the bigger buffers, which are the costly ones to allocate afresh.
        if let Some(smallest) = idle.iter_mut().min_by_key(|v| v.len()) {
            if smallest.len() < vec.len() {
                *smallest = vec;
            }
        }
    }
}

/// A buffer whose usable part starts at an [`ALIGN`]ed address; it goes back to its pool when
/// dropped, also when it backs a [`Bytes`] that is dropped.
struct AlignedBuf {
    vec: Vec<u8>,
    start: usize,
    /// Bytes of data held, from `start`.
    len: usize,
    pool: Arc<BufferPool>,
}

impl AlignedBuf {
    /// The usable space, from the aligned start: at least the capacity asked for.
    fn space(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.vec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    #[test]
    fn round_trips_every_kind_of_length() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [IoMode::Direct, IoMode::Buffered] {
            let io = ChunkIo::new(mode);
            for len in [
                0,
                1,
                ALIGN - 1,
                ALIGN + 1,
                DIRECT_WRITE_MIN - 1,
                DIRECT_WRITE_MIN,
                DIRECT_WRITE_MIN + 1,
                STAGING,
                3 * STAGING + 5,
            ] {
                let data = pattern(len);
                let path = dir.path().join(format!("{mode:?}-{len}"));
                let file = File::create(&path).unwrap();
                io.write(&file, &data).unwrap();
                drop(file);
                assert_eq!(
                    fs::read(&path).unwrap(),
                    data,
                    "{mode:?} write of {len} bytes"
                );
                let read = io.read(&path).unwrap();
                assert!(read == data, "{mode:?} read of {len} bytes");
            }
        }
    }

    #[test]
    fn direct_io_on_a_local_file_system_for_all_but_small_writes() {
        // The tests' temp directory is on a disk file system here; if it ever is not, this
        // says so instead of the other tests passing on buffered I/O unnoticed.
        let dir = tempfile::tempdir().unwrap();
        let io = ChunkIo::new(IoMode::Direct);
        let direct = |len: usize| {
            let file = File::create(dir.path().join(len.to_string())).unwrap();
            io.write(&file, &pattern(len)).unwrap();
            rustix::fs::fcntl_getfl(&file)
                .unwrap()
                .contains(OFlags::DIRECT)
        };
        assert!(!direct(DIRECT_WRITE_MIN - ALIGN));
        assert!(direct(DIRECT_WRITE_MIN), "{}", dir.path().display());
        assert_eq!(io.mode(), IoMode::Direct);
    }

    #[test]
    fn buffers_are_reused_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let io = ChunkIo::new(IoMode::Direct);
        let path = dir.path().join("c");
        let file = File::create(&path).unwrap();
        io.write(&file, &pattern(STAGING)).unwrap();
        let reads: Vec<Bytes> = (0..POOL_IDLE + 4)
            .map(|_| io.read(&path).unwrap())
            .collect();
        let addresses: Vec<*const u8> = reads.iter().map(|b| b.as_ptr()).collect();
        drop(reads);
        assert_eq!(io.pool.idle.lock().unwrap().len(), POOL_IDLE);
        let again = io.read(&path).unwrap();
        assert!(addresses.contains(&again.as_ptr()));
        assert_eq!(again.as_ptr() as usize % ALIGN, 0);
    }

    #[test]
    fn small_buffers_do_not_crowd_out_big_ones() {
        let pool = Arc::new(BufferPool::default());
        let small: Vec<AlignedBuf> = (0..POOL_IDLE).map(|_| pool.take(ALIGN)).collect();
        let big = pool.take(STAGING);
        drop(small);
        drop(big);
        let idle = pool.idle.lock().unwrap();
        assert_eq!(idle.len(), POOL_IDLE);
        assert!(idle.iter().any(|v| v.len() >= STAGING + ALIGN));
        drop(idle);
        // And a small request does not take the big one while a small one fits.
        let _small = pool.take(ALIGN);
        let idle = pool.idle.lock().unwrap();
        assert!(idle.iter().any(|v| v.len() >= STAGING + ALIGN));
    }
}
