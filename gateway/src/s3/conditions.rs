//! S3's conditional writes and deletes, made atomic: the conditions (`If-Match`,
//! `If-None-Match`, and on a DELETE `x-amz-if-match-last-modified-time` and
//! `x-amz-if-match-size`) are checked against the object as it is now, and the change is then
//! asked only over that object's version, which the metadata server checks in the transaction
//! that makes it. A writer that loses a race to another therefore fails with 412 and leaves
//! the other's object, instead of replacing an object its conditions were never checked on.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};
use tonic::Code;

use bigfs_client::client::MetaError;
use bigfs_proto::FsPath;

use super::errors::{self, s3};
use super::etag;
use super::Gateway;

/// What a write may replace: the metadata server checks it as it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// Whatever is there, or nothing.
    Any,
    /// Nothing: the key must be free (`If-None-Match: *`, or one with an ETag where no
    /// object was).
    Nothing,
    /// Only the object at this version: the one the conditions held for.
    Version(u64),
}

impl Replace {
    /// Whether an existing file may be replaced (a version implies it).
    pub fn overwrite(self) -> bool {
        self != Replace::Nothing
    }

    pub fn if_version(self) -> Option<u64> {
        match self {
            Replace::Version(version) => Some(version),
            Replace::Any | Replace::Nothing => None,
        }
    }

    /// The S3 error for a write refused by the metadata server because of this condition
    /// (the object changed or appeared since it was checked, or went), if that is why.
    pub fn refusal(self, error: &anyhow::Error, path: &FsPath) -> Option<S3Error> {
        let code = errors::code(error)?;
        match self {
            Replace::Nothing if code == Code::AlreadyExists => Some(s3_error!(
                PreconditionFailed,
                "{path} exists (If-None-Match)"
            )),
            Replace::Version(_) if MetaError::is_version_mismatch(error) => Some(s3_error!(
                PreconditionFailed,
                "{path} changed since its conditions were checked"
            )),
            Replace::Version(_) if code == Code::NotFound => Some(s3_error!(
                NoSuchKey,
                "{path} was removed since its conditions were checked"
            )),
            _ => None,
        }
    }
}

/// The object a write's conditions are checked against.
#[derive(Clone, Debug)]
pub struct Current {
    pub etag: String,
    pub version: u64,
    pub mtime_ms: u64,
    pub size: u64,
}

/// Whether `If-Match`/`If-None-Match` need the object as it is now: `If-None-Match: *` alone
/// is checked by the write itself.
pub fn needs_current(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> bool {
    if_match.is_some() || if_none_match.is_some_and(|c| !c.is_any())
}

/// What a PUT or a CompleteMultipartUpload with these conditions may replace, given the object
/// there now (`None`: no object, or it was not looked up because [`needs_current`] said so).
/// S3's answers: `If-Match` with no object is 404 NoSuchKey, one that does not match 412, as is
/// an `If-None-Match` that matches.
pub fn write(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    current: Option<&Current>,
) -> S3Result<Replace> {
    if let Some(condition) = if_match {
        let Some(current) = current else {
            return Err(s3_error!(NoSuchKey, "If-Match: there is no such object"));
        };
        if !etag::matches(condition, &current.etag) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match: the ETag is {}",
                current.etag
            ));
        }
    }
    if let (Some(condition), Some(current)) = (if_none_match, current) {
        if etag::matches(condition, &current.etag) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-None-Match: the ETag is {}",
                current.etag
            ));
        }
    }
    Ok(
        match (current, if_match.is_some() || if_none_match.is_some()) {
            (_, false) => Replace::Any,
            (Some(current), true) => Replace::Version(current.version),
            (None, true) => Replace::Nothing,
        },
    )
}

/// The conditions of a DeleteObject, or of one object of a DeleteObjects.
#[derive(Clone, Debug, Default)]
pub struct DeleteConditions {
    pub if_match: Option<ETagCondition>,
    pub last_modified: Option<Timestamp>,
    pub size: Option<i64>,
}

impl DeleteConditions {
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.last_modified.is_none() && self.size.is_none()
    }

    /// The version `current` may be removed at, or 412 where a condition fails. Times compare
    /// in whole seconds, as Last-Modified carries them.
    pub fn check(&self, current: &Current) -> S3Result<u64> {
        if let Some(condition) = &self.if_match {
            if !etag::matches(condition, &current.etag) {
                return Err(s3_error!(
                    PreconditionFailed,
                    "If-Match: the ETag is {}",
                    current.etag
                ));
            }
        }
        if let Some(time) = &self.last_modified {
            let seconds = time::OffsetDateTime::from(time.clone()).unix_timestamp();
            if seconds != (current.mtime_ms / 1000) as i64 {
                return Err(s3_error!(
                    PreconditionFailed,
                    "x-amz-if-match-last-modified-time: the object was modified at another time"
                ));
            }
        }
        if let Some(size) = self.size {
            if size != current.size as i64 {
                return Err(s3_error!(
                    PreconditionFailed,
                    "x-amz-if-match-size: the object is {} bytes",
                    current.size
                ));
            }
        }
        Ok(current.version)
    }
}

