//! The metadata server's gRPC service: converts requests, calls the namespace and the cluster
//! state, and converts replies.
//!
//! Every namespace change happens under the cluster lock, so garbage collection (which decides
//! under the same lock) never sees a half-applied commit; the flush that makes a change durable
//! happens after the lock is released, so concurrent commits share flushes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tonic::{Request, Response, Status};

use bigfs_proto::limits::{MAX_CHUNK_SIZE, MAX_COMMIT_BATCH, MAX_LOOKUP_BATCH, MAX_REPLICATION};
use bigfs_proto::pb::meta_server::Meta;
use bigfs_proto::pb::*;
use bigfs_proto::{ChunkId, FsPath};

use crate::cluster::{ChunkHealth, Cluster, Commands, FsckCounts, NodeUsage, Want};
use crate::error::MetaError;
use crate::namespace::{Entry, FileWrite, Namespace};
use crate::records::{ChunkEntry, FileRecord};

/// How many files `rm -r` removes per hold of the cluster lock.
const REMOVE_BATCH: usize = 512;

pub struct MetaState {
    pub ns: Namespace,
    pub cluster: Mutex<Cluster>,
    pub chunk_size: u64,
}

impl MetaState {
    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        self.cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many copies `chunk` should have (0: no file references it). A store error counts
    /// as referenced with the cluster's replication: when in doubt, keep.
    pub fn wanted(&self, chunk: &ChunkId, default: u32) -> u32 {
        self.ns.wanted_copies(chunk).unwrap_or_else(|e| {
            tracing::error!(chunk = %chunk, "cannot read the chunk table: {e}");
            default
        })
    }
}

pub struct MetaService {
    state: Arc<MetaState>,
}

impl MetaService {
    pub fn new(state: Arc<MetaState>) -> Self {
        Self { state }
    }

    /// Applies checked commits on the blocking pool (sled's writes block), under the cluster
    /// lock, without flushing.
    async fn apply(
        &self,
        commits: Vec<PreparedCommit>,
    ) -> Result<Vec<Result<CommitFileResponse, MetaError>>, MetaError> {
        let state = self.state.clone();
        blocking(move || apply_commits(&state.ns, &mut state.cluster(), commits, Instant::now()))
            .await
    }

    /// Checks a commit request and turns it into the record to write.
    /// A file's chunk list with each chunk's live locations, best first.
    fn locate(&self, path: &str) -> Result<GetFileResponse, MetaError> {
        let path = FsPath::parse_file(path)?;
        let record = match self.state.ns.get(&path)? {
            Some(record) => record,
            None if self.state.ns.is_dir(&path)? => {
                return Err(MetaError::IsDirectory(path.to_string()))
            }
            None => return Err(MetaError::NotFound(path.to_string())),
        };
        let now = Instant::now();
        let cluster = self.state.cluster();
        let chunks = record
            .chunks
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let id = entry.chunk_id()?;
                Ok(ChunkLocation {
                    index: index as u32,
                    id: id.to_hex(),
                    size: entry.size,
                    replicas: node_addrs(cluster.read_locations(&id, index, now)),
                })
            })
            .collect::<Result<Vec<_>, MetaError>>()?;
        Ok(GetFileResponse {
            file: Some(file_info(&path, &record)),
            chunks,
        })
    }

    fn prepare_commit(&self, request: CommitFileRequest) -> Result<PreparedCommit, MetaError> {
        let path = FsPath::parse_file(&request.path)?;
        let replication = self.replication(request.replication)?;
        validate_layout(request.size, request.chunk_size, &request.chunks)?;
        let mut acks = Vec::with_capacity(request.chunks.len());
        let mut entries = Vec::with_capacity(request.chunks.len());
        for chunk in request.chunks {
            let id: ChunkId = chunk.id.parse()?;
            entries.push(ChunkEntry::new(id, chunk.size));
            acks.push((id, chunk.nodes));
        }
        Ok(PreparedCommit {
            path,
            record: FileRecord {
                size: request.size,
                chunk_size: request.chunk_size,
                replication,
                chunks: entries,
                mtime_ms: now_ms(),
                version: 0,
            },
            acks,
            overwrite: request.overwrite,
        })
    }

    fn replication(&self, requested: u32) -> Result<u32, MetaError> {
        match requested {
            0 => Ok(self.state.cluster().config().replication),
            r if r <= MAX_REPLICATION => Ok(r),
            r => Err(MetaError::InvalidArgument(format!(
                "replication {r} is above the limit of {MAX_REPLICATION}"
            ))),
        }
    }
}

