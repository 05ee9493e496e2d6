//! Object tagging: up to 10 key-value tags kept in an object's metadata, set with the object
//! (`x-amz-tagging` on PutObject, CreateMultipartUpload and CopyObject) or on their own
//! (PutObjectTagging, DeleteObjectTagging), counted on GET and HEAD (`x-amz-tagging-count`).
//! A tagging change replaces the object's metadata in one step checked against the version it
//! was read at, so it never undoes a PUT that came in between, and keeps Last-Modified, as S3
//! does.

use std::collections::HashMap;

use percent_encoding::percent_decode_str;
use s3s::dto::*;
use s3s::{s3_error, S3ErrorCode, S3Result};

use bigfs_client::client::MetaError;
use bigfs_proto::pb::ObjectMeta;

use super::errors::s3;
use super::names::object_path;
use super::Gateway;

/// S3's limits: tags per object, and characters of a key and of a value.
const MAX_TAGS: usize = 10;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// The header of a GET or HEAD that counts an object's tags.
pub const TAG_COUNT_HEADER: &str = "x-amz-tagging-count";

/// Tags by key.
pub type Tags = HashMap<String, String>;

/// Checks a tag set against S3's limits (InvalidTag, 400) and makes it a map.
pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> S3Result<Tags> {
    let mut tags = Tags::new();
    for (key, value) in pairs {
        let chars = key.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS {
            return Err(s3_error!(
                InvalidTag,
                "a tag key is 1 to {MAX_KEY_CHARS} characters, not {chars}"
            ));
        }
        let chars = value.chars().count();
        if chars > MAX_VALUE_CHARS {
            return Err(s3_error!(
                InvalidTag,
                "a tag value is at most {MAX_VALUE_CHARS} characters, not {chars}"
            ));
        }
        if tags.insert(key.clone(), value).is_some() {
            return Err(s3_error!(InvalidTag, "the tag key {key:?} is given twice"));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(s3_error!(
            InvalidTag,
            "an object has at most {MAX_TAGS} tags, not {}",
            tags.len()
        ));
    }
    Ok(tags)
}

/// The tags of an `x-amz-tagging` header: URL query syntax, `key=value&key2=value2`, a key
/// without `=` having an empty value.
pub fn parse_header(header: &str) -> S3Result<Tags> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| s3_error!(InvalidArgument, "x-amz-tagging is not UTF-8"))
    };
    let pairs = header
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?, decode(value)?))
        })
        .collect::<S3Result<Vec<_>>>()?;
    from_pairs(pairs)
}

/// The tags an `x-amz-tagging` header gives, none without one.
pub fn of_header(header: Option<&str>) -> S3Result<Tags> {
    header.map_or_else(|| Ok(Tags::new()), parse_header)
}

/// A tag set as S3 lists it, sorted by key.
pub fn tag_set(tags: &Tags) -> TagSet {
    let mut set: Vec<Tag> = tags
        .iter()
        .map(|(key, value)| Tag {
            key: Some(key.clone()),
            value: Some(value.clone()),
        })
        .collect();
    set.sort_by(|a, b| a.key.cmp(&b.key));
    set
}

/// The tags a CopyObject gives its copy: the source's (`x-amz-tagging-directive: COPY`, the
/// default) or those of its own `x-amz-tagging` header (REPLACE).
pub fn of_copy(
    directive: Option<&TaggingDirective>,
    header: Option<&str>,
    source: &Tags,
) -> S3Result<Tags> {
    if directive.is_some_and(|d| d.as_str() == TaggingDirective::REPLACE) {
        of_header(header)
    } else {
        Ok(source.clone())
    }
}

impl Gateway {
    /// Replaces the tags of `key`, keeping the rest of its metadata: checked against the
    /// version the metadata was read at, so a PUT in between is never undone (it fails with
    /// 409 OperationAborted, to be retried, as S3 answers a conflicting concurrent change).
    async fn set_tags(&self, bucket: &str, key: &str, tags: Tags) -> S3Result<()> {
        let file = self
            .lookup(bucket, key)
            .await?
            .ok_or_else(|| s3_error!(InvalidArgument, "a directory marker has no tags"))?;
        let info = file.file.unwrap_or_default();
        let object = ObjectMeta {
            tags,
            ..info.object.unwrap_or_default()
        };
        let path = object_path(bucket, key)?.path;
        match self
            .client
            .set_object_meta(&path, object, Some(info.version))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if MetaError::is_version_mismatch(&e) => Err(s3_error!(
                OperationAborted,
                "{key} changed while its tags were set; try again"
            )),
            Err(e) => Err(s3(e, S3ErrorCode::NoSuchKey)),
        }
    }

    pub async fn put_object_tagging(
        &self,
        input: PutObjectTaggingInput,
    ) -> S3Result<PutObjectTaggingOutput> {
        let pairs = input
            .tagging
            .tag_set
            .into_iter()
            .map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default()));
        let tags = from_pairs(pairs)?;
        self.set_tags(&input.bucket, &input.key, tags).await?;
        Ok(PutObjectTaggingOutput::default())
    }

    pub async fn get_object_tagging(
        &self,
        input: GetObjectTaggingInput,
    ) -> S3Result<GetObjectTaggingOutput> {
        let tags = match self.lookup(&input.bucket, &input.key).await? {
            Some(file) => file
                .file
                .and_then(|f| f.object)
                .map(|o| o.tags)
                .unwrap_or_default(),
            None => Tags::new(),
        };
        Ok(GetObjectTaggingOutput {
            tag_set: tag_set(&tags),
            ..GetObjectTaggingOutput::default()
        })
    }

    pub async fn delete_object_tagging(
        &self,
        input: DeleteObjectTaggingInput,
    ) -> S3Result<DeleteObjectTaggingOutput> {
        self.set_tags(&input.bucket, &input.key, Tags::new())
            .await?;
        Ok(DeleteObjectTaggingOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: S3Result<Tags>) -> S3ErrorCode {
        result.unwrap_err().code().clone()
    }

    #[test]
    fn the_header_is_a_query_string() {
        let tags = parse_header("foo=bar&bar&a%20b=c+d&e=").unwrap();
        assert_eq!(tags["foo"], "bar");
        assert_eq!(tags["bar"], "");
        assert_eq!(tags["a b"], "c d");
        assert_eq!(tags["e"], "");
        assert!(of_header(None).unwrap().is_empty());
        let set = tag_set(&tags);
        let keys: Vec<_> = set.iter().map(|t| t.key.clone().unwrap()).collect();
        assert_eq!(keys, ["a b", "bar", "e", "foo"]);
    }

    #[test]
    fn s3_limits_are_invalid_tags() {
        let pairs = |n: usize, key: usize, value: usize| {
            (0..n).map(move |i| (format!("{i}{}", "k".repeat(key - 1)), "v".repeat(value)))
        };
        assert_eq!(from_pairs(pairs(10, 128, 256)).unwrap().len(), 10);
        assert_eq!(code(from_pairs(pairs(11, 1, 1))), S3ErrorCode::InvalidTag);
        assert_eq!(code(from_pairs(pairs(1, 129, 1))), S3ErrorCode::InvalidTag);
        assert_eq!(code(from_pairs(pairs(1, 1, 257))), S3ErrorCode::InvalidTag);
        assert_eq!(code(parse_header("a=1&a=2")), S3ErrorCode::InvalidTag);
        assert_eq!(code(parse_header("=1")), S3ErrorCode::InvalidTag);
        // Characters, not bytes.
        assert!(from_pairs([("é".repeat(128), "ü".repeat(256))]).is_ok());
    }
}
