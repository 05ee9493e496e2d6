//! Files of deleted chunks, emptied and kept under `free/` for later writes to reuse.
//!
//! Why not unlink them: on ext4 without a journal (as on this project's benchmark machine),
//! allocating an inode skips, one at a time, every inode freed in the last seconds, so writing
//! files right after deleting many costs several times the CPU (a 2,000-file put just after a
//! large delete: 2.1 CPU-s per node instead of 0.6). Reusing a deleted chunk's inode skips both
//! the free and the allocation, as PostgreSQL recycles its WAL segments.
//!
//! A moved file is reused only after [`FreeFiles::publish`] has synced the directories it left:
//! until the move is on disk, a crash could bring back the chunk's old name pointing at the
//! reused inode, that is at another chunk's bytes. (ext4 without a journal skips recently
//! freed inodes for the same reason.) A file under `free/` is garbage whatever it holds: it is
//! emptied before it is offered, and the whole directory is cleared at open.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::{NamedTempFile, TempPath};

/// Files kept at most; deletes beyond this unlink. Enough for the chunks of a few GiB, or of
/// thousands of small files, deleted at once.
const MAX_FREE: usize = 8192;

pub(super) struct FreeFiles {
    dir: PathBuf,
    state: Mutex<FreeState>,
}

#[derive(Default)]
struct FreeState {
    /// Emptied files, by number, ready to be taken.
    ready: Vec<u64>,
    /// Emptied files whose move out of `chunks/` may not be on disk yet, with the directory
    /// they left.
    pending: Vec<(u64, PathBuf)>,
    /// Files under `free/`: ready, pending, or being moved in and emptied.
    count: usize,
    /// The number the next file is named by.
    next: u64,
}

impl FreeFiles {
    /// Uses `dir`, creating it and removing what an earlier run left there.
    pub(super) fn open(dir: PathBuf) -> io::Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            state: Mutex::new(FreeState::default()),
        })
    }

    /// Removes the file at `path` (a chunk file, under its chunk's lock): moves it here and
    /// empties it, or unlinks it when enough files are kept already or it is not a regular
    /// file. A missing file is a `NotFound` error, as with `remove_file`.
    pub(super) fn discard(&self, path: &Path) -> io::Result<()> {
        if !fs::symlink_metadata(path)?.is_file() {
            return fs::remove_file(path);
        }
        let slot = {
            let mut state = self.state();
            (state.count < MAX_FREE).then(|| {
                state.count += 1;
                state.next += 1;
                state.next
            })
        };
        let Some(n) = slot else {
            return fs::remove_file(path);
        };
        let kept = self.path(n);
        if let Err(e) = fs::rename(path, &kept) {
            self.state().count -= 1;
            return Err(e);
        }
        // Emptied now, not when reused, so that a deleted chunk's space is given back at once.
        let emptied = OpenOptions::new()
            .write(true)
            .open(&kept)
            .and_then(|file| file.set_len(0));
        let mut state = self.state();
        match (emptied, path.parent()) {
            (Ok(()), Some(left)) => state.pending.push((n, left.to_path_buf())),
            (emptied, _) => {
                // The chunk is gone from `chunks/` either way; this file is just not reused.
                state.count -= 1;
                drop(state);
                if let Err(e) = emptied.and_then(|()| fs::remove_file(&kept)) {
                    tracing::warn!(file = %kept.display(), "cannot empty a deleted chunk's file: {e}");
                }
            }
        }
        Ok(())
    }

    /// Makes the moves of the files discarded so far durable, by syncing the directories they
    /// left, and offers those files for reuse. Files whose directory cannot be synced are
    /// unlinked instead.
    pub(super) fn publish(&self) {
        let pending = std::mem::take(&mut self.state().pending);
        let dirs: BTreeSet<&Path> = pending.iter().map(|(_, dir)| dir.as_path()).collect();
        let unsynced: BTreeSet<&Path> = dirs
            .into_iter()
            .filter(|dir| {
                let synced = fs::File::open(dir).and_then(|d| d.sync_all());
                if let Err(e) = &synced {
                    tracing::warn!(dir = %dir.display(), "cannot sync a chunk directory: {e}");
                }
                synced.is_err()
            })
            .collect();
        let (ready, dropped): (Vec<_>, Vec<_>) = pending
            .iter()
            .partition(|(_, dir)| !unsynced.contains(dir.as_path()));
        {
            let mut state = self.state();
            state.ready.extend(ready.iter().map(|(n, _)| n));
            state.count -= dropped.len();
        }
        for (n, _) in dropped {
            let _ = fs::remove_file(self.path(*n));
        }
    }

    /// An empty file for a new chunk, open for writing, as a temp file that removes itself
    /// unless persisted; `None` when there is none to reuse.
    pub(super) fn take(&self) -> Option<NamedTempFile> {
        let n = {
            let mut state = self.state();
            let n = state.ready.pop()?;
            state.count -= 1;
            n
        };
        let path = self.path(n);
        let opened = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|file| {
                Ok(NamedTempFile::from_parts(
                    file,
                    TempPath::try_from_path(&path)?,
                ))
            });
        match opened {
            Ok(file) => Some(file),
            Err(e) => {
                let _ = fs::remove_file(&path);
                tracing::warn!(file = %path.display(), "cannot reuse a free chunk file: {e}");
                None
            }
        }
    }

    /// Files ready to be taken, and files waiting for [`Self::publish`].
    #[cfg(test)]
    pub(super) fn counts(&self) -> (usize, usize) {
        let state = self.state();
        (state.ready.len(), state.pending.len())
    }

    fn path(&self, n: u64) -> PathBuf {
        self.dir.join(n.to_string())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FreeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
