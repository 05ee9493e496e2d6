//! Access control lists: the ACL a request asks for (a canned ACL, `x-amz-grant-*` headers or
//! an `AccessControlPolicy` body) checked and made whole, and what an ACL lets an anonymous
//! (unsigned) request do.
//!
//! What is enforced (see docs/S3.md): every key pair is trusted with every bucket, as before
//! ACLs existed, so a grant never adds to what a signed request may do, and a private ACL does
//! not keep another key out. What an ACL decides is what an unsigned request may *read*: the
//! objects, listings and ACLs that grant `READ` or `READ_ACP` to AllUsers, unless the bucket's
//! public access block ignores public ACLs. Grants that would let anonymous requests write
//! (`WRITE`, `WRITE_ACP`, `FULL_CONTROL` to AllUsers, so `public-read-write`) are refused with
//! 501: the gateway does not take anonymous writes.

use s3s::dto::*;
use s3s::{s3_error, S3Result};

/// The group of everyone, signed or not.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The group of every signed request.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// A user as ACLs name one: the identity of a key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub display_name: String,
}

impl User {
    pub fn owner(&self) -> Owner {
        Owner {
            id: Some(self.id.clone()),
            display_name: Some(self.display_name.clone()),
        }
    }

    fn grant(&self, permission: &'static str) -> Grant {
        Grant {
            grantee: Some(Grantee {
                id: Some(self.id.clone()),
                display_name: Some(self.display_name.clone()),
                type_: Type::from_static(Type::CANONICAL_USER),
                email_address: None,
                uri: None,
            }),
            permission: Some(Permission::from_static(permission)),
        }
    }

    /// The owner an ACL names.
    pub fn of(policy: &AccessControlPolicy) -> Option<User> {
        let owner = policy.owner.as_ref()?;
        Some(User {
            id: owner.id.clone()?,
            display_name: owner.display_name.clone().unwrap_or_default(),
        })
    }
}

fn group(uri: &str, permission: &'static str) -> Grant {
    Grant {
        grantee: Some(Grantee {
            uri: Some(uri.to_string()),
            type_: Type::from_static(Type::GROUP),
            display_name: None,
            email_address: None,
            id: None,
        }),
        permission: Some(Permission::from_static(permission)),
    }
}

/// The ACL a canned name stands for, `owner` owning it; `bucket_owner` is the owner of the
/// object's bucket (for `bucket-owner-read` and `-full-control`).
pub fn canned(name: &str, owner: &User, bucket_owner: &User) -> S3Result<AccessControlPolicy> {
    let mut grants = Vec::new();
    match name {
        "private" => {}
        "public-read" => grants.push(group(ALL_USERS, Permission::READ)),
        "public-read-write" => {
            grants.push(group(ALL_USERS, Permission::READ));
            grants.push(group(ALL_USERS, Permission::WRITE));
        }
        "authenticated-read" => grants.push(group(AUTHENTICATED_USERS, Permission::READ)),
        "bucket-owner-read" if bucket_owner != owner => {
            grants.push(bucket_owner.grant(Permission::READ))
        }
        "bucket-owner-full-control" if bucket_owner != owner => {
            grants.push(bucket_owner.grant(Permission::FULL_CONTROL))
        }
        "bucket-owner-read" | "bucket-owner-full-control" => {}
        other => return Err(s3_error!(InvalidArgument, "{other:?} is not a canned ACL")),
    }
    // The owner's grant last, where S3 and RGW list it.
    grants.push(owner.grant(Permission::FULL_CONTROL));
    Ok(AccessControlPolicy {
        owner: Some(owner.owner()),
        grants: Some(grants),
    })
}

