//! `bigfs-gateway`: parses flags, binds every listener, and serves.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{ArgGroup, Parser};

use bigfs_client::Client;
use bigfs_gateway::console;
use bigfs_gateway::server::{self, Door};
use bigfs_proto::process::{self, LogFormat};

/// BigFS gateway: HTTP front doors to a cluster, built on the client library.
#[derive(Parser, Debug)]
#[command(version = bigfs_proto::VERSION, about)]
// At least one front door; each new one (the S3 API) joins the group.
#[command(group(ArgGroup::new("listeners").required(true).multiple(true)))]
struct Args {
    /// The metadata server: http://HOST:PORT, or HOST:PORT.
    #[arg(long, env = "BIGFS_META")]
    meta: String,
    /// Serve the web console on this address, e.g. 127.0.0.1:9480.
    #[arg(long, group = "listeners")]
    console_listen: Option<SocketAddr>,
    /// Chunks in flight per upload or download: memory is about 3 × this many chunks each.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
    /// How log lines are written: text, or json (one object per line).
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    process::abort_on_panic();
    let args = Args::parse();
    process::init_tracing(args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("bigfs-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::new(&args.meta)?;
    let mut doors = Vec::new();
    if let Some(addr) = args.console_listen {
        let router = console::router(client.clone(), args.parallel.into());
        doors.push(Door::bind("console", addr, router).await?);
    }
    for door in &doors {
        tracing::info!(meta = %args.meta, "{} at http://{}/", door.name, door.local_addr()?);
    }
    server::serve(doors, process::shutdown_on_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Args::command().debug_assert();
    }

    #[test]
    fn a_listener_is_required() {
        let err = Args::try_parse_from(["bigfs-gateway", "--meta", "127.0.0.1:9400"]).unwrap_err();
        assert!(err.to_string().contains("--console-listen"), "{err}");
    }
}
