//! `bigfs sync`: round trips of a tree both ways (bytes, mtimes, modes, empty directories), a
//! second sync that sends nothing, changed files sent again, a local rename seen as a move,
//! deletions only with `--delete`, `--dry-run` changing nothing, and `--watch` pushing changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use bigfs_tests::{
    cli_command, pseudo_random, run_cli, stat_chunks, stderr_of, stdout_of, wait_until, Cluster,
    CHUNK, KIB,
};

use crate::s;

/// A local tree as compared: each file's bytes, mtime (ms) and mode; the directories.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    files: BTreeMap<String, (Vec<u8>, u128, u32)>,
    dirs: BTreeSet<String>,
}

fn snapshot(root: &Path) -> Snapshot {
    let mut snap = Snapshot {
        files: BTreeMap::new(),
        dirs: BTreeSet::new(),
    };
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_str().unwrap());
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                dirs.push((entry.path(), format!("{name}/")));
                snap.dirs.insert(name);
            } else if meta.is_file() {
                let mtime = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
                let mode = meta.permissions().mode() & 0o777;
                let data = fs::read(entry.path()).unwrap();
                snap.files.insert(name, (data, mtime.as_millis(), mode));
            }
        }
    }
    snap
}

/// Writes `data` at `root/path` (creating directories) with an mtime of `mtime_ms`.
fn write(root: &Path, path: &str, data: &[u8], mtime_ms: u64) -> PathBuf {
    let file = root.join(path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, data).unwrap();
    set_mtime(&file, mtime_ms);
    file
}

fn set_mtime(file: &Path, mtime_ms: u64) {
    let time = SystemTime::UNIX_EPOCH + Duration::from_millis(mtime_ms);
    fs::File::open(file).unwrap().set_modified(time).unwrap();
}

/// `bigfs sync ARGS… --json`, which must succeed; its JSON report.
#[track_caller]
fn sync(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["sync"];
    all.extend(args);
    all.push("--json");
    c.must_json(&all)
}

/// The counts of a report: (sent, moved, copied, deleted, unchanged).
fn counts(report: &Value) -> [u64; 5] {
    ["sent", "moved", "copied", "deleted", "unchanged"].map(|key| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {report}"))
    })
}

/// The names in a remote directory, directories with a trailing '/'.
fn names(c: &Cluster, dir: &str) -> Vec<String> {
    let ls = c.ls_json(dir);
    (ls.as_array().unwrap().iter())
        .map(|e| {
            let name = e["path"].as_str().unwrap().rsplit('/').next().unwrap();
            match e["kind"].as_str() == Some("dir") {
                true => format!("{name}/"),
                false => name.to_string(),
            }
        })
        .collect()
}

fn chunk_ids(c: &Cluster, remote: &str) -> Vec<String> {
    stat_chunks(&c.stat_json(remote))
        .into_iter()
        .map(|chunk| chunk.id)
        .collect()
}

/// Milliseconds that no clock rounds: an mtime kept to the millisecond is this one.
const T: u64 = 1_700_000_000_123;

