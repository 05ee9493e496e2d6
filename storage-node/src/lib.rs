//! BigFS storage node.
//!
//! A node keeps chunks as plain files named by their BLAKE3 id, and small ones as needles in
//! append-only volume files ([`chunk_store`]; a background [`Compactor`] reclaims the space of
//! deleted needles), serves them over gRPC ([`service`]), forwards writes down replication
//! chains, copies chunks to other nodes on the metadata server's repair orders ([`repair`])
//! and reports to the metadata server ([`heartbeat`]). A background [`scrubber`] re-verifies
//! stored chunks. Its identity lives in its data directory ([`node_id`]).

pub mod chunk_io;
pub mod chunk_store;
pub mod error;
pub mod heartbeat;
pub mod metrics;
pub mod node_id;
pub mod repair;
pub mod scrubber;
pub mod service;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use bigfs_proto::limits::MAX_CHUNK_MESSAGE;
use bigfs_proto::observe::health::Health;
use bigfs_proto::observe::rpc::RpcMetrics;
use bigfs_proto::observe::{self, http};
use bigfs_proto::pb::node_server::NodeServer;
use bigfs_proto::transport;
use tonic::server::NamedService;

use crate::chunk_io::IoMode;
use crate::chunk_store::compaction::Compactor;
use crate::chunk_store::{ChunkStore, StoreOptions};
use crate::heartbeat::Heartbeat;
use crate::scrubber::Scrubber;
use crate::service::NodeService;

pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub meta_url: String,
    pub id: Option<String>,
    pub capacity: u64,
    pub heartbeat_interval: Duration,
    pub fsync: bool,
    /// How chunk files are read and written.
    pub io: IoMode,
    /// Time from the start of one scrub pass to the start of the next; zero disables scrubbing.
    pub scrub_interval: Duration,
    /// Most bytes a second the scrubber reads.
    pub scrub_rate: u64,
    /// Bytes of repair copies this node sends at once.
    pub repair_window: u64,
    /// Chunks of at most this many bytes are appended to volumes; 0 keeps every chunk a file.
    pub small_chunk_max: u32,
    /// Volume files are sealed at about this size.
    pub volume_size: u64,
    /// How often to look for a volume to compact; zero disables compaction.
    pub compact_interval: Duration,
    /// Most bytes a second compaction reads.
    pub compact_rate: u64,
}

/// Serves gRPC on `listener`, and metrics and health probes on `http` if given, until
/// `shutdown` fires, then stops heartbeating and scrubbing and returns.
pub async fn run(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: NodeConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data directory {}", config.data_dir.display()))?;
    let node_id = node_id::load_or_create(&config.data_dir, config.id.as_deref())?;
    let options = StoreOptions {
        capacity: config.capacity,
        fsync: config.fsync,
        io: config.io,
        small_chunk_max: config.small_chunk_max,
        volume_size: config.volume_size,
    };
    let store = Arc::new(
        ChunkStore::open_with(&config.data_dir, options)
            .with_context(|| format!("open chunk store in {}", config.data_dir.display()))?,
    );
    let local = listener.local_addr().context("read listening address")?;
    let addr = format!("http://{local}");
    let usage = store.usage();
    tracing::info!(
        node = %node_id, %addr, chunks = usage.chunks, used = usage.used,
        capacity = usage.capacity, fsync = config.fsync, io = ?store.io_mode(), scrub_interval = ?config.scrub_interval,
        scrub_rate = config.scrub_rate, small_chunk_max = config.small_chunk_max,
        volumes = store.volume_usage().volumes, "storage node listening on {local}"
    );

    let mut registry = observe::registry();
    let rpc = RpcMetrics::register(&mut registry);
    let scrub_rate = match config.scrub_interval.is_zero() {
        true => 0,
        false => config.scrub_rate,
    };
    let refresh = metrics::register(&mut registry, store.clone(), scrub_rate);
    // Ready until the first heartbeat says otherwise (draining) or the node fills up.
    let (health, health_service) = Health::new(NodeServer::<NodeService>::NAME, None).await;
    let heartbeat = Heartbeat::connect(
        node_id.clone(),
        addr,
        &config.meta_url,
        config.heartbeat_interval,
        store.clone(),
        health.clone(),
    )?;
    let heartbeat = tokio::spawn(heartbeat.run(shutdown.child_token()));
    let scrubber = Scrubber::new(store.clone(), config.scrub_interval, config.scrub_rate);
    let scrubber = tokio::spawn(scrubber.run(shutdown.child_token()));
    let compactor = Compactor::new(store.clone(), config.compact_interval, config.compact_rate);
    let compactor = tokio::spawn(compactor.run(shutdown.child_token()));

    let service = NodeServer::new(NodeService::new(node_id, store, config.repair_window))
        .max_decoding_message_size(MAX_CHUNK_MESSAGE)
        .max_encoding_message_size(MAX_CHUNK_MESSAGE);
    let http = http.map(|http| {
        let page = http::Metrics {
            registry,
            refresh: Box::new(refresh),
        };
        tokio::spawn(http::serve(http, page, health, shutdown.child_token()))
    });
    let served = transport::server(rpc)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(transport::incoming(listener), shutdown.cancelled())
        .await;
    shutdown.cancel();
    // All were cancelled with `shutdown`; the scrubber stops after at most one chunk read,
    // the compactor after at most one needle.
    let heartbeat = heartbeat.await.context("heartbeat task");
    let scrubber = scrubber.await.context("scrubber task");
    let compactor = compactor.await.context("compactor task");
    heartbeat?;
    scrubber?;
    compactor?;
    if let Some(http) = http {
        http.await.context("HTTP task")?.context("serve HTTP")?;
    }
    served.context("serve gRPC")?;
    tracing::info!("storage node stopped");
    Ok(())
}
