//! A file made of other files' chunks: an S3 multipart upload's Complete (the parts, in order,
//! removed in the same transaction) and a copy that gives the copy new object metadata. No
//! chunk byte moves; chunk sizes may vary inside the result, which readers handle because each
//! chunk carries its own size.

use sled::Transactional;

use bigfs_proto::lock::lock;
use bigfs_proto::pb::ObjectMeta;
use bigfs_proto::FsPath;

use super::refs::RefDeltas;
use super::writes::{check_version, create_parents, now_ms, Committed, FileWrite};
use super::{abort, unwrap_transaction, Namespace};
use crate::error::MetaError;
use crate::records::{FileRecord, Stored};

/// What [`Namespace::concat`] writes.
pub struct Concat {
    /// The files whose chunk lists, in order, make the new one. At least one.
    pub sources: Vec<FsPath>,
    pub dst: FsPath,
    pub overwrite: bool,
    /// Remove the sources in the same transaction.
    pub remove_sources: bool,
    pub object: ObjectMeta,
    /// Write only over the file at this version (implies `overwrite`).
    pub if_version: Option<u64>,
}

impl Namespace {
    /// Writes `dst` with the sources' chunks in order, in one transaction with the reference
    /// counts (and the sources' removal, if asked): a crash leaves the sources or the new
    /// file, never both gone nor a part of one. The new file takes the first source's
    /// replication and mode, the largest chunk size among them, and the time of the call.
    pub fn concat(&self, concat: &Concat) -> Result<(u64, Committed), MetaError> {
        if concat.sources.is_empty() {
            return Err(MetaError::InvalidArgument(
                "a concatenation needs at least one source file".into(),
            ));
        }
        if concat.remove_sources && concat.sources.contains(&concat.dst) {
            return Err(MetaError::InvalidArgument(format!(
                "{} cannot be both a source that goes and the destination",
                concat.dst
            )));
        }
        let _writer = lock(&self.writer);
        let write = FileWrite {
            path: concat.dst.clone(),
            record: FileRecord::default(),
            overwrite: concat.overwrite,
            if_version: concat.if_version,
        };
        if let Some(refusal) = self
            .check_placement(std::slice::from_ref(&write))?
            .pop()
            .flatten()
        {
            return Err(refusal);
        }
        let now = now_ms();
        let result = (&self.files, &self.chunk_refs).transaction(|(files, refs)| {
            let mut record = FileRecord {
                mtime_ms: now,
                ..FileRecord::default()
            };
            let mut deltas = RefDeltas::default();
            for (i, source) in concat.sources.iter().enumerate() {
                let part = match files.get(source.as_str())? {
                    Some(bytes) => Stored::decode(source.as_str(), &bytes).map_err(abort)?,
                    None => return Err(abort(MetaError::NotFound(source.to_string()))),
                };
                let Stored::File(part) = part else {
                    return Err(abort(MetaError::IsDirectory(source.to_string())));
                };
                if i == 0 {
                    record.replication = part.replication;
                    record.mode = part.mode;
                }
                record.chunk_size = record.chunk_size.max(part.chunk_size);
                record.size += part.size;
                record.chunks.extend(part.chunks.iter().cloned());
                if concat.remove_sources {
                    files.remove(source.as_str())?;
                    deltas.add_file(&part, -1).map_err(abort)?;
                }
            }
            let dst = concat.dst.as_str();
            let overwrite = concat.overwrite || concat.if_version.is_some();
            let old = match files.get(dst)? {
                Some(bytes) => match Stored::decode(dst, &bytes).map_err(abort)? {
                    Stored::File(old) if overwrite => Some(old),
                    Stored::File(_) => return Err(abort(MetaError::AlreadyExists(dst.into()))),
                    Stored::Dir(_) => return Err(abort(MetaError::IsDirectory(dst.into()))),
                },
                None => None,
            };
            check_version(&concat.dst, old.as_ref(), concat.if_version).map_err(abort)?;
            if let Some(old) = &old {
                deltas.add_file(old, -1).map_err(abort)?;
            }
            record.version = old.map_or(1, |old| old.version + 1);
            record.set_object(concat.object.clone());
            deltas.add_file(&record, 1).map_err(abort)?;
            let freed = deltas.apply(refs)?;
            create_parents(files, &concat.dst, now)?;
            let (size, version) = (record.size, record.version);
            files.insert(dst, Stored::File(record).encode())?;
            Ok((size, Committed { version, freed }))
        });
        unwrap_transaction(result)
    }
}
