//! The metadata server's own metrics, besides the per-method ones every gRPC server has (see
//! [`bigfs_proto::observe::rpc`]); their names start with `bigfs_meta_`.
//!
//! Gauges read from the cluster's soft state (nodes by state, repair copies, the garbage
//! collection backlog, safe mode) are brought up to date at each scrape: one pass over the
//! nodes under the cluster lock. Files, chunks and chunk health need a pass over the namespace
//! and the whole chunk table, too much for a scrape over millions of chunks: [`survey`] runs
//! fsck's own count in the background (the cluster lock taken one batch of chunks at a time)
//! and scrapes show its latest result. It pauses at least [`SURVEY_PAUSE`] between runs, and
//! four times as long as the last run took, so a big namespace costs at most a fifth of a core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;

use crate::store::{FsckReport, MetaStore};

/// The shortest pause between two surveys of the chunk table.
pub const SURVEY_PAUSE: Duration = Duration::from_secs(3);

/// A survey's pause is at least this many times its own duration.
const SURVEY_PAUSE_FACTOR: u32 = 4;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

pub struct MetaMetrics {
    files: Gauge,
    chunks: Gauge,
    under_replicated: Gauge,
    missing: Gauge,
    corrupt: Gauge,
    nodes: Family<StateLabels, Gauge>,
    repairs_queued: Gauge,
    repairs_sent: Gauge,
    repairs_waiting: Gauge,
    repairs_answered: Family<ResultLabels, Counter>,
    gc_waiting: Gauge,
    deletes_queued: Gauge,
    safe_mode: Gauge,
}

