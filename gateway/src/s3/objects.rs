//! Objects: files below a bucket's directory. A put streams the body into the chunker as it
//! arrives (the ETag's MD5 taken on the way) and commits it whole or not at all; a get streams
//! the chunks of the range asked for, each verified, failing over between replicas as the
//! client library does; copies share the chunks.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, SystemTime};

use axum::http::HeaderValue;
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use s3s::dto::*;
use s3s::{s3_error, S3ErrorCode, S3Response, S3Result};
use tokio_util::io::StreamReader;
use tonic::Code;

use crate::crypto::EncryptingReader;
use bigfs_client::progress::Progress;
use bigfs_client::upload::{PutOptions, Source};
use bigfs_proto::pb::{DirEntry, GetFileResponse, ObjectMeta};
use bigfs_proto::FsPath;

use super::attributes::{self, PartRange};
use super::conditions::{DeleteConditions, Replace};
use super::encryption::{self, Asks, AsksToCopy, AsksToWrite, Echoed, Sealing};
use super::errors::{self, s3};
use super::etag::{self, Conditions, Md5Reader};
use super::headers::{self, send_headers, standard_headers};
use super::listing::{self, Item, Query, Tree};
use super::names::{object_path, ObjectPath};
use super::tagging;
use super::unsupported;
use super::Gateway;

/// The most keys a listing page holds, whatever the client asks for.
const MAX_KEYS: usize = 1000;

/// The Content-Type of an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

pub fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// What a put keeps beside the bytes.
pub struct NewObject {
    pub content_type: Option<String>,
    pub metadata: Option<HashMap<String, String>>,
    /// The Content-MD5 header, base64: the put fails with BadDigest unless the body matches.
    pub content_md5: Option<String>,
    /// The rest kept with the object (standard headers, tags); its ETag is the body's.
    pub extra: ObjectMeta,
    /// The key and record to encrypt the bytes under; `None` stores them as sent.
    pub sealing: Option<Sealing>,
}

