//! Server configuration and the repository-directory checks done before binding.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything [`crate::Server::bind`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Repository directory containing `metadata/` and (optionally) `targets/`.
    pub repo: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How long in-flight requests may take to finish after shutdown was requested.
    pub shutdown_timeout: Duration,
}

impl Config {
    /// A configuration with the default 10 s shutdown grace period.
    pub fn new(repo: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Config {
            repo: repo.into(),
            listen,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the repository directory cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The `--repo` path does not exist.
    #[error("repository directory {0} does not exist")]
    Missing(PathBuf),
    /// The `--repo` path exists but is not a directory.
    #[error("repository path {0} is not a directory")]
    NotADirectory(PathBuf),
    /// The directory has no `metadata/` subdirectory, so it is not a TUF repository.
    #[error("repository directory {0} has no metadata/ subdirectory")]
    NoMetadata(PathBuf),
    /// Any other I/O failure while inspecting the directory.
    #[error("cannot read repository directory {path}: {source}")]
    Io {
        /// The path being inspected.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Checks the layout of `repo` and returns its canonical (absolute, symlink-free) path.
///
/// Only `metadata/` is required: a fresh repository may have no targets yet. The two subtrees are
/// re-resolved per request (see [`crate::resolve`]), so they may be created or re-pointed while the
/// server runs.
pub fn check_repo(repo: &Path) -> Result<PathBuf, RepoError> {
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => RepoError::Missing(repo.to_path_buf()),
        _ => RepoError::Io {
            path: repo.to_path_buf(),
            source: e,
        },
    };
    let meta = std::fs::metadata(repo).map_err(io_err)?;
    if !meta.is_dir() {
        return Err(RepoError::NotADirectory(repo.to_path_buf()));
    }
    let root = std::fs::canonicalize(repo).map_err(io_err)?;
    match std::fs::metadata(root.join("metadata")) {
        Ok(m) if m.is_dir() => Ok(root),
        Ok(_) => Err(RepoError::NoMetadata(repo.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(RepoError::NoMetadata(repo.to_path_buf()))
        }
        Err(e) => Err(RepoError::Io {
            path: root.join("metadata"),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_metadata_less_dirs_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_repo(&dir.path().join("nope")),
            Err(RepoError::Missing(_))
        ));
        assert!(matches!(
            check_repo(dir.path()),
            Err(RepoError::NoMetadata(_))
        ));
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(matches!(
            check_repo(&dir.path().join("file")),
            Err(RepoError::NotADirectory(_))
        ));
        std::fs::create_dir(dir.path().join("metadata")).unwrap();
        let root = check_repo(dir.path()).unwrap();
        assert!(root.is_absolute());
    }
}