impl Gateway {
    /// The file at `path` now, for conditions to be checked against; `None` where there is
    /// none (or a directory: no object either).
    pub(super) async fn current(&self, path: &FsPath) -> S3Result<Option<Current>> {
        match self.client.stat(path).await {
            Ok(file) => {
                let info = file.file.unwrap_or_default();
                Ok(Some(Current {
                    etag: etag::of_file(&info),
                    version: info.version,
                    mtime_ms: info.mtime_ms,
                    size: info.size,
                }))
            }
            Err(e)
                if matches!(
                    errors::code(&e),
                    Some(Code::NotFound | Code::FailedPrecondition)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(s3(e, S3ErrorCode::NoSuchKey)),
        }
    }

    /// What a write to `path` with these conditions may replace ([`write`]), looking the
    /// object up only when the conditions need it.
    pub(super) async fn write_condition(
        &self,
        path: &FsPath,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<Replace> {
        let current = if needs_current(if_match, if_none_match) {
            self.current(path).await?
        } else {
            None
        };
        write(if_match, if_none_match, current.as_ref())
    }

    /// Removes the file at `path` if `conditions` hold for it, in one step with the check; a
    /// missing file is no error (S3 deletes are idempotent, conditional ones too).
    pub(super) async fn delete_if(
        &self,
        path: &FsPath,
        conditions: &DeleteConditions,
    ) -> S3Result<()> {
        let Some(current) = self.current(path).await? else {
            return Ok(());
        };
        let version = conditions.check(&current)?;
        match self.client.remove_version(path, version).await {
            Ok(()) => Ok(()),
            Err(e) if errors::code(&e) == Some(Code::NotFound) => Ok(()),
            Err(e) => Err(Replace::Version(version)
                .refusal(&e, path)
                .unwrap_or_else(|| s3(e, S3ErrorCode::NoSuchKey))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn tag(etag: &str) -> ETagCondition {
        ETagCondition::ETag(etag::strong(etag.into()))
    }

    fn object(etag: &str, version: u64) -> Current {
        Current {
            etag: etag.into(),
            version,
            mtime_ms: 5_500,
            size: 3,
        }
    }

    fn code(result: S3Result<impl std::fmt::Debug>) -> S3ErrorCode {
        result.unwrap_err().code().clone()
    }

    #[test]
    fn a_put_with_if_match_replaces_only_the_version_it_matched() {
        let any = ETagCondition::Any;
        let now = object("e1", 7);
        assert_eq!(
            write(Some(&tag("e1")), None, Some(&now)).unwrap(),
            Replace::Version(7)
        );
        assert_eq!(
            write(Some(&any), None, Some(&now)).unwrap(),
            Replace::Version(7)
        );
        assert_eq!(
            code(write(Some(&tag("e2")), None, Some(&now))),
            S3ErrorCode::PreconditionFailed
        );
        assert_eq!(code(write(Some(&any), None, None)), S3ErrorCode::NoSuchKey);
        assert_eq!(
            code(write(Some(&tag("e1")), None, None)),
            S3ErrorCode::NoSuchKey
        );
    }

    #[test]
    fn a_put_with_if_none_match_creates_or_replaces_another_version() {
        let now = object("e1", 7);
        assert!(!needs_current(None, Some(&ETagCondition::Any)));
        assert!(needs_current(None, Some(&tag("e1"))));
        assert_eq!(
            write(None, Some(&ETagCondition::Any), None).unwrap(),
            Replace::Nothing
        );
        assert_eq!(
            code(write(None, Some(&tag("e1")), Some(&now))),
            S3ErrorCode::PreconditionFailed
        );
        assert_eq!(
            write(None, Some(&tag("other")), Some(&now)).unwrap(),
            Replace::Version(7)
        );
        assert_eq!(
            write(None, Some(&tag("e1")), None).unwrap(),
            Replace::Nothing
        );
        assert_eq!(write(None, None, None).unwrap(), Replace::Any);
    }

    #[test]
    fn a_delete_checks_etag_time_and_size() {
        let now = object("e1", 4);
        let at = |s: u64| Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(DeleteConditions::default().check(&now).unwrap(), 4);
        let matching = DeleteConditions {
            if_match: Some(tag("e1")),
            last_modified: Some(at(5)),
            size: Some(3),
        };
        assert_eq!(matching.check(&now).unwrap(), 4);
        for failing in [
            DeleteConditions {
                if_match: Some(tag("e2")),
                ..DeleteConditions::default()
            },
            DeleteConditions {
                last_modified: Some(at(6)),
                ..DeleteConditions::default()
            },
            DeleteConditions {
                size: Some(4),
                ..DeleteConditions::default()
            },
        ] {
            assert_eq!(code(failing.check(&now)), S3ErrorCode::PreconditionFailed);
        }
    }
}
