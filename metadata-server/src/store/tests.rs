//! The store's rules, without a server: a real sled store in a temporary directory, and the
//! cluster state fed registrations as nodes would.

use std::time::Duration;

use super::*;
use crate::cluster::{Beat, NodeUsage};
use bigfs_proto::pb::ObjectMeta;

fn config() -> ClusterConfig {
    ClusterConfig {
        replication: 2,
        min_replicas: 2,
        heartbeat_timeout: Duration::from_secs(10),
        gc_grace: Duration::from_secs(30),
        write_lease: Duration::from_secs(60),
        safe_mode_timeout: Duration::from_secs(60),
        repair_concurrency: 4,
        chunk_size: 1 << 20,
    }
}

async fn store(nodes: usize) -> (tempfile::TempDir, Arc<MetaStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), 1 << 20, config(), Instant::now()).unwrap();
    for i in 0..nodes {
        let registration = Registration {
            node: NodeRef {
                id: format!("n{i}"),
                addr: format!("http://n{i}"),
            },
            usage: NodeUsage {
                capacity: 1 << 30,
                used: 0,
                chunks: 0,
            },
            chunks: Vec::new(),
        };
        store.register(registration).await.unwrap();
    }
    (dir, Arc::new(store))
}

fn commit(path: &str, data: &[u8], acked_by: &[&str]) -> Commit {
    Commit {
        path: FsPath::parse(path).unwrap(),
        size: data.len() as u64,
        chunk_size: 1 << 20,
        replication: 0,
        chunks: vec![(
            ChunkId::of(data),
            data.len() as u64,
            acked_by.iter().map(|n| n.to_string()).collect(),
        )],
        overwrite: false,
        mode: 0o600,
        mtime_ms: 1234,
        object: ObjectMeta::default(),
        if_version: None,
    }
}

fn want(data: &[u8]) -> Want {
    Want {
        id: ChunkId::of(data),
        size: data.len() as u64,
        exclude: Vec::new(),
        copies: 0,
    }
}

