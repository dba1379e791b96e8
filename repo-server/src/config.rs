//! Server configuration and the repository-directory checks done before binding.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::tls::TlsSettings;

/// Everything [`crate::Server::bind`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Repository directory containing `metadata/` and (optionally) `targets/`.
    pub repo: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How long in-flight requests may take to finish after shutdown was requested.
    pub shutdown_timeout: Duration,
    /// A connection with no request in progress is closed when it has not delivered a complete
    /// request head this long after connecting or after its previous response was sent.
    /// This covers clients that never send a byte, slow partial headers (HTTP/1), silent or
    /// idle HTTP/2 connections and idle keep-alive connections alike.
    pub header_timeout: Duration,
    /// Most connections served at once; 0 is treated as 1. At the limit the server closes the
    /// longest-idle connection that has no request in progress (never-sent-a-byte ones first)
    /// to make room, or, when every connection is busy, stops accepting until one ends (new
    /// clients wait in the kernel's listen backlog).
    pub max_connections: usize,
    /// HTTPS (and optionally mutual TLS) instead of plain HTTP; `None` serves plain HTTP.
    pub tls: Option<TlsSettings>,
    /// The upload API (`/api/v1/uploads`, see [`crate::upload`]); `None` leaves it out.
    pub upload: Option<crate::upload::UploadSettings>,
    /// Take device status reports (`POST /api/v1/reports`); `None` takes none.
    pub reports: Option<ReportSettings>,
}

/// Where status reports are verified and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    /// The store: a SQLite file path (or `sqlite:PATH`) or a `postgres://` URL.
    pub database: String,
    /// The device CA to verify report certificates with (`--report-ca`); `None` uses the TLS
    /// layer's `--client-ca` (and its CRLs).
    pub report_ca: Option<PathBuf>,
    /// CRL files for `report_ca`.
    pub crls: Vec<PathBuf>,
}

/// Default [`Config::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept back for the listener, the runtime, logging and the like when deriving
/// [`default_max_connections`].
pub const FD_RESERVE: u64 = 64;

/// Upper bound for [`default_max_connections`], so a huge or unlimited descriptor limit does not
/// turn into a memory problem instead.
pub const MAX_DEFAULT_CONNECTIONS: usize = 10_000;

impl Config {
    /// A configuration with the default 10 s shutdown grace period, the default header timeout
    /// ([`DEFAULT_HEADER_TIMEOUT`]) and connection limit ([`default_max_connections`]), serving
    /// plain HTTP.
    pub fn new(repo: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Config {
            repo: repo.into(),
            listen,
            shutdown_timeout: Duration::from_secs(10),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: default_max_connections(),
            tls: None,
            upload: None,
            reports: None,
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process (`None` if it cannot be read; `u64::MAX` if
/// unlimited).
pub fn nofile_soft_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass, which lives for the whole call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return None;
    }
    Some(if limit.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        limit.rlim_cur
    })
}

/// Connections the open-file limit can carry: half of (soft `RLIMIT_NOFILE` minus
/// [`FD_RESERVE`]), because a connection holds its socket and, while a file is being sent, the
/// file too; at least 1, at most [`MAX_DEFAULT_CONNECTIONS`]. 480 for `ulimit -n 1024`; 512 if
/// the limit cannot be read.
pub fn default_max_connections() -> usize {
    nofile_soft_limit().map_or(512, connections_for_fd_limit)
}

fn connections_for_fd_limit(soft: u64) -> usize {
    let n = soft.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(n).map_or(MAX_DEFAULT_CONNECTIONS, |n| {
        n.clamp(1, MAX_DEFAULT_CONNECTIONS)
    })
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

    #[test]
    fn connection_default_follows_the_fd_limit() {
        assert_eq!(connections_for_fd_limit(1024), 480);
        assert_eq!(connections_for_fd_limit(10), 1);
        assert_eq!(connections_for_fd_limit(u64::MAX), MAX_DEFAULT_CONNECTIONS);
        assert!(default_max_connections() >= 1);
    }
}
