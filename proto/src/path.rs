//! Namespace paths.
//!
//! A path is absolute, `/`-separated UTF-8 with no empty, `.` or `..` components, at most
//! [`MAX_PATH_LEN`] bytes with components of at most [`MAX_COMPONENT_LEN`]. One trailing `/` is
//! accepted and dropped (`/photos/` names the directory `/photos`). Directories are implicit: a
//! directory exists while a file below it does.

use std::fmt;

pub const MAX_PATH_LEN: usize = 4096;
pub const MAX_COMPONENT_LEN: usize = 255;

/// A validated, normalised namespace path. The root is `/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FsPath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path {0:?} is not absolute (it must start with '/')")]
    NotAbsolute(String),
    #[error("path {0:?} has an empty component ('//')")]
    EmptyComponent(String),
    #[error("path {0:?} has a '.' or '..' component")]
    DotComponent(String),
    #[error("path is {0} bytes long, the limit is {MAX_PATH_LEN}")]
    TooLong(usize),
    #[error("path {path:?} has a component of {len} bytes, the limit is {MAX_COMPONENT_LEN}")]
    ComponentTooLong { path: String, len: usize },
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("the root directory '/' is not a file path")]
    Root,
}

impl FsPath {
    pub fn root() -> Self {
        Self("/".to_string())
    }

    /// Validates and normalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong(raw.len()));
        }
        if !raw.starts_with('/') {
            return Err(PathError::NotAbsolute(raw.to_string()));
        }
        if raw.contains('\0') {
            return Err(PathError::Nul(raw.replace('\0', "\\0")));
        }
        if raw == "/" {
            return Ok(Self::root());
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        for component in trimmed[1..].split('/') {
            match component {
                "" => return Err(PathError::EmptyComponent(raw.to_string())),
                "." | ".." => return Err(PathError::DotComponent(raw.to_string())),
                c if c.len() > MAX_COMPONENT_LEN => {
                    return Err(PathError::ComponentTooLong {
                        path: raw.chars().take(80).collect(),
                        len: c.len(),
                    })
                }
                _ => {}
            }
        }
        Ok(Self(trimmed.to_string()))
    }

    /// Like [`FsPath::parse`], but the root is refused: files cannot live at `/`.
    pub fn parse_file(raw: &str) -> Result<Self, PathError> {
        let path = Self::parse(raw)?;
        if path.is_root() {
            return Err(PathError::Root);
        }
        Ok(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The prefix every descendant's path starts with: `/a/b/` for `/a/b`, `/` for the root.
    pub fn dir_prefix(&self) -> String {
        if self.is_root() {
            "/".to_string()
        } else {
            format!("{}/", self.0)
        }
    }

    /// The last component, or `/` for the root.
    pub fn name(&self) -> &str {
        if self.is_root() {
            "/"
        } else {
            self.0.rsplit('/').next().unwrap_or(&self.0)
        }
    }

    /// The path of `name` inside this directory. `name` must be one valid component.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        Self::parse(&format!("{}{}", self.dir_prefix(), name))
    }
}

impl fmt::Display for FsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(FsPath::parse("/").unwrap().as_str(), "/");
        assert_eq!(FsPath::parse("/a/b.txt").unwrap().as_str(), "/a/b.txt");
        assert_eq!(FsPath::parse("/a/b/").unwrap().as_str(), "/a/b");
        assert_eq!(FsPath::parse("/..a/b..").unwrap().as_str(), "/..a/b..");
        assert_eq!(FsPath::parse("/ünï cödé").unwrap().name(), "ünï cödé");
    }

    #[test]
    fn rejects_bad_paths() {
        use PathError::*;
        assert!(matches!(FsPath::parse("a/b"), Err(NotAbsolute(_))));
        assert!(matches!(FsPath::parse(""), Err(NotAbsolute(_))));
        assert!(matches!(FsPath::parse("//a"), Err(EmptyComponent(_))));
        assert!(matches!(FsPath::parse("/a//b"), Err(EmptyComponent(_))));
        assert!(matches!(FsPath::parse("/a//"), Err(EmptyComponent(_))));
        assert!(matches!(FsPath::parse("/a/../b"), Err(DotComponent(_))));
        assert!(matches!(FsPath::parse("/./b"), Err(DotComponent(_))));
        assert!(matches!(FsPath::parse("/a/.."), Err(DotComponent(_))));
        assert!(matches!(FsPath::parse("/a\0b"), Err(Nul(_))));
        assert!(matches!(FsPath::parse_file("/"), Err(Root)));
    }

    #[test]
    fn length_limits() {
        let long_component = format!("/{}", "x".repeat(MAX_COMPONENT_LEN));
        assert!(FsPath::parse(&long_component).is_ok());
        let too_long_component = format!("/{}", "x".repeat(MAX_COMPONENT_LEN + 1));
        assert!(matches!(
            FsPath::parse(&too_long_component),
            Err(PathError::ComponentTooLong { len: 256, .. })
        ));
        let too_long = "/abcdefg".repeat(MAX_PATH_LEN / 8 + 1);
        assert!(matches!(
            FsPath::parse(&too_long),
            Err(PathError::TooLong(_))
        ));
    }

    #[test]
    fn prefixes_and_names() {
        let p = FsPath::parse("/a/b").unwrap();
        assert_eq!(p.dir_prefix(), "/a/b/");
        assert_eq!(p.name(), "b");
        assert_eq!(FsPath::root().dir_prefix(), "/");
        assert_eq!(FsPath::root().join("x").unwrap().as_str(), "/x");
        assert_eq!(p.join("c").unwrap().as_str(), "/a/b/c");
        assert!(p.join("..").is_err());
    }
}
