//! Paths in the cluster as the JSON API receives them: in query strings (`?path=/a/b`),
//! percent-decoded by the router. A path that BigFS cannot hold is a 400 naming the rule it
//! breaks, before any call to the cluster.

use bigfs_proto::FsPath;

use crate::error::ApiError;

/// A directory or file path; the root is allowed.
pub fn parse(raw: &str) -> Result<FsPath, ApiError> {
    FsPath::parse(raw).map_err(|e| ApiError::bad_request(format!("bad path: {e}")))
}

/// A path that can be a file or a new directory: anything but the root.
pub fn parse_file(raw: &str) -> Result<FsPath, ApiError> {
    FsPath::parse_file(raw).map_err(|e| ApiError::bad_request(format!("bad path: {e}")))
}

/// The path of `name` in `dir`: `name` is what a person typed (a new folder's name, a new name
/// for a file), so it must be one component, not a path.
pub fn child(dir: &FsPath, name: &str) -> Result<FsPath, ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request("the name is empty"));
    }
    if name.contains('/') {
        return Err(ApiError::bad_request(format!(
            "bad name {name:?}: a name cannot contain '/'"
        )));
    }
    dir.join(name)
        .map_err(|e| ApiError::bad_request(format!("bad name {name:?}: {e}")))
}

/// The directory `path` is in (the root for the root).
pub fn parent(path: &FsPath) -> FsPath {
    match path.as_str().rsplit_once('/') {
        Some(("", _)) | None => FsPath::root(),
        Some((dir, _)) => FsPath::parse(dir).unwrap_or_else(|_| FsPath::root()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn paths_are_normalised_or_refused_with_the_rule() {
        assert_eq!(parse("/a/b/").unwrap().as_str(), "/a/b");
        assert_eq!(parse("/").unwrap().as_str(), "/");
        for bad in ["a/b", "/a//b", "/a/../b", ""] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(err.message.starts_with("bad path: "), "{}", err.message);
        }
        assert!(parse_file("/").is_err());
        assert_eq!(parse_file("/x").unwrap().as_str(), "/x");
    }

    #[test]
    fn a_child_is_one_component() {
        let dir = parse("/photos").unwrap();
        assert_eq!(child(&dir, "cat.jpg").unwrap().as_str(), "/photos/cat.jpg");
        assert_eq!(child(&FsPath::root(), "x").unwrap().as_str(), "/x");
        assert!(child(&dir, "a/b").unwrap_err().message.contains("'/'"));
        assert!(child(&dir, "..").is_err());
        assert!(child(&dir, "").is_err());
    }

    #[test]
    fn the_parent_of_a_path() {
        assert_eq!(parent(&parse("/a/b/c").unwrap()).as_str(), "/a/b");
        assert_eq!(parent(&parse("/a").unwrap()).as_str(), "/");
        assert_eq!(parent(&FsPath::root()).as_str(), "/");
    }
}
