//! The pure core of `bigfs sync`: the two sides' listings in, the actions that make the
//! destination equal the source out. No I/O, so every rule has a unit test below.
//!
//! The rules, rsync's with the source winning:
//! - A file is unchanged when its size and modification time (milliseconds) match, or with
//!   `checksum` when its size and content hash match. A changed or new file is sent.
//! - A new file whose size and content hash equal those of a destination file that the source
//!   lacks is moved there with `delete` (a local rename seen as one) and copied without: no
//!   byte is sent. Each such destination file is moved once at most.
//! - A source directory with nothing below it that the destination lacks is created; the
//!   others appear with the files sent into them.
//! - With `delete`, destination files the source lacks are deleted, then the directories it
//!   lacks, deepest first. Without it nothing at the destination is removed or replaced except
//!   files of which the source has another version.
//! - A path that is a file on one side and a directory on the other is cleared at the
//!   destination first with `delete`; without it, it is a conflict: reported, left alone, and
//!   nothing is done below it.
//!
//! Paths are relative to the two roots, `/`-separated, without a leading `/` ("a/b").

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

/// A file as one side lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub mtime_ms: u64,
    /// Permission bits.
    pub mode: u32,
    /// The content hash, for the files [`wanted_hashes`] names (hashing reads a local file);
    /// `None` also when it could not be had, which makes the file compare as different.
    pub hash: Option<blake3::Hash>,
}

/// One side's files and directories below its root (the root itself not included).
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub files: BTreeMap<String, FileMeta>,
    pub dirs: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Rules {
    /// Remove what the source lacks.
    pub delete: bool,
    /// Compare content hashes instead of modification times.
    pub checksum: bool,
}

/// One change to the destination. `file` is the source's file, whose mode and mtime the
/// destination's copy gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Mkdir(String),
    Move {
        from: String,
        to: String,
        file: FileMeta,
    },
    Copy {
        from: String,
        to: String,
        file: FileMeta,
    },
    Send {
        path: String,
        file: FileMeta,
    },
    Delete(String),
    Rmdir(String),
}

impl Action {
    /// Whether `self` and `next`, one after the other in a plan, may run at the same time:
    /// actions of one kind may, except directory removals, which go deepest first.
    pub fn runs_with(&self, next: &Action) -> bool {
        use Action::*;
        matches!(
            (self, next),
            (Mkdir(_), Mkdir(_))
                | (Move { .. } | Copy { .. }, Move { .. } | Copy { .. })
                | (Send { .. }, Send { .. })
                | (Delete(_), Delete(_))
        )
    }
}

/// As `--dry-run` prints it: `send /a/b`, `move /x -> /y`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Mkdir(path) => write!(f, "mkdir /{path}"),
            Action::Move { from, to, .. } => write!(f, "move /{from} -> /{to}"),
            Action::Copy { from, to, .. } => write!(f, "copy /{from} -> /{to}"),
            Action::Send { path, .. } => write!(f, "send /{path}"),
            Action::Delete(path) => write!(f, "delete /{path}"),
            Action::Rmdir(path) => write!(f, "rmdir /{path}"),
        }
    }
}

/// A path that is a file on one side and a directory on the other, without `delete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub source_is_dir: bool,
}

impl Conflict {
    pub fn reason(&self) -> &'static str {
        match self.source_is_dir {
            true => "a directory at the source, a file at the destination (--delete replaces it)",
            false => "a file at the source, a directory at the destination (--delete replaces it)",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// In the order they must run: clearing deletes, mkdirs, moves and copies, sends,
    /// deletes, directory removals (deepest first). See [`Action::runs_with`].
    pub actions: Vec<Action>,
    /// Source files the destination already has.
    pub unchanged: usize,
    pub conflicts: Vec<Conflict>,
}

/// What a set of actions amounts to, for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: usize,
    pub bytes: u64,
    pub moved: usize,
    pub copied: usize,
    /// Files and directories removed.
    pub deleted: usize,
    pub mkdirs: usize,
}

