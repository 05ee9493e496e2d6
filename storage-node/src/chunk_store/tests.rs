use super::*;

fn store(capacity: u64) -> (tempfile::TempDir, ChunkStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), capacity, true, IoMode::Direct).unwrap();
    (dir, store)
}

pub(super) fn chunk_file(dir: &Path, id: &ChunkId) -> PathBuf {
    let hex = id.to_hex();
    dir.join("chunks").join(&hex[..2]).join(&hex)
}

pub(super) fn files_in(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn put_get_delete_round_trip() {
    let (dir, store) = store(1 << 20);
    let data = b"some chunk bytes".to_vec();
    let id = ChunkId::of(&data);
    store.put(id, &data).unwrap();
    assert_eq!(store.get(id).unwrap(), data);
    assert!(chunk_file(dir.path(), &id).is_file());
    assert_eq!(store.usage().used, data.len() as u64);
    assert_eq!(store.usage().chunks, 1);
    assert_eq!(store.list().unwrap(), vec![id]);

    store.delete(id).unwrap();
    assert!(matches!(store.get(id), Err(NodeError::ChunkNotFound(_))));
    assert_eq!(store.usage().used, 0);
    assert_eq!(store.usage().chunks, 0);
    assert!(store.list().unwrap().is_empty());
    store.delete(id).unwrap();
}

#[test]
fn put_rejects_data_that_does_not_match_its_id() {
    let (_dir, store) = store(1 << 20);
    let id = ChunkId::of(b"right");
    assert!(matches!(
        store.put(id, b"wrong"),
        Err(NodeError::ChecksumMismatch { .. })
    ));
    assert_eq!(store.usage().used, 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn corrupt_copy_is_quarantined_and_reported() {
    let (dir, store) = store(1 << 20);
    let data = vec![7u8; 4096];
    let id = ChunkId::of(&data);
    store.put(id, &data).unwrap();
    store.take_changes();

    let path = chunk_file(dir.path(), &id);
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 1;
    fs::write(&path, bytes).unwrap();

    assert!(matches!(store.get(id), Err(NodeError::ChunkCorrupt(_))));
    assert!(!path.exists());
    assert_eq!(files_in(&dir.path().join("quarantine")), 1);
    let changes = store.take_changes();
    assert_eq!(changes.corrupt, vec![id]);
    assert_eq!(changes.removed, vec![id]);
    assert_eq!(store.usage().chunks, 0);
    assert_eq!(store.usage().used, 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn counters_follow_writes_reads_and_bad_copies() {
    let (dir, store) = store(1 << 20);
    let data = vec![9u8; 4096];
    let id = ChunkId::of(&data);
    store.put(id, &data).unwrap();
    store.put(id, &data).unwrap();
    assert!(store.put(id, b"other bytes").is_err());
    store.get(id).unwrap();
    assert_eq!(store.scrub(id).unwrap(), Scrubbed::Good { bytes: 4096 });
    let c = store.counters();
    assert_eq!(
        (c.chunk_writes.get(), c.chunk_written_bytes.get()),
        (2, 8192)
    );
    assert_eq!((c.chunk_reads.get(), c.chunk_read_bytes.get()), (1, 4096));
    assert_eq!(c.scrubbed_bytes.get(), 4096);
    let failures = |copy| {
        c.verification_failures
            .get_or_create(&crate::metrics::CopyLabels { copy })
            .get()
    };
    assert_eq!((failures("received"), failures("stored")), (1, 0));

    let path = chunk_file(dir.path(), &id);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 1;
    fs::write(&path, bytes).unwrap();
    assert!(store.get(id).is_err());
    assert_eq!((failures("received"), failures("stored")), (1, 1));
    assert_eq!(c.quarantined.get(), 1);
    assert_eq!(c.chunk_reads.get(), 1, "a bad copy is no read");
}

#[test]
fn storing_again_replaces_a_bad_copy() {
    let (dir, store) = store(1 << 20);
    let data = vec![5u8; 4096];
    let id = ChunkId::of(&data);
    store.put(id, &data).unwrap();
    let path = chunk_file(dir.path(), &id);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0x80;
    fs::write(&path, bytes).unwrap();

    store.put(id, &data).unwrap();
    assert_eq!(store.get(id).unwrap(), data);
    assert_eq!(store.usage().chunks, 1);
    assert_eq!(store.usage().used, 4096);
    assert_eq!(files_in(&dir.path().join("quarantine")), 1);
}

#[test]
fn storing_again_keeps_a_good_copy() {
    let (dir, store) = store(1 << 20);
    let data = vec![6u8; 4096];
    let id = ChunkId::of(&data);
    store.put(id, &data).unwrap();
    let path = chunk_file(dir.path(), &id);
    let written = fs::metadata(&path).unwrap().modified().unwrap();
    store.take_changes();

    store.put(id, &data).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), written);
    // Not rewritten, but reported again as held.
    assert_eq!(
        store.take_changes(),
        ChunkChanges {
            added: vec![id],
            ..ChunkChanges::default()
        }
    );
    assert_eq!(store.usage().used, 4096);
    assert_eq!(store.usage().chunks, 1);
}

#[test]
fn truncated_copy_is_caught_and_its_indexed_length_freed() {
    let (dir, store) = store(1 << 20);
    let data = vec![3u8; 8192];
    let id = ChunkId::of(&data);
    store.put(id, &data).unwrap();
    fs::write(chunk_file(dir.path(), &id), &data[..100]).unwrap();
    assert!(matches!(store.get(id), Err(NodeError::ChunkCorrupt(_))));
    // The space counted is the length the index knew, not the truncated file's.
    assert_eq!(store.usage().used, 0);
    assert_eq!(store.usage().chunks, 0);
}

#[test]
fn vanished_file_is_reported_removed_when_read() {
    let (dir, store) = store(1 << 20);
    let data = vec![4u8; 2048];
    let id = ChunkId::of(&data);
    store.put(id, &data).unwrap();
    store.take_changes();

    fs::remove_file(chunk_file(dir.path(), &id)).unwrap();
    assert_eq!(store.list().unwrap(), vec![id]);
    assert!(matches!(store.get(id), Err(NodeError::ChunkNotFound(_))));
    let changes = store.take_changes();
    assert_eq!(changes.removed, vec![id]);
    assert!(changes.corrupt.is_empty());
    assert_eq!(store.usage().used, 0);
    assert_eq!(store.usage().chunks, 0);
    assert!(store.list().unwrap().is_empty());
    // Only once: the index now agrees with the disk.
    assert_eq!(store.scrub(id).unwrap(), Scrubbed::NotStored);
    assert_eq!(store.take_changes(), ChunkChanges::default());
}

#[test]
fn capacity_is_enforced() {
    let (_dir, store) = store(10_000);
    let big = vec![1u8; 6000];
    store.put(ChunkId::of(&big), &big).unwrap();
    let more = vec![2u8; 6000];
    assert!(matches!(
        store.put(ChunkId::of(&more), &more),
        Err(NodeError::Full { .. })
    ));
    // Storing a chunk already there needs no new space.
    store.put(ChunkId::of(&big), &big).unwrap();
    assert_eq!(store.usage().used, 6000);
    assert_eq!(store.usage().chunks, 1);
}

#[test]
fn changes_collapse_to_the_latest_state() {
    let (_dir, store) = store(1 << 20);
    let a = b"a".to_vec();
    let b = b"b".to_vec();
    store.put(ChunkId::of(&a), &a).unwrap();
    store.put(ChunkId::of(&b), &b).unwrap();
    store.delete(ChunkId::of(&b)).unwrap();
    let changes = store.take_changes();
    assert_eq!(changes.added, vec![ChunkId::of(&a)]);
    assert_eq!(changes.removed, vec![ChunkId::of(&b)]);
    assert_eq!(store.take_changes(), ChunkChanges::default());

    store.restore_changes(changes);
    store.delete(ChunkId::of(&a)).unwrap();
    let changes = store.take_changes();
    assert_eq!(changes.added, vec![]);
    let mut removed = changes.removed;
    removed.sort();
    let mut want = vec![ChunkId::of(&a), ChunkId::of(&b)];
    want.sort();
    assert_eq!(removed, want);
}

#[test]
fn reopen_indexes_chunks_and_drops_unfinished_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![9u8; 1000];
    let id = ChunkId::of(&data);
    {
        let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
        store.put(id, &data).unwrap();
    }
    let tmp = dir.path().join("tmp");
    fs::write(tmp.join("torn.partial"), b"half a chunk").unwrap();
    // What a crash between writing and renaming leaves: a complete, valid chunk under the
    // writer's temp name.
    let whole = vec![8u8; 3000];
    let whole_id = ChunkId::of(&whole);
    fs::write(tmp.join(format!("{}.a1b2c3", whole_id.short())), &whole).unwrap();

    let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
    assert_eq!(store.usage().chunks, 1);
    assert_eq!(store.usage().used, 1000);
    assert_eq!(store.list().unwrap(), vec![id]);
    assert_eq!(files_in(&tmp), 0);
    assert!(matches!(
        store.get(whole_id),
        Err(NodeError::ChunkNotFound(_))
    ));
    assert_eq!(store.take_changes(), ChunkChanges::default());
}

#[test]
fn deleted_chunk_files_are_emptied_and_reused() {
    use std::os::unix::fs::MetadataExt;

    let (dir, store) = store(1 << 20);
    let old = vec![3u8; 10_000];
    let old_id = ChunkId::of(&old);
    store.put(old_id, &old).unwrap();
    let inode = fs::metadata(chunk_file(dir.path(), &old_id)).unwrap().ino();
    store.delete(old_id).unwrap();
    let free: Vec<_> = fs::read_dir(dir.path().join("free")).unwrap().collect();
    assert_eq!(free.len(), 1);
    assert_eq!(free[0].as_ref().unwrap().metadata().unwrap().len(), 0);
    assert!(!chunk_file(dir.path(), &old_id).exists());
    // Not reused before its move out of `chunks/` is synced.
    assert_eq!(store.free.counts(), (0, 1));
    let early = vec![6u8; 5000];
    store.put(ChunkId::of(&early), &early).unwrap();
    let early_inode = fs::metadata(chunk_file(dir.path(), &ChunkId::of(&early)))
        .unwrap()
        .ino();
    assert_ne!(early_inode, inode);
    store.finish_deletes();
    assert_eq!(store.free.counts(), (1, 0));

    let new = vec![4u8; 5000];
    let new_id = ChunkId::of(&new);
    store.put(new_id, &new).unwrap();
    let path = chunk_file(dir.path(), &new_id);
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
    assert_eq!(fs::read(&path).unwrap(), new);
    assert_eq!(files_in(&dir.path().join("free")), 0);
    assert_eq!(store.free.counts(), (0, 0));
    assert!(matches!(
        store.get(old_id),
        Err(NodeError::ChunkNotFound(_))
    ));
}

#[test]
fn deleting_a_symlink_named_like_a_chunk_leaves_its_target_alone() {
    let (dir, store) = store(1 << 20);
    let id = ChunkId::of(b"never stored");
    let target = dir.path().join("outside");
    fs::write(&target, b"not the store's").unwrap();
    let link = chunk_file(dir.path(), &id);
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    store.delete(id).unwrap();
    store.finish_deletes();
    assert!(fs::symlink_metadata(&link).is_err());
    assert_eq!(fs::read(&target).unwrap(), b"not the store's");
    assert_eq!(store.free.counts(), (0, 0));
}

#[test]
fn open_clears_free_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![5u8; 1000];
    {
        let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
        store.put(ChunkId::of(&data), &data).unwrap();
        store.delete(ChunkId::of(&data)).unwrap();
    }
    // What a crash between moving a deleted chunk in and emptying it leaves.
    fs::write(dir.path().join("free").join("77"), b"stale bytes").unwrap();
    let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
    assert_eq!(files_in(&dir.path().join("free")), 0);
    assert_eq!(store.usage().chunks, 0);
    store.put(ChunkId::of(&data), &data).unwrap();
    assert_eq!(store.get(ChunkId::of(&data)).unwrap(), data);
}

#[test]
fn open_ignores_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![2u8; 500];
    let id = ChunkId::of(&data);
    {
        let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
        store.put(id, &data).unwrap();
    }
    let chunks = dir.path().join("chunks");
    fs::write(chunks.join("README"), b"not a shard").unwrap();
    fs::write(chunks.join(&id.to_hex()[..2]).join("notes.txt"), b"x").unwrap();
    // A valid id in the wrong shard directory would never be found by its path.
    let other = ChunkId::of(b"elsewhere");
    let wrong_shard = if other.to_hex().starts_with("00") {
        "01"
    } else {
        "00"
    };
    fs::create_dir_all(chunks.join(wrong_shard)).unwrap();
    fs::write(chunks.join(wrong_shard).join(other.to_hex()), b"elsewhere").unwrap();

    let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
    assert_eq!(store.list().unwrap(), vec![id]);
    assert_eq!(store.usage().used, 500);
}

