//! Server-side encryption (docs/S3.md, "Server-side encryption"): what a request asks for,
//! the key an object's bytes are under, and the headers that say so. The cryptography is
//! [`crate::crypto`]'s; an object's [`ObjectEncryption`] record travels in its `ObjectMeta`.
//!
//! - SSE-C: the client's key, checked against its MD5, never stored: the record keeps a
//!   salted keyed check of it, so a wrong key is refused (403) rather than decrypting garbage.
//! - SSE-S3: a random data key per object (per upload), wrapped under `--sse-master-key-file`.
//! - SSE-KMS: the same, wrapped under a named key of `--sse-kms-keys`.

use std::io;

use axum::http;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::{Stream, TryStreamExt};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Result};

use bigfs_proto::pb::object_encryption::Kind;
use bigfs_proto::pb::{EncryptedSegment, GetFileResponse, ObjectEncryption};
use bigfs_proto::FsPath;

use crate::crypto::{self, Key, ObjectCipher, Segment};

use super::Gateway;

/// The only algorithm S3 names for SSE-C and SSE-S3.
const AES256: &str = "AES256";

/// What SSE-S3 and SSE-KMS bind a wrapped data key to.
const MASTER_CONTEXT: &[u8] = b"bigfs s3 sse-s3 data key";

fn named_context(id: &str) -> Vec<u8> {
    format!("bigfs s3 sse-kms data key of {id}").into_bytes()
}

/// An SSE-C key a request gave, its MD5 checked.
#[derive(Clone)]
pub struct CustomerKey {
    key: Key,
    /// The key's MD5, base64, as the client sent it (and gets back).
    md5: String,
}

/// The SSE-C headers of a request (or a copy's source headers): none, or all three with a
/// 32-byte key whose MD5 is the one given.
pub fn customer_key(
    algorithm: &Option<String>,
    key: &Option<String>,
    md5: &Option<String>,
) -> S3Result<Option<CustomerKey>> {
    let (algorithm, key) = match (algorithm, key) {
        (None, None) if md5.is_none() => return Ok(None),
        (Some(algorithm), Some(key)) => (algorithm, key),
        (None, _) => {
            return Err(s3_error!(
                InvalidArgument,
                "an SSE-C key needs x-amz-server-side-encryption-customer-algorithm: AES256"
            ))
        }
        (Some(_), None) => {
            return Err(s3_error!(
                InvalidArgument,
                "SSE-C needs the key: x-amz-server-side-encryption-customer-key"
            ))
        }
    };
    if algorithm != AES256 {
        return Err(s3_error!(
            InvalidEncryptionAlgorithmError,
            "SSE-C's algorithm is AES256, not {algorithm:?}"
        ));
    }
    let base64 = base64::engine::general_purpose::STANDARD;
    let bytes = base64
        .decode(key)
        .map_err(|_| s3_error!(InvalidArgument, "the SSE-C key is not base64"))?;
    let key: Key = bytes.as_slice().try_into().map_err(|_| {
        s3_error!(
            InvalidArgument,
            "the SSE-C key is {} bytes, not 32",
            bytes.len()
        )
    })?;
    let Some(md5) = md5 else {
        return Err(s3_error!(
            InvalidArgument,
            "SSE-C needs the key's MD5: x-amz-server-side-encryption-customer-key-MD5"
        ));
    };
    let actual = base64.encode(Md5::digest(key));
    if &actual != md5 {
        return Err(s3_error!(
            InvalidArgument,
            "the SSE-C key's MD5 is {actual}, not the one given"
        ));
    }
    Ok(Some(CustomerKey {
        key,
        md5: md5.clone(),
    }))
}

/// The SSE-C headers of a request, read alike from every operation's input.
pub trait Asks {
    /// The SSE-C key the request gives, checked (see [`customer_key`]).
    fn customer_key(&self) -> S3Result<Option<CustomerKey>>;
}

macro_rules! asks {
    ($($input:ty),*) => {$(
        impl Asks for $input {
            fn customer_key(&self) -> S3Result<Option<CustomerKey>> {
                customer_key(
                    &self.sse_customer_algorithm,
                    &self.sse_customer_key,
                    &self.sse_customer_key_md5,
                )
            }
        }
    )*};
}

asks!(
    PutObjectInput,
    GetObjectInput,
    HeadObjectInput,
    CopyObjectInput,
    CreateMultipartUploadInput,
    UploadPartInput,
    UploadPartCopyInput,
    CompleteMultipartUploadInput,
    GetObjectAttributesInput
);

