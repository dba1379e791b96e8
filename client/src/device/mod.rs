//! The device product on top of the TUF client: configuration and state directory, choosing
//! the update for this hardware, and the streaming install pipeline (verify → decrypt →
//! decompress, or apply a delta patch to the installed image → check image → atomic replace).
//! The `ota-client` binary is a thin CLI over it. The install path is a regular file, replaced
//! atomically; device nodes, links and other special files are refused.
//!
//! ```no_run
//! use ota_client::device::{Device, StateDir, UpdateOutcome};
//! # fn main() -> Result<(), ota_client::device::DeviceError> {
//! let mut device = Device::open(StateDir::new("/var/lib/ota"), |_| {})?;
//! match device.update(std::path::Path::new("/data/firmware.img"))? {
//!     UpdateOutcome::Installed(i) => println!("installed {} {}", i.name, i.version),
//!     UpdateOutcome::UpToDate(_) => println!("up to date"),
//! }
//! # Ok(()) }
//! ```
mod config;
mod decompress;
mod delta;
mod erase;
mod error;
pub mod identity;
mod install;
mod installed;
pub mod keys;
pub mod ownership;
mod patch;
mod select;
mod session;
mod sink;
#[cfg(test)]
mod slot_listing;
mod state;
mod tls_files;
mod unlock;

pub use config::DeviceConfig;
pub use decompress::ZSTD_WINDOW_LOG_MAX;
pub use delta::{choose as choose_delta, deltas_for, CurrentImage, DeltaTarget};
pub use error::{Category, DeviceError, DeviceResult};
pub use identity::SigningRequest;
pub use install::{check_install_path, prepare, Inputs, InstallableImage};
pub use installed::Installed;
pub use keys::{GroupKey, Keyring};
pub use ownership::{reenroll, Reenrolled};
pub use patch::{prepare_patched, PatchInputs};
pub use select::{Candidate, Selector};
pub use session::{Device, Skipped, Transfer, UpdateOutcome};
pub use state::StateDir;
pub use unlock::MAX_SLIP_LEN;
