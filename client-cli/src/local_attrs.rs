//! A local file's mode and modification time: read for `put --preserve` and `sync`, applied
//! by `get` so that a downloaded file carries the stored ones.

use std::fs::{File, Metadata, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// Permission bits and mtime, as the metadata server keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAttrs {
    pub mode: u32,
    /// Milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

impl LocalAttrs {
    pub fn of(meta: &Metadata) -> Self {
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            mode: meta.permissions().mode() & 0o777,
            mtime_ms,
        }
    }

    /// Gives `file` (open for writing, at `path`) these attributes.
    pub fn apply(&self, file: &File, path: &Path) -> anyhow::Result<()> {
        if self.mode != 0 {
            file.set_permissions(Permissions::from_mode(self.mode))
                .with_context(|| format!("set the mode of {}", path.display()))?;
        }
        if self.mtime_ms != 0 {
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_millis(self.mtime_ms);
            file.set_modified(mtime)
                .with_context(|| format!("set the modification time of {}", path.display()))?;
        }
        Ok(())
    }
}