impl Tally {
    pub fn add(&mut self, action: &Action) {
        match action {
            Action::Send { file, .. } => {
                self.sent += 1;
                self.bytes += file.size;
            }
            Action::Move { .. } => self.moved += 1,
            Action::Copy { .. } => self.copied += 1,
            Action::Delete(_) | Action::Rmdir(_) => self.deleted += 1,
            Action::Mkdir(_) => self.mkdirs += 1,
        }
    }
}

/// The files whose content hash [`plan`] needs, `(source, destination)`: with `checksum`,
/// both copies of each file present on both sides with equal sizes (unequal sizes differ
/// anyway); for renames, each source file the destination lacks and each destination file
/// the source lacks, where the other group has a file of the same size (an empty file is
/// never worth a rename).
pub fn wanted_hashes(src: &Tree, dst: &Tree, rules: Rules) -> (Vec<String>, Vec<String>) {
    let mut from_src = Vec::new();
    let mut from_dst = Vec::new();
    if rules.checksum {
        for (path, file) in &src.files {
            if dst.files.get(path).is_some_and(|d| d.size == file.size) {
                from_src.push(path.clone());
                from_dst.push(path.clone());
            }
        }
    }
    let new: Vec<(&String, u64)> = (src.files.iter())
        .filter(|(path, f)| f.size > 0 && !dst.files.contains_key(*path))
        .map(|(path, f)| (path, f.size))
        .collect();
    let extra: Vec<(&String, u64)> = (dst.files.iter())
        .filter(|(path, f)| f.size > 0 && !src.files.contains_key(*path))
        .map(|(path, f)| (path, f.size))
        .collect();
    let new_sizes: HashSet<u64> = new.iter().map(|(_, size)| *size).collect();
    let extra_sizes: HashSet<u64> = extra.iter().map(|(_, size)| *size).collect();
    from_src.extend(
        (new.into_iter())
            .filter(|(_, size)| extra_sizes.contains(size))
            .map(|(path, _)| path.clone()),
    );
    from_dst.extend(
        (extra.into_iter())
            .filter(|(_, size)| new_sizes.contains(size))
            .map(|(path, _)| path.clone()),
    );
    (from_src, from_dst)
}

/// The actions that make `dst` equal `src` under `rules` (see the module documentation).
pub fn plan(src: &Tree, dst: &Tree, rules: Rules) -> Plan {
    let mut plan = Plan::default();

    // Paths that are a file on one side and a directory on the other: with `delete` what is
    // in the way is cleared first, without it nothing at or below them is touched.
    let clashes: Vec<Conflict> = (src.files.keys())
        .filter(|path| dst.dirs.contains(*path))
        .map(|path| (path, false))
        .chain(
            (src.dirs.iter())
                .filter(|path| dst.files.contains_key(*path))
                .map(|path| (path, true)),
        )
        .map(|(path, source_is_dir)| Conflict {
            path: path.clone(),
            source_is_dir,
        })
        .collect();
    let clashing = |path: &str| clashes.iter().any(|c| at_or_below(path, &c.path));
    let cleared = |path: &str| rules.delete && clashing(path);
    let blocked = |path: &str| !rules.delete && clashing(path);
    if rules.delete {
        let files = dst.files.keys().filter(|path| cleared(path));
        plan.actions
            .extend(files.map(|path| Action::Delete(path.clone())));
        let dirs = deepest_first(dst.dirs.iter().filter(|path| cleared(path)));
        plan.actions.extend(dirs.map(Action::Rmdir));
    } else {
        plan.conflicts = clashes.clone();
    }

    // Leaf directories: the others are created by what goes into them.
    let parents: HashSet<&str> = (src.files.keys().chain(&src.dirs))
        .filter_map(|path| path.rsplit_once('/').map(|(parent, _)| parent))
        .collect();
    let mkdirs = (src.dirs.iter())
        .filter(|path| !parents.contains(path.as_str()) && !blocked(path))
        .filter(|path| !dst.dirs.contains(*path) || cleared(path));
    plan.actions
        .extend(mkdirs.map(|path| Action::Mkdir(path.clone())));

    // Destination files the source lacks, by size, for renames.
    let extra = |path: &String| !src.files.contains_key(path) && !cleared(path);
    let mut by_size: HashMap<u64, Vec<&str>> = HashMap::new();
    for (path, file) in dst.files.iter().filter(|(path, _)| extra(path)) {
        if file.size > 0 && file.hash.is_some() {
            by_size.entry(file.size).or_default().push(path);
        }
    }
    let mut moved: HashSet<&str> = HashSet::new();
    let mut sends = Vec::new();
    for (path, file) in src.files.iter().filter(|(path, _)| !blocked(path)) {
        match dst.files.get(path).filter(|_| !cleared(path)) {
            Some(there) if unchanged(file, there, rules.checksum) => plan.unchanged += 1,
            Some(_) => sends.push(Action::Send {
                path: path.clone(),
                file: *file,
            }),
            None => {
                let twin = (by_size.get(&file.size).into_iter().flatten().copied())
                    .find(|from| dst.files[*from].hash == file.hash && !moved.contains(from));
                let (to, file) = (path.clone(), *file);
                match twin {
                    Some(from) if rules.delete => {
                        moved.insert(from);
                        let from = from.to_string();
                        plan.actions.push(Action::Move { from, to, file });
                    }
                    Some(from) => {
                        let from = from.to_string();
                        plan.actions.push(Action::Copy { from, to, file });
                    }
                    None => sends.push(Action::Send { path: to, file }),
                }
            }
        }
    }
    plan.actions.extend(sends);

    if rules.delete {
        let files = dst
            .files
            .keys()
            .filter(|path| extra(path) && !moved.contains(path.as_str()));
        plan.actions
            .extend(files.map(|path| Action::Delete(path.clone())));
        let dirs = (dst.dirs.iter()).filter(|path| !src.dirs.contains(*path) && !cleared(path));
        plan.actions.extend(deepest_first(dirs).map(Action::Rmdir));
    }
    plan
}

