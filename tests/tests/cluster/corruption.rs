//! Bit rot: a flipped byte in a replica's chunk file, or in a small chunk's needle in a volume
//! file, never reaches the reader. The node verifies the chunk on read and moves the bad copy to
//! its `quarantine/`; the client fails over to the next replica; with no good copy left, `get`
//! fails naming the chunk and writes nothing.
//!
//! Clients try replicas in the order `stat` lists them, so corrupting the first listed copies
//! makes sure the bad ones are actually read.

use std::fs;
use std::time::Duration;

use bigfs_tests::{pseudo_random, Cluster, KIB, MIB};

use crate::s;

const WAIT: Duration = Duration::from_secs(30);

/// Puts a 2.5 MiB file at `/f` on a 3-node cluster and waits until every chunk has 3 copies.
/// Its 1 MiB chunks are chunk files.
fn cluster_with_file(seed: u64) -> (Cluster, Vec<u8>, serde_json::Value) {
    cluster_with(seed, 2 * MIB + 512 * KIB)
}

/// The same with a file of `len` bytes.
fn cluster_with(seed: u64, len: usize) -> (Cluster, Vec<u8>, serde_json::Value) {
    let c = Cluster::start(3);
    let data = pseudo_random(seed, len);
    c.must_put_bytes("/f", &data);
    let stat = c.wait_stat("/f", &data, Some(3), WAIT);
    (c, data, stat)
}

/// Corrupts the first `count` listed replicas of chunk `index`; returns (node, bad bytes) pairs.
fn corrupt_first(
    c: &Cluster,
    stat: &serde_json::Value,
    index: usize,
    count: usize,
) -> Vec<(usize, Vec<u8>)> {
    let id = c.chunk_id_of(stat, index);
    c.replicas_of(stat, index)
        .iter()
        .take(count)
        .map(|node| {
            let i = c.node_index(node);
            (i, c.corrupt_chunk(i, &id))
        })
        .collect()
}

fn wait_quarantined(c: &Cluster, id: &str, bad: &[(usize, Vec<u8>)]) {
    for (i, bytes) in bad {
        let what = format!(
            "{}'s corrupt copy of chunk {id} is in its quarantine/",
            c.node_id(*i)
        );
        c.wait_until(WAIT, &what, || c.quarantine_holds(*i, bytes));
        assert!(
            !c.disk_chunk_ids(*i).contains(id) || c.has_good_copy(*i, id),
            "{}'s corrupt copy of chunk {id} is still in place",
            c.node_id(*i)
        );
    }
}

#[test]
fn corrupt_needle_of_a_small_file_is_skipped_and_quarantined() {
    // One chunk of 40 KiB: a needle in a volume file on each node, not a chunk file.
    let (c, data, stat) = cluster_with(63, 40 * KIB);
    let id = c.chunk_id_of(&stat, 0);
    for i in 0..3 {
        assert!(!c.chunk_path(i, &id).exists(), "{id} is a chunk file");
    }
    let bad = corrupt_first(&c, &stat, 0, 2);
    c.assert_content("/f", &data);
    wait_quarantined(&c, &id, &bad);
    c.check_logs();
}

#[test]
fn corrupt_first_replica_is_skipped_and_quarantined() {
    let (c, data, stat) = cluster_with_file(60);
    let bad = corrupt_first(&c, &stat, 0, 1);
    c.assert_content("/f", &data);
    wait_quarantined(&c, &c.chunk_id_of(&stat, 0), &bad);
    c.check_logs();
}

#[test]
fn two_of_three_replicas_corrupt_still_reads() {
    let (c, data, stat) = cluster_with_file(61);
    let bad = corrupt_first(&c, &stat, 1, 2);
    c.assert_content("/f", &data);
    wait_quarantined(&c, &c.chunk_id_of(&stat, 1), &bad);
    c.check_logs();
}

#[test]
fn all_replicas_corrupt_fails_naming_the_chunk() {
    let (c, _data, stat) = cluster_with_file(62);
    let id = c.chunk_id_of(&stat, 1);
    corrupt_first(&c, &stat, 1, 3);

    let work = c.root().join("work");
    let before: Vec<_> = fs::read_dir(&work)
        .expect("work dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    let local = c.local_path("never");
    let out = c.bigfs(["get", "/f", s(&local)]);
    c.assert_failed(&out, "get with every copy of a chunk corrupt", &[&id[..12]]);
    assert!(!local.exists(), "a failed get left {}", local.display());
    let after: Vec<_> = fs::read_dir(&work)
        .expect("work dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        before,
        after,
        "a failed get left files behind in {}",
        work.display()
    );

    let out = c.bigfs(["get", "/f", "-"]);
    assert!(
        !out.status.success(),
        "get to stdout with no good copy exited 0"
    );
    c.check_logs();
}
