//! Where a get writes on the local side, decided before a byte is fetched.
//!
//! A new path or an existing regular file is written under a temporary name beside it and
//! renamed into place once complete, so a failed get leaves nothing behind and no reader sees
//! half a file; an existing file is replaced only when asked to (`--force`). Anything else (a
//! device such as /dev/null, a FIFO, a terminal) would be destroyed by that rename, and a FIFO
//! cannot seek: it is opened and written through, in order, as `cp` does. A symbolic link is
//! followed: the file it names is what is written through or replaced, and the link stays.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use bigfs_proto::FsPath;

/// What a get writes to.
#[derive(Debug, PartialEq)]
pub(crate) enum Destination {
    /// A regular file, new or replacing one: written beside `path` under a temporary name,
    /// which is given the stored mode and mtime (as `cp -p` would) and renamed to `path`.
    /// Without `overwrite` the rename fails if `path` has appeared meanwhile.
    Replace { path: PathBuf, overwrite: bool },
    /// Neither a regular file nor a directory: opened and written in order.
    Through(PathBuf),
}

impl Destination {
    /// Where a get of `remote` to `local` writes. Like `cp`, an existing directory receives a
    /// file named like the remote one. An existing regular file is refused unless `overwrite`.
    pub(crate) fn resolve(local: &Path, remote: &FsPath, overwrite: bool) -> anyhow::Result<Self> {
        let local = if local.is_dir() {
            local.join(remote.name())
        } else {
            local.to_path_buf()
        };
        // Follows symbolic links: what counts is what the writes would reach.
        match fs::metadata(&local) {
            Ok(meta) if meta.is_file() => {
                if !overwrite {
                    return Err(exists(&local));
                }
                Ok(Self::Replace {
                    path: link_target(&local)?,
                    overwrite,
                })
            }
            Ok(meta) if meta.is_dir() => {
                bail!("cannot write {}: it is a directory", local.display())
            }
            Ok(_) => Ok(Self::Through(local)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if local.is_symlink() {
                    bail!(
                        "cannot write {}: it is a symbolic link to a missing file",
                        local.display()
                    );
                }
                let dir = parent_dir(&local);
                if !dir.is_dir() {
                    bail!(
                        "cannot write {}: directory {} does not exist",
                        local.display(),
                        dir.display()
                    );
                }
                Ok(Self::Replace {
                    path: local,
                    overwrite,
                })
            }
            Err(e) => Err(e).with_context(|| format!("stat {}", local.display())),
        }
    }

    /// The local path written.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::Replace { path, .. } | Self::Through(path) => path,
        }
    }
}

/// The error for an existing file a get may not replace.
pub(crate) fn exists(path: &Path) -> anyhow::Error {
    anyhow!("{} exists (use --force to overwrite it)", path.display())
}

/// The directory `path` is in ("." for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The file `path` names once symbolic links are followed, so that a rename onto it replaces
/// the file and keeps the link.
fn link_target(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_symlink() {
        fs::canonicalize(path).with_context(|| format!("follow the link {}", path.display()))
    } else {
        Ok(path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn resolve(local: &Path, overwrite: bool) -> anyhow::Result<Destination> {
        Destination::resolve(local, &FsPath::parse("/dir/remote").unwrap(), overwrite)
    }

    #[test]
    fn what_each_kind_of_local_path_becomes() {
        let dir = tempfile::tempdir().unwrap();
        let replace = |path: &Path, overwrite| Destination::Replace {
            path: path.to_path_buf(),
            overwrite,
        };
        let new = dir.path().join("new");
        assert_eq!(resolve(&new, false).unwrap(), replace(&new, false));
        // A directory receives the remote name.
        let named = dir.path().join("remote");
        assert_eq!(resolve(dir.path(), false).unwrap(), replace(&named, false));

        let file = dir.path().join("file");
        fs::write(&file, b"old").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let refused = resolve(&file, false).unwrap_err().to_string();
        assert!(refused.contains("file exists (use --force"), "{refused}");
        assert_eq!(resolve(&file, true).unwrap(), replace(&file, true));

        // A link to a file: the file is replaced (the path is the file's, not the link's).
        let link = dir.path().join("link");
        symlink(&file, &link).unwrap();
        assert!(resolve(&link, false).is_err());
        let target = fs::canonicalize(&file).unwrap();
        assert_eq!(resolve(&link, true).unwrap(), replace(&target, true));

        // Devices, and links to them, are written through, with or without overwrite.
        let null = Path::new("/dev/null");
        assert_eq!(
            resolve(null, false).unwrap(),
            Destination::Through(null.into())
        );
        let to_null = dir.path().join("to-null");
        symlink(null, &to_null).unwrap();
        assert_eq!(
            resolve(&to_null, false).unwrap(),
            Destination::Through(to_null.clone())
        );

        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("missing"), &dangling).unwrap();
        assert!(resolve(&dangling, true).is_err());
        let no_dir = dir.path().join("no-such-dir/f");
        assert!(resolve(&no_dir, true)
            .unwrap_err()
            .to_string()
            .contains("no-such-dir"));
    }
}