#[tokio::test]
async fn a_commit_needs_w_copies_and_a_sound_layout() {
    let (_dir, store) = store(3).await;
    let mut bad_layout = commit("/bad", b"abc", &["n0", "n1"]);
    bad_layout.size = 4;
    let outcomes = store
        .commit(vec![
            commit("/short", b"short", &["n0"]),
            commit("/ok", b"ok", &["n0", "n1"]),
            bad_layout,
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes[0].as_ref().unwrap(),
        &CommitOutcome::ShortOfCopies(vec![ChunkId::of(b"short")])
    );
    assert_eq!(
        outcomes[1].as_ref().unwrap(),
        &CommitOutcome::Committed { version: 1 }
    );
    assert!(matches!(outcomes[2], Err(MetaError::InvalidArgument(_))));
    let ok = store.locate(&FsPath::parse("/ok").unwrap()).unwrap();
    assert_eq!((ok.record.mode(), ok.record.mtime_ms), (0o600, 1234));
    assert_eq!(ok.chunks[0].replicas.len(), 2);
    assert!(matches!(
        store.locate(&FsPath::parse("/short").unwrap()),
        Err(MetaError::NotFound(_))
    ));
}

#[tokio::test]
async fn more_copies_than_storage_nodes_is_refused() {
    let (_dir, store) = store(3).await;
    let err = store.allocate(&[want(b"x")], 5).unwrap_err();
    assert!(err.to_string().contains("3 storage node"), "{err}");
    assert_eq!(
        store.allocate(&[want(b"x")], 3).unwrap()[0].targets.len(),
        3
    );
    // The cluster's own default is never refused: nodes may be on their way.
    store.allocate(&[want(b"y")], 0).unwrap();
}

#[tokio::test]
async fn removing_a_directory_needs_recursive_even_when_empty() {
    let (_dir, store) = store(2).await;
    let d = FsPath::parse("/d").unwrap();
    store.mkdir(&d, false, 0, 0).await.unwrap();
    assert!(matches!(
        store.remove(&d, false, None).await,
        Err(MetaError::IsDirectory(_))
    ));
    assert_eq!(store.remove(&d, true, None).await.unwrap(), 0);
    assert!(store.list(&FsPath::root()).unwrap().is_empty());
}

#[tokio::test]
async fn fsck_counts_every_problem_chunk_and_lists_up_to_the_limit() {
    let (_dir, store) = store(2).await;
    // Replication 3 on a cluster of two: every chunk is under-replicated.
    let commits: Vec<Commit> = (0..5u8)
        .map(|i| Commit {
            replication: 3,
            ..commit(&format!("/f{i}"), &[i], &["n0", "n1"])
        })
        .collect();
    assert!(store
        .commit(commits)
        .await
        .unwrap()
        .iter()
        .all(|o| matches!(o, Ok(CommitOutcome::Committed { .. }))));
    let report = store.fsck(2).await.unwrap();
    assert_eq!((report.files, report.counts.under_replicated), (5, 5));
    assert_eq!((report.problem_chunks, report.problems.len()), (5, 2));
    assert!(report.problems[0].path.is_some());
}

/// Single-file commits that arrive together are applied together: each committed with its own
/// outcome, with fewer flushes asked for than commits; two commits of one path in a group
/// behave as if one came after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_commits_share_transactions_and_flushes() {
    let (_dir, store) = store(3).await;
    let (_, flush_requests) = store.flush_counters();
    let before = flush_requests.get();
    let acked = ["n0", "n1"];
    let spawn_commit = |path: String, data: Vec<u8>| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.commit_one(commit(&path, &data, &acked)).await })
    };
    // The cluster lock held, the first groups wait in their transaction and the rest queue.
    let held = store.cluster();
    let tasks: Vec<_> = (0..64)
        .map(|i| spawn_commit(format!("/g/{i}"), format!("data {i}").into_bytes()))
        .chain([
            spawn_commit("/same".into(), b"one".to_vec()),
            spawn_commit("/same".into(), b"two".to_vec()),
        ])
        .collect();
    // Not an await: the guard may not be held across one. The runtime's workers run the
    // commits meanwhile; this thread only waits.
    std::thread::sleep(Duration::from_millis(200));
    drop(held);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let same = outcomes.split_off(64);
    for outcome in outcomes {
        assert_eq!(outcome.unwrap(), CommitOutcome::Committed { version: 1 });
    }
    let committed = same.iter().filter(|o| o.is_ok()).count();
    let refused = same
        .iter()
        .filter(|o| matches!(o, Err(MetaError::AlreadyExists(_))))
        .count();
    assert_eq!((committed, refused), (1, 1), "{same:?}");
    let asked = flush_requests.get() - before;
    assert!(asked <= 4, "{asked} flushes asked for by 66 commits");
    assert_eq!(store.file_count().unwrap(), 65);
}

