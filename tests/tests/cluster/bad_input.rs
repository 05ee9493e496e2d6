//! Bad input: every mistake ends with a non-zero exit and one line on stderr naming the
//! offending path or server; usage errors (a `--meta` that is not an http:// URL among them)
//! exit 2; `--meta` pointing at a storage node says so; nothing is created by a failed command.

use std::fs;
use std::time::{Duration, Instant};

use bigfs_tests::{
    assert_no_problems, check_failed_naming, cli_command, describe, free_port, pseudo_random,
    run_cli, run_with_timeout, stderr_of, Cluster, KIB,
};

use crate::s;

#[test]
fn invalid_remote_paths_are_rejected() {
    let c = Cluster::start(3);
    let local = c.write_local("payload", &pseudo_random(9, 10 * KIB));
    let long_component = format!("/long/{}", "x".repeat(256));
    // (case, path, strings the error must contain)
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        ("relative path", "a/b", vec!["a/b"]),
        ("'..' component", "/a/../b", vec!["/a/../b"]),
        ("'.' component", "/a/./b", vec!["/a/./b"]),
        ("empty component", "/a//b", vec!["/a//b"]),
        // The path may be shortened in the message; its start and the length must be there.
        (
            "256-byte component",
            &long_component,
            vec!["/long/xxxxxxxx", "256"],
        ),
    ];
    let mut problems = Vec::new();
    for (case, path, needles) in &cases {
        let target = c.local_path("never-written");
        let commands: Vec<Vec<&str>> = vec![
            vec!["put", s(&local), path],
            vec!["get", path, s(&target)],
            vec!["stat", path],
            vec!["rm", path],
            vec!["ls", path],
        ];
        for args in commands {
            let out = c.bigfs(&args);
            if let Some(problem) = check_failed_naming(&out, None, needles) {
                problems.push(format!("`bigfs {}` ({case}): {problem}", args[0]));
            }
        }
        if target.exists() {
            problems.push(format!("get of {case} created {}", target.display()));
        }
    }
    // Nothing was created by the rejected puts.
    let ls = c.ls_json("/");
    if ls.as_array().is_none_or(|a| !a.is_empty()) {
        problems.push(format!("rejected puts created entries: ls / --json = {ls}"));
    }
    // The limits are inclusive: a 255-byte component is fine.
    let ok = format!("/ok/{}", "y".repeat(255));
    c.must_put(&local, &ok);
    assert_no_problems(&problems);
    c.check_logs();
}

#[test]
fn missing_local_and_remote_files() {
    let c = Cluster::start(3);
    let data = pseudo_random(10, 50 * KIB);
    c.must_put_bytes("/present", &data);
    let mut problems = Vec::new();
    let mut check = |what: &str, out: std::process::Output, needles: &[&str]| {
        if let Some(problem) = check_failed_naming(&out, None, needles) {
            problems.push(format!("{what}: {problem}"));
        }
    };

    let missing = c.local_path("does-not-exist");
    check(
        "put of a missing local file",
        c.bigfs(["put", s(&missing), "/new"]),
        &["does-not-exist"],
    );

    let target = c.local_path("target");
    check(
        "get of a missing remote path",
        c.bigfs(["get", "/absent/file", s(&target)]),
        &["/absent/file"],
    );
    assert!(
        !target.exists(),
        "a failed get created {}",
        target.display()
    );

    let no_dir = c.local_path("no-such-dir");
    let into = no_dir.join("out");
    check(
        "get into a missing directory",
        c.bigfs(["get", "/present", s(&into)]),
        &["no-such-dir"],
    );
    assert!(
        !no_dir.exists(),
        "a failed get created {}",
        no_dir.display()
    );

    check(
        "stat of a missing path",
        c.bigfs(["stat", "/absent/file"]),
        &["/absent/file"],
    );
    assert_no_problems(&problems);

    let ls = c.ls_json("/");
    assert_eq!(
        ls.as_array().map(Vec::len),
        Some(1),
        "only /present exists: {ls}"
    );
    c.check_logs();
}

