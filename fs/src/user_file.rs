//! Reading files a user named on the command line or in a configuration: keys, trusted
//! roots, firmware images, recipient lists, key slips.
//!
//! Such a path may name anything: a FIFO (a read blocks forever), a link to `/dev/zero`
//! (a read never ends), a directory. Only regular files (or links to them) are accepted, and
//! whole-file reads are capped, so a wrong path gives a clear error instead of a hang or an
//! exhausted memory.
//!
//! ```
//! let d = tempfile::tempdir().unwrap();
//! let p = d.path().join("root.json");
//! std::fs::write(&p, b"{}").unwrap();
//! assert_eq!(ota_fs::user_file::read(&p, 1024).unwrap(), b"{}");
//! assert!(ota_fs::user_file::read(&p, 1).is_err());
//! assert!(ota_fs::user_file::read(d.path(), 1024).is_err());
//! ```
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why a user-supplied file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UserFileError {
    /// Nothing exists at the path.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path names something other than a regular file.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The path given.
        path: PathBuf,
        /// What it is ("a directory", "a FIFO", "a character device", ...).
        kind: &'static str,
    },
    /// The file is larger than the cap for its kind.
    #[error("{} is larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// The cap.
        limit: u64,
    },
    /// The file is not UTF-8 text where text was expected.
    #[error("{} is not UTF-8 text", path.display())]
    NotText {
        /// The path given.
        path: PathBuf,
    },
    /// Any other I/O failure (permissions, read errors).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl UserFileError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            UserFileError::NotFound { path }
            | UserFileError::NotRegular { path, .. }
            | UserFileError::TooLarge { path, .. }
            | UserFileError::NotText { path }
            | UserFileError::Io { path, .. } => path,
        }
    }
}

/// What kind of file `ft` is, in words.
pub fn describe(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn io_err(path: &Path, source: io::Error) -> UserFileError {
    if source.kind() == io::ErrorKind::NotFound {
        UserFileError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        UserFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Open `path` for reading if it is a regular file (symbolic links are followed to one).
///
/// The type is checked before opening, because opening a FIFO blocks until a writer comes,
/// and again on the open file, in case the path was swapped in between.
pub fn open(path: &Path) -> Result<File, UserFileError> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    check_regular(path, &meta)?;
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    check_regular(path, &meta)?;
    Ok(file)
}

fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), UserFileError> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(UserFileError::NotRegular {
            path: path.to_path_buf(),
            kind: describe(meta.file_type()),
        })
    }
}

/// Read all of a regular file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, UserFileError> {
    let file = open(path)?;
    let mut out = Vec::new();
    // One byte past the cap tells "exactly at the cap" from "larger" (the file may grow).
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| io_err(path, e))?;
    if out.len() as u64 > limit {
        return Err(UserFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(out)
}

/// Read all of a regular UTF-8 text file of at most `limit` bytes.
pub fn read_to_string(path: &Path, limit: u64) -> Result<String, UserFileError> {
    String::from_utf8(read(path, limit)?).map_err(|_| UserFileError::NotText {
        path: path.to_path_buf(),
    })
}

/// Like [`read`], but a missing file is `Ok(None)`.
pub fn read_optional(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, UserFileError> {
    match read(path, limit) {
        Ok(b) => Ok(Some(b)),
        Err(UserFileError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn refuses_special_files_and_caps_reads() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status();
        if ok.is_ok_and(|s| s.success()) {
            // Would block forever if opened.
            let e = read(&fifo, 10).unwrap_err();
            assert!(
                matches!(e, UserFileError::NotRegular { kind: "a FIFO", .. }),
                "{e}"
            );
        }
        let zero_link = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero_link).unwrap();
        let e = read(&zero_link, 10).unwrap_err();
        assert!(
            matches!(
                e,
                UserFileError::NotRegular {
                    kind: "a character device",
                    ..
                }
            ),
            "{e}"
        );
        let e = read(d.path(), 10).unwrap_err();
        assert!(matches!(
            e,
            UserFileError::NotRegular {
                kind: "a directory",
                ..
            }
        ));
        let e = read(&d.path().join("missing"), 10).unwrap_err();
        assert!(matches!(e, UserFileError::NotFound { .. }));
        assert_eq!(read_optional(&d.path().join("missing"), 10).unwrap(), None);

        let f = d.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read(&f, 10).unwrap(), b"0123456789");
        let e = read(&f, 9).unwrap_err();
        assert!(matches!(e, UserFileError::TooLarge { limit: 9, .. }));
        // A link to a regular file is fine.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(read_to_string(&link, 10).unwrap(), "0123456789");
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_to_string(&f, 10),
            Err(UserFileError::NotText { .. })
        ));
    }
}
