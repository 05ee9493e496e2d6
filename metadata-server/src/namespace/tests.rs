//! The namespace's rules, on a real sled store in a temporary directory.

use super::*;
use bigfs_proto::pb::ObjectMeta;

use crate::records::{ChunkEntry, DEFAULT_DIR_MODE};

fn ns() -> (tempfile::TempDir, Namespace) {
    let dir = tempfile::tempdir().unwrap();
    let ns = Namespace::open(dir.path()).unwrap();
    (dir, ns)
}

fn record(chunks: &[&[u8]]) -> FileRecord {
    FileRecord {
        size: chunks.iter().map(|c| c.len() as u64).sum(),
        chunk_size: 1 << 20,
        replication: 3,
        chunks: chunks
            .iter()
            .map(|c| ChunkEntry::new(ChunkId::of(c), c.len() as u64))
            .collect(),
        mtime_ms: 1,
        ..FileRecord::default()
    }
}

fn p(s: &str) -> FsPath {
    FsPath::parse(s).unwrap()
}

fn dir_attrs() -> DirAttrs {
    DirAttrs::new(0o700, 7)
}

/// The names in a listing, directories with a trailing '/'.
fn names(ns: &Namespace, dir: &str) -> Vec<String> {
    ns.list(&p(dir))
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|e| match e {
            Entry::Dir(p, _) => format!("{p}/"),
            Entry::File(p, _) => p.to_string(),
        })
        .collect()
}

fn refs_of(ns: &Namespace, chunk: &[u8]) -> u64 {
    ns.chunk_table()
        .map(Result::unwrap)
        .find(|(id, _)| *id == ChunkId::of(chunk))
        .map_or(0, |(_, refs)| refs.refs())
}

#[test]
fn commit_overwrite_and_remove_move_reference_counts() {
    let (_dir, ns) = ns();
    let a = ChunkId::of(b"a");
    let b = ChunkId::of(b"b");
    let done = ns.commit(&p("/f"), record(&[b"a", b"a"]), false).unwrap();
    assert_eq!(done.version, 1);
    assert!(done.freed.is_empty());
    assert_eq!(ns.wanted_copies(&a).unwrap(), 3);

    // Another file shares chunk a.
    ns.commit(&p("/g"), record(&[b"a"]), false).unwrap();

    let err = ns.commit(&p("/f"), record(&[b"b"]), false).unwrap_err();
    assert!(matches!(err, MetaError::AlreadyExists(_)));
    assert_eq!(ns.get(&p("/f")).unwrap().unwrap().version, 1);

    let done = ns.commit(&p("/f"), record(&[b"b"]), true).unwrap();
    assert_eq!(done.version, 2);
    assert!(done.freed.is_empty(), "a is still used by /g");
    assert_eq!(ns.wanted_copies(&b).unwrap(), 3);

    assert_eq!(ns.remove(&p("/g"), None).unwrap(), vec![a]);
    assert_eq!(ns.wanted_copies(&a).unwrap(), 0);
    assert_eq!(ns.remove(&p("/f"), None).unwrap(), vec![b]);
    assert!(matches!(
        ns.remove(&p("/f"), None),
        Err(MetaError::NotFound(_))
    ));
}

#[test]
fn overwrite_with_same_content_frees_nothing() {
    let (_dir, ns) = ns();
    ns.commit(&p("/f"), record(&[b"x"]), false).unwrap();
    let done = ns.commit(&p("/f"), record(&[b"x"]), true).unwrap();
    assert!(done.freed.is_empty());
    assert_eq!(ns.wanted_copies(&ChunkId::of(b"x")).unwrap(), 3);
}

#[test]
fn wanted_copies_follow_the_files_that_reference_a_chunk_now() {
    let (_dir, ns) = ns();
    let x = ChunkId::of(b"x");
    let with = |r: u32| FileRecord {
        replication: r,
        ..record(&[b"x"])
    };
    ns.commit(&p("/two"), with(2), false).unwrap();
    assert_eq!(ns.wanted_copies(&x).unwrap(), 2);
    ns.commit(&p("/five"), with(5), false).unwrap();
    assert_eq!(ns.wanted_copies(&x).unwrap(), 5);
    ns.remove(&p("/five"), None).unwrap();
    assert_eq!(ns.wanted_copies(&x).unwrap(), 2, "the 5-copy file is gone");
    let table: Vec<_> = ns.chunk_table().map(Result::unwrap).collect();
    assert_eq!(table, vec![(x, ChunkRefs::new(2, 1))]);
    ns.remove(&p("/two"), None).unwrap();
    assert_eq!(ns.wanted_copies(&x).unwrap(), 0);
    assert_eq!(ns.chunk_table().count(), 0);
}

