//! ota-signer (work in progress).
pub mod delta;
