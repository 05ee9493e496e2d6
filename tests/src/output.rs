//! Reading and asserting on the output of a CLI run.

use std::process::Output;

/// stderr as (lossy) UTF-8.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// stdout as (lossy) UTF-8.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit status, stderr and the start of stdout, for assertion messages.
pub fn describe(out: &Output) -> String {
    let stdout = stdout_of(out);
    let shown: String = stdout.chars().take(2000).collect();
    format!(
        "exit status: {}\nstderr:\n{}\nstdout ({} bytes):\n{}{}",
        out.status,
        stderr_of(out).trim_end(),
        out.stdout.len(),
        shown,
        if shown.len() < stdout.len() {
            "…"
        } else {
            ""
        }
    )
}

/// Checks the CLI's error contract: a non-zero exit (exactly `code` if given), and stderr holding
/// one non-empty line that contains every string of `needles` (the path, node or chunk it must
/// name). Returns a description of what is wrong, or `None` if the output complies, so callers
/// can collect several cases before failing.
pub fn check_failed_naming(out: &Output, code: Option<i32>, needles: &[&str]) -> Option<String> {
    let stderr = stderr_of(out);
    let mut problems = Vec::new();
    match (out.status.code(), code) {
        (Some(0), _) => problems.push("it exited 0, expected a failure".to_string()),
        (Some(got), Some(want)) if got != want => {
            problems.push(format!("it exited {got}, expected exit code {want}"))
        }
        (None, _) => problems.push(format!("it was killed by a signal ({})", out.status)),
        _ => {}
    }
    let lines: Vec<&str> = stderr.trim().lines().collect();
    if lines.is_empty() {
        problems.push("stderr is empty, expected a one-line error".to_string());
    } else if lines.len() > 1 {
        problems.push(format!("stderr has {} lines, expected one", lines.len()));
    }
    for needle in needles {
        if !stderr.contains(needle) {
            problems.push(format!("stderr does not mention {needle:?}"));
        }
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{}\n{}", problems.join("; "), describe(out)))
    }
}

/// Panics unless `out` complies with the error contract (see [`check_failed_naming`]).
#[track_caller]
pub fn assert_failed_naming(out: &Output, what: &str, needles: &[&str]) {
    if let Some(problem) = check_failed_naming(out, None, needles) {
        panic!("{what}: {problem}");
    }
}

/// Fails with every problem a table-driven test collected, rather than only the first.
#[track_caller]
pub fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problems:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
