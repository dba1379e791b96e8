//! The ceremony's audit log, `REPO/audit/log.jsonl`: append-only, one JSON object a line,
//! each line chained to the one before by its SHA-256, recording who asked for, signed,
//! published or was refused what and when.
//!
//! It lives beside `metadata/` and `targets/`, not in them: servers and CDN copies that
//! publish those two directories do not serve it (it holds no secret, only names and key
//! ids, but clients have no use for it).
//!
//! Entry (one line, compact JSON, fields in this order):
//!
//! ```text
//! {"seq":N,"time":"RFC 3339","event":"request|signature|publish|refused","role":"targets",
//!  "version":5,"request_sha256":"hex"|null,"keyid":"hex"|null,"signer":"name"|null,
//!  ["signed_at":"RFC 3339",] ["reason":"text",] "prev_sha256":"hex"}
//! ```
//!
//! `seq` is the line number (from 1); `prev_sha256` is the SHA-256 of the previous line's
//! bytes (without its newline), 64 zeros on the first line. Changing, removing, inserting or
//! reordering any line but the last breaks the chain at the line after it; the last line and
//! truncation are caught by comparing the head (the SHA-256 of the last line, printed by
//! every write and by `ota-sign audit verify`) with one recorded elsewhere.
//!
//! Appends take an exclusive lock on the file, verify the whole chain (a broken log is never
//! extended), write the new lines in one `write` on an `O_APPEND` descriptor and fsync.
use super::error::{CeremonyError, Result};
use super::request::SigningRequest;
use chrono::{DateTime, DurationRound, Utc};
use ota_formats::hash::sha256_hex;
use ota_fs::mode::{PUBLIC_DIR, PUBLIC_FILE};
use ota_fs::user_file::{self, UserFileError};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The audit directory in the repository directory.
pub const AUDIT_DIR: &str = "audit";
/// The log file in [`AUDIT_DIR`].
pub const AUDIT_FILE: &str = "log.jsonl";
/// `prev_sha256` of the first line.
pub const GENESIS_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Largest log read.
pub const MAX_AUDIT_LEN: u64 = 256 << 20;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A signing request was made.
    Request,
    /// A valid signature was accepted by `combine`.
    Signature,
    /// A request was published.
    Publish,
    /// `combine` refused (see `reason`).
    Refused,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Line number, from 1.
    pub seq: u64,
    /// When it was recorded.
    pub time: DateTime<Utc>,
    /// What happened.
    pub event: Event,
    /// The role of the request.
    pub role: String,
    /// Its version.
    pub version: u64,
    /// The request.
    pub request_sha256: Option<String>,
    /// The key (signature events, refusals about one key).
    pub keyid: Option<String>,
    /// The signer's name as they gave it.
    pub signer: Option<String>,
    /// When the signer signed (their clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<DateTime<Utc>>,
    /// Why (refusals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SHA-256 of the previous line's bytes ([`GENESIS_SHA256`] on the first).
    pub prev_sha256: String,
}

/// An entry to append (the log gives `seq`, `time` and `prev_sha256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// What happened.
    pub event: Event,
    /// The role.
    pub role: String,
    /// The version.
    pub version: u64,
    /// The request.
    pub request_sha256: Option<String>,
    /// The key.
    pub keyid: Option<String>,
    /// The signer's name.
    pub signer: Option<String>,
    /// When the signer signed.
    pub signed_at: Option<DateTime<Utc>>,
    /// Why.
    pub reason: Option<String>,
}

impl NewEntry {
    /// An `event` about `request`, with no key or signer.
    pub fn about(request: &SigningRequest, event: Event) -> Self {
        NewEntry {
            event,
            role: request.role.to_string(),
            version: request.version,
            request_sha256: Some(request.request_sha256.clone()),
            keyid: None,
            signer: None,
            signed_at: None,
            reason: None,
        }
    }
}

/// A verified log.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Its entries, in order.
    pub entries: Vec<Entry>,
    /// SHA-256 of each line.
    pub line_sha256: Vec<String>,
}

impl Chain {
    /// SHA-256 of the last line ([`GENESIS_SHA256`] for an empty log).
    pub fn head(&self) -> &str {
        self.line_sha256
            .last()
            .map(String::as_str)
            .unwrap_or(GENESIS_SHA256)
    }
}

