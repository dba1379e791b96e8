//! TUF verification (specification section 5) as a pure state machine: [`TrustedSet`] is fed
//! metadata bytes and a reference time, and either accepts them into the trusted set or
//! returns a [`TrustError`] naming the refused rule. No file, network or clock access, so
//! every rule is testable on fixed inputs; fetching, caching and saving are the caller's
//! (`ota-client`'s updater, `ota-repo`'s repository loader).
//!
//! - [`TrustedSet`]: the order (root → timestamp → snapshot → targets → delegated targets),
//!   versions, rollback, expiry and mix-and-match rules, delegations;
//! - [`Verified`]: metadata that passed those checks. Only the state machine constructs it,
//!   so holding one is proof of the checks;
//! - signature checks always run over the canonical JSON of the `signed` value as received,
//!   unknown fields included.
//!
//! ```
//! use ota_formats::crypto::{Ed25519Signer, Signer};
//! use ota_formats::metadata::{Root, Signed};
//! use ota_formats::trust::{TrustError, TrustedSet};
//! use chrono::{TimeZone, Utc};
//!
//! let key = Ed25519Signer::from_seed(&[1; 32]);
//! let mut root = Root::new(1, Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
//! for role in Root::TOP_LEVEL {
//!     root.add_key(role, key.public_key()).unwrap();
//! }
//! let bytes = Signed::sign(root, &[&key]).unwrap().to_bytes().unwrap();
//! let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
//! let mut set = TrustedSet::new(&bytes, now).unwrap();
//! assert_eq!(set.root().version, 1);
//! // Replaying the trusted root is not the next version.
//! assert!(matches!(set.update_root(&bytes), Err(TrustError::VersionMismatch { .. })));
//! ```

mod delegation_index;
mod entries;
mod error;
mod trusted_set;
mod verified;
mod verify;

#[cfg(test)]
mod tests;

pub use error::{Result, TrustError};
pub use trusted_set::{Delegate, TopLevel, TrustedSet};
pub use verified::{Verified, VerifiedRoot, VerifiedSnapshot, VerifiedTargets, VerifiedTimestamp};
