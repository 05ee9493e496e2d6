use super::*;

const SEC: Duration = Duration::from_secs(1);

fn config() -> ClusterConfig {
    ClusterConfig {
        replication: 3,
        min_replicas: 2,
        heartbeat_timeout: 10 * SEC,
        gc_grace: 30 * SEC,
        write_lease: 600 * SEC,
        safe_mode_timeout: 60 * SEC,
        repair_concurrency: 4,
        chunk_size: 100,
    }
}

fn usage() -> NodeUsage {
    NodeUsage {
        capacity: 1 << 30,
        used: 0,
        chunks: 0,
    }
}

fn cluster(nodes: usize, t0: Instant) -> Cluster {
    let mut c = Cluster::new(config(), vec![], t0);
    for i in 0..nodes {
        let id = format!("n{i}");
        c.register(&id, &format!("http://{id}"), usage(), vec![], |_| 0, t0);
    }
    c
}

fn want(id: ChunkId) -> Want {
    Want {
        id,
        size: 100,
        exclude: vec![],
        copies: 0,
    }
}

/// A commit of `chunks` whose transaction ran.
fn committed(c: &mut Cluster, chunks: &[ChunkId], wanted: impl Fn(&ChunkId) -> u32, now: Instant) {
    let hold = c.begin_commit(chunks.to_vec());
    c.committed(hold, wanted, now);
}

fn beat(
    c: &mut Cluster,
    id: &str,
    added: Vec<ChunkId>,
    removed: Vec<ChunkId>,
    now: Instant,
) -> Vec<ChunkId> {
    let beat = Beat {
        usage: usage(),
        added,
        removed,
        ..Beat::default()
    };
    c.heartbeat(id, beat, |_| 0, now)
        .expect("known node")
        .deletes
}

/// A heartbeat in which `node` reports its copy of `chunk` corrupt.
fn report_corrupt(c: &mut Cluster, node: &str, chunk: ChunkId, now: Instant) {
    let beat = Beat {
        usage: usage(),
        corrupt: vec![chunk],
        ..Beat::default()
    };
    c.heartbeat(node, beat, |_| 3, now).expect("known node");
}

fn ids(targets: &[NodeRef]) -> Vec<String> {
    targets.iter().map(|node| node.id.clone()).collect()
}

/// Allocates `chunk`, "stores" it on every target and commits it; returns the holders.
fn store_and_commit(c: &mut Cluster, chunk: ChunkId, now: Instant) -> Vec<String> {
    let alloc = c.allocate(&[want(chunk)], 3, now).unwrap().remove(0);
    let holders = ids(&alloc.targets);
    assert!(c
        .check_commit(&[(chunk, holders.clone())], 2, now)
        .is_empty());
    committed(c, &[chunk], |_| 1, now);
    holders
}

#[test]
fn allocation_picks_r_distinct_alive_nodes() {
    let t0 = Instant::now();
    let mut c = cluster(4, t0);
    let chunk = ChunkId::of(b"c");
    let alloc = c.allocate(&[want(chunk)], 3, t0).unwrap().remove(0);
    assert!(!alloc.already_stored);
    let mut t = ids(&alloc.targets);
    t.sort();
    t.dedup();
    assert_eq!(t.len(), 3);

    // Excluded and dead nodes are skipped.
    let excluded = Want {
        exclude: vec![t[0].clone()],
        ..want(chunk)
    };
    let alloc = c.allocate(&[excluded], 3, t0).unwrap().remove(0);
    assert!(!ids(&alloc.targets).contains(&t[0]));
}

#[test]
fn too_few_live_nodes_is_a_clear_error() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let later = t0 + 11 * SEC;
    beat(&mut c, "n0", vec![], vec![], later);
    let err = c
        .allocate(&[want(ChunkId::of(b"x"))], 3, later)
        .unwrap_err();
    assert!(
        matches!(err, MetaError::NotEnoughNodes { need: 2, usable: 1 }),
        "{err}"
    );
    // One replica is enough for a file that asks for one.
    assert!(c.allocate(&[want(ChunkId::of(b"x"))], 1, later).is_ok());
}

#[test]
fn full_nodes_take_no_new_chunks() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let full = NodeUsage {
        capacity: 1000,
        used: 950,
        chunks: 9,
    };
    let beat = Beat {
        usage: full,
        ..Beat::default()
    };
    c.heartbeat("n1", beat, |_| 0, t0).unwrap();
    for n in 0..50u32 {
        let alloc = c
            .allocate(&[want(ChunkId::of(&n.to_le_bytes()))], 3, t0)
            .unwrap();
        assert!(!ids(&alloc[0].targets).contains(&"n1".to_string()));
        assert_eq!(alloc[0].targets.len(), 2);
    }
}

#[test]
fn commit_counts_live_copies_and_dedup_skips_stored_chunks() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"data");
    // Only one ack: short.
    assert_eq!(
        c.check_commit(&[(chunk, vec!["n0".into()])], 2, t0),
        vec![chunk]
    );
    // Unknown nodes do not count.
    assert_eq!(
        c.check_commit(&[(chunk, vec!["ghost".into()])], 2, t0),
        vec![chunk]
    );
    assert!(c
        .check_commit(&[(chunk, vec!["n1".into()])], 2, t0)
        .is_empty());
    committed(&mut c, &[chunk], |_| 1, t0);

    let mut holders = ids(&c.read_locations(&chunk, 0, t0));
    holders.sort();
    assert_eq!(holders, ["n0", "n1"]);

    // Two copies of three: a new put must add the third, not skip the chunk.
    let alloc = c.allocate(&[want(chunk)], 3, t0).unwrap().remove(0);
    assert!(!alloc.already_stored);
    assert_eq!(ids(&alloc.targets), ["n2"]);
    c.check_commit(&[(chunk, vec!["n2".into()])], 2, t0);
    let alloc = c.allocate(&[want(chunk)], 3, t0).unwrap().remove(0);
    assert!(alloc.already_stored);
    assert_eq!(alloc.targets.len(), 3);
}

