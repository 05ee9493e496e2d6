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
//! fails gives its chunks back, so their space is reclaimed after the grace period. Until then
//! the put renews its chunks' write lease, so that a put that runs longer than the lease (a
//! large file, a slow link or a slow standard input) does not find its first chunks collected
//! as garbage when it commits.
//!
//! Round trips: a put is refused at its path (a file above it, a directory there, a file
//! there without `--force`) before a byte is stored, by the metadata server's check riding on
//! the put's first AllocateChunks call, which also answers the cluster's settings. A client
//! that knows them already (a second put, a benchmark, the gateway) cuts the file at once and
//! sends the check with its first batch of placements: a one-chunk file costs three calls,
//! placement, the chunk's chain, the commit.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::{stream, Stream, StreamExt, TryStreamExt};

use bigfs_proto::pb::{
    AbandonChunksRequest, AllocateChunksRequest, ChunkPlacement, ChunkWant, CommitFileRequest,
    CommittedChunk, ObjectMeta, RenewLeasesRequest,
};
use bigfs_proto::{ChunkId, FsPath};

use crate::chunker::{self, Cut, Input, Piece};
use crate::client::Client;
use crate::local_attrs::LocalAttrs;
use crate::progress::Progress;

/// Placement rounds for one chunk before the put gives up on it.
const PLACEMENT_ROUNDS: usize = 4;

/// Commit attempts (each after resending the chunks the previous one found short).
const COMMIT_ATTEMPTS: usize = 4;

/// The pause before committing again after a resend, times the attempt number.
const COMMIT_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Chunk ids per RenewLeases call.
const LEASE_BATCH: usize = 10_000;

/// Renewals are at least this far apart, however short the lease.
const MIN_RENEWAL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct PutOptions {
    /// Copies of each chunk; `None` for the cluster's default.
    pub replication: Option<u32>,
    /// Replace an existing file.
    pub overwrite: bool,
    /// Chunks stored at once.
    pub parallel: usize,
    /// Keep the local files' mode and modification time (otherwise 0644 and the time of
    /// the put).
    pub preserve: bool,
    /// Commit only over the file at this version, checked in the commit's transaction (an
    /// S3 conditional write); implies `overwrite`. Single-file puts only. A put that lost the race fails with an
    /// error [`crate::client::MetaError::is_version_mismatch`] knows, and leaves the other
    /// writer's file.
    pub if_version: Option<u64>,
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
    input: Input,
    /// A handle to read chunks again by offset; `None` for a stream such as standard input.
    rereadable: Option<File>,
    /// Known in advance for files, for the progress bar.
    pub size: Option<u64>,
    /// A file's mode and mtime (`None` for a stream).
    pub attrs: Option<LocalAttrs>,
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
            input: Input::Stream {
                reader: Box::new(file),
                name: path.display().to_string(),
            },
            size: Some(meta.len()),
            attrs: Some(LocalAttrs::of(&meta)),
        })
    }

    pub fn stdin() -> Self {
        Self {
            input: Input::Stream {
                reader: Box::new(std::io::stdin()),
                name: "standard input".into(),
            },
            rereadable: None,
            size: None,
            attrs: None,
        }
    }

    /// Bytes that arrive on an async reader, such as an HTTP request body, named `name` in
    /// errors. The chunker's thread reads it through a bridge as it needs bytes, so only the
    /// chunks in flight are held: a slow or huge stream costs no more memory than a file.
    /// Must be called inside a tokio runtime. Like standard input it cannot be read again, so
    /// a commit that finds chunks short of copies can only wait for them, not resend them.
    /// A blocking reader of `size` bytes, if known (`name` says what it is in errors).
    pub fn reader(
        reader: impl std::io::Read + Send + 'static,
        name: &str,
        size: Option<u64>,
    ) -> Self {
        Self {
            input: Input::Stream {
                reader: Box::new(reader),
                name: name.to_string(),
            },
            rereadable: None,
            size,
            attrs: None,
        }
    }

    pub fn async_reader(
        reader: impl tokio::io::AsyncRead + Send + Unpin + 'static,
        name: &str,
        size: Option<u64>,
    ) -> Self {
        Self {
            input: Input::Stream {
                reader: Box::new(tokio_util::io::SyncIoBridge::new(reader)),
                name: name.to_string(),
            },
            rereadable: None,
            size,
            attrs: None,
        }
    }
}

