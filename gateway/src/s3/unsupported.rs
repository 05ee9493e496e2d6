//! Requests beyond what S3 allows, refused before anything is removed. (What BigFS does not
//! build answers 501 where it is asked: s3s's default for operations, [`super::encryption`]
//! for the kinds of server-side encryption without their keys.)

use s3s::{s3_error, S3Result};

/// The most keys one DeleteObjects may name (S3's own limit).
pub const MAX_DELETE_KEYS: usize = 1000;

/// Refuses a request for a version other than the one version BigFS keeps (`null`).
pub fn version(version_id: &Option<String>) -> S3Result<()> {
    match version_id.as_deref() {
        None | Some("null") => Ok(()),
        Some(v) => Err(s3_error!(
            NotImplemented,
            "version {v:?}: BigFS keeps one version of each object"
        )),
    }
}

/// Refuses a DeleteObjects of more keys than S3 allows in one request.
pub fn delete_count(keys: usize) -> S3Result<()> {
    if keys > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "{keys} keys in one DeleteObjects; at most {MAX_DELETE_KEYS}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_asked_is_refused() {
        assert!(delete_count(MAX_DELETE_KEYS).is_ok());
        assert!(delete_count(MAX_DELETE_KEYS + 1).is_err());
    }
}
