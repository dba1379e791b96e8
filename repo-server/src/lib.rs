//! ota-repo-server: serves a TUF repository directory (`metadata/`, `targets/`) read-only over
//! HTTP/1.1 and HTTP/2, in cleartext or over TLS (optionally verifying device certificates:
//! mutual TLS, see [`tls`] and [`identity`]), with byte ranges, strong ETags and CDN-friendly
//! caching.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ota_repo_server::ServeError> {
//! use ota_repo_server::{serve, Config};
//! let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
//! let running = serve(
//!     Config::new("/srv/repo", "127.0.0.1:0".parse().unwrap()),
//!     async move { let _ = stop_rx.await; },
//! )
//! .await?;
//! println!("serving on http://{}", running.local_addr());
//! let _ = stop_tx.send(());
//! running.wait().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod cache_policy;
pub mod config;
pub mod config_file;
mod conn;
pub mod etag;
mod file_cache;
mod file_read;
mod handler;
mod health;
pub mod identity;
pub mod log_batch;
pub mod logging;
pub mod metrics;
pub mod online;
pub mod range;
mod reports;
pub mod resolve;
pub mod response;
mod server;
pub mod shutdown;
pub mod tls;
pub mod upload;

pub use config::{Config, RepoError, ReportSettings};
pub use identity::{DeviceIdentity, RoutePolicy, SubjectAltNameEntry};
pub use server::{serve, RunningServer, ServeError, Server, ShutdownOutcome};
pub use tls::{ReloadHandle, TlsError, TlsSettings};
pub use upload::UploadSettings;
