//! `ota-client keygen`: create the device's X25519 key pair.
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{keys, StateDir};
use std::path::PathBuf;

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client keygen --state /var/lib/ota\n",
    "  ota-client keygen --state /var/lib/ota --json | jq -r .public_key\n\n",
    "The secret key is written to DIR/device.key (mode 0600). Give the printed public key\n",
    "(otapub1...) to the release owner so releases can be encrypted to this device.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Replace an existing key (releases made for the old key can no longer be decrypted).
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let state = StateDir::new(&a.state);
    let key = keys::generate(&state, a.force)?;
    let public = key.public_key().to_text();
    let id = key.id().to_string();
    if a.json {
        print_json(&serde_json::json!({
            "public_key": public,
            "recipient_id": id,
            "key_file": state.device_key(),
        }));
    } else {
        println!("public key:   {public}");
        println!("recipient id: {id}");
    }
    Ok(0)
}
