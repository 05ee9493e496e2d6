//! Round trips: what goes in with `put` comes out of `get` byte for byte, whatever the size, and
//! `stat` describes it as content-addressed chunks on R distinct nodes.

use std::time::Duration;

use bigfs_tests::{diff_summary, pseudo_random, Cluster, KIB, MIB};

const STAT_WAIT: Duration = Duration::from_secs(30);

#[test]
fn sizes_around_the_chunk_boundary_round_trip() {
    let c = Cluster::start(3);
    let chunk = c.chunk_size();
    for (seed, len) in [0, 1, chunk - 1, chunk, chunk + 1].into_iter().enumerate() {
        let data = pseudo_random(seed as u64, len);
        let remote = format!("/sizes/f{len}");
        c.must_put_bytes(&remote, &data);
        c.assert_content(&remote, &data);
        c.wait_stat(&remote, &data, Some(3), STAT_WAIT);
    }
    c.check_logs();
}

#[test]
fn multi_chunk_file_is_spread_over_distinct_nodes() {
    let c = Cluster::start(4);
    let data = pseudo_random(55, 5 * MIB + 512 * KIB);
    let local = c.write_local("five-and-a-half", &data);
    c.must_put(&local, "/multi/file");
    c.assert_content("/multi/file", &data);
    for parallel in ["1", "8"] {
        let got = c.must_get_with("/multi/file", &["--parallel", parallel]);
        assert!(
            got == data,
            "get --parallel {parallel}: {}",
            diff_summary(&data, &got)
        );
    }
    // Every chunk on R=3 distinct nodes out of 4, ids = BLAKE3 of the slices, sizes sum up.
    let stat = c.wait_stat("/multi/file", &data, Some(3), STAT_WAIT);
    assert_eq!(stat["replication"], 3, "stat: {stat}");
    assert_eq!(
        stat["chunks"].as_array().map(Vec::len),
        Some(6),
        "stat: {stat}"
    );

    // A put with a parallelism limit and a per-file replication factor.
    let other = pseudo_random(56, 2 * MIB + 1);
    let local = c.write_local("two-replicas", &other);
    c.must_put_with(
        &local,
        "/multi/two",
        &["--replicas", "2", "--parallel", "2"],
    );
    c.assert_content("/multi/two", &other);
    let stat = c.wait_stat("/multi/two", &other, Some(2), STAT_WAIT);
    assert_eq!(stat["replication"], 2, "stat: {stat}");
    c.check_logs();
}

#[test]
fn large_file_round_trips() {
    let c = Cluster::start(3);
    let data = pseudo_random(64, 64 * MIB);
    let local = c.write_local("sixty-four", &data);
    c.must_put(&local, "/big/64mib");
    std::fs::remove_file(&local).expect("remove local copy");
    c.assert_content("/big/64mib", &data);
    c.wait_stat("/big/64mib", &data, Some(3), STAT_WAIT);
    c.check_logs();
}

#[test]
fn stdin_to_stdout() {
    let c = Cluster::start(3);
    let data = pseudo_random(7, 2 * MIB + 123);
    let out = c.bigfs_stdin(["put", "-", "/pipe/x"], &data);
    assert!(
        out.status.success(),
        "put from stdin: {}",
        bigfs_tests::describe(&out)
    );

    let out = c.must(["get", "/pipe/x", "-"]);
    assert!(
        out.stdout == data,
        "get to stdout: {}",
        diff_summary(&data, &out.stdout)
    );
    c.assert_content("/pipe/x", &data);

    // An empty standard input makes an empty file.
    let out = c.bigfs_stdin(["put", "-", "/pipe/empty"], b"");
    assert!(
        out.status.success(),
        "put of empty stdin: {}",
        bigfs_tests::describe(&out)
    );
    let out = c.must(["get", "/pipe/empty", "-"]);
    assert!(
        out.stdout.is_empty(),
        "get of an empty file printed {} bytes",
        out.stdout.len()
    );
    c.check_logs();
}

/// Chunks that already have some copies (fewer than R) count them towards W: a put of the same
/// bytes at a higher replication succeeds on a cluster with exactly R nodes, and tops the
/// chunks up to R copies.
#[test]
fn a_put_tops_up_chunks_that_already_have_fewer_copies() {
    let c = Cluster::start(3);
    let data = pseudo_random(77, 2 * MIB + 3 * KIB);
    let local = c.write_local("shared", &data);
    c.must_put_with(&local, "/two", &["--replicas", "2"]);
    c.wait_stat("/two", &data, Some(2), STAT_WAIT);
    c.must_put(&local, "/three");
    c.assert_content("/three", &data);
    c.wait_stat("/three", &data, Some(3), STAT_WAIT);
    c.check_logs();
}

/// `put -r` and `get -r` of a tree with nested directories, an empty file, files of several
/// chunks and more small files than one metadata lookup carries; then a get of the tree after
/// one file lost every copy fails that file alone, by name, and writes all the others.
#[test]
fn trees_round_trip_and_a_lost_file_fails_alone() {
    let c = Cluster::builder(3)
        .replication(2)
        .chunk_size(64 * KIB as u64)
        .start();
    let chunk = c.chunk_size();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("a/b/big".into(), pseudo_random(600, 5 * chunk + 5)),
        ("a/mid".into(), pseudo_random(601, 300 * KIB)),
    ];
    for k in 0..300u64 {
        let data = pseudo_random(700 + k, 1000 + k as usize);
        files.push((format!("small/f{k:03}"), data));
    }
    let src = c.local_dir("tree");
    for (relative, data) in &files {
        let path = src.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
    }
    c.must([
        "put".as_ref(),
        "-r".as_ref(),
        src.as_os_str(),
        "/tree".as_ref(),
    ]);

    let got = c.local_dir("got");
    c.must([
        "get".as_ref(),
        "-r".as_ref(),
        "/tree".as_ref(),
        got.as_os_str(),
    ]);
    for (relative, data) in &files {
        let read = std::fs::read(got.join(relative)).unwrap();
        assert!(read == *data, "{relative}: {}", diff_summary(data, &read));
    }

    let (lost, lost_data) = &files[10];
    let id = blake3::hash(lost_data).to_hex().to_string();
    for i in 0..3 {
        if c.has_good_copy(i, &id) {
            c.delete_chunk_file(i, &id);
        }
    }
    let again = c.local_dir("again");
    let out = c.bigfs([
        "get".as_ref(),
        "-r".as_ref(),
        "/tree".as_ref(),
        again.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "get -r of a tree with a lost file succeeded"
    );
    assert!(
        stderr.contains(&format!("1 of {} files not fetched", files.len()))
            && stderr.contains(&format!("/tree/{lost}")),
        "{stderr}"
    );
    for (relative, data) in files.iter().filter(|(relative, _)| relative != lost) {
        assert_eq!(
            std::fs::read(again.join(relative)).unwrap(),
            *data,
            "{relative}"
        );
    }
    assert!(!again.join(lost).exists());
    c.check_logs();
}
