//! `bigfs`: the BigFS command-line client.

mod output;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand};

use bigfs_client::bench::MetaBenchOptions;
use bigfs_client::download::Target;
use bigfs_client::progress::Progress;
use bigfs_client::stdout::{self, Stdout};
use bigfs_client::tree::TreeReport;
use bigfs_client::upload::{PutOptions, Source};
use bigfs_client::{client, Client};
use bigfs_proto::limits::MAX_REPLICATION;
use bigfs_proto::FsPath;
use output::ListFormat;

/// BigFS client: store, fetch, list and remove files in a BigFS cluster.
///
/// Remote paths are absolute ("/photos/cat.jpg"); a put creates the directories above its file.
/// Exit status is 0 on success, 2 for a usage error and 1 for any other error, which is printed
/// as one line.
#[derive(Parser, Debug)]
#[command(name = "bigfs", version = bigfs_proto::VERSION, about, long_about)]
struct Cli {
    /// The metadata server's URL: http://HOST:PORT, or HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "BIGFS_META",
        default_value = "http://127.0.0.1:9400",
        value_parser = client::meta_url
    )]
    meta: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
enum BenchCommand {
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
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
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

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bigfs: start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Buffered, as a listing of 100,000 entries would otherwise cost a write per line; what
    // was printed before an error (fsck's report, say) is still flushed.
    let mut out = BufWriter::new(Stdout::default());
    let result = runtime.block_on(run(cli, &mut out));
    let flushed = out.flush().context("write to stdout");
    match result.and(flushed) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`bigfs ls | head -1`): end quietly, with the status
        // a shell reports for `cat` killed by SIGPIPE (128 + 13), so `set -o pipefail` sees
        // the same for both, and a script can tell a cut-short listing from a whole one.
        Err(e) if stdout::is_closed(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("bigfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, out: &mut impl Write) -> anyhow::Result<()> {
    let client = Client::new(&cli.meta)?;
    match command(&client, cli.command, out).await {
        Err(e) => Err(client.diagnose(e).await),
        done => done,
    }
}

async fn command(client: &Client, command: Command, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        Command::Put {
            local,
            remote,
            recursive: true,
            replicas,
            force,
            parallel,
            preserve,
            json,
        } => {
            let root = FsPath::parse(&remote)?;
            let options = PutOptions {
                replication: replicas,
                overwrite: force,
                parallel: parallel as usize,
                preserve,
            };
            let label = format!("put {root}");
            let report = client
                .put_tree(&local, &root, &options, |total| {
                    Progress::new(&label, Some(total), !json)
                })
                .await?;
            output::tree_report(out, "put", &report, json)?;
            fail_if_incomplete("stored", &report)?;
        }
        Command::Put {
            local,
            remote,
            recursive: false,
            replicas,
            force,
            parallel,
            preserve,
            json,
        } => {
            let stdin = local.as_os_str() == "-";
            let path = remote_for_put(&remote, &local, stdin)?;
            let source = if stdin {
                Source::stdin()
            } else {
                Source::file(&local)?
            };
            let progress = Progress::new(&format!("put {path}"), source.size, !json);
            let options = PutOptions {
                replication: replicas,
                overwrite: force,
                parallel: parallel as usize,
                preserve,
            };
            let report = client.put(source, &path, &options, &progress).await;
            progress.finish();
            output::put_report(out, &report.with_context(|| format!("put {path}"))?, json)?;
        }
        Command::Get {
            remote,
            local,
            recursive: true,
            force,
            parallel,
        } => {
            let root = FsPath::parse(&remote)?;
            let label = format!("get {root}");
            let report = client
                .get_tree(&root, &local, force, parallel as usize, |total| {
                    Progress::new(&label, Some(total), true)
                })
                .await?;
            output::tree_report(out, "get", &report, false)?;
            fail_if_incomplete("fetched", &report)?;
        }
        Command::Get {
            remote,
            local,
            recursive: false,
            force,
            parallel,
        } => {
            let path = parse_file_path(&remote)?;
            let target = if local.as_os_str() == "-" {
                Target::Stdout
            } else {
                Target::File {
                    path: local,
                    overwrite: force,
                }
            };
            let size = match &target {
                Target::Stdout => None,
                Target::File { .. } => client.stat(&path).await?.file.map(|f| f.size),
            };
            let progress = Progress::new(&format!("get {path}"), size, size.is_some());
            let report = client
                .get(&path, &target, parallel as usize, &progress)
                .await;
            progress.finish();
            report.with_context(|| format!("get {path}"))?;
        }
        Command::Ls {
            remote,
            long,
            human,
            recursive,
            json,
            ..
        } => {
            let path = FsPath::parse(&remote)?;
            let format = ListFormat { long, human, json };
            if recursive {
                output::tree_listing(out, &client.list_tree(&path).await?, &format)?;
            } else {
                output::listing(out, &client.list(&path).await?, &format)?;
            }
        }
        Command::Rm { remote, recursive } => {
            let path = parse_file_path(&remote)?;
            client.remove(&path, recursive).await?;
        }
        Command::Stat { remote, json } => {
            let path = parse_file_path(&remote)?;
            output::stat(out, &client.stat(&path).await?, json)?;
        }
        Command::Nodes { json } => output::nodes(out, &client.nodes().await?, json)?,
        Command::Fsck { max_problems, json } => {
            let report = client.fsck(max_problems).await?;
            output::fsck(out, &report, json)?;
            if report.missing > 0 {
                bail!(
                    "{} chunk(s) have no live copy: the files listed above are unreadable",
                    report.missing
                );
            }
        }
        Command::Bench {
            command:
                BenchCommand::Meta {
                    files,
                    batch,
                    per_dir,
                    root,
                    json,
                },
        } => {
            let options = MetaBenchOptions {
                root: FsPath::parse(&root)?,
                files,
                batch,
                per_dir,
            };
            output::meta_bench(out, &client.bench_meta(&options).await?, json)?;
        }
        Command::Node {
            command: NodeCommand::Drain { id, json },
        } => {
            let chunks = client.drain(&id).await?;
            output::drain(out, &id, chunks, json)?;
        }
        Command::Completion { shell } => {
            // Generated in memory: clap_complete panics on a failed write, and stdout may be
            // a pipe its reader has closed.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "bigfs", &mut script);
            out.write_all(&script)?;
        }
        Command::Node {
            command: NodeCommand::Undrain { id },
        } => {
            client.undrain(&id).await?;
            writeln!(out, "{id}: drain cancelled; it takes new chunks again")?;
        }
        Command::Node {
            command: NodeCommand::Remove { id },
        } => {
            client.remove_node(&id).await?;
            writeln!(out, "{id}: removed from the cluster")?;
        }
        Command::Mkdir { remote, parents } => {
            let path = parse_file_path(&remote)?;
            client.mkdir(&path, parents).await?;
        }
        Command::Rmdir { remote } => client.rmdir(&parse_file_path(&remote)?).await?,
        Command::Mv {
            src,
            dst,
            force,
            json,
        } => {
            let (src, dst) = (parse_file_path(&src)?, FsPath::parse(&dst)?);
            let moved = client.rename(&src, &dst, force).await?;
            output::moved(out, "moved", &src, &moved.path, moved.files, None, json)?;
        }
        Command::Cp {
            src,
            dst,
            recursive,
            force,
            json,
        } => {
            let (src, dst) = (parse_file_path(&src)?, FsPath::parse(&dst)?);
            let copied = client.copy(&src, &dst, recursive, force).await?;
            let bytes = Some(copied.bytes);
            output::moved(out, "copied", &src, &copied.path, copied.files, bytes, json)?;
        }
        Command::Du {
            remote,
            summarize,
            human,
            json,
            ..
        } => {
            let path = FsPath::parse(&remote)?;
            let mut rows = Vec::new();
            if !summarize {
                // A directory's entries (listing a file gives the file itself: no line of its
                // own, the total says it all).
                for entry in client.list(&path).await? {
                    if entry.path != path.as_str() {
                        let child = FsPath::parse(&entry.path)?;
                        let usage = client.usage(&child).await?;
                        rows.push((child, usage));
                    }
                }
            }
            rows.push((path.clone(), client.usage(&path).await?));
            output::du(out, &rows, human, json)?;
        }
        Command::Df { human, json, .. } => output::df(out, &client.nodes().await?, human, json)?,
        Command::Cat { remote, parallel } => {
            let path = parse_file_path(&remote)?;
            let progress = Progress::new(&format!("cat {path}"), None, false);
            client
                .get(&path, &Target::Stdout, parallel as usize, &progress)
                .await
                .with_context(|| format!("cat {path}"))?;
        }
        Command::Sync(args) => bigfs_client::sync::cli::run(client, args).await?,
    }
    Ok(())
}

