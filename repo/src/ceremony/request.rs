//! The signing request: the next version of a role, unsigned, with everything a key holder
//! on an air-gapped machine needs to decide whether to sign it and to sign it.
//!
//! File format (`ota-signing-request/1`, pretty JSON):
//!
//! ```text
//! {
//!   "format": "ota-signing-request/1",
//!   "role": "targets" | "root",
//!   "version": N,                       the version to publish
//!   "created": "RFC 3339 time",
//!   "base": {                           what the request builds on (the published role)
//!     "version", "root_version",        its version and the root version at request time
//!     "signed_sha256", "signed"         the published `signed` part and its hash
//!   },
//!   "signed": { ... },                  the proposed `signed` part (unsigned metadata)
//!   "signed_sha256": "hex",             SHA-256 of its canonical JSON: the bytes signed
//!   "thresholds": [ {"name", "threshold", "keyids"} ],   every one must be met
//!   "keys": { keyid: public key },      the keys of those key ids
//!   "changes": { ... },                 the structured summary (see `summary`)
//!   "summary": [ "line", ... ],         the human-readable summary
//!   "request_sha256": "hex"             SHA-256 of the canonical JSON of all the above
//! }
//! ```
//!
//! A root request has two thresholds, the current root's root keys and the new root's (a
//! client accepts root N+1 only when both sign it). Reading a request checks its own hash,
//! the hash of the metadata, and recomputes the summary and (for root) the thresholds from
//! the metadata it carries, so a summary cannot describe another change than the one signed.
use super::error::{CeremonyError, Result};
use super::next::{base_of, next_root, next_targets, thresholds_for};
use super::summary::Changes;
use crate::keys::short_id;
use crate::repository::{Repository, MAX_METADATA_LEN};
use crate::RepoError;
use chrono::{DateTime, DurationRound, Utc};
use ota_formats::cjson;
use ota_formats::crypto::Key;
use ota_formats::hash::sha256_hex;
use ota_formats::metadata::{RawMetadata, RoleType, Root, Targets};
use ota_fs::user_file;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The `format` of request files this version writes and reads.
pub const REQUEST_FORMAT: &str = "ota-signing-request/1";
/// The next root staged (its `signed` part as JSON) by `ota-sign rotate --stage`, in the
/// repository directory; a root request signs it when present.
pub const STAGED_ROOT_FILE: &str = "ota-staged-root.json";
/// Largest request file read: two metadata files and their summary.
pub const MAX_REQUEST_LEN: u64 = 2 * MAX_METADATA_LEN + (16 << 20);

/// The roles signed in ceremonies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CeremonyRole {
    /// The top-level targets role.
    Targets,
    /// The root role.
    Root,
}

impl CeremonyRole {
    /// The role name.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyRole::Targets => "targets",
            CeremonyRole::Root => "root",
        }
    }

    /// Parse a role name (`targets` or `root`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "targets" => Ok(CeremonyRole::Targets),
            "root" => Ok(CeremonyRole::Root),
            other => Err(CeremonyError::UnsupportedRole {
                role: other.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for CeremonyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of keys of which `threshold` must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdSet {
    /// Which keys: `targets`, `root v1 (current)`, `root v2 (new)`.
    pub name: String,
    /// Signatures needed.
    pub threshold: u64,
    /// The key ids that count.
    pub keyids: Vec<String>,
}

/// The published metadata a request builds on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Base {
    /// Its version.
    pub version: u64,
    /// The root version when the request was made.
    pub root_version: u64,
    /// SHA-256 of the canonical JSON of `signed`.
    pub signed_sha256: String,
    /// Its `signed` part.
    pub signed: Value,
}

/// A signing request (see the module documentation for the file format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningRequest {
    /// [`REQUEST_FORMAT`].
    pub format: String,
    /// The role to sign.
    pub role: CeremonyRole,
    /// The version to publish.
    pub version: u64,
    /// When the request was made.
    pub created: DateTime<Utc>,
    /// What it builds on.
    pub base: Base,
    /// The proposed `signed` part.
    pub signed: Value,
    /// SHA-256 of the canonical JSON of `signed` (the bytes each key signs).
    pub signed_sha256: String,
    /// Every threshold that must be met.
    pub thresholds: Vec<ThresholdSet>,
    /// The public keys of the key ids in `thresholds`.
    pub keys: BTreeMap<String, Key>,
    /// What changes.
    pub changes: Changes,
    /// The human-readable summary of `changes`.
    pub summary: Vec<String>,
    /// SHA-256 of the canonical JSON of the request without this field.
    pub request_sha256: String,
}

