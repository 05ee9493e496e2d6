//! Writing a file: cut the source into chunks, place them, store them, commit.
//!
//! A reader thread cuts the source into chunk-sized pieces and hashes each one; pieces travel
//! through a bounded channel, are placed a batch at a time (one metadata call per batch, never
//! one per chunk), and are stored through replication chains, `parallel` at a time. The client
//! holds at most about `2 × parallel + batch` chunks, whatever the file's size.
//!
//! A chunk is stored when W nodes acknowledged it. A failed node is excluded and the chunk is
//! placed again; the put fails only when a chunk cannot reach W copies. A node that failed once
//! is excluded from the rest of the put, so a stalled node costs one time-out, not one per
//! chunk. The file becomes visible
//! only at the commit, one transaction on the metadata server, which refuses chunks that lack W
//! live copies: those are sent again (a file can be re-read; standard input cannot). A put that
//! fails gives its chunks back, so their space is reclaimed after the grace period.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use bigfs_proto::pb::{
    AbandonChunksRequest, AllocateChunksRequest, ChunkPlacement, ChunkWant, CommitFileRequest,
    CommittedChunk,
};
use bigfs_proto::{ChunkId, FsPath};

use crate::client::Client;
use crate::progress::Progress;

/// Placement rounds for one chunk before the put gives up on it.
const PLACEMENT_ROUNDS: usize = 4;

/// Commit attempts (each after resending the chunks the previous one found short).
const COMMIT_ATTEMPTS: usize = 3;

#[derive(Clone, Debug)]
pub struct PutOptions {
    /// Copies of each chunk; `None` for the cluster's default.
    pub replication: Option<u32>,
    /// Replace an existing file.
    pub overwrite: bool,
    /// Chunks stored at once.
    pub parallel: usize,
}

#[derive(Clone, Debug)]
pub struct PutReport {
    pub path: FsPath,
    pub size: u64,
    pub chunks: usize,
    /// Chunks that were already stored with enough copies and were not sent.
    pub deduplicated: usize,
    pub version: u64,
    pub elapsed: Duration,
}

/// Where a put's bytes come from.
pub struct Source {
    reader: Box<dyn Read + Send>,
    /// A handle to read chunks again by offset; `None` for a stream such as standard input.
    rereadable: Option<File>,
    /// Known in advance for files, for the progress bar.
    pub size: Option<u64>,
}

impl Source {
    pub fn file(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("stat {}", path.display()))?;
        if meta.is_dir() {
            bail!("{} is a directory", path.display());
        }
        Ok(Self {
            rereadable: Some(file.try_clone().context("duplicate file handle")?),
            reader: Box::new(file),
            size: Some(meta.len()),
        })
    }

    pub fn stdin() -> Self {
        Self {
            reader: Box::new(io::stdin()),
            rereadable: None,
            size: None,
        }
    }
}

/// One chunk of the source, hashed.
struct Piece {
    index: usize,
    id: ChunkId,
    data: Bytes,
}

/// What one chunk's storing produced.
struct Stored {
    index: usize,
    chunk: CommittedChunk,
    deduplicated: bool,
}

/// The settings one put runs with.
struct PutPlan {
    path: FsPath,
    chunk_size: u64,
    replication: u32,
    min_copies: u32,
    parallel: usize,
    /// Every chunk the metadata server handed out to this put, to give back if it fails.
    handed_out: Mutex<Vec<String>>,
    /// Nodes that failed a write of this put; later placements avoid them.
    failed_nodes: Mutex<HashSet<String>>,
}

