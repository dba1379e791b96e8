//! Loading a repository directory and checking it the way a client would.
//!
//! Layout (consistent snapshots):
//!
//! ```text
//! DIR/ota-repo.json                 signer policy (no key material)
//! DIR/ota-staged.json               targets added with --no-publish, not yet signed
//! DIR/metadata/1.root.json          every root version, and root.json = the latest
//! DIR/metadata/N.targets.json       versioned targets
//! DIR/metadata/N.snapshot.json      versioned snapshot
//! DIR/metadata/timestamp.json       the single commit point
//! DIR/targets/<sha256>.<name>       target files
//! ```
use crate::config::{RepoConfig, CONFIG_FILE};
use crate::{RepoError, Result};
use ota_formats::hash::{sha256_hex, Hashes};
use ota_formats::metadata::{
    MetaFile, RawMetadata, RoleType, Root, Signed, Snapshot, Targets, Timestamp,
};
use ota_fs::user_file::{self, UserFileError};
use std::path::{Path, PathBuf};

/// Name of the metadata directory.
pub const METADATA_DIR: &str = "metadata";
/// Name of the target files directory.
pub const TARGETS_DIR: &str = "targets";
/// Unsigned targets content staged by `add --no-publish`, signed by the next publish.
pub const STAGED_FILE: &str = "ota-staged.json";

/// A loaded, verified repository.
#[derive(Debug, Clone)]
pub struct Repository {
    /// The repository directory.
    pub dir: PathBuf,
    /// Signer policy.
    pub config: RepoConfig,
    /// Current root.
    pub root: Signed<Root>,
    /// Targets listed by the current snapshot.
    pub targets: Signed<Targets>,
    /// Snapshot listed by the timestamp.
    pub snapshot: Signed<Snapshot>,
    /// Current timestamp.
    pub timestamp: Signed<Timestamp>,
    /// Staged (unsigned, unpublished) targets content, if any.
    pub staged: Option<Targets>,
    /// With online roles: a targets version signed offline and not yet listed by the
    /// snapshot (then [`Repository::targets`] is that version), with its snapshot entry.
    pub pending_targets: Option<MetaFile>,
}

/// Largest `ota-repo.json` read.
pub const MAX_CONFIG_LEN: u64 = 1 << 20;
/// Largest metadata file (and `ota-staged.json`) read: far above what clients accept
/// (32 MiB by default), so an oversized repository can still be loaded and repaired.
pub const MAX_METADATA_LEN: u64 = 256 << 20;

