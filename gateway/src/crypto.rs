//! The cryptography of server-side encryption, apart from S3: AES-256 in CTR mode over an
//! object's bytes (seekable, so any range decrypts alone, and the ciphertext is as long as the
//! plaintext), a keyed check that tells a customer's key from another without storing it, and
//! AES-256-GCM to wrap data keys under the gateway's keys. Integrity is not CTR's business:
//! every chunk is stored and read back under its BLAKE3 hash, which covers the ciphertext.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use anyhow::{bail, Context as _};
use tokio::io::{AsyncRead, ReadBuf};

/// An AES-256 key.
pub type Key = [u8; 32];
/// CTR mode's initial counter block.
pub type Iv = [u8; 16];

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// BLAKE3 derive-key context of the customer-key check.
const KEY_CHECK_CONTEXT: &str = "bigfs 2026-11 s3 sse-c key check";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;

/// A fresh random key or IV.
pub fn random<const N: usize>() -> [u8; N] {
    rand::random()
}

/// One run of an object's bytes encrypted under one IV: the object put in one piece, or one
/// part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub iv: Iv,
    pub size: u64,
}

/// A position past the object's segments: the record does not describe the bytes read.
#[derive(Debug, thiserror::Error)]
#[error("byte {0} is past the encrypted segments")]
pub struct PastTheEnd(pub u64);

/// AES-256-CTR over an object whose segments each have their own IV. Encryption and
/// decryption are the same XOR with the keystream, at the bytes' offset in the object.
pub struct ObjectCipher {
    key: Key,
    segments: Vec<Segment>,
    /// The segment the last call ended in, with its keystream (seeking it is cheap).
    current: Option<(usize, Aes256Ctr)>,
}

impl ObjectCipher {
    pub fn new(key: Key, segments: Vec<Segment>) -> Self {
        Self {
            key,
            segments,
            current: None,
        }
    }

    /// XORs the keystream into `buf`, which holds the object's bytes from `offset` on.
    pub fn apply(&mut self, mut offset: u64, mut buf: &mut [u8]) -> Result<(), PastTheEnd> {
        while !buf.is_empty() {
            let (index, start) = self.segment_at(offset).ok_or(PastTheEnd(offset))?;
            let segment = &self.segments[index];
            let within = offset - start;
            let n = ((segment.size - within) as usize).min(buf.len());
            let cipher = match &mut self.current {
                Some((at, cipher)) if *at == index => cipher,
                current => {
                    let cipher = Aes256Ctr::new(&self.key.into(), &segment.iv.into());
                    &mut current.insert((index, cipher)).1
                }
            };
            cipher.seek(within);
            let (now, rest) = buf.split_at_mut(n);
            cipher.apply_keystream(now);
            buf = rest;
            offset += n as u64;
        }
        Ok(())
    }

    /// The segment holding byte `offset`, and where it starts.
    fn segment_at(&self, offset: u64) -> Option<(usize, u64)> {
        let mut start = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            if offset < start + segment.size {
                return Some((index, start));
            }
            start += segment.size;
        }
        None
    }
}

/// An [`AsyncRead`] that encrypts what passes through it as one new segment, counting its
/// bytes: the segment's size once the reader is done.
pub struct EncryptingReader<R> {
    inner: R,
    cipher: Aes256Ctr,
    read: Arc<AtomicU64>,
}

