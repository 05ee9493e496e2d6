//! The s3s trait: each operation unpacks its request and calls the [`Gateway`] method that
//! answers it. Operations not listed here answer 501 NotImplemented.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};

use super::access::{bucket_acl_request, object_acl_request};
use super::{bucket_config, Gateway};

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        Ok(S3Response::new(Gateway::list_buckets(self).await?))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let user = self.user(req.credentials.as_ref());
        let input = req.input;
        let acl = bucket_acl_request!(input, None);
        Ok(S3Response::new(
            Gateway::create_bucket(
                self,
                &input.bucket,
                &user,
                acl,
                input.object_ownership.clone(),
            )
            .await?,
        ))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.check_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        Ok(S3Response::new(
            Gateway::delete_bucket(self, &req.input.bucket).await?,
        ))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.check_bucket(&req.input.bucket).await?;
        // No constraint: the default region, us-east-1.
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let user = self.user(req.credentials.as_ref());
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let acl = self
            .new_object_acl(&bucket, &user, object_acl_request!(req.input))
            .await?;
        let output = Gateway::put_object(self, req.input).await?;
        self.keep_object_acl(&bucket, &key, acl).await?;
        Ok(S3Response::new(output))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        super::encryption::refuse_on_read(&req.headers)?;
        Ok(S3Response::new(Gateway::get_object(self, req.input).await?))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        super::encryption::refuse_on_read(&req.headers)?;
        Gateway::head_object(self, req.input).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let conditions = super::conditions::DeleteConditions {
            if_match: input.if_match,
            last_modified: input.if_match_last_modified_time,
            size: input.if_match_size,
        };
        self.check_bucket(&input.bucket).await?;
        self.delete_key(&input.bucket, &input.key, &conditions)
            .await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        Ok(S3Response::new(
            Gateway::delete_objects(self, req.input).await?,
        ))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let user = self.user(req.credentials.as_ref());
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let acl = self
            .new_object_acl(&bucket, &user, object_acl_request!(req.input))
            .await?;
        let output = Gateway::copy_object(self, req.input).await?;
        self.keep_object_acl(&bucket, &key, acl).await?;
        Ok(S3Response::new(output))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        Ok(S3Response::new(
            Gateway::list_objects(self, req.input).await?,
        ))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        Ok(S3Response::new(
            Gateway::list_object_versions(self, req.input).await?,
        ))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        Ok(S3Response::new(
            Gateway::list_objects_v2(self, req.input).await?,
        ))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let user = self.user(req.credentials.as_ref());
        self.refuse_upload_acl(&req.input.bucket, &user, object_acl_request!(req.input))
            .await?;
        Ok(S3Response::new(
            Gateway::create_multipart_upload(self, req.input).await?,
        ))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        Ok(S3Response::new(
            Gateway::upload_part(self, req.input).await?,
        ))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        Ok(S3Response::new(
            Gateway::upload_part_copy(self, req.input).await?,
        ))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        Ok(S3Response::new(Gateway::list_parts(self, req.input).await?))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        Ok(S3Response::new(
            Gateway::complete_multipart_upload(self, req.input).await?,
        ))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        Ok(S3Response::new(
            Gateway::abort_multipart_upload(self, req.input).await?,
        ))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        Ok(S3Response::new(
            Gateway::list_multipart_uploads(self, req.input).await?,
        ))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        Ok(S3Response::new(
            Gateway::put_object_tagging(self, req.input).await?,
        ))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        Ok(S3Response::new(
            Gateway::get_object_tagging(self, req.input).await?,
        ))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        Ok(S3Response::new(
            Gateway::delete_object_tagging(self, req.input).await?,
        ))
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        Ok(S3Response::new(
            Gateway::get_object_attributes(self, req.input).await?,
        ))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        Ok(S3Response::new(
            Gateway::put_bucket_encryption(self, req.input).await?,
        ))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        Ok(S3Response::new(
            Gateway::get_bucket_encryption(self, req.input).await?,
        ))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        Ok(S3Response::new(
            Gateway::delete_bucket_encryption(self, req.input).await?,
        ))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        self.put_lifecycle(&input.bucket, input.lifecycle_configuration)
            .await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let config = self.get_lifecycle(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(config.rules),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.delete_bucket_setting(&req.input.bucket, bucket_config::LIFECYCLE)
            .await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        self.put_cors(&input.bucket, input.cors_configuration)
            .await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let config = self.get_cors(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(config.cors_rules),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.delete_bucket_setting(&req.input.bucket, bucket_config::CORS)
            .await?;
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let input = req.input;
        self.put_tagging(&input.bucket, input.tagging).await?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let tagging = self.get_tagging(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tagging.tag_set,
        }))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.delete_bucket_setting(&req.input.bucket, bucket_config::TAGGING)
            .await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let input = req.input;
        Gateway::put_public_access_block(
            self,
            &input.bucket,
            input.public_access_block_configuration,
        )
        .await?;
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let config = Gateway::get_public_access_block(self, &req.input.bucket).await?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(config),
        }))
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.delete_bucket_setting(&req.input.bucket, bucket_config::PUBLIC_ACCESS_BLOCK)
            .await?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let input = req.input;
        self.put_ownership(&input.bucket, input.ownership_controls)
            .await?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let controls = self.get_ownership(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(controls),
        }))
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.delete_bucket_setting(&req.input.bucket, bucket_config::OWNERSHIP)
            .await?;
        Ok(S3Response::new(
            DeleteBucketOwnershipControlsOutput::default(),
        ))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.check_bucket(&req.input.bucket).await?;
        // Never versioned: S3 answers such a bucket with no Status.
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let is_public = self.is_public(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(is_public),
            }),
        }))
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let policy = self.bucket_acl(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: policy.grants,
            owner: policy.owner,
        }))
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        let acl = bucket_acl_request!(input, input.access_control_policy.clone());
        Gateway::put_bucket_acl(self, &input.bucket, acl).await?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = &req.input;
        super::unsupported::version(&input.version_id)?;
        let policy = self.object_acl(&input.bucket, &input.key).await?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: policy.grants,
            owner: policy.owner,
            ..Default::default()
        }))
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        super::unsupported::version(&input.version_id)?;
        let acl = bucket_acl_request!(input, input.access_control_policy.clone());
        Gateway::put_object_acl(self, &input.bucket, &input.key, acl).await?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }
}
