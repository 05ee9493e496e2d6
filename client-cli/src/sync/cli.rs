//! The `bigfs sync` command: its arguments, its output, and a run (or a watch).
//!
//! Output: with `--dry-run` one line per planned action on stdout (`send /a/b`, `move /x ->
//! /y`, `delete /z`, `mkdir /d`), paths relative to SRC and DST; with `--json` one JSON object
//! per run (per round with `--watch`) on stdout instead; always one summary line per run (per
//! round) on stderr. A run with failures or conflicts names them and exits 1.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use bytesize::ByteSize;
use serde_json::{json, Value};

use bigfs_proto::units::ReadableDuration;
use bigfs_proto::FsPath;

use super::listing::Side;
use super::plan::{Action, Rules};
use super::{watch, Job, Round};
use crate::stdout::Stdout;
use crate::Client;

/// What marks a remote path on the command line.
const REMOTE_PREFIX: &str = "bigfs:";

/// Failures named in the error that ends a run.
const FAILURES_SHOWN: usize = 3;

/// Make DST equal to SRC, sending only files whose content differs.
///
/// Exactly one of SRC and DST is remote, written bigfs:/path (bigfs sync ./photos
/// bigfs:/photos, or back with bigfs sync bigfs:/photos ./photos); the contents of SRC go to
/// the contents of DST. A file is unchanged when its size and modification time match (with
/// --checksum, its content hash). The source wins: DST files with other content are
/// replaced, but nothing is deleted without --delete. A new file with the content of a DST file
/// that SRC lacks is moved there (with --delete) or copied, without sending its bytes.
#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// A local directory, or a directory in the cluster written bigfs:/path.
    src: String,
    /// The other kind: the remote or local directory to make equal to SRC.
    dst: String,
    /// Delete the files and directories in DST that SRC does not have.
    #[arg(long)]
    delete: bool,
    /// Print what would change, one action per line, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Compare content hashes instead of sizes and modification times (reads the local files
    /// that have a counterpart of the same size).
    #[arg(long)]
    checksum: bool,
    /// Keep the remote DST in step with the local SRC: sync again after each burst of
    /// changes, until interrupted.
    #[arg(long, conflicts_with = "dry_run")]
    watch: bool,
    /// With --watch, how long SRC must be quiet after a change before the next round.
    #[arg(long, default_value = "300ms", value_name = "DURATION")]
    debounce: ReadableDuration,
    /// Print the plan (with --dry-run) or the result as one JSON object per run on stdout.
    #[arg(long)]
    json: bool,
    /// Files transferred at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
}

impl SyncArgs {
    /// SRC and DST, one local and one remote; a usage error otherwise.
    fn sides(&self) -> Result<(Side, Side), String> {
        let (src, dst) = (side(&self.src)?, side(&self.dst)?);
        match (&src, &dst) {
            (Side::Local(_), Side::Local(_)) => Err(format!(
                "SRC and DST are both local paths: write the remote one as {REMOTE_PREFIX}/path"
            )),
            (Side::Remote(_), Side::Remote(_)) => Err(format!(
                "SRC and DST are both remote ({REMOTE_PREFIX}…): one must be a local directory"
            )),
            (Side::Remote(_), _) if self.watch => {
                Err("--watch needs a local SRC (it watches the local tree)".to_string())
            }
            _ => Ok((src, dst)),
        }
    }
}

/// A command-line path: remote when written `bigfs:/path`, local otherwise (an absolute local
/// path such as /home/x is local; a local path that starts with `bigfs:` is written ./bigfs:…).
fn side(arg: &str) -> Result<Side, String> {
    match arg.strip_prefix(REMOTE_PREFIX) {
        Some(path) => FsPath::parse(path)
            .map(Side::Remote)
            .map_err(|e| format!("{arg}: {e}")),
        None => Ok(Side::Local(PathBuf::from(arg))),
    }
}

/// Runs `bigfs sync`. A usage error exits 2 here, as clap's own do.
pub async fn run(client: &Client, args: SyncArgs) -> anyhow::Result<()> {
    let (src, dst) = args.sides().unwrap_or_else(|e| {
        clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, format!("{e}\n")).exit()
    });
    let rules = Rules {
        delete: args.delete,
        checksum: args.checksum,
    };
    let job = Job::new(client.clone(), src, dst, rules, args.parallel.into()).await?;
    if args.watch {
        let Side::Local(root) = &job.src else {
            unreachable!("checked by sides()")
        };
        return watch::watch(&job, root, args.debounce.0, |round| match round {
            Ok(round) => {
                let printed = print(&round, args.json).map_err(anyhow::Error::from);
                if let Err(e) = printed.and_then(|()| check(&round)) {
                    eprintln!("bigfs: sync: {e:#}");
                }
            }
            Err(e) => eprintln!("bigfs: sync: {e:#}"),
        })
        .await;
    }
    let round = job.round(args.dry_run).await?;
    print(&round, args.json)?;
    check(&round)
}

/// Prints a round: its actions (a dry run's) or its JSON on stdout, its summary on stderr.
/// Stdout closed early (`sync --dry-run … | head`) is an error the CLI ends quietly on.
fn print(round: &Round, json: bool) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(Stdout::default());
    if json {
        writeln!(out, "{}", round_json(round))?;
    } else if round.dry_run {
        for action in &round.actions {
            writeln!(out, "{action}")?;
        }
    }
    out.flush()?;
    eprintln!("{}", summary(round));
    Ok(())
}

