//! `ota-client reenroll`: ownership transfer. New identity key and signing request, new
//! device key; the previous owner's keys are destroyed.
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{reenroll, StateDir};
use std::path::PathBuf;

/// Arguments of `reenroll`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client reenroll --state /var/lib/ota\n",
    "  ota-client reenroll --state /var/lib/ota --name gw-0042-b --json\n\n",
    "For a device that changes owner. Destroys (overwrites, then removes) the identity key, its\n",
    "certificate and request, the device key (device.key) and every imported group key, then\n",
    "makes a new identity key with a signing request (DIR/identity.csr) and a new device key,\n",
    "whose otapub1... public key is printed. Kept: configuration, CA bundle, trusted metadata and\n",
    "installed record. Flash storage may keep old copies of overwritten blocks.\n",
    "Next: the operator issues a certificate for the new request (`ota-ca issue`), revokes the\n",
    "old one (`ota-ca revoke`) and replaces the device's key (`ota-sign recipients`); install\n",
    "the certificate with `ota-client enroll --state DIR --cert CERT.pem`.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Common name for the new signing request (default: the current identity's).
    #[arg(long, value_name = "CN")]
    pub name: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let state = StateDir::new(&a.state);
    let done = reenroll(&state, a.name.as_deref()).map_err(|e| {
        let bad_name = matches!(
            e,
            ota_client::device::DeviceError::InvalidSetting {
                setting: "common name",
                ..
            }
        );
        let mut f = Failure::from(e);
        if bad_name {
            f.hint = "pass --name DEVICE-ID for the new identity: 1 to 64 characters of A-Z a-z \
                      0-9 . _ - (the device id in the fleet CA)"
                .into();
        }
        f
    })?;
    let public = done.device_key.public_key().to_text();
    let id = done.device_key.id().to_string();
    if a.json {
        print_json(&serde_json::json!({
            "csr": done.request.csr,
            "cn": done.request.cn,
            "key_file": done.request.key,
            "public_key": public,
            "recipient_id": id,
            "device_key_file": state.device_key(),
            "removed_group_keys": done.removed_groups,
            "replaced_identity": done.replaced_identity,
            "replaced_device_key": done.replaced_device_key,
        }));
    } else {
        println!(
            "certificate signing request: {} (CN={})",
            done.request.csr.display(),
            done.request.cn
        );
        println!("public key:   {public}");
        println!("recipient id: {id}");
        let mut gone = Vec::new();
        if done.replaced_identity {
            gone.push("identity key and certificate".to_string());
        }
        if done.replaced_device_key {
            gone.push("device key".to_string());
        }
        if !done.removed_groups.is_empty() {
            gone.push(format!("group keys {}", done.removed_groups.join(", ")));
        }
        if !gone.is_empty() {
            println!(
                "destroyed: {} (overwritten, then removed; flash storage may keep old copies)",
                gone.join(", ")
            );
        }
    }
    Ok(0)
}
