//! The namespace's rules, on a real sled store in a temporary directory.

use super::*;
use crate::records::{ChunkEntry, ObjectAttrs, DEFAULT_DIR_MODE};

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
    DirAttrs {
        mode: 0o700,
        mtime_ms: 7,
    }
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

    assert_eq!(ns.remove(&p("/g")).unwrap(), vec![a]);
    assert_eq!(ns.wanted_copies(&a).unwrap(), 0);
    assert_eq!(ns.remove(&p("/f")).unwrap(), vec![b]);
    assert!(matches!(ns.remove(&p("/f")), Err(MetaError::NotFound(_))));
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
    ns.remove(&p("/five")).unwrap();
    assert_eq!(ns.wanted_copies(&x).unwrap(), 2, "the 5-copy file is gone");
    let table: Vec<_> = ns.chunk_table().map(Result::unwrap).collect();
    assert_eq!(table, vec![(x, ChunkRefs::new(2, 1))]);
    ns.remove(&p("/two")).unwrap();
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
    ns.remove(&p("/photos/2026/cat.jpg")).unwrap();
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

    ns.set_attr(&p("/u/a"), Some(0o600), Some(42)).unwrap();
    let a = ns.get(&p("/u/a")).unwrap().unwrap();
    assert_eq!((a.mode(), a.mtime_ms, a.version), (0o600, 42, 1));
    ns.set_attr(&p("/u/e"), None, Some(9)).unwrap();
    assert_eq!(
        ns.lookup(&p("/u/e")).unwrap(),
        Lookup::Dir(Some(DirAttrs {
            mode: 0o700,
            mtime_ms: 9
        }))
    );
    assert!(matches!(
        ns.set_attr(&p("/none"), Some(1), None),
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
    let object = ObjectAttrs {
        content_type: "text/plain".into(),
        etag: "e-2".into(),
        user_metadata: [("k".to_string(), "v".to_string())].into(),
    };
    let concat = Concat {
        sources: vec![p("/up/1"), p("/up/2")],
        dst: p("/b/obj"),
        overwrite: false,
        remove_sources: true,
        object: object.clone(),
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
    assert_eq!(ObjectAttrs::of(&record), object);
    // Sources that are gone, or a destination that exists without overwrite, change nothing.
    assert!(matches!(ns.concat(&concat), Err(MetaError::NotFound(_))));
    ns.commit(&p("/c"), record_of(b"cc"), false).unwrap();
    let copy = Concat {
        sources: vec![p("/c")],
        dst: p("/b/obj"),
        overwrite: false,
        remove_sources: false,
        object: ObjectAttrs::default(),
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
