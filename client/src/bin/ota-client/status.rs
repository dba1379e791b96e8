//! `ota-client status`: what is installed and whom the device trusts (no network).
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{identity, Device, Keyring, StateDir};
use std::path::PathBuf;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client status --state /var/lib/ota\n",
    "  ota-client status --state /var/lib/ota --json\n\n",
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
    let device = Device::open(StateDir::new(&a.state), |_| {})?;
    let installed = device.installed()?;
    let root_version = device.updater().trusted().root().version;
    let ring = Keyring::load(device.state())?;
    let config = device.config();
    let cert = identity::certificate(device.state())?;
    let not_after = |c: &ota_client::pki::CertInfo| {
        c.not_after
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let slots = match config.slots {
        Some(_) => Some(device.slot_status()?),
        None => None,
    };
    let clock = device.clock_check();
    if a.json {
        // A/B devices: the slot status first, in its documented shape; then the rest.
        let mut out = match &slots {
            Some(s) => serde_json::to_value(s).unwrap_or_default(),
            None => serde_json::json!({}),
        };
        let rest = serde_json::json!({
            "server": config.server,
            "hardware_id": config.hardware_id,
            "image_name": config.image_name,
            "root_version": root_version,
            "installed": installed,
            "recipient_id": ring.device.as_ref().map(|k| k.id().to_string()),
            "keys": crate::keys::describe(device.state(), &ring),
            "tls": config.tls,
            "clock": {
                "now": clock.clock,
                "time_floor": clock.time_floor,
                "verification_time": clock.verification_time,
                "state": clock.state,
                "message": clock.message(),
            },
            "expired_metadata": config.expired_metadata,
            "identity": cert.as_ref().map(|c| serde_json::json!({
                "certificate": device.state().identity_cert(),
                "cn": c.subject_cn,
                "not_after": not_after(c),
                "spki_sha256": c.spki_sha256(),
            })),
        });
        if let (Some(map), serde_json::Value::Object(rest)) = (out.as_object_mut(), rest) {
            map.extend(rest);
        }
        print_json(&out);
    } else {
        println!("server:       {}", config.server);
        println!("hardware id:  {}", config.hardware_id);
        println!("trusted root: v{root_version}");
        match clock.message() {
            Some(m) => println!("clock:        {m}"),
            None => println!(
                "clock:        {} (time floor {})",
                clock
                    .clock
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                clock.time_floor.map_or("none yet".into(), |f| f
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            ),
        }
        match installed {
            Some(i) => println!(
                "installed:    {} {} at {} (sha256 {})",
                i.name,
                i.version,
                i.install_path.display(),
                i.image_sha256
            ),
            None => println!("installed:    nothing yet"),
        }
        if let Some(s) = &slots {
            print_slots(s);
        }
        match &ring.device {
            Some(k) => println!("device key:   recipient {}", k.id()),
            None => println!("device key:   none (ota-client keygen)"),
        }
        if ring.groups.is_empty() {
            println!("group keys:   none (ota-client keys import-group)");
        }
        for g in &ring.groups {
            println!("group key:    {} recipient {}", g.name, g.key.id());
        }
        if let Some(ca) = &config.tls.ca_bundle {
            println!("CA bundle:    {}", ca.display());
        }
        if let Some(pin) = &config.tls.pin_spki_sha256 {
            println!("pinned key:   sha256 {pin}");
        }
        if let Some(c) = &cert {
            println!(
                "identity:     CN={} until {}",
                c.subject_cn.as_deref().unwrap_or("-"),
                not_after(c)
            );
        }
    }
    Ok(0)
}

/// The A/B part of the human-readable status.
fn print_slots(s: &ota_client::device::SlotStatus) {
    println!(
        "booted slot:  {} (committed: {}), update state: {}",
        s.booted, s.committed, s.update_state
    );
    for (name, slot) in [("a", &s.slots.a), ("b", &s.slots.b)] {
        println!(
            "slot {name}:       {:?} version {}",
            slot.state,
            slot.version.as_deref().unwrap_or("unknown")
        );
    }
    println!(
        "boot env:     ota_slot={} upgrade_available={} bootcount={} bootlimit={}",
        s.boot.ota_slot, s.boot.upgrade_available, s.boot.bootcount, s.boot.bootlimit
    );
    if !s.failed_versions.is_empty() {
        println!(
            "failed:       {} (not retried)",
            s.failed_versions.join(", ")
        );
    }
    if let Some(e) = &s.last_error {
        println!("last error:   {e}");
    }
}
