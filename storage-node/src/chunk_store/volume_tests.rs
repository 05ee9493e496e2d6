//! Tests of the small-chunk store through [`ChunkStore`]: needles in volumes, their recovery
//! after a crash and their compaction (docs/SMALL-CHUNKS.md).

use std::os::unix::fs::FileExt;

use super::tests::{chunk_file, files_in};
use super::volume::{locate, NeedleFile, SUPERBLOCK};
use super::*;

const SMALL: u32 = 64 * 1024;

fn options(fsync: bool, volume_size: u64) -> StoreOptions {
    StoreOptions {
        capacity: 1 << 30,
        fsync,
        io: IoMode::Direct,
        small_chunk_max: SMALL,
        volume_size,
    }
}

fn open(dir: &Path, volume_size: u64) -> ChunkStore {
    ChunkStore::open_with(dir, options(true, volume_size)).unwrap()
}

/// A distinct chunk of `len` bytes.
fn chunk(seed: u32, len: usize) -> (ChunkId, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i as u32 * 31 + seed * 7) as u8).collect();
    (ChunkId::of(&data), data)
}

fn put_all(store: &ChunkStore, seeds: std::ops::Range<u32>, len: usize) -> Vec<(ChunkId, Vec<u8>)> {
    seeds
        .map(|seed| {
            let (id, data) = chunk(seed, len);
            store.put(id, &data).unwrap();
            (id, data)
        })
        .collect()
}

fn needle(dir: &Path, id: ChunkId) -> NeedleFile {
    locate(dir, id).unwrap().expect("a live needle")
}

fn volume_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vol"))
        .collect();
    files.sort();
    files
}

/// Removes the volumes' index files, so that the next open scans every volume whole, as it does
/// volumes written before index files existed: for the tests of what that scan finds.
fn forget_indexes(dir: &Path) {
    for path in volume_files(dir) {
        fs::remove_file(path.with_extension("idx")).unwrap();
    }
}

/// The bytes of `store`'s volumes that are not live needles.
fn volume_garbage(store: &ChunkStore) -> u64 {
    let usage = store.volume_usage();
    usage.bytes - usage.live
}

fn sorted(mut ids: Vec<ChunkId>) -> Vec<ChunkId> {
    ids.sort();
    ids
}

fn assert_holds(store: &ChunkStore, chunks: &[(ChunkId, Vec<u8>)]) {
    for (id, data) in chunks {
        assert_eq!(store.get(*id).unwrap(), data[..], "chunk {id}");
    }
}

#[test]
fn small_chunks_are_needles_and_big_ones_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 20);
    let (small, small_data) = chunk(1, 1024);
    let (big, big_data) = chunk(2, SMALL as usize + 1);
    store.put(small, &small_data).unwrap();
    store.put(big, &big_data).unwrap();
    assert!(!chunk_file(dir.path(), &small).exists());
    assert!(chunk_file(dir.path(), &big).is_file());
    assert_eq!(needle(dir.path(), small).len, 1024);
    assert_eq!(store.get(small).unwrap(), small_data);
    assert_eq!(store.get(big).unwrap(), big_data);
    assert_eq!(sorted(store.list().unwrap()), sorted(vec![small, big]));
    assert_eq!(
        store.usage().used,
        1024 + SMALL as u64 + 1 + volume_garbage(&store)
    );
    assert_eq!(store.usage().chunks, 2);
    let usage = store.volume_usage();
    assert_eq!(usage.volumes, 1);
    assert_eq!(usage.live, needle::size(1024));
    assert_eq!(usage.bytes, SUPERBLOCK + needle::size(1024));
    assert_eq!(store.scrub(small).unwrap(), Scrubbed::Good { bytes: 1024 });

    // Stored again: kept, not appended again, but reported held.
    store.take_changes();
    store.put(small, &small_data).unwrap();
    assert_eq!(store.counters().volume_needles_written.get(), 1);
    assert_eq!(store.take_changes().added, vec![small]);

    store.delete(small).unwrap();
    store.finish_deletes();
    assert!(matches!(store.get(small), Err(NodeError::ChunkNotFound(_))));
    assert_eq!(store.take_changes().removed, vec![small]);
    assert_eq!(store.usage().chunks, 1);
    assert_eq!(store.volume_usage().live, 0);
    assert_eq!(locate(dir.path(), small).unwrap(), None);
}

#[test]
fn reopen_indexes_needles_and_keeps_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = {
        let store = open(dir.path(), 1 << 20);
        let chunks = put_all(&store, 0..20, 3000);
        for (id, _) in &chunks[..5] {
            store.delete(*id).unwrap();
        }
        chunks
    };
    let store = open(dir.path(), 1 << 20);
    assert_holds(&store, &chunks[5..]);
    for (id, _) in &chunks[..5] {
        assert!(matches!(store.get(*id), Err(NodeError::ChunkNotFound(_))));
    }
    assert_eq!(store.usage().chunks, 15);
    let garbage = 5 * (needle::size(3000) + needle::size(4)) + SUPERBLOCK;
    assert_eq!(volume_garbage(&store), garbage);
    assert_eq!(store.usage().used, 15 * 3000 + garbage);
    assert_eq!(store.volume_usage().live, 15 * needle::size(3000));
    assert_eq!(store.take_changes(), ChunkChanges::default());
    // Appends go on after what is there.
    let more = put_all(&store, 100..102, 10);
    assert_holds(&store, &more);
    assert_eq!(volume_files(dir.path()).len(), 1);
}

