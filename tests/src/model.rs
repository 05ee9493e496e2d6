//! A model of what each remote path may hold, for workloads that run while servers crash.
//!
//! A put that exited 0 is acknowledged: the path holds exactly its bytes. A put that failed may
//! or may not have committed (the metadata server may have died after persisting the commit but
//! before answering), so the path then holds either the previous content or the new one, never
//! a mix: the model keeps that ambiguity as a set of acceptable states, narrowed again by the
//! next acknowledged put or rm. `None` in a set means "the path does not exist".

use std::collections::BTreeMap;
use std::sync::Arc;

/// One acceptable state of a path: its bytes, or `None` for "no such file".
pub type State = Option<Arc<Vec<u8>>>;

/// What every path may hold. Paths never written are absent (`None` is their only state).
#[derive(Clone, Debug, Default)]
pub struct ContentModel {
    paths: BTreeMap<String, Vec<State>>,
}

impl ContentModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The acceptable states of `path`.
    pub fn states(&self, path: &str) -> Vec<State> {
        self.paths.get(path).cloned().unwrap_or_else(|| vec![None])
    }

    /// Every path the model has seen, with its acceptable states.
    pub fn paths(&self) -> impl Iterator<Item = (&String, &Vec<State>)> {
        self.paths.iter()
    }

    /// A put of `data` at `path` exited 0.
    pub fn put_acked(&mut self, path: &str, data: Arc<Vec<u8>>) {
        self.paths.insert(path.to_string(), vec![Some(data)]);
    }

    /// A put of `data` at `path` failed (or was killed): the path holds what it held before or
    /// `data`.
    pub fn put_failed(&mut self, path: &str, data: Arc<Vec<u8>>) {
        self.add_state(path, Some(data));
    }

    /// `rm path` exited 0.
    pub fn rm_acked(&mut self, path: &str) {
        self.paths.insert(path.to_string(), vec![None]);
    }

    /// `rm path` failed: the file may be gone or not.
    pub fn rm_failed(&mut self, path: &str) {
        self.add_state(path, None);
    }

    fn add_state(&mut self, path: &str, state: State) {
        let states = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| vec![None]);
        if !states.contains(&state) {
            states.push(state);
        }
    }

    /// Whether `path` surely holds one acknowledged content (not absent, not ambiguous).
    pub fn is_certain_file(&self, path: &str) -> bool {
        matches!(self.paths.get(path).map(Vec::as_slice), Some([Some(_)]))
    }

    /// Whether `path` may exist.
    pub fn may_exist(&self, path: &str) -> bool {
        self.states(path).iter().any(Option::is_some)
    }

    /// Whether `path` may be absent.
    pub fn may_be_absent(&self, path: &str) -> bool {
        self.states(path).iter().any(Option::is_none)
    }

    /// Whether bytes read from `path` are one of its acceptable contents.
    pub fn accepts(&self, path: &str, got: &[u8]) -> bool {
        self.states(path)
            .iter()
            .any(|s| s.as_ref().is_some_and(|d| d.as_slice() == got))
    }

    /// Describes the acceptable states of `path` (sizes and hash prefixes), for messages.
    pub fn describe(&self, path: &str) -> String {
        self.states(path)
            .iter()
            .map(|s| match s {
                None => "absent".to_string(),
                Some(d) => format!("{} bytes {}", d.len(), &blake3::hash(d).to_hex()[..12]),
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_puts_and_rms_are_ambiguous_until_an_acked_change() {
        let a = Arc::new(b"a".to_vec());
        let b = Arc::new(b"b".to_vec());
        let mut m = ContentModel::new();
        assert!(m.may_be_absent("/x") && !m.may_exist("/x"));
        m.put_failed("/x", a.clone());
        assert!(m.may_be_absent("/x") && m.accepts("/x", b"a"));
        m.put_acked("/x", a.clone());
        assert!(m.is_certain_file("/x") && !m.accepts("/x", b"b"));
        m.put_failed("/x", b.clone());
        assert!(m.accepts("/x", b"a") && m.accepts("/x", b"b") && !m.may_be_absent("/x"));
        m.rm_failed("/x");
        assert!(m.may_be_absent("/x"));
        m.rm_acked("/x");
        assert!(!m.may_exist("/x"));
    }
}
