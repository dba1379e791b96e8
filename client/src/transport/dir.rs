//! Fetching from a local directory, e.g. a repository copied to removable media.
use super::{FetchStream, Limited, Transport, TransportError};
use percent_encoding::percent_decode_str;
use std::path::{Path, PathBuf};

/// A repository laid out as files under a directory.
///
/// Relative paths are percent-decoded segment by segment (as a web server would), and a
/// segment that decodes to something containing `/`, `\`, NUL, or to `.`/`..` is refused, so
/// role names cannot escape the directory.
///
/// No [`super::TransferBounds`] apply: local files cannot be trickled by a remote server
/// (a slow medium is the operator's own).
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

impl Transport for DirTransport {
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError> {
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
        }
        Ok(Box::new(Limited::new(file, max_len)))
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
}