impl PutPlan {
    fn failed_nodes(&self) -> Vec<String> {
        lock(&self.failed_nodes).iter().cloned().collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Client {
    /// Stores `source` at `path`. Nothing is visible at `path` until every chunk is stored and
    /// the commit succeeds; on any error the old file (or no file) remains.
    pub async fn put(
        &self,
        source: Source,
        path: &FsPath,
        options: &PutOptions,
        progress: &Progress,
    ) -> anyhow::Result<PutReport> {
        let started = Instant::now();
        if !options.overwrite {
            self.check_absent(path).await?;
        }
        let info = self.cluster_info().await?;
        let replication = options.replication.unwrap_or(info.replication);
        let plan = PutPlan {
            path: path.clone(),
            chunk_size: info.chunk_size,
            replication,
            min_copies: info.min_replicas.min(replication),
            parallel: options.parallel.max(1),
            handed_out: Mutex::new(Vec::new()),
            failed_nodes: Mutex::new(HashSet::new()),
        };
        let result = self
            .store_and_commit(source, &plan, options, progress, started)
            .await;
        if result.is_err() {
            let chunks = plan
                .handed_out
                .into_inner()
                .unwrap_or_else(|p| p.into_inner());
            self.abandon(chunks).await;
        }
        result
    }

    async fn store_and_commit(
        &self,
        source: Source,
        plan: &PutPlan,
        options: &PutOptions,
        progress: &Progress,
        started: Instant,
    ) -> anyhow::Result<PutReport> {
        let path = &plan.path;
        let replication = plan.replication;
        let Source {
            reader, rereadable, ..
        } = source;

        let mut stored = self.store_all(reader, plan, progress).await?;
        stored.sort_by_key(|s| s.index);
        let size = stored.iter().map(|s| s.chunk.size).sum();
        let deduplicated = stored.iter().filter(|s| s.deduplicated).count();
        let mut chunks: Vec<CommittedChunk> = stored.into_iter().map(|s| s.chunk).collect();

        for attempt in 1..=COMMIT_ATTEMPTS {
            let (mut meta, request) = self.meta(CommitFileRequest {
                path: path.to_string(),
                size,
                chunk_size: plan.chunk_size,
                replication,
                chunks: chunks.clone(),
                overwrite: options.overwrite,
            });
            let reply = meta
                .commit_file(request)
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::AlreadyExists => anyhow::anyhow!(
                        "{} (use --force to overwrite)",
                        crate::client::describe(&s)
                    ),
                    _ => self.meta_error(s),
                })
                .with_context(|| format!("commit {path}"))?
                .into_inner();
            if reply.committed {
                return Ok(PutReport {
                    path: path.clone(),
                    size,
                    chunks: chunks.len(),
                    deduplicated,
                    version: reply.version,
                    elapsed: started.elapsed(),
                });
            }
            tracing::info!(
                attempt,
                short = reply.short_chunks.len(),
                "commit found chunks short of copies; sending them again"
            );
            let Some(file) = &rereadable else {
                bail!(
                    "commit {path}: {} chunk(s) lost copies during the put and standard input \
                     cannot be read again; retry the put",
                    reply.short_chunks.len()
                );
            };
            self.resend(file, plan, &mut chunks, &reply.short_chunks)
                .await?;
        }
        bail!("commit {path}: chunks kept losing copies after {COMMIT_ATTEMPTS} attempts")
    }

    /// Gives the chunks of a failed put back. Best effort: if this does not arrive, the write
    /// lease runs out instead.
    async fn abandon(&self, chunk_ids: Vec<String>) {
        if chunk_ids.is_empty() {
            return;
        }
        let (mut meta, request) = self.meta(AbandonChunksRequest { chunk_ids });
        if let Err(status) = meta.abandon_chunks(request).await {
            tracing::debug!(
                "cannot give back the failed put's chunks: {}",
                crate::client::describe(&status)
            );
        }
    }

    /// Fails early, before any byte moves, when `path` exists and is not to be replaced.
    async fn check_absent(&self, path: &FsPath) -> anyhow::Result<()> {
        let entries = match self.list_status(path).await {
            Ok(entries) => entries,
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(()),
            Err(status) => return Err(self.meta_error(status)),
        };
        match entries.as_slice() {
            [only] if !only.is_dir && only.path == path.as_str() => {
                bail!("{path} already exists (use --force to overwrite)")
            }
            _ => bail!("{path} is a directory"),
        }
    }

