//! Disk and capacity faults: a cluster too small for W, a full node, and failing disks
//! simulated with failpoints (the `fail` crate, compiled into `bigfs-node` with the
//! `failpoints` feature and armed per node with `FAILPOINTS=…` at start).
//!
//! The promise checked: a failed chunk write is retried on another node, so the put still
//! succeeds while W nodes remain, or the put fails with a clear error and nothing becomes
//! visible; a copy is never acknowledged unless it is on disk (after every put, each replica
//! `stat` lists must hold a good chunk file or needle). The file store's failpoints
//! (`chunk_store::…`) and the small-chunk store's (`volume::…`) each have their cases.

use std::fs;
use std::process::Output;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bigfs_tests::{
    check_failed_naming, describe, distinct_chunks, pseudo_random, stat_chunks, stderr_of, Cluster,
    CLI_TIMEOUT, KIB, MIB,
};

const WAIT: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 * KIB;

/// Checks a put that could not reach W copies: it failed with one line naming the path and the
/// shortfall (e.g. "only 2 of the 3 required copies stored", "need 3, 2 usable"), without
/// blaming the network for a refusal, and nothing became visible. Returns what is wrong with
/// the wording (the caller reports it at the end, after checking the rest of the scenario).
fn check_shortfall(c: &Cluster, out: &Output, remote: &str, what: &str) -> Option<String> {
    assert!(!out.status.success(), "{what}: the put exited 0");
    let err = stderr_of(out);
    eprintln!("{what}: the put failed with: {}", err.trim());
    let out_stat = c.bigfs(["stat", remote]);
    assert!(
        !out_stat.status.success(),
        "{what}: the failed put made {remote} visible:\n{}",
        describe(&out_stat)
    );
    let mut problems: Vec<String> = check_failed_naming(out, None, &[remote, "3"])
        .into_iter()
        .collect();
    if !(err.contains("cop") || err.contains("node")) {
        problems.push(format!(
            "it does not say what is short (copies or nodes): {err}"
        ));
    }
    if err.contains("cannot reach") {
        problems.push(format!(
            "it blames the network although the metadata server answered: {err}"
        ));
    }
    (!problems.is_empty()).then(|| format!("{what}: {}", problems.join("\n")))
}

#[test]
fn put_fails_cleanly_when_fewer_than_w_nodes_remain() {
    let grace = Duration::from_secs(2);
    let mut c = Cluster::builder(3)
        .replication(3)
        .min_replicas(3)
        .chunk_size(CHUNK as u64)
        .heartbeat_timeout(Duration::from_secs(2))
        .gc_grace(grace)
        .write_lease(grace)
        .start();
    let old = pseudo_random(900, 5 * CHUNK + 1);
    c.must_put_bytes("/small/old", &old);
    c.wait_stat("/small/old", &old, Some(3), WAIT);
    let before = distinct_chunks([&old[..]], CHUNK);
    let mut wording = Vec::new();

    // W=3 on 3 nodes, one of which cannot write: every chunk is stored on the two others, then
    // the put fails, and what it stored is garbage. (The chunks are small: needles.)
    c.set_node_env(2, "FAILPOINTS", Some("volume::append=return"));
    c.restart_node(2);
    let new = pseudo_random(901, 8 * CHUNK + 3);
    let local = c.write_local("new", &new);
    let out = c.bigfs(["put", crate::s(&local), "/small/new"]);
    wording.extend(check_shortfall(&c, &out, "/small/new", "a disk failing"));
    let stored = (0..2)
        .flat_map(|i| c.disk_chunk_ids(i))
        .filter(|id| !before.contains_key(id))
        .count();
    let started = Instant::now();
    c.wait_for(WAIT, "the failed put's chunks are deleted", || {
        (0..3).find_map(|i| c.holds_exactly(i, &before))
    });
    eprintln!(
        "cluster too small: {stored} chunk files of the failed put deleted after {:.2?}",
        started.elapsed()
    );

    // Only 2 nodes left: refused.
    c.kill_node(2);
    c.wait_node_state(2, "dead", WAIT);
    let out = c.bigfs(["put", crate::s(&local), "/small/new"]);
    wording.extend(check_shortfall(&c, &out, "/small/new", "a node dead"));
    c.wait_for(WAIT, "nothing of the failed put is left", || {
        (0..2).find_map(|i| c.holds_exactly(i, &before))
    });

    // Reads go on, and a put asking for no more copies than there are nodes works.
    c.assert_content("/small/old", &old);
    let fits = pseudo_random(902, 3 * CHUNK);
    let local = c.write_local("fits", &fits);
    c.must_put_with(&local, "/small/fits", &["--replicas", "2"]);
    c.assert_content("/small/fits", &fits);
    if !wording.is_empty() {
        c.fail(&format!(
            "the failed puts' error messages:\n{}",
            wording.join("\n")
        ));
    }
    c.check_logs();
}

