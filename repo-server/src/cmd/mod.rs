//! The `ota-server` binary's own parts: subcommands and the merged settings.
pub mod devices;
pub mod settings;
