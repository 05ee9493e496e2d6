//! `bigfs sync`: make a destination tree equal a source tree, one side local and the other in
//! the cluster, moving only the files whose content differs.
//!
//! A round lists both sides ([`listing`]), hashes only what a decision needs, plans with the
//! pure rules of [`plan`] and runs the plan ([`execute`]). [`watch`] runs rounds as a local
//! tree changes; [`cli`] is the `bigfs sync` command around all of it. Chunk ids make a resent
//! file cheap too: the chunks the cluster already holds are not sent again.

pub mod cli;
pub mod execute;
pub mod listing;
pub mod plan;
pub mod watch;

use std::time::{Duration, Instant};

use anyhow::Context;

use listing::Side;
use plan::{Action, Rules, Tally};

use crate::Client;

/// One sync between two sides, run once or once per `--watch` round.
pub struct Job {
    pub client: Client,
    pub src: Side,
    pub dst: Side,
    pub rules: Rules,
    /// Actions (files sent, say) run at once.
    pub parallel: usize,
    /// The cluster's chunk size, at which local files are hashed.
    chunk_size: u64,
}

/// What one round planned (a dry run) or did.
#[derive(Debug, Default)]
pub struct Round {
    pub dry_run: bool,
    /// The actions planned, or those that succeeded.
    pub actions: Vec<Action>,
    pub tally: Tally,
    /// Source files found unchanged at the destination.
    pub unchanged: usize,
    /// What failed or conflicted, with why.
    pub failed: Vec<(String, String)>,
    pub elapsed: Duration,
}

impl Job {
    pub async fn new(
        client: Client,
        src: Side,
        dst: Side,
        rules: Rules,
        parallel: usize,
    ) -> anyhow::Result<Self> {
        let chunk_size = client.cluster_info().await?.chunk_size;
        Ok(Self {
            client,
            src,
            dst,
            rules,
            parallel,
            chunk_size,
        })
    }

    /// Plans, and unless `dry_run` runs the plan. An error means nothing was planned (a side
    /// could not be listed); failed actions are in the round.
    pub async fn round(&self, dry_run: bool) -> anyhow::Result<Round> {
        let started = Instant::now();
        let client = &self.client;
        let mut src = self.src.tree(client, false).await?;
        let mut dst = self.dst.tree(client, true).await?;
        let (src_wanted, dst_wanted) = plan::wanted_hashes(&src, &dst, self.rules);
        (self.src)
            .hash(client, &mut src, &src_wanted, self.chunk_size)
            .await;
        (self.dst)
            .hash(client, &mut dst, &dst_wanted, self.chunk_size)
            .await;
        let plan = plan::plan(&src, &dst, self.rules);

        let mut failed: Vec<(String, String)> = (plan.conflicts.iter())
            .map(|c| (format!("conflict /{}", c.path), c.reason().to_string()))
            .collect();
        let actions = if dry_run {
            plan.actions
        } else {
            self.make_root().await?;
            let executed =
                execute::execute(client, &self.src, &self.dst, plan.actions, self.parallel).await;
            failed.extend(executed.failed);
            executed.done
        };
        let mut tally = Tally::default();
        actions.iter().for_each(|action| tally.add(action));
        Ok(Round {
            dry_run,
            actions,
            tally,
            unchanged: plan.unchanged,
            failed,
            elapsed: started.elapsed(),
        })
    }

    /// Creates the destination's root, so that a source with nothing in it still has a copy.
    async fn make_root(&self) -> anyhow::Result<()> {
        match &self.dst {
            Side::Local(root) => {
                std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))
            }
            Side::Remote(root) if root.is_root() => Ok(()),
            Side::Remote(root) => self.client.mkdir(root, true).await.map(drop),
        }
    }
}
