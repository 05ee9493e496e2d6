//! Requests BigFS cannot honour, refused with 501 NotImplemented before anything is stored or
//! removed. Ignoring them would be a success the gateway did not earn: an object a client asked
//! to be encrypted stored in the clear.

use s3s::{s3_error, S3Result};

/// The most keys one DeleteObjects may name (S3's own limit).
pub const MAX_DELETE_KEYS: usize = 1000;

/// Refuses a request that asks for server-side encryption (any of SSE-S3, SSE-KMS or SSE-C).
pub fn encryption(asked: &[bool]) -> S3Result<()> {
    if asked.iter().any(|&a| a) {
        return Err(s3_error!(
            NotImplemented,
            "server-side encryption is not supported: BigFS stores objects as sent, verified by \
             their BLAKE3 hashes (encrypt on the client side)"
        ));
    }
    Ok(())
}

/// Refuses an SSE-C key sent without its algorithm header (with it, [`encryption`] refuses).
pub fn customer_key(key: &Option<String>, key_md5: &Option<String>) -> S3Result<()> {
    encryption(&[key.is_some(), key_md5.is_some()])
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
        assert!(encryption(&[false, false]).is_ok());
        assert!(encryption(&[false, true]).is_err());
        assert!(delete_count(MAX_DELETE_KEYS).is_ok());
        assert!(delete_count(MAX_DELETE_KEYS + 1).is_err());
    }
}
