//! Checking `bigfs stat --json` against the bytes that were put.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::data::expected_chunks;

impl Cluster {
    /// Checks a `stat --json` document for `remote` holding `data`: path, size, and for every
    /// chunk its index, its id (the BLAKE3 of the slice), its size, and distinct replicas that are
    /// nodes of this cluster, exactly `replicas` of them if given. Sizes must sum to the file size.
    ///
    /// An empty file may be described with no chunk or with one empty chunk.
    /// Returns every problem found, or `Ok` if there is none.
    pub fn check_stat(
        &self,
        stat: &Value,
        remote: &str,
        data: &[u8],
        replicas: Option<usize>,
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        if stat["path"] != remote {
            problems.push(format!("path is {}, expected {remote:?}", stat["path"]));
        }
        if stat["size"].as_u64() != Some(data.len() as u64) {
            problems.push(format!("size is {}, expected {}", stat["size"], data.len()));
        }
        let Some(chunks) = stat["chunks"].as_array() else {
            return Err(format!("stat has no chunks array: {stat}"));
        };
        let mut expected = expected_chunks(data, self.chunk_size());
        if data.is_empty() && chunks.len() == 1 {
            expected.push((blake3::hash(b"").to_hex().to_string(), 0));
        }
        if chunks.len() != expected.len() {
            problems.push(format!(
                "{} chunks listed, expected {}",
                chunks.len(),
                expected.len()
            ));
        }
        let mut total = 0u64;
        for (i, (chunk, (id, size))) in chunks.iter().zip(&expected).enumerate() {
            if chunk["index"].as_u64() != Some(i as u64) {
                problems.push(format!("chunks[{i}].index is {}", chunk["index"]));
            }
            if chunk["id"] != id.as_str() {
                problems.push(format!(
                    "chunks[{i}].id is {}, expected the BLAKE3 of the slice {id}",
                    chunk["id"]
                ));
            }
            if chunk["size"].as_u64() != Some(*size as u64) {
                problems.push(format!(
                    "chunks[{i}].size is {}, expected {size}",
                    chunk["size"]
                ));
            }
            total += chunk["size"].as_u64().unwrap_or(0);
            let nodes: Vec<&str> = chunk["replicas"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let distinct: HashSet<&str> = nodes.iter().copied().collect();
            if distinct.len() != nodes.len() {
                problems.push(format!("chunks[{i}] lists a node twice: {nodes:?}"));
            }
            if let Some(unknown) = nodes
                .iter()
                .find(|n| !self.nodes.iter().any(|node| node.id == **n))
            {
                problems.push(format!("chunks[{i}] lists unknown node {unknown:?}"));
            }
            if let Some(want) = replicas {
                if distinct.len() != want {
                    problems.push(format!(
                        "chunks[{i}] is on {} distinct nodes {nodes:?}, expected {want}",
                        distinct.len()
                    ));
                }
            }
        }
        if total != data.len() as u64 {
            problems.push(format!(
                "chunk sizes sum to {total}, the file has {} bytes",
                data.len()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "stat of {remote}: {}\nstat: {stat}",
                problems.join("; ")
            ))
        }
    }

    /// Waits until `stat --json` of `remote` passes [`Cluster::check_stat`] (replica counts can
    /// lag a put or a restart while nodes report), and returns that stat. Fails with the last
    /// problems after `timeout`.
    #[track_caller]
    pub fn wait_stat(
        &self,
        remote: &str,
        data: &[u8],
        replicas: Option<usize>,
        timeout: Duration,
    ) -> Value {
        let mut last = (Value::Null, String::new());
        let result = crate::wait::poll_until(timeout, || {
            let stat = self.stat_json(remote);
            match self.check_stat(&stat, remote, data, replicas) {
                Ok(()) => {
                    last = (stat, String::new());
                    true
                }
                Err(problem) => {
                    last = (stat, problem);
                    false
                }
            }
        });
        match result {
            Ok(_) => last.0,
            Err(waited) => self.fail(&format!("after waiting {waited:?}: {}", last.1)),
        }
    }
}

impl Cluster {
    /// [`Cluster::wait_stat`] for every file; returns their stats.
    #[track_caller]
    pub fn wait_files(
        &self,
        files: &[(String, Vec<u8>)],
        replicas: Option<usize>,
        timeout: Duration,
    ) -> Vec<Value> {
        files
            .iter()
            .map(|(path, data)| self.wait_stat(path, data, replicas, timeout))
            .collect()
    }

    /// Checks that `path` holds `data` per `stat` with exactly `replicas` listed copies, none on
    /// a node of `exclude`, each a good copy on disk. Returns the problems.
    pub fn check_placed(
        &self,
        path: &str,
        data: &[u8],
        replicas: usize,
        exclude: &[usize],
    ) -> Result<(), String> {
        let stat = self.stat_json(path);
        self.check_stat(&stat, path, data, Some(replicas))?;
        self.check_replicas_on_disk(&stat)?;
        for (index, chunk) in stat_chunks(&stat).iter().enumerate() {
            if let Some(node) = chunk
                .replicas
                .iter()
                .find(|r| exclude.iter().any(|&i| self.node_id(i) == r.as_str()))
            {
                return Err(format!(
                    "{path}: chunk {index} still lists {node}: {:?}",
                    chunk.replicas
                ));
            }
        }
        Ok(())
    }

    /// [`Cluster::check_placed`] for every file, stopping at the first problem.
    pub fn check_all_placed(
        &self,
        files: &[(String, Vec<u8>)],
        replicas: usize,
        exclude: &[usize],
    ) -> Result<(), String> {
        files
            .iter()
            .try_for_each(|(path, data)| self.check_placed(path, data, replicas, exclude))
    }
}

/// One chunk of a `stat --json` document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatChunk {
    pub id: String,
    pub size: u64,
    pub replicas: Vec<String>,
}

/// The chunks of a `stat --json` document, in order (missing fields read as empty).
pub fn stat_chunks(stat: &Value) -> Vec<StatChunk> {
    stat["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| StatChunk {
            id: c["id"].as_str().unwrap_or_default().to_string(),
            size: c["size"].as_u64().unwrap_or_default(),
            replicas: c["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
        })
        .collect()
}