/// How many problem chunks fsck lists when the request does not say.
const DEFAULT_FSCK_PROBLEMS: u32 = 100;

/// Chunks fsck classifies per hold of the cluster lock.
const FSCK_BATCH: usize = 4096;

/// A checked commit: the record to write and the copies the client says it stored.
struct PreparedCommit {
    path: FsPath,
    record: FileRecord,
    acks: Vec<(ChunkId, Vec<String>)>,
    overwrite: bool,
}

/// Applies commits under the cluster lock, without flushing, each with its own outcome: refused
/// (listing the chunks short of copies) when a chunk has fewer than W live copies, otherwise
/// written, all accepted files in one transaction.
fn apply_commits(
    ns: &Namespace,
    cluster: &mut Cluster,
    commits: Vec<PreparedCommit>,
    now: Instant,
) -> Result<Vec<Result<CommitFileResponse, MetaError>>, MetaError> {
    let mut outcomes: Vec<Option<Result<CommitFileResponse, MetaError>>> =
        (0..commits.len()).map(|_| None).collect();
    let mut writes = Vec::with_capacity(commits.len());
    let mut written = Vec::with_capacity(commits.len());
    for (i, commit) in commits.into_iter().enumerate() {
        let need = cluster.config().min_replicas.min(commit.record.replication);
        let short = cluster.check_commit(&commit.acks, need, now);
        if !short.is_empty() {
            tracing::info!(path = %commit.path, short = short.len(), "commit refused: chunks short of copies");
            outcomes[i] = Some(Ok(CommitFileResponse {
                short_chunks: short.iter().map(ChunkId::to_hex).collect(),
                ..CommitFileResponse::default()
            }));
            continue;
        }
        written.push((i, commit.acks.iter().map(|(id, _)| *id).collect::<Vec<_>>()));
        writes.push(FileWrite {
            path: commit.path,
            record: commit.record,
            overwrite: commit.overwrite,
        });
    }
    for ((i, ids), result) in written.into_iter().zip(ns.commit_many(&writes)?) {
        outcomes[i] = Some(result.map(|committed| {
            cluster.committed(&ids, &committed.freed, now);
            CommitFileResponse {
                committed: true,
                version: committed.version,
                ..CommitFileResponse::default()
            }
        }));
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// Removes the file at `path`, or with `recursive` every file below the directory `path`;
/// returns how many. Not flushed.
fn remove(state: &MetaState, path: &FsPath, recursive: bool) -> Result<u64, MetaError> {
    if state.ns.get(path)?.is_some() {
        let mut cluster = state.cluster();
        let freed = state.ns.remove(path)?;
        cluster.freed(&freed, Instant::now());
        return Ok(1);
    }
    if !state.ns.is_dir(path)? {
        return Err(MetaError::NotFound(path.to_string()));
    }
    if !recursive {
        return Err(MetaError::IsDirectory(path.to_string()));
    }
    let paths = state.ns.files_under(path)?;
    let mut removed = 0;
    for batch in paths.chunks(REMOVE_BATCH) {
        let mut cluster = state.cluster();
        // Files removed by someone else meanwhile are skipped: that is what was asked anyway.
        let (count, freed) = state.ns.remove_many(batch)?;
        cluster.freed(&freed, Instant::now());
        removed += count;
    }
    Ok(removed)
}

/// Every referenced chunk classified by its live copies, and up to `limit` problem chunks with
/// a file each. The cluster lock is taken one batch of chunks at a time, so heartbeats are
/// never held up by a long check.
fn fsck(state: &MetaState, limit: usize) -> Result<FsckResponse, MetaError> {
    let mut counts = FsckCounts::default();
    let mut problems = Vec::new();
    let mut table = state.ns.chunk_table();
    loop {
        let batch = table
            .by_ref()
            .take(FSCK_BATCH)
            .collect::<Result<Vec<_>, MetaError>>()?;
        if batch.is_empty() {
            break;
        }
        let cluster = state.cluster();
        let now = Instant::now();
        for (id, refs) in batch {
            let (live, health, corrupt) = cluster.classify(&id, refs.wanted, now);
            counts.add(health, corrupt);
            if (health != ChunkHealth::Healthy || corrupt) && problems.len() < limit {
                let name = match health {
                    ChunkHealth::Healthy => "corrupt",
                    other => other.as_str(),
                };
                problems.push((id, name, live, refs.wanted));
            }
        }
    }
    let (safe_mode, repairs_in_flight) = {
        let cluster = state.cluster();
        (cluster.in_safe_mode(), cluster.repairs_in_flight() as u64)
    };
    let paths = paths_of(&state.ns, problems.iter().map(|(id, ..)| *id).collect())?;
    Ok(FsckResponse {
        files: state.ns.file_count() as u64,
        chunks: counts.chunks,
        healthy: counts.healthy,
        under_replicated: counts.under_replicated,
        missing: counts.missing,
        corrupt: counts.corrupt,
        problems: problems
            .into_iter()
            .map(|(id, state, live, wanted)| FsckProblem {
                chunk_id: id.to_hex(),
                state: state.to_string(),
                live_copies: live,
                wanted_copies: wanted,
                path: paths.get(&id).cloned().unwrap_or_default(),
            })
            .collect(),
        safe_mode,
        repairs_in_flight,
    })
}

/// A file referencing each of `chunks` (one scan of the namespace).
fn paths_of(ns: &Namespace, chunks: Vec<ChunkId>) -> Result<HashMap<ChunkId, String>, MetaError> {
    let mut wanted: HashSet<ChunkId> = chunks.into_iter().collect();
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    for file in ns.all_files() {
        let (path, record) = file?;
        for entry in &record.chunks {
            let id = entry.chunk_id()?;
            if wanted.remove(&id) {
                found.insert(id, path.clone());
            }
        }
        if wanted.is_empty() {
            break;
        }
    }
    Ok(found)
}

/// Runs sled work on the blocking pool, so a long batch never stalls the runtime's threads
/// (and with them every other call and the HTTP/2 keep-alives).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MetaError> + Send + 'static,
) -> Result<T, MetaError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| MetaError::Internal(format!("metadata task failed: {e}")))?
}

