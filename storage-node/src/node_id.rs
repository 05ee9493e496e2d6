//! The node's stable identity, kept in its data directory.
//!
//! The metadata server knows a node's copies by its id, so a data directory must never change
//! identity: the id is written once, and a different `--id` on a later start is refused.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

const ID_FILE: &str = "node_id";

/// Reads the id stored in `data_dir`, or stores `wanted` (or a fresh random id) there.
pub fn load_or_create(data_dir: &Path, wanted: Option<&str>) -> anyhow::Result<String> {
    let path = data_dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(stored) => {
            let stored = stored.trim().to_string();
            validate(&stored).with_context(|| format!("corrupt {}", path.display()))?;
            if let Some(wanted) = wanted {
                if wanted != stored {
                    bail!(
                        "data directory {} belongs to node {stored:?}, not --id {wanted:?}",
                        data_dir.display()
                    );
                }
            }
            Ok(stored)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = match wanted {
                Some(id) => id.to_string(),
                None => format!("node-{:08x}", rand::random::<u32>()),
            };
            validate(&id)?;
            let mut tmp = tempfile::NamedTempFile::new_in(data_dir)
                .with_context(|| format!("create temp file in {}", data_dir.display()))?;
            writeln!(tmp, "{id}").context("write node id")?;
            tmp.as_file().sync_all().context("fsync node id")?;
            tmp.persist(&path)
                .with_context(|| format!("store node id in {}", path.display()))?;
            fs::File::open(data_dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("fsync {}", data_dir.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Node ids are 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn validate(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!("invalid node id {id:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_kept_and_a_different_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_or_create(dir.path(), Some("n1")).unwrap(), "n1");
        assert_eq!(load_or_create(dir.path(), None).unwrap(), "n1");
        assert_eq!(load_or_create(dir.path(), Some("n1")).unwrap(), "n1");
        let err = load_or_create(dir.path(), Some("n2")).unwrap_err();
        assert!(err.to_string().contains("belongs to node \"n1\""), "{err}");
    }

    #[test]
    fn generated_ids_are_valid_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let id = load_or_create(dir.path(), None).unwrap();
        validate(&id).unwrap();
        assert!(validate("").is_err());
        assert!(validate("a/b").is_err());
        assert!(validate(&"x".repeat(65)).is_err());
    }
}
