//! Each side of a sync as a [`Tree`], and the content hashes the plan asks for.
//!
//! A local tree is walked without following symbolic links: links and special files are
//! skipped with one warning line each, as `put -r` and rsync without `-L` do. A remote tree is
//! listed one directory per call. A directory that cannot be listed fails the whole listing:
//! taken as empty, it would make `--delete` remove its copy at the destination.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tonic::Code;

use bigfs_proto::content_hash::ContentHasher;
use bigfs_proto::FsPath;

use super::plan::{FileMeta, Tree};
use crate::chunker::{self, Cut, Input};
use crate::local_attrs::LocalAttrs;
use crate::Client;

/// Files whose content hashes are looked up per metadata call.
const LOOKUP_BATCH: usize = 256;

/// Pieces the chunker may read ahead of the hashing of a local file.
const HASH_DEPTH: usize = 4;

/// One end of a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Side {
    Local(PathBuf),
    Remote(FsPath),
}

impl Side {
    /// The tree below this side's root. A root that does not exist is an empty tree when
    /// `missing_ok` (a destination yet to be created), an error otherwise.
    pub async fn tree(&self, client: &Client, missing_ok: bool) -> anyhow::Result<Tree> {
        match self {
            Side::Local(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || local_tree(&root, missing_ok))
                    .await
                    .context("list the local tree")?
            }
            Side::Remote(root) => remote_tree(client, root, missing_ok).await,
        }
    }

    /// Fills in the content hash of each of `paths` in `tree`; one that cannot be had stays
    /// `None` (the file then compares as different) with a warning for a local file.
    pub async fn hash(&self, client: &Client, tree: &mut Tree, paths: &[String], chunk_size: u64) {
        match self {
            Side::Local(root) => {
                for path in paths {
                    let local = root.join(path);
                    match local_hash(&local, chunk_size).await {
                        Ok(hash) => set_hash(tree, path, hash),
                        Err(e) => eprintln!("bigfs: sync: cannot hash {}: {e:#}", local.display()),
                    }
                }
            }
            Side::Remote(root) => {
                for batch in paths.chunks(LOOKUP_BATCH) {
                    let remote: anyhow::Result<Vec<FsPath>> =
                        batch.iter().map(|path| remote_path(root, path)).collect();
                    let found = match remote {
                        Ok(remote) => client.stat_many(&remote).await,
                        Err(e) => Err(e),
                    };
                    let found = match found {
                        Ok(found) => found,
                        Err(e) => {
                            eprintln!("bigfs: sync: cannot look up content hashes: {e:#}");
                            continue;
                        }
                    };
                    for (path, file) in batch.iter().zip(found) {
                        let hash = (file.ok().and_then(|f| f.file))
                            .and_then(|f| blake3::Hash::from_hex(f.content_hash).ok());
                        if let Some(hash) = hash {
                            set_hash(tree, path, hash);
                        }
                    }
                }
            }
        }
    }
}

/// The remote path of `path` (relative to `root`).
pub fn remote_path(root: &FsPath, path: &str) -> anyhow::Result<FsPath> {
    FsPath::parse(&format!("{}{path}", root.dir_prefix()))
        .with_context(|| format!("remote path for {path}"))
}

fn set_hash(tree: &mut Tree, path: &str, hash: blake3::Hash) {
    if let Some(file) = tree.files.get_mut(path) {
        file.hash = Some(hash);
    }
}

/// The content hash the metadata server keeps for a file with the bytes of `local`, cut at
/// `chunk_size`.
async fn local_hash(local: &Path, chunk_size: u64) -> anyhow::Result<blake3::Hash> {
    let input = Input::Files(vec![local.to_path_buf()]);
    let mut pieces = chunker::cut(input, chunk_size as usize, HASH_DEPTH);
    let mut hasher = ContentHasher::default();
    while let Some(cut) = pieces.recv().await {
        match cut? {
            Cut::Piece(piece) => hasher.add(piece.id.as_bytes(), piece.data.len() as u64),
            Cut::End { .. } => return Ok(hasher.finish()),
        }
    }
    bail!("the chunker stopped before the end of {}", local.display())
}

