//! `bigfs-node`: parses flags, binds, and runs the storage node.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use bigfs_node::chunk_io::IoMode;
use bigfs_proto::process::{self, LogFormat};
use bigfs_proto::transport;
use bigfs_proto::units::{ReadableDuration, Size};

/// BigFS storage node: stores BLAKE3-verified chunks and serves them to clients and peers.
#[derive(Parser, Debug)]
#[command(version = bigfs_proto::VERSION, about)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:9401")]
    listen: String,
    /// Address to serve HTTP on: Prometheus metrics at /metrics, liveness at /healthz,
    /// readiness at /readyz. Without it there is no HTTP listener.
    #[arg(long)]
    http_listen: Option<String>,
    /// How log lines are written: text, or json (one object per line).
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
    /// The metadata server's URL.
    #[arg(long, default_value = "http://127.0.0.1:9400")]
    meta: String,
    /// Data directory: chunks, quarantine and the node's id live here.
    #[arg(long)]
    data: PathBuf,
    /// Node id, stored in the data directory on first start; a different id later is refused.
    /// Generated when not given.
    #[arg(long)]
    id: Option<String>,
    /// Space the node may use for chunks (e.g. 10GiB, 500MB), counting the bytes of deleted
    /// small chunks in volume files until compaction gives them back.
    #[arg(long, default_value = "10GiB")]
    capacity: Size,
    /// How often to report to the metadata server (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s")]
    heartbeat_interval: ReadableDuration,
    /// Fsync each chunk file and its directory before acknowledging a write.
    #[arg(long)]
    fsync: bool,
    /// Read and write chunk files through the page cache. By default they bypass it
    /// (O_DIRECT) where the file system allows: chunks are verified on every read, so caching
    /// them buys little and costs a copy of every byte written.
    #[arg(long)]
    buffered_io: bool,
    /// How often to re-read and verify every stored chunk, from the start of one pass to the
    /// start of the next (e.g. 24h, 30m); 0s disables scrubbing.
    #[arg(long, default_value = "24h")]
    scrub_interval: ReadableDuration,
    /// Most bytes per second the scrubber reads (e.g. 64MiB, 500KiB).
    #[arg(long, default_value = "64MiB", value_parser = scrub_rate)]
    scrub_rate: Size,
    /// Bytes of repair copies this node sends at once (at least one chunk, whatever its
    /// size): a few big chunks or many small ones. Bounds what repair takes from client
    /// traffic.
    #[arg(long, default_value = "8MiB")]
    repair_window: Size,
    /// Chunks of at most this size are appended to volume files (one write and one shared
    /// fsync for many, no file each) instead of getting a file each (docs/SMALL-CHUNKS.md);
    /// 0 keeps every chunk a file. At most 1MiB.
    #[arg(long, default_value = "64KiB", value_parser = small_chunk_max)]
    small_chunk_max: Size,
    /// Volume files are sealed, and may then be compacted, once about this big (at least
    /// 1MiB, at most 32GiB).
    #[arg(long, default_value = "256MiB", value_parser = volume_size)]
    volume_size: Size,
    /// How often to look for a volume whose deleted chunks are worth compacting away (e.g.
    /// 10s, 1m); 0s disables compaction.
    #[arg(long, default_value = "10s")]
    compact_interval: ReadableDuration,
    /// Most bytes per second compaction reads from the volume it rewrites (e.g. 32MiB,
    /// 4MiB): what it may take from client traffic; it writes at most as much.
    #[arg(long, default_value = "32MiB", value_parser = compact_rate)]
    compact_rate: Size,
}

fn volume_size(s: &str) -> Result<Size, String> {
    match s.parse::<Size>()? {
        Size(n) if n < 1 << 20 => Err("must be at least 1MiB".into()),
        Size(n) if n > bigfs_node::chunk_store::volume::MAX_VOLUME_SIZE => {
            Err("must be at most 32GiB".into())
        }
        size => Ok(size),
    }
}

fn small_chunk_max(s: &str) -> Result<Size, String> {
    match s.parse::<Size>()? {
        Size(n) if n > 1 << 20 => Err("must be at most 1MiB".into()),
        size => Ok(size),
    }
}

fn compact_rate(s: &str) -> Result<Size, String> {
    match s.parse::<Size>()? {
        Size(0) => Err("must be more than 0 (--compact-interval 0s disables compaction)".into()),
        rate => Ok(rate),
    }
}

