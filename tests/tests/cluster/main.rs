//! End-to-end tests of BigFS: every test starts its own small cluster of real `bigfs-meta` and
//! `bigfs-node` processes (see the `bigfs_tests` harness) and drives it with the `bigfs` CLI.
//!
//! One module per suite:
//! - `roundtrip`: byte-for-byte round trips across chunk boundaries, stdin/stdout, chunk layout;
//! - `namespace`: overwrite and `--force`, `rm`, `rm -r`, `ls` (`-l`, `-h`, `-R`);
//! - `bench`: `bigfs bench small` and `bench load` at a small scale, counting what they did;
//! - `bad_input`: invalid paths, missing files, an unreachable metadata server, usage errors,
//!   a `--meta` that is not http:// or names a storage node;
//! - `local_targets`: what `get` does to existing local files, links, devices and FIFOs, and
//!   every command's exit when the reader of its stdout goes away;
//! - `usage`: `--version` of each binary, shell completion scripts;
//! - `faults`: `kill -9` and SIGSTOP of servers, restarts, writes with a dead node;
//! - `corruption`: flipped bytes in chunk files, failover and quarantine;
//! - `healing`: re-replication, scrubbing, stale copies, garbage collection, draining;
//! - `crashes`: nodes killed or frozen and the metadata server killed in mid-operation;
//! - `disk_faults`: a cluster too small for W, a full node, failing disks (failpoints);
//! - `verbs`: mkdir/rmdir and empty directories, mv and cp moving no bytes, du, df, cat, the
//!   content hash, node drain refusals, undrain and remove, safe mode naming whom it waits for;
//! - `sync`: `bigfs sync` both ways: round trips, renames as moves, `--delete`, `--dry-run`,
//!   `--checksum`, `--watch`;
//! - `nemesis`: randomized faults under a workload, checked against a model (see its doc for
//!   `BIGFS_NEMESIS_SECS` and `BIGFS_NEMESIS_SEED`);
//! - `script`: `scripts/cluster.sh` run as a user runs it (up, restart, add-node, drain, down);
//! - `observability`: `/metrics` checked by `promtool` and moving with the cluster, the gRPC
//!   health protocol and `/healthz`/`/readyz` through safe mode and draining, JSON logs.
//! - `console`: the gateway's web console in headless Chromium: the overview and a killed node,
//!   upload, download, browsing and paging, and the errors a bad action shows.
//! - `meta_api`: the metadata server's calls that no CLI verb makes, over gRPC: changes at a
//!   version (conditional writes) and extended attributes, across a metadata server restart.
//! - `s3`: the gateway's S3 API with aws-cli, boto3, rclone and s3cmd: buckets, objects byte
//!   for byte (100 MiB too), ranges, conditions, copies, multipart with a metadata-only
//!   Complete, listings, sync and `rclone check`, auth refusals; a storage node killed during a
//!   GET, the gateway killed during PUTs.
//! - `s3_buckets`: bucket configurations (lifecycle, CORS, tags, public access block, ownership)
//!   kept across gateway restarts and gone with their bucket, CORS on the wire, lifecycle
//!   rules carried out.
//! - `s3_encryption`: server-side encryption (SSE-C, SSE-S3, SSE-KMS) with boto3 and aws-cli:
//!   round trips, ranges, multipart, copies between encryptions, wrong keys, no plaintext on the
//!   nodes, the master key across a restart.
//!
//! Every test ends with `check_logs()`, which fails on a "panicked" line in any server log.

mod bad_input;
mod bench;
mod console;
mod corruption;
mod crashes;
mod disk_faults;
mod faults;
mod healing;
mod local_targets;
mod meta_api;
mod namespace;
mod nemesis;
mod observability;
mod roundtrip;
mod s3;
mod s3_buckets;
mod s3_encryption;
mod script;
mod sync;
mod usage;
mod verbs;

use std::path::Path;

/// A local path as a CLI argument (the harness's temporary paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
