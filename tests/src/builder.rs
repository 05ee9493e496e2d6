//! Starting a cluster: the options, the command lines of the servers and the directory layout
//! described in [`crate::cluster`].

use std::ffi::OsString;
use std::fs;
use std::sync::atomic::AtomicU64;
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
        let ports = ports::allocate(1 + self.nodes);
        let meta_port = ports[0];
        let meta_url = format!("http://127.0.0.1:{meta_port}");

        let mut meta_args = args(&["--listen", &format!("127.0.0.1:{meta_port}")]);
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
        let meta_log = root.join("logs/meta.log");
        touch(&meta_log).expect("create meta log");
        let meta = ServerProcess::new("meta", bin_dir.join(bins::META), meta_args, meta_log);

        let nodes = (0..self.nodes)
            .map(|i| {
                let id = format!("node{i}");
                let port = ports[1 + i];
                let data = root.join(&id);
                fs::create_dir_all(&data).expect("create node dir");
                let mut a = args(&[
                    "--listen",
                    &format!("127.0.0.1:{port}"),
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
                if let Some(cap) = self.node_capacity {
                    a.extend(args(&["--capacity", &cap.to_string()]));
                }
                if self.fsync {
                    a.push("--fsync".into());
                }
                let log = root.join(format!("logs/{id}.log"));
                touch(&log).expect("create node log");
                let proc = ServerProcess::new(&id, bin_dir.join(bins::NODE), a, log);
                Node {
                    id,
                    port,
                    data,
                    proc,
                }
            })
            .collect();

        let mut cluster = Cluster {
            dir: Some(dir),
            root,
            meta_port,
            meta,
            nodes,
            chunk_size: self.chunk_size.map_or(CHUNK, |s| s as usize),
            heartbeat_timeout: self.heartbeat_timeout,
            counter: AtomicU64::new(0),
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
