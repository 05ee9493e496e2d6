//! `bigfs-node`: parses flags, binds, and runs the storage node.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use bigfs_proto::units::{ReadableDuration, Size};
use bigfs_proto::{process, transport};

/// BigFS storage node: stores BLAKE3-verified chunks and serves them to clients and peers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:9401")]
    listen: String,
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
    /// Space the node may use for chunks (e.g. 10GiB, 500MB).
    #[arg(long, default_value = "10GiB")]
    capacity: Size,
    /// How often to report to the metadata server (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s")]
    heartbeat_interval: ReadableDuration,
    /// Fsync each chunk file and its directory before acknowledging a write.
    #[arg(long)]
    fsync: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    process::abort_on_panic();
    process::init_tracing();
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("bigfs-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    transport::endpoint(&args.meta).with_context(|| format!("invalid --meta {:?}", args.meta))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let config = bigfs_node::NodeConfig {
        data_dir: args.data,
        meta_url: args.meta,
        id: args.id,
        capacity: args.capacity.0,
        heartbeat_interval: args.heartbeat_interval.0,
        fsync: args.fsync,
    };
    bigfs_node::run(listener, config, process::shutdown_on_signal()).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