/// Verify the chain of a log's bytes; on failure, the first broken line (from 1) and why.
pub fn verify_bytes(bytes: &[u8]) -> std::result::Result<Chain, (usize, String)> {
    let mut chain = Chain::default();
    if bytes.is_empty() {
        return Ok(chain);
    }
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // After the last newline: nothing, unless the last write was torn or the file cut.
    let tail = lines.pop().unwrap_or_default();
    if !tail.is_empty() {
        return Err((
            lines.len() + 1,
            "the last line is incomplete (a torn write or a truncated file)".into(),
        ));
    }
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let entry: Entry =
            serde_json::from_slice(line).map_err(|e| (n, format!("not an audit entry ({e})")))?;
        if entry.seq != n as u64 {
            return Err((
                n,
                format!(
                    "seq is {}, expected {n} (a line was removed, inserted or moved)",
                    entry.seq
                ),
            ));
        }
        let prev = chain.head();
        if entry.prev_sha256 != prev {
            let why = if n == 1 {
                "prev_sha256 of the first line is not the genesis value (lines before it were removed?)".to_string()
            } else {
                format!(
                    "prev_sha256 does not match the SHA-256 of line {} (line {} was changed, or a line was removed)",
                    n - 1,
                    n - 1
                )
            };
            return Err((n, why));
        }
        chain.line_sha256.push(sha256_hex(line));
        chain.entries.push(entry);
    }
    Ok(chain)
}