impl Tree for bigfs_client::Client {
    async fn children(&self, dir: &FsPath) -> anyhow::Result<Vec<DirEntry>> {
        match self.list(dir).await {
            Ok(entries) if entries.iter().any(|e| e.path == dir.as_str()) => Ok(Vec::new()),
            Ok(entries) => Ok(entries),
            Err(e) if errors::code(&e) == Some(Code::NotFound) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

impl Gateway {
    /// Stores `body` at `path`, replacing what `replace` allows; returns the MD5 of the bytes
    /// (the stored ones' when the sealing says so). Nothing is visible unless the whole body
    /// arrived and was committed.
    pub async fn store(
        &self,
        path: &FsPath,
        body: Option<StreamingBlob>,
        size: Option<u64>,
        object: NewObject,
        replace: Replace,
    ) -> S3Result<[u8; 16]> {
        let body: Box<dyn Stream<Item = io::Result<Bytes>> + Send + Unpin> = match body {
            Some(body) => Box::new(body.map_err(io::Error::other)),
            None => Box::new(futures::stream::empty()),
        };
        // Held until the put has committed (or failed): the body's chunks are in memory.
        let _turn = self.transfer_turn().await?;
        let (reader, md5) = Md5Reader::new(StreamReader::new(body));
        let (source, sealed) = match &object.sealing {
            None => (Source::async_reader(reader, "the request body", size), None),
            Some(sealing) => {
                let iv = crate::crypto::random();
                let (reader, written) = EncryptingReader::new(reader, &sealing.key, &iv);
                let (reader, stored_md5) = Md5Reader::new(reader);
                let source = Source::async_reader(reader, "the request body", size);
                (source, Some((sealing, iv, written, stored_md5)))
            }
        };
        let options = PutOptions {
            replication: None,
            overwrite: replace.overwrite(),
            parallel: self.parallel,
            preserve: false,
            if_version: replace.if_version(),
        };
        let mut digest = [0u8; 16];
        let finish = || {
            digest = etag::digest(&md5);
            if let Some(expected) = &object.content_md5 {
                let given = base64::engine::general_purpose::STANDARD.encode(digest);
                if &given != expected {
                    return Err(anyhow::Error::new(BadDigest(given)));
                }
            }
            let encryption = sealed.map(|(sealing, iv, written, stored_md5)| {
                if sealing.etag_of_ciphertext() {
                    digest = etag::digest(&stored_md5);
                }
                let size = written.load(std::sync::atomic::Ordering::Relaxed);
                sealing.record(vec![encryption::segment(iv, size)])
            });
            Ok(Some(ObjectMeta {
                content_type: object.content_type.clone().unwrap_or_default(),
                etag: etag::hex(&digest),
                user_metadata: object.metadata.clone().unwrap_or_default(),
                encryption,
                ..object.extra.clone()
            }))
        };
        let put = self
            .client
            .put_object(source, path, &options, &Progress::hidden(), finish)
            .await;
        match put {
            Ok(_) => Ok(digest),
            Err(e) => Err(match e.downcast_ref::<BadDigest>() {
                Some(BadDigest(md5)) => s3_error!(
                    BadDigest,
                    "the body's MD5 is {md5}, not the one Content-MD5 gives"
                ),
                None => replace
                    .refusal(&e, path)
                    .unwrap_or_else(|| s3(e, S3ErrorCode::NoSuchBucket)),
            }),
        }
    }

    pub async fn put_object(&self, mut input: PutObjectInput) -> S3Result<PutObjectOutput> {
        let (ObjectPath { path, marker }, replace, tags, sealing) =
            match self.check_put(&input).await {
                Ok(checked) => checked,
                Err(refusal) => {
                    drain(input.body.take()).await;
                    return Err(refusal);
                }
            };
        if marker {
            if input.content_length.unwrap_or(0) != 0 {
                return Err(s3_error!(
                    InvalidArgument,
                    "a key ending in '/' is a directory marker and holds no bytes"
                ));
            }
            self.client
                .mkdir(&path, true)
                .await
                .map_err(|e| s3(e, S3ErrorCode::NoSuchBucket))?;
            return Ok(PutObjectOutput {
                e_tag: Some(etag::strong(etag::EMPTY.into())),
                ..PutObjectOutput::default()
            });
        }
        let echo = encryption::echo_sealing(sealing.as_ref());
        let object = NewObject {
            content_type: input.content_type,
            metadata: input.metadata,
            content_md5: input.content_md5,
            extra: standard_headers!(input).with_tags(tags),
            sealing,
        };
        let size = input.content_length.and_then(|l| u64::try_from(l).ok());
        let md5 = self.store(&path, input.body, size, object, replace).await?;
        Ok(PutObjectOutput {
            e_tag: Some(etag::strong(etag::hex(&md5))),
            ..PutObjectOutput::default()
        }
        .echoed(echo))
    }

    /// What a put may be refused for before its body is read: what BigFS cannot honour, a key
    /// no path can hold (checked before any call to the cluster), tags over S3's limits, a
    /// missing bucket, failed conditions; and what it may replace, its tags and the encryption
    /// it asks for.
    async fn check_put(
        &self,
        input: &PutObjectInput,
    ) -> S3Result<(ObjectPath, Replace, tagging::Tags, Option<Sealing>)> {
        let wanted = input.wanted()?;
        let checked = object_path(&input.bucket, &input.key)?;
        let tags = tagging::of_header(input.tagging.as_deref())?;
        let (_, wanted) = tokio::try_join!(
            self.check_bucket(&input.bucket),
            self.with_bucket_default(&input.bucket, wanted)
        )?;
        let sealing = self.seal(&wanted)?;
        let replace = self
            .write_condition(
                &checked.path,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )
            .await?;
        Ok((checked, replace, tags, sealing))
    }

    /// The file behind `key`, or NoSuchKey; a marker key names its directory (no bytes).
    pub(super) async fn lookup(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<Option<GetFileResponse>> {
        let ObjectPath { path, marker } = object_path(bucket, key)?;
        match self.client.stat(&path).await {
            Ok(file) if !marker => Ok(Some(file)),
            Err(e) if marker && errors::code(&e) == Some(Code::FailedPrecondition) => Ok(None),
            Err(e)
                if errors::code(&e) == Some(Code::NotFound)
                    && self.check_bucket(bucket).await.is_err() =>
            {
                Err(s3_error!(NoSuchBucket, "no bucket {bucket:?}"))
            }
            Ok(_) | Err(_) => Err(s3_error!(NoSuchKey, "no object {key:?} in {bucket}")),
        }
    }

    pub async fn get_object(&self, input: GetObjectInput) -> S3Result<GetObjectOutput> {
        let customer = input.customer_key()?;
        let overrides = headers::Overrides::of(&input);
        let conditions = Conditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
            if_modified_since: input.if_modified_since,
            if_unmodified_since: input.if_unmodified_since,
        };
        let Some(file) = self.lookup(&input.bucket, &input.key).await? else {
            etag::check(&conditions, etag::EMPTY, 0)?;
            return Ok(GetObjectOutput {
                body: Some(StreamingBlob::wrap(futures::stream::empty::<
                    io::Result<Bytes>,
                >())),
                content_length: Some(0),
                e_tag: Some(etag::strong(etag::EMPTY.into())),
                ..GetObjectOutput::default()
            });
        };
        let head = Head::of(&file);
        let record = encryption::record_of(&file);
        let key = self.data_key(record, customer.as_ref())?;
        let echo = encryption::echo(record, customer.as_ref());
        etag::check(&conditions, &head.etag, head.mtime_ms)?;
        let part = head.part(input.part_number)?;
        let tag_count = head.tag_count();
        let range = match (&input.range, &part) {
            (Some(range), _) => Some(
                range
                    .check(head.size)
                    .map_err(|_| s3_error!(InvalidRange, "the object is {} bytes", head.size))?,
            ),
            (None, Some(part)) if part.count.is_some() => Some(part.start..part.end),
            (None, _) => None,
        };
        let (start, end) = range.clone().map_or((0, head.size), |r| (r.start, r.end));
        let path = object_path(&input.bucket, &input.key)?.path;
        let turn = self.transfer_turn().await?;
        let body = self
            .plain_stream(path, file, key, start, end)
            .map(move |item| {
                // Moved into the body: the turn ends when the body is sent or dropped.
                let _held = &turn;
                item
            });
        let mut output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(sync_wrapper::SyncStream::new(body))),
            content_length: Some((end - start) as i64),
            content_range: range.map(|_| format!("bytes {start}-{}/{}", end - 1, head.size)),
            accept_ranges: Some("bytes".into()),
            content_type: Some(head.content_type),
            e_tag: Some(etag::strong(head.etag)),
            last_modified: Some(timestamp(head.mtime_ms)),
            metadata: Some(head.metadata),
            parts_count: part.and_then(|p| p.count),
            tag_count,
            ..GetObjectOutput::default()
        }
        .echoed(echo);
        send_headers!(output, &head.object);
        overrides.apply(&mut output);
        Ok(output)
    }

    /// The bytes `start..end` of `file`: only the chunks that hold them are fetched, each
    /// verified before a byte of it is sent.
    pub fn range_stream(
        &self,
        path: FsPath,
        file: GetFileResponse,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        // Each chunk's offset comes from the sizes before it: sizes vary after a multipart
        // upload's Complete.
        let mut offset = 0;
        let mut first = None;
        let chunks: Vec<_> = file
            .chunks
            .into_iter()
            .filter(|chunk| {
                let at = offset;
                offset += chunk.size;
                let wanted = at < end && at + chunk.size > start;
                if wanted && first.is_none() {
                    first = Some(at);
                }
                wanted
            })
            .collect();
        let mut at = first.unwrap_or(start);
        let logged = path.clone();
        self.client
            .chunk_stream(path, chunks, self.parallel)
            .map_ok(move |bytes: Bytes| {
                let chunk_start = at;
                at += bytes.len() as u64;
                let len = bytes.len() as u64;
                let lo = start.saturating_sub(chunk_start).min(len);
                let hi = end.saturating_sub(chunk_start).min(len);
                bytes.slice(lo as usize..hi as usize)
            })
            .map_err(move |e| {
                tracing::warn!("s3 read of {logged} cut short: {e:#}");
                io::Error::other(format!("{e:#}"))
            })
    }

    /// HEAD: what a GET would answer, without the body; the tag count goes in a header of its
    /// own (the s3s output has no field for it).
    pub async fn head_object(
        &self,
        input: HeadObjectInput,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let customer = input.customer_key()?;
        let conditions = Conditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
            if_modified_since: input.if_modified_since,
            if_unmodified_since: input.if_unmodified_since,
        };
        let Some(file) = self.lookup(&input.bucket, &input.key).await? else {
            etag::check(&conditions, etag::EMPTY, 0)?;
            return Ok(S3Response::new(HeadObjectOutput {
                content_length: Some(0),
                e_tag: Some(etag::strong(etag::EMPTY.into())),
                ..HeadObjectOutput::default()
            }));
        };
        let head = Head::of(&file);
        let record = encryption::record_of(&file);
        self.data_key(record, customer.as_ref())?;
        let echo = encryption::echo(record, customer.as_ref());
        etag::check(&conditions, &head.etag, head.mtime_ms)?;
        let part = head.part(input.part_number)?;
        let tag_count = head.tag_count();
        let mut output = HeadObjectOutput {
            content_length: Some(part.as_ref().map_or(head.size, |p| p.end - p.start) as i64),
            accept_ranges: Some("bytes".into()),
            content_type: Some(head.content_type),
            e_tag: Some(etag::strong(head.etag)),
            last_modified: Some(timestamp(head.mtime_ms)),
            metadata: Some(head.metadata),
            parts_count: part.and_then(|p| p.count),
            ..HeadObjectOutput::default()
        }
        .echoed(echo);
        send_headers!(output, &head.object);
        let mut response = S3Response::new(output);
        if let Some(count) = tag_count {
            response
                .headers
                .insert(tagging::TAG_COUNT_HEADER, HeaderValue::from(count));
        }
        Ok(response)
    }

