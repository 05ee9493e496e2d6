//! Faults in the middle of an operation: a storage node killed (SIGKILL) or frozen (SIGSTOP)
//! while a get or a put is transferring, and the metadata server killed while puts run. The
//! operation runs in a background thread (a [`bigfs_tests::CliRunner`]) while the test's thread
//! waits until it is visibly under way (bytes written, chunk files appearing) and strikes. The
//! namespace verbs (mv, cp -r, mkdir -p) are struck at random moments.
//!
//! The promise checked: a put either succeeds, and then reads back, or fails cleanly, and then
//! the path holds the old content (or nothing), never a mix; a get succeeds from the other
//! replicas; afterwards the cluster heals and collects the orphans of interrupted puts.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bigfs_tests::{
    describe, diff_summary, distinct_chunks, pseudo_random, stat_chunks, Cluster, ContentModel,
    CLI_TIMEOUT, KIB, MIB,
};

const WAIT: Duration = Duration::from_secs(60);

/// Bytes in the files of `dir` (a get writes a temporary file there while it runs).
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Chunk copies (files and needles) on all nodes' disks.
fn total_chunk_copies(c: &Cluster) -> usize {
    (0..c.node_count()).map(|i| c.disk_chunk_ids(i).len()).sum()
}

#[test]
fn node_killed_during_get_and_during_put() {
    let mut c = Cluster::builder(4)
        .replication(3)
        .min_replicas(2)
        .chunk_size(64 * KIB as u64)
        .heartbeat_timeout(Duration::from_secs(2))
        .start();
    let cli = c.cli();

    // During a get: kill the node listed first for the first chunk once bytes are arriving.
    let data = pseudo_random(600, 8 * MIB);
    c.must_put_bytes("/kill/get", &data);
    let stat = c.wait_stat("/kill/get", &data, Some(3), WAIT);
    let victim = c.node_index(&c.replicas_of(&stat, 0)[0]);
    let dir = c.local_dir("get");
    let target = dir.join("f");
    let get = thread::spawn({
        let (cli, target) = (cli.clone(), target.clone());
        move || {
            cli.run(
                [
                    OsStr::new("get"),
                    OsStr::new("/kill/get"),
                    target.as_os_str(),
                    OsStr::new("--parallel"),
                    OsStr::new("2"),
                ],
                CLI_TIMEOUT,
            )
        }
    });
    c.wait_until(WAIT, "the get is writing", || {
        get.is_finished() || dir_bytes(&dir) > 0
    });
    let mid_get = !get.is_finished();
    c.kill_node(victim);
    let out = get
        .join()
        .expect("get thread")
        .unwrap_or_else(|e| c.fail(&e));
    if !out.status.success() {
        c.fail(&format!(
            "get with {} killed mid-transfer failed:\n{}",
            c.node_id(victim),
            describe(&out)
        ));
    }
    let got = fs::read(&target).unwrap_or_else(|e| c.fail(&format!("read {target:?}: {e}")));
    assert!(
        got == data,
        "get during a kill: {}",
        diff_summary(&data, &got)
    );

    // During a put: kill another node once the put has stored chunks on it. Two of four nodes
    // remain, so W=2 can still be met.
    let victim2 = (victim + 1) % 4;
    let data = Arc::new(pseudo_random(601, 12 * MIB));
    let before = c.disk_chunk_ids(victim2).len();
    let put = thread::spawn({
        let (cli, data) = (cli.clone(), Arc::clone(&data));
        move || cli.put_bytes("/kill/put", &data, &["--parallel", "2"], CLI_TIMEOUT)
    });
    c.wait_until(WAIT, "the put is storing chunks on the victim", || {
        put.is_finished() || c.disk_chunk_ids(victim2).len() >= before + 5
    });
    let mid_put = !put.is_finished();
    c.kill_node(victim2);
    let out = put
        .join()
        .expect("put thread")
        .unwrap_or_else(|e| c.fail(&e));
    let put_ok = out.status.success();
    if put_ok {
        c.assert_content("/kill/put", &data);
        let stat = c.stat_json("/kill/put");
        c.check_stat(&stat, "/kill/put", &data, None)
            .and_then(|()| c.check_replicas_on_disk(&stat))
            .unwrap_or_else(|e| c.fail(&e));
        for (index, ch) in stat_chunks(&stat).iter().enumerate() {
            assert!(
                ch.replicas.len() >= 2,
                "chunk {index} of an acknowledged put has fewer than W=2 copies: {stat}"
            );
        }
    } else {
        c.assert_failed(&out, "a put that lost a node mid-way", &["/kill/put"]);
        let out = c.bigfs(["stat", "/kill/put"]);
        assert!(
            !out.status.success(),
            "a failed put left /kill/put visible:\n{}",
            describe(&out)
        );
    }
    eprintln!(
        "kill during get (mid-transfer: {mid_get}): ok; kill during put (mid-transfer: \
         {mid_put}): {}",
        if put_ok {
            "succeeded"
        } else {
            "failed cleanly"
        }
    );

    // Both come back; the cluster heals.
    c.restart_node(victim);
    c.restart_node(victim2);
    let mut files = vec![("/kill/get".to_string(), pseudo_random(600, 8 * MIB))];
    if put_ok {
        files.push(("/kill/put".to_string(), data.to_vec()));
    }
    c.wait_healthy_with(WAIT, |_| c.check_all_placed(&files, 3, &[]).err());
    c.assert_files(&files);
    c.check_logs();
}

