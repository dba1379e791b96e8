//! Fetching from a local directory, e.g. a repository copied to removable media.
use super::{FetchStream, Limited, RangedFetch, Transport, TransportError, Validator};
use percent_encoding::percent_decode_str;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A repository laid out as files under a directory.
///
/// Relative paths are percent-decoded segment by segment (as a web server would), and a
/// segment that decodes to something containing `/`, `\`, NUL, or to `.`/`..` is refused, so
/// role names cannot escape the directory.
///
/// No [`super::TransferBounds`] apply: local files cannot be trickled by a remote server
/// (a slow medium is the operator's own).
///
/// [`Transport::fetch_range`] seeks. Its validator is an ETag made of the file's length and
/// modification time (`"LEN-MTIME"` in hex, as nginx makes them), so a file replaced on the
/// medium is read again from byte 0.
pub struct DirTransport {
    base: PathBuf,
}

impl DirTransport {
    /// A transport for files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirTransport { base: dir.into() }
    }

    fn resolve(&self, relative: &str) -> Result<PathBuf, TransportError> {
        let mut path = self.base.clone();
        for seg in relative.split('/') {
            let decoded =
                percent_decode_str(seg)
                    .decode_utf8()
                    .map_err(|_| TransportError::NotFound {
                        location: self.location(relative),
                    })?;
            if decoded.is_empty()
                || decoded == "."
                || decoded == ".."
                || decoded.contains(['/', '\\', '\0'])
            {
                return Err(TransportError::NotFound {
                    location: self.location(relative),
                });
            }
            path.push(Path::new(decoded.as_ref()));
        }
        Ok(path)
    }
}

impl DirTransport {
    /// The open file of `relative`, no larger than `max_len`, its validator and location.
    fn open(
        &self,
        relative: &str,
        max_len: u64,
    ) -> Result<(std::fs::File, Validator, String), TransportError> {
        let path = self.resolve(relative)?;
        let location = path.display().to_string();
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TransportError::NotFound {
                location: location.clone(),
            },
            _ => TransportError::Other {
                location: location.clone(),
                reason: e.to_string(),
            },
        })?;
        let mut validator = Validator::default();
        if let Ok(meta) = file.metadata() {
            if !meta.is_file() {
                return Err(TransportError::NotFound { location });
            }
            if meta.len() > max_len {
                return Err(TransportError::TooLarge {
                    location,
                    limit: max_len,
                });
            }
            if let Ok(mtime) = meta.modified() {
                let nanos = mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                validator.etag = Some(format!("\"{:x}-{nanos:x}\"", meta.len()));
            }
        }
        Ok((file, validator, location))
    }
}

impl Transport for DirTransport {
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError> {
        let (file, _, _) = self.open(relative, max_len)?;
        Ok(Box::new(Limited::new(file, max_len)))
    }