/// What a request that writes a new object asks for it.
pub trait AsksToWrite: Asks {
    /// SSE-C, or `x-amz-server-side-encryption` (see [`wanted`]).
    fn wanted(&self) -> S3Result<Wanted>;
}

macro_rules! asks_to_write {
    ($($input:ty),*) => {$(
        impl AsksToWrite for $input {
            fn wanted(&self) -> S3Result<Wanted> {
                if self.ssekms_encryption_context.is_some() {
                    // It would have to bind the data key (as AAD): not built, so not ignored.
                    return Err(s3_error!(
                        NotImplemented,
                        "an SSE-KMS encryption context is not supported"
                    ));
                }
                wanted(&self.server_side_encryption, &self.ssekms_key_id, self.customer_key()?)
            }
        }
    )*};
}

asks_to_write!(PutObjectInput, CopyObjectInput, CreateMultipartUploadInput);

/// The SSE-C key a copy gives for its source (`x-amz-copy-source-server-side-encryption-*`).
pub trait AsksToCopy {
    fn source_customer_key(&self) -> S3Result<Option<CustomerKey>>;
}

macro_rules! asks_to_copy {
    ($($input:ty),*) => {$(
        impl AsksToCopy for $input {
            fn source_customer_key(&self) -> S3Result<Option<CustomerKey>> {
                customer_key(
                    &self.copy_source_sse_customer_algorithm,
                    &self.copy_source_sse_customer_key,
                    &self.copy_source_sse_customer_key_md5,
                )
            }
        }
    )*};
}

asks_to_copy!(CopyObjectInput, UploadPartCopyInput);

/// What a write asks for the bytes it stores.
#[derive(Clone)]
pub enum Wanted {
    Plain,
    Customer(CustomerKey),
    /// SSE-S3.
    Master,
    /// SSE-KMS under the named key.
    Named(String),
}

/// What the headers of a write ask for: SSE-C's key, or `x-amz-server-side-encryption` with
/// its KMS key id; both, or a key id without `aws:kms`, is a contradiction (400).
pub fn wanted(
    sse: &Option<ServerSideEncryption>,
    kms_key_id: &Option<String>,
    customer: Option<CustomerKey>,
) -> S3Result<Wanted> {
    let sse = sse.as_ref().map(ServerSideEncryption::as_str);
    match (sse, kms_key_id, customer) {
        (None, None, None) => Ok(Wanted::Plain),
        (None, None, Some(customer)) => Ok(Wanted::Customer(customer)),
        (Some(_), _, Some(_)) => Err(s3_error!(
            InvalidArgument,
            "SSE-C and x-amz-server-side-encryption cannot both be asked"
        )),
        (Some(AES256), None, None) => Ok(Wanted::Master),
        (Some(ServerSideEncryption::AWS_KMS), Some(id), None) => Ok(Wanted::Named(id.clone())),
        (Some(ServerSideEncryption::AWS_KMS), None, None) => Err(s3_error!(
            InvalidArgument,
            "aws:kms needs a key id (x-amz-server-side-encryption-aws-kms-key-id): the \
             gateway has no default KMS key"
        )),
        (Some(other @ ServerSideEncryption::AWS_KMS_DSSE), _, None) => Err(s3_error!(
            NotImplemented,
            "server-side encryption {other} (dual-layer) is not supported"
        )),
        (_, Some(_), _) => Err(s3_error!(
            InvalidArgument,
            "a KMS key id needs x-amz-server-side-encryption: aws:kms"
        )),
        (Some(other), None, None) => Err(s3_error!(
            InvalidArgument,
            "unknown server-side encryption {other:?}"
        )),
    }
}

/// The key and record a new object's (or upload's) bytes are written under.
#[derive(Clone)]
pub struct Sealing {
    pub key: Key,
    /// Without segments: the put adds its own.
    pub record: ObjectEncryption,
    /// The SSE-C key, to echo its MD5.
    pub customer: Option<CustomerKey>,
}

impl Sealing {
    /// Whether the ETag is the MD5 of the stored bytes rather than the plaintext's: as S3,
    /// for SSE-C and SSE-KMS, so that an ETag does not tell who knows a guess of the content
    /// that the guess is right.
    pub fn etag_of_ciphertext(&self) -> bool {
        self.record.kind() != Kind::MasterKey
    }

    /// The record of an object (or part) of this sealing stored as `segments`.
    pub fn record(&self, segments: Vec<EncryptedSegment>) -> ObjectEncryption {
        ObjectEncryption {
            segments,
            ..self.record.clone()
        }
    }
}

