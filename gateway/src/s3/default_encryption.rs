//! A bucket's default encryption (Put/Get/DeleteBucketEncryption): kept as the extended
//! attribute `s3.encryption` of the bucket's directory, `AES256` or `aws:kms KEY-ID`, and
//! applied to every new object (put, multipart, copy) whose request asks for no encryption.

use std::collections::HashMap;

use s3s::dto::*;
use s3s::{s3_error, S3ErrorCode, S3Result};
use tonic::Code;

use super::encryption::Wanted;
use super::errors::{self, s3};
use super::names::bucket_path;
use super::Gateway;

/// The bucket directory's attribute that holds the default.
const XATTR: &str = "s3.encryption";

/// The attribute's value for `wanted` (SSE-S3 or SSE-KMS; S3 has no SSE-C default).
fn encode(wanted: &Wanted) -> Option<Vec<u8>> {
    match wanted {
        Wanted::Master => Some(ServerSideEncryption::AES256.as_bytes().to_vec()),
        Wanted::Named(id) => Some(format!("{} {id}", ServerSideEncryption::AWS_KMS).into_bytes()),
        Wanted::Plain | Wanted::Customer(_) => None,
    }
}

/// The default an attribute's value names; `None` for a value this gateway did not write.
fn decode(value: &[u8]) -> Option<Wanted> {
    let value = std::str::from_utf8(value).ok()?;
    match value.split_once(' ') {
        None if value == ServerSideEncryption::AES256 => Some(Wanted::Master),
        Some((ServerSideEncryption::AWS_KMS, id)) if !id.is_empty() => {
            Some(Wanted::Named(id.to_string()))
        }
        _ => None,
    }
}

/// The one rule of a configuration, as what it asks for new objects.
fn rule(config: &ServerSideEncryptionConfiguration) -> S3Result<Wanted> {
    let [rule] = config.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "a default encryption has exactly one rule, not {}",
            config.rules.len()
        ));
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(s3_error!(
            MalformedXML,
            "the rule needs ApplyServerSideEncryptionByDefault"
        ));
    };
    super::encryption::wanted(
        &Some(default.sse_algorithm.clone()),
        &default.kms_master_key_id,
        None,
    )
}

impl Gateway {
    /// The bucket's default encryption, if it has one; NoSuchBucket if there is no bucket.
    async fn bucket_default(&self, bucket: &str) -> S3Result<Option<Wanted>> {
        let path = bucket_path(bucket)?;
        let xattrs = self.client.xattrs(&path).await.map_err(|e| {
            if errors::code(&e) == Some(Code::NotFound) {
                s3_error!(NoSuchBucket, "no bucket {bucket:?}")
            } else {
                s3(e, S3ErrorCode::InternalError)
            }
        })?;
        Ok(xattrs.get(XATTR).and_then(|v| decode(v)))
    }

    /// What a write into `bucket` stores: what its request asks, or the bucket's default when
    /// it asks for nothing.
    pub async fn with_bucket_default(&self, bucket: &str, asked: Wanted) -> S3Result<Wanted> {
        match asked {
            Wanted::Plain => Ok(self.bucket_default(bucket).await?.unwrap_or(Wanted::Plain)),
            asked => Ok(asked),
        }
    }

    pub async fn put_bucket_encryption(
        &self,
        input: PutBucketEncryptionInput,
    ) -> S3Result<PutBucketEncryptionOutput> {
        let wanted = rule(&input.server_side_encryption_configuration)?;
        // Refused now, as each put would be, if this gateway lacks the key.
        self.seal(&wanted)?;
        let value = encode(&wanted).ok_or_else(|| {
            s3_error!(InvalidArgument, "a default encryption is AES256 or aws:kms")
        })?;
        let path = self.check_bucket(&input.bucket).await?;
        self.client
            .set_xattrs(
                &path,
                HashMap::from([(XATTR.to_string(), value)]),
                Vec::new(),
            )
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchBucket))?;
        Ok(PutBucketEncryptionOutput::default())
    }

    pub async fn get_bucket_encryption(
        &self,
        input: GetBucketEncryptionInput,
    ) -> S3Result<GetBucketEncryptionOutput> {
        let default = match self.bucket_default(&input.bucket).await? {
            Some(Wanted::Master) => ServerSideEncryptionByDefault {
                sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
                kms_master_key_id: None,
            },
            Some(Wanted::Named(id)) => ServerSideEncryptionByDefault {
                sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS),
                kms_master_key_id: Some(id),
            },
            _ => {
                let mut none = s3_error!(
                    ServerSideEncryptionConfigurationNotFoundError,
                    "bucket {} has no default encryption",
                    input.bucket
                );
                // S3 answers it 404 (s3s's table says 400).
                none.set_status_code(axum::http::StatusCode::NOT_FOUND);
                return Err(none);
            }
        };
        Ok(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(default),
                    bucket_key_enabled: None,
                }],
            }),
        })
    }

    pub async fn delete_bucket_encryption(
        &self,
        input: DeleteBucketEncryptionInput,
    ) -> S3Result<DeleteBucketEncryptionOutput> {
        let path = self.check_bucket(&input.bucket).await?;
        self.client
            .set_xattrs(&path, HashMap::new(), vec![XATTR.to_string()])
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchBucket))?;
        Ok(DeleteBucketEncryptionOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_their_attribute() {
        for wanted in [Wanted::Master, Wanted::Named("testkey-1".into())] {
            let value = encode(&wanted).unwrap();
            assert_eq!(encode(&decode(&value).unwrap()), Some(value));
        }
        assert!(encode(&Wanted::Plain).is_none());
        assert!(decode(b"aws:kms ").is_none());
        assert!(decode(b"AES128").is_none());
    }

    #[test]
    fn a_configuration_has_one_rule_with_a_default() {
        let by_default = |algorithm: &'static str, key: Option<&str>| ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                sse_algorithm: ServerSideEncryption::from_static(algorithm),
                kms_master_key_id: key.map(str::to_string),
            }),
            bucket_key_enabled: None,
        };
        let config = |rules| ServerSideEncryptionConfiguration { rules };
        assert!(matches!(
            rule(&config(vec![by_default("AES256", None)])),
            Ok(Wanted::Master)
        ));
        assert!(matches!(
            rule(&config(vec![by_default("aws:kms", Some("k"))])),
            Ok(Wanted::Named(id)) if id == "k"
        ));
        assert!(rule(&config(vec![])).is_err());
        assert!(rule(&config(vec![by_default("aws:kms", None)])).is_err());
        assert!(rule(&config(vec![
            by_default("AES256", None),
            by_default("AES256", None)
        ]))
        .is_err());
    }
}