    /// Removes `key` if `conditions` hold (checked in one step with the removal); a missing
    /// one is no error (S3 deletes are idempotent). Directories left empty above it go too, up
    /// to the bucket, as they would vanish from S3's view anyway: a prefix exists only while a
    /// key has it.
    pub async fn delete_key(
        &self,
        bucket: &str,
        key: &str,
        conditions: &DeleteConditions,
    ) -> S3Result<()> {
        let ObjectPath { path, marker } = object_path(bucket, key)?;
        let removed = if marker {
            if !conditions.is_empty() {
                return Err(s3_error!(
                    NotImplemented,
                    "a conditional delete of a directory marker is not supported"
                ));
            }
            self.client.rmdir(&path).await
        } else if conditions.is_empty() {
            self.client.remove(&path, false).await.map(|_| ())
        } else {
            self.delete_if(&path, conditions).await?;
            Ok(())
        };
        match removed {
            Ok(()) => {}
            Err(e)
                if matches!(
                    errors::code(&e),
                    Some(Code::NotFound | Code::FailedPrecondition)
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(s3(e, S3ErrorCode::NoSuchKey)),
        }
        let bucket_dir = super::names::bucket_path(bucket)?;
        let mut dir = crate::remote_path::parent(&path);
        while dir != bucket_dir && !dir.is_root() {
            if self.client.rmdir(&dir).await.is_err() {
                break;
            }
            dir = crate::remote_path::parent(&dir);
        }
        Ok(())
    }

    pub async fn delete_objects(&self, input: DeleteObjectsInput) -> S3Result<DeleteObjectsOutput> {
        unsupported::delete_count(input.delete.objects.len())?;
        self.check_bucket(&input.bucket).await?;
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        for object in input.delete.objects {
            let conditions = DeleteConditions {
                if_match: object.e_tag.map(ETagCondition::ETag),
                last_modified: object.last_modified_time,
                size: object.size,
            };
            let done = self
                .delete_key(&input.bucket, &object.key, &conditions)
                .await;
            match done {
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    ..DeletedObject::default()
                }),
                Err(e) => failed.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(object.key),
                    message: e.message().map(str::to_string),
                    ..Error::default()
                }),
            }
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        Ok(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            errors: Some(failed),
            ..DeleteObjectsOutput::default()
        })
    }

    pub async fn copy_object(&self, input: CopyObjectInput) -> S3Result<CopyObjectOutput> {
        let source_customer = input.source_customer_key()?;
        let wanted = input.wanted()?;
        let wanted = self.with_bucket_default(&input.bucket, wanted).await?;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let source = self
            .lookup(&src_bucket, &src_key)
            .await?
            .ok_or_else(|| s3_error!(InvalidArgument, "a directory marker cannot be copied"))?;
        let head = Head::of(&source);
        let source_record = encryption::record_of(&source).cloned();
        let source_key = self.data_key(source_record.as_ref(), source_customer.as_ref())?;
        let same_sealing =
            encryption::same_sealing(source_record.as_ref(), source_key.as_ref(), &wanted);
        let conditions = Conditions {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        };
        // A copy's failed condition is always 412, never 304.
        etag::check(&conditions, &head.etag, head.mtime_ms).map_err(|e| match e.code() {
            S3ErrorCode::NotModified => s3_error!(PreconditionFailed),
            _ => e,
        })?;
        self.check_bucket(&input.bucket).await?;
        let ObjectPath { path: dst, marker } = object_path(&input.bucket, &input.key)?;
        if marker {
            return Err(s3_error!(
                InvalidArgument,
                "cannot copy onto a directory marker"
            ));
        }
        let src = object_path(&src_bucket, &src_key)?.path;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if src == dst && !replace && same_sealing {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object onto itself without changing its metadata or encryption \
                 is not allowed"
            ));
        }
        // The copy has the source's bytes, so what describes them (part sizes, checksums)
        // stays; with REPLACE, what the client said about the object is the request's.
        let mut object = head.object.clone();
        object.etag = head.etag.clone();
        object.tags = tagging::of_copy(
            input.tagging_directive.as_ref(),
            input.tagging.as_deref(),
            &head.object.tags,
        )?;
        if replace {
            object.content_type = input.content_type.unwrap_or_default();
            object.user_metadata = input.metadata.unwrap_or_default();
            standard_headers!(input).keep(&mut object);
        }
        if !same_sealing {
            // Other bytes: the source decrypted (or as stored) streams through a new put, in
            // one piece (so no parts), under the encryption asked.
            let sealing = self.seal(&wanted)?;
            let echo = encryption::echo_sealing(sealing.as_ref());
            let body = self.plain_stream(src, source, source_key, 0, head.size);
            let whole = object.checksum_type != "COMPOSITE";
            let new = NewObject {
                content_type: Some(std::mem::take(&mut object.content_type)),
                metadata: Some(std::mem::take(&mut object.user_metadata)),
                content_md5: None,
                extra: ObjectMeta {
                    part_sizes: Vec::new(),
                    part_checksums: Vec::new(),
                    checksum: if whole {
                        object.checksum
                    } else {
                        String::new()
                    },
                    checksum_algorithm: if whole {
                        object.checksum_algorithm
                    } else {
                        String::new()
                    },
                    checksum_type: if whole {
                        object.checksum_type
                    } else {
                        String::new()
                    },
                    encryption: None,
                    ..object
                },
                sealing,
            };
            let blob = StreamingBlob::wrap(sync_wrapper::SyncStream::new(body));
            let md5 = self
                .store(&dst, Some(blob), Some(head.size), new, Replace::Any)
                .await?;
            return Ok(copied(etag::hex(&md5), echo));
        }
        let customer = match &wanted {
            encryption::Wanted::Customer(customer) => Some(customer.clone()),
            _ => None,
        };
        let echo = encryption::echo(source_record.as_ref(), customer.as_ref());
        self.client
            .concat(std::slice::from_ref(&src), &dst, object, true, false, None)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchKey))?;
        Ok(copied(head.etag, echo))
    }

    /// One page of a bucket's keys.
    pub async fn list_page(&self, bucket: &str, query: &Query) -> S3Result<listing::Page> {
        let dir = self.check_bucket(bucket).await?;
        listing::list(&self.client, &dir, query)
            .await
            .map_err(|e| s3(e, S3ErrorCode::NoSuchBucket))
    }

    /// One page of a listing paged by marker (ListObjects, ListObjectVersions), names encoded
    /// as asked.
    async fn marker_page(
        &self,
        bucket: &str,
        query: Query,
        encode: Encode,
    ) -> S3Result<MarkerPage> {
        let page = self.list_page(bucket, &query).await?;
        let next_marker = page
            .truncated
            .then(|| page.items.last().map(|i| encode.apply(i.key())))
            .flatten();
        let (contents, common_prefixes) = split(page.items, encode);
        Ok(MarkerPage {
            query,
            truncated: page.truncated,
            next_marker,
            contents,
            common_prefixes,
        })
    }

    pub async fn list_objects_v2(
        &self,
        input: ListObjectsV2Input,
    ) -> S3Result<ListObjectsV2Output> {
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => Some(token.clone()),
            (None, after) => after.clone(),
        };
        let query = query(&input.prefix, &input.delimiter, after, input.max_keys);
        let page = self.list_page(&input.bucket, &query).await?;
        let encode = url_encoded(&input.encoding_type);
        let next = page
            .truncated
            .then(|| page.items.last().map(|i| i.key().to_string()))
            .flatten();
        let (mut contents, common_prefixes) = split(page.items, encode);
        if input.fetch_owner == Some(true) {
            for object in &mut contents {
                object.owner = Some(super::buckets::owner());
            }
        }
        Ok(ListObjectsV2Output {
            name: Some(input.bucket),
            key_count: Some((contents.len() + common_prefixes.len()) as i32),
            prefix: Some(encode.apply(&query.prefix)),
            delimiter: query.delimiter.as_deref().map(|d| encode.apply(d)),
            max_keys: Some(query.max_keys as i32),
            is_truncated: Some(page.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after: input.start_after.as_deref().map(|s| encode.apply(s)),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            ..ListObjectsV2Output::default()
        })
    }

    /// ListObjectVersions as S3 answers it for a bucket that keeps no versions: every object
    /// is its own only version, `null`, and the latest. (Tools that empty a bucket, such as
    /// Ceph's s3-tests, list versions even where there are none.)
    pub async fn list_object_versions(
        &self,
        input: ListObjectVersionsInput,
    ) -> S3Result<ListObjectVersionsOutput> {
        let encode = url_encoded(&input.encoding_type);
        let query = query(
            &input.prefix,
            &input.delimiter,
            input.key_marker.clone(),
            input.max_keys,
        );
        let page = self.marker_page(&input.bucket, query, encode).await?;
        let next = page.next_marker;
        let versions = page
            .contents
            .into_iter()
            .map(|object| ObjectVersion {
                key: object.key,
                size: object.size,
                last_modified: object.last_modified,
                e_tag: object.e_tag,
                version_id: Some(NULL_VERSION.to_string()),
                is_latest: Some(true),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..ObjectVersion::default()
            })
            .collect();
        Ok(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(encode.apply(&page.query.prefix)),
            delimiter: page.query.delimiter.as_deref().map(|d| encode.apply(d)),
            key_marker: input.key_marker,
            version_id_marker: input.version_id_marker,
            max_keys: Some(page.query.max_keys as i32),
            is_truncated: Some(page.truncated),
            next_version_id_marker: next.as_ref().map(|_| NULL_VERSION.to_string()),
            next_key_marker: next,
            versions: Some(versions),
            common_prefixes: Some(page.common_prefixes),
            encoding_type: input.encoding_type,
            ..ListObjectVersionsOutput::default()
        })
    }

    pub async fn list_objects(&self, input: ListObjectsInput) -> S3Result<ListObjectsOutput> {
        let encode = url_encoded(&input.encoding_type);
        let query = query(
            &input.prefix,
            &input.delimiter,
            input.marker.clone(),
            input.max_keys,
        );
        let page = self.marker_page(&input.bucket, query, encode).await?;
        Ok(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encode.apply(&page.query.prefix)),
            delimiter: page.query.delimiter.as_deref().map(|d| encode.apply(d)),
            marker: Some(
                input
                    .marker
                    .as_deref()
                    .map(|m| encode.apply(m))
                    .unwrap_or_default(),
            ),
            max_keys: Some(page.query.max_keys as i32),
            is_truncated: Some(page.truncated),
            next_marker: page.next_marker,
            contents: Some(page.contents),
            common_prefixes: Some(page.common_prefixes),
            encoding_type: input.encoding_type,
            ..ListObjectsOutput::default()
        })
    }
}

