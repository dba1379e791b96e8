//! Target files: find a verified copy already on disk, or download one, checking its length
//! and every listed hash before the file becomes visible.
//!
//! # Resumable downloads
//!
//! A download of `DEST` is written to a partial file beside it, [`partial_path`]
//! (`DEST.part`, mode 0600), described by a sidecar, [`partial_info_path`] (`DEST.part.json`,
//! written atomically; see [`PartialInfo`]): the target's path, signed length and hashes, and
//! the validator (strong `ETag`, `Last-Modified`) of the version the bytes come from. The
//! partial is fsync'd every [`SYNC_EVERY`] bytes and whenever a transfer fails, so a power
//! cut loses little; in between, the write-back of every [`WRITEBACK_EVERY`] bytes is started
//! without waiting, so those fsyncs find little left to write.
//!
//! A later attempt (the same call after a broken transfer, or a later run) whose sidecar
//! names the same target, length and hashes re-hashes the bytes already there and asks for
//! the rest ([`crate::transport::Transport::fetch_range`]: `Range: bytes=N-` with
//! `If-Range`). When the server sends the whole file instead (it ignores ranges, the file
//! changed, the range was refused, another range came back), the partial starts over from
//! byte 0. Never more than the signed length is accepted in total.
//!
//! Within one call a transfer that breaks mid-body (connection reset, body cut short, a
//! stall or a rate below the floor) is resumed at once while it makes progress; after
//! [`MAX_RETRIES_WITHOUT_PROGRESS`] attempts in a row that add nothing the error is returned
//! and the partial is kept for the next run. A time-bound failure ([`TransferBounds`]) is
//! resumed only when its attempt brought at least [`MIN_PROGRESS_AFTER_SLOW`] bytes, so a
//! server that trickles cannot hold the device much longer than the bounds say.
//!
//! The final file appears only once its length and every hash matched (rename of the
//! partial, then a directory fsync). A complete file that fails the check after a resumed
//! transfer (its prefix may be garbage after a power cut) is deleted and downloaded once
//! more from byte 0 in the same call; a file downloaded in one piece from byte 0 that fails
//! it is refused ([`Error::HashMismatch`]) and nothing is kept.
//!
//! [`TransferBounds`]: crate::transport::TransferBounds
use crate::names::{encode_segment, target_url_path};
use crate::transport::{is_too_long, too_slow, TransportError, Validator};
use crate::updater::Updater;
use crate::verified::VerifiedTarget;
use crate::{Error, Result};
use ota_formats::hash::{Hashes, StreamVerifier};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHUNK: usize = 64 * 1024;

/// The partial file of a download is fsync'd each time this many bytes were added (a power
/// cut loses at most this much of a download).
pub const SYNC_EVERY: u64 = 32 * 1024 * 1024;

/// The write-back of the partial file's newest bytes is started (not waited for) each time
/// this many bytes were added: an fsync every 4 MiB cost a 96 MB download 70 ms of waiting on
/// the disk, started write-back between fewer fsyncs keeps the disk busy without the wait.
pub const WRITEBACK_EVERY: u64 = 4 * 1024 * 1024;

/// Attempts in a row that add no byte beyond the furthest point reached before a download
/// gives up for this call (the partial is kept for the next).
pub const MAX_RETRIES_WITHOUT_PROGRESS: u32 = 3;

/// An attempt cut off by a time bound is resumed only if it brought at least this many bytes.
pub const MIN_PROGRESS_AFTER_SLOW: u64 = 64 * 1024;

/// `format` of the sidecar this version writes.
const PARTIAL_FORMAT: &str = "ota-partial-download-1";

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

fn with_suffix(dest: &Path, suffix: &str) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dest.with_file_name(name)
}

/// The partial file of a download to `dest`: `DEST.part`, beside it.
pub fn partial_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part")
}

/// The sidecar of the partial file of a download to `dest`: `DEST.part.json`, beside it.
pub fn partial_info_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part.json")
}

/// The sidecar of a partial download (`DEST.part.json`): which target the bytes of
/// `DEST.part` belong to, and which version of the remote file they come from.
///
/// ```json
/// {"format": "ota-partial-download-1", "target": "fw.bin", "length": 1048576,
///  "hashes": {"sha256": "..."}, "etag": "\"5f3e-1a2b\"", "last_modified": "Sat, ..."}
/// ```
///
/// A partial is resumed only when `format`, `target`, `length` and `hashes` equal those of
/// the target being downloaded; otherwise it is deleted and the download starts at byte 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialInfo {
    /// `ota-partial-download-1`.
    pub format: String,
    /// The target path (as in targets metadata).
    pub target: String,
    /// Its signed length.
    pub length: u64,
    /// Its signed hashes.
    pub hashes: Hashes,
    /// The validator of the remote file the bytes come from.
    #[serde(flatten)]
    pub validator: Validator,
}

