//! Buckets and keys as BigFS paths: a bucket is a top-level directory, a key the path below
//! it, and a key ending in `/` is a directory marker (the directory itself). A key that no
//! BigFS path can hold (`a//b`, a `.` or `..` component, a component over 255 bytes, a path
//! over 4096) is refused with the S3 error that names why, before any call to the cluster.

use s3s::{s3_error, S3Error, S3ErrorCode};

use bigfs_proto::{FsPath, PathError};

/// Top-level names that are not buckets: the gateway's own (multipart parts). S3 bucket names
/// start with a letter or digit, so no bucket can take one.
pub fn is_reserved(top_level_name: &str) -> bool {
    top_level_name.starts_with('.')
}

/// The directory of `bucket` (s3s has checked the name against S3's rules).
pub fn bucket_path(bucket: &str) -> Result<FsPath, S3Error> {
    if is_reserved(bucket) {
        return Err(s3_error!(InvalidBucketName, "{bucket:?} is reserved"));
    }
    FsPath::parse(&format!("/{bucket}"))
        .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidBucketName, e.to_string()))
}

/// S3's naming rules for a new bucket that s3s does not check: each dot-separated label starts
/// and ends with a letter or digit (no `.-` or `-.`), and the suffixes S3 reserves for access
/// points are not taken.
pub fn check_new_bucket(bucket: &str) -> Result<(), S3Error> {
    let label_edges = bucket.contains(".-") || bucket.contains("-.");
    let reserved = ["-s3alias", "--ol-s3", "--x-s3"]
        .iter()
        .any(|suffix| bucket.ends_with(suffix));
    if label_edges || reserved {
        return Err(s3_error!(
            InvalidBucketName,
            "{bucket:?}: a dot-separated label must start and end with a letter or digit, \
             and -s3alias, --ol-s3 and --x-s3 are reserved suffixes"
        ));
    }
    Ok(())
}

/// Where an object lives.
#[derive(Debug, PartialEq, Eq)]
pub struct ObjectPath {
    pub path: FsPath,
    /// The key ends in `/`: a directory marker, i.e. the directory at `path`.
    pub marker: bool,
}

/// The path of `key` in `bucket`.
pub fn object_path(bucket: &str, key: &str) -> Result<ObjectPath, S3Error> {
    let bucket = bucket_path(bucket)?;
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "an object key cannot be empty"));
    }
    let marker = key.ends_with('/');
    let name = key.strip_suffix('/').unwrap_or(key);
    let path = FsPath::parse(&format!("{bucket}/{name}")).map_err(|e| key_error(key, &e))?;
    Ok(ObjectPath { path, marker })
}

/// The key of the file at `path` in the bucket directory `bucket`.
pub fn key_of(bucket: &FsPath, path: &str) -> Option<String> {
    path.strip_prefix(bucket.as_str())?
        .strip_prefix('/')
        .map(str::to_string)
}

fn key_error(key: &str, error: &PathError) -> S3Error {
    let code = match error {
        PathError::TooLong(_) | PathError::ComponentTooLong { .. } => S3ErrorCode::KeyTooLongError,
        _ => S3ErrorCode::InvalidArgument,
    };
    S3Error::with_message(
        code,
        format!("key {key:?} cannot be stored in BigFS: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_paths_below_the_bucket() {
        let object = object_path("photos", "2024/cat é.jpg").unwrap();
        assert_eq!(object.path.as_str(), "/photos/2024/cat é.jpg");
        assert!(!object.marker);
        let marker = object_path("photos", "2024/").unwrap();
        assert_eq!(marker.path.as_str(), "/photos/2024");
        assert!(marker.marker);
        assert_eq!(
            key_of(&bucket_path("photos").unwrap(), "/photos/2024/x").as_deref(),
            Some("2024/x")
        );
        assert_eq!(key_of(&bucket_path("photos").unwrap(), "/photosx/y"), None);
    }

    #[test]
    fn keys_a_path_cannot_hold_are_refused_with_the_reason() {
        for bad in ["a//b", "/a", "a/./b", "..", "a/../b", "x\0y", ""] {
            let err = object_path("b", bad).unwrap_err();
            assert_eq!(err.code(), &S3ErrorCode::InvalidArgument, "{bad:?}");
        }
        let long_component = "x".repeat(256);
        let err = object_path("b", &long_component).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::KeyTooLongError);
        let long_key = "abc/".repeat(1100);
        let err = object_path("b", &long_key).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::KeyTooLongError);
    }

    #[test]
    fn new_bucket_names_follow_the_dns_label_rules() {
        for bad in ["foo.-bar", "foo-.bar", "data-s3alias", "data--ol-s3"] {
            assert!(check_new_bucket(bad).is_err(), "{bad}");
        }
        for good in ["foo.bar", "foo-bar", "a.b-c.d"] {
            assert!(check_new_bucket(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn reserved_names_are_not_buckets() {
        assert!(is_reserved(".bigfs-multipart"));
        assert!(bucket_path(".bigfs-multipart").is_err());
        assert!(!is_reserved("data"));
    }
}
