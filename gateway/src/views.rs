//! What the JSON API answers, made from the metadata server's replies.
//!
//! The console shows the same numbers as `bigfs nodes`, `bigfs fsck`, `bigfs ls` and `bigfs stat`
//! because it reads them from the same RPCs; the field names are those of the CLI's `--json`
//! where it has them (`last_heartbeat_ms`, `under_replicated`, `content_hash`).

use serde::Serialize;

use bigfs_client::health::{self, Verdict};
use bigfs_proto::pb::{DirEntry, FsckResponse, GetFileResponse, ListNodesResponse};

use crate::paging::Page;

/// The problem chunks an overview lists (the counts cover them all).
pub const OVERVIEW_PROBLEMS: u32 = 20;

/// The cluster at a glance: its nodes, its chunks' health, safe mode.
#[derive(Debug, Serialize)]
pub struct Overview {
    /// `healthy`, `healing`, `degraded` or `unavailable`, as `bigfs fsck` decides it.
    pub verdict: &'static str,
    /// The counts behind a verdict other than healthy ("3 under-replicated").
    pub problems: String,
    pub nodes: Vec<Node>,
    /// Sums over the nodes.
    pub capacity: u64,
    pub used: u64,
    pub files: u64,
    pub chunks: u64,
    pub healthy: u64,
    pub under_replicated: u64,
    pub missing: u64,
    pub corrupt: u64,
    pub repairs_in_flight: u64,
    pub problem_chunks: u64,
    /// Up to [`OVERVIEW_PROBLEMS`] of the problem chunks.
    pub problem_list: Vec<Problem>,
    pub safe_mode: bool,
    /// The nodes safe mode waits for, and how long it waits at most.
    pub safe_mode_waiting_for: Vec<String>,
    pub safe_mode_left_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Node {
    pub id: String,
    pub addr: String,
    /// `alive`, `suspect`, `dead`, `draining` or `drained`.
    pub state: String,
    pub capacity: u64,
    pub used: u64,
    pub chunks: u64,
    pub last_heartbeat_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub chunk_id: String,
    /// `under_replicated`, `missing` or `corrupt`.
    pub state: String,
    pub live_copies: u32,
    pub wanted_copies: u32,
    pub path: String,
}

impl Overview {
    pub fn new(nodes: ListNodesResponse, fsck: FsckResponse) -> Self {
        let verdict = Verdict::of(&fsck);
        let safe_mode_left_ms = nodes.safe_mode_left_ms;
        let nodes: Vec<Node> = nodes
            .nodes
            .into_iter()
            .map(|n| Node {
                id: n.id,
                addr: n.addr,
                state: n.state,
                capacity: n.capacity,
                used: n.used,
                chunks: n.chunks,
                last_heartbeat_ms: n.last_heartbeat_ms_ago,
            })
            .collect();
        Self {
            verdict: verdict.word(),
            problems: health::problems(&fsck),
            capacity: nodes.iter().map(|n| n.capacity).sum(),
            used: nodes.iter().map(|n| n.used).sum(),
            nodes,
            files: fsck.files,
            chunks: fsck.chunks,
            healthy: fsck.healthy,
            under_replicated: fsck.under_replicated,
            missing: fsck.missing,
            corrupt: fsck.corrupt,
            repairs_in_flight: fsck.repairs_in_flight,
            problem_chunks: fsck.problem_chunks,
            problem_list: fsck
                .problems
                .into_iter()
                .map(|p| Problem {
                    chunk_id: p.chunk_id,
                    state: p.state,
                    live_copies: p.live_copies,
                    wanted_copies: p.wanted_copies,
                    path: p.path,
                })
                .collect(),
            safe_mode: fsck.safe_mode,
            safe_mode_waiting_for: fsck.safe_mode_waiting_for,
            safe_mode_left_ms,
        }
    }
}

/// A directory's listing, a page of it; or, when the path names a file, that file alone
/// (`is_file`), so that a link to a file opens its details.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub path: String,
    pub is_file: bool,
    #[serde(flatten)]
    pub page: Page<Entry>,
}

/// One row of a listing.
#[derive(Debug, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub path: String,
    pub is_dir: bool,
    pub size: u64,
    pub mtime_ms: u64,
    pub replication: u32,
    pub chunks: u64,
}

impl From<DirEntry> for Entry {
    fn from(e: DirEntry) -> Self {
        Self {
            name: e.path.rsplit('/').next().unwrap_or_default().to_string(),
            path: e.path,
            is_dir: e.is_dir,
            size: e.size,
            mtime_ms: e.mtime_ms,
            replication: e.replication,
            chunks: e.chunks,
        }
    }
}