/// The segment an [`crate::crypto::EncryptingReader`] wrote.
pub fn segment(iv: crypto::Iv, size: u64) -> EncryptedSegment {
    EncryptedSegment {
        iv: iv.to_vec(),
        size,
    }
}

/// Refuses a GET or HEAD that sends `x-amz-server-side-encryption` (or its KMS key id), as S3
/// does: those headers belong to writes; a read decrypts SSE-S3 and SSE-KMS objects unasked.
/// (s3s does not parse them on a read, hence the raw headers.)
pub fn refuse_on_read(headers: &http::HeaderMap) -> S3Result<()> {
    let names = [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
    ];
    if let Some(name) = names.iter().find(|n| headers.contains_key(**n)) {
        return Err(s3_error!(
            InvalidArgument,
            "{name} is for writes; a read of an SSE-S3 or SSE-KMS object needs no header"
        ));
    }
    Ok(())
}

/// The encryption record of a stored file, if its bytes are encrypted.
pub fn record_of(file: &GetFileResponse) -> Option<&ObjectEncryption> {
    file.file.as_ref()?.object.as_ref()?.encryption.as_ref()
}

/// The response headers that say how an object is encrypted.
#[derive(Default)]
pub struct Echo {
    pub sse: Option<ServerSideEncryption>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
    pub kms_key_id: Option<String>,
}

/// The headers for an object stored with `record`, read or written with `customer`.
pub fn echo(record: Option<&ObjectEncryption>, customer: Option<&CustomerKey>) -> Echo {
    let Some(record) = record else {
        return Echo::default();
    };
    match record.kind() {
        Kind::CustomerKey => Echo {
            customer_algorithm: Some(AES256.into()),
            customer_key_md5: customer.map(|c| c.md5.clone()),
            ..Echo::default()
        },
        Kind::MasterKey => Echo {
            sse: Some(ServerSideEncryption::from_static(AES256)),
            ..Echo::default()
        },
        Kind::NamedKey => Echo {
            sse: Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AWS_KMS,
            )),
            kms_key_id: Some(record.key_id.clone()),
            ..Echo::default()
        },
        Kind::Unspecified => Echo::default(),
    }
}

/// The headers for an object written under `sealing`.
pub fn echo_sealing(sealing: Option<&Sealing>) -> Echo {
    sealing.map_or_else(Echo::default, |s| {
        echo(Some(&s.record), s.customer.as_ref())
    })
}

/// An S3 output that says how its object is encrypted.
pub trait Echoed {
    fn echoed(self, echo: Echo) -> Self;
}

macro_rules! echoed {
    ($($output:ty),*) => {$(
        impl Echoed for $output {
            fn echoed(self, echo: Echo) -> Self {
                Self {
                    server_side_encryption: echo.sse,
                    sse_customer_algorithm: echo.customer_algorithm,
                    sse_customer_key_md5: echo.customer_key_md5,
                    ssekms_key_id: echo.kms_key_id,
                    ..self
                }
            }
        }
    )*};
}

echoed!(
    PutObjectOutput,
    GetObjectOutput,
    HeadObjectOutput,
    CopyObjectOutput,
    CreateMultipartUploadOutput,
    UploadPartOutput,
    UploadPartCopyOutput
);

/// Whether a copy from `source` to what `wanted` asks stores the same bytes under the same key,
/// so that it can share the source's chunks and record.
pub fn same_sealing(
    source: Option<&ObjectEncryption>,
    source_key: Option<&Key>,
    wanted: &Wanted,
) -> bool {
    match (source.map(ObjectEncryption::kind), wanted) {
        (None, Wanted::Plain) => true,
        (Some(Kind::CustomerKey), Wanted::Customer(customer)) => source_key == Some(&customer.key),
        (Some(Kind::MasterKey), Wanted::Master) => true,
        (Some(Kind::NamedKey), Wanted::Named(id)) => source.is_some_and(|s| &s.key_id == id),
        _ => false,
    }
}