impl PartialInfo {
    fn for_target(target: &VerifiedTarget, validator: Validator) -> Self {
        PartialInfo {
            format: PARTIAL_FORMAT.to_string(),
            target: target.path().to_string(),
            length: target.length(),
            hashes: target.hashes().clone(),
            validator,
        }
    }

    fn describes(&self, target: &VerifiedTarget) -> bool {
        self.format == PARTIAL_FORMAT
            && self.target == target.path()
            && self.length == target.length()
            && &self.hashes == target.hashes()
    }
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

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The partial download of one target: the open `DEST.part`, its length and the running
/// hash of its bytes.
struct Partial<'a> {
    target: &'a VerifiedTarget,
    path: PathBuf,
    info_path: PathBuf,
    /// `None` until the first byte range is written (or when a partial was found).
    file: Option<File>,
    /// Bytes in the file, all fed to `verifier`; the file's cursor is here.
    len: u64,
    verifier: StreamVerifier,
    validator: Validator,
    /// Whether the bytes came from more than one response (or an earlier run): a failed
    /// final check then means "download once more from 0", not "refuse".
    spliced: bool,
    /// Bytes written since the last fsync.
    unsynced: u64,
    /// Write-back started of the bytes before `len`.
    writeback: ota_fs::writeback::Progress,
}

impl<'a> Partial<'a> {
    fn verifier(target: &VerifiedTarget) -> Result<StreamVerifier> {
        StreamVerifier::new(target.hashes(), target.length()).map_err(|e| hash_error(target, e))
    }

    /// No partial: the download starts at byte 0.
    fn empty(target: &'a VerifiedTarget, dest: &Path) -> Result<Self> {
        Ok(Partial {
            target,
            path: partial_path(dest),
            info_path: partial_info_path(dest),
            file: None,
            len: 0,
            verifier: Self::verifier(target)?,
            validator: Validator::default(),
            spliced: false,
            unsynced: 0,
            writeback: Default::default(),
        })
    }