#[test]
fn dead_nodes_copies_stop_counting_and_suspect_ones_read_last() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"d");
    store_and_commit(&mut c, chunk, t0);

    let t1 = t0 + 6 * SEC;
    beat(&mut c, "n0", vec![], vec![], t1);
    beat(&mut c, "n1", vec![], vec![], t1);
    let states: Vec<_> = c.nodes(t1).iter().map(|n| n.state).collect();
    assert_eq!(
        states,
        [NodeState::Alive, NodeState::Alive, NodeState::Suspect]
    );
    assert_eq!(ids(&c.read_locations(&chunk, 0, t1)).last().unwrap(), "n2");

    let t2 = t0 + 11 * SEC;
    beat(&mut c, "n0", vec![], vec![], t2);
    beat(&mut c, "n1", vec![], vec![], t2);
    assert_eq!(c.nodes(t2)[2].state, NodeState::Dead);
    assert_eq!(c.read_locations(&chunk, 0, t2).len(), 2);
    // Two live copies still satisfy W=2; one would not.
    assert!(c.check_commit(&[(chunk, vec![])], 2, t2).is_empty());
    assert_eq!(c.check_commit(&[(chunk, vec![])], 3, t2), vec![chunk]);
}

#[test]
fn freed_chunks_are_deleted_after_the_grace_period() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"gone");
    let holders = store_and_commit(&mut c, chunk, t0);
    c.freed(&[chunk], t0);

    c.collect_garbage(|_| 0, t0 + 29 * SEC);
    assert!(beat(&mut c, &holders[0], vec![], vec![], t0 + 29 * SEC).is_empty());

    let t1 = t0 + 31 * SEC;
    c.collect_garbage(|_| 0, t1);
    for id in &holders {
        assert_eq!(beat(&mut c, id, vec![], vec![], t1), vec![chunk]);
    }
    // In flight: the copies no longer count.
    assert!(c.read_locations(&chunk, 0, t1).is_empty());
    // The nodes confirm.
    for id in &holders {
        assert!(beat(&mut c, id, vec![], vec![chunk], t1 + SEC).is_empty());
    }
    assert!(c.read_locations(&chunk, 0, t1 + SEC).is_empty());
}

#[test]
fn referenced_chunks_are_never_deleted() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"kept");
    let holders = store_and_commit(&mut c, chunk, t0);
    // Freed by one file but referenced again by another (the check is made at deletion time).
    c.freed(&[chunk], t0);
    c.collect_garbage(|_| 3, t0 + 31 * SEC);
    assert!(beat(&mut c, &holders[0], vec![], vec![], t0 + 31 * SEC).is_empty());
}

#[test]
fn a_new_allocation_cancels_queued_deletes_and_in_flight_ones_make_acks_untrusted() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"revived");
    let holders = store_and_commit(&mut c, chunk, t0);
    c.freed(&[chunk], t0);
    let t1 = t0 + 31 * SEC;
    for id in &holders {
        beat(&mut c, id, vec![], vec![], t1);
    }
    c.collect_garbage(|_| 0, t1);

    // The delete reached the first holder only; the others are still queued.
    assert_eq!(beat(&mut c, &holders[0], vec![], vec![], t1), vec![chunk]);

    // A put of the same bytes: queued deletes are cancelled, the in-flight one is not.
    let alloc = c.allocate(&[want(chunk)], 3, t1).unwrap().remove(0);
    assert!(
        !alloc.already_stored,
        "a copy being deleted must not make the chunk look stored"
    );
    assert_eq!(ids(&alloc.targets), vec![holders[0].clone()]);
    for id in &holders[1..] {
        assert!(beat(&mut c, id, vec![], vec![], t1).is_empty());
    }
    // The first holder acks the new write before its delete lands: the ack does not count.
    assert!(c
        .check_commit(&[(chunk, vec![holders[0].clone()])], 3, t1)
        .contains(&chunk));
    // It carries out the delete and reports it. The same ack still does not count (it may
    // predate the delete); the node's own report of the rewritten copy does.
    beat(&mut c, &holders[0], vec![], vec![chunk], t1 + SEC);
    assert!(c
        .check_commit(&[(chunk, vec![holders[0].clone()])], 3, t1 + SEC)
        .contains(&chunk));
    beat(&mut c, &holders[0], vec![chunk], vec![], t1 + 2 * SEC);
    assert!(c
        .check_commit(&[(chunk, vec![holders[0].clone()])], 3, t1 + 2 * SEC)
        .is_empty());
}

#[test]
fn a_stale_ack_never_brings_back_a_deleted_copy() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"slow put");
    // A put is handed the chunk and stores it everywhere, then stalls past its lease.
    c.allocate(&[want(chunk)], 3, t0).unwrap();
    for id in ["n0", "n1", "n2"] {
        beat(&mut c, id, vec![chunk], vec![], t0);
    }
    let t1 = t0 + 601 * SEC;
    for id in ["n0", "n1", "n2"] {
        beat(&mut c, id, vec![], vec![], t1);
    }
    c.collect_garbage(|_| 0, t1);
    let t2 = t1 + 31 * SEC;
    c.collect_garbage(|_| 0, t2);
    for id in ["n0", "n1", "n2"] {
        assert_eq!(beat(&mut c, id, vec![], vec![], t2), vec![chunk]);
        beat(&mut c, id, vec![], vec![chunk], t2 + SEC);
    }
    // The put finally commits, naming the nodes that acked long ago: refused, not a phantom.
    let acks = vec!["n0".to_string(), "n1".to_string(), "n2".to_string()];
    assert_eq!(c.check_commit(&[(chunk, acks)], 2, t2 + SEC), vec![chunk]);
    assert!(c.read_locations(&chunk, 0, t2 + SEC).is_empty());
}

#[test]
fn a_delete_the_node_did_not_confirm_is_sent_again() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let orphan = ChunkId::of(b"lost reply");
    beat(&mut c, "n0", vec![orphan], vec![], t0);
    let t1 = t0 + 31 * SEC;
    for id in ["n1", "n2"] {
        beat(&mut c, id, vec![], vec![], t1);
    }
    c.collect_garbage(|_| 0, t1);
    assert_eq!(beat(&mut c, "n0", vec![], vec![], t1), vec![orphan]);
    // That reply never arrived: the next beat does not confirm the delete, so its reply
    // carries it again; once confirmed, it is not sent any more.
    assert_eq!(beat(&mut c, "n0", vec![], vec![], t1 + SEC), vec![orphan]);
    assert!(beat(&mut c, "n0", vec![], vec![orphan], t1 + 2 * SEC).is_empty());
    assert!(beat(&mut c, "n0", vec![], vec![], t1 + 3 * SEC).is_empty());
}