#[test]
fn corrupt_needle_is_quarantined_reported_and_replaced_by_a_repair() {
    let dir = tempfile::tempdir().unwrap();
    // Small volumes: the bad needle is in a sealed one, whose payloads a restart does not
    // verify, so only its tombstone keeps it out of the index then.
    let store = open(dir.path(), 16 << 10);
    let chunks = put_all(&store, 0..12, 4096);
    let (id, data) = &chunks[1];
    store.take_changes();
    let at = needle(dir.path(), *id);
    assert_eq!(at.path, volume_files(dir.path())[0]);
    let file = fs::OpenOptions::new().write(true).open(&at.path).unwrap();
    file.write_all_at(&[data[100] ^ 1], at.offset + 100)
        .unwrap();

    assert!(matches!(store.get(*id), Err(NodeError::ChunkCorrupt(_))));
    let quarantined: Vec<_> = fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(quarantined.len(), 1);
    let kept = fs::read(quarantined[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(kept.len(), needle::HEADER + 4096, "the needle as read");
    let changes = store.take_changes();
    assert_eq!(changes.corrupt, vec![*id]);
    assert_eq!(changes.removed, vec![*id]);
    assert_eq!(store.usage().chunks, 11);
    assert_eq!(store.counters().quarantined.get(), 1);
    let others: Vec<_> = chunks.iter().filter(|(c, _)| c != id).cloned().collect();
    assert_holds(&store, &others);

    // A restart does not index the bad needle again.
    drop(store);
    let store = open(dir.path(), 16 << 10);
    assert!(matches!(store.get(*id), Err(NodeError::ChunkNotFound(_))));
    assert_holds(&store, &others);
    // A repair copy stores it afresh.
    store.put(*id, data).unwrap();
    assert_eq!(store.get(*id).unwrap(), data[..]);
    drop(store);
    assert_eq!(open(dir.path(), 16 << 10).get(*id).unwrap(), data[..]);
}

#[test]
fn a_corrupt_needle_inside_the_newest_volume_is_quarantined_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = {
        let store = open(dir.path(), 1 << 20);
        put_all(&store, 0..4, 3000)
    };
    let at = needle(dir.path(), chunks[1].0);
    let file = fs::OpenOptions::new().write(true).open(&at.path).unwrap();
    file.write_all_at(b"rot", at.offset + 7).unwrap();
    let len = fs::metadata(&at.path).unwrap().len();
    forget_indexes(dir.path());

    let store = open(dir.path(), 1 << 20);
    assert!(matches!(
        store.get(chunks[1].0),
        Err(NodeError::ChunkNotFound(_))
    ));
    let others: Vec<_> = chunks
        .iter()
        .filter(|(c, _)| *c != chunks[1].0)
        .cloned()
        .collect();
    assert_holds(&store, &others);
    // Nothing cut; a tombstone appended, so the bad needle is quarantined once, not at every
    // start, and no one looking at the disk takes it for a copy.
    let tombstone = needle::size(4);
    assert_eq!(fs::metadata(&at.path).unwrap().len(), len + tombstone);
    assert_eq!(store.counters().volume_torn_tail_bytes.get(), 0);
    assert_eq!(store.counters().quarantined.get(), 1);
    assert_eq!(files_in(&dir.path().join("quarantine")), 1);
    assert_eq!(locate(dir.path(), chunks[1].0).unwrap(), None);
    drop(store);
    let store = open(dir.path(), 1 << 20);
    assert_eq!(store.counters().quarantined.get(), 0);
    // The index stopped before the bad needle and got no entry after it (the tombstone's
    // would have left a gap).
    assert_eq!(store.counters().volume_index_damaged.get(), 0);
    assert_holds(&store, &others);
    // Stored again (a repair), it is served: the tombstone came before it.
    store.put(chunks[1].0, &chunks[1].1).unwrap();
    drop(store);
    assert_holds(&open(dir.path(), 1 << 20), &chunks);
}

#[test]
fn scrub_finds_a_corrupt_needle() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 20);
    let chunks = put_all(&store, 0..2, 2000);
    let at = needle(dir.path(), chunks[0].0);
    let file = fs::OpenOptions::new().write(true).open(&at.path).unwrap();
    file.write_all_at(b"rot", at.offset).unwrap();
    assert_eq!(
        store.scrub(chunks[0].0).unwrap(),
        Scrubbed::Corrupt { bytes: 2000 }
    );
    assert_eq!(store.scrub(chunks[0].0).unwrap(), Scrubbed::NotStored);
    assert_eq!(
        store.scrub(chunks[1].0).unwrap(),
        Scrubbed::Good { bytes: 2000 }
    );
}