fn scrub_rate(s: &str) -> Result<Size, String> {
    match s.parse::<Size>()? {
        Size(0) => Err("must be more than 0 (--scrub-interval 0s disables scrubbing)".into()),
        rate => Ok(rate),
    }
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    process::abort_on_panic();
    let args = Args::parse();
    process::init_tracing(args.log_format);
    // Kept until the process exits: dropping the scenario would clear the failpoints.
    #[cfg(feature = "failpoints")]
    let _failpoints = failpoints::setup();
    #[cfg(not(feature = "failpoints"))]
    if std::env::var_os("FAILPOINTS").is_some() {
        tracing::warn!(
            "FAILPOINTS is ignored: this binary was built without `--features failpoints`"
        );
    }
    run(args)
}

#[tokio::main]
async fn run(args: Args) -> ExitCode {
    process::exit_code("bigfs-node", serve(args).await)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    transport::endpoint(&args.meta).with_context(|| format!("invalid --meta {:?}", args.meta))?;
    let listener = process::bind(&args.listen, "--listen").await?;
    let http = match &args.http_listen {
        Some(addr) => Some(process::bind(addr, "--http-listen").await?),
        None => None,
    };
    let config = bigfs_node::NodeConfig {
        data_dir: args.data,
        meta_url: args.meta,
        id: args.id,
        capacity: args.capacity.0,
        heartbeat_interval: args.heartbeat_interval.0,
        fsync: args.fsync,
        io: if args.buffered_io {
            IoMode::Buffered
        } else {
            IoMode::Direct
        },
        scrub_interval: args.scrub_interval.0,
        scrub_rate: args.scrub_rate.0,
        repair_window: args.repair_window.0,
        small_chunk_max: u32::try_from(args.small_chunk_max.0).expect("checked at parse"),
        volume_size: args.volume_size.0,
        compact_interval: args.compact_interval.0,
        compact_rate: args.compact_rate.0,
    };
    bigfs_node::run(listener, http, config, process::shutdown_on_signal()).await
}

/// Fault injection for tests, compiled in with the `failpoints` feature: the failpoints named
/// in the `FAILPOINTS` environment variable (see `bigfs_node::chunk_store`) are configured at
/// start. A malformed `FAILPOINTS` is a panic, which aborts the process.
#[cfg(feature = "failpoints")]
mod failpoints {
    pub fn setup() -> fail::FailScenario<'static> {
        let scenario = fail::FailScenario::setup();
        for (name, actions) in fail::list() {
            tracing::warn!(failpoint = %name, %actions, "failpoint configured");
        }
        scenario
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn scrub_flags() {
        let args = Args::try_parse_from(["bigfs-node", "--data", "d"]).unwrap();
        assert_eq!(
            args.scrub_interval.0,
            std::time::Duration::from_secs(24 * 3600)
        );
        assert_eq!(args.scrub_rate.0, 64 << 20);

        let args = Args::try_parse_from([
            "bigfs-node",
            "--data",
            "d",
            "--scrub-interval",
            "0s",
            "--scrub-rate",
            "1MiB",
        ])
        .unwrap();
        assert!(args.scrub_interval.0.is_zero());
        assert_eq!(args.scrub_rate.0, 1 << 20);

        assert!(Args::try_parse_from(["bigfs-node", "--data", "d", "--scrub-rate", "0"]).is_err());
    }

    #[test]
    fn compact_rate_flag() {
        let parse = |v: &[&str]| Args::try_parse_from([&["bigfs-node", "--data", "d"], v].concat());
        assert_eq!(parse(&[]).unwrap().compact_rate.0, 32 << 20);
        assert_eq!(
            parse(&["--compact-rate", "4MiB"]).unwrap().compact_rate.0,
            4 << 20
        );
        assert!(parse(&["--compact-rate", "0"]).is_err());
    }

    #[test]
    fn small_chunk_flags() {
        let args = Args::try_parse_from(["bigfs-node", "--data", "d"]).unwrap();
        assert_eq!(args.small_chunk_max.0, 64 << 10);
        let parse =
            |v: &str| Args::try_parse_from(["bigfs-node", "--data", "d", "--small-chunk-max", v]);
        assert_eq!(parse("0").unwrap().small_chunk_max.0, 0);
        assert_eq!(parse("1MiB").unwrap().small_chunk_max.0, 1 << 20);
        assert!(parse("2MiB").is_err());
        assert_eq!(args.volume_size.0, 256 << 20);
        let parse =
            |v: &str| Args::try_parse_from(["bigfs-node", "--data", "d", "--volume-size", v]);
        assert_eq!(parse("1MiB").unwrap().volume_size.0, 1 << 20);
        assert!(parse("100KiB").is_err());
        assert!(parse("64GiB").is_err());
    }
}
