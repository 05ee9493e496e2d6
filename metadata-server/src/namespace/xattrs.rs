//! Extended attributes: small named values kept in a file's or an explicit directory's own
//! record, so they live and die with it (a removal drops them, a rename moves them, a copy
//! copies them) without a tree or a transaction of their own. The S3 gateway keeps what S3
//! attaches to a bucket or an object beside its bytes here.

use bigfs_proto::lock::lock;
use bigfs_proto::FsPath;

use super::{Lookup, Namespace};
use crate::error::MetaError;
use crate::records::Xattrs;

/// The longest attribute name, in bytes.
pub const MAX_XATTR_NAME: usize = 255;
/// The largest attribute value, in bytes.
pub const MAX_XATTR_VALUE: usize = 64 << 10;
/// All of one record's names and values together, in bytes: a record is read whole by every
/// lookup of its path, so what rides on it stays small.
pub const MAX_XATTRS_TOTAL: usize = 256 << 10;

impl Namespace {
    /// The extended attributes of `path`: none for an implied directory or the root.
    pub fn xattrs(&self, path: &FsPath) -> Result<Xattrs, MetaError> {
        match self.lookup(path)? {
            Lookup::Missing => Err(MetaError::NotFound(path.to_string())),
            Lookup::File(record) => Ok(record.xattrs),
            Lookup::Dir(attrs) => Ok(attrs.map(|a| a.xattrs).unwrap_or_default()),
        }
    }

    /// Sets the attributes in `set` and removes those named in `remove` (a name in both goes),
    /// in one write: all of it or, refused, none. An implied directory gets a record.
    pub fn set_xattrs(
        &self,
        path: &FsPath,
        set: Xattrs,
        remove: &[String],
    ) -> Result<(), MetaError> {
        for (name, value) in &set {
            check_entry(path, name, value)?;
        }
        let _writer = lock(&self.writer);
        let mut stored = self.stored_or_implied(path, "extended attributes")?;
        let xattrs = stored.xattrs_mut();
        xattrs.extend(set);
        for name in remove {
            xattrs.remove(name);
        }
        let total = total_size(xattrs);
        if total > MAX_XATTRS_TOTAL {
            return Err(MetaError::InvalidArgument(format!(
                "the extended attributes of {path} would take {total} bytes, more than the \
                 {MAX_XATTRS_TOTAL} one file or directory may have"
            )));
        }
        // The writer lock is held, so nothing changed `path` since it was read.
        self.files.insert(path.as_str(), stored.encode())?;
        Ok(())
    }
}

/// Refuses an attribute `name` or `value` out of bounds, naming both path and name.
fn check_entry(path: &FsPath, name: &str, value: &[u8]) -> Result<(), MetaError> {
    if name.is_empty() || name.len() > MAX_XATTR_NAME {
        return Err(MetaError::InvalidArgument(format!(
            "extended attribute name {name:?} of {path} is {} bytes; it must be 1 to \
             {MAX_XATTR_NAME}",
            name.len()
        )));
    }
    if value.len() > MAX_XATTR_VALUE {
        return Err(MetaError::InvalidArgument(format!(
            "extended attribute {name:?} of {path} is {} bytes, more than {MAX_XATTR_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

/// The bytes of all names and values.
fn total_size(xattrs: &Xattrs) -> usize {
    xattrs
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum()
}
