//! ListObjects (V1 and V2) over a tree of directories: keys in UTF-8 byte order, with prefix,
//! delimiter, start-after and max-keys, as S3 answers them.
//!
//! A directory's keys all start with its key and `/`, so walking the children of each
//! directory sorted by that form (a file `a-b` before a directory `a`, whose keys start `a/`)
//! yields every key in order without listing the bucket whole: directories outside the prefix,
//! wholly before the start, or rolled up into one common prefix by the delimiter are never
//! listed. An empty directory is a directory marker, the key `dir/` of zero bytes (the object
//! a console's "new folder" creates).

use std::collections::VecDeque;

use bigfs_proto::pb::DirEntry;
use bigfs_proto::FsPath;

use super::names::key_of;

/// One page's parameters.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Keys up to and including this one are skipped (start-after, a continuation token, a
    /// marker); so are those it rolls up with, when it is a common prefix.
    pub after: Option<String>,
    pub max_keys: usize,
}

/// One listed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Object {
        key: String,
        size: u64,
        mtime_ms: u64,
        etag: String,
    },
    CommonPrefix(String),
}

impl Item {
    /// What the next page starts after.
    pub fn key(&self) -> &str {
        match self {
            Item::Object { key, .. } | Item::CommonPrefix(key) => key,
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Item>,
    pub truncated: bool,
}

/// Directory listings, as the metadata server answers them.
pub trait Tree {
    /// The children of `dir`; empty when it does not exist or is a file.
    fn children(
        &self,
        dir: &FsPath,
    ) -> impl std::future::Future<Output = anyhow::Result<Vec<DirEntry>>> + Send;
}

/// A child of a directory being walked: its key (a directory's ends in `/`).
struct Node {
    key: String,
    entry: DirEntry,
}

/// One page of the keys of the bucket directory `bucket` that `query` selects.
pub async fn list(tree: &impl Tree, bucket: &FsPath, query: &Query) -> anyhow::Result<Page> {
    // S3 answers max-keys=0 with an empty page that is not truncated (there is no key to
    // continue after), whatever the bucket holds.
    if query.max_keys == 0 {
        return Ok(Page::default());
    }
    let mut items: Vec<Item> = Vec::new();
    // The deepest directory that holds every key with the prefix.
    let start_key = match query.prefix.rfind('/') {
        Some(i) => &query.prefix[..=i],
        None => "",
    };
    let start = match start_key.strip_suffix('/') {
        // A prefix no path can hold (`a//`) selects no key.
        Some(dir) => match FsPath::parse(&format!("{bucket}/{dir}")) {
            Ok(path) => path,
            Err(_) => return Ok(Page::default()),
        },
        None => bucket.clone(),
    };
    let mut stack: Vec<VecDeque<Node>> = vec![children(tree, bucket, &start).await?];
    let wanted = query.max_keys.saturating_add(1);
    while items.len() < wanted {
        let Some(frame) = stack.last_mut() else { break };
        let Some(node) = frame.pop_front() else {
            stack.pop();
            continue;
        };
        let Node { key, entry } = node;
        let inside = key.starts_with(&query.prefix);
        if !inside && !query.prefix.starts_with(&key) {
            continue;
        }
        if entry.is_dir && before_or_at(&key, query.after.as_deref(), true) {
            continue;
        }
        if inside {
            if let Some(prefix) = rolled_up(&key, query) {
                if before_or_at(&prefix, query.after.as_deref(), false) {
                    continue;
                }
                if items.last().map(Item::key) != Some(prefix.as_str()) {
                    items.push(Item::CommonPrefix(prefix));
                }
                continue;
            }
        }
        if !entry.is_dir {
            if !before_or_at(&key, query.after.as_deref(), false) {
                items.push(object(key, &entry));
            }
            continue;
        }
        let below = children(tree, bucket, &FsPath::parse(&entry.path)?).await?;
        if below.is_empty() {
            if inside && !before_or_at(&key, query.after.as_deref(), false) {
                items.push(object(key, &entry));
            }
            continue;
        }
        stack.push(below);
    }
    let truncated = items.len() > query.max_keys;
    items.truncate(query.max_keys);
    Ok(Page { items, truncated })
}

/// Whether `key` (with `subtree`, every key below the directory `key`) sorts at or before
/// `after`, so it was listed on an earlier page.
fn before_or_at(key: &str, after: Option<&str>, subtree: bool) -> bool {
    let Some(after) = after else { return false };
    if subtree {
        // Every key below starts with `key`: all are at or before `after` only when `after`
        // sorts past the whole range of such keys.
        key <= after && !after.starts_with(key)
    } else {
        key <= after
    }
}

/// The common prefix `key` rolls up into (for a directory: every key below it), if any.
fn rolled_up(key: &str, query: &Query) -> Option<String> {
    let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty())?;
    let rest = &key[query.prefix.len()..];
    let at = rest.find(delimiter)?;
    Some(key[..query.prefix.len() + at + delimiter.len()].to_string())
}

fn object(key: String, entry: &DirEntry) -> Item {
    Item::Object {
        key,
        size: entry.size,
        mtime_ms: entry.mtime_ms,
        etag: super::etag::or_derived(&entry.etag, &entry.content_hash),
    }
}

/// The children of `dir` as walk nodes, in key order.
async fn children(
    tree: &impl Tree,
    bucket: &FsPath,
    dir: &FsPath,
) -> anyhow::Result<VecDeque<Node>> {
    let mut nodes: Vec<Node> = tree
        .children(dir)
        .await?
        .into_iter()
        .filter_map(|entry| {
            let mut key = key_of(bucket, &entry.path)?;
            if entry.is_dir {
                key.push('/');
            }
            Some(Node { key, entry })
        })
        .collect();
    nodes.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(nodes.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A tree of files given by path; directories are implied, and `empty` ones listed too.
    struct Fake {
        files: BTreeSet<String>,
        empty_dirs: BTreeSet<String>,
    }

    impl Tree for Fake {
        async fn children(&self, dir: &FsPath) -> anyhow::Result<Vec<DirEntry>> {
            let prefix = dir.dir_prefix();
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for path in self.files.iter().chain(&self.empty_dirs) {
                let Some(rest) = path.strip_prefix(&prefix) else {
                    continue;
                };
                let (name, is_dir) = match rest.split_once('/') {
                    Some((name, _)) => (name, true),
                    None => (rest, self.empty_dirs.contains(path)),
                };
                if seen.insert(name.to_string()) {
                    out.push(DirEntry {
                        path: format!("{prefix}{name}"),
                        is_dir,
                        size: 1,
                        ..DirEntry::default()
                    });
                }
            }
            Ok(out)
        }
    }

    fn fake(files: &[&str], empty_dirs: &[&str]) -> Fake {
        Fake {
            files: files.iter().map(|f| format!("/b/{f}")).collect(),
            empty_dirs: empty_dirs.iter().map(|d| format!("/b/{d}")).collect(),
        }
    }

    fn keys(page: &Page) -> Vec<String> {
        page.items
            .iter()
            .map(|i| match i {
                Item::Object { key, .. } => key.clone(),
                Item::CommonPrefix(p) => format!("{p} (prefix)"),
            })
            .collect()
    }

    async fn run(
        tree: &Fake,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> Page {
        let query = Query {
            prefix: prefix.into(),
            delimiter: delimiter.map(Into::into),
            after: after.map(Into::into),
            max_keys: max,
        };
        list(tree, &FsPath::parse("/b").unwrap(), &query)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn keys_come_in_byte_order_across_directories() {
        let tree = fake(&["a/x", "a-b", "a/y/z", "b", "é", "A"], &["e"]);
        let page = run(&tree, "", None, None, 1000).await;
        assert_eq!(keys(&page), ["A", "a-b", "a/x", "a/y/z", "b", "e/", "é"]);
        assert!(!page.truncated);
    }

    #[tokio::test]
    async fn delimiter_rolls_up_directories_without_listing_them() {
        let tree = fake(&["a/x", "a-b", "a/y/z", "b"], &[]);
        let page = run(&tree, "", Some("/"), None, 1000).await;
        assert_eq!(keys(&page), ["a-b", "a/ (prefix)", "b"]);
        let page = run(&tree, "a/", Some("/"), None, 1000).await;
        assert_eq!(keys(&page), ["a/x", "a/y/ (prefix)"]);
        let page = run(&tree, "a/y", None, None, 1000).await;
        assert_eq!(keys(&page), ["a/y/z"]);
        let page = run(&tree, "a", Some("-"), None, 1000).await;
        assert_eq!(keys(&page), ["a- (prefix)", "a/x", "a/y/z"]);
    }

    #[tokio::test]
    async fn pages_resume_after_a_key_or_a_common_prefix() {
        let tree = fake(&["a/x", "a-b", "a/y/z", "b", "c/d"], &[]);
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page = run(&tree, "", Some("/"), after.as_deref(), 1).await;
            seen.extend(keys(&page));
            if !page.truncated {
                break;
            }
            after = page.items.last().map(|i| i.key().to_string());
        }
        assert_eq!(seen, ["a-b", "a/ (prefix)", "b", "c/ (prefix)"]);
        let page = run(&tree, "", None, Some("a/x"), 2).await;
        assert_eq!(keys(&page), ["a/y/z", "b"]);
        assert!(page.truncated);
    }

    #[tokio::test]
    async fn a_missing_prefix_directory_lists_nothing() {
        let tree = fake(&["a/x"], &[]);
        assert!(run(&tree, "zz/", None, None, 10).await.items.is_empty());
    }

    #[tokio::test]
    async fn max_keys_zero_is_an_empty_page_not_truncated() {
        let tree = fake(&["a/x", "b"], &[]);
        let page = run(&tree, "", None, None, 0).await;
        assert!(page.items.is_empty());
        assert!(!page.truncated);
    }
}
