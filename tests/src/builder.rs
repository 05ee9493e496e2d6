//! Starting a cluster: the options, the command lines of the servers and the directory layout
//! described in [`crate::cluster`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use crate::bins;
use crate::cluster::{Cluster, Node};
use crate::data::CHUNK;
use crate::ports;
use crate::process::{touch, ServerProcess};

/// Options for [`Cluster`]; unset options are not passed, so the binaries' defaults apply.
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    nodes: usize,
    replication: Option<u32>,
    min_replicas: Option<u32>,
    chunk_size: Option<u64>,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    gc_grace: Option<Duration>,
    node_capacity: Option<u64>,
    fsync: bool,
    /// Extra `bigfs-meta` arguments, after the ones above.
    meta_args: Vec<String>,
    /// Extra arguments for every storage node, after the ones above.
    all_node_args: Vec<String>,
    /// Extra arguments of single storage nodes, after the ones for every node.
    node_args: BTreeMap<usize, Vec<String>>,
    /// Capacity of single storage nodes, overriding `node_capacity`.
    capacity_of: BTreeMap<usize, u64>,
    /// Extra environment variables of single storage nodes (e.g. `FAILPOINTS`).
    node_env: BTreeMap<usize, Vec<(String, String)>>,
}

impl ClusterBuilder {
    /// This harness's defaults: `nodes` storage nodes, 200 ms heartbeats, 5 s heartbeat
    /// timeout; everything else as the binaries default.
    pub(crate) fn new(nodes: usize) -> Self {
        Self {
            nodes,
            replication: None,
            min_replicas: None,
            chunk_size: None,
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(5),
            gc_grace: None,
            node_capacity: None,
            fsync: false,
            meta_args: Vec::new(),
            all_node_args: Vec::new(),
            node_args: BTreeMap::new(),
            capacity_of: BTreeMap::new(),
            node_env: BTreeMap::new(),
        }
    }

    /// Storage nodes send a heartbeat every `interval` (default here: 200 ms).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// The metadata server marks a node dead after `timeout` without heartbeats (default here:
    /// 5 s, so that a loaded machine does not produce false deaths; suspicion starts at half).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Cluster replication factor R (`--replication`).
    pub fn replication(mut self, r: u32) -> Self {
        self.replication = Some(r);
        self
    }

    /// Copies W that must be durable before a put succeeds (`--min-replicas`).
    pub fn min_replicas(mut self, w: u32) -> Self {
        self.min_replicas = Some(w);
        self
    }

