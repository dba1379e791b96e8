//! TUF 1.0 metadata: the four top-level roles, delegations, and the signed envelope.
//!
//! Views of a metadata file, on purpose:
//! - [`RawEnvelope`] borrows the `signed` part as the text received: verification writes its
//!   canonical bytes and parses the role from it in one pass each, with no value tree;
//! - [`RawMetadata`] keeps the `signed` part as a JSON value, for editors that change it;
//! - the typed role structs ([`Root`], [`Targets`], [`Snapshot`], [`Timestamp`]) are parsed
//!   from either and preserve unknown fields in `extra`.

mod checked_targets;
mod common;
mod delegation;
mod expires;
mod raw;
mod root;
mod snapshot;
mod targets;
mod timestamp;

pub(crate) use checked_targets::CheckedTargets;
pub use common::{check_spec_version, RoleType, SPEC_VERSION};
pub use delegation::{DelegatedRole, Delegations, SuccinctRoles};
pub use raw::{RawEnvelope, RawMetadata, Signed};
pub use root::{RoleKeys, Root};
pub use snapshot::{MetaFile, Snapshot};
pub use targets::{TargetFile, Targets};
pub use timestamp::Timestamp;
