//! Cluster health as the CLI reports it: `bigfs fsck --json`, `bigfs nodes --json` figures per
//! node, and draining.
//!
//! `fsck --json` prints at least `{files, chunks, healthy, under_replicated, missing, corrupt,
//! repairs_in_flight, safe_mode, problems}` and exits 1 when `missing > 0`, 0 otherwise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::output::describe;
use crate::wait::poll_until;

/// A number field of a JSON object, 0 if absent (the caller's checks then say what is wrong).
fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Why an `fsck --json` document is not clean, or `None` if it is: every chunk healthy (and
/// the count fields present), none under-replicated, missing or corrupt.
pub fn fsck_problems(fsck: &Value) -> Option<String> {
    let mut problems = Vec::new();
    for key in [
        "files",
        "chunks",
        "healthy",
        "under_replicated",
        "missing",
        "corrupt",
    ] {
        if fsck[key].as_u64().is_none() {
            problems.push(format!("no number {key:?}"));
        }
    }
    if num(fsck, "healthy") != num(fsck, "chunks") {
        problems.push(format!(
            "healthy {} of {} chunks",
            fsck["healthy"], fsck["chunks"]
        ));
    }
    for key in ["under_replicated", "missing", "corrupt"] {
        if num(fsck, key) != 0 {
            problems.push(format!("{key} {}", fsck[key]));
        }
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

impl Cluster {
    /// `bigfs fsck --json`. Fails the test unless it prints a JSON object and its exit status
    /// agrees with the contract (1 when `missing > 0`, else 0).
    #[track_caller]
    pub fn fsck_json(&self) -> Value {
        let out = self.bigfs(["fsck", "--json"]);
        let fsck: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            self.fail(&format!(
                "`bigfs fsck --json` printed invalid JSON ({e}):\n{}",
                describe(&out)
            ))
        });
        if !fsck.is_object() {
            self.fail(&format!(
                "`bigfs fsck --json` printed {fsck}, not an object"
            ));
        }
        let want = if num(&fsck, "missing") > 0 { 1 } else { 0 };
        if out.status.code() != Some(want) {
            self.fail(&format!(
                "`bigfs fsck --json` reports missing = {}, so it must exit {want}:\n{}",
                fsck["missing"],
                describe(&out)
            ));
        }
        fsck
    }

    /// Waits until `fsck --json` is clean (see [`fsck_problems`]) and `extra` holds too (it gets
    /// the fsck document and says what is still wrong, or `None`); returns the last fsck and how
    /// long it took. Fails with the last problems after `timeout`.
    #[track_caller]
    pub fn wait_healthy_with(
        &self,
        timeout: Duration,
        mut extra: impl FnMut(&Value) -> Option<String>,
    ) -> (Value, Duration) {
        let mut last = (Value::Null, String::new());
        let result = poll_until(timeout, || {
            let fsck = self.fsck_json();
            let problem = fsck_problems(&fsck).or_else(|| extra(&fsck));
            let done = problem.is_none();
            last = (fsck, problem.unwrap_or_default());
            done
        });
        match result {
            Ok(took) => (last.0, took),
            Err(waited) => self.fail(&format!(
                "the cluster did not heal within {waited:?}: {}\nlast fsck: {}",
                last.1, last.0
            )),
        }
    }

    /// Waits until `fsck --json` is clean; returns it and how long that took.
    #[track_caller]
    pub fn wait_healthy(&self, timeout: Duration) -> (Value, Duration) {
        self.wait_healthy_with(timeout, |_| None)
    }

    /// Node `i`'s entry in `bigfs nodes --json`, if listed.
    #[track_caller]
    pub fn node_json(&self, i: usize) -> Option<Value> {
        let id = self.node_id(i);
        let nodes = self.nodes_json();
        nodes.as_array()?.iter().find(|n| n["id"] == id).cloned()
    }

    /// A number field of node `i` in `nodes --json` (e.g. "used"); fails if it is not there.
    #[track_caller]
    pub fn node_figure(&self, i: usize, key: &str) -> u64 {
        let node = self.node_json(i).unwrap_or_else(|| {
            self.fail(&format!(
                "{} is not listed by `bigfs nodes --json`",
                self.node_id(i)
            ))
        });
        node[key].as_u64().unwrap_or_else(|| {
            self.fail(&format!("`nodes --json` has no number {key:?} in {node}"))
        })
    }

    /// Bytes used on node `i` per `nodes --json`.
    #[track_caller]
    pub fn node_used(&self, i: usize) -> u64 {
        self.node_figure(i, "used")
    }

    /// Chunks held by node `i` per `nodes --json`.
    #[track_caller]
    pub fn node_chunks(&self, i: usize) -> u64 {
        self.node_figure(i, "chunks")
    }

    /// How node `i` differs from holding exactly `chunks` (id → size): per `nodes --json` its
    /// `used` and `chunks`, and the chunk files on its disk. `None` if it matches.
    #[track_caller]
    pub fn holds_exactly(&self, i: usize, chunks: &BTreeMap<String, usize>) -> Option<String> {
        // Volume garbage counts as used until compaction gives it back.
        let bytes = chunks.values().map(|&s| s as u64).sum::<u64>() + self.volume_garbage(i);
        let (used, count) = (self.node_used(i), self.node_chunks(i));
        let on_disk = self.disk_chunk_ids(i);
        let unexpected = on_disk
            .iter()
            .filter(|id| !chunks.contains_key(*id))
            .count();
        let missing = chunks.keys().filter(|id| !on_disk.contains(*id)).count();
        (used != bytes || count != chunks.len() as u64 || unexpected + missing > 0).then(|| {
            format!(
                "{} reports used {used} and {count} chunks and has {} chunk files ({unexpected}                  unexpected, {missing} missing); expected used {bytes} and {} chunks",
                self.node_id(i),
                on_disk.len(),
                chunks.len()
            )
        })
    }

    /// `bigfs node drain ID` for node `i`, which must succeed.
    #[track_caller]
    pub fn drain_node(&self, i: usize) {
        let id = self.node_id(i).to_string();
        self.must(["node", "drain", &id]);
    }

    /// Waits until `cond` holds, calling it at most every `POLL`; returns how long it took and
    /// fails naming `what` and the last description `cond` gave of what is still wrong.
    /// (`cond` returns `None` when satisfied, or what is still wrong.)
    #[track_caller]
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut cond: impl FnMut() -> Option<String>,
    ) -> Duration {
        let started = Instant::now();
        let mut last = String::new();
        match poll_until(timeout, || match cond() {
            None => true,
            Some(problem) => {
                last = problem;
                false
            }
        }) {
            Ok(_) => started.elapsed(),
            Err(waited) => self.fail(&format!(
                "timed out after {waited:?} waiting until {what}; still: {last}"
            )),
        }
    }
}