impl MetaMetrics {
    /// Creates the metrics and registers them, with `store`'s flush histogram, in `registry`.
    pub fn register(registry: &mut Registry, store: &MetaStore) -> Self {
        let metrics = Self {
            files: Gauge::default(),
            chunks: Gauge::default(),
            under_replicated: Gauge::default(),
            missing: Gauge::default(),
            corrupt: Gauge::default(),
            nodes: Family::default(),
            repairs_queued: Gauge::default(),
            repairs_sent: Gauge::default(),
            repairs_waiting: Gauge::default(),
            repairs_answered: Family::default(),
            gc_waiting: Gauge::default(),
            deletes_queued: Gauge::default(),
            safe_mode: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("meta");
        let gauges: [(&str, &str, &Gauge); 11] = [
            ("files", "Files in the namespace, at the last survey", &metrics.files),
            ("chunks", "Chunks some file references, at the last survey", &metrics.chunks),
            (
                "chunks_under_replicated",
                "Referenced chunks with fewer live copies than wanted (but some), at the last survey",
                &metrics.under_replicated,
            ),
            (
                "chunks_missing",
                "Referenced chunks with no live copy, at the last survey",
                &metrics.missing,
            ),
            (
                "chunks_corrupt",
                "Referenced chunks with a copy found corrupt and not yet replaced, at the last survey",
                &metrics.corrupt,
            ),
            (
                "repair_copies_queued",
                "Repair copies planned and not yet sent to their source",
                &metrics.repairs_queued,
            ),
            (
                "repair_copies_in_flight",
                "Repair copies sent to their source and not yet confirmed",
                &metrics.repairs_sent,
            ),
            (
                "repair_chunks_waiting",
                "Chunks short of copies not yet ordered: no room on a source or a target (--repair-concurrency), or no live copy to copy",
                &metrics.repairs_waiting,
            ),
            (
                "gc_pending_chunks",
                "Chunks no file references, waiting out the grace period before deletion",
                &metrics.gc_waiting,
            ),
            (
                "gc_deletes_queued",
                "Chunk deletes waiting for the nodes' next heartbeats",
                &metrics.deletes_queued,
            ),
            (
                "safe_mode",
                "1 while the server waits for known nodes to report after a restart (no repair, no deletion)",
                &metrics.safe_mode,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        r.register(
            "repair_copies_answered",
            "Repair copies by result: stored (answered so by their source), or failed (failed, unanswered, timed out, or their source or target died: planned again)",
            metrics.repairs_answered.clone(),
        );
        r.register(
            "nodes",
            "Storage nodes by state: alive, suspect, dead, draining, drained",
            metrics.nodes.clone(),
        );
        r.register_with_unit(
            "flush_duration",
            "Time to make namespace changes durable (the sled flush every change waits for)",
            Unit::Seconds,
            store.flush_histogram(),
        );
        let (flushes, flush_requests) = store.flush_counters();
        r.register(
            "flushes",
            "Sled flushes run; concurrent changes share one (group commit)",
            flushes,
        );
        r.register(
            "flush_requests",
            "Changes that waited for a flush before being acknowledged",
            flush_requests,
        );
        r.register(
            "cluster_lock_waits",
            "Takings of the cluster lock that found it held and waited (each blocks a thread)",
            store.cluster_lock_waits(),
        );
        metrics
    }

    /// Brings the gauges read from the cluster's soft state up to date.
    pub fn refresh(&self, store: &MetaStore) {
        let gauges = store.gauges();
        for (state, count) in gauges.nodes {
            self.nodes
                .get_or_create(&StateLabels { state })
                .set(gauge(count));
        }
        self.repairs_queued.set(gauge(gauges.repairs_queued));
        self.repairs_sent.set(gauge(gauges.repairs_sent));
        self.repairs_waiting.set(gauge(gauges.repairs_waiting));
        for (result, total) in [
            ("stored", gauges.repairs_stored),
            ("failed", gauges.repairs_failed),
        ] {
            let counter = self
                .repairs_answered
                .get_or_create(&ResultLabels { result });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.gc_waiting.set(gauge(gauges.gc_waiting));
        self.deletes_queued.set(gauge(gauges.deletes_queued));
        self.safe_mode.set(gauges.safe_mode.into());
    }

    fn record_survey(&self, report: &FsckReport) {
        self.files.set(gauge(report.files));
        self.chunks.set(gauge(report.counts.chunks));
        self.under_replicated
            .set(gauge(report.counts.under_replicated));
        self.missing.set(gauge(report.counts.missing));
        self.corrupt.set(gauge(report.counts.corrupt));
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Surveys the namespace and chunk table for `metrics` until `cancel` fires (see the module
/// doc for its pace).
pub async fn survey(metrics: Arc<MetaMetrics>, store: Arc<MetaStore>, cancel: CancellationToken) {
    loop {
        let started = Instant::now();
        match store.fsck(0).await {
            Ok(report) => metrics.record_survey(&report),
            Err(e) => tracing::warn!("cannot survey the chunk table for metrics: {e}"),
        }
        let pause = SURVEY_PAUSE.max(started.elapsed() * SURVEY_PAUSE_FACTOR);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use prometheus_client::encoding::prometheus_text::encode;

    use super::*;
    use crate::cluster::{ClusterConfig, NodeUsage};
    use crate::store::Registration;
    use bigfs_proto::NodeRef;

    fn config() -> ClusterConfig {
        ClusterConfig {
            replication: 2,
            min_replicas: 1,
            heartbeat_timeout: Duration::from_secs(10),
            gc_grace: Duration::from_secs(30),
            write_lease: Duration::from_secs(60),
            safe_mode_timeout: Duration::from_secs(60),
            repair_concurrency: 4,
            chunk_size: 1 << 20,
        }
    }

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    #[tokio::test]
    async fn gauges_follow_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(dir.path(), 1 << 20, config(), Instant::now()).unwrap();
        let mut registry = Registry::with_prefix("bigfs");
        let metrics = MetaMetrics::register(&mut registry, &store);
        metrics.refresh(&store);
        let text = scrape(&registry);
        assert!(
            text.contains("bigfs_meta_nodes{state=\"alive\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("bigfs_meta_safe_mode 0\n"), "{text}");

        store
            .register(Registration {
                node: NodeRef {
                    id: "n1".into(),
                    addr: "http://n1".into(),
                },
                usage: NodeUsage {
                    capacity: 1 << 30,
                    used: 0,
                    chunks: 0,
                },
                chunks: Vec::new(),
            })
            .await
            .unwrap();
        let store = Arc::new(store);
        metrics.refresh(&store);
        metrics.record_survey(&store.fsck(0).await.unwrap());
        let text = scrape(&registry);
        assert!(
            text.contains("bigfs_meta_nodes{state=\"alive\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("bigfs_meta_nodes{state=\"dead\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("bigfs_meta_files 0\n"), "{text}");
        // The registration flushed the node's address.
        assert!(
            text.contains("bigfs_meta_flush_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(text.contains("bigfs_meta_flushes_total 1\n"), "{text}");
        assert!(
            text.contains("bigfs_meta_flush_requests_total 1\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_restarted_store_is_in_safe_mode() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = MetaStore::open(dir.path(), 1 << 20, config(), Instant::now()).unwrap();
            store
                .register(Registration {
                    node: NodeRef {
                        id: "n1".into(),
                        addr: "http://n1".into(),
                    },
                    usage: NodeUsage::default(),
                    chunks: Vec::new(),
                })
                .await
                .unwrap();
        }
        let store = MetaStore::open(dir.path(), 1 << 20, config(), Instant::now()).unwrap();
        let mut registry = Registry::with_prefix("bigfs");
        MetaMetrics::register(&mut registry, &store).refresh(&store);
        assert!(scrape(&registry).contains("bigfs_meta_safe_mode 1\n"));
    }
}