impl Gateway {
    /// A new data key and its record for what `wanted` asks, or `None` for plain bytes.
    /// SSE-S3 and SSE-KMS without the gateway's keys answer 501, saying how to enable them.
    pub fn seal(&self, wanted: &Wanted) -> S3Result<Option<Sealing>> {
        let (kek, context, key_id) = match wanted {
            Wanted::Plain => return Ok(None),
            Wanted::Customer(customer) => {
                return Ok(Some(Sealing {
                    key: customer.key,
                    record: ObjectEncryption {
                        kind: Kind::CustomerKey.into(),
                        key_check: crypto::key_check(&customer.key),
                        ..ObjectEncryption::default()
                    },
                    customer: Some(customer.clone()),
                }))
            }
            Wanted::Master => (self.master_key()?, MASTER_CONTEXT.to_vec(), String::new()),
            Wanted::Named(id) => (self.named_key(id)?, named_context(id), id.clone()),
        };
        let key: Key = crypto::random();
        Ok(Some(Sealing {
            key,
            record: ObjectEncryption {
                kind: if key_id.is_empty() {
                    Kind::MasterKey
                } else {
                    Kind::NamedKey
                }
                .into(),
                wrapped_key: crypto::wrap(&kek, &key, &context),
                key_id,
                ..ObjectEncryption::default()
            },
            customer: None,
        }))
    }

    fn master_key(&self) -> S3Result<Key> {
        self.keyring.master.ok_or_else(|| {
            s3_error!(
                NotImplemented,
                "SSE-S3 is not enabled on this gateway: start it with --sse-master-key-file \
                 FILE (32 random bytes; scripts/cluster.sh makes one)"
            )
        })
    }

    fn named_key(&self, id: &str) -> S3Result<Key> {
        if self.keyring.named.is_empty() {
            return Err(s3_error!(
                NotImplemented,
                "SSE-KMS is not enabled on this gateway: start it with --sse-kms-keys FILE \
                 (one `NAME HEX-KEY` a line)"
            ));
        }
        self.keyring
            .named
            .get(id)
            .copied()
            .ok_or_else(|| s3_error!(InvalidArgument, "no KMS key {id:?} on this gateway"))
    }

    /// The data key of an object (or upload) stored with `record`, for a request that gave
    /// `customer`: `None` for plain bytes. An SSE-C object read without its key is 400, with
    /// another key 403; an SSE-C key given for an object not stored with one is 400.
    pub fn data_key(
        &self,
        record: Option<&ObjectEncryption>,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<Key>> {
        let Some(record) = record else {
            return match customer {
                None => Ok(None),
                Some(_) => Err(not_applicable()),
            };
        };
        let (kek, context) = match (record.kind(), customer) {
            (Kind::CustomerKey, None) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "the object is stored with SSE-C: the request must give its key \
                     (x-amz-server-side-encryption-customer-*)"
                ))
            }
            (Kind::CustomerKey, Some(customer)) => {
                if !crypto::key_matches(&customer.key, &record.key_check) {
                    return Err(s3_error!(
                        AccessDenied,
                        "the SSE-C key given is not the object's"
                    ));
                }
                return Ok(Some(customer.key));
            }
            (_, Some(_)) => return Err(not_applicable()),
            (Kind::MasterKey, None) => (self.master_key()?, MASTER_CONTEXT.to_vec()),
            (Kind::NamedKey, None) => (
                self.named_key(&record.key_id)?,
                named_context(&record.key_id),
            ),
            (Kind::Unspecified, None) => {
                return Err(s3_error!(
                    NotImplemented,
                    "the object's encryption is of a kind this gateway does not know"
                ))
            }
        };
        crypto::unwrap(&kek, &record.wrapped_key, &context)
            .map(Some)
            .map_err(|e| {
                s3_error!(
                    InternalError,
                    "the object's data key does not unwrap ({e}): the gateway's key is not the \
                     one it was stored under"
                )
            })
    }

    /// The sealing a multipart upload's parts are written under (its data key, and its record
    /// without segments), for a part request that gave `customer`. A key other than the
    /// upload's is a bad request here (400), not a denied read.
    pub fn reseal(
        &self,
        upload: Option<&ObjectEncryption>,
        customer: Option<CustomerKey>,
    ) -> S3Result<Option<Sealing>> {
        let key = self
            .data_key(upload, customer.as_ref())
            .map_err(|e| match e.code() {
                s3s::S3ErrorCode::AccessDenied => s3_error!(
                    InvalidRequest,
                    "the SSE-C key is not the one the upload was created with"
                ),
                _ => e,
            })?;
        let Some(key) = key else {
            return Ok(None);
        };
        let record = upload.cloned().unwrap_or_default();
        Ok(Some(Sealing {
            key,
            record: ObjectEncryption {
                segments: Vec::new(),
                ..record
            },
            customer,
        }))
    }

    /// The record of an object completed from `parts` of an upload stored with `upload`: its
    /// key, and each part's segment in order.
    pub async fn parts_record(
        &self,
        upload: &ObjectEncryption,
        parts: &[FsPath],
    ) -> S3Result<ObjectEncryption> {
        let files = self
            .client
            .stat_many(parts)
            .await
            .map_err(|e| super::errors::s3(e, s3s::S3ErrorCode::NoSuchUpload))?;
        let mut segments = Vec::with_capacity(parts.len());
        for (path, file) in parts.iter().zip(files) {
            let file = file.map_err(|e| super::errors::s3(e, s3s::S3ErrorCode::InvalidPart))?;
            let record = record_of(&file)
                .filter(|r| r.key_check == upload.key_check && r.wrapped_key == upload.wrapped_key)
                .ok_or_else(|| {
                    s3_error!(InternalError, "part {path} is not under the upload's key")
                })?;
            segments.extend(record.segments.iter().cloned());
        }
        Ok(ObjectEncryption {
            segments,
            ..upload.clone()
        })
    }

    /// The bytes `start..end` of `file` as stored, decrypted under `key` when it is encrypted.
    pub fn plain_stream(
        &self,
        path: FsPath,
        file: GetFileResponse,
        key: Option<Key>,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let cipher = key.map(|key| {
            let segments = record_of(&file)
                .map(|r| r.segments.iter().map(to_segment).collect())
                .unwrap_or_default();
            ObjectCipher::new(key, segments)
        });
        let mut at = start;
        let mut cipher = cipher;
        self.range_stream(path, file, start, end)
            .and_then(move |bytes| {
                let offset = at;
                at += bytes.len() as u64;
                let decrypted = match &mut cipher {
                    None => Ok(bytes),
                    Some(cipher) => {
                        let mut buf = BytesMut::from(&bytes[..]);
                        cipher
                            .apply(offset, &mut buf)
                            .map(|()| buf.freeze())
                            .map_err(io::Error::other)
                    }
                };
                futures::future::ready(decrypted)
            })
    }
}

