//! # ota-signer
//!
//! The library behind `ota-sign`, the offline tool with which release engineers create a TUF
//! repository, add firmware images to it and keep its metadata signed.
//!
//! - [`keys`]: private key files (0600, outside the repository);
//! - [`config`]: `ota-repo.json`, the signer policy kept in the repository;
//! - [`policy`]: expiry periods and when a role is due for re-signing;
//! - [`repo`]: loading and verifying a repository;
//! - [`compress`]: streaming zstd compression of images;
//! - [`delta`]: patch creation between image versions;
//! - [`delta_target`]: patch targets of `add --delta-from` (bases, base images, metadata);
//! - [`recipients`]: `ota-recipients.json`, the devices and groups encrypted targets are for;
//! - [`encrypt`]: encryption of targets and their key slips;
//! - [`publish`]: the ordered, atomic publication of new metadata;
//! - [`ota_fs::atomic`]: crash-safe file writes; [`lock`]: one writer at a time;
//! - [`cmd`]: one module per subcommand.
//!
//! Errors carry a hint and map to the CLI's exit codes (see [`error`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cmd;
pub mod compress;
pub mod config;
pub mod delta;
pub mod delta_target;
pub mod encrypt;
pub mod error;
pub mod keys;
pub mod lock;
pub mod policy;
pub mod publish;
pub mod recipients;
pub mod repo;

pub use error::{Error, Result};

/// Print a warning for the user on stderr (independent of `-v`).
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}
