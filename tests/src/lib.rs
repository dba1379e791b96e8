//! Shared support for the end-to-end and attack tests in `tests/tests/`: repositories built in
//! code with `ota-formats`, written in the on-disk layout that `ota-server` and nginx serve.
#![allow(clippy::missing_panics_doc)]

pub mod ab;
pub mod cli;
pub mod device;
pub mod fixture;
pub mod keyroll;
pub mod nginx;
pub mod noise;
pub mod postgres;
pub mod python;
pub mod release;
pub mod server;
pub mod tls_server;

/// Something serving a repository directory over HTTP (ota-server or nginx).
pub trait RepoHost {
    /// `http://127.0.0.1:PORT`
    fn url(&self) -> String;
    /// Base URL of the metadata, with a trailing slash.
    fn metadata_url(&self) -> String {
        format!("{}/metadata/", self.url())
    }
    /// Base URL of the targets, with a trailing slash.
    fn targets_url(&self) -> String {
        format!("{}/targets/", self.url())
    }
}
