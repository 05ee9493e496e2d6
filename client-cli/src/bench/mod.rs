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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use bigfs_proto::FsPath;

use crate::progress::Progress;
use crate::upload::{PutOptions, Source};
use crate::Client;

/// Pseudo-random bytes for one put of a benchmark, `size` of them, made as they are read: never
/// held whole (a big file per client would not fit in memory), and new to the cluster: chunks
/// are content-addressed, so bytes an earlier round or run stored (and GC has not yet removed)
/// would make the put free.
///
/// Made eight bytes at a time, from their position alone (a SplitMix64 of seed and word
/// index): the peers' load generator makes its data before the clock starts, and a generator
/// a byte at a time cost the client a quarter of the CPU of a 4-client put (perf, `bench load`),
/// which the benchmark then reported as BigFS's.
struct Payload {
    seed: u64,
    /// Bytes made so far.
    pos: u64,
    left: u64,
}

impl Payload {
    fn new(seed: u64, size: u64) -> Self {
        Self {
            seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            pos: 0,
            left: size,
        }
    }

    /// A payload no other put of this process, nor of an earlier benchmark run, has used: a
    /// per-process salt from the clock and the pid, plus a counter.
    fn fresh(size: u64) -> Self {
        static SALT: OnceLock<u64> = OnceLock::new();
        static PUTS: AtomicU64 = AtomicU64::new(0);
        let salt = *SALT.get_or_init(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ u64::from(std::process::id()).rotate_right(16)
        });
        Self::new(salt ^ PUTS.fetch_add(1, Ordering::Relaxed), size)
    }

    /// The `index`th eight bytes of the payload.
    fn word(&self, index: u64) -> [u8; 8] {
        // SplitMix64's output function.
        let mut z = self
            .seed
            .wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    }
}

impl std::io::Read for Payload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        // Up to the next word boundary byte by byte, then whole words, then the rest.
        let to_boundary = ((8 - self.pos % 8) % 8) as usize;
        let (head, rest) = buf[..n].split_at_mut(to_boundary.min(n));
        let mut words = rest.chunks_exact_mut(8);
        for byte in head {
            *byte = self.word(self.pos / 8)[(self.pos % 8) as usize];
            self.pos += 1;
        }
        for word in &mut words {
            word.copy_from_slice(&self.word(self.pos / 8));
            self.pos += 8;
        }
        for byte in words.into_remainder() {
            *byte = self.word(self.pos / 8)[(self.pos % 8) as usize];
            self.pos += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Puts `size` fresh benchmark bytes at `path`, replacing what is there.
async fn put_payload(client: &Client, path: &FsPath, size: u64) -> anyhow::Result<()> {
    let options = PutOptions {
        replication: None,
        overwrite: true,
        parallel: 8,
        preserve: false,
        if_version: None,
    };
    let source = Source::reader(Payload::fresh(size), path.as_str(), Some(size));
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

/// Before a read phase, with `--drop-caches`: writes back dirty pages and drops this machine's
/// page cache, so that reads come from the nodes' disks (the nodes of a benchmark cluster run
/// on this machine), as a peer's benchmark reads after the same drop.
fn drop_page_cache() -> anyhow::Result<()> {
    let synced = std::process::Command::new("sync")
        .status()
        .context("drop caches: run sync")?;
    anyhow::ensure!(synced.success(), "drop caches: sync failed: {synced}");
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("drop caches: write /proc/sys/vm/drop_caches (needs root)")
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

    #[test]
    fn payloads_do_not_depend_on_how_they_are_read() {
        let whole = payload(5, 1000);
        let mut pieces = Vec::new();
        let mut p = Payload::new(5, 1000);
        for size in [1, 3, 8, 13, 64, 7, 1000].into_iter().cycle() {
            let mut buf = vec![0; size];
            match std::io::Read::read(&mut p, &mut buf).unwrap() {
                0 => break,
                n => pieces.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(pieces, whole);
    }

    #[test]
    fn every_fresh_payload_is_new() {
        let read = |mut p: Payload| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut p, &mut bytes).unwrap();
            bytes
        };
        let first = read(Payload::fresh(64));
        assert_eq!(first.len(), 64);
        assert_ne!(first, read(Payload::fresh(64)));
    }
}
