//! [`MetaStore`]: the metadata server's core. It owns the persistent namespace and the
//! cluster's soft state, and every operation the server offers is one method here, taking and
//! returning plain types; the gRPC service only converts. This is where a replicated log will
//! plug in: every namespace change is one method taking one request.
//!
//! Locking: no namespace transaction runs under the cluster lock, so that reads, allocations
//! and heartbeats, which take that lock on tokio's workers, never wait for the namespace's
//! disk or its writer lock (held through a long rename or copy). Garbage collection stays
//! safe because it deletes a chunk only when the namespace says, at that moment, that no file
//! references it: commits, which raise counts from zero, hold their chunks under the cluster
//! lock before their transaction (see [`MetaStore::apply_commits`]); removals, renames and
//! copies only lower counts or raise non-zero ones, and the chunks they free start their grace
//! period afterwards. Chunks a
//! change leaves unreferenced start their grace period only once the change is flushed.
//! Namespace changes run on the blocking pool (sled blocks; the small writes of node
//! registration and drains excepted) and flush after the locks are released, so concurrent
//! changes share flushes; when a method returns, its change is durable.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use bigfs_proto::batch_queue::BatchQueues;
use bigfs_proto::limits::{MAX_CHUNK_SIZE, MAX_REPLICATION};
use bigfs_proto::lock::lock;
use bigfs_proto::pb::ObjectMeta;
use bigfs_proto::transport::META_RPC_TIMEOUT;
use bigfs_proto::{ChunkId, FsPath, NodeRef};

use crate::cluster::{Allocation, Cluster, ClusterConfig, ClusterGauges, Want};
use crate::error::MetaError;
use crate::namespace::{
    blocking, AttrChange, Concat, Copied, Entry, FileWrite, Lookup, Moved, Namespace, Usage,
};
use crate::records::{ChunkEntry, DirAttrs, FileRecord, Xattrs, DEFAULT_DIR_MODE, MODE_MASK};

mod fsck;
mod nodes;
mod repair;
#[cfg(test)]
mod tests;

pub use fsck::{FsckProblem, FsckReport};
use nodes::safe_mode_status;
pub use nodes::{NodesReport, Registration, SafeModeStatus};

/// How many entries `rm -r` removes per transaction.
const REMOVE_BATCH: usize = 512;

/// Chunks fsck classifies per hold of the cluster lock.
const FSCK_BATCH: usize = 4096;

/// Single-file commits applied in one transaction at most (see [`MetaStore::commit_one`]).
const COMMIT_GROUP: usize = 256;

/// A file a put asks to make visible.
#[derive(Clone, Debug)]
pub struct Commit {
    pub path: FsPath,
    pub size: u64,
    pub chunk_size: u64,
    /// 0: the cluster's default.
    pub replication: u32,
    /// Each chunk in file order, with its size and the nodes that acknowledged a copy.
    pub chunks: Vec<(ChunkId, u64, Vec<String>)>,
    pub overwrite: bool,
    /// 0: the default mode.
    pub mode: u32,
    /// 0: the time of the commit.
    pub mtime_ms: u64,
    /// What an S3 client stored with the object.
    pub object: ObjectMeta,
    /// Commit only over the file at this version (implies `overwrite`).
    pub if_version: Option<u64>,
}

/// What became of a commit that was not refused outright.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed {
        version: u64,
    },
    /// Chunks with fewer than W live copies: the client sends them again and retries.
    ShortOfCopies(Vec<ChunkId>),
}

/// A file's record with each chunk's live locations, best first.
#[derive(Debug)]
pub struct LocatedFile {
    pub path: FsPath,
    pub record: FileRecord,
    pub chunks: Vec<LocatedChunk>,
}

#[derive(Debug)]
pub struct LocatedChunk {
    pub id: ChunkId,
    pub size: u64,
    pub replicas: Vec<NodeRef>,
}

pub struct MetaStore {
    ns: Namespace,
    cluster: Mutex<Cluster>,
    chunk_size: u64,
    /// How long each flush took: what every namespace change waits for before it is answered.
    flush_seconds: Histogram,
    /// Single-file commits waiting to be applied together.
    commits: BatchQueues<Commit, Result<CommitOutcome, MetaError>>,
    /// Takings of the cluster lock that found it held and had to wait: each such wait in a
    /// handler blocks a tokio worker, so this should stay a small share of the calls.
    cluster_lock_waits: Counter,
}

