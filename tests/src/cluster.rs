//! A BigFS cluster of real processes: one metadata server and N storage nodes on loopback ports,
//! with its data directories and logs in one temporary directory.
//!
//! Layout of the directory: `meta/` (metadata server data), `node<i>/` (storage node data),
//! `logs/<name>.log` (stdout and stderr of each process, appended across restarts) and `work/`
//! (local files the tests put and get). Storage node `i` has the id `node<i>`.
//!
//! Processes are started from the test's thread and die with it; [`Cluster`]'s `Drop` kills
//! them, keeps the directory if the test is failing (or `BIGFS_TEST_KEEP` is set), and fails the
//! test if a server log contains "panicked".

use std::env;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

pub use crate::builder::ClusterBuilder;
use crate::process::ServerProcess;
use crate::wait::poll_until;

/// How long a cluster may take to come up (or come back) before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) port: u16,
    /// `--http-listen`: metrics and health probes.
    pub(crate) http_port: u16,
    pub(crate) data: PathBuf,
    pub(crate) proc: ServerProcess,
    /// Stopped with SIGSTOP and not resumed yet.
    pub(crate) paused: AtomicBool,
}

/// A running cluster. See the module documentation for its layout.
pub struct Cluster {
    pub(crate) dir: Option<TempDir>,
    pub(crate) root: PathBuf,
    pub(crate) meta_port: u16,
    /// The metadata server's `--http-listen`: metrics and health probes.
    pub(crate) meta_http_port: u16,
    pub(crate) meta: ServerProcess,
    pub(crate) nodes: Vec<Node>,
    pub(crate) chunk_size: usize,
    pub(crate) heartbeat_timeout: Duration,
    /// Source of unique names for local files in `work/` (shared with [`crate::CliRunner`]s).
    pub(crate) counter: Arc<AtomicU64>,
    /// Panics the test expects in server logs (see [`Cluster::allow_panic`]).
    pub(crate) allowed_panics: Vec<String>,
}

impl Cluster {
    /// Options with this harness's defaults: `nodes` storage nodes, 200 ms heartbeats, 5 s
    /// heartbeat timeout; everything else as the binaries default (R=3, W=2, 1 MiB chunks).
    pub fn builder(nodes: usize) -> ClusterBuilder {
        ClusterBuilder::new(nodes)
    }

    /// A cluster of `nodes` storage nodes with the default options, ready to use.
    pub fn start(nodes: usize) -> Cluster {
        Self::builder(nodes).start()
    }

