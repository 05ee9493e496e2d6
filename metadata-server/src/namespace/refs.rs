//! The chunk table's entries: how many file references each chunk has, by the replication
//! factor of the referencing files, so that the copies a chunk wants always follow the files
//! that reference it *now* (a chunk once held by a `--replicas 5` file stops wanting 5 copies
//! when that file goes).
//!
//! Encoding: the total count (u64) and the wanted copies (u32), big-endian, then one
//! `(replication u8, count u64)` pair per factor in use. The first 12 bytes alone are the
//! format written before the per-factor counts existed; such an entry reads as all its
//! references at its wanted factor. Readers that need only the wanted copies read those 12.

use std::collections::{BTreeMap, HashMap};

use sled::transaction::TransactionalTree;

use bigfs_proto::ChunkId;

use crate::error::MetaError;
use crate::records::FileRecord;

use super::{abort, TxResult};

const HEAD: usize = 12;
const PAIR: usize = 9;

/// A chunk's entry in the chunk table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkRefs {
    /// References by the replication factor of the file holding them; no zero counts.
    by_replication: BTreeMap<u32, u64>,
}

impl ChunkRefs {
    /// An entry of `refs` references from files of replication `replication`.
    pub fn new(replication: u32, refs: u64) -> Self {
        Self {
            by_replication: BTreeMap::from([(replication, refs)]),
        }
    }

    pub fn refs(&self) -> u64 {
        self.by_replication.values().sum()
    }

    /// The highest replication factor among the referencing files: 0 when unreferenced.
    pub fn wanted(&self) -> u32 {
        self.by_replication.keys().next_back().copied().unwrap_or(0)
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEAD + PAIR * self.by_replication.len());
        bytes.extend_from_slice(&self.refs().to_be_bytes());
        bytes.extend_from_slice(&self.wanted().to_be_bytes());
        for (&replication, &count) in &self.by_replication {
            // Replication factors are capped far below 256 (limits::MAX_REPLICATION).
            bytes.push(replication as u8);
            bytes.extend_from_slice(&count.to_be_bytes());
        }
        bytes
    }

    pub(super) fn decode(id: &ChunkId, bytes: &[u8]) -> Result<Self, MetaError> {
        let bad = |reason: String| MetaError::BadRecord {
            key: format!("chunk_refs/{id}"),
            reason,
        };
        if bytes.len() < HEAD || !(bytes.len() - HEAD).is_multiple_of(PAIR) {
            return Err(bad(format!("{} bytes", bytes.len())));
        }
        let refs = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let wanted = wanted_of(bytes).expect("12 bytes");
        if bytes.len() == HEAD {
            return Ok(Self::new(wanted, refs));
        }
        let by_replication: BTreeMap<u32, u64> = bytes[HEAD..]
            .chunks_exact(PAIR)
            .map(|pair| {
                let count = u64::from_be_bytes(pair[1..].try_into().expect("8 bytes"));
                (u32::from(pair[0]), count)
            })
            .collect();
        let entry = Self { by_replication };
        if entry.refs() != refs || entry.wanted() != wanted {
            return Err(bad(format!(
                "head says {refs} refs wanting {wanted}, the counts say {} wanting {}",
                entry.refs(),
                entry.wanted()
            )));
        }
        Ok(entry)
    }

    /// Adds `delta` references of files with replication `replication` (removes, if negative).
    /// Removals the factor does not hold are taken from the highest factors: entries written
    /// before per-factor counts existed filed every reference under the highest one.
    fn add(&mut self, replication: u32, delta: i64) {
        if delta >= 0 {
            if delta > 0 {
                *self.by_replication.entry(replication).or_default() += delta as u64;
            }
            return;
        }
        let mut remove = delta.unsigned_abs();
        let mut order: Vec<u32> = vec![replication];
        order.extend(
            self.by_replication
                .keys()
                .rev()
                .filter(|&&r| r != replication),
        );
        for r in order {
            let Some(count) = self.by_replication.get_mut(&r) else {
                continue;
            };
            let taken = remove.min(*count);
            *count -= taken;
            remove -= taken;
            if *count == 0 {
                self.by_replication.remove(&r);
            }
            if remove == 0 {
                break;
            }
        }
        if remove > 0 {
            tracing::error!(
                remove,
                "more references removed than a chunk had: the chunk table was already wrong"
            );
        }
    }
}

/// The wanted copies of an encoded entry, read from its head alone.
pub(super) fn wanted_of(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(8..HEAD)?.try_into().ok()?))
}

/// Reference count changes by chunk, then by replication factor.
#[derive(Default)]
pub(super) struct RefDeltas(HashMap<ChunkId, BTreeMap<u32, i64>>);

impl RefDeltas {
    /// Counts `record`'s chunks as appearing (`sign` 1) or going (-1). A chunk that occurs
    /// twice in a file (two equal pieces) holds two references.
    pub fn add_file(&mut self, record: &FileRecord, sign: i64) -> Result<(), MetaError> {
        for chunk in &record.chunks {
            *self
                .0
                .entry(chunk.chunk_id()?)
                .or_default()
                .entry(record.replication)
                .or_default() += sign;
        }
        Ok(())
    }

    /// Applies the changes, dropping entries that reach zero; returns those chunks (freed).
    pub fn apply(&self, refs: &TransactionalTree) -> TxResult<Vec<ChunkId>> {
        let mut freed = Vec::new();
        for (id, changes) in &self.0 {
            let current = match refs.get(id.as_bytes())? {
                Some(bytes) => ChunkRefs::decode(id, &bytes).map_err(abort)?,
                None => ChunkRefs::default(),
            };
            let mut next = current.clone();
            for (&replication, &delta) in changes {
                next.add(replication, delta);
            }
            if next == current {
                continue;
            }
            if next.refs() > 0 {
                refs.insert(id.as_bytes(), next.encode())?;
            } else {
                refs.remove(id.as_bytes())?;
                freed.push(*id);
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_follows_the_referencing_files() {
        let mut refs = ChunkRefs::new(2, 1);
        refs.add(5, 1);
        assert_eq!((refs.refs(), refs.wanted()), (2, 5));
        refs.add(5, -1);
        assert_eq!((refs.refs(), refs.wanted()), (1, 2));
        refs.add(2, -1);
        assert_eq!((refs.refs(), refs.wanted()), (0, 0));
    }

    #[test]
    fn encoding_round_trips_and_reads_the_old_format() {
        let id = ChunkId::of(b"x");
        let mut refs = ChunkRefs::new(2, 3);
        refs.add(3, 1);
        let bytes = refs.encode();
        assert_eq!(bytes.len(), HEAD + 2 * PAIR);
        assert_eq!(wanted_of(&bytes), Some(3));
        assert_eq!(ChunkRefs::decode(&id, &bytes).unwrap(), refs);

        // Before per-factor counts: 4 references, wanting 3.
        let mut old = 4u64.to_be_bytes().to_vec();
        old.extend_from_slice(&3u32.to_be_bytes());
        let mut legacy = ChunkRefs::decode(&id, &old).unwrap();
        assert_eq!((legacy.refs(), legacy.wanted()), (4, 3));
        // A replication-2 file goes: its reference comes out of the only count there is.
        legacy.add(2, -1);
        assert_eq!((legacy.refs(), legacy.wanted()), (3, 3));

        assert!(ChunkRefs::decode(&id, &old[..10]).is_err());
        let mut lying = bytes.clone();
        lying[7] = 9;
        assert!(ChunkRefs::decode(&id, &lying).is_err());
    }
}