/// The grantees of one `x-amz-grant-*` header: `id="…"`, `uri="…"` or `emailAddress="…"`,
/// comma-separated.
pub fn header_grants(permission: &'static str, header: &str) -> S3Result<Vec<Grant>> {
    let mut grants = Vec::new();
    for item in header.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (kind, value) = item
            .split_once('=')
            .ok_or_else(|| s3_error!(InvalidArgument, "a grant is kind=\"value\", not {item:?}"))?;
        let value = value.trim().trim_matches('"').to_string();
        let mut grantee = Grantee {
            type_: Type::from_static(Type::CANONICAL_USER),
            display_name: None,
            email_address: None,
            id: None,
            uri: None,
        };
        match kind.trim().to_ascii_lowercase().as_str() {
            "id" => grantee.id = Some(value),
            "uri" => {
                grantee.type_ = Type::from_static(Type::GROUP);
                grantee.uri = Some(value);
            }
            "emailaddress" => {
                grantee.type_ = Type::from_static(Type::AMAZON_CUSTOMER_BY_EMAIL);
                grantee.email_address = Some(value);
            }
            other => return Err(s3_error!(InvalidArgument, "unknown grantee kind {other:?}")),
        }
        grants.push(Grant {
            grantee: Some(grantee),
            permission: Some(Permission::from_static(permission)),
        });
    }
    Ok(grants)
}

/// Checks each grant of `policy`. Users are named by ID only: the gateway knows no e-mail
/// addresses.
pub fn check(policy: AccessControlPolicy) -> S3Result<AccessControlPolicy> {
    for grant in policy.grants.iter().flatten() {
        let permission = grant.permission.as_ref().map(|p| p.as_str()).unwrap_or("");
        if ![
            Permission::FULL_CONTROL,
            Permission::READ,
            Permission::READ_ACP,
            Permission::WRITE,
            Permission::WRITE_ACP,
        ]
        .contains(&permission)
        {
            return Err(s3_error!(
                MalformedACLError,
                "{permission:?} is not a permission"
            ));
        }
        let grantee = grant
            .grantee
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedACLError, "a grant without a grantee"))?;
        match grantee.type_.as_str() {
            Type::CANONICAL_USER if grantee.id.is_some() => {}
            Type::GROUP => match grantee.uri.as_deref() {
                Some(ALL_USERS | AUTHENTICATED_USERS) => {}
                other => return Err(s3_error!(InvalidArgument, "unknown group {other:?}")),
            },
            Type::AMAZON_CUSTOMER_BY_EMAIL => {
                return Err(s3_error!(
                    UnresolvableGrantByEmailAddress,
                    "users are named by ID: the gateway knows no e-mail addresses"
                ))
            }
            other => {
                return Err(s3_error!(
                    MalformedACLError,
                    "unknown grantee type {other:?}"
                ))
            }
        }
    }
    Ok(policy)
}

/// Refuses what the gateway does not honour: a grant that would let anonymous requests
/// write (`WRITE`, `WRITE_ACP` or `FULL_CONTROL` to AllUsers).
pub fn check_honoured(policy: &AccessControlPolicy) -> S3Result<()> {
    let writes = [
        Permission::WRITE,
        Permission::WRITE_ACP,
        Permission::FULL_CONTROL,
    ];
    if let Some(permission) = writes.into_iter().find(|p| grants_anyone(policy, p)) {
        return Err(s3_error!(
            NotImplemented,
            "{permission} for AllUsers is not supported: the gateway takes no anonymous writes"
        ));
    }
    Ok(())
}

/// Whether `policy` grants `permission` (or full control) to everyone.
pub fn grants_anyone(policy: &AccessControlPolicy, permission: &str) -> bool {
    policy.grants.iter().flatten().any(|g| {
        g.grantee.as_ref().and_then(|e| e.uri.as_deref()) == Some(ALL_USERS)
            && g.permission
                .as_ref()
                .is_some_and(|p| p.as_str() == permission || p.as_str() == Permission::FULL_CONTROL)
    })
}