/// A round with failures is an error naming the first few.
fn check(round: &Round) -> anyhow::Result<()> {
    if round.failed.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = (round.failed.iter().take(FAILURES_SHOWN))
        .map(|(what, why)| format!("{what}: {why}"))
        .collect();
    let more = round.failed.len() > FAILURES_SHOWN;
    bail!(
        "{} failed: {}{}",
        round.failed.len(),
        shown.join("; "),
        if more { "; …" } else { "" }
    )
}

/// `sync: 3 sent (12.0 MiB), 1 moved, 0 copied, 2 deleted, 0 created, 140 unchanged in 0.84s`.
fn summary(round: &Round) -> String {
    let t = &round.tally;
    let counts = format!(
        "{} sent ({}), {} moved, {} copied, {} deleted, {} created, {} unchanged",
        t.sent,
        ByteSize(t.bytes).display().iec(),
        t.moved,
        t.copied,
        t.deleted,
        t.mkdirs,
        round.unchanged
    );
    let failed = match round.failed.len() {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    match round.dry_run {
        true => format!("sync (dry run, nothing changed): {counts}{failed}"),
        false => format!(
            "sync: {counts}{failed} in {:.2}s",
            round.elapsed.as_secs_f64()
        ),
    }
}

fn round_json(round: &Round) -> Value {
    let t = &round.tally;
    json!({
        "dry_run": round.dry_run,
        "sent": t.sent,
        "bytes": t.bytes,
        "moved": t.moved,
        "copied": t.copied,
        "deleted": t.deleted,
        "created": t.mkdirs,
        "unchanged": round.unchanged,
        "seconds": round.elapsed.as_secs_f64(),
        "actions": round.actions.iter().map(action_json).collect::<Vec<_>>(),
        "failed": (round.failed.iter())
            .map(|(what, why)| json!({"what": what, "error": why}))
            .collect::<Vec<_>>(),
    })
}

fn action_json(action: &Action) -> Value {
    let path = |p: &str| format!("/{p}");
    match action {
        Action::Send { path: p, file } => {
            json!({"action": "send", "path": path(p), "size": file.size})
        }
        Action::Move { from, to, .. } => {
            json!({"action": "move", "from": path(from), "to": path(to)})
        }
        Action::Copy { from, to, .. } => {
            json!({"action": "copy", "from": path(from), "to": path(to)})
        }
        Action::Delete(p) => json!({"action": "delete", "path": path(p)}),
        Action::Rmdir(p) => json!({"action": "rmdir", "path": path(p)}),
        Action::Mkdir(p) => json!({"action": "mkdir", "path": path(p)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SyncArgs,
    }

    fn sides(args: &[&str]) -> Result<(Side, Side), String> {
        let cli = Cli::try_parse_from(std::iter::once("sync").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.sides()
    }

    fn local(path: &str) -> Side {
        Side::Local(PathBuf::from(path))
    }

    fn remote(path: &str) -> Side {
        Side::Remote(FsPath::parse(path).unwrap())
    }

    #[test]
    fn exactly_one_side_is_remote_and_only_a_prefix_makes_it_so() {
        assert_eq!(
            sides(&["./photos", "bigfs:/photos"]).unwrap(),
            (local("./photos"), remote("/photos"))
        );
        assert_eq!(
            sides(&["bigfs:/", "/home/x"]).unwrap(),
            (remote("/"), local("/home/x"))
        );
        assert_eq!(
            sides(&["./bigfs:odd", "bigfs:/odd/"]).unwrap(),
            (local("./bigfs:odd"), remote("/odd"))
        );
        let both_local = sides(&["/home/x", "/photos"]).unwrap_err();
        assert!(both_local.contains("both local"), "{both_local}");
        let both_remote = sides(&["bigfs:/a", "bigfs:/b"]).unwrap_err();
        assert!(both_remote.contains("both remote"), "{both_remote}");
        let relative = sides(&["bigfs:photos", "./p"]).unwrap_err();
        assert!(relative.contains("bigfs:photos"), "{relative}");
    }

    #[test]
    fn watch_needs_a_local_source_and_no_dry_run() {
        assert!(sides(&["--watch", "./p", "bigfs:/p"]).is_ok());
        let pull = sides(&["--watch", "bigfs:/p", "./p"]).unwrap_err();
        assert!(pull.contains("--watch needs a local SRC"), "{pull}");
        assert!(sides(&["--watch", "--dry-run", "./p", "bigfs:/p"]).is_err());
        assert!(sides(&["--watch", "--debounce", "1s", "./p", "bigfs:/p"]).is_ok());
    }

    #[test]
    fn the_summary_says_what_changed() {
        let round = Round {
            actions: vec![Action::Delete("x".into())],
            tally: super::super::plan::Tally {
                sent: 3,
                bytes: 12 << 20,
                moved: 1,
                deleted: 2,
                ..Default::default()
            },
            unchanged: 140,
            elapsed: std::time::Duration::from_millis(840),
            ..Round::default()
        };
        assert_eq!(
            summary(&round),
            "sync: 3 sent (12.0 MiB), 1 moved, 0 copied, 2 deleted, 0 created, 140 unchanged in 0.84s"
        );
        let json = round_json(&round);
        assert_eq!(json["sent"], 3);
        assert_eq!(
            json["actions"][0],
            json!({"action": "delete", "path": "/x"})
        );
        let failed = Round {
            dry_run: true,
            failed: vec![("send /a".into(), "boom".into())],
            ..Round::default()
        };
        assert!(
            summary(&failed).ends_with(", 1 failed"),
            "{}",
            summary(&failed)
        );
        assert_eq!(
            check(&failed).unwrap_err().to_string(),
            "1 failed: send /a: boom"
        );
    }
}