#[test]
fn full_node_takes_no_more_chunks() {
    let capacity = 2 * MIB as u64;
    let full = 3;
    let c = Cluster::builder(4)
        .replication(3)
        .chunk_size(256 * KIB as u64)
        .capacity_of(full, capacity)
        .start();
    // 8 MiB in 32 chunks: the full node's share would be ~6 MiB.
    let files = c.put_files("/full", 1000, &[2 * MIB, 2 * MIB, 2 * MIB, 2 * MIB - 1]);
    // Every chunk has its 3 copies on the other nodes.
    c.wait_healthy_with(WAIT, |_| c.check_all_placed(&files, 3, &[]).err());
    let node = c
        .node_json(full)
        .unwrap_or_else(|| c.fail("the full node is not listed"));
    let used = node["used"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        node["capacity"], capacity,
        "capacity of the full node: {node}"
    );
    assert!(
        used <= capacity,
        "the full node uses more than its capacity: {node}"
    );
    assert!(
        used >= capacity / 2,
        "the full node never filled up (used {used} of {capacity}), so nothing was tested: {node}"
    );
    let on_disk: u64 = c
        .chunk_files(full)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        on_disk <= capacity,
        "the full node has {on_disk} bytes of chunks on disk, capacity {capacity}"
    );
    eprintln!("full node: used {used} of {capacity} bytes");
    c.assert_files(&files);
    c.check_logs();
}

/// The node that gets the failpoint.
const FAULTY: usize = 3;

/// Starts 4 nodes (R=3, W=2) with `FAILPOINTS=spec` on node [`FAULTY`] (and `--fsync` on it if
/// asked), puts files of 0–5 chunks, and checks after each put that every listed replica holds
/// a good copy on disk. Returns the cluster and the files put.
fn cluster_with_failpoint(spec: &str, fsync: bool) -> (Cluster, Vec<(String, Vec<u8>)>) {
    let mut b = Cluster::builder(4)
        .replication(3)
        .min_replicas(2)
        .chunk_size(CHUNK as u64)
        .heartbeat_timeout(Duration::from_secs(3))
        .failpoints(FAULTY, spec);
    if spec.starts_with("chunk_store::") {
        // The file store's failpoints are reached by chunk files only, and this suite's chunks
        // are small: the faulty node keeps every chunk a file.
        b = b.node_args(FAULTY, &["--small-chunk-max", "0"]);
    }
    if fsync {
        b = b.node_args(FAULTY, &["--fsync"]);
    }
    let c = b.start();
    let mut files = Vec::new();
    for (k, len) in [3 * CHUNK + 1, CHUNK, 5 * CHUNK - 9, 200]
        .into_iter()
        .enumerate()
    {
        let path = format!("/fp/f{k}");
        let data = pseudo_random(1100 + k as u64, len);
        let started = Instant::now();
        let local = c.write_local("fp", &data);
        let out = c.bigfs(["put", crate::s(&local), &path]);
        if !out.status.success() {
            c.fail(&format!(
                "with {spec} on {}, the put of {path} failed after {:.2?} although 3 good nodes \
                 remain:\n{}",
                c.node_id(FAULTY),
                started.elapsed(),
                describe(&out)
            ));
        }
        // Acknowledged means on disk: every replica listed right after the put has the file.
        let stat = c.stat_json(&path);
        c.check_stat(&stat, &path, &data, None)
            .and_then(|()| c.check_replicas_on_disk(&stat))
            .unwrap_or_else(|e| c.fail(&format!("with {spec}: {e}")));
        for (index, ch) in stat_chunks(&stat).iter().enumerate() {
            assert!(
                ch.replicas.len() >= 2,
                "with {spec}: chunk {index} of {path} has fewer than W=2 copies: {stat}"
            );
        }
        files.push((path, data));
    }
    (c, files)
}

