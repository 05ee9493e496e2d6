//! The namespace: overwriting needs `--force`, `rm` and `rm -r` remove what they name and
//! nothing else, `ls` lists immediate children with directories first.

use serde_json::Value;

use bigfs_tests::{pseudo_random, stdout_of, Cluster, KIB};

use crate::s;

/// `(name, kind, size)` of each `ls --json` entry, in the listed order. `path` may be the full
/// path or the bare name; only its last component is kept.
fn entries(ls: &Value) -> Vec<(String, String, Option<u64>)> {
    ls.as_array()
        .unwrap_or_else(|| panic!("ls --json is not an array: {ls}"))
        .iter()
        .map(|e| {
            let path = e["path"]
                .as_str()
                .unwrap_or_else(|| panic!("entry without a path: {e}"));
            let name = path.rsplit('/').next().unwrap_or(path).to_string();
            (
                name,
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["size"].as_u64(),
            )
        })
        .collect()
}

fn names_and_kinds(ls: &Value) -> Vec<(String, String)> {
    entries(ls).into_iter().map(|(n, k, _)| (n, k)).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect()
}

#[test]
fn overwrite_needs_force() {
    let c = Cluster::start(3);
    let v1 = pseudo_random(1, 1500 * KIB);
    let v2 = pseudo_random(2, 700 * KIB);
    c.must_put_bytes("/docs/report", &v1);
    let stat1 = c.stat_json("/docs/report");

    let local = c.write_local("v2", &v2);
    let out = c.bigfs(["put", s(&local), "/docs/report"]);
    c.assert_failed(
        &out,
        "put over an existing file without --force",
        &["/docs/report"],
    );
    c.assert_content("/docs/report", &v1);

    c.must_put_with(&local, "/docs/report", &["--force"]);
    c.assert_content("/docs/report", &v2);
    let stat2 = c.stat_json("/docs/report");
    assert_eq!(
        stat2["size"],
        v2.len() as u64,
        "stat after overwrite: {stat2}"
    );
    if let (Some(old), Some(new)) = (stat1["version"].as_u64(), stat2["version"].as_u64()) {
        assert!(
            new > old,
            "version did not increase on overwrite: {old} -> {new}"
        );
    }
    c.check_logs();
}

#[test]
fn rm_then_get_fails() {
    let c = Cluster::start(3);
    let data = pseudo_random(3, 300 * KIB);
    c.must_put_bytes("/d/f", &data);
    c.must_put_bytes("/d/g", &data);
    c.must(["rm", "/d/f"]);

    let local = c.local_path("removed");
    let out = c.bigfs(["get", "/d/f", s(&local)]);
    c.assert_failed(&out, "get of a removed file", &["/d/f"]);
    assert!(!local.exists(), "a failed get created {}", local.display());

    let out = c.bigfs(["stat", "/d/f"]);
    c.assert_failed(&out, "stat of a removed file", &["/d/f"]);
    assert_eq!(names_and_kinds(&c.ls_json("/d")), pairs(&[("g", "file")]));
    c.assert_content("/d/g", &data);

    let out = c.bigfs(["rm", "/d/f"]);
    c.assert_failed(&out, "rm of an already removed file", &["/d/f"]);
    let out = c.bigfs(["rm", "/never/was"]);
    c.assert_failed(&out, "rm of a missing path", &["/never/was"]);
    c.check_logs();
}

#[test]
fn rm_recursive_removes_the_directory_only() {
    let c = Cluster::start(3);
    let data = pseudo_random(4, 100 * KIB);
    for path in ["/dir/a", "/dir/sub/b", "/dirt/c", "/other"] {
        c.must_put_bytes(path, &data);
    }
    // A directory is not removed without -r.
    let out = c.bigfs(["rm", "/dir"]);
    c.assert_failed(&out, "rm of a directory without -r", &["/dir"]);
    c.assert_content("/dir/a", &data);

    c.must(["rm", "-r", "/dir"]);
    for gone in ["/dir/a", "/dir/sub/b"] {
        let local = c.local_path("gone");
        let out = c.bigfs(["get", gone, s(&local)]);
        c.assert_failed(&out, "get below a directory removed with rm -r", &[gone]);
    }
    // "/dirt" shares the prefix "/dir" but is another directory.
    c.assert_content("/dirt/c", &data);
    c.assert_content("/other", &data);
    assert_eq!(
        names_and_kinds(&c.ls_json("/")),
        pairs(&[("dirt", "dir"), ("other", "file")])
    );
    c.check_logs();
}

