//! Roles that passed verification. Only the state machine ([`super::TrustedSet`]) constructs
//! these, so holding one is proof of the checks.
use crate::crypto::Signature;
use crate::metadata::{Root, Signed, Snapshot, Targets, Timestamp};
use std::ops::Deref;

/// A role's metadata that passed signature, version, expiry and snapshot checks.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    name: String,
    signed: T,
    signatures: Vec<Signature>,
}

impl<T> Verified<T> {
    pub(crate) fn new(name: impl Into<String>, signed: T, signatures: Vec<Signature>) -> Self {
        Verified {
            name: name.into(),
            signed,
            signatures,
        }
    }

    /// The role name ("root", "targets", or a delegated role's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verified `signed` content.
    pub fn signed(&self) -> &T {
        &self.signed
    }

    /// The signatures of the metadata as received (the threshold of them verified).
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// Give up the proof and keep the data: the role with its signatures, e.g. for a
    /// repository editor that signs the next version.
    pub fn into_signed(self) -> Signed<T> {
        Signed {
            signed: self.signed,
            signatures: self.signatures,
        }
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.signed
    }
}

/// The trusted root.
pub type VerifiedRoot = Verified<Root>;
/// The trusted timestamp.
pub type VerifiedTimestamp = Verified<Timestamp>;
/// The trusted snapshot.
pub type VerifiedSnapshot = Verified<Snapshot>;
/// A trusted targets role (top-level or delegated).
pub type VerifiedTargets = Verified<Targets>;
