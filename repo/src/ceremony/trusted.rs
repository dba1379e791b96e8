//! Checking a request against a root the key holder trusts.
//!
//! A request names who may sign it (its thresholds and keys) and what it builds on; the
//! release machine that wrote it is not trusted for either. A key holder with a copy of the
//! current root obtained independently (from the previous ceremony, or read off a device)
//! checks with [`SigningRequest::check_trusted_root`] that the request was made under that
//! very root and that its thresholds and keys are exactly those that root (and, for a root
//! request, the proposed new root) sets, before signing anything.
use super::error::{CeremonyError, Result};
use super::next::thresholds_for;
use super::request::{canonical, CeremonyRole, SigningRequest};
use ota_formats::metadata::{RawMetadata, Root};

impl SigningRequest {
    /// Check this request against `root_bytes`, a root metadata file the signer trusts: it
    /// must verify under its own root keys, be the root the request was made under (for a root
    /// request, the very content it builds on), and give exactly the request's thresholds and
    /// keys. Returns the trusted root's version.
    pub fn check_trusted_root(&self, root_bytes: &[u8]) -> Result<u64> {
        let untrusted = |root_version: u64, reason: String| CeremonyError::UntrustedRequest {
            role: self.role.to_string(),
            version: self.version,
            root_version,
            reason,
        };
        let raw = RawMetadata::from_bytes(root_bytes).map_err(|e| {
            untrusted(
                0,
                format!("the trusted root file is not root metadata: {e}"),
            )
        })?;
        let root: Root = raw.parse().map_err(|e| {
            untrusted(
                0,
                format!("the trusted root file is not root metadata: {e}"),
            )
        })?;
        let rk = root
            .role("root")
            .map_err(|e| untrusted(root.version, e.to_string()))?;
        raw.verify("root", &root, &rk.keyids, rk.threshold)
            .map_err(|e| {
                untrusted(
                    root.version,
                    format!("the trusted root is not signed by its own root keys: {e}"),
                )
            })?;
        if root.version != self.base.root_version {
            return Err(untrusted(
                root.version,
                format!(
                    "the request was made under root v{}; bring that root (or check the request's origin)",
                    self.base.root_version
                ),
            ));
        }
        if self.role == CeremonyRole::Root {
            let (_, hash) = canonical(&raw.signed)?;
            if hash != self.base.signed_sha256 {
                return Err(untrusted(
                    root.version,
                    "the request builds on another root than this one (same version, other content)"
                        .into(),
                ));
            }
        }
        let expected = thresholds_for(self.role, &root, self.new_root().as_ref())
            .map_err(|reason| untrusted(root.version, reason))?;
        if expected != (self.thresholds.clone(), self.keys.clone()) {
            return Err(untrusted(
                root.version,
                "the keys or thresholds it names are not those the trusted root sets".into(),
            ));
        }
        Ok(root.version)
    }
}
