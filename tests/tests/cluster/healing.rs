//! Self-healing (issue 4): the metadata server notices lost, corrupt and surplus copies and
//! brings every referenced chunk back to R good copies by itself: re-replication after a node
//! dies, repair of what the scrubber finds, removal of a returning node's stale copies,
//! garbage collection after rm and overwrite, and draining a node before removing it.
//!
//! "Healed" is checked two ways: `fsck --json` is clean, and every copy `stat` lists is a good
//! file on that node's disk (the harness hashes it), so a replica list cannot pass by lying.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bigfs_tests::observe::metric;
use bigfs_tests::{
    cli_command, distinct_chunks, pseudo_random, run_feeding, stat_chunks, Cluster, Feed,
    StatChunk, CLI_TIMEOUT, KIB, MIB,
};

/// Deadline of every wait: a bound on a broken cluster, not an expectation.
const WAIT: Duration = Duration::from_secs(60);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
const GC_GRACE: Duration = Duration::from_secs(2);

#[test]
fn dead_node_is_rereplicated_to_three_copies() {
    let mut c = Cluster::builder(4)
        .replication(3)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .start();
    let files = c.put_files(
        "/heal",
        100,
        &[4 * MIB, 4 * MIB + 300 * KIB, 3 * MIB + 1, 5 * MIB - 7],
    );
    let stats = c.wait_files(&files, Some(3), WAIT);
    c.wait_healthy(WAIT);

    // The victim holds ~3/4 of the chunks; each of those needs a new copy.
    let victim = 1;
    let victim_id = c.node_id(victim).to_string();
    let lost: BTreeMap<String, u64> = stats
        .iter()
        .flat_map(stat_chunks)
        .filter(|ch| ch.replicas.contains(&victim_id))
        .map(|ch| (ch.id, ch.size))
        .collect();
    let lost_bytes: u64 = lost.values().sum();
    assert!(!lost.is_empty(), "{victim_id} holds no chunk: {stats:?}");

    let killed = Instant::now();
    c.kill_node(victim);
    c.wait_node_state(victim, "dead", WAIT);
    let declared_dead = killed.elapsed();
    c.wait_healthy_with(WAIT, |_| c.check_all_placed(&files, 3, &[victim]).err());
    let healed = killed.elapsed();
    let repair = healed.saturating_sub(declared_dead);
    let mib = lost_bytes as f64 / MIB as f64;
    eprintln!(
        "re-replication: {} chunks, {mib:.1} MiB re-copied; healthy {healed:.2?} after the kill \
         ({:.1} MiB/s), declared dead after {declared_dead:.2?}, repair took {repair:.2?} \
         after that ({:.1} MiB/s)",
        lost.len(),
        mib / healed.as_secs_f64(),
        mib / repair.as_secs_f64().max(0.001),
    );
    c.assert_files(&files);
    c.check_logs();
}

/// Chunk writes the nodes of `nodes` received over gRPC, alone or batched.
fn put_calls(c: &Cluster, nodes: &[usize]) -> f64 {
    let text: Vec<String> = nodes.iter().map(|&i| c.metrics(i)).collect();
    text.iter()
        .flat_map(|t| ["PutChunk", "PutChunks"].map(|m| (t, m)))
        .filter_map(|(t, method)| {
            metric(
                t,
                "bigfs_rpc_requests_total",
                &[("service", "bigfs.v1.Node"), ("method", method)],
            )
        })
        .sum()
}

