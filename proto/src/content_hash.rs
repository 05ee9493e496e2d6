//! A file's content hash: BLAKE3 over its chunk ids and sizes, in order. The metadata server
//! derives it from a file's record and `bigfs sync` from a local file's chunks, so both must
//! compute it here: equal hashes mean equal bytes cut at the same chunk size, known without
//! reading a byte of the stored file.

/// Builds a content hash one chunk at a time.
#[derive(Default)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    /// Adds the next chunk: its 32-byte id, then its size as u64 little-endian.
    pub fn add(&mut self, id: &[u8], size: u64) {
        self.0.update(id);
        self.0.update(&size.to_le_bytes());
    }

    pub fn finish(&self) -> blake3::Hash {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_sizes_count() {
        let hash = |chunks: &[(&[u8], u64)]| {
            let mut hasher = ContentHasher::default();
            for (id, size) in chunks {
                hasher.add(id, *size);
            }
            hasher.finish()
        };
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(hash(&[(&a, 5), (&b, 6)]), hash(&[(&a, 5), (&b, 6)]));
        assert_ne!(hash(&[(&a, 5), (&b, 6)]), hash(&[(&b, 6), (&a, 5)]));
        assert_ne!(hash(&[(&a, 5)]), hash(&[(&a, 6)]));
    }
}
