//! BigFS metadata server.
//!
//! [`store::MetaStore`] is the core: it owns the namespace and chunk reference counts
//! ([`namespace`], persistent in sled), the cluster's soft state ([`cluster`]: nodes, chunk
//! locations, deletes, write leases) and replica placement ([`placement`]), and offers every
//! operation as one method. [`service`] is the gRPC edge, conversions only. The server never
//! carries chunk bytes: clients and nodes move them among themselves.

pub mod cluster;
pub mod copy_orders;
pub mod error;
mod group_flush;
pub mod metrics;
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
use tonic::server::NamedService;

use bigfs_proto::limits::{MAX_CHUNK_SIZE, MAX_META_MESSAGE, MAX_REPLICATION};
use bigfs_proto::observe::health::Health;
use bigfs_proto::observe::rpc::RpcMetrics;
use bigfs_proto::observe::{self, http};
use bigfs_proto::pb::meta_server::MetaServer;
use bigfs_proto::transport;

use crate::cluster::ClusterConfig;
use crate::copy_orders::CopyOrders;
use crate::metrics::MetaMetrics;
use crate::service::MetaService;
use crate::store::{MetaStore, SafeModeStatus};

/// How often failure detection, repair planning and garbage collection run.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// After a copy is answered, how long to gather more answers before planning again: each plan
/// takes the cluster lock for a pass over the chunks waiting for repair.
const REPLAN_GAP: Duration = Duration::from_millis(20);

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

/// Serves gRPC on `listener`, and metrics and health probes on `http` if given, until
/// `shutdown` fires.
pub async fn run(
    listener: TcpListener,
    http: Option<TcpListener>,
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

    let mut registry = observe::registry();
    let rpc = RpcMetrics::register(&mut registry);
    let metrics = Arc::new(MetaMetrics::register(&mut registry, &store));
    let (health, health_service) = Health::new(
        MetaServer::<MetaService>::NAME,
        not_ready(store.safe_mode()),
    )
    .await;
    let maintenance = tokio::spawn(maintain(
        store.clone(),
        health.clone(),
        shutdown.child_token(),
    ));
    let observing = http.map(|http| {
        let survey = tokio::spawn(metrics::survey(
            metrics.clone(),
            store.clone(),
            shutdown.child_token(),
        ));
        let (metrics, store) = (metrics.clone(), store.clone());
        let page = http::Metrics {
            registry,
            refresh: Box::new(move || metrics.refresh(&store)),
        };
        let server = tokio::spawn(http::serve(http, page, health, shutdown.child_token()));
        (survey, server)
    });
    let service = MetaServer::new(MetaService::new(store.clone()))
        .max_decoding_message_size(MAX_META_MESSAGE)
        .max_encoding_message_size(MAX_META_MESSAGE);
    let served = transport::server(rpc)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(transport::incoming(listener), shutdown.cancelled())
        .await;
    shutdown.cancel();
    maintenance.await.context("maintenance task")?;
    if let Some((survey, server)) = observing {
        survey.await.context("metrics survey task")?;
        server.await.context("HTTP task")?.context("serve HTTP")?;
    }
    store.flush().await.context("final flush")?;
    served.context("serve gRPC")?;
    tracing::info!("metadata server stopped");
    Ok(())
}

/// Why the server is not ready: only safe mode holds it back. (The reason names whom it
/// waits for but not for how long, so that it changes, and is logged, only when a node reports.)
fn not_ready(safe_mode: Option<SafeModeStatus>) -> Option<String> {
    safe_mode.map(|safe| {
        format!(
            "safe mode: waiting for {} to report their chunks",
            safe.waiting_for.join(", ")
        )
    })
}

/// The metadata server's background loop: safe-mode exit, failure detection, repair and
/// garbage collection, and then readiness, once a tick; between ticks, repair planning again
/// whenever copies are answered, so that sources and targets never wait for the tick.
async fn maintain(store: Arc<MetaStore>, health: Health, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let orders = CopyOrders::new(store.clone());
    let answered = orders.wake();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                // On the blocking pool: a round reads the chunk table and records finished
                // drains in sled, and waits for the cluster lock, none of which may hold a
                // worker that handlers need.
                let round = store.clone();
                tokio::task::spawn_blocking(move || round.maintain())
                    .await
                    .expect("maintenance round panicked");
                orders.send(store.take_orders());
                health.set(not_ready(store.safe_mode())).await;
            }
            _ = answered.notified() => {
                tokio::time::sleep(REPLAN_GAP).await;
                orders.send(store.plan_repairs());
            }
        }
    }
    tracing::info!("maintenance stopped");
}