#[test]
fn big_and_small_chunks_of_a_killed_node_are_copied_again_small_ones_batched() {
    let mut c = Cluster::builder(4)
        .replication(2)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .start();
    // Two files of several 1 MiB chunks and 60 small files of one chunk each.
    let mut sizes = vec![3 * MIB + 5, 2 * MIB];
    sizes.extend((0..60).map(|k| KIB + 997 * k));
    let files = c.put_files("/mixed", 300, &sizes);
    let stats = c.wait_files(&files, Some(2), WAIT);
    c.wait_healthy(WAIT);

    let victim = (0..4)
        .max_by_key(|&i| c.disk_chunk_ids(i).len())
        .expect("four nodes");
    let victim_id = c.node_id(victim).to_string();
    let lost: Vec<StatChunk> = stats
        .iter()
        .flat_map(stat_chunks)
        .filter(|ch| ch.replicas.contains(&victim_id))
        .collect();
    let small = lost.iter().filter(|ch| ch.size < 64 * KIB as u64).count();
    assert!(small >= 10, "{victim_id} holds {small} small chunks only");
    let survivors: Vec<usize> = (0..4).filter(|&i| i != victim).collect();
    let calls_before = put_calls(&c, &survivors);

    c.kill_node(victim);
    c.wait_node_state(victim, "dead", WAIT);
    c.wait_healthy_with(WAIT, |_| c.check_all_placed(&files, 2, &[victim]).err());
    c.assert_files(&files);
    // Each copy was confirmed by its source's answer to the order (the target's report may
    // come first, so the answers are waited for).
    c.wait_until(WAIT, "every copy answered as stored", || {
        let answered = metric(
            &c.meta_metrics(),
            "bigfs_meta_repair_copies_answered_total",
            &[("result", "stored")],
        );
        answered.unwrap_or(0.0) >= lost.len() as f64
    });
    // One call per big chunk at most, and small chunks several to a call: fewer calls than
    // copies (each copy has one target at R=2).
    let calls = put_calls(&c, &survivors) - calls_before;
    assert!(
        calls < lost.len() as f64,
        "{calls} put calls for {} copies ({small} small)",
        lost.len()
    );
    c.check_logs();
}

#[test]
fn scrubber_repairs_flipped_truncated_and_deleted_chunks() {
    let c = Cluster::builder(4)
        .replication(3)
        .chunk_size(64 * KIB as u64)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .scrub_interval(Duration::from_secs(1))
        .start();
    let files = c.put_files("/scrub", 200, &[10 * 64 * KIB + 123]);
    let stats = c.wait_files(&files, Some(3), WAIT);
    c.wait_healthy(WAIT);

    // Three different chunks on one node: flip a bit, truncate, delete.
    let victim = 2;
    let victim_id = c.node_id(victim).to_string();
    let on_victim: Vec<String> = stat_chunks(&stats[0])
        .into_iter()
        .filter(|ch| ch.replicas.contains(&victim_id))
        .map(|ch| ch.id)
        .collect();
    assert!(
        on_victim.len() >= 3,
        "{victim_id} holds only {} chunks of the file: {}",
        on_victim.len(),
        stats[0]
    );
    let flipped = c.corrupt_chunk(victim, &on_victim[0]);
    let truncated = c.truncate_chunk(victim, &on_victim[1]);
    c.delete_chunk_file(victim, &on_victim[2]);
    let damaged = Instant::now();

    // No client read from here on until it is healed: only the scrubber can find these.
    c.wait_until(WAIT, "the scrubber quarantined both bad copies", || {
        c.quarantine_holds(victim, &flipped) && c.quarantine_holds(victim, &truncated)
    });
    let quarantined = damaged.elapsed();
    c.wait_healthy_with(WAIT, |_| c.check_all_placed(&files, 3, &[]).err());
    eprintln!(
        "scrubber: bad copies quarantined after {quarantined:.2?}, healed after {:.2?}",
        damaged.elapsed()
    );
    c.assert_files(&files);
    c.check_logs();
}

