//! `ota-client simulate-boot`: what the boot loader does at power-on, applied to the boot
//! environment (for development boards without a real reboot, demos and tests).
use crate::{exit_codes, print_json, Failure};
use ota_client::boot::BootVars;
use ota_client::device::{DeviceConfig, StateDir};
use std::path::PathBuf;

/// Arguments of `simulate-boot`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client simulate-boot --state st\n",
    "  ota-client simulate-boot --state st --json\n\n",
    "Applies the rule of client/boot/boot.cmd and grub.cfg to the configured boot environment:\n",
    "with upgrade_available=1 the attempt is counted (bootcount+1) and, once bootcount would\n",
    "exceed bootlimit, the other slot is selected and upgrade_available cleared. Prints the slot\n",
    "that boots. It changes only the boot variables, exactly as the boot loader would.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory (an A/B device).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let config = DeviceConfig::load(&StateDir::new(&a.state))?;
    let Some(slots) = config.slots else {
        return Err(Failure::usage(
            format!("{} has no A/B slots", a.state.display()),
            "simulate-boot needs a device set up with `ota-client init --slot a=PATH --slot b=PATH --boot-control ...`",
        ));
    };
    let boot = slots.boot_control.open();
    let before: BootVars = boot.read().map_err(ota_client::device::DeviceError::from)?;
    let (booted, after) = before.boot();
    if after != before {
        boot.write(&after)
            .map_err(ota_client::device::DeviceError::from)?;
    }
    let fell_back = before.upgrade_available && !after.upgrade_available;
    if a.json {
        print_json(&serde_json::json!({
            "booted": booted,
            "fell_back": fell_back,
            "boot": {
                "ota_slot": after.ota_slot,
                "upgrade_available": u8::from(after.upgrade_available),
                "bootcount": after.bootcount,
                "bootlimit": after.bootlimit,
            },
        }));
    } else if fell_back {
        println!(
            "booted slot {booted}: the trial of slot {} used up its {} boots; fell back",
            before.ota_slot, before.bootlimit
        );
    } else if after.upgrade_available {
        println!(
            "booted slot {booted} on trial (boot {} of {})",
            after.bootcount, after.bootlimit
        );
    } else {
        println!("booted slot {booted}");
    }
    Ok(0)
}