/// What one chunk's storing produced.
pub(crate) struct Stored {
    pub file: usize,
    pub index: usize,
    pub chunk: CommittedChunk,
    pub deduplicated: bool,
}

/// Progress of a put's pipeline, as it happens.
pub(crate) enum Event {
    Stored(Stored),
    /// Source `file` has been read; it had `chunks` chunks.
    End {
        file: usize,
        chunks: usize,
    },
}

/// Work for the store stage: a piece to store, or a source's end passing through.
enum Work {
    Store(Piece, ChunkPlacement),
    End { file: usize, chunks: usize },
}

/// The settings one put (of a file or a tree) runs with.
pub(crate) struct PutPlan {
    /// What the put writes: a file's path, or a tree's root. For messages.
    pub path: FsPath,
    pub chunk_size: u64,
    pub replication: u32,
    min_copies: u32,
    /// Chunks stored at once.
    pub parallel: usize,
    /// How long the chunks handed out stay protected without a renewal; `None` if the
    /// metadata server did not say.
    lease: Option<Duration>,
    /// Every chunk the metadata server handed out to this put, to renew their leases while it
    /// runs and to give them back if it fails.
    handed_out: Mutex<Vec<String>>,
    /// Nodes that failed a write of this put; later placements avoid them.
    failed_nodes: Mutex<HashSet<String>>,
    /// The check of `path` (with this overwrite flag) that the next placement call carries:
    /// set until the first one went, for a put whose settings were known without a call.
    check: Mutex<Option<bool>>,
}

impl PutPlan {
    fn failed_nodes(&self) -> Vec<String> {
        lock(&self.failed_nodes).iter().cloned().collect()
    }