#[test]
fn a_tree_goes_and_comes_back_whole_and_a_second_sync_sends_nothing() {
    let c = Cluster::start(3);
    let src = c.local_dir("src");
    write(&src, "a/big", &pseudo_random(1, 2 * CHUNK + 5 * KIB), T);
    let small = write(&src, "a/b/small", b"small", T + 1);
    fs::set_permissions(&small, fs::Permissions::from_mode(0o600)).unwrap();
    write(&src, "top", b"", T + 2);
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::create_dir_all(src.join("deep/er")).unwrap();
    std::os::unix::fs::symlink("/etc", src.join("link")).unwrap();

    let out = c.must(["sync", s(&src), "bigfs:/t"]);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("skipping") && stderr.contains("link"),
        "{stderr}"
    );
    assert!(stderr.contains("sync: 3 sent"), "{stderr}");
    assert_eq!(names(&c, "/t"), ["a/", "deep/", "empty/", "top"]);
    assert_eq!(names(&c, "/t/deep"), ["er/"]);
    c.assert_content("/t/a/big", &pseudo_random(1, 2 * CHUNK + 5 * KIB));

    let back = c.local_path("back");
    let report = sync(&c, &["bigfs:/t", s(&back)]);
    assert_eq!(counts(&report), [3, 0, 0, 0, 0], "{report}");
    let mut expected = snapshot(&src);
    expected.dirs.remove("link");
    assert_eq!(
        snapshot(&back),
        expected,
        "bytes, mtimes, modes or directories differ"
    );

    // Both ways, the second sync finds everything unchanged.
    assert_eq!(counts(&sync(&c, &[s(&src), "bigfs:/t"])), [0, 0, 0, 0, 3]);
    assert_eq!(counts(&sync(&c, &["bigfs:/t", s(&back)])), [0, 0, 0, 0, 3]);
    c.check_logs();
}

#[test]
fn a_changed_file_is_sent_again_and_checksum_compares_content() {
    let c = Cluster::start(3);
    let src = c.local_dir("src");
    write(&src, "f", &pseudo_random(1, CHUNK + 1), T);
    write(&src, "g", &pseudo_random(2, 100 * KIB), T);
    sync(&c, &[s(&src), "bigfs:/c"]);

    // New content (same size) and a new mtime: sent.
    write(&src, "f", &pseudo_random(3, CHUNK + 1), T + 1000);
    assert_eq!(counts(&sync(&c, &[s(&src), "bigfs:/c"])), [1, 0, 0, 0, 1]);
    c.assert_content("/c/f", &pseudo_random(3, CHUNK + 1));

    // Only the mtime changed: --checksum finds the local hash equal to the server's.
    set_mtime(&src.join("g"), T + 5000);
    let report = sync(&c, &[s(&src), "bigfs:/c", "--checksum"]);
    assert_eq!(counts(&report), [0, 0, 0, 0, 2], "{report}");
    // Other content behind the same size and mtime: only --checksum sees it.
    write(&src, "g", &pseudo_random(4, 100 * KIB), T);
    sync(&c, &[s(&src), "bigfs:/c"]); // gives the remote copy mtime T again
    write(&src, "g", &pseudo_random(5, 100 * KIB), T);
    assert_eq!(counts(&sync(&c, &[s(&src), "bigfs:/c"])), [0, 0, 0, 0, 2]);
    assert_eq!(
        counts(&sync(&c, &[s(&src), "bigfs:/c", "--checksum"])),
        [1, 0, 0, 0, 1]
    );
    c.assert_content("/c/g", &pseudo_random(5, 100 * KIB));
    c.check_logs();
}

#[test]
fn a_local_rename_is_a_move_with_delete_and_a_copy_without() {
    let c = Cluster::start(3);
    let src = c.local_dir("src");
    let data = pseudo_random(7, 3 * CHUNK - 10);
    write(&src, "old/big", &data, T);
    write(&src, "keep", b"keep", T);
    sync(&c, &[s(&src), "bigfs:/r"]);
    let ids = chunk_ids(&c, "/r/old/big");

    fs::create_dir_all(src.join("new/place")).unwrap();
    fs::rename(src.join("old/big"), src.join("new/place/big2")).unwrap();
    fs::remove_dir(src.join("old")).unwrap();
    let report = sync(&c, &[s(&src), "bigfs:/r", "--delete"]);
    assert_eq!(counts(&report), [0, 1, 0, 1, 1], "{report}");
    assert_eq!(report["actions"][0]["from"], "/old/big", "{report}");
    assert_eq!(report["actions"][0]["to"], "/new/place/big2", "{report}");
    assert_eq!(chunk_ids(&c, "/r/new/place/big2"), ids);
    assert_eq!(
        names(&c, "/r"),
        ["new/", "keep"],
        "the old file and directory are gone"
    );

    // Without --delete the old name stays: the new one is a copy, sharing the chunks.
    fs::rename(src.join("new/place/big2"), src.join("big3")).unwrap();
    let report = sync(&c, &[s(&src), "bigfs:/r"]);
    assert_eq!(counts(&report), [0, 0, 1, 0, 1], "{report}");
    assert_eq!(chunk_ids(&c, "/r/big3"), ids);
    assert_eq!(chunk_ids(&c, "/r/new/place/big2"), ids);
    // Its mtime is the local one, so the next sync finds it unchanged.
    assert_eq!(counts(&sync(&c, &[s(&src), "bigfs:/r"])), [0, 0, 0, 0, 2]);
    c.assert_content("/r/big3", &data);
    c.check_logs();
}

