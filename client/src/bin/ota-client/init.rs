//! `ota-client init`: write the configuration and trust the root.
use crate::{exit_codes, print_json, Failure};
use ota_client::boot::BootSpec;
use ota_client::device::{Device, DeviceConfig, DeviceError, SlotConfig, StateDir};
use ota_client::transport::{TlsSettings, TlsVersion};
use std::path::{Path, PathBuf};

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client init --state /var/lib/ota --root root.json --server https://updates.example.com --hardware board-a\n",
    "  ota-client init --state st --root 1.root.json --server http://127.0.0.1:8080 --hardware board-a --name gateway-fw --force\n",
    "  ota-client init --state /var/lib/ota --root root.json --server https://updates.example.com --hardware board-a \\\n",
    "      --name gateway-fw --slot a=/dev/disk/by-partlabel/rootfs_a --slot b=/dev/disk/by-partlabel/rootfs_b --boot-control uboot\n",
    "  ota-client init --state st --root root.json --server http://127.0.0.1:8080 --hardware board-a \\\n",
    "      --slot a=slot-a.img --slot b=slot-b.img --slot-size 64MiB --boot-control file:bootenv.txt\n",
    "  ota-client init --state /var/lib/ota --root root.json --server https://10.0.0.5:8443 --hardware board-a \\\n",
    "      --ca-bundle fleet-ca.pem [--pin-spki SHA256] [--client-cert device.pem --client-key device.key]\n\n",
    "A/B mode (--slot a=PATH --slot b=PATH --boot-control ...): updates are written to the\n",
    "inactive slot, read back, and tried at the next boot; `ota-client mark-good` commits them,\n",
    "and the boot loader falls back after bootlimit failed boots (client/BOOT.md). For file: and\n",
    "grub: the environment is created if missing (ota_slot=a, upgrade_available=0, bootcount=0,\n",
    "bootlimit=3), never overwritten; the slot it selects is taken as the running, committed one.\n\n",
    "ROOT.json is the repository's trusted root (from the release owner, e.g. metadata/1.root.json);\n",
    "it must be signed by its own threshold of keys.\n\n",
    "TLS: without --ca-bundle or --pin-spki, https:// servers must chain to the built-in public\n",
    "roots. The CA bundle, client certificate and key are checked now and copied into DIR\n",
    "(ca.pem, identity.pem, identity.key mode 0600): the device does not depend on the files\n",
    "given. A device enrolled with `ota-client enroll` uses its installed certificate.\n\n",
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
    /// PEM file of the CA certificate(s) the server must chain to, instead of the public
    /// roots (copied to DIR/ca.pem).
    #[arg(long, value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,
    /// sha256 (64 hex digits) of the server's public key (SubjectPublicKeyInfo). With
    /// --ca-bundle both must pass; alone, a self-signed server with this key is accepted.
    #[arg(long, value_name = "SHA256")]
    pub pin_spki: Option<String>,
    /// Client certificate (PEM, leaf first) for servers that require mutual TLS (copied to
    /// DIR/identity.pem).
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Private key of --client-cert (PEM; copied to DIR/identity.key, mode 0600).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// HTTP proxy for every request (http://HOST:PORT; HTTPS is tunnelled through it).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Lowest TLS version accepted: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", default_value = "1.2")]
    pub tls_min: TlsVersion,
    /// An A/B slot, `a=PATH` and `b=PATH` (a regular file or a block device; links such as
    /// /dev/disk/by-partlabel/NAME are followed). Give both, with --boot-control.
    #[arg(long = "slot", value_name = "a|b=PATH", requires = "boot_control")]
    pub slots: Vec<String>,
    /// How the boot loader is told which slot to boot: `uboot` (fw_printenv/fw_setenv with
    /// /etc/fw_env.config), `uboot:FW_ENV_CONFIG`, `grub:ENVFILE` (grub-editenv) or
    /// `file:ENVFILE` (key=value lines).
    #[arg(long, value_name = "SPEC", requires = "slots")]
    pub boot_control: Option<String>,
    /// Capacity of each regular-file slot (bytes, or with KiB/MiB/GiB); block devices have
    /// their own size.
    #[arg(long, value_name = "SIZE", requires = "slots")]
    pub slot_size: Option<String>,
    /// Replace an existing state (discards metadata, downloads and the installed record;
    /// replaces an identity key that differs from --client-key).
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `path` as an absolute path (it is read now, from the current directory).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
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
    let mut config = DeviceConfig::new(&a.server, &a.hardware, a.name.as_deref())?;
    config.tls = TlsSettings {
        ca_bundle: a.ca_bundle.as_deref().map(absolute),
        pin_spki_sha256: a.pin_spki.clone(),
        client_cert: a.client_cert.as_deref().map(absolute),
        client_key: a.client_key.as_deref().map(absolute),
        proxy: a.proxy.clone(),
        min_version: a.tls_min,
    };
    config.slots = slot_config(&a)?;
    if a.name.is_none() {
        tracing::warn!(
            "no --name: the first image installed fixes which image this device follows"
        );
    }
    let state = StateDir::new(&a.state);
    Device::init(&state, &config, &root, a.force).map_err(tls_hint)?;
    let device = Device::open(state, |_| {})?;
    let root_version = device.updater().trusted().root().version;
    let tls = &device.config().tls;
    if a.json {
        print_json(&serde_json::json!({
            "state": a.state,
            "server": config.server,
            "hardware_id": config.hardware_id,
            "image_name": config.image_name,
            "root_version": root_version,
            "tls": tls,
            "slots": device.config().slots,
        }));
    } else {
        println!(
            "initialised {} for hardware {} (server {}, trusted root v{root_version})",
            a.state.display(),
            config.hardware_id,
            config.server
        );
        if let Some(ca) = &tls.ca_bundle {
            println!("trusting the CA bundle {}", ca.display());
        }
        if let Some(pin) = &tls.pin_spki_sha256 {
            println!("pinned server key sha256 {pin}");
        }
        if let Some(cert) = &tls.client_cert {
            println!("client certificate {}", cert.display());
        }
        if let Some(s) = &device.config().slots {
            println!(
                "A/B slots: a={} b={}, boot control {}",
                s.a.display(),
                s.b.display(),
                s.boot_control
            );
        }
    }
    Ok(0)
}