/// The most bytes of a refused request's body read and thrown away.
const DRAIN_LIMIT: usize = 1 << 20;

/// Reads what is left of a refused request's body, up to [`DRAIN_LIMIT`], so the connection can
/// carry the next request: bytes left unread on a kept-alive connection were taken for the
/// start of the next request, which then got a bare 400. (A larger body is left: the
/// connection is closed after the answer, which the client then sees as a reset.)
pub async fn drain(body: Option<StreamingBlob>) {
    let Some(mut body) = body else { return };
    let mut read = 0;
    while read <= DRAIN_LIMIT {
        match body.next().await {
            Some(Ok(bytes)) => read += bytes.len(),
            _ => return,
        }
    }
}

/// The version id S3 gives objects of a bucket that keeps no versions.
const NULL_VERSION: &str = "null";

/// A put refused because the body does not match its Content-MD5 (the MD5 it has, base64).
#[derive(Debug, thiserror::Error)]
#[error("the body's MD5 is {0}")]
struct BadDigest(String);

/// What GET and HEAD answer about a file.
struct Head {
    size: u64,
    mtime_ms: u64,
    etag: String,
    content_type: String,
    metadata: HashMap<String, String>,
    /// Everything kept with the object.
    object: ObjectMeta,
}

impl Head {
    fn of(file: &GetFileResponse) -> Self {
        let info = file.file.clone().unwrap_or_default();
        let object = info.object.clone().unwrap_or_default();
        Self {
            size: info.size,
            mtime_ms: info.mtime_ms,
            etag: etag::of_file(&info),
            content_type: if object.content_type.is_empty() {
                DEFAULT_CONTENT_TYPE.to_string()
            } else {
                object.content_type.clone()
            },
            metadata: object.user_metadata.clone(),
            object,
        }
    }

