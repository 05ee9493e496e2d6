//! Who a request is and what an ACL lets it do: the user of its key, the ACL it asks for, the
//! bucket ACLs kept (as the `s3.acl` configuration), and the check s3s makes before each
//! request, which lets unsigned requests read what AllUsers may read and nothing else.
//! What is enforced and what is only recorded is said in [`acl`].

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::path::S3Path;
use s3s::{s3_error, S3Result};

use std::collections::HashMap;

use s3s::S3ErrorCode;

use super::acl::{self, User};
use super::bucket_config::{decode, encode, ACL, OWNERSHIP, PUBLIC_ACCESS_BLOCK};
use super::errors::s3;
use super::keys::gateway_user;
use super::names::object_path;
use super::Gateway;

/// The ACL parts of a request: a canned ACL, `x-amz-grant-*` headers, an
/// `AccessControlPolicy` body.
#[derive(Default)]
pub struct AclRequest<'a> {
    pub canned: Option<&'a str>,
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
    pub body: Option<AccessControlPolicy>,
}

/// The [`AclRequest`] of an s3s input with the canned ACL and grant headers of a bucket.
macro_rules! bucket_acl_request {
    ($input:expr, $body:expr) => {
        $crate::s3::access::AclRequest {
            canned: $input.acl.as_ref().map(|a| a.as_str()),
            full_control: $input.grant_full_control.as_deref(),
            read: $input.grant_read.as_deref(),
            read_acp: $input.grant_read_acp.as_deref(),
            write: $input.grant_write.as_deref(),
            write_acp: $input.grant_write_acp.as_deref(),
            body: $body,
        }
    };
}
pub(crate) use bucket_acl_request;

/// The [`AclRequest`] of an object's write (no `x-amz-grant-write` there).
macro_rules! object_acl_request {
    ($input:expr) => {
        $crate::s3::access::AclRequest {
            canned: $input.acl.as_ref().map(|a| a.as_str()),
            full_control: $input.grant_full_control.as_deref(),
            read: $input.grant_read.as_deref(),
            read_acp: $input.grant_read_acp.as_deref(),
            write: None,
            write_acp: $input.grant_write_acp.as_deref(),
            body: None,
        }
    };
}
pub(crate) use object_acl_request;

impl AclRequest<'_> {
    /// Whether the request asks for any ACL at all.
    pub fn asked(&self) -> bool {
        self.canned.is_some()
            || self.full_control.is_some()
            || self.read.is_some()
            || self.read_acp.is_some()
            || self.write.is_some()
            || self.write_acp.is_some()
            || self.body.is_some()
    }
}

impl Gateway {
    /// The user a request signs for (the gateway's own for an unsigned one).
    pub fn user(&self, credentials: Option<&Credentials>) -> User {
        credentials.map_or_else(gateway_user, |c| self.keys.user(&c.access_key))
    }

    /// The ACL `request` asks for, owned by `owner`, on something in a bucket owned by
    /// `bucket_owner`: its body, else its grant headers, else its canned ACL, else private.
    pub fn requested_acl(
        &self,
        request: AclRequest,
        owner: &User,
        bucket_owner: &User,
    ) -> S3Result<AccessControlPolicy> {
        // In the order S3 lists them.
        let headers = [
            (Permission::READ, request.read),
            (Permission::WRITE, request.write),
            (Permission::READ_ACP, request.read_acp),
            (Permission::WRITE_ACP, request.write_acp),
            (Permission::FULL_CONTROL, request.full_control),
        ];
        let policy = if let Some(body) = request.body {
            AccessControlPolicy {
                owner: Some(owner.owner()),
                grants: body.grants,
            }
        } else if headers.iter().any(|(_, h)| h.is_some()) {
            let mut grants = Vec::new();
            for (permission, header) in headers {
                if let Some(header) = header {
                    grants.extend(acl::header_grants(permission, header)?);
                }
            }
            AccessControlPolicy {
                owner: Some(owner.owner()),
                grants: Some(grants),
            }
        } else {
            return acl::canned(request.canned.unwrap_or("private"), owner, bucket_owner);
        };
        let mut policy = acl::check(policy)?;
        // Groups first, as S3 lists them (a stable sort: the rest keep their order).
        if let Some(grants) = policy.grants.as_mut() {
            grants.sort_by_key(|g| g.grantee.as_ref().is_none_or(|e| e.uri.is_none()));
        }
        // Users are named by ID; each must be one the gateway knows, shown with its name.
        for grantee in policy
            .grants
            .iter_mut()
            .flatten()
            .filter_map(|g| g.grantee.as_mut())
        {
            if let Some(id) = &grantee.id {
                let user = self
                    .keys
                    .find_user(id)
                    .ok_or_else(|| s3_error!(InvalidArgument, "no user has the ID {id:?}"))?;
                grantee.display_name = Some(user.display_name);
            }
        }
        Ok(policy)
    }