    /// The partial left for `dest` by an earlier attempt, its bytes re-hashed, if its sidecar
    /// describes `target`; else the files are removed and the partial is empty.
    fn open(target: &'a VerifiedTarget, dest: &Path) -> Result<Self> {
        let mut part = Self::empty(target, dest)?;
        let info = match std::fs::read(&part.info_path) {
            Ok(bytes) => serde_json::from_slice::<PartialInfo>(&bytes).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&part.info_path, e)),
        };
        let Some(info) = info.filter(|i| i.describes(target)) else {
            if part.path.exists() || part.info_path.exists() {
                tracing::info!(
                    target = target.path(),
                    "partial download is of another target version or undescribed: discarded"
                );
            }
            part.discard()?;
            return Ok(part);
        };
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&part.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                part.discard()?;
                return Ok(part);
            }
            Err(e) => return Err(Error::io(&part.path, e)),
        };
        let on_disk = file.metadata().map_err(|e| Error::io(&part.path, e))?.len();
        if on_disk > target.length() {
            tracing::info!(
                target = target.path(),
                "partial download is longer than the target: discarded"
            );
            drop(file);
            part.discard()?;
            return Ok(part);
        }
        // Re-hash what is there: whatever it holds (garbage after a power cut, too), the
        // final check catches a bad prefix, and a resumed file failing it starts over.
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&part.path, e)),
            };
            part.verifier
                .update(&buf[..n])
                .map_err(|e| hash_error(target, e))?;
            part.len += n as u64;
        }
        file.seek(SeekFrom::Start(part.len))
            .map_err(|e| Error::io(&part.path, e))?;
        tracing::info!(
            target = target.path(),
            bytes = part.len,
            of = target.length(),
            "found a partial download"
        );
        part.file = Some(file);
        part.writeback = ota_fs::writeback::Progress::at(part.len);
        part.validator = info.validator;
        part.spliced = part.len > 0;
        Ok(part)
    }

    /// The validator to resume with, when there is something to resume.
    fn resume_validator(&self) -> Option<&Validator> {
        (self.len > 0 && !self.validator.is_empty()).then_some(&self.validator)
    }

    fn write_info(&self) -> Result<()> {
        let info = PartialInfo::for_target(self.target, self.validator.clone());
        let bytes = serde_json::to_vec(&info).expect("the sidecar serialises");
        ota_fs::atomic::replace(&self.info_path, &bytes, ota_fs::mode::SECRET_FILE)
            .map_err(|e| Error::io(&self.info_path, e))
    }

    /// Start over at byte 0 with bytes of the version `validator` names.
    fn restart(&mut self, validator: Validator) -> Result<()> {
        // Empty the file first, then name the new version: a crash in between leaves an
        // empty partial, never old bytes under a new validator.
        match &mut self.file {
            Some(file) => {
                file.set_len(0).map_err(|e| Error::io(&self.path, e))?;
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io(&self.path, e))?;
            }
            None => {
                let mut options = std::fs::OpenOptions::new();
                options.read(true).write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, ota_fs::mode::SECRET_FILE);
                let file = options
                    .open(&self.path)
                    .map_err(|e| Error::io(&self.path, e))?;
                ota_fs::mode::set(&self.path, ota_fs::mode::SECRET_FILE)
                    .map_err(|e| Error::io(&self.path, e))?;
                self.file = Some(file);
            }
        }
        self.len = 0;
        self.unsynced = 0;
        self.writeback = Default::default();
        self.verifier = Self::verifier(self.target)?;
        self.spliced = false;
        self.validator = validator;
        // Also makes the new file's directory entry durable (the sidecar's rename fsyncs
        // the directory).
        self.write_info()
    }

    /// The server sends the rest of the version we hold: append to it.
    fn resume(&mut self, validator: Validator) -> Result<()> {
        self.spliced = true;
        if validator != self.validator {
            self.validator = validator;
            self.write_info()?;
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.verifier
            .update(bytes)
            .map_err(|e| hash_error(self.target, e))?;
        let file = self.file.as_mut().expect("restart or open made the file");
        file.write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += bytes.len() as u64;
        self.unsynced += bytes.len() as u64;
        self.writeback.wrote(file, bytes.len(), WRITEBACK_EVERY);
        if self.unsynced >= SYNC_EVERY {
            self.sync()?;
        }
        crate::crash_point::reached("download");
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if let Some(file) = &self.file {
            file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        }
        self.unsynced = 0;
        Ok(())
    }

    /// Keep the partial for the next attempt (synced; removed if it holds nothing) and
    /// return `err`.
    fn keep(&mut self, err: Error) -> Error {
        let kept = if self.len == 0 {
            self.discard()
        } else {
            self.sync()
        };
        if let Err(e) = kept {
            tracing::warn!("keeping the partial download: {e}");
        }
        if self.len > 0 {
            tracing::info!(
                target = self.target.path(),
                bytes = self.len,
                of = self.target.length(),
                partial = %self.path.display(),
                "download interrupted; the partial download is kept to resume from"
            );
        }
        err
    }

    /// Remove the partial and its sidecar; what follows starts at byte 0.
    fn discard(&mut self) -> Result<()> {
        self.file = None;
        self.len = 0;
        self.unsynced = 0;
        self.writeback = Default::default();
        self.spliced = false;
        self.validator = Validator::default();
        self.verifier = Self::verifier(self.target)?;
        remove_if_present(&self.path)?;
        remove_if_present(&self.info_path)
    }

    /// Check the length and every hash of what the partial holds.
    fn check(&mut self) -> std::result::Result<(), ota_formats::Error> {
        let fresh = StreamVerifier::new(self.target.hashes(), self.target.length())?;
        std::mem::replace(&mut self.verifier, fresh).finish()
    }

    /// Make the checked partial `dest`: fsync, rename, fsync the directory, drop the sidecar.
    fn commit(mut self, dest: &Path) -> Result<()> {
        let file = self.file.take().expect("a checked partial has a file");
        file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        drop(file);
        std::fs::rename(&self.path, dest).map_err(|e| Error::io(dest, e))?;
        let dir = ota_fs::atomic::parent(dest).map_err(|e| Error::io(dest, e))?;
        ota_fs::atomic::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        // After the rename: a crash before it keeps a complete, described partial.
        remove_if_present(&self.info_path)
    }
}

/// How one transfer ended.
enum Ended {
    /// The stream ended (the file may still be short).
    Eof,
    /// Reading failed.
    Read(std::io::Error),
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
    /// Resumes a partial download left there (see the [module](self) documentation).
    pub fn download_target(&self, target: &VerifiedTarget, dir: &Path) -> Result<PathBuf> {
        self.download_target_counted(target, dir)
            .map(|(path, _)| path)
    }