/// Checks that every copy on the faulty node's disk, chunk file or needle, is whole.
#[track_caller]
fn assert_nothing_torn(c: &Cluster) {
    for id in c.disk_chunk_ids(FAULTY) {
        assert!(
            c.has_good_copy(FAULTY, &id),
            "{} has a torn copy of chunk {id}",
            c.node_id(FAULTY)
        );
    }
}

/// The end of every failpoint case: all files read back, and the cluster heals to 3 good copies
/// of every chunk.
fn heals(c: &Cluster, files: &[(String, Vec<u8>)]) {
    c.assert_files(files);
    c.wait_healthy_with(WAIT, |_| c.check_all_placed(files, 3, &[]).err());
}

/// A failpoint that makes every write on the faulty node fail: it never holds a chunk, and no
/// temp file is left behind.
fn failing_writes(spec: &str, fsync: bool) {
    let (c, files) = cluster_with_failpoint(spec, fsync);
    heals(&c, &files);
    assert!(
        c.chunk_files(FAULTY).is_empty(),
        "with {spec}, {} holds chunk files: {:?}",
        c.node_id(FAULTY),
        c.chunk_files(FAULTY)
    );
    assert!(
        c.disk_chunk_ids(FAULTY).is_empty(),
        "with {spec}, {} holds chunks: {:?}",
        c.node_id(FAULTY),
        c.disk_chunk_ids(FAULTY)
    );
    assert!(
        c.tmp_files(FAULTY).is_empty(),
        "with {spec}, failed writes left temp files: {:?}",
        c.tmp_files(FAULTY)
    );
    c.check_logs();
}

#[test]
fn volume_enospc_is_a_failed_write() {
    failing_writes("volume::append=return", false);
}

#[test]
fn volume_torn_append_is_a_failed_write() {
    failing_writes("volume::torn_append=return", false);
}

/// A failed group commit fails every put waiting on it: the node acknowledges and reports no
/// chunk (the needles it wrote may be on disk, unacknowledged, but none is torn), and once its
/// disk works again it serves and heals like any node.
#[test]
fn volume_fsync_error_is_a_failed_write() {
    let spec = "volume::fsync=return";
    let (mut c, files) = cluster_with_failpoint(spec, true);
    heals(&c, &files);
    assert_eq!(
        c.node_figure(FAULTY, "chunks"),
        0,
        "with {spec}, {} reports chunks it could not make durable",
        c.node_id(FAULTY)
    );
    c.set_node_env(FAULTY, "FAILPOINTS", None);
    c.restart_node(FAULTY);
    assert_nothing_torn(&c);
    heals(&c, &files);
    c.check_logs();
}

