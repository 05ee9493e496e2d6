//! End-to-end tests of BigFS: every test starts its own small cluster of real `bigfs-meta` and
//! `bigfs-node` processes (see the `bigfs_tests` harness) and drives it with the `bigfs` CLI.
//!
//! One module per suite:
//! - `roundtrip`: byte-for-byte round trips across chunk boundaries, stdin/stdout, chunk layout;
//! - `namespace`: overwrite and `--force`, `rm`, `rm -r`, `ls`;
//! - `bad_input`: invalid paths, missing files, an unreachable metadata server, usage errors;
//! - `faults`: `kill -9` and SIGSTOP of servers, restarts, writes with a dead node;
//! - `corruption`: flipped bytes in chunk files, failover and quarantine;
//! - `healing`: re-replication, scrubbing, stale copies, garbage collection, draining;
//! - `crashes`: nodes killed or frozen and the metadata server killed in mid-operation;
//! - `disk_faults`: a cluster too small for W, a full node, failing disks (failpoints);
//! - `nemesis`: randomized faults under a workload, checked against a model (see its doc for
//!   `BIGFS_NEMESIS_SECS` and `BIGFS_NEMESIS_SEED`).
//!
//! Every test ends with `check_logs()`, which fails on a "panicked" line in any server log.

mod bad_input;
mod corruption;
mod crashes;
mod disk_faults;
mod faults;
mod healing;
mod namespace;
mod nemesis;
mod roundtrip;
mod sync;

use std::path::Path;

/// A local path as a CLI argument (the harness's temporary paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