impl MetaStore {
    /// Opens the namespace in `data_dir`; after a restart, the cluster state starts in safe
    /// mode, waiting for the known nodes that were not being drained.
    pub fn open(
        data_dir: &std::path::Path,
        chunk_size: u64,
        config: ClusterConfig,
        now: Instant,
    ) -> Result<Self, MetaError> {
        let ns = Namespace::open(data_dir)?;
        let known: Vec<String> = ns.known_nodes()?.into_iter().map(|(id, _)| id).collect();
        if !known.is_empty() {
            tracing::info!(
                nodes = known.len(),
                timeout = ?config.safe_mode_timeout,
                "safe mode: no deletions until the known nodes report"
            );
        }
        let mut cluster = Cluster::new(config, known, now);
        cluster.resume_drains(ns.drains()?);
        Ok(Self {
            ns,
            cluster: Mutex::new(cluster),
            chunk_size,
            // 100 µs to 3.3 s: a flush of the page cache takes well under a millisecond, one
            // that waits for a busy disk much longer.
            flush_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            commits: BatchQueues::default(),
            cluster_lock_waits: Counter::default(),
        })
    }

    fn cluster(&self) -> MutexGuard<'_, Cluster> {
        match self.cluster.try_lock() {
            Ok(cluster) => cluster,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.cluster_lock_waits.inc();
                lock(&self.cluster)
            }
        }
    }

    /// Counts takings of the cluster lock that had to wait for it, for metrics.
    pub fn cluster_lock_waits(&self) -> Counter {
        self.cluster_lock_waits.clone()
    }

    /// Runs `f` under the cluster lock with the function that says how many copies a chunk
    /// wants (0: no file references it). A store error counts as referenced with the cluster's
    /// replication: when in doubt, keep.
    fn with_cluster<T>(&self, f: impl FnOnce(&mut Cluster, &dyn Fn(&ChunkId) -> u32) -> T) -> T {
        let mut cluster = self.cluster();
        let default = cluster.config().replication;
        let wanted = |chunk: &ChunkId| {
            self.ns.wanted_copies(chunk).unwrap_or_else(|e| {
                tracing::error!(chunk = %chunk, "cannot read the chunk table: {e}");
                default
            })
        };
        f(&mut cluster, &wanted)
    }

    /// Makes every change so far durable.
    pub async fn flush(&self) -> Result<(), MetaError> {
        let started = Instant::now();
        let flushed = self.ns.flush().await;
        self.flush_seconds.observe(started.elapsed().as_secs_f64());
        flushed
    }

    /// Counts of sled flushes run and of waits for one (a change being made durable), for
    /// metrics: concurrent changes share flushes, so the first grows slower than the second.
    pub fn flush_counters(&self) -> (Counter, Counter) {
        self.ns.flush_counters()
    }

    /// The durations of [`Self::flush`], for metrics.
    pub fn flush_histogram(&self) -> Histogram {
        self.flush_seconds.clone()
    }

    /// The cluster's gauges (one pass over the nodes under the cluster lock).
    pub fn gauges(&self) -> ClusterGauges {
        self.cluster().gauges(Instant::now())
    }

    /// Whom safe mode waits for, or `None` outside safe mode.
    pub fn safe_mode(&self) -> Option<SafeModeStatus> {
        safe_mode_status(&self.cluster(), Instant::now())
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    pub fn config(&self) -> ClusterConfig {
        self.cluster().config().clone()
    }

    /// Files in the namespace (one pass over it).
    pub fn file_count(&self) -> Result<u64, MetaError> {
        self.ns.file_count()
    }

    /// The replication a file asks for: the default for 0, refused above the limit.
    fn replication(&self, requested: u32) -> Result<u32, MetaError> {
        match requested {
            0 => Ok(self.cluster().config().replication),
            r if r <= MAX_REPLICATION => Ok(r),
            r => Err(MetaError::InvalidArgument(format!(
                "replication {r} is above the limit of {MAX_REPLICATION}"
            ))),
        }
    }

    /// Placement for a batch of chunks. A replication asked for explicitly may not exceed the
    /// nodes that can hold copies: those copies could never all be made.
    pub fn allocate(&self, wants: &[Want], replication: u32) -> Result<Vec<Allocation>, MetaError> {
        let explicit = replication != 0;
        let replication = self.replication(replication)?;
        let mut cluster = self.cluster();
        let nodes = cluster.storage_nodes();
        if explicit && replication > nodes {
            return Err(MetaError::InvalidArgument(format!(
                "{replication} copies asked for, but the cluster has {nodes} storage node(s) \
                 that take chunks; ask for at most {nodes}"
            )));
        }
        cluster.allocate(wants, replication, Instant::now())
    }

    /// Commits files, each with its own outcome (an error for one refused outright), with one
    /// flush for all of them. Fails as a whole only on a store error.
    pub async fn commit(
        self: &Arc<Self>,
        commits: Vec<Commit>,
    ) -> Result<Vec<Result<CommitOutcome, MetaError>>, MetaError> {
        let prepared: Vec<Result<Prepared, MetaError>> =
            commits.into_iter().map(|c| self.prepare(c)).collect();
        let store = self.clone();
        let Applied { outcomes, freed } = blocking(move || store.apply_commits(prepared)).await?;
        if outcomes
            .iter()
            .any(|o| matches!(o, Ok(CommitOutcome::Committed { .. })))
        {
            self.flush_then_free(&freed).await?;
        }
        Ok(outcomes)
    }

    /// Commits one file (a put's CommitFile) with the single-file commits that arrive while
    /// earlier ones are applied: one transaction under one hold of the cluster lock, and one
    /// flush, for the group, instead of one each. Each gets its own outcome, as if the group's
    /// commits had come one after the other (a later one sees an earlier one's file).
    pub async fn commit_one(self: &Arc<Self>, commit: Commit) -> Result<CommitOutcome, MetaError> {
        let store = Arc::clone(self);
        let apply = move |commits: Vec<Commit>| {
            let store = Arc::clone(&store);
            async move {
                let count = commits.len();
                store.commit(commits).await.unwrap_or_else(|e| {
                    let message = e.to_string();
                    (0..count)
                        .map(|_| Err(MetaError::Internal(message.clone())))
                        .collect()
                })
            }
        };
        let answer = self
            .commits
            .submit(String::new(), commit, COMMIT_GROUP, META_RPC_TIMEOUT, apply)
            .await;
        answer.unwrap_or_else(|unanswered| {
            Err(MetaError::Internal(format!(
                "commit not answered ({unanswered:?})"
            )))
        })
    }

    /// Checks a commit and turns it into the record to write.
    fn prepare(&self, commit: Commit) -> Result<Prepared, MetaError> {
        let replication = self.replication(commit.replication)?;
        validate_layout(commit.size, commit.chunk_size, &commit.chunks)?;
        let mut acks = Vec::with_capacity(commit.chunks.len());
        let mut entries = Vec::with_capacity(commit.chunks.len());
        for (id, size, nodes) in commit.chunks {
            entries.push(ChunkEntry::new(id, size));
            acks.push((id, nodes));
        }
        let mut record = FileRecord {
            size: commit.size,
            chunk_size: commit.chunk_size,
            replication,
            chunks: entries,
            mtime_ms: or_now(commit.mtime_ms),
            mode: commit.mode & MODE_MASK,
            ..FileRecord::default()
        };
        record.set_object(commit.object);
        Ok(Prepared {
            write: FileWrite {
                path: commit.path,
                record,
                overwrite: commit.overwrite,
                if_version: commit.if_version,
            },
            acks,
        })
    }

    /// Applies checked commits, without flushing: refused (listing the chunks short of
    /// copies) when a chunk has fewer than W live copies, otherwise written, all accepted
    /// files in one transaction. Also returns the chunks the written ones freed (of the files
    /// they replaced), whose grace starts once the commits are flushed.
    ///
    /// The transaction runs outside the cluster lock, so that reads, allocations and
    /// heartbeats (which take that lock on tokio's workers) never wait for the namespace's
    /// disk or writer lock. Garbage collection stays safe: its only unsafe moment would be
    /// deciding that a chunk of an accepted commit is garbage because the namespace does not
    /// count the commit's references yet; [`Cluster::begin_commit`], under the same hold of
    /// the lock as the copy check, makes it treat those chunks as leased until the outcome is
    /// recorded (or its hold dropped, on any path out of here). Every other decision re-reads
    /// the namespace when it acts (a chunk awaiting its grace is deleted only if still
    /// unreferenced then), and a removal between the transaction and the outcome is caught by
    /// [`Cluster::committed`].
    fn apply_commits(
        &self,
        prepared: Vec<Result<Prepared, MetaError>>,
    ) -> Result<Applied, MetaError> {
        let mut outcomes: Vec<Option<Result<CommitOutcome, MetaError>>> =
            Vec::with_capacity(prepared.len());
        let mut writes = Vec::new();
        let mut held = Vec::new();
        {
            let now = Instant::now();
            let mut cluster = self.cluster();
            for (i, commit) in prepared.into_iter().enumerate() {
                let commit = match commit {
                    Ok(commit) => commit,
                    Err(e) => {
                        outcomes.push(Some(Err(e)));
                        continue;
                    }
                };
                let need = cluster
                    .config()
                    .min_replicas
                    .min(commit.write.record.replication);
                let short = cluster.check_commit(&commit.acks, need, now);
                if !short.is_empty() {
                    tracing::info!(path = %commit.write.path, short = short.len(), "commit refused: chunks short of copies");
                    outcomes.push(Some(Ok(CommitOutcome::ShortOfCopies(short))));
                    continue;
                }
                let ids: Vec<ChunkId> = commit.acks.into_iter().map(|(id, _)| id).collect();
                held.push((i, cluster.begin_commit(ids)));
                outcomes.push(None);
                writes.push(commit.write);
            }
        }
        let results = self.ns.commit_many(&writes)?;
        let mut freed = Vec::new();
        self.with_cluster(|cluster, wanted| {
            let now = Instant::now();
            for ((i, hold), result) in held.into_iter().zip(results) {
                outcomes[i] = Some(match result {
                    Ok(committed) => {
                        cluster.committed(hold, wanted, now);
                        freed.extend(committed.freed);
                        Ok(CommitOutcome::Committed {
                            version: committed.version,
                        })
                    }
                    Err(e) => {
                        cluster.commit_failed(hold, now);
                        Err(e)
                    }
                });
            }
        });
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.expect("every commit decided"))
            .collect();
        Ok(Applied { outcomes, freed })
    }

    /// Refuses, as its commit would be refused, a put to `path` before it sends a byte.
    pub fn check_create(&self, path: &FsPath, overwrite: bool) -> Result<(), MetaError> {
        self.ns.check_create(path, overwrite)
    }

    /// A put gave up the chunks it was handed.
    pub fn abandon(&self, chunks: &[ChunkId]) {
        self.with_cluster(|cluster, wanted| cluster.abandon(chunks, wanted, Instant::now()));
    }

    /// A put in progress still holds these chunks.
    pub fn renew_leases(&self, chunks: &[ChunkId]) {
        self.with_cluster(|cluster, wanted| cluster.renew_leases(chunks, wanted, Instant::now()));
    }

    /// A file's record and where its chunks live.
    pub fn locate(&self, path: &FsPath) -> Result<LocatedFile, MetaError> {
        let record = match self.ns.lookup(path)? {
            Lookup::File(record) => record,
            Lookup::Dir(_) => return Err(MetaError::IsDirectory(path.to_string())),
            Lookup::Missing => return Err(MetaError::NotFound(path.to_string())),
        };
        let now = Instant::now();
        let cluster = self.cluster();
        let chunks = record
            .chunks
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let id = entry.chunk_id()?;
                Ok(LocatedChunk {
                    id,
                    size: entry.size,
                    replicas: cluster.read_locations(&id, index, now),
                })
            })
            .collect::<Result<Vec<_>, MetaError>>()?;
        Ok(LocatedFile {
            path: path.clone(),
            record,
            chunks,
        })
    }

    /// A directory's children, or a file alone.
    pub fn list(&self, path: &FsPath) -> Result<Vec<Entry>, MetaError> {
        if let Some(record) = self.ns.get(path)? {
            return Ok(vec![Entry::File(path.clone(), record)]);
        }
        self.ns
            .list(path)?
            .ok_or_else(|| MetaError::NotFound(path.to_string()))
    }

    /// Removes a file (only if it is at `if_version`, when given), or with `recursive` a
    /// directory and everything below it (an empty directory too); returns how many files
    /// went. A long removal goes in batches, one transaction each; a crash part-way leaves
    /// whole files.
    pub async fn remove(
        self: &Arc<Self>,
        path: &FsPath,
        recursive: bool,
        if_version: Option<u64>,
    ) -> Result<u64, MetaError> {
        let store = self.clone();
        let target = path.clone();
        match blocking(move || store.remove_entries(&target, recursive, if_version)).await {
            Ok((count, freed)) => {
                self.flush_then_free(&freed).await?;
                Ok(count)
            }
            Err(e) => {
                // Whatever was removed before an error must be durable too.
                self.flush().await?;
                Err(e)
            }
        }
    }

    /// Removes what [`Self::remove`] says; returns how many files went and the chunks a removal
    /// not yet flushed freed (a single file's: it shares the next group flush), whose grace
    /// starts only once it is durable.
    fn remove_entries(
        &self,
        path: &FsPath,
        recursive: bool,
        if_version: Option<u64>,
    ) -> Result<(u64, Vec<ChunkId>), MetaError> {
        match self.ns.lookup(path)? {
            Lookup::Missing => return Err(MetaError::NotFound(path.to_string())),
            Lookup::File(_) => {
                // Outside the cluster lock: until they are freed, the chunks this takes to no
                // references are not garbage candidates on its account, and any candidate is
                // deleted only if the namespace still says unreferenced when its grace ends.
                return Ok((1, self.ns.remove(path, if_version)?));
            }
            // Only a file has a version.
            Lookup::Dir(_) if if_version.is_some() => {
                return Err(MetaError::IsDirectory(path.to_string()))
            }
            Lookup::Dir(_) if path.is_root() => {
                return Err(MetaError::InvalidArgument(
                    "the root directory cannot be removed".into(),
                ))
            }
            Lookup::Dir(_) if !recursive => return Err(MetaError::IsDirectory(path.to_string())),
            Lookup::Dir(_) => {}
        }
        let mut paths = self.ns.entries_under(path)?;
        // The directory's own record goes last, so a crash part-way leaves it with what is
        // left of its contents.
        paths.push(path.clone());
        let mut removed = 0;
        for batch in paths.chunks(REMOVE_BATCH) {
            // Entries removed by someone else meanwhile are skipped: that was asked anyway.
            let (count, freed) = self.ns.remove_many(batch)?;
            // Each batch is durable before its chunks start their grace period: a removal
            // longer than the grace must not have chunks deleted whose files a crash brings
            // back.
            self.ns.flush_blocking()?;
            self.cluster().freed(&freed, Instant::now());
            removed += count;
        }
        Ok((removed, Vec::new()))
    }

    /// Creates a directory (with `parents`, the missing ones above it too); returns how many.
    pub async fn mkdir(
        self: &Arc<Self>,
        path: &FsPath,
        parents: bool,
        mode: u32,
        mtime_ms: u64,
    ) -> Result<u64, MetaError> {
        let mode = match mode & MODE_MASK {
            0 => DEFAULT_DIR_MODE,
            mode => mode,
        };
        let attrs = DirAttrs::new(mode, or_now(mtime_ms));
        let store = self.clone();
        let path = path.clone();
        let created = blocking(move || store.ns.mkdir(&path, parents, attrs)).await?;
        if created > 0 {
            self.flush().await?;
        }
        Ok(created)
    }

    /// Removes an empty directory.
    pub async fn rmdir(self: &Arc<Self>, path: &FsPath) -> Result<(), MetaError> {
        let store = self.clone();
        let path = path.clone();
        blocking(move || store.ns.rmdir(&path)).await?;
        self.flush().await
    }

    /// Moves a file or directory; see [`Namespace::rename`].
    pub async fn rename(
        self: &Arc<Self>,
        src: &FsPath,
        dst: &FsPath,
        overwrite: bool,
    ) -> Result<Moved, MetaError> {
        let (store, src, dst) = (self.clone(), src.clone(), dst.clone());
        let moved = blocking(move || store.ns.rename(&src, &dst, overwrite)).await?;
        self.flush_then_free(&moved.freed).await?;
        tracing::info!(path = %moved.path, files = moved.files, "moved");
        Ok(moved)
    }

    /// Copies a file or directory without moving a byte; see [`Namespace::copy`].
    pub async fn copy(
        self: &Arc<Self>,
        src: &FsPath,
        dst: &FsPath,
        recursive: bool,
        overwrite: bool,
    ) -> Result<Copied, MetaError> {
        let (store, src, dst) = (self.clone(), src.clone(), dst.clone());
        let copied = blocking(move || store.ns.copy(&src, &dst, recursive, overwrite)).await?;
        self.flush_then_free(&copied.freed).await?;
        tracing::info!(path = %copied.path, files = copied.files, "copied");
        Ok(copied)
    }

    /// Writes a file made of other files' chunks; see [`Namespace::concat`]. Returns its size
    /// and version.
    pub async fn concat(self: &Arc<Self>, concat: Concat) -> Result<(u64, u64), MetaError> {
        let store = self.clone();
        let (size, committed) = blocking(move || store.ns.concat(&concat)).await?;
        self.flush_then_free(&committed.freed).await?;
        Ok((size, committed.version))
    }

    /// Makes a rename, copy or concatenation durable, then starts the grace period of the
    /// chunks of the file it replaced (or the sources it removed). Those never take the cluster lock for their transaction: they add
    /// references only to chunks that have some (the source's), so garbage collection cannot
    /// act on a half-done one, and a long transaction must not hold up heartbeats.
    async fn flush_then_free(&self, freed: &[ChunkId]) -> Result<(), MetaError> {
        self.flush().await?;
        if !freed.is_empty() {
            self.cluster().freed(freed, Instant::now());
        }
        Ok(())
    }

    /// Sets a file's or directory's mode and/or mtime, or a file's object metadata; see
    /// [`Namespace::set_attr`].
    pub async fn set_attr(
        self: &Arc<Self>,
        path: &FsPath,
        mut change: AttrChange,
    ) -> Result<(), MetaError> {
        let (store, path) = (self.clone(), path.clone());
        change.mode = change.mode.map(|m| m & MODE_MASK);
        blocking(move || store.ns.set_attr(&path, change)).await?;
        self.flush().await
    }

    /// A file's or directory's extended attributes.
    pub async fn xattrs(self: &Arc<Self>, path: &FsPath) -> Result<Xattrs, MetaError> {
        let (store, path) = (self.clone(), path.clone());
        blocking(move || store.ns.xattrs(&path)).await
    }

    /// Sets and removes extended attributes; see [`Namespace::set_xattrs`].
    pub async fn set_xattrs(
        self: &Arc<Self>,
        path: &FsPath,
        set: Xattrs,
        remove: Vec<String>,
    ) -> Result<(), MetaError> {
        let (store, path) = (self.clone(), path.clone());
        blocking(move || store.ns.set_xattrs(&path, set, &remove)).await?;
        self.flush().await
    }

    /// Files, directories and bytes at and below `path`.
    pub async fn usage(self: &Arc<Self>, path: &FsPath) -> Result<Usage, MetaError> {
        let (store, path) = (self.clone(), path.clone());
        blocking(move || store.ns.usage(&path)).await
    }

    /// One round of background work: safe-mode exit, garbage collection, failure detection
    /// and repair planning.
    pub fn maintain(&self) {
        let drained = self.with_cluster(|cluster, wanted| {
            let now = Instant::now();
            cluster.collect_garbage(wanted, now);
            cluster.plan_repairs(wanted, now);
            cluster.take_newly_drained()
        });
        for node in drained {
            // Durable with the next flush; until then a restart waits for the node, as before.
            if let Err(e) = self.ns.mark_drained(&node) {
                tracing::error!(node, "cannot record the end of a drain: {e}");
            }
        }
    }
}