/// A repository file that is missing, not a regular file, too large or unreadable.
fn unreadable(path: &Path) -> impl FnOnce(UserFileError) -> RepoError + '_ {
    move |source| RepoError::Unreadable {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> RepoError {
    RepoError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The `snapshot`/`timestamp` entry describing `bytes` of metadata at `version`.
pub fn meta_entry(version: u64, bytes: &[u8]) -> MetaFile {
    let mut m = MetaFile::new(version);
    m.length = Some(bytes.len() as u64);
    m.hashes = Some(Hashes::from([("sha256".to_string(), sha256_hex(bytes))]));
    m
}

/// Where a target's file lives: `targets/<dir>/<sha256>.<basename>` (the specification's
/// consistent-snapshot name).
pub fn target_file_path(repo_dir: &Path, target_path: &str, sha256: &str) -> PathBuf {
    let (dir, base) = match target_path.rsplit_once('/') {
        Some((d, b)) => (Some(d), b),
        None => (None, target_path),
    };
    let mut p = repo_dir.join(TARGETS_DIR);
    if let Some(d) = dir {
        p.push(d);
    }
    p.join(format!("{sha256}.{base}"))
}

impl Repository {
    /// Whether `dir` already holds (part of) a repository.
    pub fn exists(dir: &Path) -> bool {
        dir.join(CONFIG_FILE).exists()
            || dir.join(METADATA_DIR).exists()
            || dir.join(TARGETS_DIR).exists()
    }

    /// The metadata directory.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join(METADATA_DIR)
    }

    /// Load and verify every role, the way a client would, plus the presence and length of
    /// every target file.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let cfg_bytes = match user_file::read(&cfg_path, MAX_CONFIG_LEN) {
            Ok(b) => b,
            Err(UserFileError::NotFound { .. }) => {
                let dir = dir.to_path_buf();
                return Err(if dir.is_dir() {
                    RepoError::NotARepository { dir }
                } else {
                    RepoError::NoRepository { dir }
                });
            }
            Err(e) => return Err(unreadable(&cfg_path)(e)),
        };
        let config = RepoConfig::from_bytes(&cfg_bytes)?;
        let md = dir.join(METADATA_DIR);

        let (root, root_bytes) = read_root(&md.join("root.json"))?;
        let versioned = md.join(format!("{}.root.json", root.signed.version));
        match user_file::read(&versioned, MAX_METADATA_LEN) {
            Ok(b) if b == root_bytes => {}
            Ok(_) => return Err(RepoError::RootCopyDiffers { path: versioned }),
            Err(e) => return Err(unreadable(&versioned)(e)),
        }
        let ts_path = md.join("timestamp.json");
        let (timestamp, _) = read_role::<Timestamp>(&ts_path, &root.signed)?;
        let snap_meta = timestamp
            .signed
            .snapshot_meta()
            .map_err(|e| corrupt(&ts_path, e))?
            .clone();
        let snap_path = md.join(format!("{}.snapshot.json", snap_meta.version));
        let (snapshot, snap_bytes) = read_role::<Snapshot>(&snap_path, &root.signed)?;
        check_meta(&snap_path, &snap_meta, snapshot.signed.version, &snap_bytes)?;
        let Some(targets_meta) = snapshot.signed.meta.get("targets.json").cloned() else {
            return Err(RepoError::NotListed {
                path: snap_path,
                entry: "targets.json".into(),
            });
        };
        let targets_path = md.join(format!("{}.targets.json", targets_meta.version));
        let (targets, targets_bytes) = read_role::<Targets>(&targets_path, &root.signed)?;
        check_meta(
            &targets_path,
            &targets_meta,
            targets.signed.version,
            &targets_bytes,
        )?;

        if !dir.join(TARGETS_DIR).is_dir() {
            return Err(RepoError::DirMissing {
                path: dir.join(TARGETS_DIR),
            });
        }
        let (targets, pending_targets) = if config.online_roles {
            match newest_pending_targets(&md, &root.signed, targets.signed.version)? {
                Some((newer, meta)) => (newer, Some(meta)),
                None => (targets, None),
            }
        } else {
            (targets, None)
        };
        check_target_files(dir, &targets.signed)?;
        let staged_path = dir.join(STAGED_FILE);
        let staged = match user_file::read_optional(&staged_path, MAX_METADATA_LEN) {
            Ok(Some(b)) => {
                let t: Targets =
                    serde_json::from_slice(&b).map_err(|source| RepoError::StagedCorrupt {
                        path: staged_path.clone(),
                        source,
                    })?;
                check_target_files(dir, &t)?;
                Some(t)
            }
            Ok(None) => None,
            Err(e) => return Err(unreadable(&staged_path)(e)),
        };
        tracing::debug!(
            root = root.signed.version,
            targets = targets.signed.version,
            snapshot = snapshot.signed.version,
            timestamp = timestamp.signed.version,
            staged = staged.is_some(),
            "repository loaded and verified"
        );
        Ok(Repository {
            dir: dir.to_path_buf(),
            config,
            root,
            targets,
            snapshot,
            timestamp,
            staged,
            pending_targets,
        })
    }

    /// The targets content new changes build on: the staged one, or else the published one.
    pub fn working_targets(&self) -> Targets {
        self.staged
            .clone()
            .unwrap_or_else(|| self.targets.signed.clone())
    }

    /// The next free version of `role`: above the current one and above any versioned file
    /// already on disk (left by an interrupted run, never published), so existing versioned
    /// files are never overwritten.
    pub fn next_version(&self, role: &str, current: u64) -> u64 {
        let suffix = format!(".{role}.json");
        let highest_on_disk = std::fs::read_dir(self.metadata_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(&suffix)?.parse::<u64>().ok()
            })
            .max()
            .unwrap_or(0);
        current.max(highest_on_disk) + 1
    }
}

