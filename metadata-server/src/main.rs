//! `bigfs-meta`: parses flags, binds, and runs the metadata server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use bigfs_meta::cluster::ClusterConfig;
use bigfs_meta::MetaConfig;
use bigfs_proto::limits::DEFAULT_CHUNK_SIZE;
use bigfs_proto::process::{self, LogFormat};
use bigfs_proto::units::{ReadableDuration, Size};

/// BigFS metadata server: the namespace, the chunk table and the storage node registry.
#[derive(Parser, Debug)]
#[command(version = bigfs_proto::VERSION, about)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:9400")]
    listen: String,
    /// Address to serve HTTP on: Prometheus metrics at /metrics, liveness at /healthz,
    /// readiness at /readyz. Without it there is no HTTP listener.
    #[arg(long)]
    http_listen: Option<String>,
    /// How log lines are written: text, or json (one object per line).
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
    /// Data directory for the metadata store.
    #[arg(long)]
    data: PathBuf,
    /// Copies of each chunk (R), unless a put asks for another number.
    #[arg(long, default_value_t = 3)]
    replication: u32,
    /// Copies that must be durable before a put succeeds (W); capped at a file's replication.
    #[arg(long, default_value_t = 2)]
    min_replicas: u32,
    /// A node silent this long is dead; silent half as long, suspect.
    #[arg(long, default_value = "10s")]
    heartbeat_timeout: ReadableDuration,
    /// Size of the pieces files are cut into (at most 64MiB).
    #[arg(long, default_value_t = Size(DEFAULT_CHUNK_SIZE))]
    chunk_size: Size,
    /// How long a chunk no file references stays on the nodes before it is deleted.
    #[arg(long, default_value = "30s")]
    gc_grace: ReadableDuration,
    /// How long chunks handed out for a put are protected from deletion before it commits.
    #[arg(long, default_value = "10m")]
    write_lease: ReadableDuration,
    /// After a restart, the longest wait for known nodes to report before deletions resume.
    #[arg(long, default_value = "1m")]
    safe_mode_timeout: ReadableDuration,
    /// Repair copies ordered and not yet answered per node, as source and as target each. A
    /// count of chunks, high enough for small ones: the bytes a node sends at once are bounded
    /// by its --repair-window.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=4096))]
    repair_concurrency: u16,
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    process::abort_on_panic();
    let args = Args::parse();
    process::init_tracing(args.log_format);
    process::exit_code("bigfs-meta", serve(args).await)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let config = MetaConfig {
        data_dir: args.data,
        chunk_size: args.chunk_size.0,
        cluster: ClusterConfig {
            replication: args.replication,
            min_replicas: args.min_replicas,
            heartbeat_timeout: args.heartbeat_timeout.0,
            gc_grace: args.gc_grace.0,
            write_lease: args.write_lease.0.max(args.gc_grace.0),
            safe_mode_timeout: args.safe_mode_timeout.0,
            repair_concurrency: args.repair_concurrency as usize,
            chunk_size: args.chunk_size.0,
        },
    };
    config.validate()?;
    let listener = process::bind(&args.listen, "--listen").await?;
    let http = match &args.http_listen {
        Some(addr) => Some(process::bind(addr, "--http-listen").await?),
        None => None,
    };
    bigfs_meta::run(listener, http, config, process::shutdown_on_signal()).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