/// A file a CommitFiles call could not commit, and why.
/// Refuses a batch call of `count` items, `what` (e.g. "files in one commit"), over `limit`.
fn within_batch_limit(count: usize, limit: usize, what: &str) -> Result<(), MetaError> {
    if count > limit {
        return Err(MetaError::InvalidArgument(format!(
            "{count} {what}, the limit is {limit}"
        )));
    }
    Ok(())
}

fn refusal(path: &str, error: MetaError) -> CommitFileResponse {
    tracing::debug!(path, "commit refused: {error}");
    let message = error.to_string();
    CommitFileResponse {
        error_code: Status::from(error).code() as i32,
        error: message,
        ..CommitFileResponse::default()
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<ChunkId>, MetaError> {
    ids.iter()
        .map(|id| id.parse().map_err(MetaError::from))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn node_addrs(pairs: Vec<(String, String)>) -> Vec<NodeAddr> {
    pairs
        .into_iter()
        .map(|(id, addr)| NodeAddr { id, addr })
        .collect()
}

fn file_info(path: &FsPath, record: &FileRecord) -> FileInfo {
    FileInfo {
        path: path.to_string(),
        size: record.size,
        chunk_size: record.chunk_size,
        replication: record.replication,
        mtime_ms: record.mtime_ms,
        version: record.version,
    }
}

/// Checks that `chunks` cut a file of `size` bytes into `chunk_size` pieces.
fn validate_layout(size: u64, chunk_size: u64, chunks: &[CommittedChunk]) -> Result<(), MetaError> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(MetaError::InvalidArgument(format!(
            "chunk size {chunk_size} is outside 1..={MAX_CHUNK_SIZE}"
        )));
    }
    let last = chunks.len().saturating_sub(1);
    for (index, chunk) in chunks.iter().enumerate() {
        let fits = if index < last {
            chunk.size == chunk_size
        } else {
            (1..=chunk_size).contains(&chunk.size)
        };
        if !fits {
            return Err(MetaError::InvalidArgument(format!(
                "chunk {index} ({}) is {} bytes; every chunk but the last must be {chunk_size} \
                 bytes and none empty",
                chunk.id, chunk.size
            )));
        }
    }
    let total: u64 = chunks.iter().map(|c| c.size).sum();
    if total != size {
        return Err(MetaError::InvalidArgument(format!(
            "chunks add up to {total} bytes, the file is {size}"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl Meta for MetaService {
    async fn cluster_info(
        &self,
        _request: Request<ClusterInfoRequest>,
    ) -> Result<Response<ClusterInfoResponse>, Status> {
        let cluster = self.state.cluster();
        let config = cluster.config();
        Ok(Response::new(ClusterInfoResponse {
            chunk_size: self.state.chunk_size,
            replication: config.replication,
            min_replicas: config.min_replicas,
            // Never 0, which says "no lease" to a client.
            write_lease_ms: (config.write_lease.as_millis() as u64).max(1),
        }))
    }

    async fn allocate_chunks(
        &self,
        request: Request<AllocateChunksRequest>,
    ) -> Result<Response<AllocateChunksResponse>, Status> {
        let request = request.into_inner();
        let replication = self.replication(request.replication)?;
        let wants = request
            .chunks
            .into_iter()
            .map(|want| {
                Ok(Want {
                    id: want.id.parse().map_err(MetaError::from)?,
                    size: want.size,
                    exclude: want.exclude,
                    copies: want.copies,
                })
            })
            .collect::<Result<Vec<_>, MetaError>>()?;
        let allocations = self
            .state
            .cluster()
            .allocate(&wants, replication, Instant::now())?;
        let chunks = wants
            .iter()
            .zip(allocations)
            .map(|(want, allocation)| ChunkPlacement {
                id: want.id.to_hex(),
                already_stored: allocation.already_stored,
                targets: node_addrs(allocation.targets),
                holders: node_addrs(allocation.holders),
            })
            .collect();
        Ok(Response::new(AllocateChunksResponse { chunks }))
    }

    async fn commit_file(
        &self,
        request: Request<CommitFileRequest>,
    ) -> Result<Response<CommitFileResponse>, Status> {
        let commit = self.prepare_commit(request.into_inner())?;
        let outcome = self
            .apply(vec![commit])
            .await?
            .pop()
            .expect("one outcome per commit")?;
        if outcome.committed {
            self.state.ns.flush().await?;
        }
        Ok(Response::new(outcome))
    }

    async fn commit_files(
        &self,
        request: Request<CommitFilesRequest>,
    ) -> Result<Response<CommitFilesResponse>, Status> {
        let files = request.into_inner().files;
        within_batch_limit(files.len(), MAX_COMMIT_BATCH, "files in one commit")?;
        let mut results: Vec<Option<CommitFileResponse>> = vec![None; files.len()];
        let mut valid = Vec::with_capacity(files.len());
        for (i, file) in files.into_iter().enumerate() {
            let path = file.path.clone();
            match self.prepare_commit(file) {
                Ok(commit) => valid.push((i, commit)),
                Err(e) => results[i] = Some(refusal(&path, e)),
            }
        }
        let (slots, commits): (Vec<usize>, Vec<PreparedCommit>) = valid.into_iter().unzip();
        let paths: Vec<String> = commits.iter().map(|c| c.path.to_string()).collect();
        let outcomes = self.apply(commits).await?;
        for ((slot, path), outcome) in slots.into_iter().zip(paths).zip(outcomes) {
            results[slot] = Some(outcome.unwrap_or_else(|e| refusal(&path, e)));
        }
        let results: Vec<CommitFileResponse> = results.into_iter().flatten().collect();
        if results.iter().any(|r| r.committed) {
            self.state.ns.flush().await?;
        }
        Ok(Response::new(CommitFilesResponse { results }))
    }

    async fn abandon_chunks(
        &self,
        request: Request<AbandonChunksRequest>,
    ) -> Result<Response<AbandonChunksResponse>, Status> {
        let chunks = parse_ids(&request.into_inner().chunk_ids)?;
        let state = &self.state;
        let mut cluster = state.cluster();
        let default = cluster.config().replication;
        cluster.abandon(&chunks, |c| state.wanted(c, default), Instant::now());
        Ok(Response::new(AbandonChunksResponse {}))
    }

    async fn renew_leases(
        &self,
        request: Request<RenewLeasesRequest>,
    ) -> Result<Response<RenewLeasesResponse>, Status> {
        let chunks = parse_ids(&request.into_inner().chunk_ids)?;
        let state = &self.state;
        let mut cluster = state.cluster();
        let default = cluster.config().replication;
        cluster.renew_leases(&chunks, |c| state.wanted(c, default), Instant::now());
        Ok(Response::new(RenewLeasesResponse {}))
    }

    async fn get_file(
        &self,
        request: Request<GetFileRequest>,
    ) -> Result<Response<GetFileResponse>, Status> {
        Ok(Response::new(self.locate(&request.into_inner().path)?))
    }

    async fn get_files(
        &self,
        request: Request<GetFilesRequest>,
    ) -> Result<Response<GetFilesResponse>, Status> {
        let paths = request.into_inner().paths;
        within_batch_limit(paths.len(), MAX_LOOKUP_BATCH, "paths in one lookup")?;
        let results = paths
            .iter()
            .map(|path| match self.locate(path) {
                Ok(file) => GetFileResult {
                    file: Some(file),
                    ..GetFileResult::default()
                },
                Err(e) => {
                    let error = e.to_string();
                    GetFileResult {
                        file: None,
                        error,
                        error_code: Status::from(e).code() as i32,
                    }
                }
            })
            .collect();
        Ok(Response::new(GetFilesResponse { results }))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let path = FsPath::parse(&request.into_inner().path).map_err(MetaError::from)?;
        let entry = |e: Entry| match e {
            Entry::Dir(path) => DirEntry {
                path: path.to_string(),
                is_dir: true,
                ..DirEntry::default()
            },
            Entry::File(path, record) => DirEntry {
                path: path.to_string(),
                is_dir: false,
                size: record.size,
                mtime_ms: record.mtime_ms,
                replication: record.replication,
                chunks: record.chunks.len() as u64,
            },
        };
        if !path.is_root() {
            if let Some(record) = self.state.ns.get(&path)? {
                return Ok(Response::new(ListResponse {
                    entries: vec![entry(Entry::File(path, record))],
                }));
            }
        }
        let entries = self
            .state
            .ns
            .list(&path)?
            .ok_or_else(|| MetaError::NotFound(path.to_string()))?;
        Ok(Response::new(ListResponse {
            entries: entries.into_iter().map(entry).collect(),
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let request = request.into_inner();
        let path = FsPath::parse_file(&request.path).map_err(MetaError::from)?;
        let state = self.state.clone();
        let target = path.clone();
        let removed = blocking(move || remove(&state, &target, request.recursive)).await;
        // Whatever was removed before an error must be durable too.
        self.state.ns.flush().await?;
        let files_removed = removed?;
        tracing::info!(path = %path, files_removed, "removed");
        Ok(Response::new(DeleteResponse { files_removed }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let cluster = self.state.cluster();
        let nodes = cluster
            .nodes(Instant::now())
            .into_iter()
            .map(|node| NodeStatus {
                state: node.state_name().to_string(),
                id: node.id,
                addr: node.addr,
                capacity: node.usage.capacity,
                used: node.usage.used,
                chunks: node.usage.chunks,
                last_heartbeat_ms_ago: node.since_heartbeat.as_millis() as u64,
            })
            .collect();
        Ok(Response::new(ListNodesResponse {
            nodes,
            safe_mode: cluster.in_safe_mode(),
        }))
    }

    async fn report_bad_chunk(
        &self,
        request: Request<ReportBadChunkRequest>,
    ) -> Result<Response<ReportBadChunkResponse>, Status> {
        let request = request.into_inner();
        let chunk: ChunkId = request.chunk_id.parse().map_err(MetaError::from)?;
        tracing::warn!(chunk = %chunk, node = %request.node_id, reason = %request.reason, "bad copy reported");
        self.state.cluster().report_bad(&chunk, &request.node_id)?;
        Ok(Response::new(ReportBadChunkResponse {}))
    }

    async fn fsck(&self, request: Request<FsckRequest>) -> Result<Response<FsckResponse>, Status> {
        let limit = match request.into_inner().max_problems {
            0 => DEFAULT_FSCK_PROBLEMS,
            n => n,
        } as usize;
        let state = self.state.clone();
        let reply = blocking(move || fsck(&state, limit)).await?;
        Ok(Response::new(reply))
    }

    async fn drain_node(
        &self,
        request: Request<DrainNodeRequest>,
    ) -> Result<Response<DrainNodeResponse>, Status> {
        let node_id = request.into_inner().node_id;
        let chunks = self.state.cluster().drain(&node_id)?;
        // Durable before the answer: a restarted metadata server goes on draining the node.
        self.state.ns.remember_drain(&node_id)?;
        self.state.ns.flush().await?;
        Ok(Response::new(DrainNodeResponse {
            chunks_to_move: chunks as u64,
        }))
    }

    async fn register_node(
        &self,
        request: Request<RegisterNodeRequest>,
    ) -> Result<Response<RegisterNodeResponse>, Status> {
        let request = request.into_inner();
        if request.node_id.is_empty() || request.addr.is_empty() {
            return Err(
                MetaError::InvalidArgument("node id and address are required".into()).into(),
            );
        }
        let chunks = parse_ids(&request.chunks)?;
        let usage = NodeUsage {
            capacity: request.capacity,
            used: request.used,
            chunks: chunks.len() as u64,
        };
        let count = chunks.len();
        let state = &self.state;
        {
            let mut cluster = state.cluster();
            let default = cluster.config().replication;
            cluster.register(
                &request.node_id,
                &request.addr,
                usage,
                chunks,
                |chunk| state.wanted(chunk, default),
                Instant::now(),
            );
        }
        if state.ns.remember_node(&request.node_id, &request.addr)? {
            state.ns.flush().await?;
        }
        tracing::info!(node = %request.node_id, addr = %request.addr, chunks = count, "node registered");
        Ok(Response::new(RegisterNodeResponse {}))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let usage = NodeUsage {
            capacity: request.capacity,
            used: request.used,
            chunks: request.chunk_count,
        };
        let (added, removed, corrupt) = (
            parse_ids(&request.added)?,
            parse_ids(&request.removed)?,
            parse_ids(&request.corrupt)?,
        );
        let copied = request
            .copied
            .into_iter()
            .map(|c| Ok((c.chunk_id.parse().map_err(MetaError::from)?, c.nodes)))
            .collect::<Result<Vec<_>, MetaError>>()?;
        let state = &self.state;
        let reply = {
            let mut cluster = state.cluster();
            let default = cluster.config().replication;
            cluster.heartbeat(
                &request.node_id,
                usage,
                added,
                removed,
                corrupt,
                copied,
                |chunk| state.wanted(chunk, default),
                Instant::now(),
            )
        };
        Ok(Response::new(match reply {
            Some(Commands {
                deletes,
                replications,
            }) => HeartbeatResponse {
                reregister: false,
                delete_chunks: deletes.iter().map(ChunkId::to_hex).collect(),
                replicate: replications
                    .into_iter()
                    .map(|r| ReplicateCommand {
                        chunk_id: r.chunk.to_hex(),
                        targets: node_addrs(r.targets),
                    })
                    .collect(),
            },
            None => HeartbeatResponse {
                reregister: true,
                ..HeartbeatResponse::default()
            },
        }))
    }
}