#[test]
fn existing_copies_count_towards_a_new_put() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"half there");
    c.check_commit(&[(chunk, vec!["n0".into(), "n1".into()])], 2, t0);
    let alloc = c.allocate(&[want(chunk)], 3, t0).unwrap().remove(0);
    assert!(!alloc.already_stored);
    let mut holders = ids(&alloc.holders);
    holders.sort();
    assert_eq!(holders, ["n0", "n1"]);
    assert_eq!(ids(&alloc.targets), ["n2"]);
}

#[test]
fn orphans_are_deleted_after_grace_and_leases_protect_puts_in_progress() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let orphan = ChunkId::of(b"orphan");
    let leased = ChunkId::of(b"leased");
    c.allocate(&[want(leased)], 3, t0).unwrap();
    beat(&mut c, "n0", vec![orphan, leased], vec![], t0);

    let t1 = t0 + 31 * SEC;
    c.collect_garbage(|_| 0, t1);
    assert_eq!(beat(&mut c, "n0", vec![], vec![], t1), vec![orphan]);
    beat(&mut c, "n0", vec![], vec![orphan], t1 + SEC);

    // The lease ran out and the put never committed: the chunk is an orphan now, deleted after
    // the grace period counted from then.
    let t2 = t0 + 601 * SEC;
    c.collect_garbage(|_| 0, t2);
    assert!(beat(&mut c, "n0", vec![], vec![], t2).is_empty());
    let t3 = t2 + 31 * SEC;
    c.collect_garbage(|_| 0, t3);
    assert_eq!(beat(&mut c, "n0", vec![], vec![], t3), vec![leased]);
}

/// A commit's transaction runs outside the cluster lock: its chunks are held until its outcome
/// is recorded, though their lease and then the grace run out meanwhile and the namespace does
/// not count the commit's references yet.
#[test]
fn chunks_of_a_commit_under_way_are_held_past_their_lease_and_grace() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"committing");
    c.allocate(&[want(chunk)], 3, t0).unwrap();
    beat(&mut c, "n0", vec![chunk], vec![], t0);
    let hold = c.begin_commit(vec![chunk]);
    let t1 = t0 + 601 * SEC;
    c.collect_garbage(|_| 0, t1);
    let t2 = t1 + 31 * SEC;
    c.collect_garbage(|_| 0, t2);
    assert!(beat(&mut c, "n0", vec![], vec![], t2).is_empty());

    // The file was removed before the outcome was recorded: the chunk is garbage again, after
    // a grace counted from now.
    c.committed(hold, |_| 0, t2);
    c.collect_garbage(|_| 0, t2 + 29 * SEC);
    assert!(beat(&mut c, "n0", vec![], vec![], t2 + 29 * SEC).is_empty());
    c.collect_garbage(|_| 0, t2 + 31 * SEC);
    assert_eq!(
        beat(&mut c, "n0", vec![], vec![], t2 + 31 * SEC),
        vec![chunk]
    );
}

/// A commit left on any path without its outcome recorded (an error returned early, a panic, a
/// cancelled future) releases its hold when the hold is dropped, and its chunks get a fresh
/// lease at the next collection, then expire like an abandoned put's: never held for ever.
#[test]
fn a_commit_hold_dropped_without_an_outcome_releases_its_chunks() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let dropped = ChunkId::of(b"dropped");
    let panicked = ChunkId::of(b"panicked");
    beat(&mut c, "n0", vec![dropped, panicked], vec![], t0);
    let hold = c.begin_commit(vec![dropped]);
    assert!(c.is_committing(&dropped));
    drop(hold);
    assert!(!c.is_committing(&dropped));
    let mutex = std::sync::Mutex::new(c);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _hold = bigfs_proto::lock::lock(&mutex).begin_commit(vec![panicked]);
        panic!("the transaction panicked");
    }));
    assert!(unwound.is_err());
    let mut c = mutex.into_inner().unwrap();
    assert!(!c.is_committing(&panicked));
    // Leased afresh at the next collection (their leases ran out while held), then collected.
    let t1 = t0 + 601 * SEC;
    c.collect_garbage(|_| 0, t1);
    c.collect_garbage(|_| 0, t1 + 31 * SEC);
    assert!(beat(&mut c, "n0", vec![], vec![], t1 + 31 * SEC).is_empty());
    let t2 = t1 + 601 * SEC;
    c.collect_garbage(|_| 0, t2);
    c.collect_garbage(|_| 0, t2 + 31 * SEC);
    let mut deleted = beat(&mut c, "n0", vec![], vec![], t2 + 31 * SEC);
    deleted.sort();
    let mut both = vec![dropped, panicked];
    both.sort();
    assert_eq!(deleted, both);
}

/// A chunk freed again restarts its grace: the start of an earlier one (left behind when the
/// chunk was referenced again without the cluster seeing it) does not shorten the new one.
#[test]
fn a_chunk_freed_again_restarts_its_grace() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"freed twice");
    committed(&mut c, &[chunk], |_| 1, t0);
    beat(&mut c, "n0", vec![chunk], vec![], t0);
    // Freed by a removal whose `freed` lands after a new commit of the chunk recorded its
    // outcome: the entry is stale, the chunk is referenced.
    c.freed(&[chunk], t0);
    // Its new file is removed 25 s later: a full grace from then.
    let t1 = t0 + 25 * SEC;
    c.freed(&[chunk], t1);
    c.collect_garbage(|_| 0, t0 + 31 * SEC);
    assert!(beat(&mut c, "n0", vec![], vec![], t0 + 31 * SEC).is_empty());
    c.collect_garbage(|_| 0, t1 + 31 * SEC);
    assert_eq!(
        beat(&mut c, "n0", vec![], vec![], t1 + 31 * SEC),
        vec![chunk]
    );
}