#[test]
fn stale_copies_of_a_returning_node_are_deleted_and_trimmed() {
    let mut c = Cluster::builder(4)
        .replication(3)
        .chunk_size(64 * KIB as u64)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .gc_grace(GC_GRACE)
        .write_lease(GC_GRACE)
        .start();
    let chunk = c.chunk_size();
    let gone = pseudo_random(300, 8 * chunk);
    let old = pseudo_random(301, 8 * chunk + 5);
    let keep = pseudo_random(302, 6 * chunk - 9);
    for (path, data) in [
        ("/stale/gone", &gone),
        ("/stale/over", &old),
        ("/stale/keep", &keep),
    ] {
        c.must_put_bytes(path, data);
    }
    let all = [
        ("/stale/gone".to_string(), gone.clone()),
        ("/stale/over".to_string(), old.clone()),
        ("/stale/keep".to_string(), keep.clone()),
    ];
    c.wait_files(&all, Some(3), WAIT);

    let victim = 0;
    let stale: BTreeSet<String> = distinct_chunks([&gone[..], &old[..]], chunk)
        .into_keys()
        .filter(|id| c.has_good_copy(victim, id))
        .collect();
    assert!(
        !stale.is_empty(),
        "the victim holds no chunk of the files to change"
    );
    c.kill_node(victim);
    c.wait_node_state(victim, "dead", WAIT);

    // While it is down: one file removed, one overwritten; the rest of the cluster heals and
    // collects the garbage.
    c.must(["rm", "/stale/gone"]);
    let new = pseudo_random(303, 7 * chunk + 77);
    let local = c.write_local("new", &new);
    c.must_put_with(&local, "/stale/over", &["--force"]);
    let current = [
        ("/stale/over".to_string(), new.clone()),
        ("/stale/keep".to_string(), keep.clone()),
    ];
    let live: Vec<usize> = (1..4).collect();
    c.wait_healthy_with(WAIT, |_| {
        c.check_all_placed(&current, 3, &[victim])
            .err()
            .or_else(|| leftover(&c, &stale, &live))
    });

    // It comes back with its old disk: the stale copies go, and the copies of /stale/keep it
    // still has make those chunks over-replicated, which is trimmed back to 3.
    let stale_count = c.disk_chunk_ids(victim).len();
    let returned = Instant::now();
    c.restart_node(victim);
    let referenced = distinct_chunks([&new[..], &keep[..]], chunk);
    c.wait_healthy_with(WAIT, |_| {
        leftover(&c, &stale, &[victim])
            .or_else(|| c.check_all_placed(&current, 3, &[]).err())
            .or_else(|| copies_on_disk(&c, &referenced, 3))
            .or_else(|| {
                let (reported, on_disk) = (c.node_chunks(victim), c.disk_chunk_ids(victim));
                (reported != on_disk.len() as u64).then(|| {
                    format!(
                        "{} reports {reported} chunks, its disk holds {}",
                        c.node_id(victim),
                        on_disk.len()
                    )
                })
            })
    });
    eprintln!(
        "stale copies: {} chunk files on the returning node, {} of them stale; cleaned up \
         {:.2?} after the restart",
        stale_count,
        stale.len(),
        returned.elapsed()
    );
    c.assert_files(&current);
    c.check_logs();
}

/// Which of `chunks` is still on the disk of a node of `nodes`, if any.
fn leftover(c: &Cluster, chunks: &BTreeSet<String>, nodes: &[usize]) -> Option<String> {
    for &i in nodes {
        let on_disk = c.disk_chunk_ids(i);
        let left: Vec<&String> = chunks.intersection(&on_disk).collect();
        if !left.is_empty() {
            return Some(format!(
                "{} still holds {} unreferenced chunks, e.g. {}",
                c.node_id(i),
                left.len(),
                left[0]
            ));
        }
    }
    None
}

/// Whether every chunk of `chunks` has exactly `want` good copies on the nodes' disks.
fn copies_on_disk(c: &Cluster, chunks: &BTreeMap<String, usize>, want: usize) -> Option<String> {
    chunks.keys().find_map(|id| {
        let on = c.good_copies(id);
        (on.len() != want).then(|| {
            format!(
                "chunk {id} has {} copies on disk (nodes {on:?}), expected {want}",
                on.len()
            )
        })
    })
}