#[test]
fn list_shows_directories_first_and_skips_subtrees() {
    let (_dir, ns) = ns();
    for path in [
        "/a/x",
        "/a/b/y",
        "/a/b/deep/z",
        "/a/c/z",
        "/a/w",
        "/a0",
        "/b",
    ] {
        ns.commit(&p(path), record(&[b"data"]), false).unwrap();
    }
    assert_eq!(names(&ns, "/a"), ["/a/b/", "/a/c/", "/a/w", "/a/x"]);
    assert_eq!(names(&ns, "/"), ["/a/", "/a0", "/b"]);
    assert_eq!(names(&ns, "/a/b"), ["/a/b/deep/", "/a/b/y"]);
    // An explicit directory, a sibling sorting inside its key range, and an implied one.
    ns.mkdir(&p("/a/b-x"), false, dir_attrs()).unwrap();
    ns.commit(&p("/a/b.txt"), record(&[b"t"]), false).unwrap();
    assert_eq!(
        names(&ns, "/a"),
        ["/a/b/", "/a/b-x/", "/a/c/", "/a/b.txt", "/a/w", "/a/x"]
    );
    assert!(ns.list(&p("/missing")).unwrap().is_none());
    assert!(ns.list(&p("/a/x")).unwrap().is_none());
    assert!(ns.is_dir(&p("/a/b")).unwrap());
    assert!(!ns.is_dir(&p("/a/x")).unwrap());
    assert_eq!(
        ns.entries_under(&p("/a/b")).unwrap(),
        [p("/a/b/deep"), p("/a/b/deep/z"), p("/a/b/y")]
    );
}

#[test]
fn a_batch_commits_each_file_on_its_own() {
    let (_dir, ns) = ns();
    ns.commit(&p("/old"), record(&[b"o"]), false).unwrap();
    let write = |path: &str, overwrite: bool| FileWrite {
        path: p(path),
        record: record(&[path.as_bytes()]),
        overwrite,
        if_version: None,
    };
    let outcomes = ns
        .commit_many(&[
            write("/new", false),
            write("/old", false),
            write("/d/x", false),
            write("/d", false),
            write("/new/below", false),
            write("/old", true),
        ])
        .unwrap();
    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(c) => format!("v{}", c.version),
            Err(MetaError::AlreadyExists(_)) => "exists".into(),
            Err(MetaError::IsDirectory(_)) => "dir".into(),
            Err(MetaError::NotADirectory(f)) => format!("under {f}"),
            Err(e) => format!("{e}"),
        })
        .collect();
    assert_eq!(summary, ["v1", "exists", "v1", "dir", "under /new", "v2"]);
    // A sibling that sorts between a path and its children does not hide them.
    let siblings = ns
        .commit_many(&[
            write("/s/b-x", false),
            write("/s/b/c", false),
            write("/s/b", false),
        ])
        .unwrap();
    assert!(
        matches!(siblings[2], Err(MetaError::IsDirectory(_))),
        "{siblings:?}"
    );
    assert_eq!(outcomes[5].as_ref().unwrap().freed, vec![ChunkId::of(b"o")]);
    assert!(ns.get(&p("/d")).unwrap().is_none());
    assert!(ns.get(&p("/new/below")).unwrap().is_none());
}

#[test]
fn a_directory_cannot_be_overwritten_by_a_file() {
    let (_dir, ns) = ns();
    ns.commit(&p("/d/f"), record(&[b"1"]), false).unwrap();
    assert!(matches!(
        ns.commit(&p("/d"), record(&[b"2"]), true),
        Err(MetaError::IsDirectory(_))
    ));
    assert!(matches!(
        ns.commit(&p("/d/f/g"), record(&[b"3"]), false),
        Err(MetaError::NotADirectory(f)) if f == "/d/f"
    ));
    assert!(matches!(
        ns.check_create(&p("/d/f/g"), true),
        Err(MetaError::NotADirectory(f)) if f == "/d/f"
    ));
    assert!(matches!(
        ns.check_create(&p("/d/f"), false),
        Err(MetaError::AlreadyExists(_))
    ));
    ns.check_create(&p("/d/f"), true).unwrap();
    ns.check_create(&p("/d/new/deeper"), false).unwrap();
}