#[test]
fn nothing_is_deleted_without_delete() {
    let c = Cluster::start(3);
    let src = c.local_dir("src");
    write(&src, "keep", b"keep", T);
    write(&src, "gone", b"gone", T);
    write(&src, "dir/sub/gone2", b"gone2", T);
    sync(&c, &[s(&src), "bigfs:/d"]);

    fs::remove_file(src.join("gone")).unwrap();
    fs::remove_dir_all(src.join("dir")).unwrap();
    assert_eq!(counts(&sync(&c, &[s(&src), "bigfs:/d"])), [0, 0, 0, 0, 1]);
    assert_eq!(names(&c, "/d"), ["dir/", "gone", "keep"]);

    // With --delete: the two files, then dir/sub and dir.
    let report = sync(&c, &[s(&src), "bigfs:/d", "--delete"]);
    assert_eq!(counts(&report), [0, 0, 0, 4, 1], "{report}");
    assert_eq!(names(&c, "/d"), ["keep"]);

    // The same the other way: a file removed in the cluster stays local without --delete.
    let back = c.local_dir("back");
    write(&back, "extra", b"extra", T);
    sync(&c, &["bigfs:/d", s(&back)]);
    assert!(back.join("extra").exists());
    sync(&c, &["bigfs:/d", s(&back), "--delete"]);
    assert!(!back.join("extra").exists());
    assert_eq!(fs::read(back.join("keep")).unwrap(), b"keep");
    c.check_logs();
}

#[test]
fn a_dry_run_lists_the_changes_and_makes_none() {
    let c = Cluster::start(3);
    let src = c.local_dir("src");
    write(&src, "changed", b"v1", T);
    write(&src, "old", b"old", T);
    write(&src, "same", b"same", T);
    sync(&c, &[s(&src), "bigfs:/n"]);
    let version = c.stat_json("/n/changed")["version"].clone();

    write(&src, "changed", b"v2!", T + 1);
    write(&src, "new", b"new", T);
    fs::remove_file(src.join("old")).unwrap();
    fs::create_dir_all(src.join("newdir")).unwrap();
    let out = c.must(["sync", s(&src), "bigfs:/n", "--delete", "--dry-run"]);
    assert_eq!(
        stdout_of(&out).lines().collect::<Vec<_>>(),
        ["mkdir /newdir", "send /changed", "send /new", "delete /old"]
    );
    let report = sync(&c, &[s(&src), "bigfs:/n", "--delete", "--dry-run"]);
    assert_eq!(report["dry_run"], true);
    assert_eq!(counts(&report), [2, 0, 0, 1, 1], "{report}");

    assert_eq!(names(&c, "/n"), ["changed", "old", "same"]);
    c.assert_content("/n/changed", b"v1");
    assert_eq!(c.stat_json("/n/changed")["version"], version);
    c.check_logs();
}

