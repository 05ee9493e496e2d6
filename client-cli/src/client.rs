//! The connection to a BigFS cluster, and the metadata calls that need no chunk traffic.

use std::sync::Arc;

use anyhow::Context;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use bigfs_proto::limits::MAX_META_MESSAGE;
use bigfs_proto::node_pool::NodePool;
use bigfs_proto::pb::meta_client::MetaClient;
use bigfs_proto::pb::*;
use bigfs_proto::{transport, FsPath};

/// A handle on one cluster; cheap to clone.
#[derive(Clone)]
pub struct Client {
    meta: MetaClient<Channel>,
    meta_url: Arc<str>,
    pub(crate) nodes: Arc<NodePool>,
}

impl Client {
    /// A client for the metadata server at `url` (`http://host:port`, or just `host:port`).
    /// Nothing is dialled until the first call.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let channel = transport::endpoint(&url)
            .with_context(|| format!("invalid metadata server URL {url:?}"))?
            .connect_lazy();
        Ok(Self {
            meta: MetaClient::new(channel)
                .max_decoding_message_size(MAX_META_MESSAGE)
                .max_encoding_message_size(MAX_META_MESSAGE),
            meta_url: url.into(),
            nodes: Arc::new(NodePool::default()),
        })
    }

    /// A metadata client and a request with the metadata deadline set.
    pub(crate) fn meta<T>(&self, message: T) -> (MetaClient<Channel>, Request<T>) {
        let mut request = Request::new(message);
        request.set_timeout(transport::META_RPC_TIMEOUT);
        (self.meta.clone(), request)
    }

    /// Turns a metadata server status into an error that says what failed, in one line.
    pub(crate) fn meta_error(&self, status: Status) -> anyhow::Error {
        match status.code() {
            _ if is_transport_failure(&status) => {
                anyhow::anyhow!(
                    "cannot reach metadata server at {}: {}",
                    self.meta_url,
                    describe(&status)
                )
            }
            _ => anyhow::anyhow!("{}", describe(&status)),
        }
    }

    pub async fn cluster_info(&self) -> anyhow::Result<ClusterInfoResponse> {
        let (mut meta, request) = self.meta(ClusterInfoRequest {});
        Ok(meta
            .cluster_info(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner())
    }

    /// The children of a directory, or the file itself.
    pub async fn list(&self, path: &FsPath) -> anyhow::Result<Vec<DirEntry>> {
        self.list_status(path).await.map_err(|s| self.meta_error(s))
    }

    /// The listing of `dir` and, depth first, of every directory below it: each directory
    /// with its entries, in the order `ls -R` prints them. A file lists as itself, alone.
    pub async fn list_tree(&self, dir: &FsPath) -> anyhow::Result<Vec<(FsPath, Vec<DirEntry>)>> {
        let mut listings = Vec::new();
        let mut pending = vec![dir.clone()];
        while let Some(dir) = pending.pop() {
            let entries = self.list(&dir).await?;
            // Last first, so the first subdirectory is the next one listed.
            for entry in entries.iter().rev().filter(|e| e.is_dir) {
                pending.push(FsPath::parse(&entry.path)?);
            }
            listings.push((dir, entries));
        }
        Ok(listings)
    }

    pub(crate) async fn list_status(&self, path: &FsPath) -> Result<Vec<DirEntry>, Status> {
        let (mut meta, request) = self.meta(ListRequest {
            path: path.to_string(),
        });
        Ok(meta.list(request).await?.into_inner().entries)
    }

    /// A file's metadata and where each of its chunks lives.
    pub async fn stat(&self, path: &FsPath) -> anyhow::Result<GetFileResponse> {
        let (mut meta, request) = self.meta(GetFileRequest {
            path: path.to_string(),
        });
        Ok(meta
            .get_file(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner())
    }

    /// What [`Self::stat`] would answer for each of `paths`, in one call.
    pub async fn stat_many(
        &self,
        paths: &[FsPath],
    ) -> anyhow::Result<Vec<anyhow::Result<GetFileResponse>>> {
        let (mut meta, request) = self.meta(GetFilesRequest {
            paths: paths.iter().map(FsPath::to_string).collect(),
        });
        let results = meta
            .get_files(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner()
            .results;
        if results.len() != paths.len() {
            anyhow::bail!(
                "metadata server answered for {} files, {} were asked for",
                results.len(),
                paths.len()
            );
        }
        Ok(results
            .into_iter()
            .map(|result| match result.file {
                Some(file) => Ok(file),
                None => Err(anyhow::anyhow!(
                    "{}",
                    describe(&Status::new(Code::from(result.error_code), result.error))
                )),
            })
            .collect())
    }

    /// Removes a file, or with `recursive` every file below a directory. Returns how many.
    pub async fn remove(&self, path: &FsPath, recursive: bool) -> anyhow::Result<u64> {
        let (mut meta, request) = self.meta(DeleteRequest {
            path: path.to_string(),
            recursive,
        });
        let reply = meta.delete(request).await.map_err(|s| match s.code() {
            Code::FailedPrecondition if !recursive => {
                anyhow::anyhow!("{} (use -r to remove a directory)", describe(&s))
            }
            _ => self.meta_error(s),
        })?;
        Ok(reply.into_inner().files_removed)
    }

    pub async fn nodes(&self) -> anyhow::Result<ListNodesResponse> {
        let (mut meta, request) = self.meta(ListNodesRequest {});
        Ok(meta
            .list_nodes(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner())
    }

    /// Every referenced chunk's health, and up to `max_problems` problem chunks listed.
    pub async fn fsck(&self, max_problems: u32) -> anyhow::Result<FsckResponse> {
        let (mut meta, request) = self.meta(FsckRequest { max_problems });
        Ok(meta
            .fsck(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner())
    }

    /// Starts decommissioning a node; returns how many chunks it holds.
    pub async fn drain(&self, node_id: &str) -> anyhow::Result<u64> {
        let (mut meta, request) = self.meta(DrainNodeRequest {
            node_id: node_id.to_string(),
        });
        Ok(meta
            .drain_node(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner()
            .chunks_to_move)
    }

    /// Tells the metadata server that `node`'s copy of `chunk` is bad. Best effort: the read
    /// goes on whether or not the report arrives.
    pub(crate) async fn report_bad_chunk(&self, chunk: &str, node: &str, reason: &str) {
        let (mut meta, request) = self.meta(ReportBadChunkRequest {
            chunk_id: chunk.to_string(),
            node_id: node.to_string(),
            reason: reason.to_string(),
        });
        if let Err(status) = meta.report_bad_chunk(request).await {
            tracing::debug!(chunk, node, "cannot report bad copy: {}", describe(&status));
        }
    }
}

/// Whether a status comes from the connection (or a client-side time-out) rather than from
/// the server: only those carry an underlying error. A server's own `Unavailable` (say, "not
/// enough storage nodes") is an answer, not a failure to reach it.
fn is_transport_failure(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// A status's message followed by the chain of errors beneath it, on one line.
pub fn describe(status: &Status) -> String {
    let mut text = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_string()
    };
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}