#[test]
fn gc_reclaims_space_after_rm_and_overwrite() {
    let c = Cluster::builder(3)
        .replication(3)
        .chunk_size(64 * KIB as u64)
        .gc_grace(GC_GRACE)
        .write_lease(GC_GRACE)
        .start();
    let chunk = c.chunk_size();
    let files = c.put_files("/gc", 400, &[10 * chunk, 10 * chunk - 1, 5 * chunk + 3]);
    c.wait_files(&files, Some(3), WAIT);
    // With R=3 on 3 nodes, every node holds every chunk.
    let all = distinct_chunks(files.iter().map(|(_, d)| &d[..]), chunk);
    c.wait_for(WAIT, "every node reports the three files' chunks", || {
        (0..3).find_map(|i| c.holds_exactly(i, &all))
    });

    c.must(["rm", &files[0].0]);
    let newer = pseudo_random(410, 6 * chunk + 11);
    let local = c.write_local("newer", &newer);
    c.must_put_with(&local, &files[1].0, &["--force"]);
    let left = distinct_chunks([&newer[..], &files[2].1[..]], chunk);
    let took = c.wait_for(
        WAIT,
        "the nodes hold only the chunks still referenced",
        || (0..3).find_map(|i| c.holds_exactly(i, &left)),
    );
    eprintln!("gc: space reclaimed {took:.2?} after the rm and overwrite (gc grace {GC_GRACE:?})");
    assert!(
        took <= GC_GRACE + Duration::from_secs(20),
        "reclaiming took {took:?}, far over the {GC_GRACE:?} grace"
    );
    c.assert_content(&files[1].0, &newer);
    c.assert_content(&files[2].0, &files[2].1);
    c.check_logs();
}

/// Deleted small chunks' space comes back: once the metadata server has had a removed file's
/// needles deleted, every node compacts the volumes they filled, online, and what is still
/// referenced reads back from each node's own disk, before and after a restart.
#[test]
fn volumes_of_deleted_small_chunks_are_compacted() {
    let mut c = Cluster::builder(3)
        .replication(3)
        .chunk_size(64 * KIB as u64)
        .gc_grace(GC_GRACE)
        .write_lease(GC_GRACE)
        .all_node_args(&["--volume-size", "1MiB", "--compact-interval", "1s"])
        .start();
    let chunk = c.chunk_size();
    // 49 chunks of 64 KiB: about 4 volumes of 1 MiB on each node.
    let files = c.put_files("/vol", 500, &[40 * chunk, 8 * chunk + 5]);
    c.wait_files(&files, Some(3), WAIT);
    let gauge = |i: usize, name: &str| metric(&c.metrics(i), name, &[]).unwrap_or(0.0);
    let before: Vec<f64> = (0..3)
        .map(|i| gauge(i, "bigfs_node_volume_bytes"))
        .collect();
    assert!(
        before.iter().all(|&b| b > 3.0 * MIB as f64),
        "volume bytes {before:?}"
    );

    c.must(["rm", &files[0].0]);
    let left = distinct_chunks([&files[1].1[..]], chunk);
    c.wait_for(
        WAIT,
        "the nodes hold only the chunks still referenced",
        || (0..3).find_map(|i| c.holds_exactly(i, &left)),
    );
    let took = c.wait_until(
        WAIT,
        "every node compacted its volumes to under half",
        || {
            (0..3).all(|i| {
                gauge(i, "bigfs_node_volume_compactions_total") >= 1.0
                    && gauge(i, "bigfs_node_volume_bytes") < before[i] / 2.0
            })
        },
    );
    let after: Vec<f64> = (0..3)
        .map(|i| gauge(i, "bigfs_node_volume_bytes"))
        .collect();
    eprintln!("compaction: volume bytes {before:?} -> {after:?} in {took:.2?}");
    c.assert_content(&files[1].0, &files[1].1);
    c.restart_node(0);
    for id in left.keys() {
        assert!(c.has_good_copy(0, id), "{} lost chunk {id}", c.node_id(0));
    }
    c.wait_for(WAIT, "the restarted node reports what it holds", || {
        c.holds_exactly(0, &left)
    });
    c.assert_content(&files[1].0, &files[1].1);
    c.check_logs();
}

