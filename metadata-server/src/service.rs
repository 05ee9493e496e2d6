//! The metadata server's gRPC service: each method converts its request into plain types,
//! calls [`MetaStore`] and converts the reply. No rule lives here.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use bigfs_proto::limits::{MAX_COMMIT_BATCH, MAX_LOOKUP_BATCH};
use bigfs_proto::observe::span;
use bigfs_proto::pb::meta_server::Meta;
use bigfs_proto::pb::*;
use bigfs_proto::{ChunkId, FsPath, NodeRef};

use crate::cluster::{Beat, NodeUsage, Want};
use crate::error::MetaError;
use crate::namespace::{AttrChange, Concat, Entry};
use crate::store::{
    Commit, CommitOutcome, FsckReport, LocatedFile, MetaStore, Registration, SafeModeStatus,
};

/// How many problem chunks fsck lists when the request does not say.
const DEFAULT_FSCK_PROBLEMS: u32 = 100;

pub struct MetaService {
    store: Arc<MetaStore>,
}

impl MetaService {
    pub fn new(store: Arc<MetaStore>) -> Self {
        Self { store }
    }

    /// What ClusterInfo answers, and every AllocateChunks answer carries.
    fn cluster_settings(&self) -> ClusterInfoResponse {
        let config = self.store.config();
        ClusterInfoResponse {
            chunk_size: self.store.chunk_size(),
            replication: config.replication,
            min_replicas: config.min_replicas,
            // Never 0, which says "no lease" to a client.
            write_lease_ms: millis(config.write_lease).max(1),
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(message: T) -> Reply<T> {
    Ok(Response::new(message))
}

fn path(raw: &str) -> Result<FsPath, MetaError> {
    Ok(FsPath::parse(raw)?)
}

/// A path that may not be the root.
fn entry_path(raw: &str) -> Result<FsPath, MetaError> {
    Ok(FsPath::parse_file(raw)?)
}

fn parse_ids(ids: &[String]) -> Result<Vec<ChunkId>, MetaError> {
    ids.iter()
        .map(|id| id.parse().map_err(MetaError::from))
        .collect()
}

fn node_addrs(nodes: Vec<NodeRef>) -> Vec<NodeAddr> {
    nodes.into_iter().map(NodeAddr::from).collect()
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

/// A refusal inside a batch reply: the message and the code the single call would fail with.
fn error_fields(error: MetaError) -> (String, i32) {
    let message = error.to_string();
    (message, Status::from(error).code() as i32)
}

/// Refuses a batch call of `count` items, `what` (e.g. "files in one commit"), over `limit`.
fn within_batch_limit(count: usize, limit: usize, what: &str) -> Result<(), MetaError> {
    if count > limit {
        return Err(MetaError::InvalidArgument(format!(
            "{count} {what}, the limit is {limit}"
        )));
    }
    Ok(())
}

fn commit_of(request: CommitFileRequest) -> Result<Commit, MetaError> {
    let chunks = request
        .chunks
        .into_iter()
        .map(|chunk| Ok((chunk.id.parse::<ChunkId>()?, chunk.size, chunk.nodes)))
        .collect::<Result<Vec<_>, MetaError>>()?;
    Ok(Commit {
        path: entry_path(&request.path)?,
        size: request.size,
        chunk_size: request.chunk_size,
        replication: request.replication,
        chunks,
        overwrite: request.overwrite,
        mode: request.mode,
        mtime_ms: request.mtime_ms,
        object: request.object.unwrap_or_default(),
        if_version: request.if_version,
    })
}

fn commit_reply(outcome: Result<CommitOutcome, MetaError>, path: &str) -> CommitFileResponse {
    match outcome {
        Ok(CommitOutcome::Committed { version }) => CommitFileResponse {
            committed: true,
            version,
            ..CommitFileResponse::default()
        },
        Ok(CommitOutcome::ShortOfCopies(short)) => CommitFileResponse {
            short_chunks: short.iter().map(ChunkId::to_hex).collect(),
            ..CommitFileResponse::default()
        },
        Err(e) => {
            tracing::debug!(path, "commit refused: {e}");
            let (error, error_code) = error_fields(e);
            CommitFileResponse {
                error,
                error_code,
                ..CommitFileResponse::default()
            }
        }
    }
}

fn file_reply(file: LocatedFile) -> GetFileResponse {
    let LocatedFile {
        path,
        record,
        chunks,
    } = file;
    GetFileResponse {
        file: Some(FileInfo {
            path: path.to_string(),
            size: record.size,
            chunk_size: record.chunk_size,
            replication: record.replication,
            mtime_ms: record.mtime_ms,
            version: record.version,
            mode: record.mode(),
            content_hash: record.content_hash().to_hex().to_string(),
            object: record.object.map(|object| *object),
        }),
        chunks: chunks
            .into_iter()
            .enumerate()
            .map(|(index, chunk)| ChunkLocation {
                index: index as u32,
                id: chunk.id.to_hex(),
                size: chunk.size,
                replicas: node_addrs(chunk.replicas),
            })
            .collect(),
    }
}

fn dir_entry(entry: Entry) -> DirEntry {
    match entry {
        Entry::Dir(path, attrs) => DirEntry {
            path: path.to_string(),
            is_dir: true,
            mtime_ms: attrs.as_ref().map_or(0, |a| a.mtime_ms),
            mode: attrs.as_ref().map_or(0, |a| a.mode),
            ..DirEntry::default()
        },
        Entry::File(path, record) => DirEntry {
            path: path.to_string(),
            is_dir: false,
            size: record.size,
            mtime_ms: record.mtime_ms,
            replication: record.replication,
            chunks: record.chunks.len() as u64,
            mode: record.mode(),
            content_hash: record.content_hash().to_hex().to_string(),
            etag: record.etag().to_string(),
        },
    }
}

fn safe_mode_fields(status: Option<SafeModeStatus>) -> (bool, Vec<String>, u64) {
    match status {
        Some(status) => (true, status.waiting_for, millis(status.left)),
        None => (false, Vec::new(), 0),
    }
}

fn fsck_reply(report: FsckReport) -> FsckResponse {
    let (safe_mode, safe_mode_waiting_for, _) = safe_mode_fields(report.safe_mode);
    FsckResponse {
        files: report.files,
        chunks: report.counts.chunks,
        healthy: report.counts.healthy,
        under_replicated: report.counts.under_replicated,
        missing: report.counts.missing,
        corrupt: report.counts.corrupt,
        problems: report
            .problems
            .into_iter()
            .map(|p| FsckProblem {
                chunk_id: p.chunk.to_hex(),
                state: p.state.to_string(),
                live_copies: p.live,
                wanted_copies: p.wanted,
                path: p.path.unwrap_or_default(),
            })
            .collect(),
        safe_mode,
        repairs_in_flight: report.repairs_in_flight,
        safe_mode_waiting_for,
        problem_chunks: report.problem_chunks,
    }
}

#[tonic::async_trait]
impl Meta for MetaService {
    async fn cluster_info(&self, _: Request<ClusterInfoRequest>) -> Reply<ClusterInfoResponse> {
        reply(self.cluster_settings())
    }

    async fn allocate_chunks(
        &self,
        request: Request<AllocateChunksRequest>,
    ) -> Reply<AllocateChunksResponse> {
        let request = request.into_inner();
        if !request.path.is_empty() {
            span::record_path(&request.path);
            self.store
                .check_create(&entry_path(&request.path)?, request.overwrite)?;
        }
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
        let allocations = self.store.allocate(&wants, request.replication)?;
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
        reply(AllocateChunksResponse {
            chunks,
            cluster: Some(self.cluster_settings()),
        })
    }

    async fn commit_file(&self, request: Request<CommitFileRequest>) -> Reply<CommitFileResponse> {
        let request = request.into_inner();
        let path = request.path.clone();
        span::record_path(&path);
        let commit = commit_of(request)?;
        match self.store.commit_one(commit).await {
            Err(e) => Err(e.into()),
            ok => reply(commit_reply(ok, &path)),
        }
    }

    async fn commit_files(
        &self,
        request: Request<CommitFilesRequest>,
    ) -> Reply<CommitFilesResponse> {
        let files = request.into_inner().files;
        within_batch_limit(files.len(), MAX_COMMIT_BATCH, "files in one commit")?;
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let mut results: Vec<Option<CommitFileResponse>> = vec![None; files.len()];
        let mut slots = Vec::with_capacity(files.len());
        let mut commits = Vec::with_capacity(files.len());
        for (i, file) in files.into_iter().enumerate() {
            match commit_of(file) {
                Ok(commit) => {
                    slots.push(i);
                    commits.push(commit);
                }
                Err(e) => results[i] = Some(commit_reply(Err(e), &paths[i])),
            }
        }
        for (slot, outcome) in slots.into_iter().zip(self.store.commit(commits).await?) {
            results[slot] = Some(commit_reply(outcome, &paths[slot]));
        }
        reply(CommitFilesResponse {
            results: results.into_iter().flatten().collect(),
        })
    }

    async fn abandon_chunks(
        &self,
        request: Request<AbandonChunksRequest>,
    ) -> Reply<AbandonChunksResponse> {
        self.store
            .abandon(&parse_ids(&request.into_inner().chunk_ids)?);
        reply(AbandonChunksResponse {})
    }

    async fn renew_leases(
        &self,
        request: Request<RenewLeasesRequest>,
    ) -> Reply<RenewLeasesResponse> {
        self.store
            .renew_leases(&parse_ids(&request.into_inner().chunk_ids)?);
        reply(RenewLeasesResponse {})
    }

    async fn get_file(&self, request: Request<GetFileRequest>) -> Reply<GetFileResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let path = entry_path(&request.path)?;
        reply(file_reply(self.store.locate(&path)?))
    }

    async fn get_files(&self, request: Request<GetFilesRequest>) -> Reply<GetFilesResponse> {
        let paths = request.into_inner().paths;
        within_batch_limit(paths.len(), MAX_LOOKUP_BATCH, "paths in one lookup")?;
        let results = paths
            .iter()
            .map(
                |raw| match entry_path(raw).and_then(|p| self.store.locate(&p)) {
                    Ok(file) => GetFileResult {
                        file: Some(file_reply(file)),
                        ..GetFileResult::default()
                    },
                    Err(e) => {
                        let (error, error_code) = error_fields(e);
                        GetFileResult {
                            file: None,
                            error,
                            error_code,
                        }
                    }
                },
            )
            .collect();
        reply(GetFilesResponse { results })
    }

    async fn list(&self, request: Request<ListRequest>) -> Reply<ListResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let entries = self.store.list(&path(&request.path)?)?;
        reply(ListResponse {
            entries: entries.into_iter().map(dir_entry).collect(),
        })
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Reply<DeleteResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let path = entry_path(&request.path)?;
        let files_removed = self
            .store
            .remove(&path, request.recursive, request.if_version)
            .await?;
        tracing::info!(path = %path, files_removed, "removed");
        reply(DeleteResponse { files_removed })
    }

    async fn list_nodes(&self, _: Request<ListNodesRequest>) -> Reply<ListNodesResponse> {
        let report = self.store.nodes();
        let (safe_mode, safe_mode_waiting_for, safe_mode_left_ms) =
            safe_mode_fields(report.safe_mode);
        let nodes = report
            .nodes
            .into_iter()
            .map(|node| NodeStatus {
                state: node.state_name().to_string(),
                id: node.id,
                addr: node.addr,
                capacity: node.usage.capacity,
                used: node.usage.used,
                chunks: node.usage.chunks,
                last_heartbeat_ms_ago: millis(node.since_heartbeat),
            })
            .collect();
        reply(ListNodesResponse {
            nodes,
            safe_mode,
            safe_mode_waiting_for,
            safe_mode_left_ms,
        })
    }

    async fn report_bad_chunk(
        &self,
        request: Request<ReportBadChunkRequest>,
    ) -> Reply<ReportBadChunkResponse> {
        let request = request.into_inner();
        span::record_chunk(&request.chunk_id);
        span::record_node(&request.node_id);
        let chunk: ChunkId = request.chunk_id.parse().map_err(MetaError::from)?;
        self.store
            .report_bad(&chunk, &request.node_id, &request.reason)?;
        reply(ReportBadChunkResponse {})
    }

    async fn fsck(&self, request: Request<FsckRequest>) -> Reply<FsckResponse> {
        let limit = match request.into_inner().max_problems {
            0 => DEFAULT_FSCK_PROBLEMS,
            n => n,
        };
        reply(fsck_reply(self.store.fsck(limit as usize).await?))
    }

    async fn check_create(
        &self,
        request: Request<CheckCreateRequest>,
    ) -> Reply<CheckCreateResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        self.store
            .check_create(&entry_path(&request.path)?, request.overwrite)?;
        reply(CheckCreateResponse {})
    }

    async fn mkdir(&self, request: Request<MkdirRequest>) -> Reply<MkdirResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let created = self
            .store
            .mkdir(
                &entry_path(&request.path)?,
                request.parents,
                request.mode,
                request.mtime_ms,
            )
            .await?;
        reply(MkdirResponse { created })
    }