/// A tree transfer that left files out fails, naming the first few.
fn fail_if_incomplete(verb: &str, report: &TreeReport) -> anyhow::Result<()> {
    if report.failed.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = report
        .failed
        .iter()
        .take(3)
        .map(|(path, why)| format!("{path}: {why}"))
        .collect();
    bail!(
        "{} of {} files not {verb}: {}{}",
        report.failed.len(),
        report.failed.len() + report.files,
        shown.join("; "),
        if report.failed.len() > 3 { "; …" } else { "" }
    )
}

fn parse_file_path(raw: &str) -> anyhow::Result<FsPath> {
    FsPath::parse_file(raw).map_err(Into::into)
}

/// The remote path of a put: REMOTE itself, or REMOTE/<local name> when REMOTE ends in '/'.
fn remote_for_put(remote: &str, local: &std::path::Path, stdin: bool) -> anyhow::Result<FsPath> {
    if !remote.ends_with('/') {
        return parse_file_path(remote);
    }
    if stdin {
        bail!("put from stdin needs a full remote file path, not the directory {remote}");
    }
    let name = local
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", local.display()))?;
    Ok(FsPath::parse(remote)?.join(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn put_into_a_directory_takes_the_local_name() {
        let local = std::path::Path::new("/tmp/x/cat.jpg");
        assert_eq!(
            remote_for_put("/photos/", local, false).unwrap().as_str(),
            "/photos/cat.jpg"
        );
        assert_eq!(
            remote_for_put("/photos/c.jpg", local, false)
                .unwrap()
                .as_str(),
            "/photos/c.jpg"
        );
        assert!(remote_for_put("/photos/", local, true).is_err());
        assert!(remote_for_put("photos/", local, false).is_err());
    }
}