#[test]
fn torn_tail_is_cut_on_reopen_and_never_served() {
    for tear in ["half a needle", "a whole header, zeroed payload", "garbage"] {
        let dir = tempfile::tempdir().unwrap();
        let (kept, torn_id) = {
            let store = open(dir.path(), 1 << 20);
            (put_all(&store, 0..3, 5000), chunk(9, 5000))
        };
        let volume = volume_files(dir.path())[0].clone();
        let good_len = fs::metadata(&volume).unwrap().len();
        let (id, data) = torn_id;
        let full = needle::encode(needle::Kind::Chunk, id, &data);
        let tail = match tear {
            "half a needle" => full[..full.len() / 2].to_vec(),
            "a whole header, zeroed payload" => {
                let mut zeroed = full.clone();
                zeroed[needle::HEADER..].fill(0);
                zeroed
            }
            _ => vec![0xee; 300],
        };
        let file = fs::OpenOptions::new().write(true).open(&volume).unwrap();
        file.write_all_at(&tail, good_len).unwrap();

        let store = open(dir.path(), 1 << 20);
        assert_eq!(fs::metadata(&volume).unwrap().len(), good_len, "{tear}");
        assert!(
            matches!(store.get(id), Err(NodeError::ChunkNotFound(_))),
            "{tear}"
        );
        assert_holds(&store, &kept);
        assert_eq!(store.usage().chunks, 3);
        assert_eq!(
            store.counters().volume_torn_tail_bytes.get(),
            tail.len() as u64
        );
        // The next needle goes where the torn one was.
        store.put(id, &data).unwrap();
        assert_eq!(
            needle(dir.path(), id).offset,
            good_len + needle::HEADER as u64
        );
        drop(store);
        assert_eq!(open(dir.path(), 1 << 20).get(id).unwrap(), data);
    }
}

#[test]
fn a_bad_header_in_a_sealed_volume_loses_only_its_needle() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = {
        let store = open(dir.path(), 16 << 10);
        put_all(&store, 0..12, 3000)
    };
    assert!(volume_files(dir.path()).len() >= 3);
    let (lost, _) = chunks[1];
    let at = needle(dir.path(), lost);
    assert_eq!(
        at.path,
        volume_files(dir.path())[0],
        "in the first, sealed, volume"
    );
    let file = fs::OpenOptions::new().write(true).open(&at.path).unwrap();
    file.write_all_at(&[0xff; 8], at.offset - needle::HEADER as u64)
        .unwrap();
    forget_indexes(dir.path());

    let store = open(dir.path(), 16 << 10);
    assert!(matches!(store.get(lost), Err(NodeError::ChunkNotFound(_))));
    let others: Vec<_> = chunks
        .iter()
        .filter(|(id, _)| *id != lost)
        .cloned()
        .collect();
    assert_holds(&store, &others);
    assert_eq!(store.usage().chunks, 11);
}

/// A chunk whose bytes are needle images: a chunk needle of `victim` with other bytes, a valid
/// chunk needle, and `victim`'s image again right after it (where a scan that took the valid
/// needle for a real one would look next).
fn chunk_of_needle_images(victim: ChunkId) -> (ChunkId, Vec<u8>) {
    let (embedded, embedded_data) = chunk(99, 1000);
    let fake = needle::encode(needle::Kind::Chunk, victim, b"not the victim's bytes");
    let mut data = fake.clone();
    data.extend(needle::encode(
        needle::Kind::Chunk,
        embedded,
        &embedded_data,
    ));
    data.extend(fake);
    data.extend([7; 100]);
    (ChunkId::of(&data), data)
}

/// After a bad header the scan searches forward for the next needle; a needle image inside a
/// chunk's bytes (anyone's to choose) that claims a live chunk's id must not shadow that chunk's
/// real copy (and be quarantined in its name at the first read).
#[test]
fn a_scan_out_of_sync_takes_no_unverified_needle_image_for_a_live_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (victim, victim_data) = chunk(1, 3000);
    let (carrier, carrier_data) = chunk_of_needle_images(victim);
    let after = {
        let store = open(dir.path(), 16 << 10);
        store.put(victim, &victim_data).unwrap();
        store.put(carrier, &carrier_data).unwrap();
        put_all(&store, 10..20, 3000)
    };
    let at = needle(dir.path(), carrier);
    assert_eq!(at.path, volume_files(dir.path())[0], "in a sealed volume");
    let file = fs::OpenOptions::new().write(true).open(&at.path).unwrap();
    file.write_all_at(&[0xff; 8], at.offset - needle::HEADER as u64)
        .unwrap();
    forget_indexes(dir.path());

    let store = open(dir.path(), 16 << 10);
    assert_eq!(store.get(victim).unwrap(), victim_data);
    assert!(matches!(
        store.get(carrier),
        Err(NodeError::ChunkNotFound(_))
    ));
    assert_holds(&store, &after);
}

/// A torn needle at the tail of the newest volume whose written part holds a valid needle
/// image: the cut is at the torn needle, not after the image, or the torn needle's header
/// (valid, once later appends make its length fit) would swallow the needles appended next.
#[test]
fn a_torn_tail_holding_a_needle_image_is_cut_whole() {
    let dir = tempfile::tempdir().unwrap();
    let kept = put_all(&open(dir.path(), 1 << 20), 0..3, 5000);
    let volume = volume_files(dir.path())[0].clone();
    let good_len = fs::metadata(&volume).unwrap().len();
    let (embedded, embedded_data) = chunk(99, 1000);
    let mut data = needle::encode(needle::Kind::Chunk, embedded, &embedded_data);
    data.extend([7; 8000]);
    let torn = needle::encode(needle::Kind::Chunk, ChunkId::of(&data), &data);
    let file = fs::OpenOptions::new().write(true).open(&volume).unwrap();
    file.write_all_at(&torn[..2000], good_len).unwrap();

    let store = open(dir.path(), 1 << 20);
    assert_eq!(fs::metadata(&volume).unwrap().len(), good_len);
    assert!(matches!(
        store.get(embedded),
        Err(NodeError::ChunkNotFound(_))
    ));
    let appended = put_all(&store, 10..13, 5000);
    drop(store);
    let store = open(dir.path(), 1 << 20);
    assert_holds(&store, &kept);
    assert_holds(&store, &appended);
}

