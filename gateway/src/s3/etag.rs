//! ETags and the conditional headers that compare them.
//!
//! An object's ETag is what S3 clients check: the MD5 of its bytes when it was put in one
//! piece (computed by [`Md5Reader`] as the body streams past, never by reading it back), and
//! `md5(the parts' MD5s)-N` after a multipart upload of N parts. A file the CLI wrote has none
//! stored; it gets one from its content hash with a `-1` suffix, so clients that compare a
//! plain ETag with a local MD5 (rclone, s3cmd) see that it is not one.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::{header, HeaderMap, HeaderValue};
use md5::{Digest, Md5};
use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{s3_error, S3Error};
use tokio::io::{AsyncRead, ReadBuf};

use bigfs_proto::lock::lock;
use bigfs_proto::pb::FileInfo;

/// An [`AsyncRead`] that feeds every byte read through it to an MD5, shared with the caller
/// that reads the digest once the reader is done.
pub struct Md5Reader<R> {
    inner: R,
    md5: Arc<Mutex<Md5>>,
}

impl<R> Md5Reader<R> {
    pub fn new(inner: R) -> (Self, Arc<Mutex<Md5>>) {
        let md5 = Arc::new(Mutex::new(Md5::new()));
        (
            Self {
                inner,
                md5: md5.clone(),
            },
            md5,
        )
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Md5Reader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            lock(&self.md5).update(&buf.filled()[before..]);
        }
        polled
    }
}

/// The digest of everything that went through an [`Md5Reader`].
pub fn digest(md5: &Mutex<Md5>) -> [u8; 16] {
    lock(md5).clone().finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ETag of an object made of parts whose MD5s are `parts`, in order.
pub fn multipart(parts: &[[u8; 16]]) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part);
    }
    format!("{}-{}", hex(&md5.finalize()), parts.len())
}

/// An ETag stored by [`multipart`] or as a hex MD5, back to the MD5 bytes of a part.
pub fn part_md5(etag: &str) -> Option<[u8; 16]> {
    if etag.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(etag.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The ETag of a file: the one stored with it, or one derived from its content hash.
pub fn of_file(info: &FileInfo) -> String {
    let stored = info.object.as_ref().map_or("", |o| o.etag.as_str());
    or_derived(stored, &info.content_hash)
}

/// `stored`, or where it is empty (the CLI wrote the file) one derived from its content hash.
pub fn or_derived(stored: &str, content_hash: &str) -> String {
    if stored.is_empty() {
        of_content_hash(content_hash)
    } else {
        stored.to_string()
    }
}

/// The ETag of a file the CLI wrote, from its content hash.
pub fn of_content_hash(content_hash: &str) -> String {
    format!("{}-1", content_hash.get(..32).unwrap_or(content_hash))
}

/// The ETag of an empty directory marker: the MD5 of no bytes.
pub const EMPTY: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The conditional headers of a GET or HEAD (or a copy's `x-amz-copy-source-if-*`).
#[derive(Default)]
pub struct Conditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

/// Whether an object with `etag`, last modified at `mtime_ms`, meets `conditions` (RFC 9110
/// section 13.2.2, as S3 applies it): a failed If-Match or If-Unmodified-Since is 412, a
/// failed If-None-Match or If-Modified-Since 304. If-Unmodified-Since is ignored when If-Match
/// is present, If-Modified-Since when If-None-Match is.
pub fn check(conditions: &Conditions, etag: &str, mtime_ms: u64) -> Result<(), S3Error> {
    let seconds = (mtime_ms / 1000) as i64;
    if let Some(condition) = &conditions.if_match {
        if !matches(condition, etag) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match: the ETag is {etag}"
            ));
        }
    } else if let Some(since) = &conditions.if_unmodified_since {
        if seconds > unix_seconds(since) {
            return Err(s3_error!(
                PreconditionFailed,
                "modified since If-Unmodified-Since"
            ));
        }
    }
    if let Some(condition) = &conditions.if_none_match {
        if matches(condition, etag) {
            return Err(not_modified(etag));
        }
    } else if let Some(since) = &conditions.if_modified_since {
        if seconds <= unix_seconds(since) {
            return Err(not_modified(etag));
        }
    }
    Ok(())
}