    async fn store_all(
        &self,
        reader: Box<dyn Read + Send>,
        plan: &PutPlan,
        progress: &Progress,
    ) -> anyhow::Result<Vec<Stored>> {
        let mut pieces = read_pieces(reader, plan.chunk_size as usize, plan.parallel);
        let batch_size = plan.parallel * 2;
        let pieces = stream::poll_fn(move |cx| pieces.poll_recv(cx));
        pieces
            .ready_chunks(batch_size)
            .then(|batch| async move {
                let batch = batch
                    .into_iter()
                    .collect::<io::Result<Vec<Piece>>>()
                    .context("read source")?;
                lock(&plan.handed_out).extend(batch.iter().map(|piece| piece.id.to_hex()));
                let placements = self.allocate(&batch, plan).await?;
                anyhow::Ok(stream::iter(batch.into_iter().zip(placements).map(Ok)))
            })
            .try_flatten()
            .map_ok(|(piece, placement)| async move {
                let stored = self.store_chunk(piece, placement, plan).await?;
                progress.add(stored.chunk.size);
                anyhow::Ok(stored)
            })
            .try_buffer_unordered(plan.parallel)
            .try_collect()
            .await
    }

    /// Placement for a batch of new chunks, avoiding nodes that already failed this put.
    async fn allocate(
        &self,
        batch: &[Piece],
        plan: &PutPlan,
    ) -> anyhow::Result<Vec<ChunkPlacement>> {
        let exclude = plan.failed_nodes();
        let wants = batch
            .iter()
            .map(|piece| ChunkWant {
                id: piece.id.to_hex(),
                size: piece.data.len() as u64,
                exclude: exclude.clone(),
                copies: 0,
            })
            .collect();
        self.allocate_wants(wants, plan.replication).await
    }

    async fn allocate_wants(
        &self,
        wants: Vec<ChunkWant>,
        replication: u32,
    ) -> anyhow::Result<Vec<ChunkPlacement>> {
        let count = wants.len();
        let (mut meta, request) = self.meta(AllocateChunksRequest {
            chunks: wants,
            replication,
        });
        let placements = meta
            .allocate_chunks(request)
            .await
            .map_err(|s| self.meta_error(s))
            .context("place chunks")?
            .into_inner()
            .chunks;
        if placements.len() != count {
            bail!(
                "metadata server placed {} chunks, {count} were asked for",
                placements.len()
            );
        }
        Ok(placements)
    }

    /// Stores one chunk on up to R nodes, replacing failed targets, and succeeds once at least
    /// W nodes hold it.
    async fn store_chunk(
        &self,
        piece: Piece,
        placement: ChunkPlacement,
        plan: &PutPlan,
    ) -> anyhow::Result<Stored> {
        let size = piece.data.len() as u64;
        let hex = piece.id.to_hex();
        if placement.already_stored {
            return Ok(Stored {
                index: piece.index,
                chunk: CommittedChunk {
                    id: hex,
                    size,
                    nodes: placement.targets.into_iter().map(|t| t.id).collect(),
                },
                deduplicated: true,
            });
        }
        let nodes = self
            .replicate(&hex, piece.data, placement.targets, plan, 0)
            .await
            .with_context(|| {
                format!(
                    "store chunk {} ({}) of {}",
                    piece.index,
                    piece.id.short(),
                    plan.path
                )
            })?;
        Ok(Stored {
            index: piece.index,
            chunk: CommittedChunk {
                id: hex,
                size,
                nodes,
            },
            deduplicated: false,
        })
    }