#[test]
fn a_data_dir_of_chunk_files_keeps_working_beside_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let old = {
        let store = ChunkStore::open(dir.path(), 1 << 30, false, IoMode::Direct).unwrap();
        put_all(&store, 0..4, 1000)
    };
    assert!(chunk_file(dir.path(), &old[0].0).is_file());
    let store = open(dir.path(), 1 << 20);
    let new = put_all(&store, 10..14, 1000);
    assert_holds(&store, &old);
    assert_holds(&store, &new);
    assert!(!chunk_file(dir.path(), &new[0].0).exists());
    store.delete(old[0].0).unwrap();
    assert!(!chunk_file(dir.path(), &old[0].0).exists());
    assert_eq!(store.usage().chunks, 7);
    drop(store);
    // And needles stay readable with volumes turned off.
    let store = ChunkStore::open(dir.path(), 1 << 30, false, IoMode::Direct).unwrap();
    assert_holds(&store, &new);
    assert_eq!(store.usage().chunks, 7);
}

/// Chunks over several volumes, some deleted, in a store stopped cleanly: its volumes' index
/// files are complete.
fn indexed_store(dir: &Path, fsync: bool) -> (Chunks, Vec<ChunkId>) {
    let store = ChunkStore::open_with(dir, options(fsync, 16 << 10)).unwrap();
    let mut kept = put_all(&store, 0..20, 2000);
    let deleted: Vec<ChunkId> = kept.drain(..5).map(|(id, _)| id).collect();
    for id in &deleted {
        store.delete(*id).unwrap();
    }
    assert!(volume_files(dir).len() >= 3);
    (kept, deleted)
}

fn index_files(dir: &Path) -> Vec<PathBuf> {
    volume_files(dir)
        .iter()
        .map(|p| p.with_extension("idx"))
        .collect()
}

/// After a clean stop every volume's index file is complete: a restart reads them and not one
/// byte of the volumes.
#[test]
fn a_restart_after_a_clean_stop_reads_no_volume_bytes() {
    for fsync in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (kept, deleted) = indexed_store(dir.path(), fsync);
        let store = open(dir.path(), 16 << 10);
        assert_eq!(
            store.counters().volume_scanned_bytes.get(),
            0,
            "fsync {fsync}"
        );
        assert_holds(&store, &kept);
        assert_deleted(&store, &deleted);
        assert_eq!(store.usage().chunks, kept.len() as u64);
    }
}

/// Volumes written before index files existed are scanned once, and get their index.
#[test]
fn volumes_without_an_index_are_scanned_once_and_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, deleted) = indexed_store(dir.path(), true);
    for index in index_files(dir.path()) {
        fs::remove_file(index).unwrap();
    }
    let store = open(dir.path(), 16 << 10);
    let volumes: u64 = volume_files(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len() - SUPERBLOCK)
        .sum();
    assert_eq!(store.counters().volume_scanned_bytes.get(), volumes);
    assert_holds(&store, &kept);
    assert_deleted(&store, &deleted);
    drop(store);
    let store = open(dir.path(), 16 << 10);
    assert_eq!(store.counters().volume_scanned_bytes.get(), 0);
    assert_holds(&store, &kept);
}

/// A damaged index file is trusted up to its first bad entry, cut there, and the volume is
/// scanned from the needle that entry should have named; the next start reads no volume bytes.
#[test]
fn a_corrupt_or_truncated_index_is_cut_and_completed_by_a_scan() {
    for damage in [
        "truncated mid-entry",
        "a flipped bit",
        "another volume's header",
        "emptied",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (kept, deleted) = indexed_store(dir.path(), true);
        let index = index_files(dir.path())[0].clone();
        let len = fs::metadata(&index).unwrap().len();
        let file = fs::OpenOptions::new().write(true).open(&index).unwrap();
        match damage {
            "truncated mid-entry" => file.set_len(len - 30).unwrap(),
            "a flipped bit" => file.write_all_at(&[0x55], 16 + 52 * 2 + 20).unwrap(),
            "another volume's header" => file.write_all_at(&[9], 12).unwrap(),
            _ => file.set_len(0).unwrap(),
        }
        let store = open(dir.path(), 16 << 10);
        let counters = store.counters();
        assert_eq!(counters.volume_index_damaged.get(), 1, "{damage}");
        assert!(counters.volume_scanned_bytes.get() > 0, "{damage}");
        assert_holds(&store, &kept);
        assert_deleted(&store, &deleted);
        assert_eq!(store.usage().chunks, kept.len() as u64, "{damage}");
        drop(store);
        let store = open(dir.path(), 16 << 10);
        let counters = store.counters();
        assert_eq!(
            (
                counters.volume_index_damaged.get(),
                counters.volume_scanned_bytes.get()
            ),
            (0, 0),
            "{damage}: rebuilt"
        );
        assert_holds(&store, &kept);
    }
}