#[test]
fn frozen_node_during_get_and_during_put() {
    let mut c = Cluster::builder(4)
        .replication(3)
        .min_replicas(2)
        .chunk_size(256 * KIB as u64)
        .heartbeat_timeout(Duration::from_secs(3))
        .start();
    let a = pseudo_random(650, 2 * MIB + 5);
    c.must_put_bytes("/frozen/a", &a);
    let stat = c.wait_stat("/frozen/a", &a, Some(3), WAIT);

    // Reads: the node listed first for chunk 0 answers nothing.
    let victim = c.node_index(&c.replicas_of(&stat, 0)[0]);
    c.pause_node(victim);
    let started = Instant::now();
    let got = c.must_get("/frozen/a");
    let get_took = started.elapsed();
    assert!(
        got == a,
        "get past a frozen node: {}",
        diff_summary(&a, &got)
    );
    c.resume_node(victim);
    c.wait_ready();

    // Writes: freeze it once the put has stored chunks on it.
    let b = Arc::new(pseudo_random(651, 8 * MIB + 17));
    let before = c.disk_chunk_ids(victim).len();
    let cli = c.cli();
    let put = thread::spawn({
        let b = Arc::clone(&b);
        move || cli.put_bytes("/frozen/b", &b, &["--parallel", "2"], CLI_TIMEOUT)
    });
    c.wait_until(WAIT, "the put is storing chunks on the victim", || {
        put.is_finished() || c.disk_chunk_ids(victim).len() >= before + 2
    });
    let mid_put = !put.is_finished();
    c.pause_node(victim);
    let started = Instant::now();
    let out = put
        .join()
        .expect("put thread")
        .unwrap_or_else(|e| c.fail(&e));
    let put_took = started.elapsed();
    if !out.status.success() {
        c.fail(&format!(
            "put with {} frozen mid-way failed after {put_took:?}:\n{}",
            c.node_id(victim),
            describe(&out)
        ));
    }
    c.assert_content("/frozen/b", &b);
    eprintln!(
        "frozen node: get took {get_took:.2?}; put (frozen mid-transfer: {mid_put}) finished \
         {put_took:.2?} after the freeze"
    );

    c.resume_node(victim);
    c.wait_ready();
    let files = [
        ("/frozen/a".to_string(), a),
        ("/frozen/b".to_string(), b.to_vec()),
    ];
    let (_, healed) = c.wait_healthy_with(WAIT, |_| c.check_all_placed(&files, 3, &[]).err());
    eprintln!("frozen node: healed {healed:.2?} after the resume");
    c.assert_files(&files);
    c.check_logs();
}