/// A commit whose transaction failed leaves its chunks to expire like an abandoned put's.
#[test]
fn a_failed_commit_gives_its_chunks_a_fresh_lease() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"failed");
    beat(&mut c, "n0", vec![chunk], vec![], t0);
    let hold = c.begin_commit(vec![chunk]);
    let t1 = t0 + 601 * SEC;
    c.commit_failed(hold, t1);
    c.collect_garbage(|_| 0, t1 + 31 * SEC);
    assert!(beat(&mut c, "n0", vec![], vec![], t1 + 31 * SEC).is_empty());
    let t2 = t1 + 601 * SEC;
    c.collect_garbage(|_| 0, t2);
    c.collect_garbage(|_| 0, t2 + 31 * SEC);
    assert_eq!(
        beat(&mut c, "n0", vec![], vec![], t2 + 31 * SEC),
        vec![chunk]
    );
}

#[test]
fn safe_mode_defers_deletes_until_known_nodes_report() {
    let t0 = Instant::now();
    let mut c = Cluster::new(config(), vec!["n0".into(), "n1".into()], t0);
    assert!(c.in_safe_mode());
    let orphan = ChunkId::of(b"o");
    c.register("n0", "http://n0", usage(), vec![orphan], |_| 0, t0);
    c.collect_garbage(|_| 0, t0 + 40 * SEC);
    assert!(beat(&mut c, "n0", vec![], vec![], t0 + 40 * SEC).is_empty());
    assert!(c.in_safe_mode());

    c.register("n1", "http://n1", usage(), vec![], |_| 0, t0 + 41 * SEC);
    assert!(!c.in_safe_mode());
    // Safe mode is over, but a put that was in progress before the restart may still hold the
    // chunk: it goes only once that put's lease would have run out.
    c.collect_garbage(|_| 0, t0 + 41 * SEC);
    assert!(beat(&mut c, "n0", vec![], vec![], t0 + 41 * SEC).is_empty());
    let t1 = t0 + 601 * SEC;
    beat(&mut c, "n1", vec![], vec![], t1);
    c.collect_garbage(|_| 0, t1);
    assert_eq!(beat(&mut c, "n0", vec![], vec![], t1), vec![orphan]);
}

#[test]
fn safe_mode_ends_on_timeout() {
    let t0 = Instant::now();
    let mut c = Cluster::new(config(), vec!["n0".into(), "gone".into()], t0);
    c.register("n0", "http://n0", usage(), vec![], |_| 0, t0);
    c.collect_garbage(|_| 0, t0 + 59 * SEC);
    assert!(c.in_safe_mode());
    c.collect_garbage(|_| 0, t0 + 61 * SEC);
    assert!(!c.in_safe_mode());
}

#[test]
fn unknown_nodes_are_asked_to_register_and_reports_replace_old_state() {
    let t0 = Instant::now();
    let mut c = cluster(1, t0);
    assert!(c
        .heartbeat("stranger", Beat::default(), |_| 0, t0)
        .is_none());
    let a = ChunkId::of(b"a");
    let b = ChunkId::of(b"b");
    beat(&mut c, "n0", vec![a], vec![], t0);
    c.register("n0", "http://n0", usage(), vec![b], |_| 3, t0);
    assert!(c.read_locations(&a, 0, t0).is_empty());
    assert_eq!(c.read_locations(&b, 0, t0).len(), 1);
}

#[test]
fn corrupt_and_reported_bad_copies_are_dropped() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"rot");
    let holders = store_and_commit(&mut c, chunk, t0);
    report_corrupt(&mut c, &holders[0], chunk, t0);
    c.report_bad(&chunk, &holders[1]).unwrap();
    assert_eq!(
        ids(&c.read_locations(&chunk, 0, t0)),
        vec![holders[2].clone()]
    );
    assert!(matches!(
        c.report_bad(&chunk, "ghost"),
        Err(MetaError::UnknownNode(_))
    ));
}

fn commands(c: &mut Cluster, id: &str, added: Vec<ChunkId>, now: Instant) -> Commands {
    let beat = Beat {
        usage: usage(),
        added,
        ..Beat::default()
    };
    c.heartbeat(id, beat, |_| 3, now).expect("known node")
}

/// Commits `chunks`, each with copies on `nodes`.
fn commit_on(c: &mut Cluster, chunks: &[ChunkId], nodes: &[&str], now: Instant) {
    let acks: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    for &chunk in chunks {
        c.check_commit(&[(chunk, acks.clone())], 1, now);
    }
    committed(c, chunks, |_| 1, now);
}

/// A source's answer: the copy is on `targets`.
fn stored(targets: Vec<String>) -> CopyAnswer {
    CopyAnswer {
        stored: targets,
        ..CopyAnswer::default()
    }
}

/// The copy orders planned so far, with their source nodes.
fn orders(c: &mut Cluster) -> Vec<(String, Replication)> {
    c.take_orders()
        .into_iter()
        .flat_map(|batch| {
            let source = batch.source.id;
            batch.orders.into_iter().map(move |r| (source.clone(), r))
        })
        .collect()
}

/// Heartbeats from every node but `except`, at `now`.
fn beat_all_but(
    c: &mut Cluster,
    nodes: usize,
    except: &str,
    now: Instant,
) -> Vec<(String, Commands)> {
    (0..nodes)
        .map(|i| format!("n{i}"))
        .filter(|id| id != except)
        .map(|id| {
            let cmds = commands(c, &id, vec![], now);
            (id, cmds)
        })
        .collect()
}