impl<R> EncryptingReader<R> {
    pub fn new(inner: R, key: &Key, iv: &Iv) -> (Self, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let reader = Self {
            inner,
            cipher: Aes256Ctr::new(&(*key).into(), &(*iv).into()),
            read: read.clone(),
        };
        (reader, read)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EncryptingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &mut buf.filled_mut()[before..];
            self.cipher.apply_keystream(new);
            self.read.fetch_add(new.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

/// What is stored to tell a customer's key from another: a random salt, then BLAKE3 keyed by
/// the key over the salt. The key cannot be recovered from it.
pub fn key_check(key: &Key) -> Vec<u8> {
    let salt: [u8; SALT_LEN] = random();
    let mut check = salt.to_vec();
    check.extend_from_slice(checked(key, &salt).as_bytes());
    check
}

/// Whether `key` is the one `check` was made from (compared in constant time).
pub fn key_matches(key: &Key, check: &[u8]) -> bool {
    let Some((salt, mac)) = check.split_at_checked(SALT_LEN) else {
        return false;
    };
    let Ok(mac) = <[u8; 32]>::try_from(mac) else {
        return false;
    };
    checked(key, salt) == blake3::Hash::from_bytes(mac)
}

fn checked(key: &Key, salt: &[u8]) -> blake3::Hash {
    let derived = blake3::derive_key(KEY_CHECK_CONTEXT, key);
    blake3::keyed_hash(&derived, salt)
}

/// A wrapped key that does not open under the key given: another key wrapped it, or it was
/// altered.
#[derive(Debug, thiserror::Error)]
#[error("the data key does not unwrap under this key")]
pub struct WrongKey;

/// `data_key` sealed under `kek` with AES-256-GCM, bound to `context` (which must be given
/// again to unwrap): the nonce, the ciphertext and the tag.
pub fn wrap(kek: &Key, data_key: &Key, context: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = random();
    let sealed = Aes256Gcm::new(&(*kek).into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: data_key,
                aad: context,
            },
        )
        .expect("AES-GCM seals 32 bytes");
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&sealed);
    wrapped
}

/// The data key [`wrap`] sealed.
pub fn unwrap(kek: &Key, wrapped: &[u8], context: &[u8]) -> Result<Key, WrongKey> {
    let (nonce, sealed) = wrapped.split_at_checked(NONCE_LEN).ok_or(WrongKey)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| WrongKey)?;
    let key = Aes256Gcm::new(&(*kek).into())
        .decrypt(
            &nonce.into(),
            Payload {
                msg: sealed,
                aad: context,
            },
        )
        .map_err(|_| WrongKey)?;
    key.try_into().map_err(|_| WrongKey)
}

/// The gateway's own keys: the master key of SSE-S3 and the named keys of SSE-KMS.
#[derive(Default)]
pub struct Keyring {
    pub master: Option<Key>,
    pub named: HashMap<String, Key>,
}

impl Keyring {
    /// The master key from `path`: exactly 32 bytes (as `head -c 32 /dev/urandom` writes).
    pub fn read_master(path: &Path) -> anyhow::Result<Key> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the master key {}", path.display()))?;
        let len = bytes.len();
        bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "the master key {} holds {len} bytes, not 32",
                path.display()
            )
        })
    }

    /// Named keys from `path`: one `NAME HEX` a line (the key as 64 hex digits), `#` starting
    /// a comment.
    pub fn read_named(path: &Path) -> anyhow::Result<HashMap<String, Key>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        parse_named(&text).with_context(|| format!("in {}", path.display()))
    }
}