/// Whether `policy` lets in anyone beyond named users (S3's "public": AllUsers or
/// AuthenticatedUsers).
pub fn is_public(policy: &AccessControlPolicy) -> bool {
    policy.grants.iter().flatten().any(|g| {
        matches!(
            g.grantee.as_ref().and_then(|e| e.uri.as_deref()),
            Some(ALL_USERS | AUTHENTICATED_USERS)
        )
    })
}

/// Whether `policy` grants anything but full control to its owner (what S3 refuses when a
/// bucket's ownership controls disable ACLs).
pub fn is_owner_only(policy: &AccessControlPolicy) -> bool {
    let owner = policy.owner.as_ref().and_then(|o| o.id.as_deref());
    policy.grants.iter().flatten().all(|g| {
        g.grantee.as_ref().and_then(|e| e.id.as_deref()) == owner
            && g.permission.as_ref().map(|p| p.as_str()) == Some(Permission::FULL_CONTROL)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            display_name: format!("{id} name"),
        }
    }

    #[test]
    fn canned_acls_grant_what_their_names_say() {
        let (me, them) = (user("me"), user("them"));
        let private = canned("private", &me, &me).unwrap();
        assert_eq!(private.grants.as_ref().unwrap().len(), 1);
        assert!(is_owner_only(&private) && !is_public(&private));
        let public = canned("public-read", &me, &me).unwrap();
        assert!(grants_anyone(&public, Permission::READ));
        assert!(!grants_anyone(&public, Permission::READ_ACP));
        assert!(is_public(&public) && !is_owner_only(&public));
        let authenticated = canned("authenticated-read", &me, &me).unwrap();
        assert!(is_public(&authenticated) && !grants_anyone(&authenticated, Permission::READ));
        let shared = canned("bucket-owner-full-control", &me, &them).unwrap();
        assert_eq!(shared.grants.as_ref().unwrap().len(), 2);
        assert_eq!(canned("bucket-owner-read", &me, &me).unwrap(), private);
        assert!(check_honoured(&public).is_ok());
        let open = canned("public-read-write", &me, &me).unwrap();
        assert_eq!(
            check_honoured(&open).unwrap_err().code(),
            &s3s::S3ErrorCode::NotImplemented
        );
        // The owner's grant comes last, as S3 lists it.
        let last = public.grants.as_ref().unwrap().last().unwrap();
        assert_eq!(last.grantee.as_ref().unwrap().id.as_deref(), Some("me"));
        assert!(canned("everyone", &me, &me).is_err());
    }

    #[test]
    fn grant_headers_name_ids_groups_and_addresses() {
        let grants = header_grants(
            Permission::READ,
            &format!("id=\"abc\", uri=\"{ALL_USERS}\",emailAddress=\"a@b.c\""),
        )
        .unwrap();
        assert_eq!(grants.len(), 3);
        assert_eq!(
            grants[0].grantee.as_ref().unwrap().id.as_deref(),
            Some("abc")
        );
        assert_eq!(
            grants[1].grantee.as_ref().unwrap().uri.as_deref(),
            Some(ALL_USERS)
        );
        assert!(header_grants(Permission::READ, "nonsense").is_err());
        let policy = |grants| AccessControlPolicy {
            owner: Some(user("me").owner()),
            grants: Some(grants),
        };
        // An address cannot be resolved; anonymous writes are not taken.
        assert_eq!(
            check(policy(grants)).unwrap_err().code(),
            &s3s::S3ErrorCode::UnresolvableGrantByEmailAddress
        );
        let write = header_grants(Permission::WRITE, &format!("uri=\"{ALL_USERS}\"")).unwrap();
        assert_eq!(
            check_honoured(&check(policy(write)).unwrap())
                .unwrap_err()
                .code(),
            &s3s::S3ErrorCode::NotImplemented
        );
        let group = header_grants(Permission::READ, "uri=\"http://example.com/g\"").unwrap();
        assert!(check(policy(group)).is_err());
    }
}
