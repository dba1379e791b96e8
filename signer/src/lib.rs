//! # ota-signer
//!
//! The library behind `ota-sign`, the offline tool with which release engineers create a TUF
//! repository, add firmware images to it and keep its metadata signed.
//!
//! The repository editor itself (loading and verifying a repository, `ota-repo.json`, expiry
//! policy, role keys, the writer lock, the ordered atomic publication) is the `ota-repo`
//! crate, which `ota-server` uses too. This crate adds what only the release machine does,
//! and the command line:
//!
//! - [`keys`]: where the key directory may be, creating it 0700, permission warnings;
//! - [`compress`]: streaming zstd compression of images;
//! - [`delta`]: patch creation between image versions;
//! - [`delta_target`]: patch targets of `add --delta-from` (bases, base images, metadata);
//! - [`recipients`]: `ota-recipients.json`, the devices and groups encrypted targets are for;
//! - [`encrypt`]: encryption of targets and their key slips;
//! - [`upload`]: `publish --to`, the client of `ota-server`'s upload API;
//! - [`expiry`]: the expiry policy of each role (status, warnings after every command);
//! - [`release`]: `NAME@VERSION` releases, their targets and the versions ever published;
//! - [`cmd`]: one module per subcommand.
//!
//! Errors carry a hint and map to the CLI's exit codes (see [`error`]); the typed errors of
//! `ota-repo` get their hints in one place, `impl From<ota_repo::RepoError> for Error`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cmd;
pub mod compress;
pub mod delta;
pub mod delta_target;
pub mod encrypt;
pub mod error;
pub mod expiry;
pub mod keys;
pub mod recipients;
pub mod release;
pub mod upload;

pub use error::{Error, Result};

/// Print a warning for the user on stderr (independent of `-v`).
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}
