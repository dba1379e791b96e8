//! `ota-client update`: install the update for this device: into the inactive A/B slot with
//! a trial boot, to a single file atomically, or through an install hook.
use crate::{exit_codes, print_json, progress, Failure, UP_TO_DATE};
use ota_client::device::{Device, HookInstaller, SlotOutcome, StateDir, Transfer, UpdateOutcome};
use std::path::PathBuf;

/// Arguments of `update`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client update --state /var/lib/ota                 # A/B device (init --slot ...)\n",
    "  ota-client update --state /var/lib/ota --install-to /data/firmware.img\n",
    "  ota-client update --state /var/lib/ota --install-hook /usr/libexec/flash-mcu --json -v\n",
    "  ota-client update --state /var/lib/ota --from /media/usb/ota --install-to /data/firmware.img\n\n",
    "--from DIR installs from a repository copy on removable media (`ota-sign export --to DIR`)\n",
    "instead of the server, with exactly the same verification: signatures, versions (a copy\n",
    "older than what the device has seen is refused), expiry, hashes. The next update from the\n",
    "server continues from the metadata the copy left. No status report is sent.\n\n",
    "A/B devices: the image is written to the inactive slot, fsync'd, read back and compared\n",
    "with its signed sha256; only then is the boot loader told to try it (ota_slot=<new>,\n",
    "upgrade_available=1, bootcount=0). Exit 0 means: reboot to try it, then run\n",
    "`ota-client mark-good` once the new system is healthy. While a trial is pending nothing is\n",
    "installed (exit 100). A delta patch is applied against the committed slot when one fits.\n\n",
    "--install-to PATH: the image is checked in a temp file beside PATH, then renamed over it.\n",
    "--install-hook CMD: the image is streamed to `CMD write` on stdin, then `CMD commit` runs\n",
    "once it matched its signed sha256 (`CMD abort` otherwise); see client/README.md.\n",
    "On any failure the running image and the recorded state stay as they were.\n\n",
    "After every attempt a device with a certificate (`ota-client enroll`) posts its signed\n",
    "status report (see `ota-client report`); a report that cannot be sent is a warning and\n",
    "does not change the exit code. --no-report skips it.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory (see `ota-client init`).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// File to replace with the new image (single-file devices).
    #[arg(long, value_name = "PATH", conflicts_with = "install_hook")]
    pub install_to: Option<PathBuf>,
    /// Executable that receives the image (`write` on stdin, then `commit` or `abort`).
    #[arg(long, value_name = "CMD")]
    pub install_hook: Option<PathBuf>,
    /// Install from this repository copy (removable media, `ota-sign export`) instead of the
    /// server.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not post a status report after the attempt.
    #[arg(long)]
    pub no_report: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let json = a.json;
    let mut device = Device::open_from(StateDir::new(&a.state), a.from.as_deref(), |c| {
        progress::attach(c, !json)
    })?;
    let result = attempt(&mut device, &a);
    // From removable media the device is typically offline: no report then.
    if !a.no_report && a.from.is_none() {
        report_after(&device, result.as_ref().err());
    }
    result
}

/// Best effort: the service learns how the attempt went; failing to tell it is only a warning.
fn report_after(device: &Device, failure: Option<&Failure>) {
    if !device.state().identity_cert().exists() {
        tracing::debug!("no device certificate: no status report sent");
        return;
    }
    let sent = device
        .status_report(failure.map(|f| f.message.clone()))
        .and_then(|r| device.send_report(&r));
    match sent {
        Ok(s) => tracing::info!(url = %s.url, sequence = s.sequence, "status report accepted"),
        Err(e) => tracing::warn!("status report not sent: {e}"),
    }
}

fn attempt(device: &mut Device, a: &Args) -> Result<u8, Failure> {
    let json = a.json;
    if device.config().slots.is_some() {
        if a.install_to.is_some() || a.install_hook.is_some() {
            return Err(Failure::usage(
                "this device was set up with A/B slots; --install-to and --install-hook do not apply",
                format!("run `ota-client update --state {}`", a.state.display()),
            ));
        }
        return slots(device, json);
    }
    let outcome = match (&a.install_to, &a.install_hook) {
        (Some(path), _) => device.update(path)?,
        (None, Some(hook)) => device.update_with(&HookInstaller::new(hook), hook)?,
        (None, None) => {
            return Err(Failure::usage(
                "nowhere to install: this device has no A/B slots",
                "pass --install-to PATH or --install-hook CMD, or set up slots with `ota-client init --slot a=PATH --slot b=PATH --boot-control ...`",
            ))
        }
    };
    match outcome {
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
                println!(
                    "installed {} {} to {}{} ({} bytes downloaded)",
                    i.name,
                    i.version,
                    i.install_path.display(),
                    how(&transfer),
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
                up_to_date(device);
            }
            Ok(UP_TO_DATE)
        }
    }
}

fn how(transfer: &Transfer) -> String {
    match &transfer.delta {
        Some(d) => format!(" from the delta {d}"),
        None => String::new(),
    }
}

fn up_to_date(device: &Device) {
    println!("up to date, nothing installed");
    for s in device.skipped() {
        println!(
            "not for this device: {} ({}): {}",
            s.version, s.target, s.reason
        );
    }
}

/// The A/B update.
fn slots(device: &mut Device, json: bool) -> Result<u8, Failure> {
    match device.update_slots()? {
        SlotOutcome::RebootNeeded { release, transfer } => {
            if json {
                print_json(&serde_json::json!({
                    "result": "reboot-needed",
                    "release": release,
                    "slot": release.slot,
                    "delta_used": transfer.delta.is_some(),
                    "delta": transfer.delta,
                    "delta_base_version": transfer.delta_base_version,
                    "delta_fallback": transfer.delta_fallback,
                    "downloaded_bytes": transfer.downloaded_bytes,
                }));
            } else {
                println!(
                    "wrote {} {} to slot {}{} ({} bytes downloaded); reboot to try it, then run `ota-client mark-good` once it is healthy",
                    release.name,
                    release.version,
                    release.slot,
                    how(&transfer),
                    transfer.downloaded_bytes
                );
            }
            Ok(0)
        }
        SlotOutcome::TrialPending { release, phase } => {
            let why = match phase.as_str() {
                "trial" => format!(
                    "version {} is on trial in slot {}: run `ota-client mark-good` when it is healthy (the boot loader rolls it back otherwise)",
                    release.version, release.slot
                ),
                _ => format!(
                    "version {} is written to slot {} and waits for a reboot",
                    release.version, release.slot
                ),
            };
            if json {
                print_json(&serde_json::json!({
                    "result": "trial-pending",
                    "update_state": phase.as_str(),
                    "release": release,
                    "reason": why,
                }));
            } else {
                println!("nothing installed: {why}");
            }
            Ok(UP_TO_DATE)
        }
        SlotOutcome::UpToDate => {
            if json {
                print_json(&serde_json::json!({
                    "result": "up-to-date",
                    "installed": device.installed()?,
                    "skipped": device.skipped(),
                }));
            } else {
                up_to_date(device);
            }
            Ok(UP_TO_DATE)
        }
    }
}