    /// The chunks handed out so far, to give back after a failure.
    pub(crate) fn handed_out(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.handed_out))
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
        self.put_object(source, path, options, progress, || Ok(None))
            .await
    }

    /// [`Self::put`] of an S3 object: `finish` runs once the whole source is stored and before
    /// the commit, and says what to keep with the file (an ETag it computed over the bytes
    /// as they passed, say). An error from it fails the put: nothing becomes visible.
    pub async fn put_object(
        &self,
        source: Source,
        path: &FsPath,
        options: &PutOptions,
        progress: &Progress,
        finish: impl FnOnce() -> anyhow::Result<Option<ObjectMeta>>,
    ) -> anyhow::Result<PutReport> {
        let started = Instant::now();
        let overwrite = options.overwrite || options.if_version.is_some();
        let plan = self.plan(path, options, Some(overwrite)).await?;
        let put = self.store_and_commit(source, &plan, options, progress, started, finish);
        let result = self.renewing_leases(&plan, put).await;
        if result.is_err() {
            self.abandon(plan.handed_out()).await;
        }
        result
    }

    /// The settings for a put of `path`, with the cluster's chunk size and defaults. With
    /// `check` (the put's overwrite flag) the put is refused, as its commit would be, before a
    /// byte is stored: by the call that asks for the settings, or, when this client knows them
    /// already, by the put's first placement call.
    pub(crate) async fn plan(
        &self,
        path: &FsPath,
        options: &PutOptions,
        check: Option<bool>,
    ) -> anyhow::Result<PutPlan> {
        let replication = options.replication.unwrap_or(0);
        let (info, check) = match self.known_settings() {
            Some(info) => (info, check),
            None => {
                let checked = check.map(|overwrite| (path, overwrite));
                self.allocate_call(Vec::new(), replication, checked).await?;
                let info = self.known_settings().context("no cluster settings")?;
                (info, None)
            }
        };
        let replication = options.replication.unwrap_or(info.replication);
        Ok(PutPlan {
            path: path.clone(),
            chunk_size: info.chunk_size,
            replication,
            min_copies: info.min_replicas.min(replication),
            parallel: options.parallel.max(1),
            lease: (info.write_lease_ms > 0).then(|| Duration::from_millis(info.write_lease_ms)),
            handed_out: Mutex::new(Vec::new()),
            failed_nodes: Mutex::new(HashSet::new()),
            check: Mutex::new(check),
        })
    }

    async fn store_and_commit(
        &self,
        source: Source,
        plan: &PutPlan,
        options: &PutOptions,
        progress: &Progress,
        started: Instant,
        finish: impl FnOnce() -> anyhow::Result<Option<ObjectMeta>>,
    ) -> anyhow::Result<PutReport> {
        let path = &plan.path;
        let replication = plan.replication;
        let Source {
            input,
            rereadable,
            attrs,
            ..
        } = source;
        // Named in the error of a commit that could not resend (only streams lack a handle).
        let stream_name = match &input {
            Input::Stream { name, .. } => name.clone(),
            Input::Files(_) => String::new(),
        };
        let attrs = attrs.filter(|_| options.preserve);

        let mut stored: Vec<Stored> = self
            .store_stream(input, plan, progress)
            .try_filter_map(|event| async move {
                Ok(match event {
                    Event::Stored(stored) => Some(stored),
                    Event::End { .. } => None,
                })
            })
            .try_collect()
            .await?;
        stored.sort_by_key(|s| s.index);
        let size = stored.iter().map(|s| s.chunk.size).sum();
        let deduplicated = stored.iter().filter(|s| s.deduplicated).count();
        let mut chunks: Vec<CommittedChunk> = stored.into_iter().map(|s| s.chunk).collect();
        let object = finish()?;

        let mut short = 0;
        for attempt in 1..=COMMIT_ATTEMPTS {
            let request = CommitFileRequest {
                path: path.to_string(),
                size,
                chunk_size: plan.chunk_size,
                replication,
                chunks: chunks.clone(),
                overwrite: options.overwrite,
                mode: attrs.map_or(0, |a| a.mode),
                mtime_ms: attrs.map_or(0, |a| a.mtime_ms),
                object: object.clone(),
                if_version: options.if_version,
            };
            let reply = self
                .commit(request)
                .await
                .map_err(|s| self.overwrite_hint(s))
                .context("commit")?;
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
            short = reply.short_chunks.len();
            tracing::info!(attempt, short, "commit found chunks short of copies");
            if attempt == COMMIT_ATTEMPTS {
                break;
            }
            // A stream cannot be sent again, but waiting may be enough: a node that had
            // deleted a chunk is trusted with it again once its own heartbeat reports the new
            // copy.
            if let Some(file) = &rereadable {
                self.resend(file, plan, &mut chunks, &reply.short_chunks)
                    .await?;
            }
            tokio::time::sleep(COMMIT_RETRY_PAUSE * attempt as u32).await;
        }
        if rereadable.is_none() {
            bail!(
                "commit: {short} chunk(s) lost copies during the put and {stream_name} cannot \
                 be read again; retry the put"
            );
        }
        bail!("commit: chunks kept losing copies after {COMMIT_ATTEMPTS} attempts")
    }

    /// Runs `put` while renewing the write leases of the chunks handed out to `plan`.
    pub(crate) async fn renewing_leases<T>(
        &self,
        plan: &PutPlan,
        put: impl Future<Output = T>,
    ) -> T {
        let Some(lease) = plan.lease else {
            return put.await;
        };
        tokio::select! {
            done = put => done,
            never = self.renew_leases(plan, lease) => match never {},
        }
    }

    /// Renews the write leases of the chunks handed out to `plan`, three times a lease, for
    /// as long as it is polled. Best effort: a chunk whose lease runs out all the same is
    /// refused at the commit and sent again.
    async fn renew_leases(&self, plan: &PutPlan, lease: Duration) -> Infallible {
        let mut ticks = tokio::time::interval((lease / 3).max(MIN_RENEWAL_INTERVAL));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is now, when the chunks were just handed out.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.renew_handed_out(plan).await;
        }
    }

    /// One round of [`Self::renew_leases`]: every chunk handed out so far, a batch per call.
    async fn renew_handed_out(&self, plan: &PutPlan) {
        let mut start = 0;
        loop {
            // Copied a batch at a time: a long put has handed out many chunks.
            let chunk_ids: Vec<String> = {
                let handed_out = lock(&plan.handed_out);
                let rest = handed_out.get(start..).unwrap_or_default();
                rest.iter().take(LEASE_BATCH).cloned().collect()
            };
            if chunk_ids.is_empty() {
                return;
            }
            start += chunk_ids.len();
            let count = chunk_ids.len();
            let (mut meta, request) = self.meta(RenewLeasesRequest { chunk_ids });
            if let Err(status) = meta.renew_leases(request).await {
                tracing::warn!(
                    "cannot renew the write lease of {count} chunks of {}: {}",
                    plan.path,
                    crate::client::describe(&status)
                );
            }
        }
    }

    /// Gives the chunks of a failed put back. Best effort: if this does not arrive, the write
    /// lease runs out instead.
    pub(crate) async fn abandon(&self, chunk_ids: Vec<String>) {
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

    /// Cuts `input` into chunks and stores them: placed a batch at a time, stored `parallel` at
    /// a time. Yields each stored chunk, and each source's end, as they happen (in no order).
    pub(crate) fn store_stream<'a>(
        &'a self,
        input: Input,
        plan: &'a PutPlan,
        progress: &'a Progress,
    ) -> impl Stream<Item = anyhow::Result<Event>> + 'a {
        let mut cuts = chunker::cut(input, plan.chunk_size as usize, plan.parallel);
        stream::poll_fn(move |cx| cuts.poll_recv(cx))
            .ready_chunks(plan.parallel)
            .then(move |batch| async move {
                let mut pieces = Vec::with_capacity(batch.len());
                let mut ends = Vec::new();
                for cut in batch {
                    match cut? {
                        Cut::Piece(piece) => pieces.push(piece),
                        Cut::End { file, chunks } => ends.push(Work::End { file, chunks }),
                    }
                }
                let placements = if pieces.is_empty() {
                    Vec::new()
                } else {
                    lock(&plan.handed_out).extend(pieces.iter().map(|piece| piece.id.to_hex()));
                    self.allocate(&pieces, plan).await?
                };
                let work = pieces
                    .into_iter()
                    .zip(placements)
                    .map(|(piece, placement)| Work::Store(piece, placement))
                    .chain(ends);
                anyhow::Ok(stream::iter(work.map(anyhow::Ok)))
            })
            .try_flatten()
            .map_ok(move |work| async move {
                match work {
                    Work::Store(piece, placement) => {
                        let stored = self.store_chunk(piece, placement, plan).await?;
                        progress.add(stored.chunk.size);
                        Ok(Event::Stored(stored))
                    }
                    Work::End { file, chunks } => Ok(Event::End { file, chunks }),
                }
            })
            .try_buffer_unordered(plan.parallel)
    }

    /// Placement for a batch of new chunks, avoiding nodes that already failed this put; the
    /// first batch carries the put's check, if it is still due.
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
        let check = lock(&plan.check).take();
        let checked = check.map(|overwrite| (&plan.path, overwrite));
        self.allocate_call(wants, plan.replication, checked).await
    }

    async fn allocate_wants(
        &self,
        wants: Vec<ChunkWant>,
        replication: u32,
    ) -> anyhow::Result<Vec<ChunkPlacement>> {
        self.allocate_call(wants, replication, None).await
    }

    /// One AllocateChunks call: placement for `wants`, after the server checked that a put may
    /// create `check`'s path (with its overwrite flag). Remembers the settings it answers.
    async fn allocate_call(
        &self,
        wants: Vec<ChunkWant>,
        replication: u32,
        check: Option<(&FsPath, bool)>,
    ) -> anyhow::Result<Vec<ChunkPlacement>> {
        let count = wants.len();
        let (path, overwrite) = check.map_or((String::new(), false), |(p, o)| (p.to_string(), o));
        let checked = !path.is_empty();
        let (mut meta, request) = self.meta(AllocateChunksRequest {
            chunks: wants,
            replication,
            path,
            overwrite,
        });
        let reply = match meta.allocate_chunks(request).await {
            Ok(reply) => reply.into_inner(),
            // A refusal of the path names it and says what to do, as its commit would.
            Err(status) if checked => return Err(self.overwrite_hint(status)),
            Err(status) => return Err(self.meta_error(status)).context("place chunks"),
        };
        let Some(settings) = reply.cluster else {
            bail!(
                "the metadata server at {} is older than this client (its placements carry \
                 no cluster settings): upgrade it",
                self.url()
            );
        };
        self.remember_settings(settings);
        if reply.chunks.len() != count {
            bail!(
                "metadata server placed {} chunks, {count} were asked for",
                reply.chunks.len()
            );
        }
        Ok(reply.chunks)
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
                file: piece.file,
                index: piece.index,
                chunk: CommittedChunk {
                    id: hex,
                    size,
                    nodes: placement.targets.into_iter().map(|t| t.id).collect(),
                },
                deduplicated: true,
            });
        }
        let holders: Vec<String> = placement.holders.into_iter().map(|h| h.id).collect();
        let nodes = self
            .replicate(&hex, piece.data, holders, placement.targets, plan)
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
            file: piece.file,
            index: piece.index,
            chunk: CommittedChunk {
                id: hex,
                size,
                nodes,
            },
            deduplicated: false,
        })
    }

    /// Sends a chunk down `targets`, then to replacements for failed nodes, until it has R
    /// copies, counting the live `holders` it already had; fails with fewer than W. Returns the
    /// nodes that hold it: those holders and the nodes that acknowledged it.
    async fn replicate(
        &self,
        hex: &str,
        data: Bytes,
        holders: Vec<String>,
        mut targets: Vec<bigfs_proto::pb::NodeAddr>,
        plan: &PutPlan,
    ) -> anyhow::Result<Vec<String>> {
        let wanted = plan.replication as usize;
        let mut acked: Vec<String> = holders;
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
        let need = plan.min_copies as usize;
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
    /// Each is placed afresh: copies that count now (a node that had deleted the chunk and has
    /// since reported the new copy) are kept, and only what is missing is sent.
    async fn resend(
        &self,
        file: &File,
        plan: &PutPlan,
        chunks: &mut [CommittedChunk],
        short: &[String],
    ) -> anyhow::Result<()> {
        // A chunk the file holds more than once (a run of zeros, say) is sent once.
        let mut sent: HashMap<String, Vec<String>> = HashMap::new();
        for (index, chunk) in chunks.iter_mut().enumerate() {
            if !short.contains(&chunk.id) {
                continue;
            }
            if let Some(nodes) = sent.get(&chunk.id) {
                chunk.nodes = nodes.clone();
                continue;
            }
            let offset = index as u64 * plan.chunk_size;
            let mut data = vec![0u8; chunk.size as usize];
            file.read_exact_at(&mut data, offset)
                .with_context(|| format!("read chunk {index} again at offset {offset}"))?;
            let id = ChunkId::of(&data);
            if id.to_hex() != chunk.id {
                bail!("the source changed during the put (chunk {index} reads differently now)");
            }
            let piece = Piece {
                file: 0,
                index,
                id,
                data: Bytes::from(data),
            };
            let placement = self
                .allocate(std::slice::from_ref(&piece), plan)
                .await?
                .remove(0);
            chunk.nodes = self
                .store_chunk(piece, placement, plan)
                .await
                .with_context(|| format!("resend chunk {index}"))?
                .chunk
                .nodes;
            sent.insert(chunk.id.clone(), chunk.nodes.clone());
        }
        Ok(())
    }
}