fn parse_named(text: &str) -> anyhow::Result<HashMap<String, Key>> {
    let mut keys = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, hex)) = line.split_once(char::is_whitespace) else {
            bail!("line {}: want NAME HEX, got {line:?}", n + 1);
        };
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("line {}: the key of {name:?} is not 64 hex digits", n + 1);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
        }
        if keys.insert(name.to_string(), key).is_some() {
            bail!("line {}: {name:?} is named twice", n + 1);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn two_segments() -> Vec<Segment> {
        vec![
            Segment {
                iv: random(),
                size: 1000,
            },
            Segment {
                iv: random(),
                size: 777,
            },
        ]
    }

    #[test]
    fn encryption_round_trips_and_changes_every_block() {
        let key = random();
        let segments = two_segments();
        let plain = data(1777);
        let mut buf = plain.clone();
        ObjectCipher::new(key, segments.clone())
            .apply(0, &mut buf)
            .unwrap();
        assert_ne!(buf, plain);
        assert!(buf.chunks(16).zip(plain.chunks(16)).all(|(c, p)| c != p));
        ObjectCipher::new(key, segments).apply(0, &mut buf).unwrap();
        assert_eq!(buf, plain);
    }

    #[test]
    fn any_range_decrypts_alone_as_the_whole_stream_does() {
        let key = random();
        let segments = two_segments();
        let plain = data(1777);
        let mut whole = plain.clone();
        ObjectCipher::new(key, segments.clone())
            .apply(0, &mut whole)
            .unwrap();
        // Starts inside blocks, on block edges, across the segment edge (1000), to the end.
        for (start, end) in [
            (0, 1),
            (5, 37),
            (16, 32),
            (990, 1010),
            (1000, 1777),
            (1, 1777),
        ] {
            let mut range = whole[start..end].to_vec();
            ObjectCipher::new(key, segments.clone())
                .apply(start as u64, &mut range)
                .unwrap();
            assert_eq!(range, plain[start..end], "range {start}..{end}");
        }
        // One cipher reused for pieces out of order, as a GET's chunks are not.
        let mut cipher = ObjectCipher::new(key, segments);
        let mut tail = whole[1500..].to_vec();
        cipher.apply(1500, &mut tail).unwrap();
        let mut head = whole[..3].to_vec();
        cipher.apply(0, &mut head).unwrap();
        assert_eq!((&tail[..], &head[..]), (&plain[1500..], &plain[..3]));
        assert!(cipher.apply(1777, &mut [0u8; 1]).is_err());
    }

    #[tokio::test]
    async fn the_reader_encrypts_as_the_cipher_does_and_counts() {
        let key = random();
        let iv = random();
        let plain = data(100_000);
        let (mut reader, read) = EncryptingReader::new(&plain[..], &key, &iv);
        let mut sealed = Vec::new();
        reader.read_to_end(&mut sealed).await.unwrap();
        assert_eq!(read.load(Ordering::Relaxed), 100_000);
        let segment = Segment { iv, size: 100_000 };
        ObjectCipher::new(key, vec![segment])
            .apply(0, &mut sealed)
            .unwrap();
        assert_eq!(sealed, plain);
    }

    #[test]
    fn a_wrong_customer_key_is_told_apart() {
        let key: Key = random();
        let check = key_check(&key);
        assert!(key_matches(&key, &check));
        assert!(!key_matches(&random(), &check));
        assert!(!key_matches(&key, &check[1..]));
        // Salted: the same key checks differently each time, so equal keys are not seen.
        assert_ne!(key_check(&key), check);
    }

    #[test]
    fn wrapped_keys_open_only_under_their_key_and_context() {
        let kek: Key = random();
        let data_key: Key = random();
        let wrapped = wrap(&kek, &data_key, b"sse-s3");
        assert_eq!(unwrap(&kek, &wrapped, b"sse-s3").unwrap(), data_key);
        assert!(unwrap(&random(), &wrapped, b"sse-s3").is_err());
        assert!(unwrap(&kek, &wrapped, b"sse-kms").is_err());
        let mut altered = wrapped.clone();
        altered[20] ^= 1;
        assert!(unwrap(&kek, &altered, b"sse-s3").is_err());
        assert!(unwrap(&kek, &wrapped[..10], b"sse-s3").is_err());
    }

    #[test]
    fn named_keys_parse_and_bad_lines_are_refused() {
        let hex = "00".repeat(31) + "ff";
        let keys = parse_named(&format!("# ring\ntestkey-1 {hex}\n\nk2\t{hex} # x\n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys["testkey-1"][31], 0xff);
        assert!(parse_named("k1").is_err());
        assert!(parse_named("k1 abcd").is_err());
        assert!(parse_named(&format!("k1 {hex}\nk1 {hex}")).is_err());
    }
}