#[test]
fn a_commit_makes_its_parents_explicit_so_they_outlive_their_files() {
    let (_dir, ns) = ns();
    ns.commit(&p("/photos/2026/cat.jpg"), record(&[b"c"]), false)
        .unwrap();
    ns.remove(&p("/photos/2026/cat.jpg"), None).unwrap();
    assert_eq!(names(&ns, "/photos"), ["/photos/2026/"]);
    assert_eq!(names(&ns, "/photos/2026"), Vec::<String>::new());
    assert!(matches!(
        ns.lookup(&p("/photos/2026")).unwrap(),
        Lookup::Dir(Some(DirAttrs {
            mode: DEFAULT_DIR_MODE,
            ..
        }))
    ));
}

#[test]
fn mkdir_and_rmdir() {
    let (_dir, ns) = ns();
    assert!(matches!(
        ns.mkdir(&p("/a/b"), false, dir_attrs()),
        Err(MetaError::NoParent { parent, .. }) if parent == "/a"
    ));
    assert_eq!(ns.mkdir(&p("/a/b/c"), true, dir_attrs()).unwrap(), 3);
    assert_eq!(ns.mkdir(&p("/a/b/c"), true, dir_attrs()).unwrap(), 0);
    assert!(matches!(
        ns.mkdir(&p("/a/b/c"), false, dir_attrs()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert_eq!(
        ns.lookup(&p("/a/b/c")).unwrap(),
        Lookup::Dir(Some(dir_attrs()))
    );
    ns.commit(&p("/a/f"), record(&[b"f"]), false).unwrap();
    assert!(matches!(
        ns.mkdir(&p("/a/f/g"), true, dir_attrs()),
        Err(MetaError::NotADirectory(f)) if f == "/a/f"
    ));
    assert!(matches!(
        ns.mkdir(&p("/a/f"), true, dir_attrs()),
        Err(MetaError::AlreadyExists(_))
    ));
    assert_eq!(names(&ns, "/a"), ["/a/b/", "/a/f"]);

    assert!(matches!(ns.rmdir(&p("/a/b")), Err(MetaError::NotEmpty(_))));
    assert!(matches!(
        ns.rmdir(&p("/a/f")),
        Err(MetaError::NotADirectory(_))
    ));
    assert!(matches!(ns.rmdir(&p("/nope")), Err(MetaError::NotFound(_))));
    ns.rmdir(&p("/a/b/c")).unwrap();
    ns.rmdir(&p("/a/b")).unwrap();
    assert_eq!(names(&ns, "/a"), ["/a/f"]);
    // A file can't be committed where a directory is, even an empty one.
    ns.mkdir(&p("/a/empty"), false, dir_attrs()).unwrap();
    assert!(matches!(
        ns.commit(&p("/a/empty"), record(&[b"e"]), true),
        Err(MetaError::IsDirectory(_))
    ));
}

#[test]
fn rename_moves_files_and_whole_directories() {
    let (_dir, ns) = ns();
    for path in ["/src/a", "/src/sub/b", "/src-x", "/other"] {
        ns.commit(&p(path), record(&[path.as_bytes()]), false)
            .unwrap();
    }
    ns.mkdir(&p("/src/empty"), false, dir_attrs()).unwrap();

    let moved = ns.rename(&p("/src"), &p("/dst"), false).unwrap();
    assert_eq!((moved.path.as_str(), moved.files), ("/dst", 2));
    assert!(ns.list(&p("/src")).unwrap().is_none());
    assert_eq!(names(&ns, "/dst"), ["/dst/empty/", "/dst/sub/", "/dst/a"]);
    assert_eq!(
        ns.get(&p("/dst/sub/b")).unwrap().unwrap().chunks,
        record(&[b"/src/sub/b"]).chunks
    );
    assert!(
        ns.get(&p("/src-x")).unwrap().is_some(),
        "a sibling with the same prefix stays"
    );

    // Into an existing directory, under the source's name.
    ns.mkdir(&p("/into"), false, dir_attrs()).unwrap();
    let moved = ns.rename(&p("/other"), &p("/into"), false).unwrap();
    assert_eq!(moved.path, p("/into/other"));

    // Refusals.
    let refused =
        |src: &str, dst: &str, overwrite: bool| ns.rename(&p(src), &p(dst), overwrite).unwrap_err();
    assert!(
        matches!(refused("/dst", "/dst/sub", false), MetaError::InvalidArgument(m) if m.contains("into itself"))
    );
    assert!(matches!(
        refused("/dst/a", "/src-x", false),
        MetaError::AlreadyExists(_)
    ));
    assert!(matches!(
        refused("/dst", "/src-x", true),
        MetaError::NotADirectory(_)
    ));
    assert!(matches!(
        refused("/missing", "/x", false),
        MetaError::NotFound(_)
    ));
    assert!(matches!(
        refused("/dst/a", "/src-x/below", false),
        MetaError::NotADirectory(_)
    ));
    assert!(matches!(
        refused("/", "/x", false),
        MetaError::InvalidArgument(_)
    ));

    // With overwrite a file replaces a file, and the replaced file's chunks are freed.
    let replaced = ns.get(&p("/src-x")).unwrap().unwrap().version;
    let moved = ns.rename(&p("/dst/a"), &p("/src-x"), true).unwrap();
    assert_eq!(moved.freed, vec![ChunkId::of(b"/src-x")]);
    assert_eq!(ns.get(&p("/src-x")).unwrap().unwrap().version, replaced + 1);
    assert_eq!(
        refs_of(&ns, b"/src/a"),
        1,
        "a move keeps the reference count"
    );
}

#[test]
fn copy_shares_chunks_and_keeps_the_copy_when_the_source_goes() {
    let (_dir, ns) = ns();
    ns.commit(&p("/d/f"), record(&[b"one", b"two"]), false)
        .unwrap();
    ns.commit(&p("/d/sub/g"), record(&[b"one"]), false).unwrap();
    ns.mkdir(&p("/d/empty"), false, dir_attrs()).unwrap();

    assert!(matches!(
        ns.copy(&p("/d"), &p("/e"), false, false),
        Err(MetaError::IsDirectory(_))
    ));
    let copied = ns.copy(&p("/d"), &p("/e"), true, false).unwrap();
    assert_eq!((copied.files, copied.bytes), (2, 9));
    assert_eq!(names(&ns, "/e"), ["/e/empty/", "/e/sub/", "/e/f"]);
    assert_eq!(refs_of(&ns, b"one"), 4);

    let copied = ns.copy(&p("/d/f"), &p("/single"), false, false).unwrap();
    assert_eq!(copied.path, p("/single"));
    assert_eq!(ns.get(&p("/single")).unwrap().unwrap().version, 1);

    let (removed, freed) = ns
        .remove_many(&ns.entries_under(&p("/d")).unwrap())
        .unwrap();
    assert_eq!(
        (removed, freed.len()),
        (2, 0),
        "the copies still reference every chunk"
    );
    assert_eq!(refs_of(&ns, b"one"), 3);

    // Overwriting a file with a copy that shares its chunks never frees them.
    let copied = ns.copy(&p("/e/f"), &p("/single"), false, true).unwrap();
    assert!(copied.freed.is_empty());
    assert_eq!(ns.get(&p("/single")).unwrap().unwrap().version, 2);
    assert_eq!(refs_of(&ns, b"two"), 2);
}

#[test]
fn set_attr_and_usage() {
    let (_dir, ns) = ns();
    ns.commit(&p("/u/a"), record(&[b"12345"]), false).unwrap();
    ns.commit(&p("/u/x/y/b"), record(&[b"123"]), false).unwrap();
    ns.mkdir(&p("/u/e"), false, dir_attrs()).unwrap();

    let attrs = |mode, mtime_ms| AttrChange {
        mode,
        mtime_ms,
        ..AttrChange::default()
    };
    ns.set_attr(&p("/u/a"), attrs(Some(0o600), Some(42)))
        .unwrap();
    let a = ns.get(&p("/u/a")).unwrap().unwrap();
    assert_eq!((a.mode(), a.mtime_ms, a.version), (0o600, 42, 1));
    ns.set_attr(&p("/u/e"), attrs(None, Some(9))).unwrap();
    assert_eq!(
        ns.lookup(&p("/u/e")).unwrap(),
        Lookup::Dir(Some(DirAttrs::new(0o700, 9)))
    );
    assert!(matches!(
        ns.set_attr(&p("/none"), attrs(Some(1), None)),
        Err(MetaError::NotFound(_))
    ));

    let usage = ns.usage(&p("/u")).unwrap();
    assert_eq!(
        usage,
        Usage {
            files: 2,
            dirs: 3,
            bytes: 8,
            raw_bytes: 24
        }
    );
    assert_eq!(ns.usage(&p("/u/a")).unwrap().files, 1);
    assert_eq!(ns.usage(&p("/")).unwrap().dirs, 4);
}

#[test]
fn records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ns = Namespace::open(dir.path()).unwrap();
        ns.commit(&p("/keep"), record(&[b"k"]), false).unwrap();
        ns.mkdir(&p("/empty"), false, dir_attrs()).unwrap();
        ns.remember_node("n1", "http://127.0.0.1:1").unwrap();
        ns.remember_node("n2", "http://127.0.0.1:2").unwrap();
        ns.forget_node("n2").unwrap();
        ns.set_drain("n1", true).unwrap();
        ns.mark_drained("n1").unwrap();
        ns.set_drain("n1", true).unwrap();
        ns.set_drain("n3", true).unwrap();
        block_on_flush(&ns);
    }
    let ns = Namespace::open(dir.path()).unwrap();
    assert_eq!(ns.get(&p("/keep")).unwrap().unwrap().version, 1);
    assert_eq!(names(&ns, "/"), ["/empty/", "/keep"]);
    assert_eq!(ns.file_count().unwrap(), 1);
    assert_eq!(
        ns.known_nodes().unwrap(),
        vec![("n1".to_string(), "http://127.0.0.1:1".to_string())]
    );
    // Asking again to drain a drained node leaves its drain finished.
    assert_eq!(
        ns.drains().unwrap(),
        vec![("n1".to_string(), true), ("n3".to_string(), false)]
    );
}

fn block_on_flush(ns: &Namespace) {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(ns.flush())
        .unwrap();
}

#[test]
fn concat_joins_chunk_lists_and_removes_the_parts_in_one_step() {
    let (_dir, ns) = ns();
    let big: &[u8] = &[7u8; 64];
    ns.commit(&p("/up/1"), record(&[b"aaaa", b"bb"]), false)
        .unwrap();
    ns.commit(&p("/up/2"), record(&[big, b"bb"]), false)
        .unwrap();
    let object = ObjectMeta {
        content_type: "text/plain".into(),
        etag: "e-2".into(),
        user_metadata: [("k".to_string(), "v".to_string())].into(),
        ..ObjectMeta::default()
    };
    let concat = Concat {
        sources: vec![p("/up/1"), p("/up/2")],
        dst: p("/b/obj"),
        overwrite: false,
        remove_sources: true,
        object: object.clone(),
        if_version: None,
    };
    let (size, committed) = ns.concat(&concat).unwrap();
    assert_eq!((size, committed.version), (4 + 2 + 64 + 2, 1));
    // "bb" was referenced twice by the parts and is twice by the object: it never hit zero.
    assert!(committed.freed.is_empty());
    assert_eq!(refs_of(&ns, b"bb"), 2);
    assert_eq!(ns.get(&p("/up/1")).unwrap(), None);
    let record = ns.get(&p("/b/obj")).unwrap().unwrap();
    let sizes: Vec<u64> = record.chunks.iter().map(|c| c.size).collect();
    assert_eq!(sizes, [4, 2, 64, 2]);
    assert_eq!(record.object, Some(Box::new(object)));
    // Sources that are gone, or a destination that exists without overwrite, change nothing.
    assert!(matches!(ns.concat(&concat), Err(MetaError::NotFound(_))));
    ns.commit(&p("/c"), record_of(b"cc"), false).unwrap();
    let copy = Concat {
        sources: vec![p("/c")],
        dst: p("/b/obj"),
        overwrite: false,
        remove_sources: false,
        object: ObjectMeta::default(),
        if_version: None,
    };
    assert!(matches!(ns.concat(&copy), Err(MetaError::AlreadyExists(_))));
    let (_, replaced) = ns
        .concat(&Concat {
            overwrite: true,
            ..copy
        })
        .unwrap();
    assert_eq!(replaced.version, 2);
    assert_eq!(refs_of(&ns, b"cc"), 2);
    assert_eq!(refs_of(&ns, big), 0);
}

fn record_of(chunk: &[u8]) -> FileRecord {
    record(&[chunk])
}

/// Many changes each awaiting its own flush at once, as `bigfs bench small` makes them. With
/// sled's `flush_async` the waiting flushes filled sled's I/O pool and nothing wrote the log
/// they waited for, so this hung. With group commit they share sled flushes, and each change
/// is durable when its flush returns: a copy of the database taken then, while sled still
/// runs (so only what was flushed is in its files), holds every acknowledged change.
#[test]
fn many_concurrent_flushes_finish_share_and_are_durable() {
    let (dir, ns) = ns();
    let ns = std::sync::Arc::new(ns);
    let acknowledged = std::sync::Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let finished = runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|task| {
                let (ns, acknowledged) = (ns.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    for i in 0..40 {
                        let path = p(&format!("/t{task}-{i}"));
                        let (writer, written) = (ns.clone(), path.clone());
                        tokio::task::spawn_blocking(move || {
                            writer.mkdir(&written, false, dir_attrs()).unwrap()
                        })
                        .await
                        .unwrap();
                        ns.flush().await.unwrap();
                        bigfs_proto::lock::lock(&acknowledged).push(path);
                    }
                })
            })
            .collect();
        let all = async {
            for task in tasks {
                task.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all).await
    });
    // A hung flush holds its thread for good: leave it rather than wait for it.
    runtime.shutdown_background();
    finished.expect("flushes hung");
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let acknowledged = std::mem::take(&mut *bigfs_proto::lock::lock(&acknowledged));
    assert_eq!(acknowledged.len(), 64 * 40);
    let (flushes, requests) = ns.flush_counters();
    assert_eq!(requests.get(), 64 * 40);
    assert!(
        flushes.get() * 2 < requests.get(),
        "{} sled flushes for {} changes",
        flushes.get(),
        requests.get()
    );
    let reopened = Namespace::open(copy.path()).unwrap();
    for path in &acknowledged {
        assert!(
            reopened.is_dir(path).unwrap(),
            "{path} acknowledged but lost"
        );
    }
}