    /// [`Updater::download_target`], also returning the number of bytes transferred by this
    /// call: less than the target's length when a partial download was resumed (0 when it was
    /// already complete), more when a transfer had to start over.
    pub fn download_target_counted(
        &self,
        target: &VerifiedTarget,
        dir: &Path,
    ) -> Result<(PathBuf, u64)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = target_file_in(dir, target);
        let transferred = self.download_target_to_counted(target, &path)?;
        Ok((path, transferred))
    }

    /// Download `target` to exactly `dest`. The file appears only once its length and every
    /// listed hash matched; on failure an existing `dest` is left untouched. A download that
    /// breaks leaves its partial file (`DEST.part`, see [`partial_path`]) for the next call
    /// to resume; a refused file (wrong hash, too long) leaves nothing.
    pub fn download_target_to(&self, target: &VerifiedTarget, dest: &Path) -> Result<()> {
        self.download_target_to_counted(target, dest).map(|_| ())
    }

    /// [`Updater::download_target_to`], returning the number of bytes transferred by this call.
    pub fn download_target_to_counted(&self, target: &VerifiedTarget, dest: &Path) -> Result<u64> {
        let length = target.length();
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
        let too_long = || Error::LengthExceeded {
            what: target.path().to_string(),
            limit: length,
        };

        let mut part = Partial::open(target, dest)?;
        let mut transferred = 0u64;
        // Whether the one download from byte 0 after a resumed file failed its check was made.
        let mut redone = false;
        // The furthest the partial got in this call, and attempts in a row that did not pass it.
        let mut furthest = part.len;
        let mut stuck = 0u32;
        let mut check_now = part.len == length;
        let mut buf = vec![0u8; CHUNK];
        loop {
            if check_now {
                check_now = false;
                match part.check() {
                    Ok(()) => {
                        part.commit(dest)?;
                        tracing::debug!(
                            target = target.path(),
                            dest = %dest.display(),
                            transferred,
                            "target downloaded"
                        );
                        return Ok(transferred);
                    }
                    Err(e) if part.spliced && !redone => {
                        tracing::warn!(
                            target = target.path(),
                            "resumed download fails its check ({e}): downloading it from byte 0"
                        );
                        part.discard()?;
                        redone = true;
                        furthest = 0;
                        stuck = 0;
                    }
                    Err(e) => {
                        part.discard()?;
                        return Err(hash_error(target, e));
                    }
                }
            }

            let offset = part.len;
            let fetched =
                match self
                    .targets
                    .fetch_range(&relative, offset, part.resume_validator(), length)
                {
                    Ok(f) => f,
                    Err(TransportError::TooLarge { .. }) => {
                        part.discard()?;
                        return Err(too_long());
                    }
                    Err(other) => return Err(part.keep(Error::Transport(other))),
                };
            let mut stream = fetched.stream;
            if fetched.offset == offset && offset > 0 {
                tracing::info!(target = target.path(), offset, "resuming download");
                if let Err(e) = part.resume(fetched.validator) {
                    return Err(part.keep(e));
                }
            } else if fetched.offset == 0 {
                if let Err(e) = part.restart(fetched.validator) {
                    return Err(part.keep(e));
                }
            } else {
                let reason = format!(
                    "the transport resumed at byte {} instead of {offset}",
                    fetched.offset
                );
                return Err(part.keep(Error::Transport(TransportError::Other { location, reason })));
            }

            let before = part.len;
            // Whole chunks are written (only the last may be short), so the number of crash
            // points of a transfer depends on its bytes, not on how the network split them.
            let mut filled = 0;
            let ended = loop {
                let stop = loop {
                    if filled == buf.len() {
                        break None;
                    }
                    match stream.read(&mut buf[filled..]) {
                        Ok(0) => break Some(Ended::Eof),
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => break Some(Ended::Read(e)),
                    }
                };
                if filled > 0 {
                    transferred += filled as u64;
                    if let Err(e) = part.append(&buf[..filled]) {
                        if matches!(e, Error::LengthExceeded { .. }) {
                            part.discard()?;
                            return Err(e);
                        }
                        return Err(part.keep(e));
                    }
                    filled = 0;
                }
                if let Some(ended) = stop {
                    break ended;
                }
            };
            drop(stream);
            let e = match ended {
                // The whole response arrived: check it (a short file is refused like a wrong
                // one; a body cut short with a known length is a read error instead).
                Ended::Eof => {
                    check_now = true;
                    continue;
                }
                Ended::Read(e) if is_too_long(&e) => {
                    part.discard()?;
                    return Err(too_long());
                }
                Ended::Read(e) => e,
            };

            if part.len == length {
                // Everything arrived before the error (a broken chunked trailer): check it.
                check_now = true;
                continue;
            }
            // A transfer broke mid-body: resume it while it makes progress.
            let got = part.len - before;
            if part.len > furthest {
                furthest = part.len;
                stuck = 0;
            } else {
                stuck += 1;
            }
            let slow = too_slow(&e).is_some();
            let error =
                Error::Transport(crate::transport::read_error(location.clone(), length, &e));
            if stuck > MAX_RETRIES_WITHOUT_PROGRESS || (slow && got < MIN_PROGRESS_AFTER_SLOW) {
                return Err(part.keep(error));
            }
            if let Err(e) = part.sync() {
                return Err(part.keep(e));
            }
            tracing::warn!(
                target = target.path(),
                at = part.len,
                of = length,
                "{error}; resuming"
            );
            if stuck > 0 {
                std::thread::sleep(Duration::from_millis(250) * stuck);
            }
        }
    }
}
