//! Cutting a put's sources into hashed, chunk-sized pieces, on a blocking thread.
//!
//! The thread reads one source after another (a stream, or files opened one at a time), cuts
//! each into pieces of exactly the chunk size (the last piece of a source shorter, an empty
//! source none), hashes every piece, and hands pieces over through a bounded channel, followed
//! by an end marker per source that says how many chunks it had. The channel's bound is what
//! keeps a put's memory independent of the size of what it reads.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::mpsc;

use bigfs_proto::ChunkId;

/// What a put reads.
pub enum Input {
    /// One stream, e.g. standard input; `name` says what it is in errors.
    Stream {
        reader: Box<dyn Read + Send>,
        name: String,
    },
    /// Files, read in order and opened one at a time.
    Files(Vec<PathBuf>),
}

/// One chunk-sized piece of source `file`.
pub struct Piece {
    pub file: usize,
    pub index: usize,
    pub id: ChunkId,
    pub data: Bytes,
}

pub enum Cut {
    Piece(Piece),
    /// Source `file` has been read: it had `chunks` pieces.
    End {
        file: usize,
        chunks: usize,
    },
}

/// The buffer a stream's first piece is read into, so that a small stream costs little memory.
const STREAM_FIRST_READ: u64 = 64 * 1024;

/// Starts reading `input` on a blocking thread; the channel holds at most `depth` items.
/// Reading stops early when the receiver is dropped (the put failed).
pub fn cut(input: Input, chunk_size: usize, depth: usize) -> mpsc::Receiver<anyhow::Result<Cut>> {
    let (tx, rx) = mpsc::channel(depth);
    tokio::task::spawn_blocking(move || {
        let outcome = match input {
            Input::Stream { reader, name } => {
                cut_one(0, reader, None, chunk_size, &tx).with_context(|| format!("read {name}"))
            }
            Input::Files(paths) => paths.iter().enumerate().try_for_each(|(file, path)| {
                let reader =
                    File::open(path).with_context(|| format!("open {}", path.display()))?;
                // Only a regular file's length says how much it holds (a FIFO's says 0).
                let len = (reader.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len());
                cut_one(file, reader, len, chunk_size, &tx)
                    .with_context(|| format!("read {}", path.display()))
            }),
        };
        if let Err(e) = outcome {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// Cuts one source of length `len`, when known; a closed channel ends it quietly (the receiver
/// has given up).
fn cut_one(
    file: usize,
    reader: impl Read,
    len: Option<u64>,
    chunk_size: usize,
    tx: &mpsc::Sender<anyhow::Result<Cut>>,
) -> io::Result<()> {
    let mut reader = reader;
    let mut index = 0;
    // Each piece is read into a buffer of the length it is expected to have, because a buffer
    // that grows copies what it holds: what the file's length says is left, or, for a stream,
    // a small buffer for its first piece and full-size ones once that came out full.
    let mut expected = len.unwrap_or(STREAM_FIRST_READ);
    loop {
        // `take` keeps every piece but the last at exactly the chunk size, whatever the reads
        // return; `read_to_end` fills spare capacity without zeroing it first.
        let mut buf = Vec::with_capacity(expected.min(chunk_size as u64) as usize);
        let filled = (&mut reader)
            .take(chunk_size as u64)
            .read_to_end(&mut buf)?;
        expected = match len {
            Some(_) => expected.saturating_sub(filled as u64),
            None => chunk_size as u64,
        };
        if filled > 0 {
            buf.shrink_to_fit();
            let piece = Piece {
                file,
                index,
                id: ChunkId::of(&buf),
                data: Bytes::from(buf),
            };
            if tx.blocking_send(Ok(Cut::Piece(piece))).is_err() {
                return Ok(());
            }
            index += 1;
        }
        if filled < chunk_size {
            let _ = tx.blocking_send(Ok(Cut::End {
                file,
                chunks: index,
            }));
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(input: Input, chunk_size: usize) -> Vec<(usize, usize, usize)> {
        let mut rx = cut(input, chunk_size, 2);
        let mut out = Vec::new();
        while let Some(item) = rx.recv().await {
            match item.unwrap() {
                Cut::Piece(p) => {
                    assert!(p.id.matches(&p.data));
                    out.push((p.file, p.index, p.data.len()));
                }
                Cut::End { file, chunks } => out.push((file, usize::MAX, chunks)),
            }
        }
        out
    }

    #[tokio::test]
    async fn pieces_are_exactly_the_chunk_size_but_the_last() {
        let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let input = Input::Stream {
            reader: Box::new(io::Cursor::new(data)),
            name: "a buffer".into(),
        };
        let got = collect(input, 1000).await;
        assert_eq!(
            got,
            [(0, 0, 1000), (0, 1, 1000), (0, 2, 500), (0, usize::MAX, 3)]
        );
    }

    #[tokio::test]
    async fn empty_and_exact_multiple_sources() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        let exact = dir.path().join("exact");
        std::fs::write(&empty, b"").unwrap();
        std::fs::write(&exact, vec![7u8; 2000]).unwrap();
        let got = collect(Input::Files(vec![empty, exact]), 1000).await;
        assert_eq!(
            got,
            [
                (0, usize::MAX, 0),
                (1, 0, 1000),
                (1, 1, 1000),
                (1, usize::MAX, 2)
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error_naming_it() {
        let mut rx = cut(Input::Files(vec![PathBuf::from("/nonexistent/x")]), 1000, 2);
        let err = match rx.recv().await.unwrap() {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("read a missing file"),
        };
        assert!(err.contains("/nonexistent/x"), "{err}");
    }
}
