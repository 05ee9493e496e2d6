//! Process faults: `kill -9` and SIGSTOP of storage nodes and of the metadata server. Committed
//! files survive a metadata server crash; reads fail over from a dead or frozen replica at once;
//! writes go on with W=2 once a node is declared dead; a restarted node serves its chunks again;
//! a node frozen or killed in the middle of a repair, as a source or a target, makes the repair
//! neither lose nor double-count a copy.

use std::time::{Duration, Instant};

use serde_json::Value;

use bigfs_tests::observe::metric;
use bigfs_tests::{pseudo_random, Cluster, KIB, MIB};

use crate::s;

const WAIT: Duration = Duration::from_secs(60);

/// The parts of a `stat --json` that must survive a metadata server restart: everything but the
/// replica lists (soft state, rebuilt from the nodes' reports).
fn durable_part(stat: &Value) -> Value {
    let mut stat = stat.clone();
    if let Some(chunks) = stat["chunks"].as_array_mut() {
        for chunk in chunks {
            if let Some(obj) = chunk.as_object_mut() {
                obj.remove("replicas");
            }
        }
    }
    stat
}

#[test]
fn metadata_server_kill_and_restart_keeps_committed_files() {
    let mut c = Cluster::start(3);
    let files = [
        ("/keep/empty", pseudo_random(20, 0)),
        ("/keep/small", pseudo_random(21, 1000)),
        ("/keep/multi", pseudo_random(22, 3 * MIB + 200 * KIB)),
        ("/keep/over", pseudo_random(23, 1200 * KIB)),
    ];
    for (path, data) in &files {
        c.must_put_bytes(path, data);
    }
    // An overwrite and a removal are committed changes too.
    let newer = pseudo_random(24, 600 * KIB);
    let local = c.write_local("newer", &newer);
    c.must_put_with(&local, "/keep/over", &["--force"]);
    c.must_put_bytes("/keep/gone", &pseudo_random(25, 10 * KIB));
    c.must(["rm", "/keep/gone"]);
    let expected: Vec<(&str, &[u8])> = vec![
        ("/keep/empty", files[0].1.as_slice()),
        ("/keep/small", files[1].1.as_slice()),
        ("/keep/multi", files[2].1.as_slice()),
        ("/keep/over", newer.as_slice()),
    ];
    let ls_before = c.ls_json("/keep");
    let stats_before: Vec<Value> = expected
        .iter()
        .map(|(p, _)| durable_part(&c.stat_json(p)))
        .collect();

    // kill -9 right after the last acknowledged change, then restart on the same port and data.
    c.kill_meta();
    c.restart_meta();

    // Locations come back with the nodes' reports; wait until every chunk is known on all 3.
    for ((path, data), before) in expected.iter().zip(&stats_before) {
        let stat = c.wait_stat(path, data, Some(3), WAIT);
        assert_eq!(
            &durable_part(&stat),
            before,
            "stat of {path} changed across the restart"
        );
        c.assert_content(path, data);
    }
    assert_eq!(
        c.ls_json("/keep"),
        ls_before,
        "ls /keep changed across the restart"
    );
    let local = c.local_path("gone");
    let out = c.bigfs(["get", "/keep/gone", s(&local)]);
    c.assert_failed(
        &out,
        "get of a file removed before the restart",
        &["/keep/gone"],
    );

    // The restarted server takes writes too.
    let after = pseudo_random(26, MIB + 1);
    c.must_put_bytes("/keep/after", &after);
    c.assert_content("/keep/after", &after);
    c.check_logs();
}

#[test]
fn read_fails_over_from_a_killed_node_before_the_timeout() {
    // A heartbeat timeout far longer than the test: the metadata server still lists the killed
    // node as a replica, so the client must fail over by itself.
    let mut c = Cluster::builder(3)
        .heartbeat_timeout(Duration::from_secs(120))
        .start();
    let data = pseudo_random(30, 3 * MIB + 500 * KIB);
    c.must_put_bytes("/f", &data);
    let stat = c.wait_stat("/f", &data, Some(3), WAIT);
    let victim = c.node_index(&c.replicas_of(&stat, 0)[0]);

    c.kill_node(victim);
    c.assert_content("/f", &data);
    assert_ne!(
        c.node_state(victim).as_deref(),
        Some("dead"),
        "the read was meant to happen before the metadata server noticed the kill"
    );
    c.check_logs();
}

#[test]
fn read_fails_over_from_a_frozen_node() {
    // SIGSTOP: the node's sockets stay open but nothing answers, so only a client time-out
    // gets the read past it.
    let c = Cluster::builder(3)
        .heartbeat_timeout(Duration::from_secs(120))
        .start();
    let data = pseudo_random(31, MIB + 300 * KIB);
    c.must_put_bytes("/f", &data);
    let stat = c.wait_stat("/f", &data, Some(3), WAIT);
    let victim = c.node_index(&c.replicas_of(&stat, 0)[0]);

    c.pause_node(victim);
    let started = Instant::now();
    let local = c.local_path("frozen");
    let out = c.bigfs_timeout(["get", "/f", s(&local)], Duration::from_secs(120));
    let took = started.elapsed();
    c.resume_node(victim);
    assert!(
        out.status.success(),
        "get with a frozen replica failed after {took:?}:\n{}",
        bigfs_tests::describe(&out)
    );
    let got = std::fs::read(&local).expect("read the got file");
    assert!(
        got == data,
        "get with a frozen replica: {}",
        bigfs_tests::diff_summary(&data, &got)
    );
    eprintln!("get past a frozen replica took {took:?}");
    c.check_logs();
}

