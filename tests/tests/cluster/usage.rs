//! What the binaries say about themselves: `--version` names the binary and the commit it was
//! built from, and `bigfs completion SHELL` prints a completion script; and the README's
//! quickstart runs as written.

use std::process::Command;
use std::time::Duration;

use bigfs_tests::{bins, describe, run_cli, run_with_timeout, stdout_of};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn every_binary_names_itself_and_its_commit() {
    for name in [bins::CLI, bins::META, bins::NODE] {
        let out = run_with_timeout(
            Command::new(bins::bin(name)).arg("--version"),
            None,
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let line = stdout_of(&out);
        // "bigfs 0.1.0 (commit 1e17558)", or "(commit unknown)" when built outside git.
        let commit = line
            .trim_end()
            .strip_prefix(&format!("{name} "))
            .and_then(|rest| rest.split_once(" (commit "))
            .and_then(|(_, commit)| commit.strip_suffix(')'));
        let plausible = commit.is_some_and(|c| {
            c == "unknown" || (c.len() >= 7 && c.chars().all(|ch| ch.is_ascii_hexdigit()))
        });
        assert!(
            out.status.success() && plausible,
            "`{name} --version` must print \"{name} VERSION (commit HASH)\"\n{}",
            describe(&out)
        );
    }
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_cli(None, ["completion", shell], TIMEOUT);
        let script = stdout_of(&out);
        let missing: Vec<&str> = ["put", "get", "ls", "nodes", "completion", "meta"]
            .into_iter()
            .filter(|word| !script.contains(word))
            .collect();
        assert!(
            out.status.success() && missing.is_empty(),
            "`bigfs completion {shell}` lacks {missing:?}\n{}",
            describe(&out)
        );
    }
}

/// The README's quickstart runs as written, top to bottom, against a real cluster: every
/// `bigfs` line of its code block (the `eval` and `export` lines set up what the harness sets
/// up: `BIGFS_META` and `PATH`).
#[test]
fn the_readme_quickstart_runs_as_written() {
    let c = bigfs_tests::Cluster::start(3);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("read README.md");
    let block: Vec<&str> = readme
        .split("## Quickstart")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a quickstart code block")
        .lines()
        .filter(|line| line.starts_with("bigfs ") || line.contains("| bigfs "))
        .collect();
    assert!(block.len() >= 10, "quickstart lines: {block:?}");
    let work = c.local_dir("quickstart");
    std::fs::write(
        work.join("photo.jpg"),
        bigfs_tests::pseudo_random(7, 300 * 1024),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bins::bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in block {
        let out = run_with_timeout(
            Command::new("bash")
                .args(["-o", "pipefail", "-c", line])
                .current_dir(&work)
                .env("PATH", &path)
                .env("BIGFS_META", c.meta_url()),
            None,
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "quickstart line `{line}` failed:\n{}",
            describe(&out)
        );
    }
    assert_eq!(
        std::fs::read(work.join("copy.jpg")).unwrap(),
        std::fs::read(work.join("photo.jpg")).unwrap()
    );
    c.check_logs();
}