    /// Sends a chunk down `targets`, then to replacements for failed nodes, until `copies`
    /// (or R when 0) new nodes hold it. Returns the nodes that acknowledged it.
    async fn replicate(
        &self,
        hex: &str,
        data: Bytes,
        mut targets: Vec<bigfs_proto::pb::NodeAddr>,
        plan: &PutPlan,
        copies: u32,
    ) -> anyhow::Result<Vec<String>> {
        let wanted = if copies == 0 {
            plan.replication
        } else {
            copies
        } as usize;
        let mut acked: Vec<String> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let mut excluded: Vec<String> = Vec::new();
        for round in 0..PLACEMENT_ROUNDS {
            if !targets.is_empty() {
                let reply = self.nodes.put_chain(hex, data.clone(), &targets).await;
                for failure in reply.failed {
                    tracing::debug!(node = %failure.node_id, chunk = hex, "store failed: {}", failure.error);
                    failures.push(format!("node {}: {}", failure.node_id, failure.error));
                    lock(&plan.failed_nodes).insert(failure.node_id.clone());
                    excluded.push(failure.node_id);
                }
                acked.extend(reply.stored);
            }
            if acked.len() >= wanted || round + 1 == PLACEMENT_ROUNDS {
                break;
            }
            let want = ChunkWant {
                id: hex.to_string(),
                size: data.len() as u64,
                exclude: acked
                    .iter()
                    .chain(&excluded)
                    .cloned()
                    .chain(plan.failed_nodes())
                    .collect(),
                copies: (wanted - acked.len()) as u32,
            };
            targets = self
                .allocate_wants(vec![want], plan.replication)
                .await?
                .remove(0)
                .targets;
            if targets.is_empty() {
                break;
            }
        }
        let need = if copies == 0 { plan.min_copies } else { copies } as usize;
        if acked.len() < need {
            bail!(
                "only {} of the {need} required copies stored{}",
                acked.len(),
                if failures.is_empty() {
                    " (no usable storage nodes)".to_string()
                } else {
                    format!(": {}", failures.join("; "))
                }
            );
        }
        Ok(acked)
    }

    /// Stores again the chunks a commit found short of copies, reading them back from `file`.
    async fn resend(
        &self,
        file: &File,
        plan: &PutPlan,
        chunks: &mut [CommittedChunk],
        short: &[String],
    ) -> anyhow::Result<()> {
        for (index, chunk) in chunks.iter_mut().enumerate() {
            if !short.contains(&chunk.id) {
                continue;
            }
            let offset = index as u64 * plan.chunk_size;
            let mut data = vec![0u8; chunk.size as usize];
            file.read_exact_at(&mut data, offset)
                .with_context(|| format!("read chunk {index} again at offset {offset}"))?;
            if ChunkId::of(&data).to_hex() != chunk.id {
                bail!("the source changed during the put (chunk {index} reads differently now)");
            }
            let want = ChunkWant {
                id: chunk.id.clone(),
                size: chunk.size,
                exclude: vec![],
                copies: plan.replication,
            };
            let targets = self
                .allocate_wants(vec![want], plan.replication)
                .await?
                .remove(0)
                .targets;
            chunk.nodes = self
                .replicate(&chunk.id, Bytes::from(data), targets, plan, plan.min_copies)
                .await
                .with_context(|| format!("resend chunk {index} of {}", plan.path))?;
        }
        Ok(())
    }
}

/// Cuts `reader` into `chunk_size` pieces on a blocking thread, hashing each, and hands them
/// over through a channel of `depth` pieces. An empty source yields no pieces.
fn read_pieces(
    mut reader: Box<dyn Read + Send>,
    chunk_size: usize,
    depth: usize,
) -> mpsc::Receiver<io::Result<Piece>> {
    let (tx, rx) = mpsc::channel(depth);
    tokio::task::spawn_blocking(move || {
        for index in 0.. {
            let mut buf = vec![0u8; chunk_size];
            let filled = match fill(&mut reader, &mut buf) {
                Ok(filled) => filled,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            let piece = Piece {
                index,
                id: ChunkId::of(&buf),
                data: Bytes::from(buf),
            };
            // The receiver is gone when the put failed: stop reading.
            if tx.blocking_send(Ok(piece)).is_err() || filled < chunk_size {
                return;
            }
        }
    });
    rx
}

/// Reads until `buf` is full or the source ends; returns how much was read.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