/// The newest `N.targets.json` above `listed` that verifies under `root` with version `N`
/// (signed offline, waiting for the online snapshot), with its snapshot entry. Files that do
/// not verify are skipped with a warning: they are not published, and never will be.
fn newest_pending_targets(
    md: &Path,
    root: &Root,
    listed: u64,
) -> Result<Option<(Signed<Targets>, MetaFile)>> {
    let mut versions: Vec<u64> = std::fs::read_dir(md)
        .map_err(|source| RepoError::ListDir {
            path: md.to_path_buf(),
            source,
        })?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".targets.json")?.parse::<u64>().ok()
        })
        .filter(|v| *v > listed)
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    for v in versions {
        let path = md.join(format!("{v}.targets.json"));
        match read_role::<Targets>(&path, root) {
            Ok((t, bytes)) if t.signed.version == v => return Ok(Some((t, meta_entry(v, &bytes)))),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "version inside differs from the file name; not published")
            }
            Err(e) => tracing::warn!(path = %path.display(), "not published: {e}"),
        }
    }
    Ok(None)
}

fn read_raw(path: &Path) -> Result<(RawMetadata, Vec<u8>)> {
    let bytes = user_file::read(path, MAX_METADATA_LEN).map_err(unreadable(path))?;
    let raw = RawMetadata::from_bytes(&bytes).map_err(|e| corrupt(path, e))?;
    Ok((raw, bytes))
}

/// Read root metadata and verify it against its own keys.
fn read_root(path: &Path) -> Result<(Signed<Root>, Vec<u8>)> {
    let (raw, bytes) = read_raw(path)?;
    let root: Root = raw.parse().map_err(|e| corrupt(path, e))?;
    verify(path, &raw, &root, "root")?;
    Ok((
        Signed {
            signed: root,
            signatures: raw.signatures,
        },
        bytes,
    ))
}

/// Read a metadata file and verify it against `root`.
fn read_role<T: RoleType>(path: &Path, root: &Root) -> Result<(Signed<T>, Vec<u8>)> {
    let (raw, bytes) = read_raw(path)?;
    let signed: T = raw.parse().map_err(|e| corrupt(path, e))?;
    verify(path, &raw, root, T::TYPE)?;
    Ok((
        Signed {
            signed,
            signatures: raw.signatures,
        },
        bytes,
    ))
}

fn verify(path: &Path, raw: &RawMetadata, root: &Root, role: &str) -> Result<()> {
    let rk = root
        .role(role)
        .map_err(|e| corrupt(Path::new("root.json"), e))?;
    raw.verify(role, root, &rk.keyids, rk.threshold)
        .map_err(|source| RepoError::BadSignatures {
            path: path.to_path_buf(),
            source,
        })
}

fn check_meta(path: &Path, meta: &MetaFile, version: u64, bytes: &[u8]) -> Result<()> {
    if version != meta.version {
        return Err(RepoError::VersionMismatch {
            path: path.to_path_buf(),
            version,
            listed: meta.version,
        });
    }
    if let Some(len) = meta.length {
        if len != bytes.len() as u64 {
            return Err(RepoError::LengthMismatch {
                path: path.to_path_buf(),
                length: bytes.len() as u64,
                listed: len,
            });
        }
    }
    if let Some(hashes) = &meta.hashes {
        ota_formats::hash::verify_bytes(bytes, hashes, bytes.len() as u64)
            .map_err(|e| corrupt(path, e))?;
    }
    Ok(())
}

/// Every target file is present with the listed length (hashing them all would make each
/// command read gigabytes; the client checks hashes on download).
fn check_target_files(dir: &Path, targets: &Targets) -> Result<()> {
    for (path, t) in &targets.targets {
        let Some(sha) = t.sha256() else {
            return Err(RepoError::TargetWithoutHash {
                target: path.clone(),
            });
        };
        let file = target_file_path(dir, path, sha);
        match std::fs::metadata(&file) {
            Ok(m) if m.len() == t.length => {}
            Ok(m) => {
                return Err(RepoError::TargetFileLength {
                    path: file,
                    length: m.len(),
                    listed: t.length,
                })
            }
            Err(source) => return Err(RepoError::TargetFileMissing { path: file, source }),
        }
    }
    Ok(())
}