    /// Where part `number` lies, when one was asked for (`partNumber`).
    fn part(&self, number: Option<i32>) -> S3Result<Option<PartRange>> {
        number
            .map(|n| attributes::part_range(&self.object, &self.etag, self.size, n))
            .transpose()
    }

    /// How many tags the object has, when it has any.
    fn tag_count(&self) -> Option<i32> {
        (!self.object.tags.is_empty()).then_some(self.object.tags.len() as i32)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// What a CopyObject answers.
fn copied(etag: String, echo: encryption::Echo) -> CopyObjectOutput {
    CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag::strong(etag)),
            last_modified: Some(timestamp(now_ms())),
            ..CopyObjectResult::default()
        }),
        ..CopyObjectOutput::default()
    }
    .echoed(echo)
}

/// The bucket and key a copy reads.
pub fn copy_source(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id: None,
        } => Ok((bucket.to_string(), key.to_string())),
        CopySource::Bucket { .. } => Err(s3_error!(NotImplemented, "BigFS keeps no versions")),
        _ => Err(s3_error!(NotImplemented, "access points are not supported")),
    }
}

/// What [`Gateway::marker_page`] found.
struct MarkerPage {
    query: Query,
    truncated: bool,
    /// The last name listed, encoded, when there are more.
    next_marker: Option<String>,
    contents: Vec<Object>,
    common_prefixes: Vec<CommonPrefix>,
}