    /// The bucket's ACL: the one kept, else (a bucket made before ACLs were kept, or by the
    /// CLI) private to the gateway's user.
    pub async fn bucket_acl(&self, bucket: &str) -> S3Result<AccessControlPolicy> {
        match self.bucket_config(bucket, ACL).await? {
            Some(policy) => Ok(policy),
            None => acl::canned("private", &gateway_user(), &gateway_user()),
        }
    }

    /// The owner of the bucket.
    pub async fn bucket_owner(&self, bucket: &str) -> S3Result<User> {
        Ok(User::of(&self.bucket_acl(bucket).await?).unwrap_or_else(gateway_user))
    }

    /// Refuses `policy` for something in `bucket` where the bucket's settings refuse it: a
    /// public ACL under a public access block that blocks them, any grant but the owner's
    /// where ownership controls disable ACLs; then where the gateway would not honour it.
    pub async fn check_acl_allowed(
        &self,
        bucket: &str,
        policy: &AccessControlPolicy,
    ) -> S3Result<()> {
        if acl::is_public(policy) {
            let block: Option<PublicAccessBlockConfiguration> =
                self.bucket_config(bucket, PUBLIC_ACCESS_BLOCK).await?;
            if block.is_some_and(|b| b.block_public_acls == Some(true)) {
                return Err(s3_error!(
                    AccessDenied,
                    "the bucket's public access block refuses public ACLs"
                ));
            }
        }
        if !acl::is_owner_only(policy) && self.acls_disabled(bucket).await? {
            return Err(s3_error!(
                AccessControlListNotSupported,
                "the bucket's ownership controls disable ACLs (BucketOwnerEnforced)"
            ));
        }
        acl::check_honoured(policy)
    }

    /// Whether the bucket's ownership controls are BucketOwnerEnforced.
    pub async fn acls_disabled(&self, bucket: &str) -> S3Result<bool> {
        let controls: Option<OwnershipControls> = self.bucket_config(bucket, OWNERSHIP).await?;
        Ok(controls.is_some_and(|c| {
            c.rules
                .iter()
                .any(|r| r.object_ownership.as_str() == ObjectOwnership::BUCKET_OWNER_ENFORCED)
        }))
    }