/// Copies a directory tree as its files are now.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn version_of(ns: &Namespace, path: &str) -> u64 {
    ns.get(&p(path)).unwrap().unwrap().version
}

/// The message of a refused versioned change names the path and both versions.
fn assert_version_mismatch(result: Result<impl std::fmt::Debug, MetaError>, path: &str) {
    match result {
        Err(e @ MetaError::VersionMismatch { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(path) && message.contains("version 2, not 1"),
                "{message}"
            );
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}

#[test]
fn a_commit_over_a_version_succeeds_only_over_that_version() {
    let (_dir, ns) = ns();
    let write = |version| FileWrite {
        path: p("/v"),
        record: record(&[b"v"]),
        overwrite: false,
        if_version: Some(version),
    };
    let refused = ns.commit_many(&[write(1)]).unwrap().pop().unwrap();
    assert!(
        matches!(refused, Err(MetaError::NotFound(_))),
        "{refused:?}"
    );
    ns.commit(&p("/v"), record(&[b"1"]), false).unwrap();
    // `if_version` implies overwrite.
    let done = ns.commit_many(&[write(1)]).unwrap().pop().unwrap().unwrap();
    assert_eq!(done.version, 2);
    // The writer that read version 1 too loses, and the winner's file stays.
    let lost = ns.commit_many(&[write(1)]).unwrap().pop().unwrap();
    assert_version_mismatch(lost, "/v");
    assert_eq!(version_of(&ns, "/v"), 2);
    assert_eq!(refs_of(&ns, b"v"), 1);
}

#[test]
fn a_removal_at_a_version_leaves_another_version() {
    let (_dir, ns) = ns();
    ns.commit(&p("/v"), record(&[b"1"]), false).unwrap();
    ns.commit(&p("/v"), record(&[b"2"]), true).unwrap();
    assert_version_mismatch(ns.remove(&p("/v"), Some(1)), "/v");
    assert_eq!(version_of(&ns, "/v"), 2);
    assert_eq!(
        ns.remove(&p("/v"), Some(2)).unwrap(),
        vec![ChunkId::of(b"2")]
    );
    assert!(ns.get(&p("/v")).unwrap().is_none());
}

#[test]
fn object_metadata_changes_keep_version_and_mtime_and_check_the_version() {
    let (_dir, ns) = ns();
    ns.commit(&p("/o"), record(&[b"1"]), false).unwrap();
    ns.commit(&p("/o"), record(&[b"2"]), true).unwrap();
    let tagged = ObjectMeta {
        etag: "e".into(),
        tags: [("k".to_string(), "v".to_string())].into(),
        ..ObjectMeta::default()
    };
    let change = |if_version| AttrChange {
        object: Some(tagged.clone()),
        if_version,
        ..AttrChange::default()
    };
    assert_version_mismatch(ns.set_attr(&p("/o"), change(Some(1))), "/o");
    assert_eq!(ns.get(&p("/o")).unwrap().unwrap().object, None);
    ns.set_attr(&p("/o"), change(Some(2))).unwrap();
    let record = ns.get(&p("/o")).unwrap().unwrap();
    assert_eq!(
        (record.version, record.mtime_ms, record.object),
        (2, 1, Some(Box::new(tagged.clone())))
    );
    ns.mkdir(&p("/d"), false, dir_attrs()).unwrap();
    assert!(matches!(
        ns.set_attr(&p("/d"), change(None)),
        Err(MetaError::IsDirectory(_))
    ));
}

#[test]
fn a_concatenation_over_a_version_checks_it_with_the_write() {
    let (_dir, ns) = ns();
    ns.commit(&p("/part"), record(&[b"p"]), false).unwrap();
    ns.commit(&p("/obj"), record(&[b"1"]), false).unwrap();
    ns.commit(&p("/obj"), record(&[b"2"]), true).unwrap();
    let concat = |if_version| Concat {
        sources: vec![p("/part")],
        dst: p("/obj"),
        overwrite: false,
        remove_sources: true,
        object: ObjectMeta::default(),
        if_version: Some(if_version),
    };
    assert_version_mismatch(ns.concat(&concat(1)), "/obj");
    assert!(ns.get(&p("/part")).unwrap().is_some(), "the part stays");
    let (_, done) = ns.concat(&concat(2)).unwrap();
    assert_eq!(done.version, 3);
    assert!(ns.get(&p("/part")).unwrap().is_none());
}

fn xattrs_of(pairs: &[(&str, &[u8])]) -> crate::records::Xattrs {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_vec()))
        .collect()
}

