//! BigFS metadata server.
//!
//! [`store::MetaStore`] is the core: it owns the namespace and chunk reference counts
//! ([`namespace`], persistent in sled), the cluster's soft state ([`cluster`]: nodes, chunk
//! locations, deletes, write leases) and replica placement ([`placement`]), and offers every
//! operation as one method. [`service`] is the gRPC edge, conversions only. The server never
//! carries chunk bytes: clients and nodes move them among themselves.

pub mod cluster;
pub mod error;
pub mod namespace;
pub mod placement;
pub mod records;
pub mod service;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use bigfs_proto::limits::{MAX_CHUNK_SIZE, MAX_META_MESSAGE, MAX_REPLICATION};
use bigfs_proto::pb::meta_server::MetaServer;
use bigfs_proto::transport;

use crate::cluster::ClusterConfig;
use crate::service::MetaService;
use crate::store::MetaStore;

/// How often failure detection, repair planning and garbage collection run.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// The smallest chunk size accepted; below it the per-chunk overhead dominates.
const MIN_CHUNK_SIZE: u64 = 1024;

pub struct MetaConfig {
    pub data_dir: PathBuf,
    pub chunk_size: u64,
    pub cluster: ClusterConfig,
}

impl MetaConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let c = &self.cluster;
        if !(1..=MAX_REPLICATION).contains(&c.replication) {
            bail!(
                "--replication must be 1..={MAX_REPLICATION}, not {}",
                c.replication
            );
        }
        if !(1..=c.replication).contains(&c.min_replicas) {
            bail!(
                "--min-replicas must be 1..=--replication ({}), not {}",
                c.replication,
                c.min_replicas
            );
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            bail!(
                "--chunk-size must be {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes, not {}",
                self.chunk_size
            );
        }
        if c.heartbeat_timeout.is_zero() {
            bail!("--heartbeat-timeout must be above zero");
        }
        Ok(())
    }
}

/// Serves on `listener` until `shutdown` fires.
pub async fn run(
    listener: TcpListener,
    config: MetaConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let store = MetaStore::open(
        &config.data_dir,
        config.chunk_size,
        config.cluster,
        Instant::now(),
    )
    .with_context(|| format!("open metadata store in {}", config.data_dir.display()))?;
    let store = Arc::new(store);
    let files = store.file_count()?;
    let local = listener.local_addr().context("read listening address")?;
    tracing::info!(
        files,
        chunk_size = config.chunk_size,
        "metadata server listening on {local}"
    );

    let maintenance = tokio::spawn(maintain(store.clone(), shutdown.child_token()));
    let service = MetaServer::new(MetaService::new(store.clone()))
        .max_decoding_message_size(MAX_META_MESSAGE)
        .max_encoding_message_size(MAX_META_MESSAGE);
    let served = transport::server()
        .add_service(service)
        .serve_with_incoming_shutdown(transport::incoming(listener), shutdown.cancelled())
        .await;
    shutdown.cancel();
    maintenance.await.context("maintenance task")?;
    store.flush().await.context("final flush")?;
    served.context("serve gRPC")?;
    tracing::info!("metadata server stopped");
    Ok(())
}

/// The metadata server's background loop: safe-mode exit, failure detection, repair and
/// garbage collection, once a tick.
async fn maintain(store: Arc<MetaStore>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        store.maintain();
    }
    tracing::info!("maintenance stopped");
}