/// A `bigfs sync --watch` child, killed if the test ends before it exits.
struct Watching(Child);

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_pushes_each_change() {
    let c = Cluster::start(3);
    let src = c.local_dir("src");
    write(&src, "a", b"first", T);
    let log = c.local_path("watch.log");
    let mut cmd = cli_command(
        Some(&c.meta_url()),
        [
            "sync",
            s(&src),
            "bigfs:/w",
            "--watch",
            "--delete",
            "--debounce",
            "100ms",
        ],
    );
    cmd.stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap());
    let mut watching = Watching(cmd.spawn().unwrap());
    let cli = c.cli();
    let has = |remote: &str, want: &[u8]| {
        cli.get_bytes(remote, Duration::from_secs(30))
            .is_ok_and(|got| got == want)
    };
    let timeout = Duration::from_secs(60);
    wait_until(timeout, "the first round put /w/a", || {
        has("/w/a", b"first")
    });

    fs::write(src.join("a"), b"second, longer").unwrap();
    wait_until(timeout, "/w/a has the new bytes", || {
        has("/w/a", b"second, longer")
    });
    let ids = chunk_ids(&c, "/w/a");
    fs::rename(src.join("a"), src.join("b")).unwrap();
    wait_until(timeout, "/w/a moved to /w/b", || names(&c, "/w") == ["b"]);
    assert_eq!(chunk_ids(&c, "/w/b"), ids);
    // The round's summary line comes once the round is over.
    let read_log = || fs::read_to_string(&log).unwrap();
    wait_until(timeout, "the watch log says the file moved", || {
        read_log().contains(" 1 moved")
    });
    let rounds = read_log();

    // SIGTERM ends the watch, with status 0.
    let pid = watching.0.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut status = None;
    wait_until(
        Duration::from_secs(10),
        "the watch exits on SIGTERM",
        || {
            status = watching.0.try_wait().unwrap();
            status.is_some()
        },
    );
    assert!(status.unwrap().success(), "{status:?}: {rounds}");
    c.check_logs();
}

#[test]
fn one_side_must_be_remote() {
    let cases: [(&[&str], &str); 3] = [
        (&["/home/x", "/photos"], "both local"),
        (&["bigfs:/a", "bigfs:/b"], "both remote"),
        (
            &["bigfs:/a", "/tmp/a", "--watch"],
            "--watch needs a local SRC",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["sync"];
        all.extend(args);
        let out = run_cli(Some("http://127.0.0.1:1"), &all, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(needle),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn a_pull_never_writes_through_local_links_or_fifos() {
    let c = Cluster::start(3);
    for name in ["keys", "sub/passwd", "fifo", "plain"] {
        c.must_put_bytes(&format!("/p/{name}"), b"from the cluster");
    }
    // Outside the tree: what the links point at must be left as they are.
    let outside = c.local_dir("outside");
    fs::write(outside.join("authorized_keys"), b"mine").unwrap();
    fs::write(outside.join("passwd"), b"mine too").unwrap();
    let dst = c.local_dir("dst");
    std::os::unix::fs::symlink(outside.join("authorized_keys"), dst.join("keys")).unwrap();
    std::os::unix::fs::symlink(&outside, dst.join("sub")).unwrap();
    let fifo = std::ffi::CString::new(dst.join("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    // It warns of each thing it skips, then fails naming what it would not write through.
    let out = c.bigfs(["sync", "bigfs:/p", s(&dst)]);
    let stderr = bigfs_tests::stderr_of(&out);
    assert!(
        !out.status.success() && stderr.contains("symbolic link") && stderr.contains("fifo"),
        "a pull onto links and a FIFO:\n{}",
        bigfs_tests::describe(&out)
    );
    assert_eq!(fs::read(outside.join("authorized_keys")).unwrap(), b"mine");
    assert_eq!(fs::read(outside.join("passwd")).unwrap(), b"mine too");
    assert!(fs::symlink_metadata(dst.join("keys"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(dst.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    // What is not in the way arrives.
    assert_eq!(fs::read(dst.join("plain")).unwrap(), b"from the cluster");
    c.check_logs();
}
