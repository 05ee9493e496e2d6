//! Running the `bigfs` CLI against a cluster, and the `must_*` helpers that fail with log tails.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::bins;
use crate::cluster::Cluster;
use crate::data::diff_summary;
use crate::output::describe;
use crate::process::run_with_timeout;

/// The time limit for one CLI command. It bounds a hang; working commands take far less, even
/// the 64 MiB transfers of a debug build on a loaded machine.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(300);

/// A `bigfs` command with `--meta URL` (if given) and nothing inherited from `BIGFS_META`.
pub fn cli_command<I, S>(meta_url: Option<&str>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bins::bin(bins::CLI));
    cmd.env_remove("BIGFS_META")
        .env("RUST_BACKTRACE", "1")
        .env("NO_COLOR", "1");
    if let Some(url) = meta_url {
        cmd.arg("--meta").arg(url);
    }
    cmd.args(args);
    cmd
}

/// Runs `bigfs` without a cluster (usage errors, an unreachable metadata server); panics if it
/// does not finish within `timeout`.
pub fn run_cli<I, S>(meta_url: Option<&str>, args: I, timeout: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_timeout(&mut cli_command(meta_url, args), None, timeout)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the CLI against a cluster from any thread: it owns what it needs (the metadata server's
/// URL and the cluster's `work/` directory), so a background workload can run while the test's
/// thread kills and restarts servers (which needs `&mut Cluster`). Get one with
/// [`Cluster::cli`]. Its methods never panic on a failed command: they return what happened.
#[derive(Clone, Debug)]
pub struct CliRunner {
    meta_url: String,
    work: PathBuf,
    counter: Arc<AtomicU64>,
}

impl CliRunner {
    /// Runs `bigfs --meta URL ARGS…`; `Err` if it did not finish within `timeout` (it was then
    /// killed) or could not be started.
    pub fn run<I, S>(&self, args: I, timeout: Duration) -> Result<Output, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_timeout(&mut cli_command(Some(&self.meta_url), args), None, timeout)
    }

    /// A fresh path in the cluster's `work/` directory (nothing is created).
    pub fn local_path(&self, name: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.work.join(format!("{n:03}-{name}"))
    }

    /// Puts `data` at `remote` with the `extra` arguments (e.g. `--force`) through a temporary
    /// local file; returns the CLI's output (exit 0 means acknowledged).
    pub fn put_bytes(
        &self,
        remote: &str,
        data: &[u8],
        extra: &[&str],
        timeout: Duration,
    ) -> Result<Output, String> {
        let local = self.local_path("put");
        fs::write(&local, data).map_err(|e| format!("writing {}: {e}", local.display()))?;
        let mut args = vec![OsStr::new("put"), local.as_os_str(), OsStr::new(remote)];
        args.extend(extra.iter().map(OsStr::new));
        let out = self.run(args, timeout);
        let _ = fs::remove_file(&local);
        out
    }

    /// Gets `remote` into a temporary local file: `Ok(bytes)` if the CLI exited 0, else
    /// `Err` with a description of the failure (exit status and stderr).
    pub fn get_bytes(&self, remote: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        let local = self.local_path("get");
        let out = self.run(
            [OsStr::new("get"), OsStr::new(remote), local.as_os_str()],
            timeout,
        )?;
        let result = if out.status.success() {
            fs::read(&local).map_err(|e| {
                format!(
                    "`bigfs get {remote}` exited 0 but {} cannot be read: {e}",
                    local.display()
                )
            })
        } else {
            Err(describe(&out))
        };
        let _ = fs::remove_file(&local);
        result
    }
}

impl Cluster {
    /// A [`CliRunner`] for this cluster, to run commands from other threads.
    pub fn cli(&self) -> CliRunner {
        CliRunner {
            meta_url: self.meta_url(),
            work: self.root.join("work"),
            counter: Arc::clone(&self.counter),
        }
    }

    /// Runs `bigfs --meta URL ARGS…` and returns its output, whatever the exit status.
    pub fn bigfs<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.bigfs_timeout(args, CLI_TIMEOUT)
    }

    /// [`Cluster::bigfs`] with a custom time limit; a command still running then fails the test.
    pub fn bigfs_timeout<I, S>(&self, args: I, timeout: Duration) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = cli_command(Some(&self.meta_url()), args);
        run_with_timeout(&mut cmd, None, timeout).unwrap_or_else(|e| self.fail(&e))
    }

    /// [`Cluster::bigfs`] with `input` on standard input.
    pub fn bigfs_stdin<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = cli_command(Some(&self.meta_url()), args);
        run_with_timeout(&mut cmd, Some(input), CLI_TIMEOUT).unwrap_or_else(|e| self.fail(&e))
    }

    /// Runs `bigfs ARGS…` and fails the test (with stderr and log tails) unless it exits 0.
    #[track_caller]
    pub fn must<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.bigfs(&args);
        if !out.status.success() {
            self.fail(&format!(
                "`bigfs {}` failed:\n{}",
                show(&args),
                describe(&out)
            ));
        }
        out
    }

    /// Fails the test (with log tails) unless `out` complies with the CLI's error contract: a
    /// non-zero exit and one line on stderr naming every string of `needles`.
    #[track_caller]
    pub fn assert_failed(&self, out: &Output, what: &str, needles: &[&str]) {
        if let Some(problem) = crate::output::check_failed_naming(out, None, needles) {
            self.fail(&format!("{what}: {problem}"));
        }
    }

    /// A fresh path in the cluster's `work/` directory (nothing is created).
    pub fn local_path(&self, name: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root.join("work").join(format!("{n:03}-{name}"))
    }

    /// A fresh, empty directory in the cluster's `work/` directory.
    pub fn local_dir(&self, name: &str) -> PathBuf {
        let path = self.local_path(name);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| self.fail(&format!("creating {}: {e}", path.display())));
        path
    }

    /// Puts one file per entry of `sizes` at `PREFIX/f<k>`, with pseudo-random content from
    /// `seed + k`; all must succeed. Returns the paths and contents.
    #[track_caller]
    pub fn put_files(&self, prefix: &str, seed: u64, sizes: &[usize]) -> Vec<(String, Vec<u8>)> {
        sizes
            .iter()
            .enumerate()
            .map(|(k, &len)| {
                let path = format!("{prefix}/f{k}");
                let data = crate::data::pseudo_random(seed + k as u64, len);
                self.must_put_bytes(&path, &data);
                (path, data)
            })
            .collect()
    }

    /// Gets every file and fails unless each reads back exactly.
    #[track_caller]
    pub fn assert_files(&self, files: &[(String, Vec<u8>)]) {
        for (path, data) in files {
            self.assert_content(path, data);
        }
    }

    /// Writes `data` to a fresh local file and returns its path.
    pub fn write_local(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.local_path(name);
        fs::write(&path, data)
            .unwrap_or_else(|e| self.fail(&format!("writing {}: {e}", path.display())));
        path
    }

    /// `bigfs put LOCAL REMOTE EXTRA…`, which must succeed.
    #[track_caller]
    pub fn must_put_with(&self, local: &Path, remote: &str, extra: &[&str]) {
        let mut args = vec![OsStr::new("put"), local.as_os_str(), OsStr::new(remote)];
        args.extend(extra.iter().map(OsStr::new));
        self.must(args);
    }

    /// `bigfs put LOCAL REMOTE`, which must succeed.
    #[track_caller]
    pub fn must_put(&self, local: &Path, remote: &str) {
        self.must_put_with(local, remote, &[]);
    }

    /// Writes `data` to a local file and puts it at `remote`; must succeed.
    #[track_caller]
    pub fn must_put_bytes(&self, remote: &str, data: &[u8]) {
        let local = self.write_local("put", data);
        self.must_put(&local, remote);
        let _ = fs::remove_file(local);
    }

    /// `bigfs get REMOTE LOCAL EXTRA…` into a fresh local file, which must succeed; returns the
    /// bytes read back.
    #[track_caller]
    pub fn must_get_with(&self, remote: &str, extra: &[&str]) -> Vec<u8> {
        let local = self.local_path("get");
        let mut args = vec![OsStr::new("get"), OsStr::new(remote), local.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        self.must(args);
        let data = fs::read(&local).unwrap_or_else(|e| {
            self.fail(&format!(
                "`bigfs get {remote}` exited 0 but {}: {e}",
                local.display()
            ))
        });
        let _ = fs::remove_file(local);
        data
    }

    /// `bigfs get REMOTE LOCAL`, which must succeed; returns the bytes read back.
    #[track_caller]
    pub fn must_get(&self, remote: &str) -> Vec<u8> {
        self.must_get_with(remote, &[])
    }

    /// Gets `remote` and fails the test unless it is exactly `expected`.
    #[track_caller]
    pub fn assert_content(&self, remote: &str, expected: &[u8]) {
        let got = self.must_get(remote);
        if got != expected {
            self.fail(&format!(
                "content of {remote} differs: {}",
                diff_summary(expected, &got)
            ));
        }
    }

    /// Runs a `--json` command, which must succeed and print JSON.
    #[track_caller]
    pub fn must_json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.must(&args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            self.fail(&format!(
                "`bigfs {}` printed invalid JSON ({e}):\n{}",
                show(&args),
                describe(&out)
            ))
        })
    }

    /// `bigfs stat REMOTE --json`.
    #[track_caller]
    pub fn stat_json(&self, remote: &str) -> Value {
        self.must_json(["stat", remote, "--json"])
    }

    /// `bigfs nodes --json`.
    #[track_caller]
    pub fn nodes_json(&self) -> Value {
        self.must_json(["nodes", "--json"])
    }

    /// `bigfs ls REMOTE --json`.
    #[track_caller]
    pub fn ls_json(&self, remote: &str) -> Value {
        self.must_json(["ls", remote, "--json"])
    }

    /// The state ("alive", "suspect", "dead", …) of node `i` per `nodes --json`, if listed.
    #[track_caller]
    pub fn node_state(&self, i: usize) -> Option<String> {
        let id = self.node_id(i);
        let nodes = self.nodes_json();
        nodes.as_array()?.iter().find(|n| n["id"] == id)?["state"]
            .as_str()
            .map(str::to_string)
    }

    /// Waits until `nodes --json` shows node `i` in `state`.
    #[track_caller]
    pub fn wait_node_state(&self, i: usize, state: &str, timeout: Duration) {
        let what = format!("{} is {state} in `bigfs nodes --json`", self.node_id(i));
        self.wait_until(timeout, &what, || {
            self.node_state(i).as_deref() == Some(state)
        });
    }
}

fn show(args: &[std::ffi::OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
