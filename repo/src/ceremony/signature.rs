//! The detached signature a key holder hands back: one key's signature over a request's
//! metadata, bound to that request by its hash.
//!
//! File format (`ota-signature/1`, pretty JSON):
//!
//! ```text
//! {
//!   "format": "ota-signature/1",
//!   "role": "targets" | "root", "version": N,   what the request signs
//!   "request_sha256": "hex",                    the request it was made for
//!   "signed_sha256": "hex",                     SHA-256 of the bytes signed
//!   "keyid": "hex", "sig": "hex",               the TUF signature
//!   "signer": "name" | null,                    who signed (free text, for the audit log)
//!   "time": "RFC 3339"                          when (the signer's clock)
//! }
//! ```
//!
//! Making one needs the request and one key, no repository: it is made on an air-gapped
//! machine. `combine` trusts nothing in the file but checks it against the request and the
//! repository's keys.
use super::error::{CeremonyError, Result};
use super::request::{write_new, CeremonyRole, SigningRequest};
use crate::RepoError;
use chrono::{DateTime, DurationRound, Utc};
use ota_formats::crypto::{Signature, Signer};
use ota_fs::user_file;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::path::Path;

/// The `format` of signature files this version writes and reads.
pub const SIGNATURE_FORMAT: &str = "ota-signature/1";
/// Largest signature file read (one is well under 1 KiB).
pub const MAX_SIGNATURE_LEN: u64 = 64 * 1024;
/// Longest signer name.
pub const MAX_SIGNER_NAME: usize = 128;

/// A detached signature file (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedSignature {
    /// [`SIGNATURE_FORMAT`].
    pub format: String,
    /// The role of the request.
    pub role: CeremonyRole,
    /// The version of the request.
    pub version: u64,
    /// The request it was made for.
    pub request_sha256: String,
    /// SHA-256 of the bytes signed (the request's `signed_sha256`).
    pub signed_sha256: String,
    /// The key that signed.
    pub keyid: String,
    /// The signature, hex.
    pub sig: String,
    /// Who signed.
    pub signer: Option<String>,
    /// When.
    pub time: DateTime<Utc>,
}

/// Check a signer name: 1 to [`MAX_SIGNER_NAME`] characters, no control characters.
pub fn check_signer_name(name: &str) -> Result<()> {
    let bad = |reason| CeremonyError::SignerName {
        name: name.to_string(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    if name.chars().count() > MAX_SIGNER_NAME {
        return Err(bad("it is longer than 128 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("it holds control characters"));
    }
    Ok(())
}

impl DetachedSignature {
    /// Sign `request` with `key`: refused unless the request lists the key among those that
    /// may sign it; the signature is checked against the public key the request lists.
    pub fn sign(
        request: &SigningRequest,
        key: &dyn Signer,
        signer: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        if let Some(name) = signer {
            check_signer_name(name)?;
        }
        let keyid = key
            .key_id()
            .map_err(|source| CeremonyError::Sign { source })?;
        let Some(listed) = request.keys.get(&keyid) else {
            return Err(CeremonyError::KeyNotAllowed {
                role: request.role.to_string(),
                version: request.version,
                keyid,
                allowed: request
                    .allowed_keyids()
                    .into_iter()
                    .map(String::from)
                    .collect(),
            });
        };
        let msg = request.canonical_signed()?;
        let sig = key
            .sign(&msg)
            .map_err(|source| CeremonyError::Sign { source })?;
        let raw = super::decode_hex(&sig.sig).unwrap_or_default();
        match listed.verify(&keyid, &msg, &raw) {
            Ok(true) => {}
            Ok(false) => {
                return Err(CeremonyError::Sign {
                    source: ota_formats::Error::SigningKey(
                        "the signature made does not verify with the public key the request lists"
                            .into(),
                    ),
                })
            }
            Err(source) => return Err(CeremonyError::Sign { source }),
        }
        Ok(DetachedSignature {
            format: SIGNATURE_FORMAT.into(),
            role: request.role,
            version: request.version,
            request_sha256: request.request_sha256.clone(),
            signed_sha256: request.signed_sha256.clone(),
            keyid: sig.keyid,
            sig: sig.sig,
            signer: signer.map(String::from),
            time: now
                .duration_trunc(chrono::Duration::seconds(1))
                .unwrap_or(now),
        })
    }

    /// The TUF signature to put into the metadata.
    pub fn signature(&self) -> Signature {
        Signature {
            keyid: self.keyid.clone(),
            sig: self.sig.clone(),
            extra: Map::new(),
        }
    }

    /// The file bytes (pretty JSON).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(|source| RepoError::Encode {
            what: "signature",
            source,
        })?;
        v.push(b'\n');
        Ok(v)
    }

    /// Write the signature to a new file at `path` (never over an existing one).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_new(path, &self.to_bytes()?)
    }

    /// Read a signature file: its bytes and what they hold.
    pub fn read(path: &Path) -> Result<(Vec<u8>, Self)> {
        let bytes = user_file::read(path, MAX_SIGNATURE_LEN).map_err(|source| {
            CeremonyError::SignatureUnreadable {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let corrupt = |reason: String| CeremonyError::SignatureCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let sig: DetachedSignature =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if sig.format != SIGNATURE_FORMAT {
            return Err(corrupt(format!(
                "its format is {:?}, this ota-sign reads {SIGNATURE_FORMAT:?}",
                sig.format
            )));
        }
        if let Some(name) = &sig.signer {
            check_signer_name(name).map_err(|e| corrupt(e.to_string()))?;
        }
        Ok((bytes, sig))
    }
}
