//! # ota-repo
//!
//! The repository editor of the OTA toolkit: everything that reads, checks, edits, signs and
//! publishes a TUF repository of plain files, without a command line. `ota-sign` (the offline
//! release tool) stands on it, and `ota-server` is to use it for online re-signing and
//! uploads.
//!
//! - [`repository`]: the layout, loading a repository and verifying it as a client would;
//! - [`ceremony`]: the multi-party offline signing ceremony (request, detached signatures,
//!   combine and publish at threshold) and its hash-chained audit log;
//! - [`config`]: `ota-repo.json`, the signer policy kept in the repository;
//! - [`policy`]: expiry periods, and when a role is due for re-signing;
//! - [`keys`]: role keys in a key directory, checked against root;
//! - [`key_source`]: where a role key comes from: a PEM file, a passphrase-encrypted PEM
//!   file, or a PKCS#11 token (`pkcs11:` URI);
//! - [`targets`]: the version policy of an image line, target names, placing target files;
//! - [`publish`]: the ordered, atomic publication of new metadata, signed through
//!   [`ota_formats::crypto::Signer`] trait objects;
//! - [`lock`]: one writer at a time (an OS file lock);
//! - [`online`]: snapshot and timestamp signed by the server that holds only their keys;
//! - [`upload`]: publication of offline-signed targets uploaded to that server, verified
//!   against the live repository and switched in atomically;
//! - [`rotate`]: key rotation of the top-level roles (one new root per change, signed by the
//!   old and the new root keys), and staged roots for signing ceremonies;
//! - [`error`]: [`RepoError`], typed errors naming the file, role or key.
//!
//! ```no_run
//! # fn main() -> Result<(), ota_repo::RepoError> {
//! use ota_repo::policy::{health, Health};
//! let repo = ota_repo::Repository::load(std::path::Path::new("repo"))?;
//! let ts = &repo.timestamp.signed;
//! if health(ts.expires, repo.config.period("timestamp"), chrono::Utc::now()) != Health::Ok {
//!     println!("timestamp v{} needs re-signing", ts.version);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ceremony;
pub mod config;
pub mod delegation;
pub mod error;
pub mod key_source;
pub mod keys;
pub mod lock;
pub mod online;
pub mod policy;
pub mod publish;
pub mod repository;
pub mod rotate;
pub mod targets;
pub mod upload;

pub use error::{RepoError, Result};
pub use repository::Repository;
