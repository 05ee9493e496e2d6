//! `bigfs bench`: the cluster measured through the client library, as a user would load it.
//!
//! - [`meta`]: the metadata server alone (record creates, listing, directory copy and move);
//! - [`small`]: many tiny files written then read at a fixed concurrency, in the shape of
//!   `weed benchmark`, so the two print comparable figures;
//! - [`load`]: N concurrent clients (each its own connections) putting and getting distinct
//!   big and small files, for aggregate throughput and per-file latency as clients grow.
//!
//! Benchmarks are figures, not tests: run them on an otherwise idle machine, against the peers
//! in the same invocation (`scripts/bench.sh`).

mod latency;
pub mod load;
pub mod meta;
pub mod small;

pub use latency::Phase;
pub use meta::{MetaBenchOptions, MetaBenchReport};

use anyhow::Context;

use bigfs_proto::FsPath;

use crate::progress::Progress;
use crate::upload::{PutOptions, Source};
use crate::Client;

/// Deterministic bytes for file `index` of a benchmark, `size` of them, made as they are read:
/// distinct per file, so that deduplication does not make a put free, and never held whole (a
/// big file per client would not fit in memory).
struct Payload {
    state: u64,
    left: u64,
}

impl Payload {
    fn new(index: u64, size: u64) -> Self {
        Self {
            state: index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            left: size,
        }
    }
}

impl std::io::Read for Payload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for byte in &mut buf[..n] {
            // xorshift64
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = self.state as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Puts file `index` of `size` benchmark bytes at `path`, replacing what is there.
async fn put_payload(client: &Client, path: &FsPath, index: u64, size: u64) -> anyhow::Result<()> {
    let options = PutOptions {
        replication: None,
        overwrite: true,
        parallel: 8,
        preserve: false,
    };
    let source = Source::reader(Payload::new(index, size), path.as_str(), Some(size));
    client
        .put(source, path, &options, &Progress::hidden())
        .await
        .with_context(|| format!("put {path}"))?;
    Ok(())
}

/// Refuses a benchmark root that exists: a benchmark writes and removes only its own files.
async fn check_fresh(client: &Client, root: &FsPath) -> anyhow::Result<()> {
    if client.list(root).await.is_ok() {
        anyhow::bail!("{root} exists: give the benchmark a --root it can create");
    }
    Ok(())
}

/// Reads the file at `path` whole, every chunk verified, and checks it has `size` bytes.
async fn get_checked(client: &Client, path: &FsPath, size: u64) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    let file = client.stat(path).await?;
    let mut read = 0;
    let mut chunks = std::pin::pin!(client.chunk_stream(path.clone(), file.chunks, 8));
    while let Some(chunk) = chunks
        .try_next()
        .await
        .with_context(|| format!("get {path}"))?
    {
        read += chunk.len() as u64;
    }
    if read != size {
        anyhow::bail!("get {path}: {read} bytes, {size} were put");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(index: u64, size: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut Payload::new(index, size), &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn payloads_are_distinct_repeatable_and_exactly_sized() {
        assert_eq!(payload(1, 64), payload(1, 64));
        assert_ne!(payload(1, 64), payload(2, 64));
        assert_eq!(payload(7, 100_000).len(), 100_000);
        assert!(payload(3, 0).is_empty());
    }
}
