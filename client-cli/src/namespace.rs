//! Namespace verbs that move no chunk bytes: directories, rename, copy, attributes, extended
//! attributes and usage.
//! Each is one metadata call, atomic and durable on the server when it returns.

use std::collections::HashMap;

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
    /// multipart upload's Complete); a single source kept is a copy with new metadata. With
    /// `if_version`, only over the file at that version (see [`Self::set_object_meta`]).
    pub async fn concat(
        &self,
        sources: &[FsPath],
        dst: &FsPath,
        object: ObjectMeta,
        overwrite: bool,
        remove_sources: bool,
        if_version: Option<u64>,
    ) -> anyhow::Result<ConcatFilesResponse> {
        let (mut meta, request) = self.meta(ConcatFilesRequest {
            sources: sources.iter().map(FsPath::to_string).collect(),
            dst: dst.to_string(),
            overwrite,
            remove_sources,
            object: Some(object),
            if_version,
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
        self.set_attr_request(SetAttrRequest {
            path: path.to_string(),
            mode,
            mtime_ms,
            ..SetAttrRequest::default()
        })
        .await
    }

    /// Replaces a file's object metadata (tags, stored headers...), keeping its version and
    /// mtime. With `if_version`, only if the file is at that version, checked in the same
    /// transaction: otherwise an error [`MetaError::is_version_mismatch`] knows.
    pub async fn set_object_meta(
        &self,
        path: &FsPath,
        object: ObjectMeta,
        if_version: Option<u64>,
    ) -> anyhow::Result<()> {
        self.set_attr_request(SetAttrRequest {
            path: path.to_string(),
            object: Some(object),
            if_version,
            ..SetAttrRequest::default()
        })
        .await
    }

    async fn set_attr_request(&self, request: SetAttrRequest) -> anyhow::Result<()> {
        let (mut meta, request) = self.meta(request);
        meta.set_attr(request)
            .await
            .map_err(|s| self.meta_error(s))?;
        Ok(())
    }

    /// The extended attributes of a file or directory (none for an implied directory).
    pub async fn xattrs(&self, path: &FsPath) -> anyhow::Result<HashMap<String, Vec<u8>>> {
        let (mut meta, request) = self.meta(GetXattrsRequest {
            path: path.to_string(),
        });
        Ok(meta
            .get_xattrs(request)
            .await
            .map_err(|s| self.meta_error(s))?
            .into_inner()
            .xattrs)
    }

    /// Sets the extended attributes in `set` and removes those named in `remove`, in one
    /// transaction; an implied directory gets a record. Refused (`InvalidArgument`) beyond
    /// the limits: a name of 1 to 255 bytes, a value of 64 KiB, 256 KiB in all per path.
    pub async fn set_xattrs(
        &self,
        path: &FsPath,
        set: HashMap<String, Vec<u8>>,
        remove: Vec<String>,
    ) -> anyhow::Result<()> {
        let (mut meta, request) = self.meta(SetXattrsRequest {
            path: path.to_string(),
            set,
            remove,
        });
        meta.set_xattrs(request)
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
