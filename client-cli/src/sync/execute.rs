//! Running a plan's actions against the destination: each run of actions that may go
//! together (see [`Action::runs_with`]) `parallel` at a time, the runs one after another.
//!
//! One failed action does not stop the others; each failure is returned, naming the action.
//! Files are sent by the ordinary put and get, so a sent file appears whole or not at all: a
//! put commits atomically, a get renames its temporary file into place. Moves and copies touch
//! no bytes in the cluster (rename and copy are metadata calls), and locally are a rename or
//! a file copy; each then gives the file the source's mode and mtime, so that the next sync
//! finds it unchanged.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use futures::{stream, StreamExt};
use tonic::Code;

use bigfs_proto::pb::RmdirRequest;
use bigfs_proto::FsPath;

use super::listing::{remote_path, Side};
use super::plan::{Action, FileMeta};
use crate::download::Target;
use crate::local_attrs::LocalAttrs;
use crate::progress::Progress;
use crate::upload::{PutOptions, Source};
use crate::Client;

/// Chunks moved at once for each file sent, as `put` and `get` do by default.
const CHUNKS_PER_FILE: usize = 8;

/// What running a plan did: the actions that succeeded, and each failure with why.
#[derive(Debug, Default)]
pub struct Executed {
    pub done: Vec<Action>,
    pub failed: Vec<(String, String)>,
}

/// Runs `actions` from `src` to `dst` (one local, the other remote), `parallel` at a time.
pub async fn execute(
    client: &Client,
    src: &Side,
    dst: &Side,
    actions: Vec<Action>,
    parallel: usize,
) -> Executed {
    let mut executed = Executed::default();
    for run in actions.chunk_by(|a, b| a.runs_with(b)) {
        let mut results = stream::iter(run)
            .map(|action| async move { (action, apply(client, src, dst, action).await) })
            .buffer_unordered(parallel.max(1));
        while let Some((action, result)) = results.next().await {
            match result {
                Ok(()) => executed.done.push(action.clone()),
                Err(e) => executed.failed.push((action.to_string(), format!("{e:#}"))),
            }
        }
    }
    executed
}

async fn apply(client: &Client, src: &Side, dst: &Side, action: &Action) -> anyhow::Result<()> {
    match (src, dst) {
        (Side::Local(local), Side::Remote(remote)) => push(client, local, remote, action).await,
        (Side::Remote(remote), Side::Local(local)) => pull(client, remote, local, action).await,
        _ => anyhow::bail!("a sync runs between a local and a remote tree"),
    }
}

async fn push(client: &Client, local: &Path, root: &FsPath, action: &Action) -> anyhow::Result<()> {
    let remote = |path: &str| remote_path(root, path);
    match action {
        Action::Mkdir(path) => client.mkdir(&remote(path)?, true).await.map(drop),
        Action::Move { from, to, file } => {
            client.rename(&remote(from)?, &remote(to)?, false).await?;
            set_remote_attrs(client, &remote(to)?, file).await
        }
        Action::Copy { from, to, file } => {
            client
                .copy(&remote(from)?, &remote(to)?, false, false)
                .await?;
            set_remote_attrs(client, &remote(to)?, file).await
        }
        Action::Send { path, .. } => {
            let options = PutOptions {
                replication: None,
                overwrite: true,
                parallel: CHUNKS_PER_FILE,
                // The stored mtime is what the next sync compares.
                preserve: true,
                if_version: None,
            };
            let source = Source::file(&local.join(path))?;
            let progress = Progress::hidden();
            client
                .put(source, &remote(path)?, &options, &progress)
                .await
                .map(drop)
        }
        Action::Delete(path) => client.remove(&remote(path)?, false).await.map(drop),
        Action::Rmdir(path) => rmdir_if_present(client, &remote(path)?).await,
    }
}

async fn set_remote_attrs(client: &Client, path: &FsPath, file: &FileMeta) -> anyhow::Result<()> {
    client
        .set_attr(path, Some(file.mode), Some(file.mtime_ms))
        .await
}

/// Removes an empty remote directory; one already gone is no error: a directory that was
/// only implied by its files disappeared with the last of them.
async fn rmdir_if_present(client: &Client, path: &FsPath) -> anyhow::Result<()> {
    let (mut meta, request) = client.meta(RmdirRequest {
        path: path.to_string(),
    });
    match meta.rmdir(request).await {
        Err(status) if status.code() != Code::NotFound => Err(client.meta_error(status)),
        _ => Ok(()),
    }
}

async fn pull(client: &Client, root: &FsPath, local: &Path, action: &Action) -> anyhow::Result<()> {
    let here = |path: &str| unlinked(local, path);
    match action {
        Action::Send { path, .. } => {
            let target = here(path)?;
            create_parent(&target)?;
            let remote = remote_path(root, path)?;
            // The source wins: a changed local file is replaced. get gives the file the
            // stored mode and mtime before it renames it into place.
            let to = Target::File {
                path: target,
                overwrite: true,
            };
            let progress = Progress::hidden();
            client.get(&remote, &to, CHUNKS_PER_FILE, &progress).await?;
            Ok(())
        }
        Action::Mkdir(path) => {
            let dir = here(path)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))
        }
        Action::Move { from, to, file } => {
            let (from, to) = (here(from)?, here(to)?);
            create_parent(&to)?;
            std::fs::rename(&from, &to)
                .with_context(|| format!("rename {} to {}", from.display(), to.display()))?;
            set_local_attrs(&to, file)
        }
        Action::Copy { from, to, file } => {
            let (from, to, file) = (here(from)?, here(to)?, *file);
            // A file copy reads and writes every byte: off the async threads.
            tokio::task::spawn_blocking(move || {
                create_parent(&to)?;
                std::fs::copy(&from, &to)
                    .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
                set_local_attrs(&to, &file)
            })
            .await?
        }
        Action::Delete(path) => {
            let file = here(path)?;
            std::fs::remove_file(&file).with_context(|| format!("remove {}", file.display()))
        }
        Action::Rmdir(path) => {
            let dir = here(path)?;
            std::fs::remove_dir(&dir).with_context(|| format!("remove {}", dir.display()))
        }
    }
}

/// `local/relative`, refused when a symbolic link or special file stands anywhere on the way
/// (below `local`): the local listing leaves those out, so the plan may aim a write at one,
/// and following it would write outside the tree (a link to ~/.ssh or /etc) or block on a
/// FIFO. Sync never writes through them; the user removes them or syncs elsewhere.
fn unlinked(local: &Path, relative: &str) -> anyhow::Result<PathBuf> {
    let mut path = local.to_path_buf();
    let components: Vec<&str> = relative.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        path.push(component);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Nothing there: nothing below it either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
        };
        let last = i + 1 == components.len();
        let kind = meta.file_type();
        if kind.is_symlink() {
            bail!(
                "{} is a symbolic link: sync does not write through links (remove it to sync \
                 this path)",
                path.display()
            );
        }
        if !(kind.is_dir() || last && kind.is_file()) {
            bail!(
                "{} is not a regular file or directory: sync leaves it alone",
                path.display()
            );
        }
    }
    Ok(local.join(relative))
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    let parent = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    std::fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))
}

/// Gives a local file the source's mode and mtime. Opened for reading: the owner may change
/// both through any descriptor, and a read-only mode would refuse opening it for writing.
fn set_local_attrs(path: &Path, file: &FileMeta) -> anyhow::Result<()> {
    let handle = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let attrs = LocalAttrs {
        mode: file.mode,
        mtime_ms: file.mtime_ms,
    };
    attrs.apply(&handle, path)
}
