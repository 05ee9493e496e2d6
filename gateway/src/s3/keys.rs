//! The key pairs the S3 listener accepts: one from the command line or the environment, and
//! any number from a keys file, one `ACCESS_KEY SECRET_KEY [USER_ID [DISPLAY NAME]]` a line
//! (`#` starts a comment). The user is who owns the buckets and objects the key creates, as
//! ACLs name owners; a key without one is the gateway's own user, `bigfs`.
//! s3s checks each request's signature (SigV4 headers, presigned URLs, aws-chunked bodies)
//! against the secret found here; an unknown key is `InvalidAccessKeyId`, a wrong signature
//! `SignatureDoesNotMatch`, a clock more than 15 minutes off `RequestTimeTooSkewed`.

use std::path::Path;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use super::acl::User;

/// One key pair and the user it signs for.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyPair {
    pub access: String,
    pub secret: String,
    pub user: Option<User>,
}

/// The user of a key that names none (and of buckets made before owners were recorded).
pub fn gateway_user() -> User {
    User {
        id: "bigfs".into(),
        display_name: "bigfs".into(),
    }
}

/// Reads a keys file's pairs.
pub fn parse_file(path: &Path) -> anyhow::Result<Vec<KeyPair>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse(&text).with_context(|| format!("keys file {}", path.display()))
}

fn parse(text: &str) -> anyhow::Result<Vec<KeyPair>> {
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [access, secret, ref user @ ..] = fields[..] else {
            bail!(
                "line {}: expected ACCESS_KEY SECRET_KEY [USER_ID [DISPLAY NAME]], found {} \
                 field(s)",
                number + 1,
                fields.len()
            );
        };
        let user = user.split_first().map(|(id, name)| User {
            id: id.to_string(),
            // A display name may have spaces; none is the ID.
            display_name: if name.is_empty() {
                id.to_string()
            } else {
                name.join(" ")
            },
        });
        pairs.push(KeyPair {
            access: access.to_string(),
            secret: secret.to_string(),
            user,
        });
    }
    Ok(pairs)
}

/// The key pairs s3s checks signatures with, and their users. An unknown access key is
/// `InvalidAccessKeyId`, the code clients expect (s3s's own `SimpleAuth` answers
/// `NotSignedUp`).
#[derive(Clone, Default)]
pub struct Keys(Arc<HashMap<String, (SecretKey, Option<User>)>>);

impl Keys {
    fn lookup(&self, access_key: &str) -> Option<&SecretKey> {
        self.0.get(access_key).map(|(secret, _)| secret)
    }

    /// The user `access_key` signs for.
    pub fn user(&self, access_key: &str) -> User {
        self.0
            .get(access_key)
            .and_then(|(_, user)| user.clone())
            .unwrap_or_else(gateway_user)
    }

    /// The user with this ID, if a key signs for it (or it is the gateway's).
    pub fn find_user(&self, id: &str) -> Option<User> {
        let users = self.0.values().filter_map(|(_, user)| user.clone());
        users.chain([gateway_user()]).find(|user| user.id == id)
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
pub fn auth(pairs: Vec<KeyPair>) -> anyhow::Result<Keys> {
    if pairs.is_empty() {
        bail!(
            "the S3 listener needs a key pair: --s3-access-key and --s3-secret-key (or \
             BIGFS_S3_ACCESS_KEY and BIGFS_S3_SECRET_KEY), or --s3-keys-file"
        );
    }
    let mut keys = HashMap::new();
    for pair in pairs {
        keys.entry(pair.access)
            .or_insert_with(|| (SecretKey::from(pair.secret), pair.user));
    }
    Ok(Keys(Arc::new(keys)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_file_holds_pairs_and_comments() {
        let pairs = parse("# users\nAK1 SK1\n\n  AK2\tSK2  # ops\nAK3 SK3 u3 M. Tester\n").unwrap();
        let pair = |access: &str, secret: &str, user: Option<User>| KeyPair {
            access: access.into(),
            secret: secret.into(),
            user,
        };
        let tester = User {
            id: "u3".into(),
            display_name: "M. Tester".into(),
        };
        assert_eq!(
            pairs,
            [
                pair("AK1", "SK1", None),
                pair("AK2", "SK2", None),
                pair("AK3", "SK3", Some(tester.clone()))
            ]
        );
        let keys = auth(pairs).unwrap();
        assert_eq!(keys.user("AK3"), tester);
        assert_eq!(keys.user("AK1"), gateway_user());
        assert_eq!(keys.find_user("u3"), Some(tester));
        assert_eq!(keys.find_user("bigfs"), Some(gateway_user()));
        assert_eq!(keys.find_user("nobody"), None);
        let named = parse("AK1 SK1 id\n").unwrap();
        assert_eq!(named[0].user.as_ref().unwrap().display_name, "id");
        let err = parse("AK1\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn no_keys_is_a_startup_error() {
        assert!(auth(Vec::new()).is_err());
        let pair = |access: &str, secret: &str| KeyPair {
            access: access.into(),
            secret: secret.into(),
            user: None,
        };
        let auth = auth(vec![pair("a", "s"), pair("b", "t")]).unwrap();
        assert!(auth.lookup("a").is_some());
        assert!(auth.lookup("b").is_some());
        assert!(auth.lookup("c").is_none());
    }
}
