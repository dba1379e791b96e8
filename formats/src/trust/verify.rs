//! Building blocks of the state machine: parse bytes as a role, check signatures against a
//! delegator, check bytes against a snapshot/timestamp `meta` entry.
use super::delegation_index::DelegationIndex;
use super::{Result, TrustError};
use crate::crypto::{verify_threshold, KeySource, Signature};
use crate::hash::verify_bytes;
use crate::metadata::{MetaFile, RawEnvelope, RoleType, Root, Targets};

/// Metadata bytes parsed as one role, not verified yet.
pub(crate) struct Parsed<T> {
    /// Canonical JSON of the `signed` object exactly as received: what the signatures cover.
    pub(crate) canonical: Vec<u8>,
    /// The `signatures` list.
    pub(crate) signatures: Vec<Signature>,
    /// The typed role.
    pub(crate) role: T,
}

impl<T> Parsed<T> {
    /// The same parse with the role converted.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Parsed<U> {
        Parsed {
            canonical: self.canonical,
            signatures: self.signatures,
            role: f(self.role),
        }
    }
}

/// Parse `bytes` as role `T` named `role`, keeping the raw form for signature checks.
pub(crate) fn parse<T: RoleType>(role: &str, bytes: &[u8]) -> Result<Parsed<T>> {
    let invalid = |source| TrustError::InvalidMetadata {
        role: role.to_string(),
        source,
    };
    let mut raw = RawEnvelope::from_bytes(bytes).map_err(invalid)?;
    let parsed = raw.parse::<T>().map_err(invalid)?;
    let signatures = std::mem::take(&mut raw.signatures);
    Ok(Parsed {
        canonical: raw.into_canonical_signed(),
        signatures,
        role: parsed,
    })
}

/// Check that the top-level role `role` of `signed` (with `signatures`) is signed as `root`
/// requires.
pub(crate) fn by_root(
    root: &Root,
    role: &str,
    signed: &[u8],
    signatures: &[Signature],
) -> Result<()> {
    let keys = root
        .role(role)
        .map_err(|source| TrustError::InvalidMetadata {
            role: "root".into(),
            source,
        })?;
    signed_by(signed, signatures, role, root, &keys.keyids, keys.threshold)
}

/// Check that delegated role `role` of `signed` is signed as delegator `delegator` requires
/// (`index` is the delegator's [`DelegationIndex`]).
pub(crate) fn by_delegator(
    delegator_name: &str,
    delegator: &Targets,
    index: &DelegationIndex,
    role: &str,
    signed: &[u8],
    signatures: &[Signature],
) -> Result<()> {
    let not_delegated = || TrustError::NotDelegated {
        role: role.to_string(),
        delegator: delegator_name.to_string(),
    };
    let delegations = delegator.delegations.as_ref().ok_or_else(not_delegated)?;
    let (keyids, threshold) = index
        .role_keys(delegations, role)
        .ok_or_else(not_delegated)?;
    signed_by(signed, signatures, role, delegations, keyids, threshold)
}

/// Verify over `signed`, the canonical JSON of the `signed` object as received.
fn signed_by(
    signed: &[u8],
    signatures: &[Signature],
    role: &str,
    keys: &dyn KeySource,
    keyids: &[String],
    threshold: u64,
) -> Result<()> {
    verify_threshold(role, signed, signatures, keys, keyids, threshold).map_err(|source| {
        TrustError::SignatureThreshold {
            role: role.to_string(),
            source,
        }
    })
}

/// Check `bytes` against the length and hashes a `meta` entry lists (when it lists them).
pub(crate) fn against_meta(what: &str, bytes: &[u8], meta: &MetaFile) -> Result<()> {
    let mismatch = |source| TrustError::HashMismatch {
        what: what.to_string(),
        source,
    };
    let actual = bytes.len() as u64;
    if let Some(expected) = meta.length {
        if expected != actual {
            return Err(mismatch(crate::Error::LengthMismatch { expected, actual }));
        }
    }
    if let Some(hashes) = &meta.hashes {
        verify_bytes(bytes, hashes, actual).map_err(mismatch)?;
    }
    Ok(())
}
