//! Shared support for the end-to-end and attack tests in `tests/tests/`: repositories built in
//! code with `ota-formats`, written in the on-disk layout that `ota-server` and nginx serve.
#![allow(clippy::missing_panics_doc)]

pub mod fixture;
pub mod python;
pub mod server;
