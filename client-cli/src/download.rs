//! Reading a file: fetch chunks in parallel, verify each, fail over between replicas.
//!
//! Chunks are fetched `parallel` at a time and written in order, so memory is bounded by the
//! chunks in flight. Every chunk is checked against its BLAKE3 id before a byte of it is
//! written. A replica that errs, times out (a stalled node) or sends bad bytes is skipped for
//! the next one, and a bad copy is reported to the metadata server. A node that failed once is
//! tried last for the rest of the transfer, so a stalled node costs one time-out per get, not
//! one per chunk. Where the bytes go on the local side (a file renamed into place once
//! complete, or a device or FIFO written through) is [`crate::destination`]'s decision.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::{stream, Stream, StreamExt, TryStreamExt};
use tonic::Code;

use bigfs_proto::pb::{ChunkLocation, GetFileResponse, NodeAddr};
use bigfs_proto::{ChunkId, FsPath};

use crate::chunk_sink::ChunkSink;
use crate::client::{describe, Client, MetaError};
use crate::destination::{self, Destination};
use crate::local_attrs::LocalAttrs;
use crate::progress::Progress;
use crate::stdout::Stdout;

/// Where a get writes to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A local path: an existing directory receives a file named like the remote one; an
    /// existing regular file (or the file a symbolic link names) is replaced only with
    /// `overwrite`; anything else, such as /dev/null or a FIFO, is written through.
    File {
        path: PathBuf,
        overwrite: bool,
    },
    Stdout,
}