/// The init-specific hint for unusable TLS settings: name the options.
fn tls_hint(e: DeviceError) -> Failure {
    let tls = matches!(e, DeviceError::Tls(_) | DeviceError::Certificate(_));
    let mut f = Failure::from(e);
    if tls {
        f.hint = "check --ca-bundle (PEM CA certificates), --client-cert/--client-key (a PEM \
                  certificate and the key it was issued for), --pin-spki (64 hex digits) and \
                  --proxy (http://HOST:PORT); nothing was changed"
            .into();
    }
    f
}

/// The A/B configuration from `--slot`, `--boot-control` and `--slot-size`, if given.
fn slot_config(a: &Args) -> Result<Option<SlotConfig>, Failure> {
    let Some(spec) = &a.boot_control else {
        return Ok(None);
    };
    let usage = |msg: String| {
        Failure::usage(
            msg,
            "give --slot a=PATH --slot b=PATH --boot-control uboot|uboot:FW_ENV_CONFIG|grub:ENVFILE|file:ENVFILE",
        )
    };
    let boot_control: BootSpec = spec
        .parse()
        .map_err(|e: ota_client::boot::ParseError| usage(e.to_string()))?;
    let (mut slot_a, mut slot_b) = (None, None);
    for s in &a.slots {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| usage(format!("--slot {s:?} is not a=PATH or b=PATH")))?;
        let place = match name {
            "a" => &mut slot_a,
            "b" => &mut slot_b,
            _ => return Err(usage(format!("--slot {s:?}: the slots are named a and b"))),
        };
        if place.is_some() {
            return Err(usage(format!("--slot {name}= is given twice")));
        }
        *place = Some(absolute(Path::new(path)));
    }
    let (Some(slot_a), Some(slot_b)) = (slot_a, slot_b) else {
        return Err(usage(
            "both --slot a=PATH and --slot b=PATH are needed".into(),
        ));
    };
    let slot_size = a
        .slot_size
        .as_deref()
        .map(|s| {
            parse_size(s).ok_or_else(|| {
                usage(format!(
                    "--slot-size {s:?} is not a size like 67108864 or 64MiB"
                ))
            })
        })
        .transpose()?;
    Ok(Some(SlotConfig {
        a: slot_a,
        b: slot_b,
        boot_control,
        slot_size,
    }))
}

/// `1234`, `64KiB`, `64MiB`, `2GiB`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}