#[test]
fn a_dead_nodes_chunks_are_copied_to_new_nodes_fewest_copies_first() {
    let t0 = Instant::now();
    let mut c = cluster(5, t0);
    let one = ChunkId::of(b"one copy left");
    let two = ChunkId::of(b"two copies left");
    // `one` lives on n0 and n1; `two` on n0, n2, n3.
    c.check_commit(&[(one, vec!["n0".into(), "n1".into()])], 2, t0);
    c.check_commit(&[(two, vec!["n0".into(), "n2".into(), "n3".into()])], 2, t0);
    committed(&mut c, &[one, two], |_| 1, t0);
    c.plan_repairs(|_| 3, t0);
    // `one` had 2 of 3 at once: its repair is already ordered.
    assert_eq!(orders(&mut c).len(), 1);

    // n0 dies.
    let t1 = t0 + 11 * SEC;
    beat_all_but(&mut c, 5, "n0", t1);
    c.plan_repairs(|_| 3, t1);
    for (source, order) in &orders(&mut c) {
        let holders = if order.chunk == one {
            vec!["n1"]
        } else {
            vec!["n2", "n3"]
        };
        assert!(
            holders.contains(&source.as_str()),
            "{source} does not hold {:?}",
            order.chunk
        );
        for target in &order.targets {
            assert!(target.id != "n0" && !holders.contains(&target.id.as_str()));
        }
    }
    // Exactly the shortfall is in flight: two copies of `one` (one live copy left), one of
    // `two` (orders made before n0 died and involving it were dropped and planned again).
    let in_flight = |c: &Cluster, chunk: ChunkId| c.repairs.get(&chunk).map_or(0, Vec::len);
    assert_eq!(in_flight(&c, one), 2);
    assert_eq!(in_flight(&c, two), 1);

    // Every target reports its new copy.
    let t2 = t1 + SEC;
    let confirmations: Vec<(String, ChunkId)> = c
        .repairs
        .iter()
        .flat_map(|(chunk, rs)| rs.iter().map(move |r| (r.target, *chunk)))
        .map(|(target, chunk)| (c.nodes[target as usize].id.clone(), chunk))
        .collect();
    for (target, chunk) in confirmations {
        assert_ne!(target, "n0");
        commands(&mut c, &target, vec![chunk], t2);
    }
    beat_all_but(&mut c, 5, "n0", t2);
    c.plan_repairs(|_| 3, t2);
    assert_eq!(c.repairs_in_flight(), 0);
    for chunk in [one, two] {
        let (live, health, _) = c.classify(&chunk, 3, t2);
        assert!(live >= 3, "{chunk:?} has {live}");
        assert_eq!(health, ChunkHealth::Healthy);
    }
}

#[test]
fn unconfirmed_copies_are_planned_again_after_the_timeout() {
    let t0 = Instant::now();
    let mut c = cluster(4, t0);
    let chunk = ChunkId::of(b"lonely");
    c.check_commit(&[(chunk, vec!["n0".into(), "n1".into()])], 2, t0);
    committed(&mut c, &[chunk], |_| 1, t0);
    c.plan_repairs(|_| 3, t0);
    assert_eq!(c.repairs_in_flight(), 1);
    // Nobody confirms within the timeout.
    let t1 = t0 + REPAIR_TIMEOUT + SEC;
    beat_all_but(&mut c, 4, "", t1);
    c.plan_repairs(|_| 3, t1);
    assert_eq!(c.repairs_in_flight(), 1, "re-planned, not dropped");
}

#[test]
fn repairs_are_bounded_per_node() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunks: Vec<ChunkId> = (0..20u32).map(|n| ChunkId::of(&n.to_le_bytes())).collect();
    for chunk in &chunks {
        c.check_commit(&[(*chunk, vec!["n0".into(), "n1".into()])], 2, t0);
    }
    committed(&mut c, &chunks, |_| 1, t0);
    c.plan_repairs(|_| 3, t0);
    // Every copy goes to n2, which takes at most 4 at once.
    assert_eq!(c.repairs_in_flight(), 4);
    assert_eq!(c.nodes[2].repairs_as_target, 4);
}

#[test]
fn a_returning_node_makes_extra_copies_which_are_trimmed() {
    let t0 = Instant::now();
    let mut c = cluster(4, t0);
    let chunk = ChunkId::of(b"trim me");
    c.check_commit(
        &[(
            chunk,
            vec!["n0".into(), "n1".into(), "n2".into(), "n3".into()],
        )],
        2,
        t0,
    );
    committed(&mut c, &[chunk], |_| 1, t0);
    c.plan_repairs(|_| 3, t0);
    let deletes: Vec<String> = beat_all_but(&mut c, 4, "", t0)
        .into_iter()
        .filter(|(_, cmds)| cmds.deletes.contains(&chunk))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(deletes.len(), 1, "exactly one extra copy goes");
    let (live, health, _) = c.classify(&chunk, 3, t0);
    assert_eq!((live, health), (3, ChunkHealth::Healthy));
}

#[test]
fn the_last_copy_is_never_trimmed_and_missing_chunks_are_reported() {
    let t0 = Instant::now();
    let mut c = cluster(2, t0);
    let chunk = ChunkId::of(b"only");
    c.check_commit(&[(chunk, vec!["n0".into()])], 1, t0);
    committed(&mut c, &[chunk], |_| 1, t0);
    // It wants 1 copy and has 1: nothing to do.
    c.plan_repairs(|_| 1, t0);
    assert!(beat_all_but(&mut c, 2, "", t0)
        .iter()
        .all(|(_, cmds)| cmds.deletes.is_empty()));
    assert!(orders(&mut c).is_empty());
    // Its only holder dies: missing, and there is nothing to copy from.
    let t1 = t0 + 11 * SEC;
    commands(&mut c, "n1", vec![], t1);
    c.plan_repairs(|_| 1, t1);
    assert_eq!(c.classify(&chunk, 1, t1).1, ChunkHealth::Missing);
    assert_eq!(c.repairs_in_flight(), 0);
}

