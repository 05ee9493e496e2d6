//! The storage node's own metrics, besides the per-method ones every gRPC server has (see
//! [`bigfs_proto::observe::rpc`]); their names start with `bigfs_node_`.
//!
//! The counters live in [`NodeCounters`], which the [`ChunkStore`] owns and every part of the
//! node reaches through it (the service, the scrubber, the heartbeat's copies); [`register`]
//! puts them in the process's registry, with gauges read from the store's index at each scrape
//! (a lock and a few numbers, however many chunks there are).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::chunk_store::ChunkStore;

/// Which copy failed verification.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CopyLabels {
    /// "received": bytes sent to the node did not match their id (refused, nothing stored);
    /// "stored": a copy on disk failed its hash when read or scrubbed (quarantined).
    pub copy: &'static str,
}

/// The node's counters. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct NodeCounters {
    pub chunk_writes: Counter,
    pub chunk_written_bytes: Counter,
    pub chunk_reads: Counter,
    pub chunk_read_bytes: Counter,
    pub verification_failures: Family<CopyLabels, Counter>,
    pub quarantined: Counter,
    pub scrubbed_bytes: Counter,
    /// When the scrubber last finished a full pass, in seconds since the Unix epoch.
    pub scrub_last_pass: Gauge<f64, AtomicU64>,
    pub repair_copies_sent: Counter,
    pub repair_copies_received: Counter,
    /// Needles appended to volumes: chunks, tombstones and compaction's copies.
    pub volume_needles_written: Counter,
    /// Fsyncs of volumes: group commits, seals and compactions.
    pub volume_fsyncs: Counter,
    pub volume_compactions: Counter,
    pub volume_reclaimed_bytes: Counter,
    /// Bytes cut from the newest volume's torn tail at open.
    pub volume_torn_tail_bytes: Counter,
    /// Bytes of volumes read by the scans at open (past what their index files cover).
    pub volume_scanned_bytes: Counter,
    /// Volume index files found damaged at open (cut to their trusted entries, then completed
    /// by a scan).
    pub volume_index_damaged: Counter,
}

impl NodeCounters {
    pub fn verification_failed(&self, copy: &'static str) {
        self.verification_failures
            .get_or_create(&CopyLabels { copy })
            .inc();
    }
}

/// Registers the node's metrics in `registry`: `store`'s counters, and gauges of its index
/// brought up to date by the returned function, to call before each scrape. `scrub_rate` is
/// the scrubber's limit in bytes a second, 0 when it is off.
pub fn register(
    registry: &mut Registry,
    store: Arc<ChunkStore>,
    scrub_rate: u64,
) -> impl Fn() + Send + Sync + 'static {
    let r = registry.sub_registry_with_prefix("node");
    let c = store.counters().clone();
    r.register(
        "chunk_writes",
        "Chunks stored (a put of a chunk already held counts too)",
        c.chunk_writes,
    );
    r.register_with_unit(
        "chunk_written",
        "Bytes of chunks stored",
        Unit::Bytes,
        c.chunk_written_bytes,
    );
    r.register(
        "chunk_reads",
        "Chunks read and verified for clients and peers",
        c.chunk_reads,
    );
    r.register_with_unit(
        "chunk_read",
        "Bytes of chunks read and verified",
        Unit::Bytes,
        c.chunk_read_bytes,
    );
    r.register(
        "verification_failures",
        "Chunks whose bytes did not match their id: received ones refused, stored ones quarantined",
        c.verification_failures,
    );
    r.register(
        "quarantined_chunks",
        "Copies moved to quarantine",
        c.quarantined,
    );
    r.register_with_unit(
        "scrubbed",
        "Bytes the scrubber read and verified",
        Unit::Bytes,
        c.scrubbed_bytes,
    );
    r.register(
        "scrub_last_pass_timestamp_seconds",
        "When the scrubber last finished a full pass (Unix time; 0: not since the start)",
        c.scrub_last_pass,
    );
    let rate = Gauge::<i64>::default();
    rate.set(i64::try_from(scrub_rate).unwrap_or(i64::MAX));
    r.register_with_unit(
        "scrub_rate_limit",
        "Most bytes a second the scrubber reads (0: scrubbing is off)",
        Unit::Other("bytes_per_second".into()),
        rate,
    );
    r.register(
        "repair_copies_sent",
        "Repair copies this node sent that a target stored",
        c.repair_copies_sent,
    );
    r.register(
        "repair_copies_received",
        "Repair copies this node received and stored",
        c.repair_copies_received,
    );
    r.register(
        "volume_needles_written",
        "Needles appended to volume files: small chunks, tombstones and compaction's copies",
        c.volume_needles_written,
    );
    r.register(
        "volume_fsyncs",
        "Fsyncs of volume files (group commits, seals, compactions); needles written per fsync is the group commit's batching",
        c.volume_fsyncs,
    );
    r.register(
        "volume_compactions",
        "Volumes compacted",
        c.volume_compactions,
    );
    r.register_with_unit(
        "volume_reclaimed",
        "Bytes of volume files given back by compaction",
        Unit::Bytes,
        c.volume_reclaimed_bytes,
    );
    r.register_with_unit(
        "volume_torn_tail",
        "Bytes cut from the newest volume's torn tail when the node opened its store",
        Unit::Bytes,
        c.volume_torn_tail_bytes,
    );
    r.register_with_unit(
        "volume_scanned",
        "Bytes of volume files read when the node opened its store, past what their index files cover",
        Unit::Bytes,
        c.volume_scanned_bytes,
    );
    r.register(
        "volume_index_damaged",
        "Volume index files found damaged when the node opened its store, and rebuilt by a scan",
        c.volume_index_damaged,
    );
    let [volumes, volume_bytes, volume_live] = std::array::from_fn(|_| Gauge::<i64>::default());
    r.register("volume_files", "Volume files", volumes.clone());
    r.register_with_unit(
        "volume",
        "Bytes of volume files",
        Unit::Bytes,
        volume_bytes.clone(),
    );
    r.register_with_unit(
        "volume_live",
        "Bytes of the needles of chunks stored in volume files; the rest is garbage for compaction",
        Unit::Bytes,
        volume_live.clone(),
    );
    let [chunks, stored, capacity, free] = std::array::from_fn(|_| Gauge::<i64>::default());
    r.register("chunks", "Chunks stored", chunks.clone());
    r.register_with_unit(
        "stored",
        "Bytes of chunks stored, promised to writes in progress, and of volume garbage awaiting compaction",
        Unit::Bytes,
        stored.clone(),
    );
    r.register_with_unit(
        "capacity",
        "Space the node may use for chunks",
        Unit::Bytes,
        capacity.clone(),
    );
    r.register_with_unit("free", "Capacity not yet used", Unit::Bytes, free.clone());
    move || {
        let usage = store.usage();
        let set = |gauge: &Gauge, n: u64| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        set(&chunks, usage.chunks);
        set(&stored, usage.used);
        set(&capacity, usage.capacity);
        set(&free, usage.capacity.saturating_sub(usage.used));
        let small = store.volume_usage();
        set(&volumes, small.volumes);
        set(&volume_bytes, small.bytes);
        set(&volume_live, small.live);
    }
}