/// A process killed mid-append (no clean stop: `forget` keeps the store from closing, as
/// SIGKILL does, while its writes stay in the page cache): needles appended since the last
/// entry are found by a scan of what follows the index, and a torn needle there is still cut.
#[test]
fn a_torn_tail_past_the_index_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open_with(dir.path(), options(false, 1 << 20)).unwrap();
    let kept = put_all(&store, 0..3, 5000);
    drop(store);
    // Not synced, so owed to the index, when the process dies.
    let store = ChunkStore::open_with(dir.path(), options(false, 1 << 20)).unwrap();
    let unindexed = put_all(&store, 3..5, 5000);
    std::mem::forget(store);
    let volume = volume_files(dir.path())[0].clone();
    let good_len = fs::metadata(&volume).unwrap().len();
    let (id, data) = chunk(9, 5000);
    let torn = needle::encode(needle::Kind::Chunk, id, &data);
    let file = fs::OpenOptions::new().write(true).open(&volume).unwrap();
    file.write_all_at(&torn[..torn.len() / 2], good_len)
        .unwrap();

    let store = open(dir.path(), 1 << 20);
    assert_eq!(fs::metadata(&volume).unwrap().len(), good_len);
    let counters = store.counters();
    assert_eq!(counters.volume_torn_tail_bytes.get(), torn.len() as u64 / 2);
    let past_the_index = 2 * needle::size(5000) + torn.len() as u64 / 2;
    assert_eq!(counters.volume_scanned_bytes.get(), past_the_index);
    assert!(matches!(store.get(id), Err(NodeError::ChunkNotFound(_))));
    assert_holds(&store, &kept);
    assert_holds(&store, &unindexed);
    drop(store);
    let store = open(dir.path(), 1 << 20);
    assert_eq!(store.counters().volume_scanned_bytes.get(), 0);
    assert_holds(&store, &unindexed);
}

/// Many volumes, most of their chunks deleted: what compaction is for.
type Chunks = Vec<(ChunkId, Vec<u8>)>;

fn store_with_garbage(dir: &Path) -> (ChunkStore, Chunks, Vec<ChunkId>) {
    let store = open(dir, 16 << 10);
    let chunks = put_all(&store, 0..40, 2000);
    let (deleted, kept): (Vec<_>, Vec<_>) = chunks
        .into_iter()
        .partition(|(id, _)| id.as_bytes()[0] % 4 != 0);
    for (id, _) in &deleted {
        store.delete(*id).unwrap();
    }
    (store, kept, deleted.into_iter().map(|(id, _)| id).collect())
}

fn compact_all(store: &ChunkStore) -> u64 {
    let mut reclaimed = 0;
    while let Some(done) = store.compact_next(&mut |_| {}, &|| false).unwrap() {
        reclaimed += done.reclaimed;
    }
    reclaimed
}

fn assert_deleted(store: &ChunkStore, deleted: &[ChunkId]) {
    for id in deleted {
        assert!(
            matches!(store.get(*id), Err(NodeError::ChunkNotFound(_))),
            "{id} came back"
        );
    }
}

/// Deleted needles take disk space until compaction: the capacity counts them, so a node does
/// not promise room it has not got, and gets it back once they are compacted away.
#[test]
fn volume_garbage_counts_against_the_capacity_until_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, kept, deleted) = store_with_garbage(dir.path());
    let stored: u64 = kept.iter().map(|(_, data)| data.len() as u64).sum();
    let garbage = deleted.len() as u64 * needle::size(2000);
    let used = store.usage().used;
    assert!(used >= stored + garbage, "{used} < {stored} + {garbage}");
    drop(store);

    // With room for the live chunks and a little more, but not for the garbage too.
    let capacity = stored + garbage / 2;
    let tight = |dir: &Path| {
        let mut options = options(true, 16 << 10);
        options.capacity = capacity;
        ChunkStore::open_with(dir, options).unwrap()
    };
    let store = tight(dir.path());
    assert_eq!(store.usage().used, used, "the same after a reopen");
    let (id, data) = chunk(1000, 2000);
    assert!(matches!(store.put(id, &data), Err(NodeError::Full { .. })));
    compact_all(&store);
    let after = store.usage().used;
    assert!(after < stored + garbage / 4, "{after}");
    store.put(id, &data).unwrap();
}

#[test]
fn compaction_reclaims_deleted_needles_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, kept, deleted) = store_with_garbage(dir.path());
    let before = store.volume_usage();
    store.take_changes();
    let reclaimed = compact_all(&store);
    let after = store.volume_usage();
    assert!(reclaimed > 0);
    assert!(after.bytes < before.bytes / 2, "{before:?} → {after:?}");
    assert_eq!(after.live, before.live);
    assert_eq!(store.counters().volume_reclaimed_bytes.get(), reclaimed);
    assert_holds(&store, &kept);
    assert_deleted(&store, &deleted);
    // Moving needles is no change to report.
    assert_eq!(store.take_changes(), ChunkChanges::default());
    // Nothing is left worth compacting.
    assert_eq!(store.compact_next(&mut |_| {}, &|| false).unwrap(), None);

    drop(store);
    let store = open(dir.path(), 16 << 10);
    assert_holds(&store, &kept);
    assert_deleted(&store, &deleted);
    assert_eq!(store.usage().chunks, kept.len() as u64);
    assert_eq!(store.volume_usage().live, after.live);
}

