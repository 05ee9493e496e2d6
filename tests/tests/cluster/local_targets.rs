//! What the CLI does to local things it writes to: every command ends quietly when the reader
//! of its stdout goes away.

use std::process::Output;

use bigfs_tests::{
    cli_command, describe, pseudo_random, run_closing_stdout, stderr_of, Cluster, CHUNK,
    CLI_TIMEOUT,
};

/// The exit status of a command whose stdout was closed under it, as a shell reports a
/// process killed by SIGPIPE (128 + 13).
const CLOSED_PIPE_EXIT: i32 = 141;

/// `bigfs ARGS…` with a reader that takes `keep` bytes of its stdout and closes it.
fn closing_stdout(c: &Cluster, args: &[&str], keep: usize) -> Output {
    run_closing_stdout(
        &mut cli_command(Some(&c.meta_url()), args),
        keep,
        CLI_TIMEOUT,
    )
    .unwrap_or_else(|e| c.fail(&e))
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let c = Cluster::start(3);
    // 12,000 names of 11 bytes: more than a pipe holds, so `ls` is still writing when its
    // reader goes. Empty-file records need no storage node, so bench meta makes them fast.
    c.must([
        "bench",
        "meta",
        "--files",
        "12000",
        "--batch",
        "1000",
        "--dir-files",
        "12000",
        "--root",
        "/big",
    ]);
    let big = "/big/d000000";
    c.must_put_bytes("/f", &pseudo_random(42, 3 * CHUNK));
    // (command, bytes read before the reader closes; 0: closed before the command writes)
    let cases: Vec<(Vec<&str>, usize)> = vec![
        (vec!["ls", big], 10),
        (vec!["ls", "-l", big], 10),
        (vec!["ls", big, "--json"], 10),
        (vec!["get", "/f", "-"], 10),
        (vec!["get", "/f", "-"], 0),
        (vec!["stat", "/f", "--json"], 0),
        (vec!["stat", "/f"], 0),
        (vec!["nodes"], 0),
        (vec!["nodes", "--json"], 0),
        (vec!["fsck"], 0),
    ];
    let mut problems = Vec::new();
    for (args, keep) in cases {
        let out = closing_stdout(&c, &args, keep);
        if out.status.code() != Some(CLOSED_PIPE_EXIT) || !stderr_of(&out).is_empty() {
            problems.push(format!(
                "`bigfs {}` with stdout closed after {keep} bytes: expected exit \
                 {CLOSED_PIPE_EXIT} and nothing on stderr\n{}",
                args.join(" "),
                describe(&out)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
    c.check_logs();
}