#[test]
fn unreachable_metadata_server_fails_fast() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let local = dir.path().join("file");
    fs::write(&local, b"hello").expect("write local file");
    let target = dir.path().join("target");
    let commands: Vec<Vec<&str>> = vec![
        vec!["ls", "/"],
        vec!["nodes"],
        vec!["stat", "/x"],
        vec!["put", s(&local), "/x"],
        vec!["get", "/x", s(&target)],
    ];
    let mut problems = Vec::new();
    for args in commands {
        let started = Instant::now();
        let out = run_cli(Some(&url), &args, Duration::from_secs(120));
        let took = started.elapsed();
        if took > Duration::from_secs(15) {
            problems.push(format!(
                "`bigfs {}` took {took:?} to give up (limit 15 s)",
                args[0]
            ));
        }
        // The error names the server it could not reach.
        if let Some(problem) = check_failed_naming(&out, None, &[&port.to_string()]) {
            problems.push(format!("`bigfs {}`: {problem}", args[0]));
        }
    }
    assert!(
        !target.exists(),
        "a failed get created {}",
        target.display()
    );
    assert_no_problems(&problems);
}

#[test]
fn usage_errors_exit_2() {
    // Nothing listens there; a usage error must be reported before any connection attempt.
    let url = format!("http://127.0.0.1:{}", free_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["frobnicate"], "frobnicate"),
        (vec!["ls", "--bogus-flag"], "--bogus-flag"),
        (vec!["put", "only-one-arg"], ""),
        (vec!["get"], ""),
        (vec!["put", "a", "/b", "--replicas", "many"], "many"),
    ];
    let mut problems = Vec::new();
    for (args, needle) in cases {
        let out = run_cli(Some(&url), &args, Duration::from_secs(60));
        let stderr = stderr_of(&out);
        // clap prints the error with a usage block, so only the first line is checked.
        if out.status.code() != Some(2) || stderr.trim().is_empty() || !stderr.contains(needle) {
            problems.push(format!(
                "`bigfs {}`: expected exit 2 mentioning {needle:?}\n{}",
                args.join(" "),
                describe(&out)
            ));
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn meta_url_must_be_http() {
    let mut problems = Vec::new();
    for url in [
        "ftp://127.0.0.1:9400",
        "https://127.0.0.1:9400",
        "unix:///tmp/meta",
    ] {
        let by_flag = run_cli(None, ["--meta", url, "ls", "/"], Duration::from_secs(60));
        let mut by_env = cli_command(None, ["ls", "/"]);
        by_env.env("BIGFS_META", url);
        let by_env = run_with_timeout(&mut by_env, None, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        for (how, out) in [("--meta", by_flag), ("BIGFS_META", by_env)] {
            let stderr = stderr_of(&out);
            if out.status.code() != Some(2) || !stderr.contains(url) || !stderr.contains("http://")
            {
                problems.push(format!(
                    "{how} {url}: expected exit 2 naming the URL and what is accepted\n{}",
                    describe(&out)
                ));
            }
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn meta_pointing_at_a_storage_node_says_so() {
    let c = Cluster::start(1);
    let node_url = format!("http://{}", c.node_addr(0));
    let local = c.write_local("payload", b"hello");
    let target = c.local_path("target");
    let commands: Vec<Vec<&str>> = vec![
        vec!["ls", "/"],
        vec!["nodes"],
        vec!["stat", "/x"],
        vec!["put", s(&local), "/x"],
        vec!["get", "/x", s(&target)],
    ];
    let mut problems = Vec::new();
    for args in commands {
        let out = run_cli(Some(&node_url), &args, Duration::from_secs(60));
        let needles = [
            node_url.as_str(),
            "storage node",
            c.node_id(0),
            "bigfs-meta",
        ];
        if let Some(problem) = check_failed_naming(&out, None, &needles) {
            problems.push(format!("`bigfs {}`: {problem}", args[0]));
        }
    }
    assert_no_problems(&problems);
    c.check_logs();
}