#[test]
fn xattrs_live_and_die_with_their_record() {
    let (_dir, ns) = ns();
    ns.commit(&p("/b/f"), record(&[b"f"]), false).unwrap();
    ns.set_xattrs(&p("/b/f"), xattrs_of(&[("a", b"1"), ("b", b"2")]), &[])
        .unwrap();
    ns.set_xattrs(&p("/b/f"), xattrs_of(&[("c", b"3")]), &["a".to_string()])
        .unwrap();
    let expected = xattrs_of(&[("b", b"2"), ("c", b"3")]);
    assert_eq!(ns.xattrs(&p("/b/f")).unwrap(), expected);
    // Rename moves them, copy copies them, with a directory's records as with a file's.
    ns.rename(&p("/b/f"), &p("/b/g"), false).unwrap();
    assert_eq!(ns.xattrs(&p("/b/g")).unwrap(), expected);
    ns.set_xattrs(&p("/b"), xattrs_of(&[("dir", b"d")]), &[])
        .unwrap();
    ns.copy(&p("/b"), &p("/c"), true, false).unwrap();
    assert_eq!(ns.xattrs(&p("/c/g")).unwrap(), expected);
    assert_eq!(ns.xattrs(&p("/c")).unwrap(), xattrs_of(&[("dir", b"d")]));
    // A commit over the file is a new object: the old one's attributes go with it.
    ns.commit(&p("/c/g"), record(&[b"new"]), true).unwrap();
    assert!(ns.xattrs(&p("/c/g")).unwrap().is_empty());
    // An object metadata change keeps them.
    let change = AttrChange {
        object: Some(ObjectMeta::default()),
        ..AttrChange::default()
    };
    ns.set_attr(&p("/b/g"), change).unwrap();
    assert_eq!(ns.xattrs(&p("/b/g")).unwrap(), expected);
    // Removal drops them: a new file or directory there starts with none.
    ns.remove(&p("/b/g"), None).unwrap();
    ns.commit(&p("/b/g"), record(&[b"f"]), false).unwrap();
    assert!(ns.xattrs(&p("/b/g")).unwrap().is_empty());
    ns.remove(&p("/b/g"), None).unwrap();
    ns.rmdir(&p("/b")).unwrap();
    assert!(matches!(ns.xattrs(&p("/b")), Err(MetaError::NotFound(_))));
    ns.mkdir(&p("/b"), false, dir_attrs()).unwrap();
    assert!(ns.xattrs(&p("/b")).unwrap().is_empty());
}

