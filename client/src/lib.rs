//! # ota-client
//!
//! The device side of the OTA toolkit: a TUF client (specification section 5) usable from
//! plain synchronous code.
//!
//! - [`trusted::TrustedSet`] is the verification state machine (`ota_formats::trust`, pure: no
//!   I/O, fed bytes and a reference time); it accepts metadata into the trusted set or returns
//!   a specific [`Error`].
//! - [`Updater`] does the fetching and caching around it: a metadata directory holding exactly
//!   the verified bytes (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`,
//!   percent-encoded delegated role names), and verified, atomic target downloads.
//! - [`transport`] abstracts where files come from (HTTP(S), or a local directory).
//!
//! Typical use: [`Updater::new`], [`Updater::refresh`], [`Updater::get_target_info`],
//! [`Updater::find_cached_target`], [`Updater::download_target`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod boot;
pub mod clock;
pub mod config;
pub mod crash_point;
pub mod device;
mod error;
pub mod metadata_cache;
pub mod names;
pub mod pki;
mod resident;
mod role_writer;
mod search;
pub mod storage;
pub mod target_download;
pub mod transport;
pub mod trusted;
mod updater;
pub mod verified;

pub use clock::{Clock, FixedClock, SystemClock};
pub use config::{Limits, UpdaterConfig};
pub use error::{Error, Result};
pub use updater::Updater;
pub use verified::{
    VerifiedRoot, VerifiedSnapshot, VerifiedTarget, VerifiedTargets, VerifiedTimestamp,
};
