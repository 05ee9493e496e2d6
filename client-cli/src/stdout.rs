//! Standard output that tells a reader who went away from a failed write.
//!
//! `bigfs ls | head -1` closes the pipe while the CLI is still writing. Rust ignores SIGPIPE,
//! so the next write fails with EPIPE (and `println!` panics on it). Everything the CLI prints
//! on stdout (listings, JSON, a file got to `-`) goes through [`Stdout`], which marks that
//! error as [`StdoutClosed`], so the CLI can end quietly, as `cat` and `ls` do, rather than
//! report it. A marker rather than the error kind alone: a broken connection to a server can
//! end in EPIPE too, and that is an error to report.

use std::fmt;
use std::io::{self, Write};

/// The process's stdout, whose writes fail with a [`StdoutClosed`] error once no one reads it.
#[derive(Debug)]
pub struct Stdout(io::Stdout);

impl Default for Stdout {
    fn default() -> Self {
        Self(io::stdout())
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark_closed)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark_closed)
    }
}

/// What a write to [`Stdout`] fails with when its reader has gone (inside an `io::Error` of
/// kind `BrokenPipe`).
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

fn mark_closed(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        error
    }
}

/// Whether `error` (or an error it carries) is a write to [`Stdout`] that found no reader.
pub fn is_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn only_a_marked_broken_pipe_counts_as_closed() {
        let closed = mark_closed(io::Error::from(io::ErrorKind::BrokenPipe));
        let closed = Err::<(), _>(closed).context("write output").unwrap_err();
        assert!(is_closed(&closed.context("get /f")));
        // EPIPE from anywhere else (a socket, say) is an error to report.
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!is_closed(&other));
        let full = anyhow::Error::from(mark_closed(io::Error::from(io::ErrorKind::StorageFull)));
        assert!(!is_closed(&full));
    }
}