#[test]
fn xattrs_of_implied_directories_and_the_root() {
    let (_dir, ns) = ns();
    // A file written before parents were explicit: its directory is only implied.
    ns.files
        .insert("/old/f", Stored::File(record(&[b"f"])).encode())
        .unwrap();
    assert_eq!(ns.lookup(&p("/old")).unwrap(), Lookup::Dir(None));
    assert!(ns.xattrs(&p("/old")).unwrap().is_empty());
    assert!(ns.xattrs(&FsPath::root()).unwrap().is_empty());
    ns.set_xattrs(&p("/old"), xattrs_of(&[("k", b"v")]), &[])
        .unwrap();
    assert!(matches!(
        ns.lookup(&p("/old")).unwrap(),
        Lookup::Dir(Some(_))
    ));
    assert_eq!(ns.xattrs(&p("/old")).unwrap(), xattrs_of(&[("k", b"v")]));
    assert!(matches!(
        ns.set_xattrs(&FsPath::root(), xattrs_of(&[("k", b"v")]), &[]),
        Err(MetaError::InvalidArgument(_))
    ));
    assert!(matches!(
        ns.set_xattrs(&p("/none"), xattrs_of(&[("k", b"v")]), &[]),
        Err(MetaError::NotFound(_))
    ));
}

