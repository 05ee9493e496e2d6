//! Storage nodes' chunk files on disk: finding, corrupting and checking quarantine.
//!
//! A node stores chunk `ID` at `DATA/chunks/<first 2 hex of ID>/ID` and moves a copy that fails
//! verification to `DATA/quarantine/` (DESIGN.md, "Storage node"). The harness reads and writes
//! these files directly, behind the node's back, to simulate bit rot.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cluster::Cluster;

impl Cluster {
    /// Storage node `i`'s data directory.
    pub fn node_data_dir(&self, i: usize) -> &Path {
        &self.nodes[i].data
    }

    /// Where node `i` keeps chunk `id` (the file need not exist).
    pub fn chunk_path(&self, i: usize, id: &str) -> PathBuf {
        chunk_path_in(&self.nodes[i].data, id)
    }

    /// The nodes' data directories, to inspect chunk files from another thread.
    pub fn disks(&self) -> NodeDisks {
        NodeDisks {
            dirs: self.nodes.iter().map(|n| n.data.clone()).collect(),
        }
    }

    /// Every file under node `i`'s `chunks/` directory, sorted.
    pub fn chunk_files(&self, i: usize) -> Vec<PathBuf> {
        files_under(&self.nodes[i].data.join("chunks"))
    }

    /// Every file under node `i`'s `quarantine/` directory, sorted.
    pub fn quarantine_files(&self, i: usize) -> Vec<PathBuf> {
        files_under(&self.nodes[i].data.join("quarantine"))
    }

    /// Flips one bit in the middle of node `i`'s copy of chunk `id`, and returns the corrupted
    /// bytes (so a test can recognise the copy after the node moves it to quarantine).
    #[track_caller]
    pub fn corrupt_chunk(&self, i: usize, id: &str) -> Vec<u8> {
        let path = self.chunk_path(i, id);
        let mut bytes = fs::read(&path).unwrap_or_else(|e| {
            self.fail(&format!(
                "cannot read chunk {id} of {} at {}: {e}; its chunk files: {:?}",
                self.node_id(i),
                path.display(),
                self.chunk_files(i)
            ))
        });
        if bytes.is_empty() {
            self.fail(&format!(
                "chunk file {} is empty; nothing to corrupt",
                path.display()
            ));
        }
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        write_over(&path, &bytes)
            .unwrap_or_else(|e| self.fail(&format!("cannot corrupt {}: {e}", path.display())));
        bytes
    }

    /// Every file under node `i`'s `tmp/` and `free/` directories: writes in progress or torn
    /// by a crash (a write goes to a fresh file in `tmp/` or reuses one in `free/`), and the
    /// emptied files of deleted chunks waiting in `free/`.
    pub fn tmp_files(&self, i: usize) -> Vec<PathBuf> {
        let data = &self.nodes[i].data;
        let mut files = files_under(&data.join("tmp"));
        files.extend(files_under(&data.join("free")));
        files
    }

    /// The chunk ids (file names) under node `i`'s `chunks/`, whatever their content.
    pub fn disk_chunk_ids(&self, i: usize) -> BTreeSet<String> {
        self.chunk_files(i)
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect()
    }

    /// Whether node `i` holds a good copy of chunk `id` on disk: its file hashes to `id`.
    pub fn has_good_copy(&self, i: usize, id: &str) -> bool {
        is_good_copy(&self.chunk_path(i, id), id)
    }

    /// The nodes holding a good copy of chunk `id` on disk (see [`Cluster::has_good_copy`]).
    pub fn good_copies(&self, id: &str) -> Vec<usize> {
        self.disks().good_copies(id)
    }