    async fn rmdir(&self, request: Request<RmdirRequest>) -> Reply<RmdirResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        self.store.rmdir(&entry_path(&request.path)?).await?;
        reply(RmdirResponse {})
    }

    async fn rename(&self, request: Request<RenameRequest>) -> Reply<RenameResponse> {
        let request = request.into_inner();
        span::record_path(&request.src);
        let moved = self
            .store
            .rename(
                &path(&request.src)?,
                &path(&request.dst)?,
                request.overwrite,
            )
            .await?;
        reply(RenameResponse {
            path: moved.path.to_string(),
            files: moved.files,
        })
    }

    async fn copy(&self, request: Request<CopyRequest>) -> Reply<CopyResponse> {
        let request = request.into_inner();
        span::record_path(&request.src);
        let copied = self
            .store
            .copy(
                &path(&request.src)?,
                &path(&request.dst)?,
                request.recursive,
                request.overwrite,
            )
            .await?;
        reply(CopyResponse {
            path: copied.path.to_string(),
            files: copied.files,
            bytes: copied.bytes,
        })
    }

    async fn concat_files(
        &self,
        request: Request<ConcatFilesRequest>,
    ) -> Reply<ConcatFilesResponse> {
        let request = request.into_inner();
        span::record_path(&request.dst);
        within_batch_limit(request.sources.len(), MAX_COMMIT_BATCH, "source files")?;
        let concat = Concat {
            sources: request
                .sources
                .iter()
                .map(|s| entry_path(s))
                .collect::<Result<_, _>>()?,
            dst: entry_path(&request.dst)?,
            overwrite: request.overwrite,
            remove_sources: request.remove_sources,
            object: request.object.unwrap_or_default(),
            if_version: request.if_version,
        };
        let (size, version) = self.store.concat(concat).await?;
        tracing::info!(path = %request.dst, sources = request.sources.len(), size, "concatenated");
        reply(ConcatFilesResponse { size, version })
    }

    async fn set_attr(&self, request: Request<SetAttrRequest>) -> Reply<SetAttrResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let change = AttrChange {
            mode: request.mode,
            mtime_ms: request.mtime_ms,
            object: request.object,
            if_version: request.if_version,
        };
        self.store.set_attr(&path(&request.path)?, change).await?;
        reply(SetAttrResponse {})
    }

    async fn get_xattrs(&self, request: Request<GetXattrsRequest>) -> Reply<GetXattrsResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let xattrs = self.store.xattrs(&path(&request.path)?).await?;
        reply(GetXattrsResponse {
            xattrs: xattrs.into_iter().collect(),
        })
    }

    async fn set_xattrs(&self, request: Request<SetXattrsRequest>) -> Reply<SetXattrsResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let set = request.set.into_iter().collect();
        self.store
            .set_xattrs(&path(&request.path)?, set, request.remove)
            .await?;
        reply(SetXattrsResponse {})
    }

    async fn usage(&self, request: Request<UsageRequest>) -> Reply<UsageResponse> {
        let request = request.into_inner();
        span::record_path(&request.path);
        let usage = self.store.usage(&path(&request.path)?).await?;
        reply(UsageResponse {
            files: usage.files,
            dirs: usage.dirs,
            bytes: usage.bytes,
            raw_bytes: usage.raw_bytes,
        })
    }

    async fn drain_node(&self, request: Request<DrainNodeRequest>) -> Reply<DrainNodeResponse> {
        let node = request.into_inner().node_id;
        span::record_node(&node);
        let chunks_to_move = self.store.drain(&node).await?;
        reply(DrainNodeResponse { chunks_to_move })
    }

    async fn undrain_node(
        &self,
        request: Request<UndrainNodeRequest>,
    ) -> Reply<UndrainNodeResponse> {
        let node = request.into_inner().node_id;
        span::record_node(&node);
        self.store.undrain(&node).await?;
        reply(UndrainNodeResponse {})
    }

    async fn remove_node(&self, request: Request<RemoveNodeRequest>) -> Reply<RemoveNodeResponse> {
        let node = request.into_inner().node_id;
        span::record_node(&node);
        self.store.remove_node(&node).await?;
        reply(RemoveNodeResponse {})
    }

    async fn register_node(
        &self,
        request: Request<RegisterNodeRequest>,
    ) -> Reply<RegisterNodeResponse> {
        let request = request.into_inner();
        span::record_node(&request.node_id);
        if request.node_id.is_empty() || request.addr.is_empty() {
            return Err(
                MetaError::InvalidArgument("node id and address are required".into()).into(),
            );
        }
        let chunks = parse_ids(&request.chunks)?;
        let registration = Registration {
            usage: NodeUsage {
                capacity: request.capacity,
                used: request.used,
                chunks: chunks.len() as u64,
            },
            node: NodeRef {
                id: request.node_id,
                addr: request.addr,
            },
            chunks,
        };
        self.store.register(registration).await?;
        reply(RegisterNodeResponse {})
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Reply<HeartbeatResponse> {
        let request = request.into_inner();
        span::record_node(&request.node_id);
        let beat = Beat {
            usage: NodeUsage {
                capacity: request.capacity,
                used: request.used,
                chunks: request.chunk_count,
            },
            added: parse_ids(&request.added)?,
            removed: parse_ids(&request.removed)?,
            corrupt: parse_ids(&request.corrupt)?,
        };
        reply(match self.store.heartbeat(&request.node_id, beat) {
            Some(commands) => HeartbeatResponse {
                reregister: false,
                delete_chunks: commands.deletes.iter().map(ChunkId::to_hex).collect(),
                draining: commands.draining,
            },
            None => HeartbeatResponse {
                reregister: true,
                ..HeartbeatResponse::default()
            },
        })
    }
}
