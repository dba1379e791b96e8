//! `ota-client init`: write the configuration and trust the root.
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{Device, DeviceConfig, StateDir};
use std::path::PathBuf;

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client init --state /var/lib/ota --root root.json --server https://updates.example.com --hardware board-a\n",
    "  ota-client init --state st --root 1.root.json --server http://127.0.0.1:8080 --hardware board-a --name gateway-fw --force\n\n",
    "ROOT.json is the repository's trusted root (from the release owner, e.g. metadata/1.root.json);\n",
    "it must be signed by its own threshold of keys.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// State directory to create.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The trusted root metadata to start from.
    #[arg(long, value_name = "ROOT.json")]
    pub root: PathBuf,
    /// Base URL of the repository (serving metadata/ and targets/).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// This device's hardware id.
    #[arg(long, value_name = "ID")]
    pub hardware: String,
    /// The image line this device follows (`ota-sign add --name`). Without it, the first
    /// install fixes it (and a repository with several images for the hardware is refused).
    #[arg(long, value_name = "IMAGE")]
    pub name: Option<String>,
    /// Replace an existing state (discards metadata, downloads and the installed record).
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    // A root is small; a FIFO or /dev/zero must not hang or exhaust the device.
    let root =
        ota_fs::user_file::read(&a.root, ota_client::Limits::default().root).map_err(|e| {
            Failure::usage(
                e.to_string(),
                "pass the repository's root metadata file (a regular file) with --root",
            )
        })?;
    let config = DeviceConfig::new(&a.server, &a.hardware, a.name.as_deref())?;
    if a.name.is_none() {
        tracing::warn!(
            "no --name: the first image installed fixes which image this device follows"
        );
    }
    let state = StateDir::new(&a.state);
    Device::init(&state, &config, &root, a.force)?;
    let device = Device::open(state, |_| {})?;
    let root_version = device.updater().trusted().root().version;
    if a.json {
        print_json(&serde_json::json!({
            "state": a.state,
            "server": config.server,
            "hardware_id": config.hardware_id,
            "image_name": config.image_name,
            "root_version": root_version,
        }));
    } else {
        println!(
            "initialised {} for hardware {} (server {}, trusted root v{root_version})",
            a.state.display(),
            config.hardware_id,
            config.server
        );
    }
    Ok(0)
}
