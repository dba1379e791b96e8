//! # ota-cli
//!
//! The presentation shared by `ota-sign`, `ota-client` and `ota-server`, implemented once:
//!
//! - [`progress`]: progress bars on stderr, drawn only when stderr is a terminal.
//! - [`logging`]: `tracing` logs on stderr, coloured only on a terminal and never with
//!   `NO_COLOR` set.
//! - [`report`]: the JSON error object that every `--json` command prints on failure, so a
//!   script or an agent can parse every outcome.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod logging;
pub mod progress;
pub mod report;