/// Refuses to read `file` as its bytes when the S3 gateway stored it encrypted (server-side
/// encryption): its chunks hold ciphertext, which only the gateway turns back into the object,
/// given its key. Handing the ciphertext out as the file would be a success nobody earned.
pub fn check_plain(path: &FsPath, file: &GetFileResponse) -> anyhow::Result<()> {
    let object = file.file.as_ref().and_then(|f| f.object.as_ref());
    if object.is_some_and(|o| o.encryption.is_some()) {
        return Err(MetaError::new(
            Code::FailedPrecondition,
            format!(
                "{path} was stored encrypted by the S3 gateway (server-side encryption): its \
                 chunks hold ciphertext; read it through the S3 API, with its key"
            ),
        )
        .into());
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct GetReport {
    /// The local file written, or `None` for stdout.
    pub written: Option<PathBuf>,
    pub size: u64,
    pub chunks: usize,
    pub elapsed: Duration,
}

impl Client {
    /// Copies the file at `path` to `target`, verifying every chunk.
    pub async fn get(
        &self,
        path: &FsPath,
        target: &Target,
        parallel: usize,
        progress: &Progress,
    ) -> anyhow::Result<GetReport> {
        let started = Instant::now();
        let file = self.stat(path).await?;
        let mut report = self
            .get_located(path, file, target, parallel, progress)
            .await?;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// [`Self::get`] of a file already looked up (`file` is what `stat` answered).
    /// Refuses a file the S3 gateway stored encrypted (see [`check_plain`]).
    pub async fn get_located(
        &self,
        path: &FsPath,
        file: GetFileResponse,
        target: &Target,
        parallel: usize,
        progress: &Progress,
    ) -> anyhow::Result<GetReport> {
        let started = Instant::now();
        check_plain(path, &file)?;
        let size = file.file.as_ref().map_or(0, |f| f.size);
        let stored = file.file.as_ref().map(|f| LocalAttrs {
            mode: f.mode,
            mtime_ms: f.mtime_ms,
        });
        let chunks = file.chunks;
        let count = chunks.len();
        let written = match target {
            Target::Stdout => {
                let mut out = ChunkSink::new(Stdout::default());
                self.copy_chunks(path, chunks, &mut out, parallel, progress)
                    .await?;
                out.flush().await.context("write to stdout")?;
                None
            }
            Target::File {
                path: local,
                overwrite,
            } => {
                let destination = Destination::resolve(local, path, *overwrite)?;
                self.write_local(path, chunks, &destination, stored, parallel, progress)
                    .await?;
                Some(destination.path().to_path_buf())
            }
        };
        Ok(GetReport {
            written,
            size,
            chunks: count,
            elapsed: started.elapsed(),
        })
    }

    async fn write_local(
        &self,
        path: &FsPath,
        chunks: Vec<ChunkLocation>,
        destination: &Destination,
        stored: Option<LocalAttrs>,
        parallel: usize,
        progress: &Progress,
    ) -> anyhow::Result<()> {
        let (local, overwrite) = match destination {
            Destination::Through(local) => {
                // On the blocking pool: opening a FIFO waits for its reader.
                let open = {
                    let local = local.clone();
                    tokio::task::spawn_blocking(move || {
                        std::fs::OpenOptions::new().write(true).open(local)
                    })
                };
                let file = open
                    .await?
                    .with_context(|| format!("open {}", local.display()))?;
                let mut out = ChunkSink::new(file);
                return self
                    .copy_chunks(path, chunks, &mut out, parallel, progress)
                    .await;
            }
            Destination::Replace { path, overwrite } => (path, *overwrite),
        };
        let dir = destination::parent_dir(local);
        // Removed on drop, so any error below leaves nothing behind.
        let tmp = tempfile::Builder::new()
            .prefix(".bigfs-get.")
            .tempfile_in(dir)
            .with_context(|| format!("create a temporary file in {}", dir.display()))?;
        let mut out = ChunkSink::new(
            tmp.as_file()
                .try_clone()
                .context("duplicate temporary file handle")?,
        );
        self.copy_chunks(path, chunks, &mut out, parallel, progress)
            .await?;
        // Every write went to the file itself (a `File` keeps no buffer to flush): not
        // flushing saves a trip to the blocking pool per file, 2,000 of them in a tree get of
        // small files.
        drop(out);
        // Temporary files are private: the file gets the stored mode and mtime (those of the
        // put, or of the local file a `put --preserve` read), as `cp -p` gives a copy its
        // source's.
        let attrs = stored.unwrap_or(LocalAttrs {
            mode: 0o644,
            mtime_ms: 0,
        });
        attrs.apply(tmp.as_file(), tmp.path())?;
        let persisted = if overwrite {
            tmp.persist(local)
        } else {
            // Refuses a file that appeared since `Destination::resolve` looked.
            tmp.persist_noclobber(local)
        };
        match persisted {
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(destination::exists(local))
            }
            other => other
                .map(drop)
                .with_context(|| format!("rename into {}", local.display())),
        }
    }

    /// Fetches `chunks` (up to `parallel` at once) and writes them to `out` in order.
    async fn copy_chunks(
        &self,
        path: &FsPath,
        chunks: Vec<ChunkLocation>,
        out: &mut ChunkSink<impl std::io::Write + Send + 'static>,
        parallel: usize,
        progress: &Progress,
    ) -> anyhow::Result<()> {
        let mut fetched = std::pin::pin!(self.chunk_stream(path.clone(), chunks, parallel));
        while let Some(data) = fetched.try_next().await? {
            let len = data.len() as u64;
            out.write(data).await.context("write output")?;
            progress.add(len);
        }
        Ok(())
    }

    /// The bytes of `chunks` (a file's, as `stat` located them), one verified chunk per item,
    /// in order: up to `parallel` are fetched at once, and a chunk is yielded only once it and
    /// every chunk before it matched its id. Owns what it needs, so a server can hand it to a
    /// response body; memory is bounded by the chunks in flight, and a consumer that stops
    /// polling stops the fetching. An item is an error when a chunk has no good copy: the file's
    /// bytes have a hole there, so a consumer stops at the first error.
    pub fn chunk_stream(
        &self,
        path: FsPath,
        chunks: Vec<ChunkLocation>,
        parallel: usize,
    ) -> impl Stream<Item = anyhow::Result<Bytes>> + Send + 'static {
        let client = self.clone();
        let failed = Arc::new(FailedNodes::default());
        stream::iter(chunks)
            .map(move |chunk| {
                let (client, path, failed) = (client.clone(), path.clone(), failed.clone());
                async move { client.fetch_chunk(&path, chunk, &failed).await }
            })
            .buffered(parallel.max(1))
    }

    /// One good copy of a chunk, trying its replicas in order, nodes that failed earlier in this
    /// transfer last.
    async fn fetch_chunk(
        &self,
        path: &FsPath,
        mut chunk: ChunkLocation,
        failed: &FailedNodes,
    ) -> anyhow::Result<Bytes> {
        let what = || {
            format!(
                "chunk {} ({}) of {path}",
                chunk.index,
                chunk.id.chars().take(12).collect::<String>()
            )
        };
        let id: ChunkId = chunk
            .id
            .parse()
            .with_context(|| format!("metadata server sent a bad id for {}", what()))?;
        if chunk.replicas.is_empty() {
            bail!("{}: no live copy (every node holding it is down)", what());
        }
        failed.order(&mut chunk.replicas);
        let mut errors = Vec::new();
        for replica in &chunk.replicas {
            let read = self.nodes.get_chunk(&replica.addr, &chunk.id, chunk.size);
            let error = match read.await {
                Ok(data) if data.len() as u64 == chunk.size && id.matches(&data) => {
                    return Ok(data)
                }
                Ok(_) => {
                    self.report_bad_chunk(&chunk.id, &replica.id, "hash mismatch on read")
                        .await;
                    format!("node {}: copy does not match its id", replica.id)
                }
                Err(status) => {
                    if status.code() == Code::DataLoss {
                        self.report_bad_chunk(&chunk.id, &replica.id, status.message())
                            .await;
                    }
                    format!("node {}: {}", replica.id, describe(&status))
                }
            };
            failed.add(&replica.id);
            tracing::info!(node = %replica.id, chunk = %chunk.id, "trying the next replica: {error}");
            errors.push(error);
        }
        bail!("{}: no good copy: {}", what(), errors.join("; "))
    }
}

/// Nodes that failed a read during one transfer.
#[derive(Default)]
struct FailedNodes(Mutex<HashSet<String>>);

impl FailedNodes {
    fn add(&self, node: &str) {
        self.set().insert(node.to_string());
    }

    /// Moves failed nodes to the end, keeping the metadata server's order otherwise.
    fn order(&self, replicas: &mut [NodeAddr]) {
        let failed = self.set();
        replicas.sort_by_key(|r| failed.contains(&r.id));
    }

    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
