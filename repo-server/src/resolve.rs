//! Maps a request path to a regular file inside the repository, refusing everything else.
//!
//! Two stages: [`parse`] is pure and rejects malformed or traversing paths; [`open`] touches the
//! file system and makes sure the file it opens is a regular file whose real location (after
//! following symlinks) is still inside the served tree.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// Which of the two served trees a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// `/metadata/<file>` → `DIR/metadata/<file>` (flat).
    Metadata,
    /// `/targets/<path>` → `DIR/targets/<path>` (may be nested).
    Targets,
}

impl Tree {
    fn dir_name(self) -> &'static str {
        match self {
            Tree::Metadata => "metadata",
            Tree::Targets => "targets",
        }
    }
}

/// A validated request path: decoded once, every segment a plain file or directory name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    /// The tree addressed.
    pub tree: Tree,
    /// Decoded path segments; none is empty, `.`, `..`, or contains `/`, `\` or NUL.
    pub segments: Vec<String>,
}

impl RequestPath {
    /// The last segment, i.e. the literal file name on disk.
    pub fn file_name(&self) -> &str {
        self.segments.last().map(String::as_str).unwrap_or("")
    }

    /// `tree/seg/seg…`: unique per file, as no segment contains `/`.
    pub(crate) fn key(&self) -> String {
        let mut key = String::from(self.tree.dir_name());
        for s in &self.segments {
            key.push('/');
            key.push_str(s);
        }
        key
    }

    /// The path as requested below `root`, symlinks not resolved.
    pub(crate) fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.join(self.tree.dir_name());
        p.extend(&self.segments);
        p
    }
}

/// Why a request path was refused before touching the file system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Well-formed but outside `/metadata/` and `/targets/` (or nested inside `/metadata/`).
    #[error("no such resource")]
    NotFound,
    /// Traversal attempt or otherwise unusable path; answered with 400.
    #[error("malformed path: {0}")]
    Malformed(&'static str),
}

/// Validates and decodes the path component of a request URI.
///
/// Percent-encoding is decoded exactly once per segment, so `%252F` names a file containing the
/// literal characters `%2F` (how TUF stores delegated role names on disk), while `%2F`, `%2e%2e`
/// and friends decode to characters that are refused.
pub fn parse(raw: &str) -> Result<RequestPath, PathError> {
    // Checked on the raw form too: some clients treat `\` as a separator before we ever see it.
    if raw.contains('\\') {
        return Err(PathError::Malformed("backslash in path"));
    }
    let (tree, rest) = if let Some(rest) = raw.strip_prefix("/metadata/") {
        (Tree::Metadata, rest)
    } else if let Some(rest) = raw.strip_prefix("/targets/") {
        (Tree::Targets, rest)
    } else {
        // Still refuse traversal loudly even outside the two trees.
        if raw.split('/').any(|s| s == ".." || s == ".") || !raw.starts_with('/') {
            return Err(PathError::Malformed("dot segment in path"));
        }
        return Err(PathError::NotFound);
    };
    let mut segments = Vec::new();
    for raw_segment in rest.split('/') {
        let segment = percent_decode_str(raw_segment)
            .decode_utf8()
            .map_err(|_| PathError::Malformed("path is not UTF-8"))?;
        match segment.as_ref() {
            "" => return Err(PathError::Malformed("empty path segment")),
            "." | ".." => return Err(PathError::Malformed("dot segment in path")),
            s if s.contains('/') => return Err(PathError::Malformed("encoded slash in path")),
            s if s.contains('\\') => return Err(PathError::Malformed("backslash in path")),
            s if s.contains('\0') => return Err(PathError::Malformed("NUL in path")),
            s => segments.push(s.to_owned()),
        }
    }
    if tree == Tree::Metadata && segments.len() != 1 {
        return Err(PathError::NotFound);
    }
    Ok(RequestPath { tree, segments })
}

/// An opened regular file and the metadata of exactly that open file.
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file, positioned at 0.
    pub file: File,
    /// `fstat` of `file` (not of the path, so it cannot describe a different file).
    pub meta: Metadata,
    /// Canonical path that was opened (for logs).
    pub path: PathBuf,
}