fn unchanged(src: &FileMeta, dst: &FileMeta, checksum: bool) -> bool {
    src.size == dst.size
        && match checksum {
            true => src.hash.is_some() && src.hash == dst.hash,
            false => src.mtime_ms == dst.mtime_ms,
        }
}

/// `dirs` ordered so that every directory comes before its parent.
fn deepest_first<'a>(dirs: impl Iterator<Item = &'a String>) -> impl Iterator<Item = String> {
    let mut dirs: Vec<String> = dirs.cloned().collect();
    dirs.sort_by(|a, b| depth(b).cmp(&depth(a)).then_with(|| a.cmp(b)));
    dirs.into_iter()
}

fn depth(path: &str) -> usize {
    path.matches('/').count()
}

/// Whether `path` is `dir` or below it.
fn at_or_below(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `size` bytes, modified at `mtime`, whose content is told apart by `content`.
    fn file(size: u64, mtime_ms: u64, content: u8) -> FileMeta {
        FileMeta {
            size,
            mtime_ms,
            mode: 0o644,
            hash: Some(blake3::hash(&[content])),
        }
    }

    fn tree(files: &[(&str, FileMeta)], dirs: &[&str]) -> Tree {
        Tree {
            files: files.iter().map(|(p, f)| (p.to_string(), *f)).collect(),
            dirs: dirs.iter().map(|d| d.to_string()).collect(),
        }
    }

    const DELETE: Rules = Rules {
        delete: true,
        checksum: false,
    };
    const KEEP: Rules = Rules {
        delete: false,
        checksum: false,
    };
    const CHECKSUM: Rules = Rules {
        delete: false,
        checksum: true,
    };

    fn lines(plan: &Plan) -> Vec<String> {
        plan.actions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_file_is_unchanged_when_size_and_mtime_match() {
        let src = tree(
            &[
                ("a", file(10, 5, 1)),
                ("b", file(10, 5, 1)),
                ("c", file(10, 5, 1)),
            ],
            &[],
        );
        let dst = tree(
            &[
                ("a", file(10, 5, 2)),
                ("b", file(11, 5, 1)),
                ("c", file(10, 6, 1)),
            ],
            &[],
        );
        let plan = plan(&src, &dst, KEEP);
        // Same size and mtime: unchanged, even with other content (rsync's quick check).
        assert_eq!(plan.unchanged, 1);
        assert_eq!(lines(&plan), ["send /b", "send /c"]);
    }

    #[test]
    fn with_checksum_content_decides_not_mtime() {
        let src = tree(&[("same", file(10, 5, 1)), ("other", file(10, 5, 1))], &[]);
        let dst = tree(&[("same", file(10, 9, 1)), ("other", file(10, 5, 2))], &[]);
        let plan = plan(&src, &dst, CHECKSUM);
        assert_eq!(plan.unchanged, 1);
        assert_eq!(lines(&plan), ["send /other"]);

        // A hash that could not be had compares as different.
        let unknown = FileMeta {
            hash: None,
            ..file(10, 5, 1)
        };
        let plan = super::plan(
            &tree(&[("f", unknown)], &[]),
            &tree(&[("f", unknown)], &[]),
            CHECKSUM,
        );
        assert_eq!(lines(&plan), ["send /f"]);
    }

    #[test]
    fn new_files_are_sent_with_the_source_attributes() {
        let f = file(3, 7, 1);
        let plan = plan(&tree(&[("d/new", f)], &["d"]), &Tree::default(), KEEP);
        assert_eq!(
            plan.actions,
            [Action::Send {
                path: "d/new".into(),
                file: f
            }]
        );
    }

    #[test]
    fn extra_files_are_deleted_only_with_delete() {
        let src = tree(&[("keep", file(1, 1, 1))], &[]);
        let dst = tree(&[("keep", file(1, 1, 1)), ("extra", file(2, 1, 2))], &[]);
        assert_eq!(lines(&plan(&src, &dst, KEEP)), Vec::<String>::new());
        assert_eq!(lines(&plan(&src, &dst, DELETE)), ["delete /extra"]);
    }

    #[test]
    fn a_rename_is_a_move_with_delete_and_a_copy_without() {
        let f = file(100, 1, 7);
        let src = tree(&[("new/name", f)], &["new"]);
        let dst = tree(&[("old/name", FileMeta { mtime_ms: 2, ..f })], &["old"]);
        assert_eq!(
            plan(&src, &dst, DELETE).actions,
            [
                Action::Move {
                    from: "old/name".into(),
                    to: "new/name".into(),
                    file: f
                },
                Action::Rmdir("old".into()),
            ]
        );
        assert_eq!(
            lines(&plan(&src, &dst, KEEP)),
            ["copy /old/name -> /new/name"]
        );
    }

    #[test]
    fn a_rename_needs_equal_size_and_hash() {
        let src = tree(
            &[
                ("a", file(100, 1, 1)),
                ("b", file(100, 1, 2)),
                ("e", file(0, 1, 0)),
            ],
            &[],
        );
        let dst = tree(
            &[
                ("x", file(100, 1, 3)),
                ("y", file(99, 1, 1)),
                ("z", file(0, 1, 0)),
            ],
            &[],
        );
        assert_eq!(
            lines(&plan(&src, &dst, KEEP)),
            ["send /a", "send /b", "send /e"],
            "other content, other size, or empty: no rename"
        );
        let unhashed = FileMeta {
            hash: None,
            ..file(100, 1, 1)
        };
        let dst = tree(&[("x", unhashed)], &[]);
        assert_eq!(
            lines(&plan(&src, &dst, KEEP)),
            ["send /a", "send /b", "send /e"]
        );
    }

    #[test]
    fn a_destination_file_is_moved_once_but_copied_as_often_as_needed() {
        let f = file(100, 1, 1);
        let src = tree(&[("a", f), ("b", f)], &[]);
        let dst = tree(&[("old", f)], &[]);
        assert_eq!(
            lines(&plan(&src, &dst, DELETE)),
            ["move /old -> /a", "send /b"]
        );
        assert_eq!(
            lines(&plan(&src, &dst, KEEP)),
            ["copy /old -> /a", "copy /old -> /b"]
        );
    }

    #[test]
    fn empty_directories_are_created_the_others_come_with_their_files() {
        let src = tree(
            &[("full/f", file(1, 1, 1))],
            &["full", "empty", "deep", "deep/er", "there"],
        );
        let dst = tree(&[], &["there"]);
        assert_eq!(
            lines(&plan(&src, &dst, KEEP)),
            ["mkdir /deep/er", "mkdir /empty", "send /full/f"]
        );
    }

    #[test]
    fn extra_directories_go_after_their_files_deepest_first_and_only_with_delete() {
        let src = tree(&[("kept/f", file(1, 1, 1))], &["kept"]);
        let dst = tree(
            &[
                ("kept/f", file(1, 1, 1)),
                ("gone/sub/f", file(2, 1, 2)),
                ("kept/x", file(3, 1, 3)),
            ],
            &["kept", "gone", "gone/sub", "kept/empty", "a"],
        );
        assert_eq!(
            lines(&plan(&src, &dst, DELETE)),
            [
                "delete /gone/sub/f",
                "delete /kept/x",
                "rmdir /gone/sub",
                "rmdir /kept/empty",
                "rmdir /a",
                "rmdir /gone",
            ]
        );
        assert!(plan(&src, &dst, KEEP).actions.is_empty());
    }

    #[test]
    fn a_file_against_a_directory_is_replaced_with_delete_and_a_conflict_without() {
        let src = tree(&[("x", file(5, 1, 1)), ("d/f", file(6, 1, 2))], &["d"]);
        let dst = tree(&[("x/old", file(7, 1, 3)), ("d", file(8, 1, 4))], &["x"]);
        assert_eq!(
            lines(&plan(&src, &dst, DELETE)),
            [
                "delete /d",
                "delete /x/old",
                "rmdir /x",
                "send /d/f",
                "send /x"
            ]
        );
        let kept = plan(&src, &dst, KEEP);
        assert!(kept.actions.is_empty(), "{:?}", kept.actions);
        let conflicts: Vec<(&str, &str)> = (kept.conflicts.iter())
            .map(|c| (c.path.as_str(), c.reason()))
            .collect();
        assert_eq!(
            conflicts,
            [
                (
                    "x",
                    "a file at the source, a directory at the destination (--delete replaces it)"
                ),
                (
                    "d",
                    "a directory at the source, a file at the destination (--delete replaces it)"
                ),
            ]
        );
    }

    #[test]
    fn only_the_hashes_a_decision_needs_are_wanted() {
        let src = tree(
            &[
                ("same", file(10, 1, 1)),
                ("resized", file(10, 1, 1)),
                ("new", file(20, 1, 1)),
                ("new2", file(21, 1, 1)),
            ],
            &[],
        );
        let dst = tree(
            &[
                ("same", file(10, 2, 1)),
                ("resized", file(11, 1, 1)),
                ("old", file(20, 1, 1)),
                ("old2", file(22, 1, 1)),
            ],
            &[],
        );
        assert_eq!(
            wanted_hashes(&src, &dst, KEEP),
            (vec!["new".to_string()], vec!["old".to_string()])
        );
        assert_eq!(
            wanted_hashes(&src, &dst, CHECKSUM),
            (
                vec!["same".to_string(), "new".to_string()],
                vec!["same".to_string(), "old".to_string()]
            )
        );
    }

    #[test]
    fn actions_of_a_kind_run_together_but_directory_removals_one_by_one() {
        let f = file(1, 1, 1);
        let send = Action::Send {
            path: "a".into(),
            file: f,
        };
        let copy = Action::Copy {
            from: "a".into(),
            to: "b".into(),
            file: f,
        };
        let mv = Action::Move {
            from: "a".into(),
            to: "b".into(),
            file: f,
        };
        assert!(send.runs_with(&send));
        assert!(copy.runs_with(&mv));
        assert!(!send.runs_with(&Action::Delete("a".into())));
        assert!(!Action::Rmdir("a".into()).runs_with(&Action::Rmdir("b".into())));
    }

    #[test]
    fn a_tally_counts_files_and_bytes() {
        let mut tally = Tally::default();
        for action in [
            Action::Send {
                path: "a".into(),
                file: file(10, 1, 1),
            },
            Action::Send {
                path: "b".into(),
                file: file(5, 1, 1),
            },
            Action::Delete("c".into()),
            Action::Rmdir("d".into()),
            Action::Mkdir("e".into()),
        ] {
            tally.add(&action);
        }
        assert_eq!(
            tally,
            Tally {
                sent: 2,
                bytes: 15,
                deleted: 2,
                mkdirs: 1,
                ..Tally::default()
            }
        );
    }
}
