//! The device product on top of the TUF client: configuration and state directory, choosing
//! the update for this hardware, and the streaming install pipeline (verify → decrypt →
//! decompress, or apply a delta patch to the running image → check image → an
//! [`InstallTarget`]: a regular file replaced atomically ([`FileInstaller`]), the inactive A/B
//! slot with a trial boot and automatic rollback ([`SlotInstaller`], [`Device::update_slots`],
//! [`Device::mark_good`]), or an integrator's command ([`HookInstaller`]). The `ota-client`
//! binary is a thin CLI over it.
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
mod ab;
mod base;
mod config;
mod decompress;
mod delta;
mod erase;
mod error;
mod file_installer;
mod hook_installer;
pub mod identity;
mod image;
mod install;
mod install_target;
mod installed;
pub mod keys;
mod lock;
pub mod ownership;
mod patch;
mod report;
mod select;
mod session;
mod sink;
mod slot_installer;
#[cfg(test)]
mod slot_listing;
mod slot_state;
mod state;
mod tls_files;
mod unlock;

pub use ab::{BootView, MarkGood, SlotOutcome, SlotPair, SlotStatus, SlotView};
pub use base::Base;
pub use config::{DeviceConfig, ExpiredMetadataPolicy, SlotConfig};
pub use decompress::ZSTD_WINDOW_LOG_MAX;
pub use delta::{choose as choose_delta, deltas_for, CurrentImage, DeltaTarget};
pub use error::{Category, DeviceError, DeviceResult};
pub use file_installer::{check_install_path, FileInstaller};
pub use hook_installer::HookInstaller;
pub use identity::SigningRequest;
pub use image::{Encryption, VerifiedImage};
pub use install::InstallableImage;
pub use install_target::{ImageWriter, InstallTarget};
pub use installed::Installed;
pub use keys::{GroupKey, Keyring};
pub use lock::StateLock;
pub use ownership::{reenroll, Reenrolled};
pub use report::ReportSent;
pub use select::{Candidate, Selector};
pub use session::{Device, Skipped, Transfer, UpdateOutcome};
pub use slot_installer::SlotInstaller;
pub use slot_state::{Phase, ReleaseRecord, SlotHealth, SlotRecord, SlotState};
pub use state::StateDir;
pub use unlock::MAX_SLIP_LEN;