/// A node killed with SIGKILL while puts wait in its group commit: what it acknowledged before
/// is all there after a restart, what it was syncing was never acknowledged, and no needle it
/// serves is torn.
#[test]
fn node_killed_mid_group_commit_loses_nothing_acknowledged() {
    let mut c = Cluster::builder(4)
        .replication(3)
        .min_replicas(2)
        .chunk_size(CHUNK as u64)
        .heartbeat_timeout(Duration::from_secs(3))
        .node_args(FAULTY, &["--fsync"])
        .failpoints(FAULTY, "volume::fsync=sleep(1500)")
        .start();
    // Acknowledged by every node, the faulty one included, before the kill.
    let before = pseudo_random(1200, 6 * CHUNK + 100);
    c.must_put_bytes("/gc/before", &before);
    let stat = c.wait_stat("/gc/before", &before, Some(3), WAIT);
    let acked: Vec<String> = stat_chunks(&stat)
        .into_iter()
        .filter(|ch| ch.replicas.contains(&c.node_id(FAULTY).to_string()))
        .map(|ch| ch.id)
        .collect();
    assert!(
        !acked.is_empty(),
        "{} holds none of /gc/before",
        c.node_id(FAULTY)
    );

    // Killed once needles of the next put are written and waiting for their fsync.
    let during = Arc::new(pseudo_random(1201, 12 * CHUNK));
    let held = c.disk_chunk_ids(FAULTY).len();
    let put = thread::spawn({
        let (cli, data) = (c.cli(), Arc::clone(&during));
        move || cli.put_bytes("/gc/during", &data, &["--parallel", "4"], CLI_TIMEOUT)
    });
    c.wait_until(
        WAIT,
        "needles of the put are written on the faulty node",
        || put.is_finished() || c.disk_chunk_ids(FAULTY).len() > held,
    );
    let mid_commit = !put.is_finished();
    c.kill_node(FAULTY);
    let out = put
        .join()
        .expect("put thread")
        .unwrap_or_else(|e| c.fail(&e));
    assert!(
        out.status.success(),
        "the put failed with 3 nodes left: {}",
        describe(&out)
    );

    c.set_node_env(FAULTY, "FAILPOINTS", None);
    c.restart_node(FAULTY);
    for id in &acked {
        assert!(
            c.has_good_copy(FAULTY, id),
            "{} lost chunk {id}, acknowledged before the kill",
            c.node_id(FAULTY)
        );
    }
    assert_nothing_torn(&c);
    let files = vec![
        ("/gc/before".to_string(), before),
        ("/gc/during".to_string(), during.to_vec()),
    ];
    heals(&c, &files);
    eprintln!("group commit: killed mid-commit: {mid_commit}");
    c.check_logs();
}

#[test]
fn fsync_error_is_a_failed_write() {
    failing_writes("chunk_store::fsync=return", true);
}

#[test]
fn enospc_is_a_failed_write() {
    failing_writes("chunk_store::write=return", false);
}

#[test]
fn short_write_is_a_failed_write() {
    failing_writes("chunk_store::short_write=return", false);
}

#[test]
fn slow_disk_still_stores() {
    let (c, files) = cluster_with_failpoint("chunk_store::write=sleep(2000)", false);
    heals(&c, &files);
    c.check_logs();
}

#[test]
fn crash_between_write_and_rename_leaves_no_torn_chunk() {
    let panic = "failpoint chunk_store::before_rename panic";
    let (mut c, files) = cluster_with_failpoint("chunk_store::before_rename=panic", false);
    c.allow_panic(panic);
    let status = c.node_exited(FAULTY);
    assert!(
        status.is_some(),
        "{} did not die at its first write (no chunk was placed on it?)",
        c.node_id(FAULTY)
    );
    assert!(
        c.node_log(FAULTY).contains(panic),
        "{} exited ({status:?}) but not at the failpoint",
        c.node_id(FAULTY)
    );
    let torn = c.tmp_files(FAULTY);
    // Restart it without the failpoint: the torn temp file is removed at start, and any chunk
    // file it has is whole.
    c.set_node_env(FAULTY, "FAILPOINTS", None);
    c.restart_node(FAULTY);
    assert!(
        c.tmp_files(FAULTY).is_empty(),
        "the restarted node kept its torn writes: {:?}",
        c.tmp_files(FAULTY)
    );
    assert_nothing_torn(&c);
    heals(&c, &files);
    eprintln!(
        "torn write: {} temp files after the crash ({status:?}), none after the restart",
        torn.len()
    );
    c.check_logs();
}
