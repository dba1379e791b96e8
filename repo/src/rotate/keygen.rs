//! New role keys: generated (Ed25519 or ECDSA P-256, saved 0600 under the repository's
//! key-file naming scheme `ROLE-N.pem`) or given as a public key file whose private key stays
//! with its holder.
use super::RotateError;
use crate::key_source::BoxSigner;
use crate::keys::{key_file_name, KEY_FILE_MODE, MAX_KEY_FILE_LEN};
use crate::{RepoError, Result};
use ota_formats::crypto::{EcdsaP256Signer, Ed25519Signer, Key};
use ota_fs::{atomic, user_file};
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The type of a generated key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum KeyType {
    /// Ed25519 (`ed25519`), the default.
    #[default]
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA on P-256 with SHA-256 (`ecdsa-sha2-nistp256`), e.g. for keys that must live in
    /// hardware without Ed25519 support.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
}

impl FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ed25519" => Ok(KeyType::Ed25519),
            "ecdsa-p256" | "ecdsa" | "p256" | "ecdsa-sha2-nistp256" => Ok(KeyType::EcdsaP256),
            other => Err(format!(
                "{other:?} is not a key type: use ed25519 or ecdsa-p256"
            )),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
        })
    }
}

/// A freshly generated private key, not yet saved.
pub struct GeneratedKey {
    /// The key, to sign with.
    pub signer: BoxSigner,
    /// Its key id.
    pub keyid: String,
    /// Its type.
    pub key_type: KeyType,
    pem: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print private key material.
        f.debug_struct("GeneratedKey")
            .field("keyid", &self.keyid)
            .field("key_type", &self.key_type)
            .finish()
    }
}

impl GeneratedKey {
    /// A new random key of type `key_type`.
    pub fn generate(key_type: KeyType) -> Result<Self> {
        let encode = |source| RepoError::KeyEncode { source };
        let (signer, pem): (BoxSigner, String) = match key_type {
            KeyType::Ed25519 => {
                let k = Ed25519Signer::generate();
                let pem = k.to_pkcs8_pem().map_err(encode)?;
                (Box::new(k), pem)
            }
            KeyType::EcdsaP256 => {
                let k = EcdsaP256Signer::generate();
                let pem = k.to_pkcs8_pem().map_err(encode)?;
                (Box::new(k), pem)
            }
        };
        let keyid = signer.key_id().map_err(encode)?;
        Ok(GeneratedKey {
            signer,
            keyid,
            key_type,
            pem,
        })
    }

    /// The signer, its key id and its PKCS#8 PEM (secret material).
    pub(crate) fn into_parts(self) -> (BoxSigner, String, String) {
        (self.signer, self.keyid, self.pem)
    }

    /// Write the private key to `dir/file` (0600), never over an existing file.
    pub fn save(&self, dir: &Path, file: &str) -> Result<PathBuf> {
        if !dir.is_dir() {
            return Err(RepoError::KeyDirMissing {
                dir: dir.to_path_buf(),
            });
        }
        let path = dir.join(file);
        atomic::write_new(&path, self.pem.as_bytes(), KEY_FILE_MODE)
            .map_err(|e| RepoError::write(&path, e))?;
        Ok(path)
    }
}

/// The index `N` of a key file named `ROLE-N.pem`.
pub fn key_file_index(role: &str, file: &str) -> Option<u64> {
    file.strip_prefix(role)?
        .strip_prefix('-')?
        .strip_suffix(".pem")?
        .parse()
        .ok()
}

/// Files in `dir` named `ROLE-N.pem`, sorted by `N`.
pub fn scheme_files(dir: &Path, role: &str) -> Vec<String> {
    let mut found: Vec<(u64, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            key_file_index(role, &name).map(|i| (i, name))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

/// The next key file name of `role`: above every `ROLE-N.pem` named in `listed` or present
/// in `dir`, so a retired key's file is never reused.
pub fn next_key_file(role: &str, listed: &[String], dir: &Path) -> String {
    let on_disk = scheme_files(dir, role);
    let highest = listed
        .iter()
        .chain(on_disk.iter())
        .filter_map(|f| key_file_index(role, f))
        .max()
        .unwrap_or(0);
    let mut n = highest + 1;
    while dir.join(key_file_name(role, n as usize)).exists() {
        n += 1;
    }
    key_file_name(role, n as usize)
}

/// Read a public key file: PEM SubjectPublicKeyInfo (ECDSA P-256 or Ed25519), or a TUF key
/// object as JSON (`{"keytype", "scheme", "keyval": {"public"}}`, optionally with its
/// `"keyid"`, or as a one-entry `{"KEYID": {...}}` map as in root's `keys`). Returns the id
/// to list the key under (the given one, else the computed one) and the key.
pub fn read_public_key(path: &Path) -> std::result::Result<(String, Key), RotateError> {
    let invalid = |reason: String| RotateError::PublicKeyInvalid {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = user_file::read(path, MAX_KEY_FILE_LEN).map_err(|source| {
        RotateError::PublicKeyUnreadable {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| invalid("binary data, not a PEM or JSON public key".into()))?;
    if text.contains("PRIVATE KEY") {
        return Err(RotateError::PublicKeyIsPrivate {
            path: path.to_path_buf(),
        });
    }
    let (given_id, key) = if text.trim_start().starts_with('{') {
        let v: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        key_from_json(v).map_err(invalid)?
    } else if text.contains("-----BEGIN") {
        let key = Key::from_spki_pem(text).map_err(|e| invalid(e.to_string()))?;
        (None, key)
    } else {
        return Err(invalid(
            "neither PEM (-----BEGIN PUBLIC KEY-----) nor a TUF key object in JSON".into(),
        ));
    };
    if key.keyval.extra.contains_key("private") {
        return Err(RotateError::PublicKeyIsPrivate {
            path: path.to_path_buf(),
        });
    }
    // A key a client cannot use at all (bad encoding, unsupported type) is refused here; a
    // well-formed key merely fails to verify this dummy signature.
    key.verify("(new key)", b"", &[0u8; 64])
        .map_err(|e| invalid(e.to_string()))?;
    let keyid = match given_id {
        Some(id) => id,
        None => key.key_id().map_err(|e| invalid(e.to_string()))?,
    };
    Ok((keyid, key))
}

/// A TUF key object, possibly with a `keyid` field or wrapped in a one-entry id map.
fn key_from_json(v: Value) -> std::result::Result<(Option<String>, Key), String> {
    let Value::Object(mut obj) = v else {
        return Err("the JSON is not an object".into());
    };
    let mut given_id = None;
    if obj.len() == 1 && !obj.contains_key("keytype") {
        match obj.into_iter().next() {
            Some((id, Value::Object(inner))) => {
                given_id = Some(id);
                obj = inner;
            }
            _ => return Err("expected a TUF key object with keytype, scheme and keyval".into()),
        }
    }
    if let Some(Value::String(id)) = obj.remove("keyid") {
        given_id.get_or_insert(id);
    }
    if let Some(id) = &given_id {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("key id {id:?} is not 64 hex digits"));
        }
    }
    let key: Key = serde_json::from_value(Value::Object(obj))
        .map_err(|e| format!("not a TUF key object: {e}"))?;
    Ok((given_id.map(|id| id.to_ascii_lowercase()), key))
}