#[test]
fn draining_copies_chunks_away_then_reports_drained() {
    let t0 = Instant::now();
    let mut c = cluster(4, t0);
    let chunk = ChunkId::of(b"moving out");
    c.check_commit(
        &[(chunk, vec!["n0".into(), "n1".into(), "n2".into()])],
        2,
        t0,
    );
    committed(&mut c, &[chunk], |_| 1, t0);
    c.plan_repairs(|_| 3, t0);
    assert_eq!(c.repairs_in_flight(), 0);

    assert_eq!(c.drain("n0", |_| 3, t0).unwrap(), 1);
    assert!(matches!(
        c.drain("ghost", |_| 3, t0),
        Err(MetaError::UnknownNode(_))
    ));
    c.plan_repairs(|_| 3, t0);
    let view = |c: &Cluster| c.nodes(t0).into_iter().find(|n| n.id == "n0").unwrap();
    assert_eq!(view(&c).state_name(), "draining");
    // The copy goes to n3, the only node not holding it; never to the draining node.
    let orders = orders(&mut c);
    assert_eq!(orders.len(), 1);
    assert_eq!(ids(&orders[0].1.targets), ["n3"]);
    // Allocation skips the draining node too.
    let alloc = c.allocate(&[want(ChunkId::of(b"new"))], 3, t0).unwrap();
    assert!(!ids(&alloc[0].targets).contains(&"n0".to_string()));

    commands(&mut c, "n3", vec![chunk], t0 + SEC);
    c.plan_repairs(|_| 3, t0 + SEC);
    assert_eq!(view(&c).state_name(), "drained");
    // The drained node's copy is not deleted: the operator removes the node.
    assert!(commands(&mut c, "n0", vec![], t0 + SEC).deletes.is_empty());
}

#[test]
fn a_drain_from_before_a_restart_resumes_when_the_node_registers() {
    let t0 = Instant::now();
    let mut c = Cluster::new(config(), vec!["n0".into(), "n1".into()], t0);
    c.resume_drains(vec![("n0".into(), false)]);
    // Asked again before the node is back: accepted, nothing to move yet.
    assert_eq!(c.drain("n0", |_| 3, t0).unwrap(), 0);
    assert!(matches!(
        c.drain("n1", |_| 3, t0),
        Err(MetaError::UnknownNode(_))
    ));
    for id in ["n0", "n1", "n2", "n3"] {
        c.register(id, &format!("http://{id}"), usage(), vec![], |_| 0, t0);
    }
    let states: Vec<(String, &str)> = (c.nodes(t0).into_iter())
        .map(|n| (n.id.clone(), n.state_name()))
        .collect();
    assert_eq!(
        states,
        [
            ("n0".to_string(), "draining"),
            ("n1".to_string(), "alive"),
            ("n2".to_string(), "alive"),
            ("n3".to_string(), "alive"),
        ]
    );
    let alloc = c.allocate(&[want(ChunkId::of(b"new"))], 3, t0).unwrap();
    assert!(!ids(&alloc[0].targets).contains(&"n0".to_string()));
}

#[test]
fn corrupt_copies_are_counted_until_replaced() {
    let t0 = Instant::now();
    let mut c = cluster(4, t0);
    let chunk = ChunkId::of(b"bitrot");
    let holders = store_and_commit(&mut c, chunk, t0);
    c.plan_repairs(|_| 3, t0);
    report_corrupt(&mut c, &holders[0], chunk, t0);
    assert_eq!(
        c.classify(&chunk, 3, t0),
        (2, ChunkHealth::UnderReplicated, true)
    );
    c.plan_repairs(|_| 3, t0);
    let (_, order) = orders(&mut c).pop().expect("a copy is ordered");
    commands(&mut c, &order.targets[0].id, vec![chunk], t0 + SEC);
    c.plan_repairs(|_| 3, t0 + SEC);
    assert_eq!(
        c.classify(&chunk, 3, t0 + SEC),
        (3, ChunkHealth::Healthy, false)
    );
}

#[test]
fn safe_mode_plans_no_repairs() {
    let t0 = Instant::now();
    let mut c = Cluster::new(
        config(),
        vec!["n0".into(), "n1".into(), "n2".into(), "n3".into()],
        t0,
    );
    for id in ["n0", "n1", "n2"] {
        c.register(id, &format!("http://{id}"), usage(), vec![], |_| 3, t0);
    }
    let chunk = ChunkId::of(b"wait");
    c.register("n0", "http://n0", usage(), vec![chunk], |_| 3, t0);
    c.plan_repairs(|_| 3, t0);
    assert_eq!(c.repairs_in_flight(), 0);
}

#[test]
fn a_source_answering_its_copy_completes_the_repair() {
    let t0 = Instant::now();
    let mut c = cluster(4, t0);
    let chunk = ChunkId::of(b"copied");
    c.check_commit(&[(chunk, vec!["n0".into(), "n1".into()])], 2, t0);
    committed(&mut c, &[chunk], |_| 1, t0);
    c.plan_repairs(|_| 3, t0);
    let (source, order) = orders(&mut c).pop().expect("a copy is ordered");
    let target = order.targets[0].id.clone();
    c.copy_done(&source, chunk, &stored(vec![target]), |_| 3, t0);
    assert_eq!(c.repairs_in_flight(), 0);
    assert_eq!(c.classify(&chunk, 3, t0).0, 3);
}

#[test]
fn abandoned_chunks_are_deleted_after_grace_not_after_the_lease() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"failed put");
    c.allocate(&[want(chunk)], 3, t0).unwrap();
    beat(&mut c, "n0", vec![chunk], vec![], t0);
    c.abandon(&[chunk], |_| 0, t0);
    let t1 = t0 + 31 * SEC;
    for id in ["n1", "n2"] {
        beat(&mut c, id, vec![], vec![], t1);
    }
    c.collect_garbage(|_| 0, t1);
    assert_eq!(beat(&mut c, "n0", vec![], vec![], t1), vec![chunk]);
}

#[test]
fn renewed_leases_outlive_the_lease_and_end_a_lease_after_the_last_renewal() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"slow put");
    c.allocate(&[want(chunk)], 3, t0).unwrap();
    beat(&mut c, "n0", vec![chunk], vec![], t0);
    // A put renewing every 200 s keeps its chunk through three leases (600 s each).
    let mut last = t0;
    for k in 1..=9 {
        let t = t0 + k * 200 * SEC;
        c.renew_leases(&[chunk], |_| 0, t);
        c.collect_garbage(|_| 0, t + 100 * SEC);
        assert!(
            beat(&mut c, "n0", vec![], vec![], t + 100 * SEC).is_empty(),
            "deleted at renewal {k}"
        );
        last = t;
    }
    // Renewals stop (the put died): a lease, then a grace period, and the chunk goes.
    let expired = last + 601 * SEC;
    c.collect_garbage(|_| 0, expired);
    assert!(beat(&mut c, "n0", vec![], vec![], expired).is_empty());
    let t = expired + 31 * SEC;
    c.collect_garbage(|_| 0, t);
    assert_eq!(beat(&mut c, "n0", vec![], vec![], t), vec![chunk]);
}

