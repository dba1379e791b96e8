//! # ota-formats
//!
//! The data model shared by every part of the OTA toolkit: TUF metadata (root, targets with
//! delegations, snapshot, timestamp), canonical JSON, keys and signatures, hashes, and our
//! target extensions. This crate does no I/O and reads no clock: time is always a parameter,
//! which keeps every rule here testable on fixed inputs.
//!
//! Verification always runs over the canonical JSON of the *raw* `signed` value as received,
//! never over a re-serialised struct, so unknown fields written by other tools keep verifying.
//! [`trust::TrustedSet`] is the TUF verification state machine (root chain, timestamp,
//! snapshot, targets, delegations) that the device client and the repository editor share.
//!
//! ```
//! use ota_formats::crypto::{Ed25519Signer, Signer};
//! use ota_formats::metadata::{Timestamp, MetaFile, Signed, RawMetadata};
//! use chrono::{TimeZone, Utc};
//!
//! let key = Ed25519Signer::generate();
//! let expires = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
//! let ts = Timestamp::new(1, expires, MetaFile::new(1));
//! let bytes = Signed::sign(ts, &[&key]).unwrap().to_bytes().unwrap();
//! let raw = RawMetadata::from_bytes(&bytes).unwrap();
//! assert_eq!(raw.signatures.len(), 1);
//! ```
#![deny(missing_docs)]
// The one exception is the FFI call into liblz4 in `patch::expand::lz4` (each block says why it is sound).
#![deny(unsafe_code)]

pub mod cjson;
pub mod crypto;
pub mod envelope;
pub mod error;
pub mod hash;
pub mod metadata;
pub mod patch;
pub mod pathmatch;
pub mod report;
pub mod target_meta;
pub mod trust;
pub mod version;

pub use error::{Error, Result};