#[test]
fn compaction_skips_volumes_mostly_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 << 10);
    let chunks = put_all(&store, 0..20, 2000);
    store.delete(chunks[0].0).unwrap();
    assert_eq!(store.compact_next(&mut |_| {}, &|| false).unwrap(), None);
}

#[test]
fn compaction_quarantines_a_bad_needle_instead_of_copying_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, kept, _) = store_with_garbage(dir.path());
    let (bad, _) = kept[0];
    let at = needle(dir.path(), bad);
    let file = fs::OpenOptions::new().write(true).open(&at.path).unwrap();
    file.write_all_at(b"rot", at.offset + 10).unwrap();
    store.take_changes();
    compact_all(&store);
    assert!(matches!(store.get(bad), Err(NodeError::ChunkNotFound(_))));
    assert_eq!(store.take_changes().corrupt, vec![bad]);
    assert_holds(&store, &kept[1..]);
}

/// A compaction stopped after `n` needles, and the store dropped: what a crash mid-copy
/// leaves (every write went through the page cache, which a killed process keeps).
#[test]
fn crash_during_compaction_copies_loses_nothing_and_brings_nothing_back() {
    for n in [0, 1, 3, 7] {
        let dir = tempfile::tempdir().unwrap();
        let (store, kept, deleted) = store_with_garbage(dir.path());
        let seen = std::cell::Cell::new(0);
        let stopped = store
            .compact_next(&mut |_| seen.set(seen.get() + 1), &|| seen.get() >= n)
            .unwrap();
        assert_eq!(stopped, None, "stopped after {n} needles");
        assert_holds(&store, &kept);
        drop(store);

        let store = open(dir.path(), 16 << 10);
        assert_holds(&store, &kept);
        assert_deleted(&store, &deleted);
        assert_eq!(store.usage().chunks, kept.len() as u64);
        // And compaction finishes from there.
        compact_all(&store);
        drop(store);
        let store = open(dir.path(), 16 << 10);
        assert_holds(&store, &kept);
        assert_deleted(&store, &deleted);
    }
}

#[test]
fn a_chunk_stored_again_after_its_delete_survives_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut kept, deleted) = store_with_garbage(dir.path());
    let again = deleted[0];
    let (_, data) = (0..40)
        .map(|s| chunk(s, 2000))
        .find(|(id, _)| *id == again)
        .unwrap();
    store.put(again, &data).unwrap();
    kept.push((again, data));
    compact_all(&store);
    assert_holds(&store, &kept);
    drop(store);
    assert_holds(&open(dir.path(), 16 << 10), &kept);
}

#[test]
fn concurrent_synced_puts_share_fsyncs_and_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1 << 30);
    let written: Vec<Vec<(ChunkId, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u32)
            .map(|t| {
                let store = &store;
                s.spawn(move || put_all(store, t * 100..t * 100 + 25, 1000))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fsyncs = store.counters().volume_fsyncs.get();
    // One for the new volume's superblock is not counted; each put needs at most one.
    assert!(fsyncs <= 200, "{fsyncs} fsyncs for 200 puts");
    drop(store);
    let store = open(dir.path(), 1 << 30);
    for chunks in &written {
        assert_holds(&store, chunks);
    }
}

#[test]
fn compaction_keeps_a_tombstone_while_the_volume_it_names_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 << 10);
    // Volume 1: seven chunks, one deleted later (so volume 1 is mostly live and stays).
    let first = put_all(&store, 0..7, 2000);
    // Volume 2: six chunks, all deleted, and the tombstone of the one in volume 1.
    let second = put_all(&store, 10..16, 2000);
    assert_eq!(volume_files(dir.path()).len(), 2);
    store.delete(first[0].0).unwrap();
    for (id, _) in &second {
        store.delete(*id).unwrap();
    }
    // Volume 3 takes over, sealing volume 2.
    let third = put_all(&store, 20..23, 2000);
    assert_eq!(volume_files(dir.path()).len(), 3);
    let done = store.compact_next(&mut |_| {}, &|| false).unwrap().unwrap();
    // Copied: the tombstone naming volume 1, and third[0], which fit in volume 2.
    assert_eq!((done.volume, done.copied), (2, 2));
    assert_eq!(store.compact_next(&mut |_| {}, &|| false).unwrap(), None);
    drop(store);

    let store = open(dir.path(), 16 << 10);
    assert!(matches!(
        store.get(first[0].0),
        Err(NodeError::ChunkNotFound(_))
    ));
    assert_holds(&store, &first[1..]);
    assert_holds(&store, &third);
    assert_eq!(store.usage().chunks, 9);
}

/// The small-chunk store's failpoints. As in the file store's tests, `return` actions are aimed
/// (at a chunk id, or at this test's data directory, which is part of every volume's path),
/// so that tests running alongside are never failed; these tests also take `SERIAL`.
#[cfg(feature = "failpoints")]
mod failpoints {
    use super::*;
    use crate::chunk_store::tests::failpoints::serial;

    fn dir_arg(dir: &Path) -> String {
        dir.file_name().unwrap().to_str().unwrap().to_string()
    }

