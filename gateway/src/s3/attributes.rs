//! An object's parts and attributes: a GET or HEAD of one part (`partNumber`), located by the
//! part sizes a CompleteMultipartUpload keeps with the object, and GetObjectAttributes (ETag,
//! size, storage class, the parts page by page).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use s3s::dto::*;
use s3s::{s3_error, S3Result};

use bigfs_proto::pb::ObjectMeta;

use super::encryption::Asks;
use super::Gateway;

/// Parts listed by one GetObjectAttributes at most, as S3 pages them.
const MAX_PARTS: i32 = 1000;

/// Where one part of an object lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartRange {
    pub start: u64,
    pub end: u64,
    /// The object's parts, for PartsCount: only a multipart object has any to count.
    pub count: Option<i32>,
}

/// How many parts the object with `etag` was made of (`-N` after a multipart ETag), 1 for
/// one put whole.
fn parts_in_etag(etag: &str) -> i32 {
    etag.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// Part `part` (`partNumber`) of an object of `size` bytes with `etag`: an object put in one
/// piece is its own part 1, whole, as S3 has it; a multipart one's parts are where its kept
/// part sizes put them. A part beyond the object's is `InvalidPart`; one of a multipart object
/// completed before part sizes were kept cannot be found (501: use a Range).
pub fn part_range(meta: &ObjectMeta, etag: &str, size: u64, part: i32) -> S3Result<PartRange> {
    let multipart = etag.contains('-');
    let parts = if meta.part_sizes.is_empty() {
        parts_in_etag(etag)
    } else {
        meta.part_sizes.len() as i32
    };
    if part < 1 || part > parts {
        return Err(s3_error!(
            InvalidPart,
            "part {part} of an object of {parts} part(s)"
        ));
    }
    let count = multipart.then_some(parts);
    if meta.part_sizes.is_empty() {
        if parts > 1 {
            return Err(s3_error!(
                NotImplemented,
                "this object's part sizes were not kept (it was completed by an older \
                 gateway): use a Range"
            ));
        }
        return Ok(PartRange {
            start: 0,
            end: size,
            count,
        });
    }
    let index = (part - 1) as usize;
    let start: u64 = meta.part_sizes[..index].iter().sum();
    Ok(PartRange {
        start,
        end: start + meta.part_sizes[index],
        count,
    })
}

/// The ObjectParts of GetObjectAttributes: a page of a multipart object's parts after
/// `marker`; `None` for an object put whole, which S3 lists no parts for.
pub fn object_parts(
    meta: &ObjectMeta,
    max_parts: Option<i32>,
    marker: Option<i32>,
) -> Option<GetObjectAttributesParts> {
    if meta.part_sizes.is_empty() {
        return None;
    }
    let max = max_parts.map_or(MAX_PARTS, |m| m.clamp(0, MAX_PARTS));
    let after = marker.unwrap_or(0).max(0);
    let total = meta.part_sizes.len() as i32;
    let parts: Vec<ObjectPart> = meta
        .part_sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| (i as i32 + 1, size))
        .filter(|&(number, _)| number > after)
        .take(max as usize)
        .map(|(number, size)| ObjectPart {
            part_number: Some(number),
            size: Some(size as i64),
            ..ObjectPart::default()
        })
        .collect();
    let last = parts.last().and_then(|p| p.part_number);
    let truncated = last.is_some_and(|last| last < total);
    Some(GetObjectAttributesParts {
        is_truncated: Some(truncated),
        max_parts: Some(max),
        next_part_number_marker: last.filter(|_| truncated),
        part_number_marker: Some(after),
        parts: Some(parts),
        total_parts_count: Some(total),
    })
}

/// The largest GetObjectAttributes answer rewritten by [`unquote_etag`]: 10,000 parts of
/// about 100 bytes of XML each.
const MAX_ATTRIBUTES_XML: usize = 4 << 20;

/// S3 sends GetObjectAttributes' ETag without the quotes it puts around every other ETag, and
/// SDKs hand it on as is; s3s 0.14 writes every ETag element quoted. This takes the quotes off
/// that one answer's (the `?attributes` GET), so a client compares it with its own ETags as
/// it would with S3's.
pub async fn unquote_etag(request: Request, next: Next) -> Response {
    let attributes = request.method() == Method::GET
        && request.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|p| p.split('=').next() == Some("attributes"))
        });
    let response = next.run(request).await;
    if !attributes || response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ATTRIBUTES_XML).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let xml = String::from_utf8_lossy(&bytes)
        .replace("<ETag>\"", "<ETag>")
        .replace("\"</ETag>", "</ETag>");
    parts
        .headers
        .insert(header::CONTENT_LENGTH, xml.len().into());
    Response::from_parts(parts, Body::from(xml))
}

