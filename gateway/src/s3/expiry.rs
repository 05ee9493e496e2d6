//! Lifecycle rules carried out: the gateway's collector walks each bucket that has a rule able
//! to expire something, deletes the objects whose `Expiration` has come and aborts the
//! multipart uploads whose `AbortIncompleteMultipartUpload` has (the decisions are
//! [`lifecycle`]'s). Any gateway may run it: two running at once delete the same objects, which
//! is harmless, since a delete of a missing key succeeds.
//!
//! An object is deleted only as it was listed (same size and Last-Modified, checked in one step
//! with the delete): one rewritten since the walk's listing stays.

use s3s::dto::BucketLifecycleConfiguration;
use s3s::{s3_error, S3ErrorCode, S3Result};
use tonic::Code;

use bigfs_proto::FsPath;

use super::bucket_config::LIFECYCLE;
use super::conditions::DeleteConditions;
use super::errors::{self, s3};
use super::lifecycle::{self, Candidate};
use super::names::is_reserved;
use super::objects::{now_ms, timestamp};
use super::tagging::Tags;
use super::Gateway;

/// What one pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub objects: usize,
    pub uploads: usize,
}

impl Gateway {
    /// One pass over every bucket with lifecycle rules; `day_ms` is the length of a day
    /// (shorter in tests).
    pub async fn collect_expired(&self, day_ms: u64) -> S3Result<Expired> {
        let mut expired = Expired::default();
        let configs = self.lifecycle_configs().await?;
        for (bucket, config) in &configs {
            expired.objects += self.expire_objects(bucket, config, day_ms).await?;
        }
        if configs.iter().any(|(_, c)| {
            c.rules
                .iter()
                .any(|r| r.abort_incomplete_multipart_upload.is_some())
        }) {
            let now = now_ms();
            expired.uploads = self
                .abort_uploads_where(|bucket, key, initiated_ms| {
                    configs.iter().any(|(b, config)| {
                        b == bucket && {
                            let upload = Candidate {
                                key,
                                size: None,
                                since_ms: initiated_ms,
                                tags: None,
                            };
                            lifecycle::upload_expired(config, &upload, now, day_ms)
                        }
                    })
                })
                .await?;
        }
        Ok(expired)
    }

    /// The buckets whose rules can expire something, with their rules.
    async fn lifecycle_configs(&self) -> S3Result<Vec<(String, BucketLifecycleConfiguration)>> {
        let entries = self
            .client
            .list(&FsPath::root())
            .await
            .map_err(|e| s3(e, S3ErrorCode::InternalError))?;
        let mut configs = Vec::new();
        for entry in entries.into_iter().filter(|e| e.is_dir) {
            let Some(bucket) = entry.path.strip_prefix('/') else {
                continue;
            };
            if is_reserved(bucket) {
                continue;
            }
            // A bucket deleted since the listing has no rules left to apply.
            let config = match self.bucket_config(bucket, LIFECYCLE).await {
                Ok(config) => config,
                Err(e) if e.code() == &S3ErrorCode::NoSuchBucket => None,
                Err(e) => return Err(e),
            };
            if let Some(config) = config.filter(lifecycle::acts) {
                configs.push((bucket.to_string(), config));
            }
        }
        Ok(configs)
    }

    async fn expire_objects(
        &self,
        bucket: &str,
        config: &BucketLifecycleConfiguration,
        day_ms: u64,
    ) -> S3Result<usize> {
        let dir = super::names::bucket_path(bucket)?;
        let listings = match self.client.list_tree(&dir).await {
            Ok(listings) => listings,
            Err(e) if errors::code(&e) == Some(Code::NotFound) => return Ok(0),
            Err(e) => return Err(s3(e, S3ErrorCode::InternalError)),
        };
        let now = now_ms();
        let by_tags = lifecycle::needs_tags(config);
        let prefix = format!("{dir}/");
        let mut removed = 0;
        for entry in listings.iter().flat_map(|(_, e)| e).filter(|e| !e.is_dir) {
            let Some(key) = entry.path.strip_prefix(&prefix) else {
                continue;
            };
            let object = Candidate {
                key,
                size: Some(entry.size),
                since_ms: entry.mtime_ms,
                tags: None,
            };
            let mut expired = lifecycle::object_expired(config, &object, now, day_ms);
            // Tags are not in a listing: read them only where a rule asks for them.
            if !expired && by_tags {
                let tags = self.tags_of(&entry.path).await?;
                let tagged = Candidate {
                    tags: Some(&tags),
                    ..object
                };
                expired = lifecycle::object_expired(config, &tagged, now, day_ms);
            }
            if !expired {
                continue;
            }
            // Only the object listed: one written since (another size or Last-Modified) stays.
            let listed = DeleteConditions {
                if_match: None,
                last_modified: Some(timestamp(entry.mtime_ms)),
                size: i64::try_from(entry.size).ok(),
            };
            match self.delete_key(bucket, key, &listed).await {
                Ok(()) => {
                    tracing::info!(bucket, key, "removed an object its lifecycle rules expire");
                    removed += 1;
                }
                Err(e) if e.code() == &S3ErrorCode::PreconditionFailed => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// The tags of the object at `path` (none if it is gone).
    async fn tags_of(&self, path: &str) -> S3Result<Tags> {
        let path = FsPath::parse(path).map_err(|e| s3_error!(InternalError, "{e}"))?;
        match self.client.stat(&path).await {
            Ok(file) => Ok(file
                .file
                .and_then(|f| f.object)
                .map(|o| o.tags)
                .unwrap_or_default()),
            Err(e) if errors::code(&e) == Some(Code::NotFound) => Ok(Tags::new()),
            Err(e) => Err(s3(e, S3ErrorCode::InternalError)),
        }
    }
}