fn query(
    prefix: &Option<String>,
    delimiter: &Option<String>,
    after: Option<String>,
    max_keys: Option<i32>,
) -> Query {
    Query {
        prefix: prefix.clone().unwrap_or_default(),
        // An empty delimiter is none: S3 lists every key and does not echo it.
        delimiter: delimiter.clone().filter(|d| !d.is_empty()),
        after: after.filter(|a| !a.is_empty()),
        max_keys: max_keys.map_or(MAX_KEYS, |m| (m.max(0) as usize).min(MAX_KEYS)),
    }
}

/// Whether names in a listing are URL-encoded (`encoding-type=url`, which aws-cli sends).
#[derive(Clone, Copy)]
struct Encode(bool);

impl Encode {
    fn apply(self, name: &str) -> String {
        if !self.0 {
            return name.to_string();
        }
        const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~')
            .remove(b'/');
        percent_encoding::utf8_percent_encode(name, KEEP).to_string()
    }
}

fn url_encoded(encoding: &Option<EncodingType>) -> Encode {
    Encode(
        encoding
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL),
    )
}

fn split(items: Vec<Item>, encode: Encode) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for item in items {
        match item {
            Item::Object {
                key,
                size,
                mtime_ms,
                etag,
            } => contents.push(Object {
                key: Some(encode.apply(&key)),
                size: Some(size as i64),
                last_modified: Some(timestamp(mtime_ms)),
                e_tag: Some(etag::strong(etag)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Object::default()
            }),
            Item::CommonPrefix(prefix) => prefixes.push(CommonPrefix {
                prefix: Some(encode.apply(&prefix)),
            }),
        }
    }
    (contents, prefixes)
}