/// The audit log of one repository.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The log of the repository in `repo_dir` (`audit/log.jsonl`).
    pub fn of_repo(repo_dir: &Path) -> Self {
        AuditLog {
            path: repo_dir.join(AUDIT_DIR).join(AUDIT_FILE),
        }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn broken(&self, (line, reason): (usize, String)) -> CeremonyError {
        CeremonyError::AuditBroken {
            path: self.path.clone(),
            line,
            reason,
        }
    }

    /// Read and verify the whole chain (an absent log is an empty one). With `head`, also
    /// check that a head recorded earlier is one of the log's lines, so a log cut or
    /// rewritten before that point is detected.
    pub fn verify(&self, head: Option<&str>) -> Result<Chain> {
        let bytes = match user_file::read_optional(&self.path, MAX_AUDIT_LEN) {
            Ok(b) => b.unwrap_or_default(),
            Err(source) => {
                return Err(CeremonyError::AuditUnreadable {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let chain = verify_bytes(&bytes).map_err(|b| self.broken(b))?;
        if let Some(h) = head {
            if !chain.line_sha256.iter().any(|l| l.eq_ignore_ascii_case(h)) {
                return Err(self.broken((
                    chain.entries.len(),
                    format!("no line has the recorded head {h}: the log was cut or rewritten after it was recorded"),
                )));
            }
        }
        Ok(chain)
    }

    /// Append `entries` at `now`, after verifying the chain; returns the new head.
    pub fn append(&self, entries: &[NewEntry], now: DateTime<Utc>) -> Result<String> {
        let write_err = |source| CeremonyError::AuditWrite {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        ota_fs::mode::create_dir_all(dir, PUBLIC_DIR).map_err(write_err)?;
        let created = match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_file() => false,
            Ok(m) => {
                return Err(CeremonyError::AuditUnreadable {
                    path: self.path.clone(),
                    source: UserFileError::NotRegular {
                        path: self.path.clone(),
                        kind: user_file::describe(m.file_type()),
                    },
                })
            }
            Err(_) => true,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(PUBLIC_FILE)
            .open(&self.path)
            .map_err(write_err)?;
        // Held until `file` is closed: appends by two processes do not interleave.
        file.lock().map_err(write_err)?;
        let len = file.metadata().map_err(write_err)?.len();
        if len > MAX_AUDIT_LEN {
            return Err(CeremonyError::AuditUnreadable {
                path: self.path.clone(),
                source: UserFileError::TooLarge {
                    path: self.path.clone(),
                    limit: MAX_AUDIT_LEN,
                },
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        (&file).read_to_end(&mut bytes).map_err(write_err)?;
        let chain = verify_bytes(&bytes).map_err(|b| self.broken(b))?;
        let mut prev = chain.head().to_string();
        let time = now
            .duration_trunc(chrono::Duration::seconds(1))
            .unwrap_or(now);
        let mut out = Vec::new();
        for (seq, e) in (chain.entries.len() as u64 + 1..).zip(entries) {
            let entry = Entry {
                seq,
                time,
                event: e.event,
                role: e.role.clone(),
                version: e.version,
                request_sha256: e.request_sha256.clone(),
                keyid: e.keyid.clone(),
                signer: e.signer.clone(),
                signed_at: e.signed_at,
                reason: e.reason.clone(),
                prev_sha256: prev,
            };
            let line = serde_json::to_vec(&entry).map_err(|source| crate::RepoError::Encode {
                what: "audit entry",
                source,
            })?;
            prev = sha256_hex(&line);
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        file.write_all(&out).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        if created {
            ota_fs::mode::set(&self.path, PUBLIC_FILE).map_err(write_err)?;
            ota_fs::atomic::sync_dir(dir).map_err(write_err)?;
        }
        Ok(prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(event: Event, signer: Option<&str>) -> NewEntry {
        NewEntry {
            event,
            role: "targets".into(),
            version: 2,
            request_sha256: Some("ab".repeat(32)),
            keyid: signer.map(|_| "cd".repeat(32)),
            signer: signer.map(String::from),
            signed_at: None,
            reason: None,
        }
    }

    fn log_with_four() -> (tempfile::TempDir, AuditLog) {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::of_repo(d.path());
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        log.append(&[entry(Event::Request, None)], now).unwrap();
        log.append(
            &[
                entry(Event::Signature, Some("alice")),
                entry(Event::Signature, Some("bob")),
            ],
            now,
        )
        .unwrap();
        log.append(&[entry(Event::Publish, None)], now).unwrap();
        (d, log)
    }

    #[test]
    fn appends_chain_and_verify() {
        let (_d, log) = log_with_four();
        let chain = log.verify(None).unwrap();
        assert_eq!(chain.entries.len(), 4);
        assert_eq!(chain.entries[0].prev_sha256, GENESIS_SHA256);
        assert_eq!(chain.entries[2].signer.as_deref(), Some("bob"));
        let bytes = std::fs::read(log.path()).unwrap();
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        assert_eq!(chain.entries[1].prev_sha256, sha256_hex(lines[0]));
        assert_eq!(chain.head(), sha256_hex(lines[3]));
        // A recorded head: any line's hash is found, another one is not.
        assert!(log.verify(Some(&chain.line_sha256[1])).is_ok());
        assert!(matches!(
            log.verify(Some(&"ee".repeat(32))),
            Err(CeremonyError::AuditBroken { line: 4, .. })
        ));
        assert_eq!(
            ota_fs::mode::of(log.path()).unwrap(),
            Some(PUBLIC_FILE),
            "published mode whatever the umask"
        );
    }

    fn broken_at(log: &AuditLog) -> (usize, String) {
        match log.verify(None) {
            Err(CeremonyError::AuditBroken { line, reason, .. }) => (line, reason),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn a_changed_removed_or_torn_line_is_found_and_never_extended() {
        let (_d, log) = log_with_four();
        let good = std::fs::read_to_string(log.path()).unwrap();
        let now = Utc::now();

        // An edited signer name on line 2: the break shows at line 3.
        std::fs::write(log.path(), good.replacen("alice", "mallory", 1)).unwrap();
        let (line, reason) = broken_at(&log);
        assert_eq!(line, 3, "{reason}");
        assert!(reason.contains("line 2 was changed"), "{reason}");
        // A broken log is not extended.
        assert!(matches!(
            log.append(&[entry(Event::Request, None)], now),
            Err(CeremonyError::AuditBroken { line: 3, .. })
        ));
        assert_eq!(
            std::fs::read_to_string(log.path()).unwrap(),
            good.replacen("alice", "mallory", 1)
        );

        // A removed line.
        let lines: Vec<&str> = good.lines().collect();
        let without: String = [lines[0], lines[2], lines[3]]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(log.path(), without).unwrap();
        assert_eq!(broken_at(&log).0, 2);

        // A torn last line.
        std::fs::write(log.path(), &good[..good.len() - 5]).unwrap();
        let (line, reason) = broken_at(&log);
        assert_eq!(line, 4);
        assert!(reason.contains("incomplete"), "{reason}");

        // Garbage.
        std::fs::write(log.path(), format!("{good}not json\n")).unwrap();
        assert_eq!(broken_at(&log).0, 5);

        std::fs::write(log.path(), &good).unwrap();
        assert_eq!(log.verify(None).unwrap().entries.len(), 4);
    }
}
