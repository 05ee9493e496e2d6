//! Deterministic test data and the chunk arithmetic the suites check `stat` against.

/// One kibibyte.
pub const KIB: usize = 1 << 10;
/// One mebibyte.
pub const MIB: usize = 1 << 20;
/// The default chunk size (1 MiB), as documented in DESIGN.md.
pub const CHUNK: usize = MIB;

/// `len` pseudo-random bytes, the same for the same `seed`.
///
/// SplitMix64 rather than a cryptographic generator: the suites build tens of MiB in debug
/// builds, and they only need bytes that differ between seeds and do not repeat within a file
/// (so no two chunks of one file deduplicate by accident).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x5851_F42D_4C95_7F2D;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The `(id, size)` of each chunk of `data` cut at `chunk_size`: id is the BLAKE3 hex of the slice.
/// An empty file has no chunks.
pub fn expected_chunks(data: &[u8], chunk_size: usize) -> Vec<(String, usize)> {
    data.chunks(chunk_size)
        .map(|c| (blake3::hash(c).to_hex().to_string(), c.len()))
        .collect()
}

/// A short description of a byte mismatch, for assertion messages (never the bytes themselves).
pub fn diff_summary(expected: &[u8], actual: &[u8]) -> String {
    if expected == actual {
        return "identical".to_string();
    }
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    format!(
        "expected {} bytes, got {} bytes; first difference at offset {first} (chunk {})",
        expected.len(),
        actual.len(),
        first / CHUNK
    )
}

/// The distinct chunks of several files cut at `chunk_size`: id → size. With R copies of each on
/// an R-node cluster, every node holds exactly these (the sum of sizes is its `used`).
pub fn distinct_chunks<'a>(
    files: impl IntoIterator<Item = &'a [u8]>,
    chunk_size: usize,
) -> std::collections::BTreeMap<String, usize> {
    files
        .into_iter()
        .flat_map(|data| expected_chunks(data, chunk_size))
        .collect()
}
