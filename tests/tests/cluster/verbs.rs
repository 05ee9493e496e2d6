//! The namespace verbs on a real cluster: explicit directories (`mkdir`, `rmdir`, empty
//! directories that outlive their files), `mv` and `cp` (metadata only: chunk ids do not change
//! and no chunk file is written), `du`, `df`, `cat`, the content hash, and the node verbs
//! (`node drain` refusals, `undrain`, `remove`) with what safe mode says.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use bigfs_tests::{pseudo_random, stdout_of, wait_until, Cluster, KIB, MIB};

use crate::s;

/// The chunk ids of a file, in order.
fn chunk_ids(c: &Cluster, path: &str) -> Vec<String> {
    c.stat_json(path)["chunks"]
        .as_array()
        .unwrap_or_else(|| c.fail(&format!("stat {path} has no chunks")))
        .iter()
        .map(|ch| ch["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The names in `ls --json`, directories with a trailing '/'.
fn names(c: &Cluster, dir: &str) -> Vec<String> {
    c.ls_json(dir)
        .as_array()
        .unwrap_or_else(|| c.fail(&format!("ls {dir} is not an array")))
        .iter()
        .map(|e| {
            let name = e["path"].as_str().unwrap_or_default().rsplit('/').next();
            let name = name.unwrap_or_default().to_string();
            match e["kind"].as_str() {
                Some("dir") => format!("{name}/"),
                _ => name,
            }
        })
        .collect()
}

/// Every chunk file on every node's disk.
fn chunk_files_on_disk(c: &Cluster) -> BTreeSet<String> {
    (0..c.node_count())
        .flat_map(|i| c.disk_chunk_ids(i))
        .collect()
}

#[test]
fn directories_are_explicit_and_outlive_their_files() {
    let c = Cluster::start(3);
    c.must(["mkdir", "-p", "/a/b/c"]);
    assert_eq!(names(&c, "/a"), ["b/"]);
    assert_eq!(names(&c, "/a/b/c"), Vec::<String>::new());
    let out = c.bigfs(["mkdir", "/x/y"]);
    c.assert_failed(&out, "mkdir without its parent", &["/x/y", "/x", "-p"]);
    let out = c.bigfs(["mkdir", "/a/b"]);
    c.assert_failed(&out, "mkdir of an existing directory", &["/a/b"]);
    c.must(["mkdir", "-p", "/a/b"]);

    // The quickstart: a directory stays when its last file goes.
    c.must_put_bytes("/photos/photo.jpg", b"jpeg");
    c.must(["rm", "/photos/photo.jpg"]);
    assert_eq!(c.ls_json("/photos"), Value::Array(vec![]));

    let out = c.bigfs(["rmdir", "/a/b"]);
    c.assert_failed(
        &out,
        "rmdir of a non-empty directory",
        &["/a/b", "not empty"],
    );
    c.must(["rmdir", "/a/b/c"]);
    c.must(["rmdir", "/a/b"]);
    assert_eq!(names(&c, "/a"), Vec::<String>::new());
    let out = c.bigfs(["rm", "/a"]);
    c.assert_failed(&out, "rm of a directory without -r", &["/a", "-r"]);
    c.must(["rm", "-r", "/a"]);
    assert_eq!(names(&c, "/"), ["photos/"]);

    // A file is no directory: nothing goes below it, and a put there fails before sending.
    c.must_put_bytes("/f", b"file");
    let out = c.bigfs(["mkdir", "-p", "/f/sub"]);
    c.assert_failed(&out, "mkdir below a file", &["/f"]);
    let before = chunk_files_on_disk(&c);
    let big = c.write_local("big", &pseudo_random(1, 4 * MIB));
    let out = c.bigfs(["put", s(&big), "/f/below"]);
    c.assert_failed(&out, "put below a file", &["/f"]);
    assert_eq!(
        chunk_files_on_disk(&c),
        before,
        "the refused put stored chunks"
    );

    // put -r keeps empty directories.
    let tree = c.local_dir("tree");
    std::fs::create_dir_all(tree.join("empty/deeper")).unwrap();
    std::fs::write(tree.join("file"), b"x").unwrap();
    c.must(["put", "-r", s(&tree), "/tree"]);
    assert_eq!(names(&c, "/tree"), ["empty/", "file"]);
    assert_eq!(names(&c, "/tree/empty"), ["deeper/"]);
    c.check_logs();
}

#[test]
fn mv_and_cp_move_no_bytes() {
    let mut c = Cluster::start(3);
    let big = pseudo_random(2, 3 * MIB + 5);
    c.must_put_bytes("/src/big", &big);
    let files = c.put_files("/src/many", 3, &vec![10 * KIB; 50]);
    c.must_put_bytes("/other", b"other");
    let ids = chunk_ids(&c, "/src/big");

    // With every storage node stopped, mv and cp still work: they cannot be moving bytes.
    for i in 0..c.node_count() {
        c.kill_node(i);
    }
    // A whole directory, into another one.
    c.must(["mkdir", "/dst"]);
    let moved = c.must_json(["mv", "/src", "/dst", "--json"]);
    assert_eq!(moved["to"], "/dst/src", "{moved}");
    assert_eq!(moved["files"], 51, "{moved}");
    assert!(
        !c.bigfs(["ls", "/src"]).status.success(),
        "/src is still there"
    );
    assert_eq!(chunk_ids(&c, "/dst/src/big"), ids);

    // Refusals name the paths.
    let out = c.bigfs(["mv", "/dst/src/big", "/other"]);
    c.assert_failed(
        &out,
        "mv onto a file without --force",
        &["/other", "--force"],
    );
    let out = c.bigfs(["mv", "/dst", "/dst/src/inside"]);
    c.assert_failed(&out, "mv of a directory into itself", &["/dst", "itself"]);
    let out = c.bigfs(["mv", "/missing", "/x"]);
    c.assert_failed(&out, "mv of a missing path", &["/missing"]);

    // cp shares the chunks; the copy outlives its source.
    let copied = c.must_json(["cp", "/dst/src/big", "/copy", "--json"]);
    assert_eq!(copied["bytes"], big.len() as u64, "{copied}");
    assert_eq!(chunk_ids(&c, "/copy"), ids);
    let out = c.bigfs(["cp", "/dst", "/dircopy"]);
    c.assert_failed(&out, "cp of a directory without -r", &["/dst", "-r"]);
    c.must(["cp", "-r", "/dst", "/dircopy"]);
    assert_eq!(names(&c, "/dircopy/src").len(), 2);
    c.must(["rm", "-r", "/dst"]);
    let hash = |path: &str| c.stat_json(path)["content_hash"].clone();
    assert_eq!(hash("/copy"), hash("/dircopy/src/big"));
    assert_ne!(hash("/copy"), hash("/other"));

    // The nodes come back: every byte is where the namespace now says.
    for i in 0..c.node_count() {
        c.restart_node(i);
    }
    c.wait_ready();
    c.assert_content("/copy", &big);
    c.assert_content("/dircopy/src/big", &big);
    for (path, data) in &files {
        c.assert_content(&path.replacen("/src", "/dircopy/src", 1), data);
    }
    c.check_logs();
}

#[test]
fn du_df_and_cat() {
    let c = Cluster::builder(3).replication(2).start();
    let data = pseudo_random(4, MIB + 7);
    c.must_put_bytes("/u/a", &data);
    c.must_put_bytes("/u/sub/b", &data[..1000]);
    c.must(["mkdir", "/u/empty"]);
    let du = c.must_json(["du", "-s", "/u", "--json"]);
    assert_eq!(du[0]["files"], 2, "{du}");
    assert_eq!(du[0]["dirs"], 2, "{du}");
    assert_eq!(du[0]["bytes"], (data.len() + 1000) as u64, "{du}");
    assert_eq!(du[0]["raw_bytes"], 2 * (data.len() + 1000) as u64, "{du}");
    let rows = c.must_json(["du", "/u", "--json"]);
    assert_eq!(rows.as_array().map(Vec::len), Some(4), "{rows}");
    let human = stdout_of(&c.must(["du", "-sh", "/u"]));
    assert!(human.contains("MiB"), "du -sh: {human}");

    // Nodes report their usage with their heartbeats.
    let stored = 2 * data.len() as u64;
    wait_until(
        Duration::from_secs(30),
        "df counts the stored copies",
        || c.must_json(["df", "--json"])["used"].as_u64() >= Some(stored),
    );
    let df = c.must_json(["df", "--json"]);
    assert_eq!(df["nodes"].as_array().map(Vec::len), Some(3), "{df}");
    assert_eq!(
        df["free"].as_u64().unwrap() + df["used"].as_u64().unwrap(),
        df["capacity"].as_u64().unwrap()
    );
    assert_eq!(c.must(["cat", "/u/a"]).stdout, data);
    c.check_logs();
}

#[test]
fn wanted_copies_follow_the_files_and_nodes_come_and_go() {
    let mut c = Cluster::builder(3)
        .replication(2)
        .heartbeat_timeout(Duration::from_secs(5))
        .safe_mode_timeout(Duration::from_secs(60))
        .start();
    let data = pseudo_random(5, 300 * KIB);
    let local = c.write_local("data", &data);
    let out = c.bigfs(["put", s(&local), "/five", "--replicas", "5"]);
    c.assert_failed(&out, "more replicas than nodes", &["5", "3 storage node"]);

    // One file wants 3 copies, another with the same bytes 2; once the first goes, a drain
    // that leaves two nodes can finish.
    c.must_put_with(&local, "/three", &["--replicas", "3"]);
    c.must_put_with(&local, "/two", &["--replicas", "2"]);
    let out = c.bigfs(["node", "drain", c.node_id(2)]);
    c.assert_failed(
        &out,
        "a drain the rest cannot absorb",
        &[c.node_id(2), "3 copies"],
    );
    c.must(["rm", "/three"]);
    c.must(["node", "drain", c.node_id(2)]);
    c.wait_node_state(2, "drained", Duration::from_secs(30));
    c.must(["node", "undrain", c.node_id(2)]);
    assert_eq!(c.node_state(2).as_deref(), Some("alive"));
    c.must(["node", "drain", c.node_id(2)]);
    c.wait_node_state(2, "drained", Duration::from_secs(30));

    // A running node is not forgotten; a stopped, drained one is.
    let out = c.bigfs(["node", "remove", c.node_id(2)]);
    c.assert_failed(&out, "remove of a running node", &[c.node_id(2), "running"]);
    c.kill_node(2);
    c.wait_node_state(2, "dead", Duration::from_secs(30));
    c.must(["node", "remove", c.node_id(2)]);
    let ids: Vec<String> = c
        .nodes_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!ids.contains(&c.node_id(2).to_string()), "{ids:?}");
    c.assert_content("/two", &data);

    // A restarted metadata server does not wait for the removed node, and says whom it
    // waits for while a known node is missing.
    c.kill_node(1);
    c.restart_meta();
    let text = stdout_of(&c.must(["nodes"]));
    assert!(
        text.contains("safe mode") && text.contains(c.node_id(1)) && !text.contains(c.node_id(2)),
        "bigfs nodes during safe mode:\n{text}"
    );
    c.check_logs();
}

#[test]
fn put_preserve_keeps_mode_and_mtime_and_get_restores_them() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::start(3);
    let local = c.write_local("script.sh", b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o750)).unwrap();
    let mtime = std::time::UNIX_EPOCH + Duration::from_millis(1_600_000_000_123);
    std::fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    c.must_put_with(&local, "/bin/script.sh", &["--preserve"]);
    let stat = c.stat_json("/bin/script.sh");
    assert_eq!(stat["mode"], "750", "{stat}");
    assert_eq!(stat["mtime_ms"], 1_600_000_000_123u64, "{stat}");

    let back = c.local_path("back.sh");
    c.must(["get", "/bin/script.sh", s(&back)]);
    let meta = std::fs::metadata(&back).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o750);
    assert_eq!(meta.modified().unwrap(), mtime);

    // Without --preserve: 0644 and the time of the put.
    c.must_put(&local, "/bin/plain.sh");
    assert_eq!(c.stat_json("/bin/plain.sh")["mode"], "644");

    // A tree's empty directories come back with get -r.
    c.must(["mkdir", "-p", "/bin/empty/deeper"]);
    let tree = c.local_path("tree");
    c.must(["get", "-r", "/bin", s(&tree)]);
    assert!(tree.join("empty/deeper").is_dir());
    assert_eq!(
        std::fs::read(tree.join("script.sh")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    c.check_logs();
}

#[test]
fn fsck_with_problems_ends_with_a_status_and_says_what_it_left_out() {
    let mut c = Cluster::builder(3)
        .replication(3)
        .heartbeat_timeout(Duration::from_secs(5))
        .start();
    for i in 0..5u64 {
        c.must_put_bytes(&format!("/f{i}"), &pseudo_random(100 + i, 10 * KIB));
    }
    assert!(stdout_of(&c.must(["fsck"])).contains("status: healthy"));
    // Two nodes of three gone: every chunk has one copy of three, and none can be repaired.
    c.kill_node(1);
    c.kill_node(2);
    c.wait_node_state(2, "dead", Duration::from_secs(30));
    c.wait_node_state(1, "dead", Duration::from_secs(30));
    let out = c.must(["fsck", "--max-problems", "2"]);
    let text = stdout_of(&out);
    assert!(
        text.contains("and 3 more problem chunk(s) not listed")
            && text
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("status: degraded: 5 under-replicated")),
        "fsck:\n{text}"
    );
    let json = c.must_json(["fsck", "--json", "--max-problems", "2"]);
    assert_eq!(json["problem_chunks"], 5, "{json}");
    c.check_logs();
}
