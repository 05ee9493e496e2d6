//! `bigfs bench small`: many tiny files written, then read, at a fixed concurrency, in the shape
//! of SeaweedFS's `weed benchmark` (by default 10,000 files of 1 KiB, 16 at a time), so the
//! two print comparable figures: operations per second and latency percentiles per phase.

use std::time::Instant;

use futures::{stream, StreamExt, TryStreamExt};

use bigfs_proto::FsPath;

use super::{check_fresh, drop_page_cache, get_checked, put_payload, Phase};
use crate::Client;

/// Files per directory: a directory of a million entries is not what this measures.
const FILES_PER_DIR: u64 = 1000;

#[derive(Clone, Debug)]
pub struct SmallBenchOptions {
    /// Where the files go; must not exist yet.
    pub root: FsPath,
    pub files: u64,
    pub size: u64,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// Drop this machine's page cache before the reads (see [`super::drop_page_cache`]).
    pub drop_caches: bool,
}

#[derive(Clone, Debug)]
pub struct SmallBenchReport {
    pub write: Phase,
    pub read: Phase,
}

impl Client {
    /// Writes `files` files of `size` bytes, then reads each back (verified and counted).
    pub async fn bench_small(
        &self,
        options: &SmallBenchOptions,
    ) -> anyhow::Result<SmallBenchReport> {
        if options.files == 0 || options.concurrency == 0 {
            anyhow::bail!("--files and --concurrency must be above zero");
        }
        check_fresh(self, &options.root).await?;
        let path = |i: u64| -> anyhow::Result<FsPath> {
            Ok(options
                .root
                .join(&format!("d{:05}", i / FILES_PER_DIR))?
                .join(&format!("f{i:09}"))?)
        };
        let size = options.size;
        let write = self
            .timed(options, |i| async move {
                put_payload(self, &path(i)?, size).await
            })
            .await?;
        if options.drop_caches {
            drop_page_cache()?;
        }
        let read = self
            .timed(options, |i| async move {
                get_checked(self, &path(i)?, size).await
            })
            .await?;
        Ok(SmallBenchReport { write, read })
    }

    /// Runs `op` for every file index, `concurrency` at a time, timing each.
    async fn timed<F, Fut>(&self, options: &SmallBenchOptions, op: F) -> anyhow::Result<Phase>
    where
        F: Fn(u64) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let started = Instant::now();
        let latencies = stream::iter(0..options.files)
            .map(|i| {
                let op = op(i);
                async move {
                    let t = Instant::now();
                    op.await?;
                    anyhow::Ok(t.elapsed())
                }
            })
            .buffer_unordered(options.concurrency)
            .try_collect()
            .await?;
        Ok(Phase::new(
            options.files * options.size,
            started.elapsed(),
            latencies,
        ))
    }
}