/// Canonical JSON of `v` and its SHA-256.
pub(crate) fn canonical<T: Serialize + ?Sized>(v: &T) -> Result<(Vec<u8>, String)> {
    let bytes = cjson::to_vec(v).map_err(|source| CeremonyError::Sign { source })?;
    let hash = sha256_hex(&bytes);
    Ok((bytes, hash))
}

pub(crate) fn encode<T: Serialize>(what: &'static str, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|source| RepoError::Encode { what, source }.into())
}

/// Parse a `signed` value as role `T` with the checks a client makes.
pub(crate) fn parse_signed<T: RoleType>(
    signed: &Value,
) -> std::result::Result<T, ota_formats::Error> {
    RawMetadata {
        signed: signed.clone(),
        signatures: Vec::new(),
    }
    .parse()
}

/// `t` in whole seconds, as metadata writes it.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::seconds(1)).unwrap_or(t)
}

impl SigningRequest {
    /// The request for the next version of `role` in `repo`: for targets what is staged
    /// (`ota-sign add --no-publish`), or the published targets with a new expiry when
    /// `expires` is given; for root the staged root, else the current root with a new
    /// version and expiry. `expires` defaults to the role's period from `now`.
    pub fn create(
        repo: &Repository,
        role: CeremonyRole,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let expires = expires.map(whole_seconds);
        if let Some(e) = expires.filter(|e| *e <= now) {
            return Err(CeremonyError::ExpiryInPast { expires: e });
        }
        let base = base_of(repo, role)?;
        let current_root = &repo.root.signed;
        let (signed, changes, new_root) = match role {
            CeremonyRole::Targets => {
                let next = next_targets(repo, expires, now)?;
                let changes = Changes::targets(&repo.targets.signed, &next);
                (encode("targets", &next)?, changes, None)
            }
            CeremonyRole::Root => {
                let next = next_root(repo, expires, now)?;
                if next.expires <= now {
                    return Err(CeremonyError::ExpiryInPast {
                        expires: next.expires,
                    });
                }
                let changes = Changes::root(current_root, &next);
                (encode("root", &next)?, changes, Some(next))
            }
        };
        let (thresholds, keys) =
            thresholds_for(role, current_root, new_root.as_ref()).map_err(|reason| {
                CeremonyError::StagedRootInvalid {
                    path: repo.dir.join(STAGED_ROOT_FILE),
                    reason,
                }
            })?;
        let (_, signed_sha256) = canonical(&signed)?;
        let mut req = SigningRequest {
            format: REQUEST_FORMAT.into(),
            role,
            version: changes.version.to,
            created: whole_seconds(now),
            base,
            signed,
            signed_sha256,
            thresholds,
            keys,
            summary: changes.lines(),
            changes,
            request_sha256: String::new(),
        };
        req.request_sha256 = req.computed_hash()?;
        Ok(req)
    }

    /// SHA-256 of the canonical JSON of the request without `request_sha256`.
    fn computed_hash(&self) -> Result<String> {
        let mut v = encode("request", self)?;
        hash_without_own(&mut v)
    }

    /// The bytes each key signs: the canonical JSON of `signed`.
    pub fn canonical_signed(&self) -> Result<Vec<u8>> {
        Ok(canonical(&self.signed)?.0)
    }

    /// The key ids that may sign (in any threshold).
    pub fn allowed_keyids(&self) -> BTreeSet<&str> {
        self.thresholds
            .iter()
            .flat_map(|t| t.keyids.iter().map(String::as_str))
            .collect()
    }

