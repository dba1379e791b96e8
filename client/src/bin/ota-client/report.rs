//! `ota-client report`: post the device's signed status report to the fleet service.
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{Device, StateDir};
use std::path::PathBuf;

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client report --state /var/lib/ota\n",
    "  ota-client report --state /var/lib/ota --url https://fleet.example.com/api/v1/reports --json\n",
    "  ota-client report --state /var/lib/ota --print    # show the signed report, send nothing\n\n",
    "The report holds the version in each slot (or the installed image), where an update stands,\n",
    "the last error, the trusted root version, the expiry of the trusted metadata and of the\n",
    "device certificate. It is signed with the device's identity key (`ota-client enroll`) and\n",
    "carries its certificate, so the service can verify it even behind a TLS-terminating proxy.\n",
    "Default URL: the `report_url` of config.json, else SERVER/api/v1/reports. `update` sends\n",
    "one after every attempt when the device has a certificate.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Post to this URL instead of the configured one.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print the signed report on stdout instead of sending it.
    #[arg(long)]
    pub print: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let mut device = Device::open(StateDir::new(&a.state), |_| {})?;
    if let Some(url) = &a.url {
        device.set_report_url(url)?;
    }
    let report = device.status_report(None)?;
    if a.print {
        print_json(&serde_json::to_value(&report).unwrap_or_default());
        return Ok(0);
    }
    let sent = device.send_report(&report)?;
    if a.json {
        print_json(&serde_json::to_value(&sent).unwrap_or_default());
    } else {
        println!(
            "report {} of {} accepted by {}",
            sent.sequence, sent.device_id, sent.url
        );
    }
    Ok(0)
}
