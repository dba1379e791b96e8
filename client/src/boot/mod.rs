//! Boot-loader control for A/B updates: the variables the boot loader reads to pick a slot,
//! and three backends that read and write them.
//!
//! All backends share four variables, those of U-Boot's bootcount feature
//! (`CONFIG_BOOTCOUNT_LIMIT`): `ota_slot` (`a`/`b`), `upgrade_available` (`0`/`1`),
//! `bootcount` and `bootlimit` (default 3). The boot loader applies the rule of
//! [`BootVars::boot`] at power-on (`client/boot/boot.cmd`, `client/boot/grub.cfg`; the
//! contract is in `client/BOOT.md`).
//!
//! - [`UbootEnv`]: `fw_printenv` / `fw_setenv` on the environment an `fw_env.config` names;
//! - [`GrubEnv`]: `grub-editenv` on a GRUB environment block;
//! - [`EnvFile`]: a plain `key=value` file, replaced atomically.
//!
//! [`BootSpec`] names one of them as a string (`uboot`, `uboot:FW_ENV_CONFIG`,
//! `grub:ENVFILE`, `file:ENVFILE`). Absent variables read as their defaults; a present but
//! invalid value is an error, never guessed.
mod env_file;
mod error;
mod grub;
mod spec;
mod tool;
mod uboot;
mod vars;

pub use env_file::EnvFile;
pub use error::{BootError, ParseError};
pub use grub::GrubEnv;
pub use spec::BootSpec;
pub use uboot::{UbootEnv, DEFAULT_CONFIG};
pub use vars::{
    BootVars, Slot, BOOTCOUNT, BOOTLIMIT, MAX_BOOTLIMIT, NAMES, OTA_SLOT, UPGRADE_AVAILABLE,
};

/// Reads and writes the boot variables of one boot environment.
pub trait BootControl: Send + Sync {
    /// The four variables; absent ones take their defaults, invalid ones are an error.
    fn read(&self) -> Result<BootVars, BootError>;

    /// Store all four variables in one backend write (one `fw_setenv -s` call, one
    /// `grub-editenv set` call, one atomic file replace). Values that [`BootControl::read`]
    /// would refuse are refused before anything is written.
    fn write(&self, vars: &BootVars) -> Result<(), BootError>;

    /// What this environment is, for messages (backend and file).
    fn describe(&self) -> String;
}