#[test]
fn ls_lists_children_directories_first() {
    let c = Cluster::start(3);
    c.must_put_bytes("/a/x", &pseudo_random(5, 555));
    c.must_put_bytes("/a/b/y", &pseudo_random(6, 10));
    c.must_put_bytes("/a/c/z", &pseudo_random(7, 20));
    c.must_put_bytes("/a/w", &pseudo_random(8, 777));

    let ls = c.ls_json("/a");
    let got = entries(&ls);
    let kinds: Vec<(String, String)> = got.iter().map(|(n, k, _)| (n.clone(), k.clone())).collect();
    assert_eq!(
        kinds,
        pairs(&[("b", "dir"), ("c", "dir"), ("w", "file"), ("x", "file")]),
        "ls /a --json (directories first, then files, each sorted by name): {ls}"
    );
    let size_of = |name: &str| got.iter().find(|e| e.0 == name).and_then(|e| e.2);
    assert_eq!(size_of("w"), Some(777), "ls /a --json: {ls}");
    assert_eq!(size_of("x"), Some(555), "ls /a --json: {ls}");
    if let Some(path) = ls[0]["path"].as_str().filter(|p| p.starts_with('/')) {
        assert_eq!(
            path, "/a/b",
            "full paths in ls --json must be the children's paths: {ls}"
        );
    }

    assert_eq!(names_and_kinds(&c.ls_json("/")), pairs(&[("a", "dir")]));
    assert_eq!(names_and_kinds(&c.ls_json("/a/b")), pairs(&[("y", "file")]));
    let out = c.must(["ls", "--json"]);
    let root: Value =
        serde_json::from_slice(&out.stdout).expect("ls --json without a path prints JSON");
    assert_eq!(
        names_and_kinds(&root),
        pairs(&[("a", "dir")]),
        "ls without a path lists /"
    );

    // -l shows sizes.
    let long = stdout_of(&c.must(["ls", "-l", "/a"]));
    for (name, size) in [("w", "777"), ("x", "555")] {
        let line = long
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .last()
                    .and_then(|t| t.rsplit('/').next())
                    == Some(name)
            })
            .unwrap_or_else(|| panic!("ls -l /a has no line for {name}:\n{long}"));
        assert!(
            line.contains(size),
            "ls -l /a line for {name} does not show its size {size}: {line:?}"
        );
    }

    let out = c.bigfs(["ls", "/nope"]);
    c.assert_failed(&out, "ls of a missing directory", &["/nope"]);
    c.check_logs();
}

#[test]
fn ls_human_sizes_and_recursive() {
    let c = Cluster::start(3);
    c.must_put_bytes("/r/top", &pseudo_random(9, 2 * KIB));
    c.must_put_bytes("/r/d1/x", &pseudo_random(10, 1536 * KIB));
    c.must_put_bytes("/r/d1/d2/y", &pseudo_random(11, 10));
    c.must_put_bytes("/r/e/z", &pseudo_random(12, 20));

    // -h is human-readable sizes (with -l), not --help, which still works.
    let long = stdout_of(&c.must(["ls", "-lh", "/r/d1"]));
    assert!(long.contains("1.5 MiB"), "ls -lh /r/d1:\n{long}");
    let short = stdout_of(&c.must(["ls", "-h", "/r"]));
    assert_eq!(short, "d1/\ne/\ntop\n", "ls -h /r (no -l: names only)");
    let help = stdout_of(&c.must(["ls", "--help"]));
    assert!(
        help.contains("--recursive") && help.contains("--human-readable"),
        "ls --help:\n{help}"
    );

    // -R: each directory under a header, in the order `ls -R` uses.
    let tree = stdout_of(&c.must(["ls", "-R", "/r"]));
    assert_eq!(
        tree, "/r:\nd1/\ne/\ntop\n\n/r/d1:\nd2/\nx\n\n/r/d1/d2:\ny\n\n/r/e:\nz\n",
        "ls -R /r"
    );
    let long_tree = stdout_of(&c.must(["ls", "-lhR", "/r"]));
    assert!(
        long_tree.contains("/r/d1/d2:\n") && long_tree.contains("1.5 MiB"),
        "ls -lhR /r:\n{long_tree}"
    );
    // With --json, one flat array of every entry.
    let json = c.must_json(["ls", "-R", "/r", "--json"]);
    let paths: Vec<&str> = json
        .as_array()
        .unwrap_or_else(|| panic!("ls -R --json is not an array: {json}"))
        .iter()
        .map(|e| e["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        [
            "/r/d1",
            "/r/e",
            "/r/top",
            "/r/d1/d2",
            "/r/d1/x",
            "/r/d1/d2/y",
            "/r/e/z"
        ],
        "ls -R /r --json: {json}"
    );
    // A file lists as itself.
    assert_eq!(stdout_of(&c.must(["ls", "-R", "/r/top"])), "top\n");
    c.check_logs();
}