#[test]
fn renewals_give_no_lease_to_a_chunk_a_file_references() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"committed");
    store_and_commit(&mut c, chunk, t0);
    // The file is deleted right after a late renewal from the put that committed it.
    c.renew_leases(&[chunk], |_| 1, t0);
    c.freed(&[chunk], t0);
    let t = t0 + 31 * SEC;
    c.collect_garbage(|_| 0, t);
    let deletes: Vec<ChunkId> = beat_all_but(&mut c, 3, "", t)
        .into_iter()
        .flat_map(|(_, cmds)| cmds.deletes)
        .collect();
    assert!(
        deletes.contains(&chunk),
        "deleted a grace period after the file, not a lease: {deletes:?}"
    );
}

#[test]
fn a_drain_the_other_nodes_cannot_absorb_is_refused_and_can_be_undone() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let chunk = ChunkId::of(b"three copies");
    c.check_commit(
        &[(chunk, vec!["n0".into(), "n1".into(), "n2".into()])],
        2,
        t0,
    );
    committed(&mut c, &[chunk], |_| 1, t0);
    assert!(matches!(
        c.drain("n0", |_| 3, t0),
        Err(MetaError::CannotDrain {
            need: 3,
            others: 2,
            ..
        })
    ));
    // The same chunk wanting 2 copies (its 3-copy file went) can leave n0.
    assert_eq!(c.drain("n0", |_| 2, t0).unwrap(), 1);
    assert_eq!(c.storage_nodes(), 2);
    c.undrain("n0").unwrap();
    assert_eq!(c.storage_nodes(), 3);
    let view = c.nodes(t0).into_iter().find(|n| n.id == "n0").unwrap();
    assert_eq!(view.state_name(), "alive");
    assert!(matches!(
        c.undrain("n0"),
        Err(MetaError::InvalidArgument(_))
    ));
    assert!(matches!(c.undrain("ghost"), Err(MetaError::UnknownNode(_))));
}

#[test]
fn only_a_stopped_node_holding_no_last_copy_is_removed() {
    let t0 = Instant::now();
    let mut c = cluster(3, t0);
    let shared = ChunkId::of(b"everywhere");
    let lonely = ChunkId::of(b"only on n2");
    c.check_commit(
        &[(shared, vec!["n0".into(), "n1".into(), "n2".into()])],
        1,
        t0,
    );
    c.check_commit(&[(lonely, vec!["n2".into()])], 1, t0);
    committed(&mut c, &[shared, lonely], |_| 1, t0);

    assert!(matches!(
        c.remove_node("n2", |_| 1, t0),
        Err(MetaError::NodeStillRunning { .. })
    ));
    // n2 stops; n0 and n1 go on beating.
    let later = t0 + 11 * SEC;
    beat_all_but(&mut c, 3, "n2", later);
    assert!(matches!(
        c.remove_node("n2", |_| 1, later),
        Err(MetaError::NodeHoldsOnlyCopies { chunks: 1, .. })
    ));
    // Once nothing needs the lonely chunk any more, n2 can go.
    let wanted = |chunk: &ChunkId| u32::from(*chunk == shared);
    assert!(c.remove_node("n2", wanted, later).unwrap());
    let ids: Vec<String> = c.nodes(later).into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["n0", "n1"]);
    assert_eq!(c.read_locations(&shared, 0, later).len(), 2);
    let alloc = c.allocate(&[want(ChunkId::of(b"next"))], 2, later).unwrap();
    assert!(!super::tests::ids(&alloc[0].targets).contains(&"n2".to_string()));
    // It comes back as a new node.
    c.register("n2", "http://n2", usage(), vec![], |_| 0, later);
    assert_eq!(c.nodes(later).len(), 3);
}

#[test]
fn safe_mode_waits_neither_for_drained_nor_for_removed_nodes() {
    let t0 = Instant::now();
    let known = vec!["n0".into(), "old".into(), "gone".into(), "moving".into()];
    let mut c = Cluster::new(config(), known, t0);
    // A finished drain is not waited for; one in progress is (it may hold a last copy).
    c.resume_drains(vec![("old".into(), true), ("moving".into(), false)]);
    let (waiting, left) = c.safe_mode_waiting(t0).unwrap();
    let expected = ["gone", "moving", "n0"].map(String::from).to_vec();
    assert_eq!((waiting, left), (expected, 60 * SEC));
    c.register("moving", "http://moving", usage(), vec![], |_| 0, t0);
    assert!(matches!(
        c.remove_node("gone", |_| 0, t0),
        Err(MetaError::NodeNotReported(_))
    ));
    c.register("n0", "http://n0", usage(), vec![], |_| 0, t0);
    assert!(c.in_safe_mode());
    // A drained node that never came back is forgotten without waiting.
    assert!(!c.remove_node("old", |_| 0, t0).unwrap());
    assert!(c.in_safe_mode(), "still waiting for gone");
}

#[test]
fn copies_go_fewest_copies_first_as_answers_free_room_and_busy_sources_are_skipped() {
    // Chunks come out of hash sets in an order that changes with every cluster: a few clusters
    // make sure the order is the planner's, not the hash set's.
    for _ in 0..8 {
        fewest_copies_first_round();
    }
}

