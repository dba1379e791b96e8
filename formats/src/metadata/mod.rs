//! TUF 1.0 metadata: the four top-level roles, delegations, and the signed envelope.
//!
//! Two views of a metadata file exist on purpose:
//! - [`RawMetadata`] keeps the `signed` value exactly as received, for signature checks;
//! - the typed role structs ([`Root`], [`Targets`], [`Snapshot`], [`Timestamp`]) are parsed
//!   from that raw value and preserve unknown fields in `extra`.

mod common;
mod delegation;
mod expires;
mod raw;
mod root;
mod snapshot;
mod targets;
mod timestamp;

pub use common::{check_spec_version, RoleType, SPEC_VERSION};
pub use delegation::{DelegatedRole, Delegations, SuccinctRoles};
pub use raw::{RawMetadata, Signed};
pub use root::{Root, RoleKeys};
pub use snapshot::{MetaFile, Snapshot};
pub use targets::{TargetFile, Targets};
pub use timestamp::Timestamp;