impl Gateway {
    pub async fn get_object_attributes(
        &self,
        input: GetObjectAttributesInput,
    ) -> S3Result<GetObjectAttributesOutput> {
        let customer = input.customer_key()?;
        let file = self
            .lookup(&input.bucket, &input.key)
            .await?
            .ok_or_else(|| s3_error!(NoSuchKey, "a directory marker has no attributes"))?;
        // An SSE-C object's attributes need its key, as its bytes do.
        self.data_key(super::encryption::record_of(&file), customer.as_ref())?;
        let info = file.file.unwrap_or_default();
        let etag = super::etag::of_file(&info);
        let meta = info.object.unwrap_or_default();
        // One header may list them all, comma-separated, as the SDKs send it.
        let asked = |name: &str| {
            input
                .object_attributes
                .iter()
                .flat_map(|a| a.as_str().split(','))
                .any(|a| a.trim() == name)
        };
        Ok(GetObjectAttributesOutput {
            e_tag: asked(ObjectAttributes::ETAG).then(|| super::etag::strong(etag)),
            object_size: asked(ObjectAttributes::OBJECT_SIZE).then_some(info.size as i64),
            storage_class: asked(ObjectAttributes::STORAGE_CLASS)
                .then(|| StorageClass::from_static(StorageClass::STANDARD)),
            object_parts: if asked(ObjectAttributes::OBJECT_PARTS) {
                object_parts(&meta, input.max_parts, input.part_number_marker)
            } else {
                None
            },
            last_modified: Some(super::objects::timestamp(info.mtime_ms)),
            ..GetObjectAttributesOutput::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(sizes: &[u64]) -> ObjectMeta {
        ObjectMeta {
            part_sizes: sizes.to_vec(),
            ..ObjectMeta::default()
        }
    }

    fn code(result: S3Result<PartRange>) -> s3s::S3ErrorCode {
        result.unwrap_err().code().clone()
    }

    #[test]
    fn a_single_part_object_is_its_own_part_one() {
        let none = ObjectMeta::default();
        let whole = PartRange {
            start: 0,
            end: 9,
            count: None,
        };
        assert_eq!(part_range(&none, "abc", 9, 1).unwrap(), whole);
        assert_eq!(part_range(&none, "abc-1", 9, 1).unwrap().count, Some(1));
        assert_eq!(
            code(part_range(&none, "abc", 9, 2)),
            s3s::S3ErrorCode::InvalidPart
        );
        assert_eq!(
            code(part_range(&none, "abc", 9, 0)),
            s3s::S3ErrorCode::InvalidPart
        );
        // Completed before part sizes were kept: the parts cannot be found.
        assert_eq!(
            code(part_range(&none, "abc-3", 9, 2)),
            s3s::S3ErrorCode::NotImplemented
        );
    }

    #[test]
    fn a_multipart_objects_parts_lie_where_their_sizes_put_them() {
        let meta = sizes(&[5, 5, 2]);
        let part = |n| part_range(&meta, "abc-3", 12, n);
        assert_eq!(
            part(2).unwrap(),
            PartRange {
                start: 5,
                end: 10,
                count: Some(3)
            }
        );
        assert_eq!((part(3).unwrap().start, part(3).unwrap().end), (10, 12));
        assert_eq!(code(part(4)), s3s::S3ErrorCode::InvalidPart);
    }

    #[test]
    fn parts_are_listed_a_page_at_a_time() {
        assert!(object_parts(&ObjectMeta::default(), None, None).is_none());
        let meta = sizes(&[5; 6]);
        let page = object_parts(&meta, Some(1), Some(3)).unwrap();
        let numbers: Vec<_> = page
            .parts
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.part_number)
            .collect();
        assert_eq!(numbers, [Some(4)]);
        assert_eq!(
            (
                page.is_truncated,
                page.next_part_number_marker,
                page.total_parts_count
            ),
            (Some(true), Some(4), Some(6))
        );
        let rest = object_parts(&meta, Some(10), Some(4)).unwrap();
        assert_eq!(rest.parts.unwrap().len(), 2);
        assert_eq!(
            (rest.is_truncated, rest.next_part_number_marker),
            (Some(false), None)
        );
    }
}