#[test]
fn metadata_server_killed_during_puts() {
    let gc_grace = Duration::from_secs(2);
    let mut c = Cluster::builder(3)
        .replication(3)
        .chunk_size(64 * KIB as u64)
        .heartbeat_timeout(Duration::from_secs(3))
        .gc_grace(gc_grace)
        .write_lease(gc_grace)
        .safe_mode_timeout(Duration::from_secs(3))
        .start();
    let chunk = c.chunk_size();
    let paths: Vec<String> = (0..3).map(|k| format!("/crash/f{k}")).collect();
    let mut model = ContentModel::new();
    for (k, path) in paths.iter().enumerate() {
        let data = pseudo_random(700 + k as u64, 4 * chunk);
        c.must_put_bytes(path, &data);
        model.put_acked(path, Arc::new(data));
    }

    // A loop of overwrites, ~1 MiB each, until told to stop; it records every outcome.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let worker = thread::spawn({
        let (cli, paths) = (c.cli(), paths.clone());
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        move || {
            let mut results = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::SeqCst) {
                let path = paths[k % paths.len()].clone();
                let data = Arc::new(pseudo_random(800 + k as u64, 16 * chunk + 1000 * k));
                let out = cli.put_bytes(&path, &data, &["--force"], Duration::from_secs(120));
                let ok = out.as_ref().is_ok_and(|o| o.status.success());
                results.push((path, data, ok));
                done.fetch_add(1, Ordering::SeqCst);
                k += 1;
            }
            results
        }
    });

    c.wait_until(WAIT, "two puts completed", || {
        worker.is_finished() || done.load(Ordering::SeqCst) >= 2
    });
    let files_before = total_chunk_copies(&c);
    c.wait_until(WAIT, "a put is storing chunks", || {
        worker.is_finished() || total_chunk_copies(&c) > files_before
    });
    c.kill_meta();
    let at_kill = done.load(Ordering::SeqCst);
    c.restart_meta();
    c.wait_until(WAIT, "more puts completed after the restart", || {
        worker.is_finished() || done.load(Ordering::SeqCst) >= at_kill + 3
    });
    stop.store(true, Ordering::SeqCst);
    let results = worker.join().expect("put loop thread");

    let failed = results.iter().filter(|(_, _, ok)| !ok).count();
    for (path, data, ok) in &results {
        if *ok {
            model.put_acked(path, Arc::clone(data));
        } else {
            model.put_failed(path, Arc::clone(data));
        }
    }
    // Every acknowledged put is there, every failed one is all or nothing.
    let mut current = Vec::new();
    for path in &paths {
        let got = c.must_get(path);
        if !model.accepts(path, &got) {
            c.fail(&format!(
                "{path} holds {} bytes ({}), none of the acceptable states: {}",
                got.len(),
                &blake3::hash(&got).to_hex()[..12],
                model.describe(path)
            ));
        }
        current.push(got);
    }
    // The interrupted put's chunks are orphans: deleted once safe mode is over and the grace
    // has passed. With R=3 on 3 nodes every node holds exactly the referenced chunks.
    let referenced = distinct_chunks(current.iter().map(|d| &d[..]), chunk);
    let orphans = (0..3)
        .flat_map(|i| c.disk_chunk_ids(i))
        .filter(|id| !referenced.contains_key(id))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let took = c.wait_for(WAIT, "the orphaned chunks are collected", || {
        (0..3).find_map(|i| c.holds_exactly(i, &referenced))
    });
    eprintln!(
        "metadata server crash: {} puts, {failed} failed; {orphans} orphaned chunks collected \
         within {took:.2?}",
        results.len()
    );
    if failed == 0 {
        eprintln!("note: no put was interrupted by the crash this time");
    }
    c.check_logs();
}

/// Many small puts at once, the load whose commits share flushes (group commit): the metadata
/// server is killed (SIGKILL) while they run. Every put acknowledged before (or after) the
/// kill is whole after the restart; one that failed left its file whole or absent. An ack
/// sent before the flush covering its commit finished would show here as a lost file.
#[test]
fn metadata_server_killed_during_concurrent_small_puts() {
    let mut c = Cluster::builder(3)
        .replication(2)
        .heartbeat_timeout(Duration::from_secs(3))
        .safe_mode_timeout(Duration::from_secs(3))
        .start();
    const WRITERS: usize = 8;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let cli = c.cli();
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            thread::spawn(move || {
                let mut results = Vec::new();
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    let path = format!("/small/w{w}/f{k:04}");
                    let data = pseudo_random((w * 10_000 + k) as u64, 1024 + 37 * k);
                    let out = cli.put_bytes(&path, &data, &[], Duration::from_secs(120));
                    let ok = out.as_ref().is_ok_and(|o| o.status.success());
                    results.push((path, data, ok));
                    done.fetch_add(1, Ordering::SeqCst);
                    k += 1;
                }
                results
            })
        })
        .collect();
    c.wait_until(WAIT, "40 small puts completed", || {
        workers.iter().all(|w| w.is_finished()) || done.load(Ordering::SeqCst) >= 40
    });
    c.kill_meta();
    let at_kill = done.load(Ordering::SeqCst);
    c.restart_meta();
    c.wait_until(WAIT, "more puts completed after the restart", || {
        workers.iter().all(|w| w.is_finished()) || done.load(Ordering::SeqCst) >= at_kill + 16
    });
    stop.store(true, Ordering::SeqCst);
    let results: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("put loop thread"))
        .collect();

    let (mut acked, mut absent) = (0, 0);
    for (path, data, ok) in &results {
        let stat = c.bigfs(["stat", path.as_str()]);
        if !ok && !stat.status.success() {
            absent += 1;
            continue;
        }
        let got = c.must_get(path);
        if got != *data {
            c.fail(&format!(
                "{path} ({}) holds {} bytes, {} were put: {}",
                if *ok { "acknowledged" } else { "failed" },
                got.len(),
                data.len(),
                diff_summary(data, &got)
            ));
        }
        acked += usize::from(*ok);
    }
    eprintln!(
        "metadata server crash under {WRITERS} writers: {} small puts, {acked} acknowledged \
         and whole, {absent} failed and absent",
        results.len()
    );
    assert!(acked >= 40, "{acked} puts acknowledged");
    c.check_logs();
}