/// A node's volumes have index files: restarted after a clean stop (SIGTERM), a node reads no
/// volume byte to find its small chunks; killed (SIGKILL), it reads at most what was written
/// since its last index entries, and serves everything either way.
#[test]
fn a_node_restarted_after_a_clean_stop_reads_no_volume_bytes() {
    let mut c = Cluster::builder(3)
        .replication(3)
        .chunk_size(64 * KIB as u64)
        .all_node_args(&["--volume-size", "1MiB"])
        .start();
    let chunk = c.chunk_size();
    // 49 chunks of 64 KiB: about 4 volumes of 1 MiB on each node.
    let files = c.put_files("/indexed", 600, &[40 * chunk, 8 * chunk + 5]);
    c.wait_files(&files, Some(3), WAIT);
    let scanned = |c: &Cluster, i: usize| {
        metric(&c.metrics(i), "bigfs_node_volume_scanned_bytes_total", &[]).unwrap_or(-1.0)
    };

    c.stop_node(0, WAIT);
    c.restart_node(0);
    assert_eq!(scanned(&c, 0), 0.0, "after a clean stop");
    let held = distinct_chunks(files.iter().map(|(_, data)| &data[..]), chunk);
    c.wait_for(WAIT, "the restarted node reports what it holds", || {
        c.holds_exactly(0, &held)
    });

    // Killed after more puts: the needles appended since the active volume's last fsync (all
    // of them, without --fsync) are scanned, the sealed volumes are not.
    let more = c.put_files("/indexed-more", 700, &[6 * chunk]);
    c.wait_files(&more, Some(3), WAIT);
    c.restart_node(0);
    let read = scanned(&c, 0);
    assert!(
        read > 0.0 && read <= MIB as f64,
        "after SIGKILL, scanned {read} bytes: none, or more than the active volume"
    );
    let all: Vec<_> = files.iter().chain(&more).collect();
    let held = distinct_chunks(all.iter().map(|(_, data)| &data[..]), chunk);
    c.wait_for(WAIT, "the killed node reports what it holds", || {
        c.holds_exactly(0, &held)
    });
    for (path, data) in all {
        c.assert_content(path, data);
    }
    c.check_logs();
}

