//! Multipart uploads. An upload is a hidden directory, `/.bigfs-multipart/<upload id>/`, that
//! no bucket listing shows: an `upload` file of no bytes keeps the target bucket and key, the
//! Content-Type and the `x-amz-meta-*` headers, and each part is a file `part-NNNNN` stored
//! like any object (its ETag the MD5 of its bytes). Complete is one metadata transaction (the
//! ConcatFiles RPC): the object's chunk list is the parts' chunk lists in order and the parts
//! go, so no byte is copied and the object appears whole or not at all. Abort removes the
//! directory; so does [`Gateway::collect_abandoned`] for uploads older than the expiry.

use std::collections::HashMap;
use std::time::Duration;

use s3s::dto::*;
use s3s::{s3_error, S3ErrorCode, S3Result};
use tonic::Code;

use bigfs_proto::pb::{GetFileResponse, ObjectEncryption, ObjectMeta};
use bigfs_proto::FsPath;

use super::conditions::Replace;
use super::encryption::{self, Asks, AsksToCopy, AsksToWrite, Echoed};
use super::errors::{self, s3};
use super::etag;
use super::headers::standard_headers;
use super::names::object_path;
use super::objects::{copy_source, timestamp, NewObject};
use super::tagging;
use super::Gateway;

/// Where uploads in progress live.
pub const UPLOADS_DIR: &str = "/.bigfs-multipart";

/// The file that describes an upload.
const UPLOAD_FILE: &str = "upload";

/// S3's bounds: parts are numbered 1 to 10,000, and each but the last holds at least 5 MiB.
const MAX_PART_NUMBER: i32 = 10_000;
const MIN_PART_SIZE: u64 = 5 << 20;

/// Metadata keys of the upload file that are not the object's own `x-amz-meta-*`.
const BUCKET_KEY: &str = "bigfs-bucket";
const OBJECT_KEY: &str = "bigfs-key";
const USER_PREFIX: &str = "meta-";

/// An upload in progress, as its `upload` file describes it.
struct Upload {
    dir: FsPath,
    bucket: String,
    key: String,
    content_type: String,
    metadata: HashMap<String, String>,
    /// The rest the object will keep (standard headers, tags).
    extra: ObjectMeta,
    initiated_ms: u64,
    /// How its parts are encrypted (each part a segment under its own IV); `None` for plain.
    encryption: Option<ObjectEncryption>,
}

fn upload_dir(id: &str) -> S3Result<FsPath> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(s3_error!(NoSuchUpload, "no upload {id:?}"));
    }
    FsPath::parse(&format!("{UPLOADS_DIR}/{id}")).map_err(|_| s3_error!(NoSuchUpload))
}

fn part_name(number: i32) -> String {
    format!("part-{number:05}")
}

fn part_number(name: &str) -> Option<i32> {
    name.strip_prefix("part-")?.parse().ok()
}

fn check_part_number(number: i32) -> S3Result<()> {
    if !(1..=MAX_PART_NUMBER).contains(&number) {
        return Err(s3_error!(
            InvalidArgument,
            "part numbers go from 1 to {MAX_PART_NUMBER}, not {number}"
        ));
    }
    Ok(())
}

