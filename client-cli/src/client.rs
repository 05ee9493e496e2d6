//! The connection to a BigFS cluster, and the metadata calls that need no chunk traffic.

use std::fmt;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use bigfs_proto::limits::MAX_META_MESSAGE;
use bigfs_proto::node_pool::NodePool;
use bigfs_proto::pb::meta_client::MetaClient;
use bigfs_proto::pb::node_client::NodeClient;
use bigfs_proto::pb::*;
use bigfs_proto::{transport, FsPath};

use crate::meta_batch::MetaBatches;

/// A handle on one cluster; cheap to clone.
#[derive(Clone)]
pub struct Client {
    meta: MetaClient<Channel>,
    /// The same connection as `meta`, for asking what answers there (see [`Self::diagnose`]).
    channel: Channel,
    meta_url: Arc<str>,
    pub(crate) nodes: Arc<NodePool>,
    /// Lookups and small files' commits made at the same time share a call.
    pub(crate) batches: MetaBatches,
    /// The cluster's settings as last heard: every AllocateChunks answer carries them, so a
    /// put after the first needs no call to learn the chunk size (see [`crate::upload`]).
    settings: Arc<std::sync::Mutex<Option<ClusterInfoResponse>>>,
}

/// The metadata server URL `raw` means: an `http://` URL as it is, or `host:port` with
/// `http://` before it. Any other scheme is refused; `https://` comes with TLS.
pub fn meta_url(raw: &str) -> anyhow::Result<String> {
    match raw.split_once("://") {
        None => Ok(format!("http://{raw}")),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => Ok(raw.to_string()),
        Some(_) => bail!(
            "only http:// URLs (or HOST:PORT, meaning http://) are accepted; https:// will \
             come with TLS"
        ),
    }
}

/// A metadata call that failed: the gRPC code of the failure, for callers that map it (the
/// gateway answers 404 for `NotFound`, 503 for an unreachable server), and the text the CLI
/// prints. A connection failure or a client-side time-out has the code `Unavailable`.
#[derive(Debug)]
pub struct MetaError {
    pub code: Code,
    /// What failed, in one line, without the hint.
    pub message: String,
    /// Advice for the CLI's user (" (use --force to overwrite)"), printed after the message.
    pub hint: Option<&'static str>,
}

impl MetaError {
    pub(crate) fn new(code: Code, message: String) -> Self {
        Self {
            code,
            message,
            hint: None,
        }
    }

    /// The error for `status`, with `hint` after its message.
    pub(crate) fn hinted(status: &Status, hint: &'static str) -> anyhow::Error {
        Self {
            code: status.code(),
            message: describe(status),
            hint: Some(hint),
        }
        .into()
    }

    /// The first metadata failure in `error`'s chain, if any.
    pub fn find(error: &anyhow::Error) -> Option<&MetaError> {
        error.chain().find_map(|e| e.downcast_ref::<MetaError>())
    }

    /// Whether `error` is the refusal of a change asked only over a file at a version that
    /// it is no longer at (a conditional write that lost a race).
    pub fn is_version_mismatch(error: &anyhow::Error) -> bool {
        Self::find(error).is_some_and(|e| {
            e.code == Code::FailedPrecondition && e.message.contains(bigfs_proto::VERSION_CHANGED)
        })
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        f.write_str(self.hint.unwrap_or_default())
    }
}

impl std::error::Error for MetaError {}