#[test]
fn reservations_are_given_back_when_a_write_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
    let data = vec![1u8; 700];
    let id = ChunkId::of(&data);
    // No temp directory: the write fails after the space was reserved.
    fs::remove_dir(dir.path().join("tmp")).unwrap();
    assert!(matches!(store.put(id, &data), Err(NodeError::Io { .. })));
    assert_eq!(store.usage().used, 0);
    assert_eq!(store.usage().chunks, 0);
    assert!(!chunk_file(dir.path(), &id).exists());
}

/// Tests of the write path's failpoints. The `fail` registry is global to the test binary:
/// these tests take `SERIAL`, and their `return` actions name their own chunk's id, so the
/// other tests' writes, running meanwhile, are never failed (a `panic` could not be aimed
/// like that, so crashing in `before_rename` is left to the process-level tests; the temp
/// file it leaves is covered by `reopen_indexes_chunks_and_drops_unfinished_writes`).
#[cfg(feature = "failpoints")]
pub(super) mod failpoints {
    use super::*;

    static SERIAL: Mutex<()> = Mutex::new(());

    pub(in crate::chunk_store) fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts a chunk with `failpoint` set to `actions` (where `{id}` stands for the chunk's
    /// id), expects the put to fail with `errno`, and checks that it left nothing behind;
    /// then checks that the same put succeeds once the failpoint is gone. Does so writing a
    /// fresh temp file and writing a reused free one.
    fn assert_write_fails_cleanly(failpoint: &str, actions: &str, fsync: bool, errno: i32) {
        for reused in [false, true] {
            assert_write_fails_cleanly_in(failpoint, actions, fsync, errno, reused);
        }
    }

    fn assert_write_fails_cleanly_in(
        failpoint: &str,
        actions: &str,
        fsync: bool,
        errno: i32,
        reused: bool,
    ) {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20, fsync, IoMode::Direct).unwrap();
        let first = vec![1u8; 1000];
        store.put(ChunkId::of(&first), &first).unwrap();
        if reused {
            let freed = vec![2u8; 1000];
            store.put(ChunkId::of(&freed), &freed).unwrap();
            store.delete(ChunkId::of(&freed)).unwrap();
            store.finish_deletes();
            assert_eq!(store.free.counts(), (1, 0));
        }
        store.take_changes();
        let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let id = ChunkId::of(&data);
        let before = store.usage();

        let guard =
            fail::FailGuard::new(failpoint, &actions.replace("{id}", &id.to_hex())).unwrap();
        let err = store.put(id, &data).unwrap_err();
        match &err {
            NodeError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(errno)),
            other => panic!("{failpoint}: expected an I/O error, got {other:?}"),
        }
        assert!(err.to_string().contains(failpoint), "{err}");
        let after = store.usage();
        assert_eq!((after.used, after.chunks), (before.used, before.chunks));
        assert!(!chunk_file(dir.path(), &id).exists());
        assert_eq!(
            files_in(&dir.path().join("tmp")),
            0,
            "{failpoint} left a temp file"
        );
        assert_eq!(
            files_in(&dir.path().join("free")),
            0,
            "{failpoint} left a reused file"
        );
        assert!(!store.list().unwrap().contains(&id));
        assert_eq!(store.take_changes(), ChunkChanges::default());

