//! Chunk ids: the BLAKE3 hash of a chunk's bytes.
//!
//! On the wire an id is exactly 64 lowercase hex characters. Parsing is strict so that the id
//! that names a file on a storage node's disk is always one this module built from 32 bytes,
//! never a string that came off the network.

use std::fmt;
use std::str::FromStr;

/// A chunk's identity: the BLAKE3 hash of its contents.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkIdError {
    #[error("chunk id {0:?} is not 64 lowercase hex characters")]
    Malformed(String),
    #[error("chunk id has {0} bytes, want 32")]
    WrongLength(usize),
}

impl ChunkId {
    /// The id of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, ChunkIdError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ChunkIdError::WrongLength(bytes.len()))?;
        Ok(Self(array))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `data` hashes to this id.
    pub fn matches(&self, data: &[u8]) -> bool {
        // blake3::Hash compares in constant time; not needed here, but it is the natural type.
        blake3::hash(data) == blake3::Hash::from_bytes(self.0)
    }

    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// A short form for logs and messages.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl FromStr for ChunkId {
    type Err = ChunkIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let strict = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !strict {
            return Err(ChunkIdError::Malformed(s.chars().take(80).collect()));
        }
        blake3::Hash::from_hex(s)
            .map(|h| Self(*h.as_bytes()))
            .map_err(|_| ChunkIdError::Malformed(s.to_string()))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        let hex = id.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<ChunkId>().unwrap(), id);
        assert!(id.matches(b"hello"));
        assert!(!id.matches(b"hellO"));
    }

    #[test]
    fn rejects_anything_but_64_lowercase_hex() {
        let good = ChunkId::of(b"x").to_string();
        for bad in [
            String::new(),
            good[..63].to_string(),
            format!("{good}0"),
            good.to_uppercase(),
            format!("../{}", &good[3..]),
            format!("{}g", &good[..63]),
            format!("{}/", &good[..63]),
        ] {
            assert!(bad.parse::<ChunkId>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(
            ChunkId::from_slice(&[0; 31]),
            Err(ChunkIdError::WrongLength(31))
        );
        assert!(ChunkId::from_slice(&[7; 32]).is_ok());
    }
}