    /// Chunk size in bytes (`--chunk-size`).
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = Some(bytes);
        self
    }

    /// Grace period before unreferenced chunks are deleted (`--gc-grace`).
    pub fn gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = Some(grace);
        self
    }

    /// Capacity of every storage node in bytes (`--capacity`).
    pub fn node_capacity(mut self, bytes: u64) -> Self {
        self.node_capacity = Some(bytes);
        self
    }

    /// Storage nodes fsync chunks before acknowledging them (`--fsync`).
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// How long chunks handed out to a put in progress are protected (`--write-lease`).
    pub fn write_lease(self, lease: Duration) -> Self {
        self.meta_args(&["--write-lease", &millis(lease)])
    }

    /// How long a restarted metadata server waits for the nodes' reports before it deletes or
    /// repairs anything (`--safe-mode-timeout`).
    pub fn safe_mode_timeout(self, timeout: Duration) -> Self {
        self.meta_args(&["--safe-mode-timeout", &millis(timeout)])
    }

    /// Copies in flight per node during repair (`--repair-concurrency`).
    pub fn repair_concurrency(self, n: u32) -> Self {
        self.meta_args(&["--repair-concurrency", &n.to_string()])
    }

    /// Extra arguments for `bigfs-meta`.
    pub fn meta_args(mut self, extra: &[&str]) -> Self {
        self.meta_args.extend(extra.iter().map(|a| a.to_string()));
        self
    }

    /// Every storage node re-hashes all its chunks every `interval` (`--scrub-interval`).
    pub fn scrub_interval(self, interval: Duration) -> Self {
        self.all_node_args(&["--scrub-interval", &millis(interval)])
    }

    /// Extra arguments for every storage node.
    pub fn all_node_args(mut self, extra: &[&str]) -> Self {
        self.all_node_args
            .extend(extra.iter().map(|a| a.to_string()));
        self
    }

    /// Extra arguments for storage node `i` only.
    pub fn node_args(mut self, i: usize, extra: &[&str]) -> Self {
        self.node_args
            .entry(i)
            .or_default()
            .extend(extra.iter().map(|a| a.to_string()));
        self
    }

    /// Capacity of storage node `i` in bytes, overriding [`ClusterBuilder::node_capacity`].
    pub fn capacity_of(mut self, i: usize, bytes: u64) -> Self {
        self.capacity_of.insert(i, bytes);
        self
    }

    /// An environment variable for storage node `i` (kept across restarts; see
    /// [`Cluster::set_node_env`] to change it).
    pub fn node_env(mut self, i: usize, key: &str, value: &str) -> Self {
        self.node_env
            .entry(i)
            .or_default()
            .push((key.to_string(), value.to_string()));
        self
    }

    /// Storage node `i` starts with `FAILPOINTS=spec` (e.g. `chunk_store::fsync=return`). The
    /// binaries are built with the `failpoints` feature (see [`crate::bins`]).
    pub fn failpoints(self, i: usize, spec: &str) -> Self {
        self.node_env(i, "FAILPOINTS", spec)
    }

    /// Builds the binaries if needed, starts the metadata server and the nodes, and waits until
    /// every node is alive. Panics with the log tails if that does not happen in time.
    pub fn start(self) -> Cluster {
        let bin_dir = bins::bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("bigfs-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let root = dir.path().to_path_buf();
        for sub in ["meta", "logs", "work"] {
            fs::create_dir_all(root.join(sub)).expect("create cluster dirs");
        }
        // A gRPC port and an HTTP port (metrics, health) for every server.
        let ports = ports::allocate(2 * (1 + self.nodes));
        let (meta_port, meta_http_port) = (ports[0], ports[1]);
        let meta_url = format!("http://127.0.0.1:{meta_port}");

        let mut meta_args = args(&[
            "--listen",
            &format!("127.0.0.1:{meta_port}"),
            "--http-listen",
            &format!("127.0.0.1:{meta_http_port}"),
        ]);
        meta_args.extend(args(&["--data"]));
        meta_args.push(root.join("meta").into_os_string());
        meta_args.extend(args(&[
            "--heartbeat-timeout",
            &millis(self.heartbeat_timeout),
        ]));
        if let Some(r) = self.replication {
            meta_args.extend(args(&["--replication", &r.to_string()]));
        }
        if let Some(w) = self.min_replicas {
            meta_args.extend(args(&["--min-replicas", &w.to_string()]));
        }
        if let Some(size) = self.chunk_size {
            meta_args.extend(args(&["--chunk-size", &size.to_string()]));
        }
        if let Some(grace) = self.gc_grace {
            meta_args.extend(args(&["--gc-grace", &millis(grace)]));
        }
        meta_args.extend(self.meta_args.iter().map(OsString::from));
        let meta_log = root.join("logs/meta.log");
        touch(&meta_log).expect("create meta log");
        let meta = ServerProcess::new("meta", bin_dir.join(bins::META), meta_args, meta_log);

        let nodes = (0..self.nodes)
            .map(|i| {
                let id = format!("node{i}");
                let (port, http_port) = (ports[2 + 2 * i], ports[3 + 2 * i]);
                let data = root.join(&id);
                fs::create_dir_all(&data).expect("create node dir");
                let mut a = args(&[
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--http-listen",
                    &format!("127.0.0.1:{http_port}"),
                    "--meta",
                    &meta_url,
                ]);
                a.extend(args(&["--data"]));
                a.push(data.clone().into_os_string());
                a.extend(args(&[
                    "--id",
                    &id,
                    "--heartbeat-interval",
                    &millis(self.heartbeat_interval),
                ]));
                if let Some(cap) = self.capacity_of.get(&i).or(self.node_capacity.as_ref()) {
                    a.extend(args(&["--capacity", &cap.to_string()]));
                }
                if self.fsync {
                    a.push("--fsync".into());
                }
                a.extend(self.all_node_args.iter().map(OsString::from));
                a.extend(
                    self.node_args
                        .get(&i)
                        .into_iter()
                        .flatten()
                        .map(OsString::from),
                );
                let log = root.join(format!("logs/{id}.log"));
                touch(&log).expect("create node log");
                let mut proc = ServerProcess::new(&id, bin_dir.join(bins::NODE), a, log);
                for (key, value) in self.node_env.get(&i).into_iter().flatten() {
                    proc.set_env(key, Some(value));
                }
                Node {
                    id,
                    port,
                    http_port,
                    data,
                    proc,
                    paused: AtomicBool::new(false),
                }
            })
            .collect();

        let mut cluster = Cluster {
            dir: Some(dir),
            root,
            meta_port,
            meta_http_port,
            meta,
            nodes,
            chunk_size: self.chunk_size.map_or(CHUNK, |s| s as usize),
            heartbeat_timeout: self.heartbeat_timeout,
            counter: Arc::new(AtomicU64::new(0)),
            allowed_panics: Vec::new(),
        };
        cluster.start_meta_process();
        for i in 0..cluster.nodes.len() {
            if let Err(e) = cluster.nodes[i].proc.start() {
                cluster.fail(&format!("cannot spawn storage node {i}: {e}"));
            }
        }
        cluster.wait_ready();
        cluster
    }
}

/// Converts string arguments to the `OsString`s of a command line.
fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// A duration as a flag value the binaries parse (`200ms`).
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}