fn to_segment(segment: &EncryptedSegment) -> Segment {
    let mut iv = [0u8; 16];
    // A stored IV is always 16 bytes; a shorter one (a damaged record) reads as zeros after it
    // and decrypts to garbage, which is no worse than the damage itself.
    let n = segment.iv.len().min(16);
    iv[..n].copy_from_slice(&segment.iv[..n]);
    Segment {
        iv,
        size: segment.size,
    }
}

fn not_applicable() -> s3s::S3Error {
    s3_error!(
        InvalidRequest,
        "the object is not stored with SSE-C: the encryption parameters do not apply to it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
    const KEY_MD5: &str = "DWygnHRtgiJ77HCm+1rvHw==";

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn customer_keys_are_checked_against_their_md5() {
        assert!(customer_key(&None, &None, &None).unwrap().is_none());
        let key = customer_key(&some(AES256), &some(KEY), &some(KEY_MD5)).unwrap();
        assert_eq!(key.unwrap().md5, KEY_MD5);
        let refused = [
            (some(AES256), some(KEY), some("AAAAAAAAAAAAAAAAAAAAAA==")),
            (some(AES256), some(KEY), None),
            (some(AES256), None, None),
            (None, some(KEY), some(KEY_MD5)),
            (some("AES128"), some(KEY), some(KEY_MD5)),
            (some(AES256), some("c2hvcnQ="), some(KEY_MD5)),
        ];
        for (algorithm, key, md5) in refused {
            let e = customer_key(&algorithm, &key, &md5).err().unwrap();
            assert_eq!(e.status_code().unwrap().as_u16(), 400, "{key:?} {md5:?}");
        }
    }

    #[test]
    fn contradictory_headers_are_refused() {
        let kms = Some(ServerSideEncryption::from_static(
            ServerSideEncryption::AWS_KMS,
        ));
        let s3 = Some(ServerSideEncryption::from_static(AES256));
        let customer = customer_key(&some(AES256), &some(KEY), &some(KEY_MD5)).unwrap();
        assert!(matches!(wanted(&None, &None, None), Ok(Wanted::Plain)));
        assert!(matches!(wanted(&s3, &None, None), Ok(Wanted::Master)));
        assert!(matches!(
            wanted(&kms, &some("k"), None),
            Ok(Wanted::Named(_))
        ));
        assert!(wanted(&kms, &None, None).is_err());
        assert!(wanted(&None, &some("k"), None).is_err());
        assert!(wanted(&s3, &some("k"), None).is_err());
        assert!(wanted(&s3, &None, customer).is_err());
    }
}
