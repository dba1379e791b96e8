//! `ota-client mark-good`: the integrator's health check says the running system is good.
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{Device, MarkGood, StateDir};
use std::path::PathBuf;

/// Arguments of `mark-good`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client mark-good --state /var/lib/ota\n",
    "  ota-client mark-good --state /var/lib/ota --json\n\n",
    "Run it from the health check that runs after boot (a systemd unit ordered after the\n",
    "services that must work). It commits the running slot: upgrade_available=0, bootcount=0,\n",
    "and records its version as installed. With nothing pending it changes nothing and exits 0.\n",
    "A slot that was written but not booted yet is not committed.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let mut device = Device::open(StateDir::new(&a.state), |_| {})?;
    let outcome = device.mark_good()?;
    let (result, text) = match &outcome {
        MarkGood::Committed { slot, version } => (
            "committed",
            format!(
                "committed slot {slot}{}",
                version
                    .as_ref()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default()
            ),
        ),
        MarkGood::NotBootedYet { slot } => (
            "not-booted-yet",
            format!(
                "nothing committed: slot {slot} is written but was not booted yet; reboot first"
            ),
        ),
        MarkGood::NothingPending => (
            "nothing-pending",
            "nothing pending; the running slot is committed".into(),
        ),
    };
    if a.json {
        let (slot, version) = match &outcome {
            MarkGood::Committed { slot, version } => (Some(*slot), version.clone()),
            MarkGood::NotBootedYet { slot } => (Some(*slot), None),
            MarkGood::NothingPending => (None, None),
        };
        print_json(&serde_json::json!({
            "result": result,
            "slot": slot,
            "version": version,
            "message": text,
        }));
    } else {
        println!("{text}");
    }
    Ok(0)
}
