//! `bigfs`: the BigFS command-line client.

mod args;
mod output;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};

use args::{BenchCommand, Cli, Command, NodeCommand};
use bigfs_client::bench::load::LoadBenchOptions;
use bigfs_client::bench::small::SmallBenchOptions;
use bigfs_client::bench::MetaBenchOptions;
use bigfs_client::download::Target;
use bigfs_client::progress::Progress;
use bigfs_client::stdout::{self, Stdout};
use bigfs_client::tree::TreeReport;
use bigfs_client::upload::{PutOptions, Source};
use bigfs_client::Client;
use bigfs_proto::FsPath;
use output::ListFormat;

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
                if_version: None,
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
                if_version: None,
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
            // One lookup serves the progress bar and the get.
            let file = client.stat(&path).await?;
            let size = match &target {
                Target::Stdout => None,
                Target::File { .. } => file.file.as_ref().map(|f| f.size),
            };
            let progress = Progress::new(&format!("get {path}"), size, size.is_some());
            let report = client
                .get_located(&path, file, &target, parallel as usize, &progress)
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
        Command::Bench {
            command:
                BenchCommand::Small {
                    files,
                    size,
                    concurrency,
                    root,
                    drop_caches,
                    json,
                },
        } => {
            let options = SmallBenchOptions {
                root: FsPath::parse(&root)?,
                files,
                size: size.0,
                concurrency,
                drop_caches,
            };
            output::small_bench(out, &client.bench_small(&options).await?, json)?;
        }
        Command::Bench {
            command:
                BenchCommand::Load {
                    clients,
                    big_size,
                    small_files,
                    small_size,
                    root,
                    drop_caches,
                    json,
                },
        } => {
            let options = LoadBenchOptions {
                root: FsPath::parse(&root)?,
                clients,
                big_size: big_size.0,
                small_files,
                small_size: small_size.0,
                drop_caches,
            };
            output::load_bench(out, &client.bench_load(&options).await?, json)?;
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