impl Gateway {
    pub async fn create_multipart_upload(
        &self,
        input: CreateMultipartUploadInput,
    ) -> S3Result<CreateMultipartUploadOutput> {
        let wanted = input.wanted()?;
        let wanted = self.with_bucket_default(&input.bucket, wanted).await?;
        let sealing = self.seal(&wanted)?;
        let echo = encryption::echo_sealing(sealing.as_ref());
        self.check_bucket(&input.bucket).await?;
        object_path(&input.bucket, &input.key)?;
        let id = format!("{:032x}", rand::random::<u128>());
        let dir = upload_dir(&id)?;
        let mut metadata: HashMap<String, String> = input
            .metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (format!("{USER_PREFIX}{k}"), v))
            .collect();
        metadata.insert(BUCKET_KEY.into(), input.bucket.clone());
        metadata.insert(OBJECT_KEY.into(), input.key.clone());
        // What the object will keep besides its Content-Type and `x-amz-meta-*`, kept with
        // the upload until its Complete.
        let tags = tagging::of_header(input.tagging.as_deref())?;
        let extra = standard_headers!(input).with_tags(tags);
        // The upload's record keeps the key (wrapped, or the customer key's check) its parts
        // are encrypted under.
        let info = NewObject {
            content_type: input.content_type,
            metadata: Some(metadata),
            content_md5: None,
            extra,
            sealing,
        };
        let path = join(&dir, UPLOAD_FILE)?;
        self.store(&path, None, Some(0), info, Replace::Nothing)
            .await?;
        Ok(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..CreateMultipartUploadOutput::default()
        }
        .echoed(echo))
    }

    /// The upload `id`, which must be one for `bucket` and `key`.
    async fn upload(&self, id: &str, bucket: &str, key: &str) -> S3Result<Upload> {
        let dir = upload_dir(id)?;
        let file = self
            .client
            .stat(&join(&dir, UPLOAD_FILE)?)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchUpload))?;
        let upload = Upload::of(dir, &file);
        if upload.bucket != bucket || upload.key != key {
            return Err(s3_error!(NoSuchUpload, "upload {id} is for another key"));
        }
        Ok(upload)
    }

    pub async fn upload_part(&self, mut input: UploadPartInput) -> S3Result<UploadPartOutput> {
        let checked = async {
            let customer = input.customer_key()?;
            check_part_number(input.part_number)?;
            let upload = self
                .upload(&input.upload_id, &input.bucket, &input.key)
                .await?;
            let sealing = self.reseal(upload.encryption.as_ref(), customer)?;
            Ok((upload, sealing))
        };
        let (upload, sealing) = match checked.await {
            Ok(upload) => upload,
            Err(refusal) => {
                super::objects::drain(input.body.take()).await;
                return Err(refusal);
            }
        };
        let path = join(&upload.dir, &part_name(input.part_number))?;
        let echo = encryption::echo_sealing(sealing.as_ref());
        let part = NewObject {
            content_type: None,
            metadata: None,
            content_md5: input.content_md5,
            extra: ObjectMeta::default(),
            sealing,
        };
        let size = input.content_length.and_then(|l| u64::try_from(l).ok());
        let md5 = self
            .store(&path, input.body, size, part, Replace::Any)
            .await?;
        Ok(UploadPartOutput {
            e_tag: Some(etag::strong(etag::hex(&md5))),
            ..UploadPartOutput::default()
        }
        .echoed(echo))
    }

    /// A part made of a byte range of another object. The bytes pass through the gateway (a
    /// range seldom falls on chunk boundaries), streamed and verified like a GET.
    pub async fn upload_part_copy(
        &self,
        input: UploadPartCopyInput,
    ) -> S3Result<UploadPartCopyOutput> {
        let source_customer = input.source_customer_key()?;
        let customer = input.customer_key()?;
        check_part_number(input.part_number)?;
        let upload = self
            .upload(&input.upload_id, &input.bucket, &input.key)
            .await?;
        let sealing = self.reseal(upload.encryption.as_ref(), customer)?;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let src = object_path(&src_bucket, &src_key)?.path;
        let file = self
            .client
            .stat(&src)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchKey))?;
        let source_key = self.data_key(encryption::record_of(&file), source_customer.as_ref())?;
        let size = file.file.as_ref().map_or(0, |f| f.size);
        let (start, end) = match &input.copy_source_range {
            Some(range) => copy_range(range, size)?,
            None => (0, size),
        };
        let body = self.plain_stream(src, file, source_key, start, end);
        let blob = StreamingBlob::wrap(sync_wrapper::SyncStream::new(body));
        let path = join(&upload.dir, &part_name(input.part_number))?;
        let echo = encryption::echo_sealing(sealing.as_ref());
        let part = NewObject {
            content_type: None,
            metadata: None,
            content_md5: None,
            extra: ObjectMeta::default(),
            sealing,
        };
        let md5 = self
            .store(&path, Some(blob), Some(end - start), part, Replace::Any)
            .await?;
        Ok(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag::strong(etag::hex(&md5))),
                last_modified: Some(timestamp(super::objects::now_ms())),
                ..CopyPartResult::default()
            }),
            ..UploadPartCopyOutput::default()
        }
        .echoed(echo))
    }

    pub async fn list_parts(&self, input: ListPartsInput) -> S3Result<ListPartsOutput> {
        let upload = self
            .upload(&input.upload_id, &input.bucket, &input.key)
            .await?;
        let max = input.max_parts.map_or(1000, |m| m.clamp(0, 1000)) as usize;
        let after = input.part_number_marker.unwrap_or(0);
        let mut parts = self.parts(&upload).await?;
        parts.retain(|(number, _)| *number > after);
        let truncated = parts.len() > max;
        parts.truncate(max);
        let next = parts.last().map(|(n, _)| *n);
        Ok(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            parts: Some(
                parts
                    .into_iter()
                    .map(|(number, entry)| Part {
                        part_number: Some(number),
                        size: Some(entry.size as i64),
                        e_tag: Some(etag::strong(entry.etag)),
                        last_modified: Some(timestamp(entry.mtime_ms)),
                        ..Part::default()
                    })
                    .collect(),
            ),
            ..ListPartsOutput::default()
        })
    }

    /// The parts stored so far, by number.
    async fn parts(&self, upload: &Upload) -> S3Result<Vec<(i32, bigfs_proto::pb::DirEntry)>> {
        let entries = self
            .client
            .list(&upload.dir)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchUpload))?;
        let mut parts: Vec<_> = entries
            .into_iter()
            .filter(|e| !e.is_dir)
            .filter_map(|e| Some((part_number(e.path.rsplit('/').next()?)?, e)))
            .collect();
        parts.sort_by_key(|(n, _)| *n);
        Ok(parts)
    }

    pub async fn complete_multipart_upload(
        &self,
        input: CompleteMultipartUploadInput,
    ) -> S3Result<CompleteMultipartUploadOutput> {
        let customer = input.customer_key()?;
        let wanted = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        let upload = match self
            .upload(&input.upload_id, &input.bucket, &input.key)
            .await
        {
            Ok(upload) => upload,
            Err(gone) => {
                return self
                    .completed_before(&input.bucket, &input.key, &wanted, gone)
                    .await
            }
        };
        if wanted.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "a Complete must list at least one part"
            ));
        }
        // An SSE-C key on a Complete must be the upload's; none is needed (as in S3: the parts
        // are encrypted already, and older clients send none).
        if customer.is_some() {
            self.reseal(upload.encryption.as_ref(), customer)?;
        }
        let stored: HashMap<i32, bigfs_proto::pb::DirEntry> =
            self.parts(&upload).await?.into_iter().collect();
        let mut sources = Vec::with_capacity(wanted.len());
        let mut md5s = Vec::with_capacity(wanted.len());
        let mut part_sizes = Vec::with_capacity(wanted.len());
        let numbers: Vec<i32> = wanted.iter().map(|p| p.part_number.unwrap_or(0)).collect();
        if let Some(pair) = numbers.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(s3_error!(
                InvalidPartOrder,
                "part {} after part {}: parts must be listed in ascending order",
                pair[1],
                pair[0]
            ));
        }
        for (i, (part, &number)) in wanted.iter().zip(&numbers).enumerate() {
            let entry = stored
                .get(&number)
                .ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded"))?;
            if let Some(given) = &part.e_tag {
                if given.value() != entry.etag {
                    return Err(s3_error!(
                        InvalidPart,
                        "part {number} has ETag {}",
                        entry.etag
                    ));
                }
            }
            if i + 1 < wanted.len() && entry.size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "part {number} is {} bytes; every part but the last needs 5 MiB",
                    entry.size
                ));
            }
            md5s.push(etag::part_md5(&entry.etag).ok_or_else(|| s3_error!(InvalidPart))?);
            part_sizes.push(entry.size);
            sources.push(FsPath::parse(&entry.path).map_err(|e| s3_error!(InternalError, "{e}"))?);
        }
        let etag = etag::multipart(&md5s);
        let dst = object_path(&input.bucket, &input.key)?.path;
        // The conditions hold for the object there now, and the metadata server writes only
        // over that one (or where none is).
        let replace = self
            .write_condition(&dst, input.if_match.as_ref(), input.if_none_match.as_ref())
            .await?;
        let encryption = match &upload.encryption {
            Some(record) => Some(self.parts_record(record, &sources).await?),
            None => None,
        };
        let echo = encryption::echo(encryption.as_ref(), None);
        let object = ObjectMeta {
            content_type: upload.content_type.clone(),
            etag: etag.clone(),
            user_metadata: upload.metadata.clone(),
            part_sizes,
            encryption,
            ..upload.extra.clone()
        };
        self.client
            .concat(
                &sources,
                &dst,
                object,
                replace.overwrite(),
                true,
                replace.if_version(),
            )
            .await
            .map_err(|e| {
                replace
                    .refusal(&e, &dst)
                    .unwrap_or_else(|| s3(e, S3ErrorCode::NoSuchUpload))
            })?;
        self.remove_upload(&upload.dir).await;
        Ok(CompleteMultipartUploadOutput {
            server_side_encryption: echo.sse,
            ssekms_key_id: echo.kms_key_id,
            ..completed(&input.bucket, &input.key, etag)
        })
    }

    /// A Complete of an upload that is gone: S3 answers a Complete repeated after it succeeded
    /// as it answered the first, so one whose response was lost can be retried. The object under
    /// the key is that upload's when its ETag is the one the listed parts make (the MD5 of their
    /// MD5s); otherwise the upload is unknown (`gone`, NoSuchUpload).
    async fn completed_before(
        &self,
        bucket: &str,
        key: &str,
        parts: &[CompletedPart],
        gone: s3s::S3Error,
    ) -> S3Result<CompleteMultipartUploadOutput> {
        let md5s: Option<Vec<[u8; 16]>> = parts
            .iter()
            .map(|part| etag::part_md5(part.e_tag.as_ref()?.value()))
            .collect();
        let Some(md5s) = md5s.filter(|m| !m.is_empty()) else {
            return Err(gone);
        };
        let etag = etag::multipart(&md5s);
        let stored = match self.lookup(bucket, key).await {
            Ok(Some(file)) => file.file.and_then(|f| f.object).map(|o| o.etag),
            _ => None,
        };
        if stored.as_deref() != Some(etag.as_str()) {
            return Err(gone);
        }
        Ok(completed(bucket, key, etag))
    }

    pub async fn abort_multipart_upload(
        &self,
        input: AbortMultipartUploadInput,
    ) -> S3Result<AbortMultipartUploadOutput> {
        let upload = self
            .upload(&input.upload_id, &input.bucket, &input.key)
            .await?;
        self.client
            .remove(&upload.dir, true)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchUpload))?;
        Ok(AbortMultipartUploadOutput::default())
    }

    /// Removes what is left of an upload (its description, parts not completed). Best effort:
    /// what stays is collected as abandoned later.
    async fn remove_upload(&self, dir: &FsPath) {
        if let Err(e) = self.client.remove(dir, true).await {
            tracing::warn!("cannot remove the finished upload {dir}: {e:#}");
        }
    }

    pub async fn list_multipart_uploads(
        &self,
        input: ListMultipartUploadsInput,
    ) -> S3Result<ListMultipartUploadsOutput> {
        self.check_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut uploads: Vec<Upload> = self
            .uploads()
            .await?
            .into_iter()
            .filter(|u| u.bucket == input.bucket && u.key.starts_with(&prefix))
            .collect();
        uploads.sort_by(|a, b| (&a.key, a.initiated_ms).cmp(&(&b.key, b.initiated_ms)));
        let max = input.max_uploads.map_or(1000, |m| m.clamp(0, 1000)) as usize;
        if let Some(marker) = &input.key_marker {
            uploads.retain(|u| &u.key > marker);
        }
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        Ok(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated
                .then(|| uploads.last().map(|u| u.key.clone()))
                .flatten(),
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        key: Some(u.key),
                        upload_id: u.dir.name().to_string().into(),
                        initiated: Some(timestamp(u.initiated_ms)),
                        ..MultipartUpload::default()
                    })
                    .collect(),
            ),
            ..ListMultipartUploadsOutput::default()
        })
    }

    /// Every upload in progress, of every bucket.
    async fn uploads(&self) -> S3Result<Vec<Upload>> {
        let root = FsPath::parse(UPLOADS_DIR).map_err(|e| s3_error!(InternalError, "{e}"))?;
        let dirs = match self.client.list(&root).await {
            Ok(entries) => entries,
            Err(e) if errors::code(&e) == Some(Code::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(s3(e, S3ErrorCode::InternalError)),
        };
        let dirs: Vec<FsPath> = dirs
            .into_iter()
            .filter(|e| e.is_dir)
            .filter_map(|e| FsPath::parse(&e.path).ok())
            .collect();
        let files: Vec<FsPath> = dirs
            .iter()
            .map(|d| join(d, UPLOAD_FILE))
            .collect::<S3Result<_>>()?;
        let found = self
            .client
            .stat_many(&files)
            .await
            .map_err(|e| s3(e, S3ErrorCode::InternalError))?;
        Ok(dirs
            .into_iter()
            .zip(found)
            .filter_map(|(dir, file)| Some(Upload::of(dir, &file.ok()?)))
            .collect())
    }

    /// Removes uploads started more than `expiry` ago; returns how many. Run periodically, so
    /// that a client that never completes nor aborts does not keep its parts forever.
    pub async fn collect_abandoned(&self, expiry: Duration) -> S3Result<usize> {
        let now = super::objects::now_ms();
        self.abort_uploads_where(|_, _, initiated_ms| {
            now.saturating_sub(initiated_ms) > expiry.as_millis() as u64
        })
        .await
    }

    /// Removes the uploads for which `expired(bucket, key, initiated_ms)` holds; returns how
    /// many.
    pub async fn abort_uploads_where(
        &self,
        expired: impl Fn(&str, &str, u64) -> bool,
    ) -> S3Result<usize> {
        let mut removed = 0;
        for upload in self.uploads().await? {
            if expired(&upload.bucket, &upload.key, upload.initiated_ms) {
                tracing::info!(upload = %upload.dir, key = %upload.key, "removing an expired multipart upload");
                self.remove_upload(&upload.dir).await;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Upload {
    fn of(dir: FsPath, file: &GetFileResponse) -> Self {
        let info = file.file.clone().unwrap_or_default();
        let mut object = info.object.unwrap_or_default();
        let bucket = object.user_metadata.remove(BUCKET_KEY).unwrap_or_default();
        let key = object.user_metadata.remove(OBJECT_KEY).unwrap_or_default();
        let metadata = std::mem::take(&mut object.user_metadata)
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(USER_PREFIX)?.to_string(), v)))
            .collect();
        let content_type = std::mem::take(&mut object.content_type);
        // The upload file's own ETag (of no bytes) is not the object's, nor its one empty
        // encrypted segment the object's segments.
        object.etag.clear();
        let encryption = object.encryption.take();
        Self {
            dir,
            bucket,
            key,
            content_type,
            metadata,
            extra: object,
            initiated_ms: info.mtime_ms,
            encryption,
        }
    }
}

fn join(dir: &FsPath, name: &str) -> S3Result<FsPath> {
    dir.join(name).map_err(|e| s3_error!(InternalError, "{e}"))
}

/// `bytes=FIRST-LAST` of an object of `size` bytes, as `start..end`.
fn copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad = || s3_error!(InvalidArgument, "bad x-amz-copy-source-range {range:?}");
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last: u64 = last.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "range {range} is outside the source's {size} bytes"
        ));
    }
    Ok((first, last + 1))
}

