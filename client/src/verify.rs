//! Building blocks of the state machine: parse bytes as a role, check signatures against a
//! delegator, check bytes against a snapshot/timestamp `meta` entry.
use crate::delegation_index::DelegationIndex;
use crate::{Error, Result};
use ota_formats::crypto::KeySource;
use ota_formats::hash::verify_bytes;
use ota_formats::metadata::{MetaFile, RawMetadata, RoleType, Root, Targets};

/// Parse `bytes` as role `T` named `role`, keeping the raw form for signature checks.
pub(crate) fn parse<T: RoleType>(role: &str, bytes: &[u8]) -> Result<(RawMetadata, T)> {
    let invalid = |source| Error::InvalidMetadata {
        role: role.to_string(),
        source,
    };
    let raw = RawMetadata::from_bytes(bytes).map_err(invalid)?;
    let parsed = raw.parse::<T>().map_err(invalid)?;
    Ok((raw, parsed))
}

/// Check that the top-level role `role` of `raw` is signed as `root` requires.
pub(crate) fn by_root(root: &Root, role: &str, raw: &RawMetadata) -> Result<()> {
    let keys = root.role(role).map_err(|source| Error::InvalidMetadata {
        role: "root".into(),
        source,
    })?;
    signed_by(raw, role, root, &keys.keyids, keys.threshold)
}

/// Check that delegated role `role` of `raw` is signed as delegator `delegator` requires
/// (`index` is the delegator's [`DelegationIndex`]).
pub(crate) fn by_delegator(
    delegator_name: &str,
    delegator: &Targets,
    index: &DelegationIndex,
    role: &str,
    raw: &RawMetadata,
) -> Result<()> {
    let not_delegated = || Error::NotDelegated {
        role: role.to_string(),
        delegator: delegator_name.to_string(),
    };
    let delegations = delegator.delegations.as_ref().ok_or_else(not_delegated)?;
    let (keyids, threshold) = index
        .role_keys(delegations, role)
        .ok_or_else(not_delegated)?;
    signed_by(raw, role, delegations, keyids, threshold)
}

fn signed_by(
    raw: &RawMetadata,
    role: &str,
    keys: &dyn KeySource,
    keyids: &[String],
    threshold: u64,
) -> Result<()> {
    raw.verify(role, keys, keyids, threshold)
        .map_err(|source| Error::SignatureThreshold {
            role: role.to_string(),
            source,
        })
}

/// Check `bytes` against the length and hashes a `meta` entry lists (when it lists them).
pub(crate) fn against_meta(what: &str, bytes: &[u8], meta: &MetaFile) -> Result<()> {
    let mismatch = |source| Error::HashMismatch {
        what: what.to_string(),
        source,
    };
    let actual = bytes.len() as u64;
    if let Some(expected) = meta.length {
        if expected != actual {
            return Err(mismatch(ota_formats::Error::LengthMismatch {
                expected,
                actual,
            }));
        }
    }
    if let Some(hashes) = &meta.hashes {
        verify_bytes(bytes, hashes, actual).map_err(mismatch)?;
    }
    Ok(())
}
