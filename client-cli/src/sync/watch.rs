//! `bigfs sync --watch`: keep a remote tree equal to a local one as the local one changes.
//!
//! The watch starts before the first round, so a change made while a round lists the tree
//! is never missed: it starts the next round. After a change the tree must be quiet for the
//! debounce time (an editor's save or a copy is many events), then a round syncs the whole
//! tree again. That is simple and correct, and cheap: unchanged files compare by size and
//! mtime without reading them. SIGINT or SIGTERM ends the watch between two events or in the
//! middle of a round; a put cut short commits nothing.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Job, Round};

/// Runs rounds of `job` (whose source is the local `root`) until a signal: one now, then one
/// after each burst of changes once `debounce` passed without another. `report` gets each
/// round's outcome; a failed round does not end the watch.
pub async fn watch(
    job: &Job,
    root: &Path,
    debounce: Duration,
    mut report: impl FnMut(anyhow::Result<Round>),
) -> anyhow::Result<()> {
    let stop = bigfs_proto::process::shutdown_on_signal();
    let (tx, mut events) = mpsc::unbounded_channel();
    let on_event = move |event: notify::Result<notify::Event>| {
        if changes_tree(&event) {
            let _ = tx.send(());
        }
    };
    // Links are not synced, so what they point to (say, all of /etc) is not watched either.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher =
        notify::RecommendedWatcher::new(on_event, config).context("start watching")?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .with_context(|| format!("watch {}", root.display()))?;
    loop {
        tokio::select! {
            round = job.round(false) => report(round),
            _ = stop.cancelled() => return Ok(()),
        }
        tokio::select! {
            settled = settle(&mut events, debounce) => settled?,
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// Waits for a change, then until none came for `debounce`.
async fn settle(
    events: &mut mpsc::UnboundedReceiver<()>,
    debounce: Duration,
) -> anyhow::Result<()> {
    if events.recv().await.is_none() {
        bail!("the file watcher stopped");
    }
    loop {
        match tokio::time::timeout(debounce, events.recv()).await {
            Err(_quiet) => return Ok(()),
            Ok(Some(())) => continue,
            Ok(None) => bail!("the file watcher stopped"),
        }
    }
}

/// Whether an event may mean the tree changed. Opening and reading do not (the rounds read
/// the tree themselves, and must not set off the next one); a watcher's error may (say, lost
/// events), and a round then finds out.
fn changes_tree(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        },
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    #[test]
    fn reads_do_not_count_as_changes() {
        let event = |kind| Ok(notify::Event::new(kind));
        assert!(!changes_tree(&event(EventKind::Access(AccessKind::Open(
            AccessMode::Any
        )))));
        assert!(!changes_tree(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        )))));
        assert!(changes_tree(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        )))));
        assert!(changes_tree(&event(EventKind::Create(CreateKind::File))));
        assert!(changes_tree(&event(EventKind::Modify(ModifyKind::Any))));
        assert!(changes_tree(&Err(notify::Error::generic("queue overflow"))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_one_round_after_a_quiet_spell() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let debounce = Duration::from_millis(300);
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            for _ in 0..5 {
                tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // Keep the sender, so that the watch looks alive.
            std::future::pending::<()>().await;
        });
        settle(&mut rx, debounce).await.unwrap();
        // The last of five events 200 ms apart came at 800 ms; quiet 300 ms later.
        assert_eq!(started.elapsed(), Duration::from_millis(1100));
    }

    #[tokio::test]
    async fn a_stopped_watcher_is_an_error() {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        drop(tx);
        assert!(settle(&mut rx, Duration::from_millis(10)).await.is_err());
    }
}
