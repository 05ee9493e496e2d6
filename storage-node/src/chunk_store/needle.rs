//! The needle: one record of a volume file, a small chunk or a tombstone (docs/SMALL-CHUNKS.md).
//!
//! A needle is a 48-byte header (magic, kind, payload length, chunk id, header check), the
//! payload, and zero padding to a multiple of [`ALIGN`] bytes. The header check (4 bytes of
//! BLAKE3 over the rest of the header) tells a needle from torn or random bytes; the payload of
//! a chunk needle is checked by its id, which is its BLAKE3.

use bigfs_proto::ChunkId;

/// Bytes of a needle header.
pub const HEADER: usize = 48;
/// Needles start at multiples of this.
pub const ALIGN: u64 = 8;
const MAGIC: u32 = 0x314E_4642;
const CHECKED: usize = 44;

/// What a needle records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A chunk: the payload is its bytes.
    Chunk = 1,
    /// The chunk is deleted: the payload is the number of the volume that held it (4 bytes).
    Tombstone = 2,
}

/// A decoded, valid needle header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub len: u32,
    pub id: ChunkId,
}

impl Header {
    /// Bytes the whole needle takes in its volume, padding included.
    pub fn size(&self) -> u64 {
        size(self.len)
    }
}

/// Bytes a needle with a `len`-byte payload takes, padding included.
pub fn size(len: u32) -> u64 {
    (HEADER as u64 + u64::from(len)).div_ceil(ALIGN) * ALIGN
}

/// The whole needle: header, payload and padding.
pub fn encode(kind: Kind, id: ChunkId, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("needle payloads are small");
    let mut out = Vec::with_capacity(size(len) as usize);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    let check = header_check(&out[..CHECKED]);
    out.extend_from_slice(&check);
    out.extend_from_slice(payload);
    out.resize(size(len) as usize, 0);
    out
}

/// A tombstone for `id`, whose needle was in volume `volume`.
pub fn tombstone(id: ChunkId, volume: u32) -> Vec<u8> {
    encode(Kind::Tombstone, id, &volume.to_le_bytes())
}

/// The volume a tombstone's payload names; `None` for a payload of the wrong length.
pub fn tombstone_volume(payload: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(payload.try_into().ok()?))
}

/// Decodes a header; `None` if `bytes` is not a valid one (torn, zeroed, random or corrupt).
pub fn decode(bytes: &[u8]) -> Option<Header> {
    let bytes: &[u8; HEADER] = bytes.get(..HEADER)?.try_into().ok()?;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if u32_at(0) != MAGIC || bytes[44..48] != header_check(&bytes[..CHECKED]) {
        return None;
    }
    let kind = match bytes[4] {
        1 => Kind::Chunk,
        2 => Kind::Tombstone,
        _ => return None,
    };
    let id = ChunkId::from_slice(&bytes[12..44]).ok()?;
    Some(Header {
        kind,
        len: u32_at(8),
        id,
    })
}

fn header_check(bytes: &[u8]) -> [u8; 4] {
    let hash = ChunkId::of(bytes);
    hash.as_bytes()[..4].try_into().expect("4 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        for len in [0usize, 1, 7, 8, 100, 4096] {
            let payload = vec![0xa5; len];
            let id = ChunkId::of(&payload);
            let bytes = encode(Kind::Chunk, id, &payload);
            assert_eq!(bytes.len() as u64 % ALIGN, 0);
            assert_eq!(bytes.len() as u64, size(len as u32));
            let header = decode(&bytes).unwrap();
            assert_eq!(
                (header.kind, header.len, header.id),
                (Kind::Chunk, len as u32, id)
            );
            assert_eq!(&bytes[HEADER..HEADER + len], &payload[..]);
        }
        let t = tombstone(ChunkId::of(b"x"), 7);
        let header = decode(&t).unwrap();
        assert_eq!(header.kind, Kind::Tombstone);
        assert_eq!(tombstone_volume(&t[HEADER..HEADER + 4]), Some(7));
    }

    #[test]
    fn every_flipped_header_bit_is_caught() {
        let bytes = encode(Kind::Chunk, ChunkId::of(b"abc"), b"abc");
        for bit in 0..HEADER * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&bad), None, "bit {bit}");
        }
        assert_eq!(decode(&[0; HEADER]), None);
        assert_eq!(decode(&bytes[..HEADER - 1]), None);
    }
}