fn local_tree(root: &Path, missing_ok: bool) -> anyhow::Result<Tree> {
    let mut tree = Tree::default();
    match std::fs::symlink_metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("{} is not a directory", root.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing_ok => return Ok(tree),
        Err(e) => return Err(e).with_context(|| format!("stat {}", root.display())),
    }
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("list {}", dir.display()))?;
        for entry in entries {
            let local = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                eprintln!(
                    "bigfs: sync: skipping {} (not a UTF-8 name)",
                    local.display()
                );
                continue;
            };
            let path = format!("{prefix}{name}");
            let kind = entry
                .file_type()
                .with_context(|| format!("stat {}", local.display()))?;
            if kind.is_dir() {
                dirs.push((local, format!("{path}/")));
                tree.dirs.insert(path);
            } else if kind.is_file() {
                let meta = entry
                    .metadata()
                    .with_context(|| format!("stat {}", local.display()))?;
                let attrs = LocalAttrs::of(&meta);
                tree.files.insert(
                    path,
                    FileMeta {
                        size: meta.len(),
                        mtime_ms: attrs.mtime_ms,
                        mode: attrs.mode,
                        hash: None,
                    },
                );
            } else {
                let what = match kind.is_symlink() {
                    true => "a symbolic link",
                    false => "not a regular file",
                };
                eprintln!("bigfs: sync: skipping {} ({what})", local.display());
            }
        }
    }
    Ok(tree)
}

async fn remote_tree(client: &Client, root: &FsPath, missing_ok: bool) -> anyhow::Result<Tree> {
    let mut tree = Tree::default();
    let prefix = root.dir_prefix();
    let mut dirs = VecDeque::from([root.clone()]);
    while let Some(dir) = dirs.pop_front() {
        let entries = match client.list_status(&dir).await {
            Ok(entries) => entries,
            Err(s) if s.code() == Code::NotFound && dir == *root && missing_ok => return Ok(tree),
            Err(s) => {
                return Err(client.meta_error(s)).with_context(|| format!("list bigfs:{dir}"))
            }
        };
        for entry in entries {
            let Some(path) = entry.path.strip_prefix(&prefix) else {
                // `list` answers a file with the file itself.
                bail!("bigfs:{root} is a file, not a directory");
            };
            if entry.is_dir {
                dirs.push_back(FsPath::parse(&entry.path)?);
                tree.dirs.insert(path.to_string());
            } else {
                let file = FileMeta {
                    size: entry.size,
                    mtime_ms: entry.mtime_ms,
                    mode: entry.mode,
                    hash: None,
                };
                tree.files.insert(path.to_string(), file);
            }
        }
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_tree_lists_files_and_directories_but_no_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/empty")).unwrap();
        std::fs::write(root.join("a/f"), b"12345").unwrap();
        std::fs::write(root.join("top"), b"").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        std::os::unix::fs::symlink("top", root.join("a/flink")).unwrap();

        let tree = local_tree(root, false).unwrap();
        assert_eq!(tree.dirs.iter().collect::<Vec<_>>(), ["a", "a/empty"]);
        let files: Vec<(&str, u64)> = tree
            .files
            .iter()
            .map(|(p, f)| (p.as_str(), f.size))
            .collect();
        assert_eq!(files, [("a/f", 5), ("top", 0)]);
    }

    #[tokio::test]
    async fn a_missing_local_root_is_empty_only_for_a_destination() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(local_tree(&missing, true).unwrap().files.is_empty());
        let err = format!("{:#}", local_tree(&missing, false).unwrap_err());
        assert!(err.contains("missing"), "{err}");
    }

    #[tokio::test]
    async fn a_local_hash_is_the_servers_content_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        // What the metadata server computes from the chunk list: (id, size) per chunk.
        let mut expected = ContentHasher::default();
        for chunk in data.chunks(1000) {
            expected.add(blake3::hash(chunk).as_bytes(), chunk.len() as u64);
        }
        assert_eq!(local_hash(&path, 1000).await.unwrap(), expected.finish());
    }
}