    fn fetch_range(
        &self,
        relative: &str,
        offset: u64,
        validator: Option<&Validator>,
        max_len: u64,
    ) -> Result<RangedFetch, TransportError> {
        let (mut file, current, location) = self.open(relative, max_len)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        // Without a validator the caller's final hash check is what catches a change.
        let same = match validator.and_then(|v| v.etag.as_ref()) {
            Some(etag) => current.etag.as_ref() == Some(etag),
            None => true,
        };
        if offset > 0 && offset < len && same {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| TransportError::Other {
                    location,
                    reason: e.to_string(),
                })?;
            return Ok(RangedFetch {
                stream: Box::new(Limited::new(file, max_len - offset)),
                offset,
                validator: current,
            });
        }
        Ok(RangedFetch {
            stream: Box::new(Limited::new(file, max_len)),
            offset: 0,
            validator: current,
        })
    }

    fn fetch_slice(
        &self,
        relative: &str,
        offset: u64,
        len: u64,
        file_len: u64,
    ) -> Result<Vec<u8>, TransportError> {
        let (mut file, _, location) = self.open(relative, file_len)?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| TransportError::Other {
                location: location.clone(),
                reason: e.to_string(),
            })?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, len), &mut out).map_err(|e| {
            TransportError::Other {
                location,
                reason: e.to_string(),
            }
        })?;
        Ok(out)
    }

    fn location(&self, relative: &str) -> String {
        self.base.join(relative).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::fetch_bytes;

    #[test]
    fn reads_decoded_names_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.a b.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("big.json"), b"0123456789").unwrap();
        let t = DirTransport::new(dir.path());
        assert_eq!(fetch_bytes(&t, "1.a%20b.json", 10).unwrap(), b"{}");
        assert!(matches!(
            fetch_bytes(&t, "missing.json", 10),
            Err(TransportError::NotFound { .. })
        ));
        assert!(matches!(
            fetch_bytes(&t, "%2E%2E/etc", 10),
            Err(TransportError::NotFound { .. })
        ));
        assert!(matches!(
            fetch_bytes(&t, "1.%2Fx.json", 10),
            Err(TransportError::NotFound { .. })
        ));
        assert!(matches!(
            fetch_bytes(&t, "big.json", 5),
            Err(TransportError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_slice_is_what_the_file_holds_there_and_never_more() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.slipbundle"), b"0123456789").unwrap();
        let t = DirTransport::new(dir.path());
        assert_eq!(t.fetch_slice("b.slipbundle", 2, 3, 10).unwrap(), b"234");
        // The file ends early: what is there (the caller refuses the short block).
        assert_eq!(t.fetch_slice("b.slipbundle", 8, 5, 10).unwrap(), b"89");
        assert_eq!(t.fetch_slice("b.slipbundle", 20, 5, 10).unwrap(), b"");
        // Larger than the index says the whole file is.
        assert!(matches!(
            t.fetch_slice("b.slipbundle", 0, 3, 9),
            Err(TransportError::TooLarge { limit: 9, .. })
        ));
        // The default implementation (a transport that cannot seek) gives the same.
        struct Plain<'a>(&'a DirTransport);
        impl Transport for Plain<'_> {
            fn fetch(&self, r: &str, max: u64) -> Result<FetchStream, TransportError> {
                self.0.fetch(r, max)
            }
            fn location(&self, r: &str) -> String {
                self.0.location(r)
            }
        }
        let p = Plain(&t);
        assert_eq!(p.fetch_slice("b.slipbundle", 2, 3, 10).unwrap(), b"234");
        assert_eq!(p.fetch_slice("b.slipbundle", 8, 5, 10).unwrap(), b"89");
        assert!(matches!(
            p.fetch_slice("b.slipbundle", 0, 3, 9),
            Err(TransportError::TooLarge { .. })
        ));
    }

    #[test]
    fn ranged_fetch_seeks_and_starts_over_on_another_version() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fw.bin"), b"0123456789").unwrap();
        let t = DirTransport::new(dir.path());
        let read = |r: RangedFetch| {
            let mut out = Vec::new();
            let mut s = r.stream;
            s.read_to_end(&mut out).map(|_| out)
        };
        let first = t.fetch_range("fw.bin", 0, None, 10).unwrap();
        assert_eq!(first.offset, 0);
        let v = first.validator.clone();
        assert!(v.etag.is_some());
        assert_eq!(read(first).unwrap(), b"0123456789");
        let rest = t.fetch_range("fw.bin", 4, Some(&v), 10).unwrap();
        assert_eq!(rest.offset, 4);
        assert_eq!(read(rest).unwrap(), b"456789");
        // Past the end: the whole file.
        assert_eq!(t.fetch_range("fw.bin", 10, Some(&v), 10).unwrap().offset, 0);
        // Another version: the whole file.
        let other = Validator {
            etag: Some("\"other\"".into()),
            last_modified: None,
        };
        let whole = t.fetch_range("fw.bin", 4, Some(&other), 10).unwrap();
        assert_eq!(whole.offset, 0);
        assert_eq!(read(whole).unwrap(), b"0123456789");
        // The cap counts from the start of the file.
        let capped = t.fetch_range("fw.bin", 4, None, 10).unwrap();
        assert_eq!(read(capped).unwrap().len(), 6);
        assert!(matches!(
            t.fetch_range("fw.bin", 4, None, 9),
            Err(TransportError::TooLarge { .. })
        ));
    }
}
