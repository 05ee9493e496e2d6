//! The command line `bigfs` takes: every subcommand, its flags and their help, as clap parses
//! them. `main.rs` runs what they ask.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use bigfs_client::client;
use bigfs_proto::limits::MAX_REPLICATION;
use bigfs_proto::units::Size;

/// BigFS client: store, fetch, list and remove files in a BigFS cluster.
///
/// Remote paths are absolute ("/photos/cat.jpg"); a put creates the directories above its file.
/// Exit status is 0 on success, 2 for a usage error and 1 for any other error, which is printed
/// as one line.
#[derive(Parser, Debug)]
#[command(name = "bigfs", version = bigfs_proto::VERSION, about, long_about)]
pub struct Cli {
    /// The metadata server's URL: http://HOST:PORT, or HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "BIGFS_META",
        default_value = "http://127.0.0.1:9400",
        value_parser = client::meta_url
    )]
    pub meta: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Upload a local file (or - for stdin) to REMOTE; a REMOTE ending in / gets the file's name.
    /// With -r, upload every file below the directory LOCAL to the same place below REMOTE.
    Put {
        local: PathBuf,
        remote: String,
        /// Upload a whole directory tree (chunks and commits batched across files).
        #[arg(short, long)]
        recursive: bool,
        /// Copies of each chunk (default: the cluster's replication factor).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_REPLICATION)))]
        replicas: Option<u32>,
        /// Replace REMOTE if it exists.
        #[arg(long)]
        force: bool,
        /// Chunks uploaded at once. With -r, a tree of files smaller than a chunk keeps as
        /// many bytes in flight in up to 16 times as many transfers (128 for 64 KiB files).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        parallel: u16,
        /// Keep the local mode and modification time (default: 0644 and the time of the put).
        #[arg(short, long)]
        preserve: bool,
        /// Print a JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Download REMOTE to a local file (or - for stdout), verifying every chunk. With -r,
    /// download every file below the directory REMOTE to the same place below LOCAL.
    ///
    /// A file is written under a temporary name and renamed into place when complete; an
    /// existing one is replaced only with --force. A symbolic link is followed (the file it
    /// names is replaced, the link stays); a device or FIFO (/dev/null, /dev/stdout) is
    /// written through, never replaced.
    Get {
        remote: String,
        local: PathBuf,
        /// Download a whole directory tree.
        #[arg(short, long)]
        recursive: bool,
        /// Replace LOCAL (with -r, the files below it) if it is an existing file.
        #[arg(long)]
        force: bool,
        /// Chunks downloaded at once. With -r, that many per file, 16 files at a time (64
        /// at a time for files of 256 KiB or less).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        parallel: u16,
    },
    /// List a directory (directories first) or show one file.
    // -h is --human-readable here, as in ls; help stays on --help.
    #[command(disable_help_flag = true)]
    Ls {
        #[arg(default_value = "/")]
        remote: String,
        /// Long format: kind, replication, size, modification time.
        #[arg(short, long)]
        long: bool,
        /// With -l, sizes in KiB, MiB, GiB.
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        /// List the directories below too, each under a "/path:" header (with --json, one
        /// flat array of every entry).
        #[arg(short = 'R', long)]
        recursive: bool,
        #[arg(long)]
        json: bool,
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Remove a file, or a directory and everything below it with -r.
    Rm {
        remote: String,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Show a file's chunks and the nodes holding each.
    Stat {
        remote: String,
        #[arg(long)]
        json: bool,
    },
    /// Show the storage nodes and their health.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// Check every chunk's copies: healthy, under-replicated, missing, corrupt. Exits 1 when
    /// any chunk is missing (no live copy).
    Fsck {
        /// How many problem chunks to list.
        #[arg(long, default_value_t = 20)]
        max_problems: u32,
        #[arg(long)]
        json: bool,
    },
    /// Manage one storage node.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Create a directory.
    Mkdir {
        remote: String,
        /// Create missing parents too; an existing directory is no error.
        #[arg(short, long)]
        parents: bool,
    },
    /// Remove an empty directory.
    Rmdir {
        remote: String,
    },
    /// Move or rename a file or a whole directory (into DST when DST is a directory). Metadata
    /// only and atomic: however many files move, no byte is copied.
    Mv {
        src: String,
        dst: String,
        /// Replace a file at the destination.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Copy a file (or a directory with -r) inside the cluster (into DST when DST is a
    /// directory). Metadata only and atomic: the copy shares the chunks, no byte moves.
    Cp {
        src: String,
        dst: String,
        #[arg(short, long)]
        recursive: bool,
        /// Replace a file at the destination.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Space used below a path: files, directories, logical bytes and bytes stored counting
    /// replicas.
    #[command(disable_help_flag = true)]
    Du {
        #[arg(default_value = "/")]
        remote: String,
        /// One line for REMOTE as a whole (without it, one line per entry of a directory).
        #[arg(short, long)]
        summarize: bool,
        /// Sizes in KiB, MiB, GiB.
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        #[arg(long)]
        json: bool,
        /// Print help (-h means human-readable sizes here, as in du(1)).
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Cluster capacity, used and free space, with a line per storage node.
    #[command(disable_help_flag = true)]
    Df {
        /// Sizes in KiB, MiB, GiB.
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        #[arg(long)]
        json: bool,
        /// Print help (-h means human-readable sizes here, as in df(1)).
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Write a file's bytes to stdout, verifying every chunk (as `get REMOTE -`).
    Cat {
        remote: String,
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        parallel: u16,
    },
    /// Print the shell completion script for SHELL, e.g. `source <(bigfs completion bash)`
    /// in ~/.bashrc, `bigfs completion zsh > ~/.zfunc/_bigfs` or `bigfs completion fish >
    /// ~/.config/fish/completions/bigfs.fish`.
    Completion {
        shell: clap_complete::Shell,
    },
    Sync(bigfs_client::sync::cli::SyncArgs),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Commit many empty-file records in batches, then list, copy (cp -r) and move (mv) one
    /// full directory: creates/s, and the listing, copy and move times of the metadata server
    /// alone (no storage node is involved).
    Meta {
        /// Records to create.
        #[arg(long, default_value_t = 1_000_000)]
        files: u64,
        /// Records per commit call.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Records per directory (the first directory is listed).
        #[arg(long = "dir-files", default_value_t = 100_000)]
        per_dir: u64,
        /// Where to create them; must not exist yet.
        #[arg(long, default_value = "/bench-meta")]
        root: String,
        #[arg(long)]
        json: bool,
    },
    /// Many small files written, then read, at a fixed concurrency, in the shape of SeaweedFS's
    /// `weed benchmark` (10,000 files of 1 KiB, 16 at a time): ops/s and latency percentiles
    /// per phase, every read verified.
    Small {
        #[arg(long, default_value_t = 10_000)]
        files: u64,
        /// Bytes per file.
        #[arg(long, default_value = "1KiB")]
        size: Size,
        /// Operations in flight at once.
        #[arg(short = 'c', long, default_value_t = 16)]
        concurrency: usize,
        /// Where to write them; must not exist yet.
        #[arg(long, default_value = "/bench-small")]
        root: String,
        /// Before each read phase, write back dirty pages and drop this machine's page cache
        /// (needs root), so reads come from the disks of nodes that run on this machine.
        #[arg(long)]
        drop_caches: bool,
        #[arg(long)]
        json: bool,
    },
    /// Rounds of N clients at once, each with its own connections, putting then getting
    /// distinct files (one big file each, then small ones): aggregate MiB/s and files/s, and
    /// per-file latency percentiles, per number of clients.
    Load {
        /// The numbers of clients, one round each.
        #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
        clients: Vec<usize>,
        /// The big file each client puts and gets (0: none).
        #[arg(long, default_value = "256MiB")]
        big_size: Size,
        /// Small files each client puts and gets.
        #[arg(long, default_value_t = 200)]
        small_files: u64,
        #[arg(long, default_value = "64KiB")]
        small_size: Size,
        /// Where to write them; must not exist yet.
        #[arg(long, default_value = "/bench-load")]
        root: String,
        /// Before each read phase, write back dirty pages and drop this machine's page cache
        /// (needs root), so reads come from the disks of nodes that run on this machine.
        #[arg(long)]
        drop_caches: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Decommission a node: it takes no new chunks and its chunks are copied elsewhere; `bigfs
    /// nodes` then shows it as "draining", and "drained" once it is safe to remove.
    Drain {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a drain: the node takes new chunks again; copies made meanwhile are trimmed.
    Undrain { id: String },
    /// Forget a node for good (it stops counting for safe mode after restarts). Refused while
    /// it still sends heartbeats, and while it holds the only copy of any chunk: drain it and
    /// stop it first.
    Remove { id: String },
}
