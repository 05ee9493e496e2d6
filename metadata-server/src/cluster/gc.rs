//! Garbage collection: expiring write leases and queueing deletes of unreferenced chunks.

use std::time::Instant;

use bigfs_proto::ChunkId;

use super::Cluster;

impl Cluster {
    /// A put gave up: its chunks lose their write lease. Those no file references start their
    /// grace period now (a chunk another put still holds keeps that put's lease).
    pub fn abandon(&mut self, chunks: &[ChunkId], wanted: impl Fn(&ChunkId) -> u32, now: Instant) {
        for chunk in chunks {
            self.leases.remove(chunk);
            if wanted(chunk) == 0 && self.locations.contains_key(chunk) {
                self.unreferenced.entry(*chunk).or_insert(now);
            }
        }
    }

    /// A put in progress still holds `chunks`: their write leases start again from `now`. A
    /// chunk some file references needs none (a tree put renews the chunks of the files it has
    /// committed too); one whose lease is gone gets it back, as after a restart.
    pub fn renew_leases(
        &mut self,
        chunks: &[ChunkId],
        wanted: impl Fn(&ChunkId) -> u32,
        now: Instant,
    ) {
        for chunk in chunks {
            if self.leases.contains_key(chunk) || wanted(chunk) == 0 {
                self.renew_lease(chunk, now);
            }
        }
    }

    /// Ends safe mode on time-out, expires write leases, and queues deletes of chunks that no
    /// file has referenced for longer than the grace period. Returns whether safe mode is over.
    pub fn collect_garbage(&mut self, wanted: impl Fn(&ChunkId) -> u32, now: Instant) -> bool {
        self.lease_released_holds(now);
        if let Some(safe) = &self.safe_mode {
            if now < safe.until {
                return false;
            }
            tracing::warn!(
                missing = ?safe.waiting_for,
                "safe-mode timeout passed before every known node reported: leaving safe mode"
            );
            self.safe_mode = None;
        }
        let lease = self.config.write_lease;
        let expired: Vec<(ChunkId, Instant)> = self
            .leases
            .iter()
            .filter(|(_, &since)| now.duration_since(since) >= lease)
            .map(|(id, since)| (*id, *since))
            .collect();
        for (chunk, _) in expired {
            self.leases.remove(&chunk);
            // The grace period starts now: a slow put may still be about to commit.
            if self.locations.contains_key(&chunk) {
                self.unreferenced.entry(chunk).or_insert(now);
            }
        }
        let keep = lease * super::TOMBSTONE_LEASES;
        for node in &mut self.nodes {
            node.tombstones
                .retain(|_, &mut since| now.duration_since(since) < keep);
        }
        let grace = self.config.gc_grace;
        let due: Vec<ChunkId> = self
            .unreferenced
            .iter()
            .filter(|(_, &since)| now.duration_since(since) >= grace)
            .map(|(id, _)| *id)
            .collect();
        for chunk in due {
            self.unreferenced.remove(&chunk);
            if self.held(&chunk) || wanted(&chunk) > 0 {
                continue;
            }
            let holders = self.locations.get(&chunk).cloned().unwrap_or_default();
            for idx in holders {
                self.nodes[idx as usize].pending_deletes.insert(chunk);
            }
        }
        true
    }
}
