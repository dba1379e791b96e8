//! Loading a repository directory and checking it the way a client would: through the TUF
//! state machine of `ota_formats::trust`, from `1.root.json` up the root chain, then the
//! timestamp, the snapshot it lists and the targets that lists, every signature, version,
//! length and hash, but not expiry (re-signing what expired is the editor's job).
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
use ota_formats::metadata::{MetaFile, Root, Signed, Snapshot, Targets, Timestamp};
use ota_formats::trust::{TopLevel, TrustError, TrustedSet};
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
    ///
    /// A repository whose newest root was published by a key-changing rotation that stopped
    /// before the re-signed roles (a crash between `N.root.json` and `timestamp.json`) is
    /// [`RepoError::RotationInterrupted`] when everything verifies under root `N - 1`:
    /// [`crate::rotate::resume`] finishes it.
    pub fn load(dir: &Path) -> Result<Self> {
        match Self::load_at(dir, None) {
            Err(e) if e.may_be_interrupted_rotation() => {
                let newest = newest_root_version(&dir.join(METADATA_DIR));
                match newest {
                    Some(n) if n > 1 && Self::load_at(dir, Some(n - 1)).is_ok() => {
                        Err(RepoError::RotationInterrupted {
                            dir: dir.to_path_buf(),
                            version: n,
                            cause: Box::new(e),
                        })
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// [`Repository::load`] with the root chain stopped at version `root_version` (all
    /// of it when `None`); with a limit, `root.json` is not compared with the newest root.
    pub fn load_at(dir: &Path, root_version: Option<u64>) -> Result<Self> {
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
        let (mut chain, snap_path) = load_chain(&md, root_version)?;
        let listed = chain.snapshot().and_then(|s| s.meta.get("targets.json"));
        let Some(targets_version) = listed.map(|m| m.version) else {
            return Err(RepoError::NotListed {
                path: snap_path,
                entry: "targets.json".into(),
            });
        };
        let targets_path = md.join(format!("{targets_version}.targets.json"));
        let bytes = read_metadata(&targets_path)?;
        chain
            .update_targets(&bytes)
            .map_err(|e| refused(&targets_path, e))?;

        if !dir.join(TARGETS_DIR).is_dir() {
            return Err(RepoError::DirMissing {
                path: dir.join(TARGETS_DIR),
            });
        }
        let pending = if config.online_roles {
            newest_pending_targets(&md, &chain, targets_version)?
        } else {
            None
        };
        let TopLevel {
            root,
            timestamp,
            snapshot,
            targets,
        } = chain.into_top_level().map_err(|e| corrupt(&md, e))?;
        let (root, timestamp, snapshot) = (
            root.into_signed(),
            timestamp.into_signed(),
            snapshot.into_signed(),
        );
        let (targets, pending_targets) = match pending {
            Some((newer, meta)) => (newer, Some(meta)),
            None => (targets.into_signed(), None),
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

/// The chain a client would trust, up to the snapshot: the roots from `1.root.json` up to the
/// last `N.root.json` (with `root.json` a copy of it), the timestamp, and the snapshot it
/// lists (whose path comes with it). Expiry is not checked.
fn load_chain(md: &Path, limit: Option<u64>) -> Result<(TrustedSet, PathBuf)> {
    let first = md.join("1.root.json");
    let bytes = read_metadata(&first)?;
    let mut chain = TrustedSet::new_ignoring_expiry(&bytes).map_err(|e| refused(&first, e))?;
    let mut newest = (first, bytes);
    while limit.is_none_or(|l| chain.root().version < l) {
        let path = md.join(format!("{}.root.json", chain.root().version + 1));
        let bytes = match user_file::read(&path, MAX_METADATA_LEN) {
            Ok(b) => b,
            Err(UserFileError::NotFound { .. }) => break,
            Err(e) => return Err(unreadable(&path)(e)),
        };
        chain.update_root(&bytes).map_err(|e| refused(&path, e))?;
        newest = (path, bytes);
    }
    if limit.is_none() {
        let copy = read_metadata(&md.join("root.json"))?;
        if copy != newest.1 {
            return Err(RepoError::RootCopyDiffers { path: newest.0 });
        }
    }

    let ts_path = md.join("timestamp.json");
    let bytes = read_metadata(&ts_path)?;
    chain
        .update_timestamp(&bytes)
        .map_err(|e| refused(&ts_path, e))?;
    let snap_version = chain
        .snapshot_meta()
        .map_err(|e| refused(&ts_path, e))?
        .version;
    let snap_path = md.join(format!("{snap_version}.snapshot.json"));
    let bytes = read_metadata(&snap_path)?;
    chain
        .update_snapshot(&bytes, false)
        .map_err(|e| refused(&snap_path, e))?;
    Ok((chain, snap_path))
}

/// The highest `N` of the `N.root.json` files in `md`.
fn newest_root_version(md: &Path) -> Option<u64> {
    std::fs::read_dir(md)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".root.json")?.parse::<u64>().ok()
        })
        .max()
}

fn read_metadata(path: &Path) -> Result<Vec<u8>> {
    user_file::read(path, MAX_METADATA_LEN).map_err(unreadable(path))
}

/// The repository error for metadata at `path` that the state machine refused.
fn refused(path: &Path, e: TrustError) -> RepoError {
    let path = path.to_path_buf();
    match e {
        TrustError::SignatureThreshold { source, .. } => RepoError::BadSignatures { path, source },
        TrustError::VersionMismatch {
            expected, actual, ..
        } => RepoError::VersionMismatch {
            path,
            version: actual,
            listed: expected,
        },
        TrustError::HashMismatch {
            source: ota_formats::Error::LengthMismatch { expected, actual },
            ..
        } => RepoError::LengthMismatch {
            path,
            length: actual,
            listed: expected,
        },
        TrustError::InvalidMetadata { source, .. } | TrustError::HashMismatch { source, .. } => {
            RepoError::Corrupt {
                path,
                reason: source.to_string(),
            }
        }
        other => RepoError::Corrupt {
            path,
            reason: other.to_string(),
        },
    }
}

/// The newest `N.targets.json` above `listed` that verifies under the trusted root with version
/// `N` (signed offline, waiting for the online snapshot), with its snapshot entry. Files that do
/// not verify are skipped with a warning: they are not published, and never will be.
fn newest_pending_targets(
    md: &Path,
    chain: &TrustedSet,
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
        let checked = read_metadata(&path).and_then(|bytes| {
            let t = chain
                .check_unlisted_targets(&bytes)
                .map_err(|e| refused(&path, e))?;
            Ok((t, bytes))
        });
        match checked {
            Ok((t, bytes)) if t.signed.version == v => return Ok(Some((t, meta_entry(v, &bytes)))),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "version inside differs from the file name; not published")
            }
            Err(e) => tracing::warn!(path = %path.display(), "not published: {e}"),
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CompressionPolicy, CONFIG_FORMAT};
    use crate::policy::{Period, ROLES};
    use chrono::{TimeZone, Utc};
    use ota_formats::crypto::{Ed25519Signer, Signer};
    use ota_formats::metadata::RoleType;
    use serde_json::Map;

    fn key(role: &str) -> Ed25519Signer {
        let seed = ROLES.iter().position(|r| *r == role).unwrap() as u8 + 1;
        Ed25519Signer::from_seed(&[seed; 32])
    }

    fn sign<T: RoleType>(value: T, signer: &Ed25519Signer) -> Vec<u8> {
        Signed::sign(value, &[signer as &dyn Signer])
            .unwrap()
            .to_bytes()
            .unwrap()
    }

    /// A repository (one key per role) whose metadata all expired in 2001.
    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        root: Root,
    }

    impl Fixture {
        fn new(online_roles: bool) -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("repo");
            std::fs::create_dir_all(dir.join(METADATA_DIR)).unwrap();
            std::fs::create_dir_all(dir.join(TARGETS_DIR)).unwrap();
            let expired = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap();
            let mut root = Root::new(1, expired);
            for role in ROLES {
                root.add_key(role, key(role).public_key()).unwrap();
            }
            let config = RepoConfig {
                format: CONFIG_FORMAT,
                expiry: ROLES
                    .iter()
                    .map(|r| (r.to_string(), Period::from_secs(86_400)))
                    .collect(),
                key_files: ROLES
                    .iter()
                    .map(|r| (r.to_string(), vec![crate::keys::key_file_name(r, 1)]))
                    .collect(),
                compression: CompressionPolicy::default(),
                online_roles,
                extra: Map::new(),
            };
            std::fs::write(dir.join(CONFIG_FILE), config.to_bytes().unwrap()).unwrap();
            let f = Fixture {
                _tmp: tmp,
                dir,
                root,
            };
            let root_bytes = sign(f.root.clone(), &key("root"));
            f.write("1.root.json", &root_bytes);
            f.write("root.json", &root_bytes);
            let targets = sign(Targets::new(1, expired), &key("targets"));
            f.write("1.targets.json", &targets);
            let mut snapshot = Snapshot::new(1, expired);
            snapshot
                .meta
                .insert("targets.json".into(), meta_entry(1, &targets));
            f.publish_snapshot(snapshot);
            f
        }

        fn md(&self, name: &str) -> PathBuf {
            self.dir.join(METADATA_DIR).join(name)
        }

        fn write(&self, name: &str, bytes: &[u8]) {
            std::fs::write(self.md(name), bytes).unwrap();
        }

        /// Sign `snapshot` as its version, and a timestamp listing it.
        fn publish_snapshot(&self, snapshot: Snapshot) {
            let version = snapshot.version;
            let expires = snapshot.expires;
            let bytes = sign(snapshot, &key("snapshot"));
            self.write(&format!("{version}.snapshot.json"), &bytes);
            let ts = Timestamp::new(version, expires, meta_entry(version, &bytes));
            self.write("timestamp.json", &sign(ts, &key("timestamp")));
        }

        fn load(&self) -> Result<Repository> {
            Repository::load(&self.dir)
        }
    }

    #[test]
    fn an_expired_repository_loads_so_that_it_can_be_re_signed() {
        let f = Fixture::new(false);
        let repo = f.load().unwrap();
        assert!(repo.timestamp.signed.expires.timestamp() < 1_000_000_000);
        assert_eq!(repo.root.signatures.len(), 1);
        assert_eq!(repo.targets.signed.version, 1);
        assert!(repo.pending_targets.is_none());
    }

    #[test]
    fn the_root_chain_is_walked_from_version_1() {
        let f = Fixture::new(false);
        let mut next = f.root.clone();
        next.version = 2;
        let v2 = sign(next.clone(), &key("root"));
        f.write("2.root.json", &v2);
        // root.json must be the newest root of the chain: a root published without its copy
        // is a rotation interrupted before it finished.
        match f.load() {
            Err(RepoError::RotationInterrupted { version, cause, .. }) => {
                assert_eq!(version, 2);
                assert!(
                    matches!(*cause, RepoError::RootCopyDiffers { ref path } if path.ends_with("2.root.json"))
                );
            }
            other => panic!("expected an interrupted rotation, got {other:?}"),
        }
        f.write("root.json", &v2);
        assert_eq!(f.load().unwrap().root.signed.version, 2);

        // Version 3 signed by a key version 2 does not trust for root.
        next.version = 3;
        f.write("3.root.json", &sign(next.clone(), &key("targets")));
        assert!(matches!(
            f.load(),
            Err(RepoError::BadSignatures { ref path, .. }) if path.ends_with("3.root.json")
        ));
        // A file whose version is not its name's.
        next.version = 4;
        f.write("3.root.json", &sign(next, &key("root")));
        assert!(matches!(
            f.load(),
            Err(RepoError::VersionMismatch { ref path, version: 4, listed: 3 }) if path.ends_with("3.root.json")
        ));
    }

    #[test]
    fn refusals_name_the_file_and_keep_their_kind() {
        let f = Fixture::new(false);
        let ts = std::fs::read(f.md("timestamp.json")).unwrap();
        let mut forged: Signed<Timestamp> = serde_json::from_slice(&ts).unwrap();
        forged.signed.version = 7;
        f.write("timestamp.json", &forged.to_bytes().unwrap());
        assert!(matches!(
            f.load(),
            Err(RepoError::BadSignatures { ref path, .. }) if path.ends_with("timestamp.json")
        ));
        f.write("timestamp.json", &ts);

        let mut snapshot = std::fs::read(f.md("1.snapshot.json")).unwrap();
        snapshot.push(b'\n');
        f.write("1.snapshot.json", &snapshot);
        assert!(matches!(
            f.load(),
            Err(RepoError::LengthMismatch { ref path, .. }) if path.ends_with("1.snapshot.json")
        ));

        // A snapshot that lists no targets, then one listing a version the file does not have.
        let expired = f.root.expires;
        f.publish_snapshot(Snapshot::new(1, expired));
        assert!(matches!(
            f.load(),
            Err(RepoError::NotListed { ref path, ref entry }) if path.ends_with("1.snapshot.json") && entry == "targets.json"
        ));
        let bytes = sign(Targets::new(2, expired), &key("targets"));
        f.write("1.targets.json", &bytes);
        let mut snapshot = Snapshot::new(1, expired);
        snapshot
            .meta
            .insert("targets.json".into(), meta_entry(1, &bytes));
        f.publish_snapshot(snapshot);
        assert!(matches!(
            f.load(),
            Err(RepoError::VersionMismatch { ref path, version: 2, listed: 1 }) if path.ends_with("1.targets.json")
        ));

        f.write("1.targets.json", b"{}");
        assert!(matches!(f.load(), Err(RepoError::LengthMismatch { .. })));
    }

    #[test]
    fn with_online_roles_the_newest_correctly_signed_targets_is_pending() {
        let f = Fixture::new(true);
        let expired = f.root.expires;
        f.write(
            "2.targets.json",
            &sign(Targets::new(2, expired), &key("targets")),
        );
        // Newer, but signed with another role's key, or with another version inside: skipped.
        f.write(
            "3.targets.json",
            &sign(Targets::new(3, expired), &key("snapshot")),
        );
        f.write(
            "4.targets.json",
            &sign(Targets::new(5, expired), &key("targets")),
        );
        let repo = f.load().unwrap();
        assert_eq!(repo.targets.signed.version, 2);
        let pending = repo.pending_targets.unwrap();
        assert_eq!(pending.version, 2);
        assert_eq!(
            pending.length,
            Some(std::fs::metadata(f.md("2.targets.json")).unwrap().len())
        );
        // Without online roles, only what the snapshot lists counts.
        let f = Fixture::new(false);
        f.write(
            "2.targets.json",
            &sign(Targets::new(2, expired), &key("targets")),
        );
        let repo = f.load().unwrap();
        assert_eq!(repo.targets.signed.version, 1);
        assert!(repo.pending_targets.is_none());
    }
}