    /// `targets v5 (request 1a2b3c4d5e6f7a8b)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} v{} (request {})",
            self.role,
            self.version,
            short_id(&self.request_sha256)
        )
    }

    /// The new root of a root request.
    pub fn new_root(&self) -> Option<Root> {
        match self.role {
            CeremonyRole::Root => parse_signed(&self.signed).ok(),
            CeremonyRole::Targets => None,
        }
    }

    /// The file bytes (pretty JSON).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(|source| RepoError::Encode {
            what: "signing request",
            source,
        })?;
        v.push(b'\n');
        Ok(v)
    }

    /// Write the request to a new file at `path` (never over an existing one).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_new(path, &self.to_bytes()?)
    }

    /// Read and check a request file (see [`SigningRequest::from_bytes`]).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = user_file::read(path, MAX_REQUEST_LEN).map_err(|source| {
            CeremonyError::RequestUnreadable {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parse a request read from `path` and check it: its own hash, the hash, role and
    /// version of the metadata, the base, the summary (recomputed), the thresholds (for
    /// root, recomputed from the two roots).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| CeremonyError::RequestCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut value: Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON ({e})")))?;
        let stated = match value.get("request_sha256") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(corrupt("it has no request_sha256".into())),
        };
        let original = value.clone();
        let actual = hash_without_own(&mut value)
            .map_err(|e| corrupt(format!("not canonical JSON ({e})")))?;
        if actual != stated {
            return Err(CeremonyError::RequestDamaged {
                path: path.to_path_buf(),
                stated,
                actual,
            });
        }
        match original.get("format").and_then(Value::as_str) {
            Some(REQUEST_FORMAT) => {}
            other => {
                return Err(corrupt(format!(
                    "its format is {other:?}, this ota-sign reads {REQUEST_FORMAT:?}"
                )))
            }
        }
        let req: SigningRequest =
            serde_json::from_value(original).map_err(|e| corrupt(e.to_string()))?;
        req.check()
            .map_err(|reason| CeremonyError::RequestInconsistent {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(req)
    }

    /// The consistency checks of [`SigningRequest::from_bytes`] after the hash.
    fn check(&self) -> std::result::Result<(), String> {
        let hash = |v: &Value| canonical(v).map(|(_, h)| h).map_err(|e| e.to_string());
        if hash(&self.signed)? != self.signed_sha256 {
            return Err("the metadata does not hash to its signed_sha256".into());
        }
        if hash(&self.base.signed)? != self.base.signed_sha256 {
            return Err("the base metadata does not hash to its signed_sha256".into());
        }
        let changes = match self.role {
            CeremonyRole::Targets => {
                let new: Targets = parse_signed(&self.signed)
                    .map_err(|e| format!("the metadata is not valid targets: {e}"))?;
                let old: Targets = parse_signed(&self.base.signed)
                    .map_err(|e| format!("the base is not valid targets: {e}"))?;
                Changes::targets(&old, &new)
            }
            CeremonyRole::Root => {
                let new: Root = parse_signed(&self.signed)
                    .map_err(|e| format!("the metadata is not a valid root: {e}"))?;
                let old: Root = parse_signed(&self.base.signed)
                    .map_err(|e| format!("the base is not a valid root: {e}"))?;
                if new.version != old.version + 1 {
                    return Err(format!(
                        "root v{} cannot follow root v{}",
                        new.version, old.version
                    ));
                }
                let expected = thresholds_for(self.role, &old, Some(&new))?;
                if expected != (self.thresholds.clone(), self.keys.clone()) {
                    return Err("its thresholds or keys are not those of the two roots".into());
                }
                Changes::root(&old, &new)
            }
        };
        if changes.version.to != self.version || changes.version.from != self.base.version {
            return Err(format!(
                "it says {} v{} over v{}, the metadata is v{} over v{}",
                self.role,
                self.version,
                self.base.version,
                changes.version.to,
                changes.version.from
            ));
        }
        if self.version <= self.base.version {
            return Err(format!(
                "version {} is not above the base version {}",
                self.version, self.base.version
            ));
        }
        if changes != self.changes || changes.lines() != self.summary {
            return Err("its summary does not describe the change it carries".into());
        }
        for t in &self.thresholds {
            if t.threshold == 0 || t.threshold > t.keyids.len() as u64 {
                return Err(format!(
                    "threshold {} of {} key(s) for {} can never be met",
                    t.threshold,
                    t.keyids.len(),
                    t.name
                ));
            }
            if let Some(id) = t.keyids.iter().find(|id| !self.keys.contains_key(*id)) {
                return Err(format!("key {} of {} is not listed", short_id(id), t.name));
            }
        }
        if self.thresholds.is_empty() {
            return Err("it lists no threshold".into());
        }
        Ok(())
    }
}

/// Remove `request_sha256` from `v` and hash the canonical JSON of the rest.
fn hash_without_own(v: &mut Value) -> Result<String> {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("request_sha256");
    }
    Ok(canonical(v)?.1)
}

/// Write `bytes` to a new file at `path`, published (0644): [`CeremonyError::OutputExists`]
/// when something is there already.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    ota_fs::atomic::write_new(path, bytes, ota_fs::mode::PUBLIC_FILE).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CeremonyError::OutputExists {
                path: path.to_path_buf(),
            }
        } else {
            RepoError::write(path, e).into()
        }
    })
}
