//! Buckets: the top-level directories. Creating one is mkdir, deleting one rmdir (so only an
//! empty one goes), and listing them lists the root, without the gateway's reserved names.

use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};
use tonic::Code;

use bigfs_proto::FsPath;

use super::access::{check_new_bucket_acl, AclRequest};
use super::acl::User;
use super::errors::{self, s3};
use super::names::{bucket_path, check_new_bucket, is_reserved};
use super::objects;
use super::Gateway;

impl Gateway {
    /// Fails with NoSuchBucket unless `bucket` is a directory.
    pub async fn check_bucket(&self, bucket: &str) -> S3Result<FsPath> {
        let path = bucket_path(bucket)?;
        match self.client.stat(&path).await {
            // A directory answers "is a directory".
            Err(e) if errors::code(&e) == Some(Code::FailedPrecondition) => Ok(path),
            Err(e) if errors::code(&e) == Some(Code::NotFound) => {
                Err(s3_error!(NoSuchBucket, "no bucket {bucket:?}"))
            }
            Err(e) => Err(s3(e, S3ErrorCode::NoSuchBucket)),
            Ok(_) => Err(s3_error!(
                NoSuchBucket,
                "{path} is a file, not a bucket directory"
            )),
        }
    }

    pub async fn list_buckets(&self) -> S3Result<ListBucketsOutput> {
        let entries = self
            .client
            .list(&FsPath::root())
            .await
            .map_err(|e| s3(e, S3ErrorCode::InternalError))?;
        let buckets = entries
            .into_iter()
            .filter(|e| e.is_dir)
            .filter_map(|e| {
                let name = e.path.strip_prefix('/')?.to_string();
                (!is_reserved(&name)).then(|| Bucket {
                    name: Some(name),
                    creation_date: Some(objects::timestamp(e.mtime_ms)),
                    ..Bucket::default()
                })
            })
            .collect();
        Ok(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..ListBucketsOutput::default()
        })
    }

    /// Makes the bucket `user` owns, with the ACL `acl` asks for and the ownership controls
    /// given. Making one that exists succeeds, changing nothing, where its owner asks again
    /// with the same ACL (S3's answer in us-east-1); otherwise it is `BucketAlreadyExists`.
    pub async fn create_bucket(
        &self,
        bucket: &str,
        user: &User,
        acl: AclRequest<'_>,
        ownership: Option<ObjectOwnership>,
    ) -> S3Result<CreateBucketOutput> {
        check_new_bucket(bucket)?;
        let path = bucket_path(bucket)?;
        let acl = self.requested_acl(acl, user, user)?;
        check_new_bucket_acl(&acl, ownership.as_ref())?;
        let created = CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        };
        match self.client.mkdir(&path, false).await {
            Ok(_) => {
                self.init_bucket(bucket, &acl, ownership).await?;
                Ok(created)
            }
            Err(e) => Err(match errors::code(&e) {
                Some(Code::AlreadyExists) if self.bucket_acl(bucket).await? == acl => {
                    return Ok(created)
                }
                Some(Code::AlreadyExists) => s3_error!(
                    BucketAlreadyExists,
                    "bucket {bucket:?} exists, with another owner or ACL"
                ),
                Some(Code::FailedPrecondition) => {
                    s3_error!(BucketAlreadyExists, "a file named {path} is in the way")
                }
                _ => s3(e, S3ErrorCode::InternalError),
            }),
        }
    }

    pub async fn delete_bucket(&self, bucket: &str) -> S3Result<DeleteBucketOutput> {
        let path = self.check_bucket(bucket).await?;
        self.client.rmdir(&path).await.map_err(|e| {
            if errors::code(&e) == Some(Code::FailedPrecondition) {
                S3Error::with_message(S3ErrorCode::BucketNotEmpty, format!("{e:#}"))
            } else {
                s3(e, S3ErrorCode::NoSuchBucket)
            }
        })?;
        Ok(DeleteBucketOutput::default())
    }
}

/// The owner of every bucket and object: the gateway has one (every key may do everything).
pub fn owner() -> Owner {
    Owner {
        display_name: Some("bigfs".into()),
        id: Some("bigfs".into()),
    }
}
