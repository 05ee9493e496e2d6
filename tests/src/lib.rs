//! The BigFS integration-test harness: it runs the real `bigfs-meta`, `bigfs-node` and `bigfs`
//! binaries as separate processes on loopback ports, each cluster in its own temporary directory.
//!
//! The harness owns process lifecycle and fault injection so that the suites in
//! `tests/cluster/` read as scenarios: [`Cluster::start`] (or [`Cluster::builder`]) brings a
//! cluster up and waits until every storage node is alive; [`Cluster::kill_node`],
//! [`Cluster::pause_node`], [`Cluster::restart_node`], [`Cluster::kill_meta`],
//! [`Cluster::restart_meta`] and [`Cluster::corrupt_chunk`] break it; [`Cluster::must_put`] and
//! [`Cluster::must_get`] drive the CLI and fail with the tail of every log.
//!
//! For the self-healing suites: [`ClusterBuilder`] takes extra metadata server and per-node
//! arguments and environment (e.g. [`ClusterBuilder::failpoints`]; the binaries are built with
//! the storage node's `failpoints` feature); [`Cluster::fsck_json`] and
//! [`Cluster::wait_healthy_with`] watch the cluster heal; [`Cluster::check_replicas_on_disk`]
//! and [`Cluster::holds_exactly`] compare what the metadata server claims with the chunk files
//! on the nodes' disks; [`Cluster::truncate_chunk`] and [`Cluster::delete_chunk_file`] damage
//! them; [`CliRunner`] runs the CLI from a background thread while the test's thread injects
//! faults; [`ContentModel`] tracks what each path may hold when puts fail; [`Rng`] makes
//! randomized tests replayable from a seed.
//!
//! Every server also gets an HTTP listener (`--http-listen`) on a port of its own: [`observe`]
//! scrapes it ([`Cluster::metrics`], [`Cluster::meta_metrics`]), reads its probes, asks the gRPC
//! health service, and runs `promtool` on the exposition.
//! For the web console: [`Gateway::start`] runs a `bigfs-gateway` beside a cluster,
//! [`Browser`] drives a headless Chromium through chromedriver, and [`http_get`] fetches what a
//! page links to. [`Gateway::start_s3`] serves the S3 API too; [`s3`] runs the S3 clients
//! against it.
//!
//! Failures are made debuggable rather than hidden: every panic raised by the harness carries the
//! log tails, and a cluster dropped while its test is panicking keeps its directory (the path is
//! printed on stderr) instead of deleting it.
//!
//! Environment: `BIGFS_BIN_DIR=DIR` uses the binaries in DIR instead of building them (see
//! [`bins`]); `BIGFS_TEST_KEEP=1` keeps every cluster directory, passing or not.
//!
//! Server processes receive SIGKILL when the thread that started them exits (Linux), so start
//! and restart them from the test's own thread, not from a helper thread that ends earlier.

pub mod bins;
pub mod browser;
mod builder;
mod chunks;
mod client;
pub mod cluster;
pub mod data;
mod gateway;
mod health;
mod http;
pub mod model;
pub mod observe;
pub mod output;
mod ports;
mod process;
pub mod rng;
pub mod s3;
mod stat;
pub mod wait;

pub use browser::Browser;
pub use chunks::{Damage, NodeDisks};
pub use client::{cli_command, run_cli, CliRunner, CLI_TIMEOUT};
pub use cluster::{Cluster, ClusterBuilder, READY_TIMEOUT};
pub use data::{diff_summary, distinct_chunks, expected_chunks, pseudo_random, CHUNK, KIB, MIB};
pub use gateway::{Gateway, S3_ACCESS_KEY, S3_SECRET_KEY};
pub use health::fsck_problems;
pub use http::{http_get, HttpResponse};
pub use model::ContentModel;
pub use output::{
    assert_failed_naming, assert_no_problems, check_failed_naming, describe, stderr_of, stdout_of,
};
pub use ports::{free_port, free_port_range};
pub use process::{run_closing_stdout, run_feeding, run_with_timeout, Feed};
pub use rng::Rng;
pub use stat::{stat_chunks, StatChunk};
pub use wait::wait_until;
