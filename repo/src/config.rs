//! `ota-repo.json`: the signer-side policy kept in the repository directory.
//!
//! It holds expiry periods, compression settings and the *file names* of each role's keys in
//! the keys directory, never key material. Thresholds and key ids live in root metadata, the
//! signed source of truth. Clients never read this file.
use crate::policy::{Period, ROLES};
use crate::{RepoError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// File name of the config inside the repository directory.
pub const CONFIG_FILE: &str = "ota-repo.json";

/// Format version of the config file.
pub const CONFIG_FORMAT: u32 = 1;

/// zstd settings for new targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionPolicy {
    /// zstd level (1-19).
    pub level: i32,
    /// Base-2 log of the largest match window: 23 keeps device decoders at about 8 MiB.
    pub window_log: u32,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        CompressionPolicy {
            level: 19,
            window_log: 23,
        }
    }
}

/// The contents of `ota-repo.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Format version ([`CONFIG_FORMAT`]).
    pub format: u32,
    /// Role → expiry period of newly signed metadata.
    pub expiry: BTreeMap<String, Period>,
    /// Role → key file names (in the `--keys` directory), in the order they were created, or
    /// `pkcs11:` URIs of keys on a token.
    pub key_files: BTreeMap<String, Vec<String>>,
    /// Compression of new targets.
    #[serde(default)]
    pub compression: CompressionPolicy,
    /// Snapshot and timestamp are signed online (by `ota-server --online-keys`): the release
    /// machine signs targets only, and the server publishes each new targets version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub online_roles: bool,
    /// Fields written by newer versions, preserved.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RepoConfig {
    /// Parse and check the config.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| RepoError::ConfigCorrupt { reason };
        let c: RepoConfig = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if c.format != CONFIG_FORMAT {
            return Err(RepoError::ConfigFormat {
                found: c.format,
                supported: CONFIG_FORMAT,
            });
        }
        for role in ROLES {
            if !c.expiry.contains_key(role) {
                return Err(corrupt(format!("no expiry period for role {role}")));
            }
            let files = c.key_files.get(role).map(Vec::as_slice).unwrap_or(&[]);
            if files.is_empty() {
                return Err(corrupt(format!("no key files for role {role}")));
            }
            for f in files {
                if crate::key_source::pkcs11::is_uri(f) {
                    // A key on a PKCS#11 token; a PIN has no place in this file.
                    let uri = crate::key_source::Pkcs11Uri::parse(f).map_err(|e| {
                        // The query may hold a PIN: leave it out of the message.
                        let shown = f.split('?').next().unwrap_or_default();
                        corrupt(format!("key {shown:?} of role {role}: {e}"))
                    })?;
                    if uri.pin_value.is_some() {
                        return Err(corrupt(format!(
                            "key {uri} of role {role} has a pin-value= (a PIN must not be stored in {CONFIG_FILE})"
                        )));
                    }
                } else if !is_plain_file_name(f) {
                    return Err(corrupt(format!(
                        "key file name {f:?} of role {role} is not a plain file name"
                    )));
                }
            }
        }
        Ok(c)
    }

    /// The file bytes (pretty JSON).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(|source| RepoError::Encode {
            what: "config",
            source,
        })?;
        v.push(b'\n');
        Ok(v)
    }

    /// Expiry period of `role` (checked present on load).
    pub fn period(&self, role: &str) -> Period {
        self.expiry
            .get(role)
            .copied()
            .unwrap_or_else(|| Period::from_secs(86_400))
    }

    /// Key file names of `role`.
    pub fn files(&self, role: &str) -> &[String] {
        self.key_files.get(role).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A file name with no directory part, so a config cannot point outside the keys directory.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}