        drop(guard);
        store.put(id, &data).unwrap();
        assert_eq!(store.get(id).unwrap(), data);
        assert_eq!(store.usage().chunks, before.chunks + 1);
    }

    #[test]
    fn write_failpoint_fails_with_enospc() {
        assert_write_fails_cleanly("chunk_store::write", "return({id})", false, ENOSPC);
    }

    /// A plain `return` (what a process-level test sets) would fail the writes of the other
    /// tests running alongside, so the tests above name their chunk; this checks the rule.
    #[test]
    fn failpoint_return_argument_selects_chunks() {
        let id = ChunkId::of(b"x");
        assert!(failpoint_applies(&id, None));
        assert!(failpoint_applies(&id, Some(&id.to_hex()[..3])));
        assert!(!failpoint_applies(&ChunkId::of(b"y"), Some(&id.to_hex())));
    }

    #[test]
    fn short_write_failpoint_fails_with_enospc_and_removes_the_temp_file() {
        assert_write_fails_cleanly("chunk_store::short_write", "return({id})", true, ENOSPC);
    }

    #[test]
    fn fsync_failpoint_fails_the_write_with_eio() {
        assert_write_fails_cleanly("chunk_store::fsync", "return({id})", true, EIO);
    }

    #[test]
    fn fsync_failpoint_is_not_reached_without_fsync() {
        let _serial = serial();
        let (dir, data) = (tempfile::tempdir().unwrap(), vec![4u8; 4096]);
        let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
        let id = ChunkId::of(&data);
        let _fp = fail::FailGuard::new("chunk_store::fsync", &format!("return({id})")).unwrap();
        store.put(id, &data).unwrap();
    }

    #[test]
    fn before_rename_failpoint_return_fails_the_rename() {
        assert_write_fails_cleanly("chunk_store::before_rename", "return({id})", true, EIO);
    }

    #[test]
    fn write_failpoint_sleep_slows_the_write() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20, false, IoMode::Direct).unwrap();
        let data = vec![6u8; 4096];
        let started = std::time::Instant::now();
        {
            let _fp = fail::FailGuard::new("chunk_store::write", "sleep(300)").unwrap();
            store.put(ChunkId::of(&data), &data).unwrap();
        }
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        assert_eq!(store.usage().chunks, 1);
    }
}
