//! `bigfs bench meta`: how fast the metadata server takes and lists file records.
//!
//! Commits `files` empty-file records (no chunks, so no storage node is involved) in batches of
//! `batch` through CommitFiles, a few batches in flight at once so that commits can share
//! flushes, into directories of `per_dir` files each; then lists the first directory, copies
//! it (`cp -r`) and moves it (`mv`), each one transaction however many files. This measures
//! the namespace and the commit path alone: transactions, group commit, listing, and the
//! metadata-only verbs.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{stream, StreamExt, TryStreamExt};

use bigfs_proto::pb::{CommitFileRequest, CommitFilesRequest};
use bigfs_proto::FsPath;

use crate::client::Client;

/// Batches in flight at once.
const BATCHES_IN_FLIGHT: usize = 4;

#[derive(Clone, Debug)]
pub struct MetaBenchOptions {
    pub root: FsPath,
    pub files: u64,
    pub batch: usize,
    pub per_dir: u64,
}

#[derive(Clone, Debug)]
pub struct MetaBenchReport {
    pub files: u64,
    pub create_time: Duration,
    pub listed_entries: usize,
    pub list_time: Duration,
    /// `cp -r` of the first directory (its `listed_entries` files).
    pub copy_time: Duration,
    /// `mv` of the first directory.
    pub move_time: Duration,
}

impl MetaBenchReport {
    pub fn creates_per_sec(&self) -> f64 {
        self.files as f64 / self.create_time.as_secs_f64().max(1e-9)
    }
}

impl Client {
    pub async fn bench_meta(&self, options: &MetaBenchOptions) -> anyhow::Result<MetaBenchReport> {
        if options.batch == 0 || options.per_dir == 0 {
            bail!("--batch and --dir-files must be above zero");
        }
        let info = self.cluster_info().await?;
        let root = options.root.dir_prefix();
        let dir = |i: u64| format!("{root}d{:06}", i / options.per_dir);
        let path = |i: u64| format!("{}/f{i:09}", dir(i));
        let batches = (0..options.files).step_by(options.batch).map(|start| {
            let end = (start + options.batch as u64).min(options.files);
            (start..end)
                .map(|i| CommitFileRequest {
                    path: path(i),
                    chunk_size: info.chunk_size,
                    ..CommitFileRequest::default()
                })
                .collect::<Vec<_>>()
        });
        let started = Instant::now();
        stream::iter(batches)
            .map(|files| async move {
                let (mut meta, request) = self.meta(CommitFilesRequest { files });
                let results = meta
                    .commit_files(request)
                    .await
                    .map_err(|s| self.meta_error(s))
                    .context("commit a batch of records")?
                    .into_inner()
                    .results;
                if let Some(refused) = results.iter().find(|r| !r.committed) {
                    bail!("a record was refused: {}", refused.error);
                }
                anyhow::Ok(())
            })
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        let create_time = started.elapsed();

        let first_dir = FsPath::parse(&dir(0))?;
        let started = Instant::now();
        let listed = self.list(&first_dir).await?;
        let list_time = started.elapsed();

        let started = Instant::now();
        self.copy(&first_dir, &options.root.join("copied")?, true, false)
            .await
            .context("copy the first directory")?;
        let copy_time = started.elapsed();
        let started = Instant::now();
        self.rename(&first_dir, &options.root.join("moved")?, false)
            .await
            .context("move the first directory")?;
        let move_time = started.elapsed();
        Ok(MetaBenchReport {
            files: options.files,
            create_time,
            listed_entries: listed.len(),
            list_time,
            copy_time,
            move_time,
        })
    }
}