/// What [`MetaStore::apply_commits`] did: each commit's outcome, and the chunks the written ones
/// freed, not yet flushed.
struct Applied {
    outcomes: Vec<Result<CommitOutcome, MetaError>>,
    freed: Vec<ChunkId>,
}

/// A checked commit: the record to write and the copies the client says it stored.
struct Prepared {
    write: FileWrite,
    acks: Vec<(ChunkId, Vec<String>)>,
}

/// Checks that `chunks` cut a file of `size` bytes into `chunk_size` pieces.
fn validate_layout(
    size: u64,
    chunk_size: u64,
    chunks: &[(ChunkId, u64, Vec<String>)],
) -> Result<(), MetaError> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(MetaError::InvalidArgument(format!(
            "chunk size {chunk_size} is outside 1..={MAX_CHUNK_SIZE}"
        )));
    }
    let last = chunks.len().saturating_sub(1);
    for (index, (id, chunk_len, _)) in chunks.iter().enumerate() {
        let fits = if index < last {
            *chunk_len == chunk_size
        } else {
            (1..=chunk_size).contains(chunk_len)
        };
        if !fits {
            return Err(MetaError::InvalidArgument(format!(
                "chunk {index} ({id}) is {chunk_len} bytes; every chunk but the last must be \
                 {chunk_size} bytes and none empty"
            )));
        }
    }
    let total: u64 = chunks.iter().map(|(_, len, _)| len).sum();
    if total != size {
        return Err(MetaError::InvalidArgument(format!(
            "chunks add up to {total} bytes, the file is {size}"
        )));
    }
    Ok(())
}

/// `ms`, or now when it is 0 (not given).
fn or_now(ms: u64) -> u64 {
    match ms {
        0 => crate::namespace::now_ms(),
        ms => ms,
    }
}
