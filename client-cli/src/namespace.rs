//! Namespace verbs that move no chunk bytes: directories, rename, copy, attributes and usage.
//! Each is one metadata call, atomic and durable on the server when it returns.

use bigfs_proto::pb::*;
use bigfs_proto::FsPath;

use crate::client::MetaError;
use crate::Client;

/// What the CLI's user can do about a path that exists.
const OVERWRITE_HINT: &str = " (use --force to overwrite)";

impl Client {
    /// Creates a directory; with `parents` the missing ones above it too, and an existing
    /// directory is no error. Returns how many directories were created.
    pub async fn mkdir(&self, path: &FsPath, parents: bool) -> anyhow::Result<u64> {
        let (mut meta, request) = self.meta(MkdirRequest {
            path: path.to_string(),
            parents,
            ..MkdirRequest::default()
        });
        Ok(meta
            .mkdir(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner()
            .created)
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, path: &FsPath) -> anyhow::Result<()> {
        let (mut meta, request) = self.meta(RmdirRequest {
            path: path.to_string(),
        });
        meta.rmdir(request).await.map_err(|s| self.meta_error(s))?;
        Ok(())
    }

    /// Moves a file or directory (into `dst` when it is a directory); a file at the
    /// destination is replaced only with `overwrite`.
    pub async fn rename(
        &self,
        src: &FsPath,
        dst: &FsPath,
        overwrite: bool,
    ) -> anyhow::Result<RenameResponse> {
        let (mut meta, request) = self.meta(RenameRequest {
            src: src.to_string(),
            dst: dst.to_string(),
            overwrite,
        });
        Ok(meta
            .rename(request)
            .await
            .map_err(|s| self.overwrite_hint(s))?
            .into_inner())
    }

    /// Copies a file (or with `recursive` a directory) inside the cluster: the copy shares the
    /// chunks, no byte moves.
    pub async fn copy(
        &self,
        src: &FsPath,
        dst: &FsPath,
        recursive: bool,
        overwrite: bool,
    ) -> anyhow::Result<CopyResponse> {
        let (mut meta, request) = self.meta(CopyRequest {
            src: src.to_string(),
            dst: dst.to_string(),
            recursive,
            overwrite,
        });
        Ok(meta
            .copy(request)
            .await
            .map_err(|s| match s.code() {
                tonic::Code::FailedPrecondition
                    if !recursive && s.message().contains("is a directory") =>
                {
                    MetaError::hinted(&s, " (use -r to copy a directory)")
                }
                _ => self.overwrite_hint(s),
            })?
            .into_inner())
    }

    /// Writes `dst` made of the chunks of `sources`, in order, with `object` kept beside them:
    /// no byte moves. With `remove_sources` the sources go in the same transaction (an S3
    /// multipart upload's Complete); a single source kept is a copy with new metadata.
    pub async fn concat(
        &self,
        sources: &[FsPath],
        dst: &FsPath,
        object: ObjectMeta,
        overwrite: bool,
        remove_sources: bool,
    ) -> anyhow::Result<ConcatFilesResponse> {
        let (mut meta, request) = self.meta(ConcatFilesRequest {
            sources: sources.iter().map(FsPath::to_string).collect(),
            dst: dst.to_string(),
            overwrite,
            remove_sources,
            object: Some(object),
        });
        Ok(meta
            .concat_files(request)
            .await
            .map_err(|s| self.overwrite_hint(s))?
            .into_inner())
    }

    /// Sets a file's or directory's permission bits and/or modification time.
    pub async fn set_attr(
        &self,
        path: &FsPath,
        mode: Option<u32>,
        mtime_ms: Option<u64>,
    ) -> anyhow::Result<()> {
        let (mut meta, request) = self.meta(SetAttrRequest {
            path: path.to_string(),
            mode,
            mtime_ms,
        });
        meta.set_attr(request)
            .await
            .map_err(|s| self.meta_error(s))?;
        Ok(())
    }

    /// Files, directories and bytes at and below `path`.
    pub async fn usage(&self, path: &FsPath) -> anyhow::Result<UsageResponse> {
        let (mut meta, request) = self.meta(UsageRequest {
            path: path.to_string(),
        });
        Ok(meta
            .usage(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner())
    }

    pub(crate) fn overwrite_hint(&self, status: tonic::Status) -> anyhow::Error {
        if status.code() == tonic::Code::AlreadyExists {
            MetaError::hinted(&status, OVERWRITE_HINT)
        } else {
            self.meta_error(status)
        }
    }
}