/// A removal and a commit whose transactions wait (here for the namespace's writer lock, as
/// behind a long copy; in production for the disk) hold no cluster lock meanwhile: the reads,
/// allocations and heartbeats that take that lock on tokio's workers still answer.
#[test]
fn waiting_transactions_do_not_hold_up_reads_allocations_or_heartbeats() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_dir, store) = runtime.block_on(store(3));
    runtime
        .block_on(store.commit(vec![
            commit("/old", b"old", &["n0", "n1"]),
            commit("/gone", b"gone", &["n0", "n1"]),
        ]))
        .unwrap();
    let writer = store.ns.hold_writer();
    let removing = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.remove_entries(&FsPath::parse("/gone").unwrap(), false, None)
        })
    };
    let committing = {
        let store = store.clone();
        std::thread::spawn(move || {
            let prepared = store.prepare(commit("/new", b"new", &["n0", "n1"]));
            store.apply_commits(vec![prepared])
        })
    };
    // The commit has decided once it holds the cluster lock or its chunk is held for it.
    let new = ChunkId::of(b"new");
    loop {
        match store.cluster.try_lock() {
            Err(std::sync::TryLockError::WouldBlock) => break,
            Ok(cluster) if cluster.is_committing(&new) => break,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let (answered, answers) = std::sync::mpsc::channel();
    {
        let store = store.clone();
        std::thread::spawn(move || {
            let located = store.locate(&FsPath::parse("/old").unwrap()).is_ok();
            let allocated = store.allocate(&[want(b"other")], 0).is_ok();
            let beat = store.heartbeat("n0", Beat::default()).is_some();
            answered.send((located, allocated, beat)).unwrap();
        });
    }
    let answers = answers
        .recv_timeout(Duration::from_secs(10))
        .expect("reads wait for a commit stuck in its transaction");
    assert_eq!(answers, (true, true, true));
    drop(writer);
    let outcomes = committing.join().unwrap().unwrap().outcomes;
    assert_eq!(
        outcomes[0].as_ref().unwrap(),
        &CommitOutcome::Committed { version: 1 }
    );
    assert!(!lock(&store.cluster).is_committing(&new));
    assert_eq!(removing.join().unwrap().unwrap().0, 1);
}

/// A commit refused by its own transaction (the file exists) releases its chunks' hold: they
/// expire like an abandoned put's instead of being held for ever.
#[tokio::test]
async fn a_commit_whose_transaction_fails_leaves_nothing_held() {
    let (_dir, store) = store(3).await;
    store
        .commit(vec![commit("/f", b"first", &["n0", "n1"])])
        .await
        .unwrap();
    let outcomes = store
        .commit(vec![commit("/f", b"second", &["n0", "n1"])])
        .await
        .unwrap();
    assert!(outcomes[0].is_err(), "{outcomes:?}");
    assert!(!lock(&store.cluster).is_committing(&ChunkId::of(b"second")));
}

/// A removed file's chunks, and those of a file a commit replaced, start their grace only once
/// the change is durable: a crash before the flush brings the file back, and its chunks must
/// not have been deleted meanwhile.
#[tokio::test]
async fn freed_chunks_start_their_grace_once_the_change_is_flushed() {
    let (_dir, store) = store(3).await;
    let (old, new) = (ChunkId::of(b"old"), ChunkId::of(b"new"));
    store
        .commit(vec![commit("/f", b"old", &["n0", "n1"])])
        .await
        .unwrap();
    let mut replace = commit("/f", b"new", &["n0", "n1"]);
    replace.overwrite = true;
    let applied = store.apply_commits(vec![store.prepare(replace)]).unwrap();
    assert_eq!(applied.freed, vec![old]);
    assert_eq!(
        lock(&store.cluster).grace_start(&old),
        None,
        "not flushed yet"
    );

    let path = FsPath::parse("/f").unwrap();
    let (count, freed) = store.remove_entries(&path, false, None).unwrap();
    assert_eq!((count, freed), (1, vec![new]));
    assert_eq!(
        lock(&store.cluster).grace_start(&new),
        None,
        "not flushed yet"
    );

    store
        .commit(vec![commit("/g", b"g", &["n0", "n1"])])
        .await
        .unwrap();
    store
        .remove(&FsPath::parse("/g").unwrap(), false, None)
        .await
        .unwrap();
    assert!(lock(&store.cluster)
        .grace_start(&ChunkId::of(b"g"))
        .is_some());
}

/// Two writers that read version 1 commit over it in one group (one transaction): the first
/// wins, the second sees the first's file and is refused, as if it came after.
#[tokio::test]
async fn of_two_conditional_commits_in_one_group_the_second_loses() {
    let (_dir, store) = store(3).await;
    let acked = ["n0", "n1"];
    store
        .commit(vec![commit("/c", b"v1", &acked)])
        .await
        .unwrap();
    let over_one = |data: &[u8]| Commit {
        if_version: Some(1),
        ..commit("/c", data, &acked)
    };
    let mut outcomes = store
        .commit(vec![over_one(b"first"), over_one(b"second")])
        .await
        .unwrap()
        .into_iter();
    assert_eq!(
        outcomes.next().unwrap().unwrap(),
        CommitOutcome::Committed { version: 2 }
    );
    assert!(matches!(
        outcomes.next().unwrap(),
        Err(MetaError::VersionMismatch {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    let file = store.locate(&FsPath::parse("/c").unwrap()).unwrap();
    assert_eq!(file.chunks[0].id, ChunkId::of(b"first"));
}
