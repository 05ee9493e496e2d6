//! `bigfs-gateway`: parses flags, binds every listener, and serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use bigfs_client::Client;
use bigfs_gateway::observe::{self, HttpMetrics};
use bigfs_gateway::server::{self, Door};
use bigfs_gateway::{console, s3};
use bigfs_proto::observe::health::Health;
use bigfs_proto::observe::{http, registry, Registry};
use bigfs_proto::process::{self, LogFormat};
use bigfs_proto::units::ReadableDuration;

/// How often abandoned multipart uploads are looked for.
const ABANDONED_UPLOADS_INTERVAL: Duration = Duration::from_secs(3600);

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
    /// Serve HTTP on this address too: Prometheus metrics at /metrics, liveness at /healthz,
    /// readiness at /readyz (ready while the metadata server answers).
    #[arg(long)]
    http_listen: Option<String>,
    /// Serve the S3 API on this address, e.g. 127.0.0.1:9481.
    #[arg(long, group = "listeners")]
    s3_listen: Option<SocketAddr>,
    /// The access key S3 clients sign requests with.
    #[arg(long, env = "BIGFS_S3_ACCESS_KEY", requires = "s3_secret_key")]
    s3_access_key: Option<String>,
    /// The secret key that goes with --s3-access-key.
    #[arg(
        long,
        env = "BIGFS_S3_SECRET_KEY",
        requires = "s3_access_key",
        hide_env_values = true
    )]
    s3_secret_key: Option<String>,
    /// More key pairs: a file of `ACCESS_KEY SECRET_KEY [USER_ID [DISPLAY NAME]]` lines (`#`
    /// starts a comment); the user owns what the key creates.
    #[arg(long)]
    s3_keys_file: Option<PathBuf>,
    /// Multipart uploads neither completed nor aborted this long after they started are
    /// removed, parts and all.
    #[arg(long, default_value = "7d")]
    s3_multipart_expiry: ReadableDuration,
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`): the master key that wraps each
    /// object's data key, a file of 32 random bytes (`head -c 32 /dev/urandom`, mode 0600).
    /// Without it SSE-S3 answers 501. Lose it and every SSE-S3 object is lost.
    #[arg(long)]
    sse_master_key_file: Option<PathBuf>,
    /// SSE-KMS (`aws:kms` with a key id): named keys, one `NAME HEX` a line (64 hex digits),
    /// that wrap each object's data key. Without it SSE-KMS answers 501.
    #[arg(long)]
    sse_kms_keys: Option<PathBuf>,
    /// The length of a lifecycle rule's day: shorter only in tests, so that an object is seen
    /// to expire (as RGW's rgw_lc_debug_interval). The rules are applied each such day, at
    /// most an hour apart.
    #[arg(long, default_value = "1d", hide = true)]
    s3_lifecycle_day: ReadableDuration,
    /// Chunks in flight per upload or download: memory is about 3 × this many chunks each.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
    /// Uploads and downloads moving at once, per front door: the console answers more with
    /// 503 (try again), S3 makes them wait their turn. With --parallel this bounds the
    /// gateway's memory (about 3 × parallel chunks each) whatever clients send at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_transfers: u16,
    /// How log lines are written: text, or json (one object per line).
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
}

/// The keys of SSE-S3 and SSE-KMS the arguments name.
fn keyring(args: &Args) -> anyhow::Result<bigfs_gateway::crypto::Keyring> {
    use bigfs_gateway::crypto::Keyring;
    Ok(Keyring {
        master: match &args.sse_master_key_file {
            Some(path) => Some(Keyring::read_master(path)?),
            None => None,
        },
        named: match &args.sse_kms_keys {
            Some(path) => Keyring::read_named(path)?,
            None => Default::default(),
        },
    })
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (the `_RJEM_MALLOC_CONF` environment variable still
/// overrides them). One arena, not four per core: a body's chunk buffers are allocated on one
/// tokio worker and freed on another, and each arena keeps the pages freed into it for about
/// ten seconds, so with many arenas the gateway held several times the chunks in flight. With
/// one, freed pages serve the next chunk whichever worker asks (docs/BENCHMARKS.md: the peak of
/// a 5 GiB multipart PUT went from 105 to 73 MiB, eight 1 GiB GETs at once from 103 to 90).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
static malloc_conf: &[u8] = b"narenas:1\0";

#[tokio::main]
async fn main() -> ExitCode {
    process::abort_on_panic();
    let args = Args::parse();
    // s3s logs every error answer at ERROR, a client's mistakes (InvalidBucketName, NoSuchKey,
    // a 501) included; the gateway logs its own failures (s3::errors), so s3s stays quiet
    // unless RUST_LOG names it (RUST_LOG=info,s3s=debug).
    process::init_tracing_with(args.log_format, &["s3s=off"]);
    process::exit_code("bigfs-gateway", run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::new(&args.meta)?;
    let http = match &args.http_listen {
        Some(addr) => Some(process::bind(addr, "--http-listen").await?),
        None => None,
    };
    let mut registry = registry();
    let metrics = HttpMetrics::register(&mut registry);
    let mut doors = Vec::new();
    if let Some(addr) = args.console_listen {
        let mut door = Door::bind("console", addr, axum::Router::new()).await?;
        // The console checks the Host requests name against the port it really got.
        let limits = console::Limits {
            parallel: args.parallel.into(),
            transfers: args.max_transfers.into(),
        };
        let router = console::router(client.clone(), limits, door.local_addr()?);
        door.router = metrics.track("console", router);
        doors.push(door);
    }
    if let Some(addr) = args.s3_listen {
        let keyring = keyring(&args)?;
        let mut pairs: Vec<s3::keys::KeyPair> = args
            .s3_access_key
            .into_iter()
            .zip(args.s3_secret_key)
            .map(|(access, secret)| s3::keys::KeyPair {
                access,
                secret,
                user: None,
            })
            .collect();
        if let Some(file) = &args.s3_keys_file {
            pairs.extend(s3::keys::parse_file(file)?);
        }
        let gateway = s3::Gateway::new(
            client.clone(),
            args.parallel.into(),
            args.max_transfers.into(),
        )
        .with_keyring(keyring);
        let router = s3::router(gateway.clone(), s3::keys::auth(pairs)?);
        let router = metrics.track("s3", router);
        doors.push(Door::bind("s3", addr, router).await?);
        tokio::spawn(collect_abandoned(
            gateway.clone(),
            args.s3_multipart_expiry.0,
        ));
        tokio::spawn(collect_expired(gateway, args.s3_lifecycle_day.0));
    }
    for door in &doors {
        tracing::info!(meta = %args.meta, "{} at http://{}/", door.name, door.local_addr()?);
    }
    let shutdown = process::shutdown_on_signal();
    let observing = match http {
        Some(listener) => Some(observe_on(listener, registry, client, shutdown.clone()).await),
        None => None,
    };
    let served = server::serve(doors, shutdown.clone()).await;
    shutdown.cancel();
    if let Some((readiness, page)) = observing {
        readiness.await.context("readiness task")?;
        page.await.context("HTTP task")?.context("serve HTTP")?;
    }
    served
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener`, and keeps readiness up to date,
/// until `shutdown` fires.
async fn observe_on(
    listener: TcpListener,
    registry: Registry,
    client: Client,
    shutdown: CancellationToken,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let starting = Some("starting: the metadata server has not answered yet".to_string());
    // The gateway has no gRPC server: the health service Health makes for one goes unused.
    let (health, _grpc) = Health::new("bigfs.gateway", starting).await;
    let readiness = tokio::spawn(observe::watch_readiness(
        client,
        health.clone(),
        shutdown.child_token(),
    ));
    let page = http::Metrics {
        registry,
        refresh: Box::new(|| {}),
    };
    let server = tokio::spawn(http::serve(listener, page, health, shutdown.child_token()));
    (readiness, server)
}

/// Removes abandoned multipart uploads, once an hour and once at start.
async fn collect_abandoned(gateway: s3::Gateway, expiry: Duration) {
    let mut ticks = tokio::time::interval(ABANDONED_UPLOADS_INTERVAL.min(expiry));
    loop {
        ticks.tick().await;
        if let Err(e) = gateway.collect_abandoned(expiry).await {
            tracing::warn!("cannot collect abandoned multipart uploads: {e}");
        }
    }
}

/// Applies the buckets' lifecycle rules, once a (lifecycle) day, at most an hour apart.
async fn collect_expired(gateway: s3::Gateway, day: Duration) {
    let mut ticks = tokio::time::interval(ABANDONED_UPLOADS_INTERVAL.min(day));
    let day_ms = u64::try_from(day.as_millis()).unwrap_or(u64::MAX).max(1);
    loop {
        ticks.tick().await;
        if let Err(e) = gateway.collect_expired(day_ms).await {
            tracing::warn!("cannot apply the buckets' lifecycle rules: {e}");
        }
    }
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
