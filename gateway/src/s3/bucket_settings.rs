//! The bucket configurations that are records S3 clients set and read back: lifecycle rules,
//! CORS rules, tags, the public access block and ownership controls, each checked, then kept
//! by [`bucket_config`](super::bucket_config). What each one enforces is said where it is
//! enforced: lifecycle rules in [`lifecycle`], CORS in [`cors`].

use axum::http::StatusCode;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

use std::collections::HashSet;

use super::bucket_config::{CORS, LIFECYCLE, OWNERSHIP, PUBLIC_ACCESS_BLOCK, TAGGING};
use super::{cors, lifecycle, Gateway};

/// The most tags a bucket may have, and the longest key and value (S3's limits).
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

impl Gateway {
    pub async fn put_lifecycle(
        &self,
        bucket: &str,
        config: Option<BucketLifecycleConfiguration>,
    ) -> S3Result<()> {
        let mut config = config
            .ok_or_else(|| s3_error!(MalformedXML, "a lifecycle configuration is required"))?;
        lifecycle::validate(&config)?;
        lifecycle::name_rules(&mut config);
        self.set_bucket_config(bucket, LIFECYCLE, Some(&config))
            .await
    }

    pub async fn get_lifecycle(&self, bucket: &str) -> S3Result<BucketLifecycleConfiguration> {
        self.bucket_config(bucket, LIFECYCLE).await?.ok_or_else(|| {
            s3_error!(
                NoSuchLifecycleConfiguration,
                "bucket {bucket:?} has no lifecycle configuration"
            )
        })
    }

    pub async fn put_cors(&self, bucket: &str, config: CORSConfiguration) -> S3Result<()> {
        cors::validate(&config)?;
        self.set_bucket_config(bucket, CORS, Some(&config)).await
    }

    pub async fn get_cors(&self, bucket: &str) -> S3Result<CORSConfiguration> {
        self.bucket_config(bucket, CORS).await?.ok_or_else(|| {
            s3_error!(
                NoSuchCORSConfiguration,
                "bucket {bucket:?} has no CORS configuration"
            )
        })
    }

    pub async fn put_tagging(&self, bucket: &str, tagging: Tagging) -> S3Result<()> {
        check_tags(&tagging.tag_set)?;
        self.set_bucket_config(bucket, TAGGING, Some(&tagging))
            .await
    }

    pub async fn get_tagging(&self, bucket: &str) -> S3Result<Tagging> {
        self.bucket_config(bucket, TAGGING)
            .await?
            .ok_or_else(|| s3_error!(NoSuchTagSet, "bucket {bucket:?} has no tags"))
    }

    pub async fn put_public_access_block(
        &self,
        bucket: &str,
        config: PublicAccessBlockConfiguration,
    ) -> S3Result<()> {
        self.set_bucket_config(bucket, PUBLIC_ACCESS_BLOCK, Some(&config))
            .await
    }

    pub async fn get_public_access_block(
        &self,
        bucket: &str,
    ) -> S3Result<PublicAccessBlockConfiguration> {
        self.bucket_config(bucket, PUBLIC_ACCESS_BLOCK)
            .await?
            .ok_or_else(|| {
                custom(
                    "NoSuchPublicAccessBlockConfiguration",
                    StatusCode::NOT_FOUND,
                    format!("bucket {bucket:?} has no public access block"),
                )
            })
    }

    pub async fn put_ownership(&self, bucket: &str, controls: OwnershipControls) -> S3Result<()> {
        check_ownership(&controls)?;
        let acl = self.bucket_acl(bucket).await?;
        super::access::check_new_bucket_acl(&acl, Some(&controls.rules[0].object_ownership))?;
        self.set_bucket_config(bucket, OWNERSHIP, Some(&controls))
            .await
    }

    pub async fn get_ownership(&self, bucket: &str) -> S3Result<OwnershipControls> {
        self.bucket_config(bucket, OWNERSHIP).await?.ok_or_else(|| {
            s3_error!(
                OwnershipControlsNotFoundError,
                "bucket {bucket:?} has no ownership controls"
            )
        })
    }

    /// Removes the configuration `name` (a success when there is none, as S3 answers).
    pub async fn delete_bucket_setting(&self, bucket: &str, name: &str) -> S3Result<()> {
        self.set_bucket_config::<Tagging>(bucket, name, None).await
    }
}

/// An error S3 answers that s3s has no code for.
fn custom(code: &'static str, status: StatusCode, message: String) -> S3Error {
    let mut error = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    error.set_status_code(status);
    error
}

/// S3's limits on a tag set: keys unique, at most 50 tags, keys 1–128 and values up to 256
/// characters.
pub fn check_tags(tags: &[Tag]) -> S3Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(custom(
            "BadRequest",
            StatusCode::BAD_REQUEST,
            format!("{} tags; at most {MAX_TAGS}", tags.len()),
        ));
    }
    let mut keys = HashSet::new();
    for tag in tags {
        let key = tag.key.as_deref().unwrap_or_default();
        let value = tag.value.as_deref().unwrap_or_default();
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY {
            return Err(s3_error!(
                InvalidTag,
                "a tag key has 1 to {MAX_TAG_KEY} characters"
            ));
        }
        if value.chars().count() > MAX_TAG_VALUE {
            return Err(s3_error!(
                InvalidTag,
                "a tag value has at most {MAX_TAG_VALUE} characters"
            ));
        }
        if !keys.insert(key) {
            return Err(s3_error!(InvalidTag, "the tag key {key:?} is given twice"));
        }
    }
    Ok(())
}

/// One rule, naming one of S3's three settings.
fn check_ownership(controls: &OwnershipControls) -> S3Result<()> {
    let [rule] = &controls.rules[..] else {
        return Err(s3_error!(
            MalformedXML,
            "ownership controls have exactly one rule"
        ));
    };
    match rule.object_ownership.as_str() {
        ObjectOwnership::BUCKET_OWNER_ENFORCED
        | ObjectOwnership::BUCKET_OWNER_PREFERRED
        | ObjectOwnership::OBJECT_WRITER => Ok(()),
        other => Err(s3_error!(
            MalformedXML,
            "{other:?} is not an object ownership setting"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: Some(key.into()),
            value: Some(value.into()),
        }
    }

    #[test]
    fn tag_sets_follow_s3s_limits() {
        assert!(check_tags(&[tag("Hello", "World"), tag("a", "")]).is_ok());
        assert!(check_tags(&[tag("a", "1"), tag("a", "2")]).is_err());
        assert!(check_tags(&[tag("", "1")]).is_err());
        assert!(check_tags(&[tag(&"k".repeat(129), "1")]).is_err());
        assert!(check_tags(&[tag("k", &"v".repeat(257))]).is_err());
        let many: Vec<Tag> = (0..51).map(|i| tag(&i.to_string(), "")).collect();
        assert!(check_tags(&many).is_err());
        assert!(check_tags(&many[..50]).is_ok());
    }

    #[test]
    fn ownership_controls_have_one_known_rule() {
        let controls = |names: &[&str]| OwnershipControls {
            rules: names
                .iter()
                .map(|n| OwnershipControlsRule {
                    object_ownership: ObjectOwnership::from(n.to_string()),
                })
                .collect(),
        };
        assert!(check_ownership(&controls(&["BucketOwnerEnforced"])).is_ok());
        assert!(check_ownership(&controls(&["ObjectWriter"])).is_ok());
        assert!(check_ownership(&controls(&["Nobody"])).is_err());
        assert!(check_ownership(&controls(&[])).is_err());
        assert!(check_ownership(&controls(&["ObjectWriter", "ObjectWriter"])).is_err());
    }
}
