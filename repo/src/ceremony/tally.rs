//! Checking the detached signatures of a request: each one made for it (its hash), by a key
//! that may sign it, verifying over its content; a key counted once. Then the metadata file
//! with those signatures, checked as a client checks it against every threshold.
use super::error::{CeremonyError, Result, ThresholdCount};
use super::request::SigningRequest;
use super::signature::DetachedSignature;
use crate::RepoError;
use chrono::{DateTime, Utc};
use ota_formats::crypto::Signature;
use ota_formats::metadata::RawMetadata;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A signature file that counts.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The file.
    pub file: PathBuf,
    /// The key.
    pub keyid: String,
    /// The signer's name.
    pub signer: Option<String>,
    /// When they signed.
    pub time: DateTime<Utc>,
}

/// A signature file by a key already counted.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    /// The file.
    pub file: PathBuf,
    /// The key.
    pub keyid: String,
    /// The file that counted for the key.
    pub same_as: PathBuf,
    /// Whether the two files are identical (the same file given twice, or a copy).
    pub identical: bool,
}

impl Duplicate {
    /// `b.json (key 1a2b3c4d5e6f7a8b: a copy of a.json)`.
    pub fn describe(&self) -> String {
        let how = match (self.file == self.same_as, self.identical) {
            (true, _) => "the same file given twice".to_string(),
            (false, true) => format!("a copy of {}", self.same_as.display()),
            (false, false) => format!("key already counted from {}", self.same_as.display()),
        };
        format!(
            "{} (key {}: {how})",
            self.file.display(),
            crate::keys::short_id(&self.keyid)
        )
    }
}

/// The signatures of a request, checked, and how far they go.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    /// Signatures that count, one per key.
    pub accepted: Vec<Accepted>,
    /// Signature files by keys already counted.
    pub duplicates: Vec<Duplicate>,
    /// Each threshold's count.
    pub thresholds: Vec<ThresholdCount>,
    #[serde(skip)]
    signatures: Vec<Signature>,
}

impl Tally {
    /// Whether every threshold is met.
    pub fn met(&self) -> bool {
        self.thresholds.iter().all(ThresholdCount::met)
    }
}

/// Check each signature file against `request` (whose keys [`check_applies`] checked):
/// an error for the first file that is unreadable, damaged, for another request, by a key
/// that may not sign, or that does not verify; keys counted once.
pub fn tally(request: &SigningRequest, files: &[PathBuf]) -> Result<Tally> {
    if files.is_empty() {
        return Err(CeremonyError::NoSignatures);
    }
    let msg = request.canonical_signed()?;
    let allowed = request.allowed_keyids();
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut duplicates = Vec::new();
    let mut signatures = Vec::new();
    let mut counted: BTreeMap<String, (PathBuf, Vec<u8>)> = BTreeMap::new();
    for path in files {
        let (bytes, sig) = DetachedSignature::read(path)?;
        if sig.request_sha256 != request.request_sha256 {
            return Err(CeremonyError::SignatureForOtherRequest {
                path: path.clone(),
                role: sig.role.to_string(),
                version: sig.version,
                request_sha256: sig.request_sha256,
                expected: request.request_sha256.clone(),
            });
        }
        if sig.role != request.role
            || sig.version != request.version
            || sig.signed_sha256 != request.signed_sha256
        {
            return Err(CeremonyError::SignatureCorrupt {
                path: path.clone(),
                reason: format!(
                    "it names this request but says {} v{} over {}, the request is {} v{} over {}",
                    sig.role,
                    sig.version,
                    sig.signed_sha256,
                    request.role,
                    request.version,
                    request.signed_sha256
                ),
            });
        }
        let key = match request.keys.get(&sig.keyid) {
            Some(k) if allowed.contains(sig.keyid.as_str()) => k,
            _ => {
                return Err(CeremonyError::SignatureKeyNotAllowed {
                    path: path.clone(),
                    keyid: sig.keyid,
                    role: request.role.to_string(),
                    version: request.version,
                })
            }
        };
        let invalid = |reason: String| CeremonyError::SignatureInvalid {
            path: path.clone(),
            keyid: sig.keyid.clone(),
            reason,
        };
        let raw =
            super::decode_hex(&sig.sig).map_err(|e| invalid(format!("sig is not hex: {e}")))?;
        match key.verify(&sig.keyid, &msg, &raw) {
            Ok(true) => {}
            Ok(false) => {
                return Err(invalid(
                    "it was made over other content, or with another key".into(),
                ))
            }
            Err(e) => return Err(invalid(e.to_string())),
        }
        if let Some((first, first_bytes)) = counted.get(&sig.keyid) {
            duplicates.push(Duplicate {
                file: path.clone(),
                keyid: sig.keyid.clone(),
                same_as: first.clone(),
                identical: *first_bytes == bytes,
            });
            continue;
        }
        counted.insert(sig.keyid.clone(), (path.clone(), bytes));
        signatures.push(sig.signature());
        accepted.push(Accepted {
            file: path.clone(),
            keyid: sig.keyid,
            signer: sig.signer,
            time: sig.time,
        });
    }
    signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    let thresholds = request
        .thresholds
        .iter()
        .map(|t| {
            let signed_by: Vec<String> = t
                .keyids
                .iter()
                .filter(|id| counted.contains_key(*id))
                .cloned()
                .collect();
            ThresholdCount {
                name: t.name.clone(),
                valid: signed_by.len(),
                threshold: t.threshold,
                keys: t.keyids.len(),
                signed_by,
            }
        })
        .collect();
    Ok(Tally {
        accepted,
        duplicates,
        thresholds,
        signatures,
    })
}

/// The metadata file of `request` with the signatures of `tally`, checked as a client
/// checks it against every threshold.
pub fn metadata_bytes(request: &SigningRequest, tally: &Tally) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        signed: &'a Value,
        signatures: &'a [Signature],
    }
    let internal = |source| CeremonyError::Sign { source };
    let mut bytes = serde_json::to_vec_pretty(&Envelope {
        signed: &request.signed,
        signatures: &tally.signatures,
    })
    .map_err(|source| RepoError::Encode {
        what: "metadata",
        source,
    })?;
    bytes.push(b'\n');
    let raw = RawMetadata::from_bytes(&bytes).map_err(internal)?;
    for t in &request.thresholds {
        raw.verify(request.role.as_str(), &request.keys, &t.keyids, t.threshold)
            .map_err(internal)?;
    }
    Ok(bytes)
}