    /// Keeps a new bucket's ACL and ownership controls.
    pub async fn init_bucket(
        &self,
        bucket: &str,
        acl: &AccessControlPolicy,
        ownership: Option<ObjectOwnership>,
    ) -> S3Result<()> {
        self.set_bucket_config(bucket, ACL, Some(acl)).await?;
        if let Some(ownership) = ownership {
            let controls = OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: ownership,
                }],
            };
            self.put_ownership(bucket, controls).await?;
        }
        Ok(())
    }

    pub async fn put_bucket_acl(&self, bucket: &str, request: AclRequest<'_>) -> S3Result<()> {
        let owner = self.bucket_owner(bucket).await?;
        let policy = self.requested_acl(request, &owner, &owner)?;
        self.check_acl_allowed(bucket, &policy).await?;
        self.set_bucket_config(bucket, ACL, Some(&policy)).await
    }

    /// The ACL an object write asks for, checked against the bucket's settings before
    /// anything is written; `None` when it asks for none (the object is then the bucket
    /// owner's, private).
    pub async fn new_object_acl(
        &self,
        bucket: &str,
        writer: &User,
        request: AclRequest<'_>,
    ) -> S3Result<Option<AccessControlPolicy>> {
        if !request.asked() {
            return Ok(None);
        }
        let bucket_owner = self.bucket_owner(bucket).await?;
        let policy = self.requested_acl(request, writer, &bucket_owner)?;
        self.check_acl_allowed(bucket, &policy).await?;
        Ok(Some(policy))
    }

    /// Keeps an object's ACL (`None`: removes any, making it the bucket owner's, private):
    /// an extended attribute of its file, which a later write of the key replaces.
    pub async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        policy: Option<&AccessControlPolicy>,
    ) -> S3Result<()> {
        let path = object_path(bucket, key)?.path;
        let (set, remove) = match policy {
            Some(p) => (HashMap::from([(ACL.to_string(), encode(p))]), Vec::new()),
            None => (HashMap::new(), vec![ACL.to_string()]),
        };
        self.client
            .set_xattrs(&path, set, remove)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchKey))
    }

    /// After an object's write: keeps the ACL it asked for.
    pub async fn keep_object_acl(
        &self,
        bucket: &str,
        key: &str,
        policy: Option<AccessControlPolicy>,
    ) -> S3Result<()> {
        match policy {
            Some(policy) => self.set_object_acl(bucket, key, Some(&policy)).await,
            None => Ok(()),
        }
    }

    /// Refuses an ACL asked for at the start of a multipart upload, unless it is what the
    /// object gets anyway (private to the bucket's owner): it is not carried to the Complete.
    pub async fn refuse_upload_acl(
        &self,
        bucket: &str,
        writer: &User,
        request: AclRequest<'_>,
    ) -> S3Result<()> {
        let Some(policy) = self.new_object_acl(bucket, writer, request).await? else {
            return Ok(());
        };
        let owner = self.bucket_owner(bucket).await?;
        if policy != acl::canned("private", &owner, &owner)? {
            return Err(s3_error!(
                NotImplemented,
                "an ACL on a multipart upload is not supported: set it with PutObjectAcl once \
                 it is complete"
            ));
        }
        Ok(())
    }

    /// An object's ACL: the one kept, else private to the bucket's owner.
    pub async fn object_acl(&self, bucket: &str, key: &str) -> S3Result<AccessControlPolicy> {
        let owner = self.bucket_owner(bucket).await?;
        let path = object_path(bucket, key)?.path;
        let kept = self
            .client
            .xattrs(&path)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchKey))?
            .remove(ACL);
        match kept {
            Some(bytes) => decode(&bytes).map_err(|e| s3(e, S3ErrorCode::InternalError)),
            None => acl::canned("private", &owner, &owner),
        }
    }

    pub async fn put_object_acl(
        &self,
        bucket: &str,
        key: &str,
        request: AclRequest<'_>,
    ) -> S3Result<()> {
        let current = self.object_acl(bucket, key).await?;
        let owner = User::of(&current).unwrap_or_else(gateway_user);
        let bucket_owner = self.bucket_owner(bucket).await?;
        let policy = self.requested_acl(request, &owner, &bucket_owner)?;
        self.check_acl_allowed(bucket, &policy).await?;
        self.set_object_acl(bucket, key, Some(&policy)).await
    }

    /// Whether the bucket's ACL lets in anyone beyond named users (a public access block
    /// that ignores public ACLs makes it private).
    pub async fn is_public(&self, bucket: &str) -> S3Result<bool> {
        Ok(acl::is_public(&self.bucket_acl(bucket).await?)
            && !self.ignores_public_acls(bucket).await?)
    }

    async fn ignores_public_acls(&self, bucket: &str) -> S3Result<bool> {
        let block: Option<PublicAccessBlockConfiguration> =
            self.bucket_config(bucket, PUBLIC_ACCESS_BLOCK).await?;
        Ok(block.is_some_and(|b| b.ignore_public_acls == Some(true)))
    }

    /// Whether an unsigned request may do `operation` on `path`: only reads that AllUsers is
    /// granted by the bucket's ACL.
    async fn anonymous_may(&self, operation: &str, path: &S3Path) -> S3Result<bool> {
        let (bucket, policy, permission) = match (path, operation) {
            (S3Path::Bucket { bucket }, "ListObjects" | "ListObjectsV2" | "HeadBucket") => {
                (bucket, self.bucket_acl(bucket).await?, Permission::READ)
            }
            (S3Path::Bucket { bucket }, "GetBucketAcl") => {
                (bucket, self.bucket_acl(bucket).await?, Permission::READ_ACP)
            }
            (S3Path::Object { bucket, key }, "GetObject" | "HeadObject") => {
                match self.object_acl(bucket, key).await {
                    Ok(policy) => (bucket, policy, Permission::READ),
                    // A missing key is told (404) to whoever may list the bucket, as S3 does.
                    Err(e) if e.code() == &S3ErrorCode::NoSuchKey => {
                        (bucket, self.bucket_acl(bucket).await?, Permission::READ)
                    }
                    Err(e) => return Err(e),
                }
            }
            (S3Path::Object { bucket, key }, "GetObjectAcl") => (
                bucket,
                self.object_acl(bucket, key).await?,
                Permission::READ_ACP,
            ),
            _ => return Ok(false),
        };
        Ok(acl::grants_anyone(&policy, permission) && !self.ignores_public_acls(bucket).await?)
    }
}

/// Refuses a new bucket's ACL that its ownership controls would disable.
pub fn check_new_bucket_acl(
    acl: &AccessControlPolicy,
    ownership: Option<&ObjectOwnership>,
) -> S3Result<()> {
    let enforced = ownership.is_some_and(|o| o.as_str() == ObjectOwnership::BUCKET_OWNER_ENFORCED);
    if enforced && !acl::is_owner_only(acl) {
        return Err(s3_error!(
            InvalidBucketAclWithObjectOwnership,
            "BucketOwnerEnforced disables ACLs: only the owner's full control may be given"
        ));
    }
    acl::check_honoured(acl)
}

/// The check s3s makes before every request: a signed one goes on (its signature was
/// checked), an unsigned one only where the ACLs let anyone read.
pub struct Access(pub Gateway);

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        // A bucket that cannot be read is as private as one without a public grant.
        let name = cx.s3_op().name();
        if self
            .0
            .anonymous_may(name, cx.s3_path())
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        Err(s3_error!(AccessDenied, "Access Denied"))
    }
}
