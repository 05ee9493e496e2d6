//! Replica placement by consistent hashing.
//!
//! Every registered node has [`VIRTUAL_NODES`] points on a `hashring` ring. A chunk's targets
//! are the first distinct usable nodes clockwise from its id, so adding or losing a node moves
//! only its share of chunks. Nodes are never taken off the ring when they die or fill up; the
//! walk skips them instead, and they take their share back when they are usable again.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashring::HashRing;

use bigfs_proto::ChunkId;

/// Points per node: enough that three nodes share the ring within a few percent.
const VIRTUAL_NODES: u32 = 64;

/// An index into the caller's node table.
pub type NodeIdx = u32;

#[derive(Clone, Debug)]
struct VirtualNode {
    id: Arc<str>,
    point: u32,
    idx: NodeIdx,
}

// Only the id and point decide where a virtual node sits, so placement does not depend on the
// order nodes registered in.
impl Hash for VirtualNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.point.hash(state);
    }
}

#[derive(Default)]
pub struct Placement {
    ring: HashRing<VirtualNode>,
}

impl Placement {
    pub fn add(&mut self, id: &str, idx: NodeIdx) {
        let id: Arc<str> = id.into();
        self.ring.batch_add(
            (0..VIRTUAL_NODES)
                .map(|point| VirtualNode {
                    id: id.clone(),
                    point,
                    idx,
                })
                .collect(),
        );
    }

    /// Takes a node off the ring for good (it was removed from the cluster).
    pub fn remove(&mut self, id: &str) {
        let id: Arc<str> = id.into();
        for point in 0..VIRTUAL_NODES {
            self.ring.remove(&VirtualNode {
                id: id.clone(),
                point,
                // Only the id and the point find a virtual node (see `Hash` above).
                idx: 0,
            });
        }
    }

    /// Up to `count` distinct nodes for `chunk`, in ring order, among those `usable` accepts.
    pub fn targets(
        &self,
        chunk: &ChunkId,
        count: usize,
        usable: impl Fn(NodeIdx) -> bool,
    ) -> Vec<NodeIdx> {
        let mut picked = Vec::with_capacity(count);
        if count == 0 {
            return picked;
        }
        let Some(clockwise) = self
            .ring
            .get_with_replicas(chunk.as_bytes(), self.ring.len())
        else {
            return picked;
        };
        for vnode in clockwise {
            if !picked.contains(&vnode.idx) && usable(vnode.idx) {
                picked.push(vnode.idx);
                if picked.len() == count {
                    break;
                }
            }
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(nodes: u32) -> Placement {
        let mut p = Placement::default();
        for i in 0..nodes {
            p.add(&format!("node{i}"), i);
        }
        p
    }

    #[test]
    fn picks_distinct_usable_nodes() {
        let p = ring(5);
        for n in 0..200u32 {
            let chunk = ChunkId::of(&n.to_le_bytes());
            let t = p.targets(&chunk, 3, |_| true);
            assert_eq!(t.len(), 3);
            let mut d = t.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3, "{t:?}");
            let skipping = p.targets(&chunk, 3, |i| i != t[0]);
            assert!(!skipping.contains(&t[0]));
            assert_eq!(skipping.len(), 3);
        }
        let chunk = ChunkId::of(b"x");
        assert_eq!(p.targets(&chunk, 9, |_| true).len(), 5);
        assert_eq!(p.targets(&chunk, 3, |i| i == 2), vec![2]);
        assert!(Placement::default().targets(&chunk, 3, |_| true).is_empty());
    }

    #[test]
    fn is_stable_and_independent_of_registration_order() {
        let a = ring(4);
        let mut b = Placement::default();
        for i in (0..4).rev() {
            b.add(&format!("node{i}"), i);
        }
        for n in 0..100u32 {
            let chunk = ChunkId::of(&n.to_le_bytes());
            assert_eq!(
                a.targets(&chunk, 3, |_| true),
                b.targets(&chunk, 3, |_| true)
            );
        }
    }

    #[test]
    fn spreads_chunks_evenly_and_moves_few_when_a_node_joins() {
        let three = ring(3);
        let mut counts = [0u32; 3];
        let chunks: Vec<_> = (0..3000u32)
            .map(|n| ChunkId::of(&n.to_le_bytes()))
            .collect();
        for c in &chunks {
            counts[three.targets(c, 1, |_| true)[0] as usize] += 1;
        }
        for count in counts {
            assert!(
                (600..=1400).contains(&count),
                "uneven primaries: {counts:?}"
            );
        }
        let four = ring(4);
        let moved = chunks
            .iter()
            .filter(|c| three.targets(c, 1, |_| true) != four.targets(c, 1, |_| true))
            .count();
        // Ideally a quarter moves (to the new node); nothing should move between old nodes.
        assert!(
            moved < chunks.len() / 2,
            "{moved} of {} moved",
            chunks.len()
        );
        for c in &chunks {
            let (before, after) = (three.targets(c, 1, |_| true), four.targets(c, 1, |_| true));
            assert!(
                before == after || after == vec![3],
                "moved between old nodes"
            );
        }
    }
}
