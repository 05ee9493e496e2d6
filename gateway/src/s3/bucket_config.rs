//! A bucket's configurations (lifecycle, CORS, ACL, tags, …), each kept as an extended
//! attribute of the bucket's directory, in the XML S3 itself uses for it. So a configuration
//! is one metadata call to read or write, survives any gateway restart, is seen at once by
//! every gateway, and goes with the directory: a bucket deleted and created again starts bare.

use s3s::xml::{Deserialize, Deserializer, Serialize, Serializer};
use s3s::{S3ErrorCode, S3Result};

use std::collections::HashMap;

use super::errors::s3;
use super::Gateway;

/// The attribute names, one per configuration (`s3.encryption` is the encryption module's).
pub const LIFECYCLE: &str = "s3.lifecycle";
pub const CORS: &str = "s3.cors";
pub const ACL: &str = "s3.acl";
pub const PUBLIC_ACCESS_BLOCK: &str = "s3.public-access-block";
pub const OWNERSHIP: &str = "s3.ownership";
pub const TAGGING: &str = "s3.tagging";

/// `value` as the XML S3 writes it.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing into a Vec fails only on a value s3s cannot write at all, a bug.
    value
        .serialize(&mut Serializer::new(&mut bytes))
        .expect("an s3s configuration serialises");
    bytes
}

/// A value [`encode`] wrote.
pub fn decode<T: for<'x> Deserialize<'x>>(bytes: &[u8]) -> anyhow::Result<T> {
    let mut d = Deserializer::new(bytes);
    let value = T::deserialize(&mut d).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    d.expect_eof().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(value)
}

impl Gateway {
    /// The configuration `name` of `bucket`, if it has one.
    pub async fn bucket_config<T: for<'x> Deserialize<'x>>(
        &self,
        bucket: &str,
        name: &str,
    ) -> S3Result<Option<T>> {
        let path = self.check_bucket(bucket).await?;
        let mut xattrs = self
            .client
            .xattrs(&path)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchBucket))?;
        xattrs
            .remove(name)
            .map(|bytes| {
                decode(&bytes).map_err(|e| {
                    s3(
                        e.context(format!("the {name} of bucket {bucket:?}")),
                        S3ErrorCode::InternalError,
                    )
                })
            })
            .transpose()
    }

    /// Sets (`Some`) or removes (`None`) the configuration `name` of `bucket`.
    pub async fn set_bucket_config<T: Serialize>(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&T>,
    ) -> S3Result<()> {
        let path = self.check_bucket(bucket).await?;
        let (set, remove) = match value {
            Some(v) => (HashMap::from([(name.to_string(), encode(v))]), Vec::new()),
            None => (HashMap::new(), vec![name.to_string()]),
        };
        self.client
            .set_xattrs(&path, set, remove)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchBucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::*;

    #[test]
    fn configurations_come_back_as_stored() {
        let tags = Tagging {
            tag_set: vec![Tag {
                key: Some("k <&>".into()),
                value: Some("v".into()),
            }],
        };
        let back: Tagging = decode(&encode(&tags)).unwrap();
        assert_eq!(back, tags);
        assert!(decode::<Tagging>(b"<Tagging><TagSet>").is_err());
        assert!(decode::<Tagging>(b"<CORSConfiguration/>").is_err());
    }
}
