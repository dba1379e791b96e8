//! Target files: find a verified copy already on disk, or download one, checking its length
//! and every listed hash before the file becomes visible.
use crate::names::{encode_segment, target_url_path};
use crate::transport::is_too_long;
use crate::updater::Updater;
use crate::verified::VerifiedTarget;
use crate::{Error, Result};
use ota_formats::hash::StreamVerifier;
use ota_fs::atomic::PendingFile;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 64 * 1024;

fn hash_error(target: &VerifiedTarget, source: ota_formats::Error) -> Error {
    match source {
        ota_formats::Error::LengthMismatch { expected, actual } if actual > expected => {
            Error::LengthExceeded {
                what: target.path().to_string(),
                limit: expected,
            }
        }
        source => Error::HashMismatch {
            what: target.path().to_string(),
            source,
        },
    }
}

/// Where a target is stored inside download directory `dir`: its path percent-encoded into
/// one flat file name, so the same target always lands in the same file.
pub fn target_file_in(dir: &Path, target: &VerifiedTarget) -> PathBuf {
    dir.join(encode_segment(target.path()))
}

/// Whether the file at `path` has the target's length and hashes.
pub fn file_matches(path: &Path, target: &VerifiedTarget) -> Result<bool> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut verifier =
        StreamVerifier::new(target.hashes(), target.length()).map_err(|e| hash_error(target, e))?;
    if verifier
        .update_from(&mut file)
        .map_err(|e| Error::io(path, e))?
        .is_err()
    {
        return Ok(false);
    }
    Ok(verifier.finish().is_ok())
}

impl Updater {
    /// The path of a verified copy of `target` in download directory `dir`, if there is one.
    pub fn find_cached_target(
        &self,
        target: &VerifiedTarget,
        dir: &Path,
    ) -> Result<Option<PathBuf>> {
        let path = target_file_in(dir, target);
        Ok(file_matches(&path, target)?.then_some(path))
    }

    /// Download `target` into directory `dir` (see [`target_file_in`]) and return its path.
    pub fn download_target(&self, target: &VerifiedTarget, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = target_file_in(dir, target);
        self.download_target_to(target, &path)?;
        Ok(path)
    }

    /// Download `target` to exactly `dest`. The file appears only once its length and every
    /// listed hash matched; on failure an existing `dest` is left untouched and no temp file
    /// remains.
    pub fn download_target_to(&self, target: &VerifiedTarget, dest: &Path) -> Result<()> {
        let mut verifier = StreamVerifier::new(target.hashes(), target.length())
            .map_err(|e| hash_error(target, e))?;
        let prefix = if self.trusted.root().consistent() && self.prefix_targets_with_hash {
            // Prefer sha256 (what most repositories name files by), else any listed hash.
            target
                .hashes()
                .get("sha256")
                .or_else(|| target.hashes().values().next())
                .map(String::as_str)
        } else {
            None
        };
        let relative = target_url_path(target.path(), prefix);
        let location = self.targets.location(&relative);
        let mut stream = self
            .targets
            .fetch(&relative, target.length())
            .map_err(|e| match e {
                crate::transport::TransportError::TooLarge { limit, .. } => Error::LengthExceeded {
                    what: target.path().to_string(),
                    limit,
                },
                other => Error::Transport(other),
            })?;
        let mut pending =
            PendingFile::new(dest, ota_fs::mode::SECRET_FILE).map_err(|e| Error::io(dest, e))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if is_too_long(&e) => {
                    return Err(Error::LengthExceeded {
                        what: target.path().to_string(),
                        limit: target.length(),
                    })
                }
                Err(e) => {
                    // Too slow, cut off, reset: one line naming the URL that failed.
                    return Err(Error::Transport(crate::transport::read_error(
                        location,
                        target.length(),
                        &e,
                    )));
                }
            };
            verifier
                .update(&buf[..n])
                .map_err(|e| hash_error(target, e))?;
            pending
                .write_all(&buf[..n])
                .map_err(|e| Error::io(dest, e))?;
        }
        verifier.finish().map_err(|e| hash_error(target, e))?;
        pending.commit().map_err(|e| Error::io(dest, e))?;
        tracing::debug!(target = target.path(), dest = %dest.display(), "target downloaded");
        Ok(())
    }
}
