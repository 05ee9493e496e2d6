//! Storage nodes' chunk copies on disk: finding, corrupting and checking quarantine.
//!
//! A node stores chunk `ID` at `DATA/chunks/<first 2 hex of ID>/ID`, or, if it is small, as a
//! needle in a volume file under `DATA/volumes/` (docs/SMALL-CHUNKS.md, found with
//! `bigfs_node::chunk_store::volume::live_needles`), and moves a copy that fails verification
//! to `DATA/quarantine/` (DESIGN.md, "Storage node"). The harness reads and writes these files
//! directly, behind the node's back, to simulate bit rot; every helper here works on both kinds
//! of copy.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bigfs_node::chunk_store::needle::{self, HEADER};
use bigfs_node::chunk_store::volume::{live_needles, NeedleFile};
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
    /// bytes as the node will quarantine them (so a test can recognise the copy in quarantine):
    /// a chunk file's bytes, or a needle's header and payload.
    #[track_caller]
    pub fn corrupt_chunk(&self, i: usize, id: &str) -> Vec<u8> {
        self.damage(i, id, Damage::FlipBit, false)
            .expect("a copy that is gone fails the test")
    }

    /// Damages node `i`'s copy of chunk `id` as [`Cluster::corrupt_chunk`],
    /// [`Cluster::truncate_chunk`] or [`Cluster::delete_chunk_file`] would, unless the node
    /// deleted that copy itself meanwhile (the nemesis picks copies while its workload removes
    /// files): then it does nothing and returns `false`.
    #[track_caller]
    pub fn damage_unless_gone(&self, i: usize, id: &str, damage: Damage) -> bool {
        self.damage(i, id, damage, true).is_some()
    }

    /// What the damaging calls share: a needle is damaged in its volume (where a needle the
    /// node deleted meanwhile is garbage anyway), a chunk file read or removed; a file that is
    /// gone fails the test unless `gone_ok`, and then gives `None`.
    #[track_caller]
    fn damage(&self, i: usize, id: &str, damage: Damage, gone_ok: bool) -> Option<Vec<u8>> {
        if let Some(needle) = self.needle(i, id) {
            return Some(match damage {
                Damage::FlipBit => self.damage_needle(&needle, |payload| {
                    let at = payload.len() / 2;
                    payload[at] ^= 0x01;
                }),
                Damage::Truncate => self.damage_needle(&needle, |payload| {
                    let half = payload.len() / 2;
                    payload[half..].fill(0);
                }),
                Damage::Delete => {
                    self.zero_needle(&needle);
                    Vec::new()
                }
            });
        }
        let path = self.chunk_path(i, id);
        let gone = |e: &io::Error| gone_ok && e.kind() == io::ErrorKind::NotFound;
        if let Damage::Delete = damage {
            return match fs::remove_file(&path) {
                Ok(()) => Some(Vec::new()),
                Err(e) if gone(&e) => None,
                Err(e) => self.fail(&format!("cannot delete {}: {e}", path.display())),
            };
        }
        let mut bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if gone(&e) => return None,
            Err(e) => self.fail(&format!(
                "cannot read chunk {id} of {} at {}: {e}; its chunk files: {:?}",
                self.node_id(i),
                path.display(),
                self.chunk_files(i)
            )),
        };
        if bytes.is_empty() {
            self.fail(&format!(
                "chunk file {} is empty; nothing to damage",
                path.display()
            ));
        }
        match damage {
            Damage::FlipBit => {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x01;
            }
            Damage::Truncate => bytes.truncate(bytes.len() / 2),
            Damage::Delete => unreachable!("deleted above"),
        }
        write_over(&path, &bytes)
            .unwrap_or_else(|e| self.fail(&format!("cannot damage {}: {e}", path.display())));
        Some(bytes)
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

    /// The chunk ids of node `i`'s copies, whatever their content: the file names under its
    /// `chunks/`, and the chunks of the live needles in its volumes.
    pub fn disk_chunk_ids(&self, i: usize) -> BTreeSet<String> {
        let mut ids: BTreeSet<String> = self
            .chunk_files(i)
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        ids.extend(needles_in(&self.nodes[i].data).into_keys());
        ids
    }

    /// The bytes of node `i`'s volume files that are not live needles: deleted needles and
    /// tombstones waiting for compaction, which the node counts as used space.
    pub fn volume_garbage(&self, i: usize) -> u64 {
        let data = &self.nodes[i].data;
        let files: u64 = fs::read_dir(data.join("volumes"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "vol"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let live: u64 = needles_in(data).values().map(|n| needle::size(n.len)).sum();
        files.saturating_sub(live)
    }

    /// Whether node `i` holds a good copy of chunk `id` on disk: its file, or its needle's
    /// payload, hashes to `id`.
    pub fn has_good_copy(&self, i: usize, id: &str) -> bool {
        is_good_copy(&self.nodes[i].data, id)
    }

    /// Node `i`'s live needle of chunk `id`, if it keeps the chunk in a volume.
    fn needle(&self, i: usize, id: &str) -> Option<NeedleFile> {
        needles_in(&self.nodes[i].data).remove(id)
    }

    /// Changes the payload of `needle` in place with `damage`, and returns its header and
    /// payload as they are now (what the node will quarantine).
    #[track_caller]
    fn damage_needle(&self, needle: &NeedleFile, damage: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let start = needle.offset - HEADER as u64;
        let mut bytes = vec![0; HEADER + needle.len as usize];
        let damaged = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&needle.path)
            .and_then(|file| {
                file.read_exact_at(&mut bytes, start)?;
                damage(&mut bytes[HEADER..]);
                file.write_all_at(&bytes, start)
            });
        damaged.unwrap_or_else(|e| {
            self.fail(&format!(
                "cannot damage a needle in {}: {e}",
                needle.path.display()
            ))
        });
        bytes
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

    /// Truncates node `i`'s copy of chunk `id` to half its length and returns the bytes left;
    /// a needle, which cannot be shortened in its volume, gets the second half of its payload
    /// zeroed instead (and the needle's bytes as the node will quarantine them are returned).
    #[track_caller]
    pub fn truncate_chunk(&self, i: usize, id: &str) -> Vec<u8> {
        self.damage(i, id, Damage::Truncate, false)
            .expect("a copy that is gone fails the test")
    }

    /// Deletes node `i`'s copy of chunk `id` behind the node's back. A needle, which cannot be
    /// removed from its volume, is overwritten with zeros, header and all: the node then finds
    /// no valid needle there, a copy as lost as a deleted file.
    #[track_caller]
    pub fn delete_chunk_file(&self, i: usize, id: &str) {
        self.damage(i, id, Damage::Delete, false);
    }

    #[track_caller]
    fn zero_needle(&self, needle: &NeedleFile) {
        let start = needle.offset - HEADER as u64;
        let zeros = vec![0; HEADER + needle.len as usize];
        fs::OpenOptions::new()
            .write(true)
            .open(&needle.path)
            .and_then(|file| file.write_all_at(&zeros, start))
            .unwrap_or_else(|e| {
                self.fail(&format!(
                    "cannot zero a needle in {}: {e}",
                    needle.path.display()
                ))
            });
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

    /// Whether node `i` holds a good copy of chunk `id` (its file or needle hashes to `id`).
    pub fn has_good_copy(&self, i: usize, id: &str) -> bool {
        is_good_copy(&self.dirs[i], id)
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

/// Whether the node with data directory `data` holds a good copy of chunk `id`: a chunk file,
/// or else a live needle, whose bytes hash to `id`.
fn is_good_copy(data: &Path, id: &str) -> bool {
    let hashes = |b: &[u8]| blake3::hash(b).to_hex().as_str() == id;
    if fs::read(chunk_path_in(data, id)).is_ok_and(|b| hashes(&b)) {
        return true;
    }
    let Some(needle) = needles_in(data).remove(id) else {
        return false;
    };
    let mut payload = vec![0; needle.len as usize];
    fs::File::open(&needle.path)
        .and_then(|file| file.read_exact_at(&mut payload, needle.offset))
        .is_ok_and(|()| hashes(&payload))
}

/// How [`Cluster::damage_unless_gone`] damages a copy.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    /// As [`Cluster::corrupt_chunk`].
    FlipBit,
    /// As [`Cluster::truncate_chunk`].
    Truncate,
    /// As [`Cluster::delete_chunk_file`].
    Delete,
}

/// The live needles of the node with data directory `data`, by chunk id in hex; none if its
/// volumes cannot be read (the node may be writing them: callers poll).
fn needles_in(data: &Path) -> BTreeMap<String, NeedleFile> {
    live_needles(data)
        .map(|needles| {
            needles
                .into_iter()
                .map(|(id, needle)| (id.to_hex(), needle))
                .collect()
        })
        .unwrap_or_default()
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
