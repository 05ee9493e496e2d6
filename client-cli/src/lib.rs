//! The BigFS client library, on which the `bigfs` command-line tool is built.
//!
//! A [`Client`] asks the metadata server *where* and moves chunk bytes directly to and from the
//! storage nodes: [`upload`] cuts a stream into chunks, stores them through replication chains
//! and commits the file; [`download`] fetches chunks in parallel, verifies each against its id
//! and fails over to the next replica; [`tree`] does both for whole directories, with batched
//! placement and commits; the namespace verbs (mkdir, rename, copy, attributes, usage) move no
//! bytes at all. Memory is bounded by the chunks in flight, never by the size of the file.
//! [`stdout`] is the CLI's standard output, which tells a reader that went away
//! (`bigfs ls | head`) from a failed write.

pub mod bench;
mod chunk_sink;
mod chunker;
pub mod client;
mod destination;
pub mod download;
pub mod health;
pub mod local_attrs;
mod meta_batch;
mod namespace;
pub mod progress;
pub mod stdout;
pub mod sync;
pub mod tree;
pub mod upload;

pub use client::Client;
