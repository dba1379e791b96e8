//! `ota-client check`: refresh metadata and show the update for this device.
use crate::{exit_codes, print_json, Failure, UP_TO_DATE};
use ota_client::device::{Base, Candidate, Device, StateDir};
use std::path::PathBuf;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client check --state /var/lib/ota && ota-client update --state /var/lib/ota --install-to /data/fw.img\n",
    "  ota-client check --state /var/lib/ota --json\n",
    "  ota-client check --state /var/lib/ota --install-to /data/firmware.img --json   # would a delta be used?\n",
    "  ota-client check --state /var/lib/ota --from /media/usb/ota   # a repository copy (ota-sign export)\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory (see `ota-client init`).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The file `update` would replace: hash it to tell whether a delta patch applies to it.
    #[arg(long, value_name = "PATH")]
    pub install_to: Option<PathBuf>,
    /// Read a repository copy (removable media, `ota-sign export`) instead of the server.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// JSON description of a candidate.
pub fn describe(c: &Candidate) -> serde_json::Value {
    serde_json::json!({
        "target": c.target().path(),
        "name": c.image().name(),
        "version": c.ota().version,
        "length": c.target().length(),
        "image_length": c.image().length(),
        "image_sha256": c.image().sha256(),
        "encrypted": c.encryption().is_encrypted(),
        "rollback_from": c.rollback_from(),
        "deltas": c.deltas().iter().map(|d| serde_json::json!({
            "target": d.target().path(),
            "length": d.target().length(),
            "base_version": d.info().base.version,
            "base_sha256": d.info().base.sha256,
        })).collect::<Vec<_>>(),
    })
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let mut device = Device::open_from(StateDir::new(&a.state), a.from.as_deref(), |_| {})?;
    if device.config().slots.is_some() {
        // Like every command: learn first what the boot loader did since the last run (a
        // fallback makes a version failed, which check must not offer).
        device.slot_status()?;
    }
    let installed = device.installed()?;
    let found = device.check()?;
    // Which file `update` would download: a patch when one has the running image as its
    // base (the committed slot in A/B mode, else the file at --install-to).
    let base = match (&device.config().slots, &a.install_to) {
        (Some(_), _) => device.running_slot_base()?,
        (None, Some(p)) => Some(Base::File(p.clone())),
        (None, None) => None,
    };
    let delta = match (&found, &base) {
        (Some(c), Some(b)) => device.delta_for(c, b),
        _ => None,
    };
    let download = found.as_ref().map(|c| match delta {
        Some(d) => (d.target().path(), d.target().length()),
        None => (c.target().path(), c.target().length()),
    });
    if a.json {
        print_json(&serde_json::json!({
            "installed": installed.as_ref().map(|i| &i.version),
            "update": found.as_ref().map(describe),
            "delta": delta.map(|d| d.target().path()),
            "download": download.map(|(t, _)| t),
            "download_bytes": download.map(|(_, n)| n),
            "skipped": device.skipped(),
        }));
    } else {
        match &found {
            Some(c) => {
                println!(
                    "update available: {} {} ({}, {} bytes)",
                    c.image().name(),
                    c.ota().version,
                    c.target().path(),
                    c.target().length()
                );
                if let Some(from) = c.rollback_from() {
                    println!("a signed rollback from the installed {from}");
                }
                if let Some(d) = delta {
                    println!(
                        "delta from the installed image: {} ({} bytes)",
                        d.target().path(),
                        d.target().length()
                    );
                }
            }
            None => println!(
                "up to date ({})",
                installed
                    .as_ref()
                    .map(|i| format!("{} {}", i.name, i.version))
                    .unwrap_or_else(|| "nothing installed, nothing offered".into())
            ),
        }
        for s in device.skipped() {
            println!(
                "not for this device: {} ({}): {}",
                s.version, s.target, s.reason
            );
        }
    }
    Ok(if found.is_some() { 0 } else { UP_TO_DATE })
}