/// Putting back what was just deleted: the nodes stored those chunks, deleted them on the
/// metadata server's order, and now store them again. Their acks are not trusted until their
/// own heartbeats report the new copies (an ack may predate the delete), so the first commit
/// finds every chunk short; the put must still succeed, from a file and from stdin.
#[test]
fn content_deleted_by_gc_can_be_put_again() {
    let c = Cluster::builder(3)
        .replication(2)
        .chunk_size(64 * KIB as u64)
        .gc_grace(GC_GRACE)
        .write_lease(GC_GRACE)
        .start();
    let chunk = c.chunk_size();
    // One chunk three times over, so that a resend meets the same chunk more than once.
    let mut data = pseudo_random(421, chunk).repeat(3);
    data.extend(pseudo_random(420, 3 * chunk + 11));
    let ids: BTreeSet<String> = distinct_chunks([&data[..]], chunk).into_keys().collect();
    let nodes: Vec<usize> = (0..3).collect();
    let put_back_after_gc = |path: &str, how: &str| {
        c.must(["rm", path]);
        c.wait_for(WAIT, "the nodes delete the removed file's chunks", || {
            leftover(&c, &ids, &nodes)
        });
        let out = match how {
            "file" => {
                let local = c.write_local("again", &data);
                c.bigfs(["put".as_ref(), local.as_os_str(), path.as_ref()])
            }
            _ => c.bigfs_stdin(["put", "-", path], &data),
        };
        assert!(
            out.status.success(),
            "put from {how} of deleted content failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.assert_content(path, &data);
    };
    c.must_put_bytes("/again/file", &data);
    put_back_after_gc("/again/file", "file");
    put_back_after_gc("/again/file", "stdin");
    c.wait_files(&[("/again/file".to_string(), data.clone())], Some(2), WAIT);
    c.check_logs();
}

#[test]
fn drained_node_can_be_removed() {
    let mut c = Cluster::builder(4)
        .replication(3)
        .chunk_size(256 * KIB as u64)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .start();
    let mut files = c.put_files("/drain", 500, &[MIB, MIB + 100 * KIB, 700 * KIB]);
    c.wait_files(&files, Some(3), WAIT);

    let victim = 0;
    let started = Instant::now();
    c.drain_node(victim);
    let state = c.node_state(victim);
    assert!(
        matches!(state.as_deref(), Some("draining" | "drained")),
        "after `node drain`, {} is {state:?}",
        c.node_id(victim)
    );
    // A restarted metadata server goes on draining it.
    c.restart_meta();
    let state = c.node_state(victim);
    assert!(
        matches!(state.as_deref(), Some("draining" | "drained")),
        "after a restart of the metadata server, {} is {state:?}",
        c.node_id(victim)
    );
    // A draining node takes no new chunks.
    let during = pseudo_random(510, MIB + 3);
    c.must_put_bytes("/drain/during", &during);
    let stat = c.stat_json("/drain/during");
    for ch in stat_chunks(&stat) {
        assert!(
            !ch.replicas.iter().any(|r| r == c.node_id(victim)),
            "a chunk put while {} drains was placed on it: {stat}",
            c.node_id(victim)
        );
    }
    files.push(("/drain/during".to_string(), during));

    c.wait_node_state(victim, "drained", WAIT);
    let drained = started.elapsed();
    // Drained means: every chunk has its R copies without the node.
    for (path, data) in &files {
        let stat = c.stat_json(path);
        c.check_stat(&stat, path, data, None)
            .unwrap_or_else(|e| c.fail(&e));
        for (index, ch) in stat_chunks(&stat).iter().enumerate() {
            let elsewhere: Vec<&String> = ch
                .replicas
                .iter()
                .filter(|r| r.as_str() != c.node_id(victim))
                .collect();
            let good = elsewhere
                .iter()
                .filter(|r| c.has_good_copy(c.node_index(r), &ch.id))
                .count();
            assert!(
                good >= 3,
                "{} is drained but chunk {index} of {path} has {good} good copies elsewhere: {stat}",
                c.node_id(victim)
            );
        }
    }

    c.kill_node(victim);
    let fsck = c.fsck_json();
    assert_eq!(
        fsck["missing"], 0,
        "chunks went missing when the drained node was removed: {fsck}"
    );
    c.assert_files(&files);
    c.wait_healthy(WAIT);
    eprintln!("drain: drained after {drained:.2?}");
    c.check_logs();
}

/// A put that runs longer than the write lease renews its chunks' leases: standard input that
/// pauses for several leases and grace periods after its first chunks were stored still
/// commits, with those chunks. (Collected meanwhile, they could not be sent again: standard
/// input cannot be re-read.)
#[test]
fn a_put_slower_than_the_write_lease_keeps_its_chunks() {
    let lease = Duration::from_secs(1);
    let c = Cluster::builder(3)
        .replication(2)
        .chunk_size(64 * KIB as u64)
        .gc_grace(lease)
        .write_lease(lease)
        .start();
    let chunk = c.chunk_size();
    let data = pseudo_random(310, 12 * chunk + 5);
    let (first, rest) = data.split_at(8 * chunk);
    let (first, rest) = (first.to_vec(), rest.to_vec());
    let (go, wait_for_go) = mpsc::channel::<()>();
    let feed: Feed = Box::new(move |mut stdin| {
        stdin.write_all(&first).unwrap();
        // Until the test has seen the first chunks outlive several leases.
        let _ = wait_for_go.recv();
        let _ = stdin.write_all(&rest);
    });
    let mut cmd = cli_command(Some(&c.meta_url()), ["put", "-", "/slow"]);
    let put = std::thread::spawn(move || run_feeding(&mut cmd, Some(feed), CLI_TIMEOUT));

    let first_chunk = blake3::hash(&data[..chunk]).to_hex().to_string();
    c.wait_until(WAIT, "the first chunk is stored twice", || {
        c.good_copies(&first_chunk).len() == 2
    });
    // Without renewals the chunks would be deleted a lease, a grace period, a collection and a
    // heartbeat after they were handed out: about 3 s.
    std::thread::sleep(5 * lease);
    let copies = c.good_copies(&first_chunk);
    go.send(()).unwrap();
    let out = put.join().unwrap().unwrap_or_else(|e| c.fail(&e));
    assert_eq!(
        copies.len(),
        2,
        "the put's first chunk lost copies while the put was running"
    );
    assert!(
        out.status.success(),
        "put failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.assert_content("/slow", &data);
    c.check_logs();
}