/// How many files and directories `du -s` counts at `path`; `None` when it is not there. Any
/// other failure fails the test: it must not pass for a "before" state.
fn du(c: &Cluster, path: &str) -> Option<(u64, u64)> {
    let out = c.bigfs(["du", "-s", path, "--json"]);
    if !out.status.success() {
        let stderr = bigfs_tests::stderr_of(&out);
        if stderr.contains("no such file or directory") {
            return None;
        }
        c.fail(&format!("du {path}: {}", describe(&out)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| c.fail(&format!("du {path} --json: {e}: {}", describe(&out))));
    Some((v[0]["files"].as_u64()?, v[0]["dirs"].as_u64()?))
}

#[test]
fn metadata_server_killed_during_mv_cp_and_mkdir() {
    let mut c = Cluster::start(3);
    // Many small files, so the transactions take a while to write.
    let tree = c.local_dir("tree");
    const FILES: u64 = 400;
    for k in 0..FILES {
        let dir = tree.join(format!("d{}", k % 8));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{k}")), k.to_le_bytes()).unwrap();
    }
    c.must(["put", "-r", tree.to_str().unwrap(), "/t0"]);
    let whole = du(&c, "/t0").unwrap_or_else(|| c.fail("/t0 is missing"));
    assert_eq!(whole.0, FILES);

    let mut rng = bigfs_tests::Rng::new(0x5eed);
    let mut current = "/t0".to_string();
    let mut interrupted = 0;
    for round in 1..=9u64 {
        let next = format!("/t{round}");
        let mkdir = format!("/m{round}/a/b/c");
        let args: Vec<String> = match round % 3 {
            0 => vec!["mv".into(), current.clone(), next.clone()],
            1 => vec!["cp".into(), "-r".into(), current.clone(), next.clone()],
            _ => vec!["mkdir".into(), "-p".into(), mkdir.clone()],
        };
        let worker = thread::spawn({
            let cli = c.cli();
            move || cli.run(&args, CLI_TIMEOUT)
        });
        thread::sleep(Duration::from_millis(rng.below(60)));
        c.kill_meta();
        let out = worker.join().expect("CLI thread");
        let acked = out.as_ref().is_ok_and(|o| o.status.success());
        interrupted += usize::from(!acked);
        c.restart_meta();

        // Before or after, never between: whole trees only, and acknowledged changes kept.
        let (old, new) = (du(&c, &current), du(&c, &next));
        match round % 3 {
            0 => {
                let states = (old == Some(whole), new == Some(whole));
                assert!(
                    states == (true, false) && new.is_none()
                        || states == (false, true) && old.is_none(),
                    "mv {current} {next} (acked: {acked}) left {current}: {old:?}, {next}: {new:?}"
                );
                assert!(!acked || new == Some(whole), "an acknowledged mv was lost");
                if new.is_some() {
                    current = next;
                }
            }
            1 => {
                assert_eq!(old, Some(whole), "cp changed its source {current}");
                assert!(
                    new.is_none() || new == Some(whole),
                    "cp -r {current} {next} (acked: {acked}) left {next}: {new:?}"
                );
                assert!(!acked || new.is_some(), "an acknowledged cp was lost");
            }
            _ => {
                let made = du(&c, &format!("/m{round}"));
                assert!(
                    made.is_none() || made == Some((0, 3)),
                    "mkdir -p {mkdir} (acked: {acked}) left /m{round}: {made:?}"
                );
                assert!(!acked || made.is_some(), "an acknowledged mkdir was lost");
            }
        }
    }
    eprintln!("namespace changes under a metadata server kill: {interrupted} of 9 interrupted");
    c.check_logs();
}