#[test]
fn xattrs_are_bounded_and_a_refused_change_changes_nothing() {
    let (_dir, ns) = ns();
    ns.commit(&p("/f"), record(&[b"f"]), false).unwrap();
    let refused = |set: crate::records::Xattrs, name: &str| {
        let err = ns.set_xattrs(&p("/f"), set, &[]).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, MetaError::InvalidArgument(_)), "{message}");
        assert!(
            message.contains("/f") && message.contains(name),
            "{message}"
        );
    };
    let long = "n".repeat(MAX_XATTR_NAME + 1);
    refused(xattrs_of(&[(&long, b"")]), &long);
    refused(xattrs_of(&[("", b"")]), "\"\"");
    let big = vec![0u8; MAX_XATTR_VALUE + 1];
    refused(xattrs_of(&[("big", &big)]), "big");
    let value = vec![0u8; MAX_XATTR_VALUE];
    let names: Vec<String> = (0..MAX_XATTRS_TOTAL / MAX_XATTR_VALUE)
        .map(|i| format!("v{i}"))
        .collect();
    let full: crate::records::Xattrs = names.iter().map(|n| (n.clone(), value.clone())).collect();
    refused(full.clone(), "/f");
    assert!(ns.xattrs(&p("/f")).unwrap().is_empty());
    // Fits once one goes in the same call.
    ns.set_xattrs(&p("/f"), full, &names[..1]).unwrap();
    assert_eq!(ns.xattrs(&p("/f")).unwrap().len(), names.len() - 1);
}

#[test]
fn records_from_before_object_metadata_read_it_into_the_object() {
    let old = FileRecord {
        legacy_content_type: "text/plain".into(),
        legacy_etag: "abc".into(),
        legacy_user_metadata: [("k".to_string(), "v".to_string())].into(),
        ..record(&[b"x"])
    };
    let bytes = prost::Message::encode_to_vec(&old);
    let Stored::File(read) = Stored::decode("/x", &bytes).unwrap() else {
        panic!("a file")
    };
    let object = read.object.clone().unwrap();
    assert_eq!(
        (
            object.content_type.as_str(),
            read.etag(),
            object.user_metadata["k"].as_str()
        ),
        ("text/plain", "abc", "v")
    );
    assert!(
        read.legacy_etag.is_empty(),
        "written back in the new place only"
    );
}