#[test]
fn put_succeeds_with_w2_after_a_node_is_declared_dead() {
    let mut c = Cluster::builder(3).replication(3).min_replicas(2).start();
    let before = pseudo_random(40, 2 * MIB + 7);
    c.must_put_bytes("/before", &before);
    c.wait_stat("/before", &before, Some(3), WAIT);

    c.kill_node(2);
    c.wait_node_state(2, "dead", WAIT);

    let data = pseudo_random(41, 2 * MIB + 500 * KIB);
    c.must_put_bytes("/after", &data);
    c.assert_content("/after", &data);
    c.assert_content("/before", &before);
    let stat = c.stat_json("/after");
    c.check_stat(&stat, "/after", &data, None)
        .unwrap_or_else(|e| c.fail(&e));
    for (i, chunk) in stat["chunks"].as_array().into_iter().flatten().enumerate() {
        let replicas = c.replicas_of(&stat, i);
        assert!(
            replicas.len() >= 2,
            "chunk {i} has fewer than W=2 copies: {chunk}"
        );
        assert!(
            !replicas.iter().any(|r| r == c.node_id(2)),
            "chunk {i} is placed on the dead node: {chunk}"
        );
    }
    c.check_logs();
}

#[test]
fn restarted_node_serves_its_chunks_again() {
    let mut c = Cluster::start(3);
    let data = pseudo_random(50, MIB + 600 * KIB);
    c.must_put_bytes("/f", &data);
    c.wait_stat("/f", &data, Some(3), WAIT);

    c.kill_node(0);
    c.wait_node_state(0, "dead", WAIT);
    c.restart_node(0);
    c.wait_node_state(0, "alive", WAIT);
    // It re-registers with its full chunk report, so it is a replica of every chunk again.
    c.wait_stat("/f", &data, Some(3), WAIT);

    // With the two other nodes gone (and not yet declared dead), only node0 can serve the file.
    c.kill_node(1);
    c.kill_node(2);
    c.assert_content("/f", &data);
    c.check_logs();
}

/// The metadata server's `bigfs_meta_repair_copies_*` figure `name`, with `labels`.
fn repair_metric(c: &Cluster, name: &str, labels: &[(&str, &str)]) -> f64 {
    let name = format!("bigfs_meta_repair_copies_{name}");
    metric(&c.meta_metrics(), &name, labels).unwrap_or(0.0)
}

/// Kills node `first`, waits until copies are in flight, does `fault` to node [`SLOW`] (whose
/// writes take a second, so it is a target of copies in flight, and their sources wait on
/// it), waits until the metadata server gives up some copy because of it (so the fault did
/// hit the repair mid-way), does `recover`, then waits for the repair to end with exactly 3
/// good copies of every chunk, none on `gone`.
fn fault_mid_repair(
    c: &mut Cluster,
    files: &[(String, Vec<u8>)],
    first: usize,
    gone: &[usize],
    fault: impl FnOnce(&mut Cluster),
    recover: impl FnOnce(&mut Cluster),
) {
    let failed = |c: &Cluster| repair_metric(c, "answered_total", &[("result", "failed")]);
    let failed_before = failed(c);
    c.kill_node(first);
    c.wait_node_state(first, "dead", WAIT);
    c.wait_until(WAIT, "repair copies in flight", || {
        repair_metric(c, "in_flight", &[]) > 0.0
    });
    fault(c);
    c.wait_until(WAIT, "a copy in flight given up", || {
        failed(c) > failed_before
    });
    recover(c);
    c.wait_healthy_with(WAIT, |_| c.check_all_placed(files, 3, gone).err());
    c.assert_files(files);
}

/// The node with slow writes in the mid-repair fault test.
const SLOW: usize = 5;

#[test]
fn a_node_frozen_or_killed_mid_repair_loses_and_double_counts_no_copy() {
    const CHUNK: usize = 128 * KIB;
    // Six nodes at R=3. Node SLOW's disk takes a second per chunk and every node sends one
    // copy at a time, so a repair lasts long enough to be interrupted.
    let mut c = Cluster::builder(6)
        .replication(3)
        .chunk_size(CHUNK as u64)
        .heartbeat_timeout(Duration::from_secs(2))
        .all_node_args(&["--repair-window", "1KiB"])
        .failpoints(SLOW, "chunk_store::write=sleep(1000)")
        .start();
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|k| {
            (
                format!("/mid/f{k}"),
                pseudo_random(90 + k, 20 * CHUNK + 1000 * k as usize),
            )
        })
        .collect();
    for (path, data) in &files {
        c.must_put_bytes(path, data);
    }
    c.wait_healthy(WAIT);

    // Node 0 dies; mid-repair node SLOW freezes (SIGSTOP) until its copies are given up (it
    // is declared dead), then comes back with its copies and late answers.
    fault_mid_repair(
        &mut c,
        &files,
        0,
        &[0],
        |c| c.pause_node(SLOW),
        |c| c.resume_node(SLOW),
    );
    // Node 1 dies; mid-repair node SLOW is killed: the three left hold every chunk.
    fault_mid_repair(
        &mut c,
        &files,
        1,
        &[0, 1, SLOW],
        |c| c.kill_node(SLOW),
        |_| {},
    );
    c.check_logs();
}