/// Why [`open`] did not produce a file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Missing, not a regular file, or resolving outside the tree; answered with 404.
    #[error("not found")]
    NotFound,
    /// Unexpected I/O failure; answered with 500.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Opens the file `req` names below the canonical repository root `root`. Blocking; call it from
/// a blocking-capable thread.
pub fn open(root: &Path, req: &RequestPath) -> Result<OpenedFile, OpenError> {
    // The tree is resolved per request so `targets/` may be created, or be a symlink to another
    // volume, without restarting; whatever it points to is the boundary requests may not leave.
    let base = canonicalize_or_not_found(&root.join(req.tree.dir_name()))?;
    let mut candidate = base.clone();
    candidate.extend(&req.segments);
    let real = canonicalize_or_not_found(&candidate)?;
    if !real.starts_with(&base) {
        tracing::warn!(requested = %candidate.display(), resolved = %real.display(), "refusing symlink that leaves the repository");
        return Err(OpenError::NotFound);
    }
    // lstat first so FIFOs and devices are never opened (opening a FIFO could block forever).
    let lmeta = std::fs::symlink_metadata(&real).map_err(not_found_or_io)?;
    if !lmeta.file_type().is_file() {
        return Err(OpenError::NotFound);
    }
    // `real` has no symlinks left; O_NOFOLLOW makes a last-moment swap of the final component to a
    // symlink fail instead of being followed, and O_NONBLOCK keeps a swapped-in FIFO from blocking.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .map_err(not_found_or_io)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotFound);
    }
    Ok(OpenedFile {
        file,
        meta,
        path: real,
    })
}

fn canonicalize_or_not_found(path: &Path) -> Result<PathBuf, OpenError> {
    std::fs::canonicalize(path).map_err(not_found_or_io)
}

/// Errors that only say "this path does not lead to a servable file" become 404; the rest are 500.
fn not_found_or_io(e: io::Error) -> OpenError {
    use io::ErrorKind::*;
    match e.kind() {
        NotFound | NotADirectory | PermissionDenied | IsADirectory => OpenError::NotFound,
        // ELOOP: symlink loop or O_NOFOLLOW hitting a symlink.
        _ if e.raw_os_error() == Some(libc::ELOOP) => OpenError::NotFound,
        _ => OpenError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(r: Result<RequestPath, PathError>) -> Vec<String> {
        r.unwrap().segments
    }

    #[test]
    fn decodes_exactly_once() {
        assert_eq!(
            segs(parse("/metadata/4.role%252Fname.json")),
            vec!["4.role%2Fname.json"]
        );
        assert_eq!(segs(parse("/targets/a/b%20c.bin")), vec!["a", "b c.bin"]);
        assert_eq!(parse("/targets/x").unwrap().tree, Tree::Targets);
    }

    #[test]
    fn refuses_traversal_in_every_spelling() {
        for p in [
            "/targets/../secret",
            "/targets/a/../../secret",
            "/targets/%2e%2e/secret",
            "/targets/%2E%2E/secret",
            "/targets/.%2e/secret",
            "/targets/a%2F..%2F..%2Fsecret",
            "/targets/%2Fetc%2Fpasswd",
            "/targets//etc/passwd",
            "/targets/..\\secret",
            "/targets/a%5C..%5Csecret",
            "/targets/a%00b",
            "/targets/./x",
            "/targets/",
            "/metadata/..",
            "/../etc/passwd",
            "/targets/%ff",
        ] {
            assert!(
                matches!(parse(p), Err(PathError::Malformed(_))),
                "{p} should be malformed"
            );
        }
    }

    #[test]
    fn unknown_prefixes_and_nested_metadata_are_not_found() {
        for p in [
            "/",
            "/metadata",
            "/keys/x",
            "/metadata/a/b.json",
            "/targetsx/a",
        ] {
            assert_eq!(parse(p), Err(PathError::NotFound), "{p}");
        }
    }
}
