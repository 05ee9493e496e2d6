//! What the binaries say about themselves: `--version` names the binary and the commit it was
//! built from, and `bigfs completion SHELL` prints a completion script. No cluster is needed.

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