    fn assert_io_error(err: NodeError, failpoint: &str, errno: i32) {
        match &err {
            NodeError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(errno), "{err}"),
            other => panic!("{failpoint}: expected an I/O error, got {other:?}"),
        }
        assert!(err.to_string().contains(failpoint), "{err}");
    }

    /// A put failed at `failpoint` leaves no index entry, no space used and no bytes in the
    /// volume; the same put succeeds afterwards and survives a reopen.
    fn assert_append_fails_cleanly(failpoint: &str) {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 20);
        let first = put_all(&store, 0..2, 1000);
        store.take_changes();
        let (id, data) = chunk(7, 3000);
        let on_disk = || -> u64 {
            let files = volume_files(dir.path());
            files.iter().map(|p| fs::metadata(p).unwrap().len()).sum()
        };
        let before = (store.usage().used, store.volume_usage(), on_disk());
        {
            let _fp = fail::FailGuard::new(failpoint, &format!("return({id})")).unwrap();
            assert_io_error(store.put(id, &data).unwrap_err(), failpoint, ENOSPC);
        }
        assert_eq!(
            (store.usage().used, store.volume_usage(), on_disk()),
            before,
            "{failpoint} left bytes behind"
        );
        assert!(!store.list().unwrap().contains(&id));
        assert_eq!(store.take_changes(), ChunkChanges::default());
        store.put(id, &data).unwrap();
        assert_eq!(store.get(id).unwrap(), data);
        drop(store);
        let store = open(dir.path(), 1 << 20);
        assert_holds(&store, &first);
        assert_eq!(store.get(id).unwrap(), data);
        assert_eq!(store.counters().volume_torn_tail_bytes.get(), 0);
    }

    #[test]
    fn append_failpoint_fails_the_put_with_enospc() {
        assert_append_fails_cleanly("volume::append");
    }

    #[test]
    fn torn_append_failpoint_is_cut_and_fails_the_put() {
        assert_append_fails_cleanly("volume::torn_append");
    }

    #[test]
    fn failed_group_commit_fails_the_put_and_poisons_its_volume() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 20);
        let first = put_all(&store, 0..2, 1000);
        let (id, data) = chunk(7, 3000);
        {
            let _fp =
                fail::FailGuard::new("volume::fsync", &format!("return({})", dir_arg(dir.path())))
                    .unwrap();
            assert_io_error(store.put(id, &data).unwrap_err(), "volume::fsync", EIO);
        }
        assert!(
            !store.list().unwrap().contains(&id),
            "never acknowledged, never indexed"
        );
        // The volume is poisoned: the next put goes to a fresh one.
        store.put(id, &data).unwrap();
        assert_eq!(volume_files(dir.path()).len(), 2);
        assert_eq!(needle(dir.path(), id).path, volume_files(dir.path())[1]);
        assert_holds(&store, &first);
        drop(store);
        let store = open(dir.path(), 1 << 20);
        assert_holds(&store, &first);
        assert_eq!(store.get(id).unwrap(), data);
    }

    /// An index write that fails (the crash point "needle durable, entry missing") or tears
    /// (a crash mid-write) costs a scan at the next open, never a chunk; that scan rebuilds the
    /// index.
    #[test]
    fn failed_or_torn_index_writes_cost_a_scan_not_a_chunk() {
        for failpoint in ["volume::index_write", "volume::index_torn"] {
            let _serial = serial();
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), 1 << 20);
            let before = put_all(&store, 0..3, 1000);
            let after = {
                let _fp =
                    fail::FailGuard::new(failpoint, &format!("return({})", dir_arg(dir.path())))
                        .unwrap();
                // Each put is acknowledged: its needle is durable, only its entry is not written.
                put_all(&store, 3..6, 1000)
            };
            let later = put_all(&store, 6..8, 1000);
            drop(store);
            let store = open(dir.path(), 1 << 20);
            let counters = store.counters();
            assert!(counters.volume_scanned_bytes.get() > 0, "{failpoint}");
            assert_eq!(
                counters.volume_index_damaged.get(),
                u64::from(failpoint == "volume::index_torn"),
                "{failpoint}"
            );
            for chunks in [&before, &after, &later] {
                assert_holds(&store, chunks);
            }
            drop(store);
            let store = open(dir.path(), 1 << 20);
            assert_eq!(
                store.counters().volume_scanned_bytes.get(),
                0,
                "{failpoint}"
            );
            assert_holds(&store, &later);
        }
    }

    /// A chunk put again while compaction copies the tombstone of its earlier copy survives a
    /// reopen. The put's needle waits for its group commit before it is indexed; had the copied
    /// tombstone landed after that needle, the next open would drop the acknowledged chunk.
    #[test]
    fn a_chunk_put_again_while_its_tombstone_is_compacted_survives() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 16 << 10);
        // As in compaction_keeps_a_tombstone_while_the_volume_it_names_is_there: volume 2 is
        // garbage but for the tombstone of first[0], whose needle is in volume 1, which stays.
        let first = put_all(&store, 0..7, 2000);
        let second = put_all(&store, 10..16, 2000);
        store.delete(first[0].0).unwrap();
        for (id, _) in &second {
            store.delete(*id).unwrap();
        }
        let third = put_all(&store, 20..23, 2000);
        assert_eq!(volume_files(dir.path()).len(), 3);
        let (again, data) = first[0].clone();
        {
            // The put waits half a second in its fsync while volume 2 is compacted.
            let _slow = fail::FailGuard::new("volume::fsync", "sleep(500)").unwrap();
            std::thread::scope(|s| {
                let put = s.spawn(|| store.put(again, &data));
                std::thread::sleep(std::time::Duration::from_millis(100));
                store.compact_next(&mut |_| {}, &|| false).unwrap().unwrap();
                put.join().unwrap().unwrap();
            });
        }
        drop(store);
        let store = open(dir.path(), 16 << 10);
        assert_eq!(
            store.get(again).unwrap(),
            data,
            "the chunk put again is gone"
        );
        assert_holds(&store, &first[1..]);
        assert_holds(&store, &third);
    }

    #[test]
    fn concurrent_puts_share_a_slow_fsync() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 30);
        // Every fsync takes 50 ms: the puts arriving meanwhile wait for the next one together.
        let _fp = fail::FailGuard::new("volume::fsync", "sleep(50)").unwrap();
        let written: Vec<Chunks> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u32)
                .map(|t| {
                    let store = &store;
                    s.spawn(move || put_all(store, t * 100..t * 100 + 10, 1000))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let fsyncs = store.counters().volume_fsyncs.get();
        assert!(fsyncs <= 40, "{fsyncs} fsyncs for 80 concurrent puts");
        drop(store);
        let store = open(dir.path(), 1 << 30);
        for chunks in &written {
            assert_holds(&store, chunks);
        }
    }

    /// Compaction failed at `actions` of `failpoint`, then the store dropped (a crash: the
    /// failpoint's error stops it where a crash would, and all writes are in the page cache),
    /// and reopened: every kept chunk is there, no deleted one came back, and compaction then
    /// finishes.
    fn assert_compaction_crash_is_safe(failpoint: &str, actions: &str) {
        assert_compaction_crash_is_safe_with(store_with_garbage, failpoint, actions);
    }

    /// [`assert_compaction_crash_is_safe`] on the store `setup` makes: the store, the chunks
    /// kept and the ids deleted.
    fn assert_compaction_crash_is_safe_with(
        setup: fn(&Path) -> (ChunkStore, Chunks, Vec<ChunkId>),
        failpoint: &str,
        actions: &str,
    ) {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let (store, kept, deleted) = setup(dir.path());
        {
            let actions = actions.replace("{dir}", &dir_arg(dir.path()));
            let _fp = fail::FailGuard::new(failpoint, &actions).unwrap();
            let err = store.compact_next(&mut |_| {}, &|| false).unwrap_err();
            assert_io_error(err, failpoint, EIO);
        }
        assert_holds(&store, &kept);
        assert_deleted(&store, &deleted);
        drop(store);
        let store = open(dir.path(), 16 << 10);
        assert_holds(&store, &kept);
        assert_deleted(&store, &deleted);
        assert_eq!(store.usage().chunks, kept.len() as u64);
        assert!(compact_all(&store) > 0);
        drop(store);
        let store = open(dir.path(), 16 << 10);
        assert_holds(&store, &kept);
        assert_deleted(&store, &deleted);
    }

    #[test]
    fn crash_before_the_first_compaction_copy() {
        assert_compaction_crash_is_safe("volume::compact_copy", "return({dir})");
    }

    #[test]
    fn crash_midway_through_compaction_copies() {
        assert_compaction_crash_is_safe("volume::compact_copy", "4*off->return({dir})");
    }

    #[test]
    fn crash_after_compaction_copies_before_the_unlink() {
        assert_compaction_crash_is_safe("volume::compact_unlink", "return({dir})");
    }

    /// The fsync that makes compaction's copies durable fails: the old volume stays. (The
    /// first volume [`store_with_garbage`] compacts holds nothing live, so nothing is copied
    /// and nothing synced: a volume with live needles is needed here.)
    #[test]
    fn crash_in_compaction_fsync() {
        assert_compaction_crash_is_safe_with(
            |dir| {
                let store = open(dir, 16 << 10);
                // Volume 1: seven chunks, four deleted; volume 2 takes the rest and the
                // tombstones, so volume 1 is sealed, mostly garbage, and has three to copy.
                let first = put_all(&store, 0..7, 2000);
                let second = put_all(&store, 10..13, 2000);
                for (id, _) in &first[..4] {
                    store.delete(*id).unwrap();
                }
                let kept = first[4..].iter().chain(&second).cloned().collect();
                (store, kept, first[..4].iter().map(|(id, _)| *id).collect())
            },
            "volume::fsync",
            "return({dir})",
        );
    }
}

#[test]
fn a_volume_with_a_damaged_superblock_costs_its_chunks_not_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = {
        let store = open(dir.path(), 16 << 10);
        put_all(&store, 0..12, 3000)
    };
    let first = volume_files(dir.path())[0].clone();
    let file = fs::OpenOptions::new().write(true).open(&first).unwrap();
    file.write_all_at(b"NOTAVOL!", 0).unwrap();

    let store = open(dir.path(), 16 << 10);
    let (lost, kept): (Vec<_>, Vec<_>) = chunks
        .iter()
        .cloned()
        .partition(|(id, _)| needle(dir.path(), *id).path == first);
    assert!(!lost.is_empty() && !kept.is_empty());
    assert_holds(&store, &kept);
    assert_deleted(&store, &lost.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    // New needles go to a new volume, never over the damaged one.
    let more = put_all(&store, 50..52, 3000);
    assert_holds(&store, &more);
    assert_eq!(fs::read(&first).unwrap()[..8], *b"NOTAVOL!");
}
