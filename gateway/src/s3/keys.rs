//! The key pairs the S3 listener accepts: one from the command line or the environment, and
//! any number from a keys file, one `ACCESS_KEY SECRET_KEY` pair a line (`#` starts a comment).
//! s3s checks each request's signature (SigV4 headers, presigned URLs, aws-chunked bodies)
//! against the secret found here; an unknown key is `InvalidAccessKeyId`, a wrong signature
//! `SignatureDoesNotMatch`, a clock more than 15 minutes off `RequestTimeTooSkewed`.

use std::path::Path;

use std::collections::HashMap;

use anyhow::{bail, Context};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

/// Reads a keys file's pairs.
pub fn parse_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse(&text).with_context(|| format!("keys file {}", path.display()))
}

fn parse(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [access, secret] = fields[..] else {
            bail!(
                "line {}: expected ACCESS_KEY SECRET_KEY, found {} field(s)",
                number + 1,
                fields.len()
            );
        };
        pairs.push((access.to_string(), secret.to_string()));
    }
    Ok(pairs)
}

/// The key pairs s3s checks signatures with. An unknown access key is `InvalidAccessKeyId`,
/// the code clients expect (s3s's own `SimpleAuth` answers `NotSignedUp`).
pub struct Keys(HashMap<String, SecretKey>);

impl Keys {
    fn lookup(&self, access_key: &str) -> Option<&SecretKey> {
        self.0.get(access_key)
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.lookup(access_key)
            .cloned()
            .ok_or_else(|| s3_error!(InvalidAccessKeyId, "unknown access key {access_key:?}"))
    }
}

/// Every pair (the first listed wins a repeat); none at all is a startup error.
pub fn auth(pairs: Vec<(String, String)>) -> anyhow::Result<Keys> {
    if pairs.is_empty() {
        bail!(
            "the S3 listener needs a key pair: --s3-access-key and --s3-secret-key (or \
             BIGFS_S3_ACCESS_KEY and BIGFS_S3_SECRET_KEY), or --s3-keys-file"
        );
    }
    let mut keys = HashMap::new();
    for (access, secret) in pairs {
        keys.entry(access)
            .or_insert_with(|| SecretKey::from(secret));
    }
    Ok(Keys(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_file_holds_pairs_and_comments() {
        let pairs = parse("# users\nAK1 SK1\n\n  AK2\tSK2  # ops\n").unwrap();
        assert_eq!(
            pairs,
            [("AK1".into(), "SK1".into()), ("AK2".into(), "SK2".into())]
        );
        let err = parse("AK1 SK1 extra\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn no_keys_is_a_startup_error() {
        assert!(auth(Vec::new()).is_err());
        let auth = auth(vec![("a".into(), "s".into()), ("b".into(), "t".into())]).unwrap();
        assert!(auth.lookup("a").is_some());
        assert!(auth.lookup("b").is_some());
        assert!(auth.lookup("c").is_none());
    }
}