    /// The metadata server's URL, as passed to `--meta`.
    pub fn meta_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.meta_port)
    }

    /// The cluster's chunk size in bytes.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The metadata server's `--heartbeat-timeout`.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
    }

    /// The temporary directory holding everything of this cluster.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of storage nodes (running or not).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The id of storage node `i` (`node<i>`).
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// The index of the storage node with id `id`; panics for an unknown id.
    #[track_caller]
    pub fn node_index(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| self.fail(&format!("no storage node has the id {id:?}")))
    }

    /// The address storage node `i` listens on.
    pub fn node_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.nodes[i].port))
    }

    /// SIGKILL storage node `i` (a no-op if it is not running).
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].proc.kill();
        self.nodes[i].paused.store(false, Ordering::Relaxed);
    }

    /// SIGTERM storage node `i` (a clean stop) and waits until it has exited; fails if it does
    /// not within `timeout`. [`Cluster::restart_node`] starts it again.
    #[track_caller]
    pub fn stop_node(&mut self, i: usize, timeout: std::time::Duration) {
        self.nodes[i].proc.signal(libc::SIGTERM);
        let started = std::time::Instant::now();
        while self.node_exited(i).is_none() {
            if started.elapsed() > timeout {
                self.fail(&format!(
                    "node {i} did not stop within {timeout:?} of SIGTERM"
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGSTOP storage node `i`: it keeps its sockets but answers nothing.
    pub fn pause_node(&self, i: usize) {
        self.nodes[i].proc.signal(libc::SIGSTOP);
        self.nodes[i].paused.store(true, Ordering::Relaxed);
    }

    /// SIGCONT storage node `i` after [`Cluster::pause_node`].
    pub fn resume_node(&self, i: usize) {
        self.nodes[i].proc.signal(libc::SIGCONT);
        self.nodes[i].paused.store(false, Ordering::Relaxed);
    }

    /// Whether storage node `i` is stopped by [`Cluster::pause_node`].
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused.load(Ordering::Relaxed)
    }

    /// Whether storage node `i` was started and not killed by the harness (it may have exited
    /// by itself since: see [`Cluster::node_exited`]).
    pub fn is_started(&self, i: usize) -> bool {
        self.nodes[i].proc.is_started()
    }

    /// `Some(status)` if storage node `i` exited by itself (a crash, an abort).
    pub fn node_exited(&mut self, i: usize) -> Option<ExitStatus> {
        self.nodes[i].proc.exited()
    }

    /// The process id of storage node `i` while the harness considers it started.
    pub fn node_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].proc.pid()
    }

    /// The metadata server's whole log (all its starts).
    pub fn meta_log(&self) -> String {
        self.meta.log_text()
    }

    /// Storage node `i`'s whole log (all its starts).
    pub fn node_log(&self, i: usize) -> String {
        self.nodes[i].proc.log_text()
    }

    /// Sets (`Some`) or removes (`None`) an environment variable of storage node `i` for its
    /// next starts, e.g. to restart it without `FAILPOINTS`.
    pub fn set_node_env(&mut self, i: usize, key: &str, value: Option<&str>) {
        self.nodes[i].proc.set_env(key, value);
    }

    /// Tells [`Cluster::check_logs`] that a panic whose message contains `message` is expected
    /// (e.g. a `panic` failpoint); other panics still fail the test.
    pub fn allow_panic(&mut self, message: &str) {
        self.allowed_panics.push(message.to_string());
    }

    /// Kills storage node `i` if it runs, starts it again with the same port, data directory and
    /// id, and waits until it listens and the metadata server lists it as alive.
    ///
    /// Alive may still be the state from before the kill (if the heartbeat timeout has not
    /// passed), so this does not prove the node has re-registered its chunks; wait on `stat` for
    /// that.
    pub fn restart_node(&mut self, i: usize) {
        self.kill_node(i);
        let port = self.nodes[i].port;
        let name = self.nodes[i].id.clone();
        self.start_with_retries(&name, port, |c| &mut c.nodes[i].proc);
        self.wait_ready();
    }

    /// SIGSTOP the metadata server: it keeps its sockets but answers nothing.
    pub fn pause_meta(&self) {
        self.meta.signal(libc::SIGSTOP);
    }

    /// SIGCONT the metadata server after [`Cluster::pause_meta`].
    pub fn resume_meta(&self) {
        self.meta.signal(libc::SIGCONT);
    }

    /// SIGKILL the metadata server.
    pub fn kill_meta(&mut self) {
        self.meta.kill();
    }

    /// Kills the metadata server if it runs, starts it with the same port and data directory,
    /// and waits until every running storage node has re-registered as alive.
    pub fn restart_meta(&mut self) {
        self.meta.kill();
        self.start_meta_process();
        self.wait_ready();
    }

    pub(crate) fn start_meta_process(&mut self) {
        let port = self.meta_port;
        self.start_with_retries("meta", port, |c| &mut c.meta);
    }

    /// Starts a process and waits until it accepts connections on `port`. A process that exits at
    /// once is retried a few times: after a SIGKILL its port can be briefly unavailable.
    fn start_with_retries(
        &mut self,
        name: &str,
        port: u16,
        proc: impl Fn(&mut Self) -> &mut ServerProcess,
    ) {
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            if let Err(e) = proc(self).start() {
                self.fail(&format!("cannot spawn {name}: {e}"));
            }
            let listening = poll_until(READY_TIMEOUT, || {
                proc(self).exited().is_some()
                    || TcpStream::connect_timeout(
                        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                        Duration::from_secs(1),
                    )
                    .is_ok()
            });
            match proc(self).exited() {
                None if listening.is_ok() => return,
                None => self.fail(&format!(
                    "{name} does not accept connections on port {port} after {READY_TIMEOUT:?}"
                )),
                Some(status) if attempt == ATTEMPTS => self.fail(&format!(
                    "{name} exited at start ({status}), {ATTEMPTS} times"
                )),
                Some(status) => {
                    eprintln!("bigfs-tests: {name} exited at start ({status}); retrying");
                    proc(self).kill();
                    thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Waits until every storage node the harness has started (and not paused) is listed as up
    /// (alive, or draining/drained) by `bigfs nodes --json`; fails early if a server process
    /// exits.
    pub fn wait_ready(&mut self) {
        let want: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.proc.is_started() && !n.paused.load(Ordering::Relaxed))
            .map(|n| n.id.clone())
            .collect();
        let mut last = String::new();
        let result = poll_until(READY_TIMEOUT, || {
            if let Some(msg) = self.crashed() {
                last = msg;
                return true;
            }
            let out = self.bigfs_timeout(["nodes", "--json"], Duration::from_secs(30));
            last = crate::output::describe(&out);
            let alive = up_ids(&out.stdout);
            want.iter().all(|id| alive.contains(id))
        });
        if let Some(msg) = self.crashed() {
            self.fail(&format!(
                "a server exited while the cluster was starting: {msg}"
            ));
        }
        if let Err(waited) = result {
            self.fail(&format!(
                "after {waited:?}, not every node of {want:?} is alive; last `bigfs nodes --json`:\n{last}"
            ));
        }
    }

    /// A description of the server processes that exited without the harness killing them.
    fn crashed(&mut self) -> Option<String> {
        let mut msg = String::new();
        if let Some(status) = self.meta.exited() {
            let _ = write!(msg, "meta exited ({status}); ");
        }
        for node in &mut self.nodes {
            if let Some(status) = node.proc.exited() {
                let _ = write!(msg, "{} exited ({status}); ", node.id);
            }
        }
        (!msg.is_empty()).then_some(msg)
    }

    /// Polls `cond` until it holds; after `timeout` fails the test naming `what`, with log tails.
    #[track_caller]
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl FnMut() -> bool,
    ) -> Duration {
        match poll_until(timeout, cond) {
            Ok(took) => took,
            Err(waited) => self.fail(&format!("timed out after {waited:?} waiting until {what}")),
        }
    }

    /// The last lines of every process's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = self.meta.log_tail(40);
        for node in &self.nodes {
            out.push_str(&node.proc.log_tail(25));
        }
        out
    }

    /// Panics with `msg`, the cluster directory (which is kept) and the log tails.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n\ncluster dir: {}\n{}",
            self.root.display(),
            self.log_tails()
        )
    }

    /// Fails the test if a server log contains "panicked" (a panic in a background task that
    /// did not crash the process still is a bug).
    #[track_caller]
    pub fn check_logs(&self) {
        if let Some(report) = self.panics_in_logs() {
            self.fail(&report);
        }
    }

    fn panics_in_logs(&self) -> Option<String> {
        let mut report = String::new();
        for proc in std::iter::once(&self.meta).chain(self.nodes.iter().map(|n| &n.proc)) {
            let text = proc.log_text();
            let lines: Vec<&str> = text.lines().collect();
            // The panic message is on the "panicked at" line (older Rust) or the next one.
            let allowed = |at: usize| {
                lines[at..lines.len().min(at + 2)]
                    .iter()
                    .any(|l| self.allowed_panics.iter().any(|a| l.contains(a.as_str())))
            };
            let hits: Vec<&str> = (0..lines.len())
                .filter(|&at| lines[at].contains("panicked") && !allowed(at))
                .map(|at| lines[at])
                .take(5)
                .collect();
            if !hits.is_empty() {
                let _ = writeln!(
                    report,
                    "{} log ({}) has panics:",
                    proc.name,
                    proc.log_path().display()
                );
                for hit in hits {
                    let _ = writeln!(report, "    {hit}");
                }
            }
        }
        (!report.is_empty()).then_some(report)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.proc.kill();
        }
        self.meta.kill();
        let panics = self.panics_in_logs();
        let keep =
            thread::panicking() || panics.is_some() || env::var_os("BIGFS_TEST_KEEP").is_some();
        if keep {
            if let Some(dir) = self.dir.take() {
                eprintln!(
                    "bigfs-tests: kept the cluster directory {}",
                    dir.keep().display()
                );
            }
        }
        if let Some(report) = panics {
            if !thread::panicking() {
                panic!(
                    "{report}\ncluster dir: {}\n{}",
                    self.root.display(),
                    self.log_tails()
                );
            }
        }
    }
}

/// The ids of the nodes that are up (state "alive", "draining" or "drained": a draining node still
/// heartbeats) in the output of `bigfs nodes --json` (none if it does not parse).
pub(crate) fn up_ids(stdout: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Array(nodes)) = serde_json::from_slice(stdout) else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter(|n| matches!(n["state"].as_str(), Some("alive" | "draining" | "drained")))
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect()
}