impl Client {
    /// A client for the metadata server at `url` (see [`meta_url`]). Nothing is dialled
    /// until the first call.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = meta_url(url).with_context(|| format!("invalid metadata server URL {url:?}"))?;
        let channel = transport::endpoint(&url)
            .with_context(|| format!("invalid metadata server URL {url:?}"))?
            .connect_lazy();
        Ok(Self {
            meta: MetaClient::new(channel.clone())
                .max_decoding_message_size(MAX_META_MESSAGE)
                .max_encoding_message_size(MAX_META_MESSAGE),
            channel,
            meta_url: url.into(),
            nodes: Arc::new(NodePool::default()),
            batches: MetaBatches::default(),
            settings: Arc::default(),
        })
    }

    /// `error`, or, where it comes from a metadata call the server did not implement because
    /// the URL names a storage node, an error that says so. It asks the address for its
    /// NodeInfo, once and only on that failure, so the usual paths pay nothing for it.
    pub async fn diagnose(&self, error: anyhow::Error) -> anyhow::Error {
        if MetaError::find(&error).is_none_or(|e| e.code != Code::Unimplemented) {
            return error;
        }
        let mut request = Request::new(NodeInfoRequest {});
        request.set_timeout(transport::META_RPC_TIMEOUT);
        match NodeClient::new(self.channel.clone())
            .node_info(request)
            .await
        {
            Ok(info) => anyhow!(
                "{} is a storage node (bigfs-node {}), not the metadata server: point --meta \
                 (or BIGFS_META) at bigfs-meta, e.g. http://127.0.0.1:9400",
                self.meta_url,
                info.into_inner().node_id
            ),
            Err(_) => error,
        }
    }

    /// The metadata server's URL, as given to [`Client::new`] (normalised).
    pub fn url(&self) -> &str {
        &self.meta_url
    }

    /// A metadata client and a request with the metadata deadline set.
    pub(crate) fn meta<T>(&self, message: T) -> (MetaClient<Channel>, Request<T>) {
        let mut request = Request::new(message);
        request.set_timeout(transport::META_RPC_TIMEOUT);
        (self.meta.clone(), request)
    }

    /// Turns a metadata server status into an error that says what failed, in one line.
    pub(crate) fn meta_error(&self, status: Status) -> anyhow::Error {
        if is_transport_failure(&status) {
            let message = format!(
                "cannot reach metadata server at {}: {}",
                self.meta_url,
                describe(&status)
            );
            return MetaError::new(Code::Unavailable, message).into();
        }
        MetaError::new(status.code(), describe(&status)).into()
    }

    /// The cluster's settings as last heard, if any call answered them yet.
    pub(crate) fn known_settings(&self) -> Option<ClusterInfoResponse> {
        *bigfs_proto::lock::lock(&self.settings)
    }

    /// Remembers the cluster's settings for the next put.
    pub(crate) fn remember_settings(&self, settings: ClusterInfoResponse) {
        *bigfs_proto::lock::lock(&self.settings) = Some(settings);
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
        self.lookup(path).await.map_err(|s| self.meta_error(s))
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
                None => {
                    let status = Status::new(Code::from(result.error_code), result.error);
                    Err(MetaError::new(status.code(), describe(&status)).into())
                }
            })
            .collect())
    }

    /// Removes a file, or with `recursive` every file below a directory. Returns how many.
    pub async fn remove(&self, path: &FsPath, recursive: bool) -> anyhow::Result<u64> {
        self.delete(path, recursive, None).await
    }

    /// Removes the file at `path` only if it is at `version`, checked in the removal's
    /// transaction: otherwise fails with an error [`MetaError::is_version_mismatch`] knows
    /// (or `NotFound`) and the file stays.
    pub async fn remove_version(&self, path: &FsPath, version: u64) -> anyhow::Result<()> {
        self.delete(path, false, Some(version)).await.map(drop)
    }

    async fn delete(
        &self,
        path: &FsPath,
        recursive: bool,
        if_version: Option<u64>,
    ) -> anyhow::Result<u64> {
        let (mut meta, request) = self.meta(DeleteRequest {
            path: path.to_string(),
            recursive,
            if_version,
        });
        let reply = meta.delete(request).await.map_err(|s| match s.code() {
            Code::FailedPrecondition if !recursive => {
                MetaError::hinted(&s, " (use -r to remove a directory)")
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

    /// Cancels a node's drain.
    pub async fn undrain(&self, node_id: &str) -> anyhow::Result<()> {
        let (mut meta, request) = self.meta(UndrainNodeRequest {
            node_id: node_id.to_string(),
        });
        meta.undrain_node(request)
            .await
            .map_err(|s| self.meta_error(s))?;
        Ok(())
    }

    /// Forgets a stopped node that holds nothing the cluster needs.
    pub async fn remove_node(&self, node_id: &str) -> anyhow::Result<()> {
        let (mut meta, request) = self.meta(RemoveNodeRequest {
            node_id: node_id.to_string(),
        });
        meta.remove_node(request)
            .await
            .map_err(|s| self.meta_error(s))?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_or_bare_addresses() {
        assert_eq!(meta_url("127.0.0.1:9400").unwrap(), "http://127.0.0.1:9400");
        assert_eq!(meta_url("http://meta:9400").unwrap(), "http://meta:9400");
        assert_eq!(meta_url("HTTP://meta:9400").unwrap(), "HTTP://meta:9400");
        for refused in ["ftp://meta:9400", "https://meta:9400", "unix:///tmp/meta"] {
            assert!(meta_url(refused).is_err(), "{refused}");
        }
    }
}