fn fewest_copies_first_round() {
    let t0 = Instant::now();
    let mut c = cluster(10, t0);
    let chunk = |name: &str, i: u32| ChunkId::of(format!("{name}{i}").as_bytes());
    // Six chunks with one copy (on n0), six with two (on n0 and n1); each wants 3. n0 takes
    // 4 copies at once as source.
    let ones: Vec<ChunkId> = (0..6).map(|i| chunk("one", i)).collect();
    let twos: Vec<ChunkId> = (0..6).map(|i| chunk("two", i)).collect();
    commit_on(&mut c, &ones, &["n0"], t0);
    commit_on(&mut c, &twos, &["n0", "n1"], t0);
    let mut from_n0 = Vec::new();
    let mut round = 0;
    loop {
        c.plan_repairs(|_| 3, t0);
        let orders = orders(&mut c);
        if orders.is_empty() {
            break;
        }
        round += 1;
        assert!(round < 20, "repair does not finish");
        for (source, order) in orders {
            if round == 1 && twos.contains(&order.chunk) {
                // n0 is full with the ones: the twos start from n1 at once.
                assert_eq!(source, "n1");
            }
            if source == "n0" {
                from_n0.push(order.chunk);
            }
            // Each copy answered at once, as Node.Replicate does.
            let answer = stored(ids(&order.targets));
            c.copy_done(&source, order.chunk, &answer, |_| 3, t0);
        }
    }
    // Every chunk n0 copied with one copy left came before any with two.
    let first_two = from_n0.iter().position(|c| twos.contains(c));
    let last_one = from_n0.iter().rposition(|c| ones.contains(c));
    if let (Some(first_two), Some(last_one)) = (first_two, last_one) {
        assert!(last_one < first_two, "{from_n0:?}");
    }
    assert_eq!(c.repairs_in_flight(), 0);
    for chunk in ones.iter().chain(&twos) {
        assert_eq!(c.classify(chunk, 3, t0).1, ChunkHealth::Healthy);
    }
}

#[test]
fn a_failed_or_unanswered_copy_is_planned_again_at_once() {
    let t0 = Instant::now();
    let mut c = cluster(5, t0);
    let failing = ChunkId::of(b"target fails");
    let lost = ChunkId::of(b"call breaks");
    commit_on(&mut c, &[failing, lost], &["n0", "n1"], t0);
    c.plan_repairs(|_| 3, t0);
    let first = orders(&mut c);
    assert_eq!(first.len(), 2);
    for (source, order) in &first {
        let targets = ids(&order.targets);
        if order.chunk == failing {
            let answer = CopyAnswer {
                failed: targets,
                ..CopyAnswer::default()
            };
            c.copy_done(source, failing, &answer, |_| 3, t0);
        } else {
            c.orders_unanswered(source, &[lost]);
        }
    }
    // Both are free to be ordered again, long before the timeout, and nothing counts twice.
    assert_eq!(c.repairs_in_flight(), 0);
    assert!(c
        .nodes
        .iter()
        .all(|n| n.repairs_as_source == 0 && n.repairs_as_target == 0));
    c.plan_repairs(|_| 3, t0 + SEC);
    let again: Vec<ChunkId> = orders(&mut c).into_iter().map(|(_, o)| o.chunk).collect();
    assert_eq!(again.len(), 2);
    assert!(again.contains(&failing) && again.contains(&lost));
}

#[test]
fn a_copy_answered_twice_or_also_reported_counts_once() {
    let t0 = Instant::now();
    let mut c = cluster(4, t0);
    let chunk = ChunkId::of(b"twice");
    commit_on(&mut c, &[chunk], &["n0", "n1"], t0);
    c.plan_repairs(|_| 3, t0);
    let (source, order) = orders(&mut c).pop().expect("a copy is ordered");
    let target = order.targets[0].id.clone();
    c.copy_done(&source, chunk, &stored(vec![target.clone()]), |_| 3, t0);
    // The target's own report, and a late duplicate answer.
    commands(&mut c, &target, vec![chunk], t0);
    c.copy_done(&source, chunk, &stored(vec![target.clone()]), |_| 3, t0);
    assert_eq!(c.classify(&chunk, 3, t0).0, 3);
    assert!(c
        .nodes
        .iter()
        .all(|n| n.repairs_as_source == 0 && n.repairs_as_target == 0));
    c.plan_repairs(|_| 3, t0);
    assert!(orders(&mut c).is_empty());
}

#[test]
fn orders_to_a_node_that_died_are_planned_again_from_another() {
    let t0 = Instant::now();
    let mut c = cluster(5, t0);
    let chunk = ChunkId::of(b"source dies");
    commit_on(&mut c, &[chunk], &["n0", "n1", "n2"], t0);
    c.plan_repairs(|_| 4, t0);
    let (source, _) = orders(&mut c).pop().expect("a copy is ordered");
    // The source dies before answering; the others beat on.
    let t1 = t0 + 11 * SEC;
    let others: Vec<String> = (0..5)
        .map(|i| format!("n{i}"))
        .filter(|id| *id != source)
        .collect();
    for id in &others {
        commands(&mut c, id, vec![], t1);
    }
    c.plan_repairs(|_| 4, t1);
    let again = orders(&mut c);
    // Two copies now (its copy on the dead source no longer counts), from live holders.
    let copies: usize = again.iter().map(|(_, o)| o.targets.len()).sum();
    assert_eq!(copies, 2);
    assert!(again.iter().all(|(s, _)| *s != source));
    // The dead source's late answer for its old order changes nothing it should not.
    c.copy_done(&source, chunk, &CopyAnswer::default(), |_| 4, t1);
    assert_eq!(c.repairs_in_flight(), 2);
}

#[test]
fn a_source_that_cannot_read_its_copy_is_not_asked_again() {
    let t0 = Instant::now();
    let mut c = cluster(5, t0);
    let chunk = ChunkId::of(b"rotten at the source");
    commit_on(&mut c, &[chunk], &["n0", "n1"], t0);
    c.plan_repairs(|_| 3, t0);
    let (source, order) = orders(&mut c).pop().expect("a copy is ordered");
    let answer = CopyAnswer {
        failed: ids(&order.targets),
        source_failed: true,
        ..CopyAnswer::default()
    };
    c.copy_done(&source, chunk, &answer, |_| 3, t0);
    // The other holder is the only source left, for two copies now.
    c.plan_repairs(|_| 3, t0);
    let again = orders(&mut c);
    assert!(!again.is_empty());
    assert!(again.iter().all(|(s, _)| *s != source), "{again:?}");
    let copies: usize = again.iter().map(|(_, o)| o.targets.len()).sum();
    assert_eq!(copies, 2);
}
