//! `ota-client update`: install the update for this device, atomically.
use crate::{exit_codes, print_json, progress, Failure, UP_TO_DATE};
use ota_client::device::{Device, StateDir, UpdateOutcome};
use std::path::PathBuf;

/// Arguments of `update`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client update --state /var/lib/ota --install-to /data/firmware.img\n",
    "  ota-client update --state /var/lib/ota --install-to /data/firmware.img --json -v\n\n",
    "The image is decrypted (if encrypted), decompressed and checked against its signed sha256\n",
    "in a temp file beside PATH, then renamed over PATH. On any failure PATH and installed.json\n",
    "are left untouched. When the release has a delta patch whose base is the image at PATH\n",
    "(hashed first), only the patch is downloaded and applied to PATH; if anything about it\n",
    "fails, the full image is downloaded instead.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory (see `ota-client init`).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// File to replace with the new image.
    #[arg(long, value_name = "PATH")]
    pub install_to: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let json = a.json;
    let mut device = Device::open(StateDir::new(&a.state), |c| progress::attach(c, !json))?;
    match device.update(&a.install_to)? {
        UpdateOutcome::Installed(i) => {
            let transfer = device.last_transfer().cloned().unwrap_or_default();
            if json {
                print_json(&serde_json::json!({
                    "result": "installed",
                    "installed": i,
                    "delta_used": transfer.delta.is_some(),
                    "delta": transfer.delta,
                    "delta_base_version": transfer.delta_base_version,
                    "delta_fallback": transfer.delta_fallback,
                    "downloaded_bytes": transfer.downloaded_bytes,
                }));
            } else {
                let how = match &transfer.delta {
                    Some(d) => format!(" from the delta {d}"),
                    None => String::new(),
                };
                println!(
                    "installed {} {} to {}{how} ({} bytes downloaded)",
                    i.name,
                    i.version,
                    i.install_path.display(),
                    transfer.downloaded_bytes
                );
            }
            Ok(0)
        }
        UpdateOutcome::UpToDate(i) => {
            if json {
                print_json(&serde_json::json!({
                    "result": "up-to-date",
                    "installed": i,
                    "skipped": device.skipped(),
                }));
            } else {
                println!("up to date, nothing installed");
                for s in device.skipped() {
                    println!(
                        "not for this device: {} ({}): {}",
                        s.version, s.target, s.reason
                    );
                }
            }
            Ok(UP_TO_DATE)
        }
    }
}