/// Whether what `List` answered for `path` is the file at `path` itself.
pub fn is_file_listing(path: &str, entries: &[DirEntry]) -> bool {
    matches!(entries, [only] if !only.is_dir && only.path == path)
}

/// A file's details: what `bigfs stat --json` shows.
#[derive(Debug, Serialize)]
pub struct FileDetails {
    pub path: String,
    pub size: u64,
    pub chunk_size: u64,
    pub replication: u32,
    pub mode: u32,
    pub mtime_ms: u64,
    pub version: u64,
    pub content_hash: String,
    pub chunks: Vec<ChunkView>,
}

#[derive(Debug, Serialize)]
pub struct ChunkView {
    pub index: u32,
    pub id: String,
    pub size: u64,
    /// The live nodes holding a copy, best first.
    pub replicas: Vec<String>,
}

impl From<GetFileResponse> for FileDetails {
    fn from(reply: GetFileResponse) -> Self {
        let file = reply.file.unwrap_or_default();
        Self {
            path: file.path,
            size: file.size,
            chunk_size: file.chunk_size,
            replication: file.replication,
            mode: file.mode,
            mtime_ms: file.mtime_ms,
            version: file.version,
            content_hash: file.content_hash,
            chunks: reply
                .chunks
                .into_iter()
                .map(|c| ChunkView {
                    index: c.index,
                    id: c.id,
                    size: c.size,
                    replicas: c.replicas.into_iter().map(|r| r.id).collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bigfs_proto::pb::{ChunkLocation, FileInfo, NodeAddr, NodeStatus};

    #[test]
    fn an_overview_sums_the_nodes_and_takes_the_fsck_verdict() {
        let node = |id: &str, state: &str, used| NodeStatus {
            id: id.into(),
            state: state.into(),
            capacity: 100,
            used,
            chunks: 3,
            last_heartbeat_ms_ago: 250,
            ..NodeStatus::default()
        };
        let nodes = ListNodesResponse {
            nodes: vec![node("node1", "alive", 10), node("node2", "dead", 20)],
            safe_mode_left_ms: 5,
            ..ListNodesResponse::default()
        };
        let fsck = FsckResponse {
            chunks: 4,
            healthy: 1,
            under_replicated: 3,
            repairs_in_flight: 2,
            ..FsckResponse::default()
        };
        let overview = Overview::new(nodes, fsck);
        assert_eq!(overview.verdict, "healing");
        assert_eq!(overview.problems, "3 under-replicated");
        assert_eq!((overview.capacity, overview.used), (200, 30));
        assert_eq!(overview.safe_mode_left_ms, 5);
        let json = serde_json::to_value(&overview).unwrap();
        assert_eq!(json["nodes"][1]["state"], "dead");
        assert_eq!(json["nodes"][0]["last_heartbeat_ms"], 250);
        assert_eq!(json["under_replicated"], 3);
    }

    #[test]
    fn entries_are_named_and_a_file_lists_as_itself() {
        let file = DirEntry {
            path: "/a/report.pdf".into(),
            size: 7,
            ..DirEntry::default()
        };
        let entry = Entry::from(file.clone());
        assert_eq!(entry.name, "report.pdf");
        assert_eq!(entry.path, "/a/report.pdf");
        assert!(is_file_listing(
            "/a/report.pdf",
            std::slice::from_ref(&file)
        ));
        assert!(!is_file_listing("/a", std::slice::from_ref(&file)));
        let dir = DirEntry {
            path: "/a".into(),
            is_dir: true,
            ..DirEntry::default()
        };
        assert!(!is_file_listing("/a", &[dir]));
        assert!(!is_file_listing("/a", &[]));
    }

    #[test]
    fn file_details_name_the_nodes_of_each_chunk() {
        let reply = GetFileResponse {
            file: Some(FileInfo {
                path: "/f".into(),
                size: 5,
                content_hash: "ab".into(),
                ..FileInfo::default()
            }),
            chunks: vec![ChunkLocation {
                index: 0,
                id: "cd".into(),
                size: 5,
                replicas: vec![NodeAddr {
                    id: "node2".into(),
                    addr: "http://127.0.0.1:2".into(),
                }],
            }],
        };
        let json = serde_json::to_value(FileDetails::from(reply)).unwrap();
        assert_eq!(json["content_hash"], "ab");
        assert_eq!(json["chunks"][0]["replicas"], serde_json::json!(["node2"]));
    }
}