/// What a Complete answers.
fn completed(bucket: &str, key: &str, etag: String) -> CompleteMultipartUploadOutput {
    CompleteMultipartUploadOutput {
        bucket: Some(bucket.to_string()),
        key: Some(key.to_string()),
        e_tag: Some(etag::strong(etag)),
        location: Some(format!("/{bucket}/{key}")),
        ..CompleteMultipartUploadOutput::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_sort_and_parse() {
        assert_eq!(part_name(7), "part-00007");
        assert_eq!(part_number("part-00007"), Some(7));
        assert_eq!(part_number(UPLOAD_FILE), None);
        assert!(check_part_number(0).is_err());
        assert!(check_part_number(10_001).is_err());
    }

    #[test]
    fn upload_ids_are_hex_only() {
        assert!(upload_dir("../x").is_err());
        assert!(upload_dir("").is_err());
        assert_eq!(
            upload_dir("ab12").unwrap().as_str(),
            "/.bigfs-multipart/ab12"
        );
    }

    #[test]
    fn copy_ranges_are_inclusive_and_inside_the_source() {
        assert_eq!(copy_range("bytes=0-9", 10).unwrap(), (0, 10));
        assert!(copy_range("bytes=5-10", 10).is_err());
        assert!(copy_range("0-1", 10).is_err());
    }
}