/// 304 Not Modified, with the ETag the client's cached copy is to be compared with (RFC 9110
/// section 15.4.5: a 304 carries the ETag a 200 would have).
fn not_modified(etag: &str) -> S3Error {
    let mut error = S3Error::new(s3s::S3ErrorCode::NotModified);
    if let Ok(value) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        error.set_headers(HeaderMap::from_iter([(header::ETAG, value)]));
    }
    error
}

pub(super) fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(wanted) => wanted.value() == etag,
    }
}

fn unix_seconds(timestamp: &Timestamp) -> i64 {
    time::OffsetDateTime::from(timestamp.clone()).unix_timestamp()
}

/// An ETag as the S3 types carry it.
pub fn strong(etag: String) -> ETag {
    ETag::Strong(etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_md5_is_taken_as_the_bytes_pass() {
        let (mut reader, md5) = Md5Reader::new(&b"hello world"[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(hex(&digest(&md5)), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(hex(&digest(&Mutex::new(Md5::new()))), EMPTY);
    }

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_part_md5s_and_the_count() {
        let a = part_md5("5eb63bbbe01eeed093cb22bb8f5acdc3").unwrap();
        let b = part_md5(EMPTY).unwrap();
        let mut md5 = Md5::new();
        md5.update(a);
        md5.update(b);
        assert_eq!(multipart(&[a, b]), format!("{}-2", hex(&md5.finalize())));
        assert_eq!(part_md5("xyz"), None);
        assert_eq!(part_md5(&"g".repeat(32)), None);
    }

    fn at(seconds: u64) -> Timestamp {
        Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
    }

    #[test]
    fn a_304_carries_the_etag() {
        let conditions = Conditions {
            if_none_match: Some(ETagCondition::Any),
            ..Default::default()
        };
        let error = check(&conditions, "abc", 0).unwrap_err();
        let etag = error.headers().and_then(|h| h.get(header::ETAG));
        assert_eq!(etag.map(|v| v.to_str().unwrap()), Some("\"abc\""));
    }

    #[test]
    fn conditions_answer_412_or_304_as_s3_does() {
        let etag = "abc";
        let mtime_ms = 100_500;
        let code = |c: &Conditions| check(c, etag, mtime_ms).map_err(|e| e.code().clone());
        let tag = |v: &str| Some(ETagCondition::ETag(ETag::Strong(v.into())));
        assert!(code(&Conditions::default()).is_ok());
        let failed = Err(s3s::S3ErrorCode::PreconditionFailed);
        let not_modified = Err(s3s::S3ErrorCode::NotModified);
        assert!(code(&Conditions {
            if_match: tag("abc"),
            ..Default::default()
        })
        .is_ok());
        assert_eq!(
            code(&Conditions {
                if_match: tag("x"),
                ..Default::default()
            }),
            failed
        );
        assert_eq!(
            code(&Conditions {
                if_none_match: tag("abc"),
                ..Default::default()
            }),
            not_modified
        );
        assert_eq!(
            code(&Conditions {
                if_none_match: Some(ETagCondition::Any),
                ..Default::default()
            }),
            not_modified
        );
        assert_eq!(
            code(&Conditions {
                if_modified_since: Some(at(100)),
                ..Default::default()
            }),
            not_modified
        );
        assert!(code(&Conditions {
            if_modified_since: Some(at(99)),
            ..Default::default()
        })
        .is_ok());
        assert_eq!(
            code(&Conditions {
                if_unmodified_since: Some(at(99)),
                ..Default::default()
            }),
            failed
        );
        // If-Match wins over If-Unmodified-Since.
        let both = Conditions {
            if_match: tag("abc"),
            if_unmodified_since: Some(at(99)),
            ..Default::default()
        };
        assert!(code(&both).is_ok());
    }
}