    /// Checks that every replica a `stat --json` lists holds a good copy of its chunk on disk:
    /// the metadata server must never count a copy that is not there. Returns the problems.
    pub fn check_replicas_on_disk(&self, stat: &Value) -> Result<(), String> {
        let mut problems = Vec::new();
        for (index, chunk) in stat["chunks"].as_array().into_iter().flatten().enumerate() {
            let id = chunk["id"].as_str().unwrap_or_default();
            for node in chunk["replicas"].as_array().into_iter().flatten() {
                let node = node.as_str().unwrap_or_default();
                let Some(i) = self.nodes.iter().position(|n| n.id == node) else {
                    problems.push(format!("chunk {index} lists unknown node {node:?}"));
                    continue;
                };
                if !self.has_good_copy(i, id) {
                    problems.push(format!(
                        "chunk {index} ({id}) lists {node}, which has no good copy at {}",
                        self.chunk_path(i, id).display()
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                stat["path"].as_str().unwrap_or("?"),
                problems.join("; ")
            ))
        }
    }

    /// Truncates node `i`'s copy of chunk `id` to half its length and returns the bytes left.
    #[track_caller]
    pub fn truncate_chunk(&self, i: usize, id: &str) -> Vec<u8> {
        let path = self.chunk_path(i, id);
        let mut bytes = fs::read(&path).unwrap_or_else(|e| {
            self.fail(&format!(
                "cannot read chunk {id} at {}: {e}",
                path.display()
            ))
        });
        bytes.truncate(bytes.len() / 2);
        write_over(&path, &bytes)
            .unwrap_or_else(|e| self.fail(&format!("cannot truncate {}: {e}", path.display())));
        bytes
    }

    /// Deletes node `i`'s copy of chunk `id` behind the node's back.
    #[track_caller]
    pub fn delete_chunk_file(&self, i: usize, id: &str) {
        let path = self.chunk_path(i, id);
        fs::remove_file(&path)
            .unwrap_or_else(|e| self.fail(&format!("cannot delete {}: {e}", path.display())));
    }

    /// Whether node `i`'s `quarantine/` holds a file with exactly `bytes`.
    pub fn quarantine_holds(&self, i: usize, bytes: &[u8]) -> bool {
        self.quarantine_files(i)
            .iter()
            .any(|p| fs::read(p).is_ok_and(|b| b == bytes))
    }

    /// The replica node ids of chunk `index` in a `stat --json` document, in the listed order.
    #[track_caller]
    pub fn replicas_of(&self, stat: &Value, index: usize) -> Vec<String> {
        let replicas = stat["chunks"][index]["replicas"]
            .as_array()
            .unwrap_or_else(|| {
                self.fail(&format!(
                    "stat has no chunks[{index}].replicas array: {stat}"
                ))
            });
        replicas
            .iter()
            .map(|r| r.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The id of chunk `index` in a `stat --json` document.
    #[track_caller]
    pub fn chunk_id_of(&self, stat: &Value, index: usize) -> String {
        stat["chunks"][index]["id"]
            .as_str()
            .unwrap_or_else(|| self.fail(&format!("stat has no chunks[{index}].id: {stat}")))
            .to_string()
    }
}

/// The storage nodes' data directories (node `i` at index `i`): a `Send` view of the chunk files
/// for checks made outside the test's thread.
#[derive(Clone, Debug)]
pub struct NodeDisks {
    dirs: Vec<PathBuf>,
}

impl NodeDisks {
    /// Where node `i` keeps chunk `id`.
    pub fn chunk_path(&self, i: usize, id: &str) -> PathBuf {
        chunk_path_in(&self.dirs[i], id)
    }

    /// Whether node `i` holds a good copy of chunk `id` (its file hashes to `id`).
    pub fn has_good_copy(&self, i: usize, id: &str) -> bool {
        is_good_copy(&self.chunk_path(i, id), id)
    }

    /// The nodes holding a good copy of chunk `id`.
    pub fn good_copies(&self, id: &str) -> Vec<usize> {
        (0..self.dirs.len())
            .filter(|&i| self.has_good_copy(i, id))
            .collect()
    }
}

fn chunk_path_in(data: &Path, id: &str) -> PathBuf {
    assert!(id.len() >= 2, "chunk id {id:?} is too short");
    data.join("chunks").join(&id[..2]).join(id)
}

fn is_good_copy(path: &Path, id: &str) -> bool {
    fs::read(path).is_ok_and(|b| blake3::hash(&b).to_hex().as_str() == id)
}

/// Overwrites `path` in place, making it writable first if the node stored it read-only.
fn write_over(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let perms = fs::metadata(path)?.permissions();
    if perms.readonly() {
        let mut writable = perms.clone();
        #[allow(clippy::permissions_set_readonly_false)]
        writable.set_readonly(false);
        fs::set_permissions(path, writable)?;
        fs::write(path, bytes)?;
        fs::set_permissions(path, perms)
    } else {
        fs::write(path, bytes)
    }
}

/// All regular files below `dir` (recursively), sorted; none if `dir` does not exist.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}
