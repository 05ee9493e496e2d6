//! `bigfs bench load`: N clients at once, each with its own connections (as N processes would
//! have), putting then getting distinct files: one big file each, then a batch of small ones
//! each. Reported per number of clients: aggregate MiB/s for the big files, files/s for the
//! small ones, and per-file latency percentiles, so that a run over 1, 4, 8 and 16 clients
//! shows whether throughput grows with clients.

use std::time::{Duration, Instant};

use futures::future::try_join_all;

use bigfs_proto::FsPath;

use super::{check_fresh, drop_page_cache, get_checked, put_payload, Phase};
use crate::Client;

#[derive(Clone, Debug)]
pub struct LoadBenchOptions {
    /// Where the files go; must not exist yet.
    pub root: FsPath,
    /// The numbers of clients to run, one round each.
    pub clients: Vec<usize>,
    /// The big file each client puts and gets (0: none).
    pub big_size: u64,
    /// Small files each client puts and gets, one after the other.
    pub small_files: u64,
    pub small_size: u64,
    /// Drop this machine's page cache before each get phase (see [`super::drop_page_cache`]).
    pub drop_caches: bool,
}

/// One round: `clients` clients at once.
#[derive(Clone, Debug)]
pub struct LoadRound {
    pub clients: usize,
    pub big_put: Phase,
    pub big_get: Phase,
    pub small_put: Phase,
    pub small_get: Phase,
}

/// What one phase does.
#[derive(Clone, Copy)]
enum Step {
    BigPut,
    BigGet,
    SmallPut,
    SmallGet,
}

impl Client {
    /// Runs one round per entry of `options.clients`; each client connects to this client's
    /// metadata server on its own.
    pub async fn bench_load(&self, options: &LoadBenchOptions) -> anyhow::Result<Vec<LoadRound>> {
        if options.clients.contains(&0) {
            anyhow::bail!("--clients must all be above zero");
        }
        check_fresh(self, &options.root).await?;
        let mut rounds = Vec::new();
        for &clients in &options.clients {
            let dir = options.root.join(&format!("c{clients:03}"))?;
            let fleet = (0..clients)
                .map(|_| Client::new(self.url()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let run = |step| run_step(&fleet, &dir, options, step);
            let big_put = run(Step::BigPut).await?;
            if options.drop_caches {
                drop_page_cache()?;
            }
            let big_get = run(Step::BigGet).await?;
            let small_put = run(Step::SmallPut).await?;
            if options.drop_caches {
                drop_page_cache()?;
            }
            let small_get = run(Step::SmallGet).await?;
            rounds.push(LoadRound {
                clients,
                big_put,
                big_get,
                small_put,
                small_get,
            });
        }
        Ok(rounds)
    }
}

/// Every client of `fleet` does its share of `step` at once; the phase spans from the first
/// start to the last finish.
async fn run_step(
    fleet: &[Client],
    dir: &FsPath,
    options: &LoadBenchOptions,
    step: Step,
) -> anyhow::Result<Phase> {
    let (files, size) = match step {
        Step::BigPut | Step::BigGet if options.big_size == 0 => (0, 0),
        Step::BigPut | Step::BigGet => (1, options.big_size),
        Step::SmallPut | Step::SmallGet => (options.small_files, options.small_size),
    };
    let started = Instant::now();
    let per_client = try_join_all(fleet.iter().enumerate().map(|(c, client)| async move {
        let mut latencies: Vec<Duration> = Vec::new();
        for k in 0..files {
            let path = match step {
                Step::BigPut | Step::BigGet => dir.join(&format!("big{c:03}"))?,
                Step::SmallPut | Step::SmallGet => dir.join(&format!("small{c:03}-{k:06}"))?,
            };
            let t = Instant::now();
            match step {
                Step::BigPut => put_payload(client, &path, size).await?,
                Step::SmallPut => put_payload(client, &path, size).await?,
                Step::BigGet | Step::SmallGet => get_checked(client, &path, size).await?,
            }
            latencies.push(t.elapsed());
        }
        anyhow::Ok(latencies)
    }))
    .await?;
    let latencies: Vec<Duration> = per_client.into_iter().flatten().collect();
    let bytes = latencies.len() as u64 * size;
    Ok(Phase::new(bytes, started.elapsed(), latencies))
}
