//! `ota-client enroll`: make the device's TLS identity key and signing request, or install
//! the certificate the fleet CA issued for it.
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{identity, DeviceError, StateDir};
use ota_client::pki::PkiError;
use std::path::PathBuf;

/// Arguments of `enroll`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client enroll --state /var/lib/ota --name gw-0042            # key + DIR/identity.csr\n",
    "  ota-ca issue --dir fleet-ca --csr identity.csr --out gw-0042.pem  # on the operator's CA host\n",
    "  ota-client enroll --state /var/lib/ota --cert gw-0042.pem        # install it\n\n",
    "The identity key (ECDSA P-256, DIR/identity.key, mode 0600) is made on the device and never\n",
    "leaves it; only the signing request DIR/identity.csr (subject CN=--name) goes to the CA.\n",
    "--cert installs the issued certificate as DIR/identity.pem after checking that it is a\n",
    "certificate, has not expired and is for DIR/identity.key; an initialised device then\n",
    "presents it to servers that require mutual TLS.\n\n",
    exit_codes!()
))]
pub struct Args {
    /// Device state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Common name to request: the device id in the fleet CA, e.g. its serial number (1 to 64
    /// of A-Z a-z 0-9 . _ -). Required to make a request: no default is unique per device.
    #[arg(
        long,
        value_name = "CN",
        required_unless_present = "cert",
        conflicts_with = "cert"
    )]
    pub name: Option<String>,
    /// Install the certificate the CA issued for DIR/identity.csr (PEM, leaf first).
    #[arg(long, value_name = "CERT.pem")]
    pub cert: Option<PathBuf>,
    /// Replace an existing identity key (its certificate is removed; the device presents no
    /// certificate until a new one is installed).
    #[arg(long, conflicts_with = "cert")]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let state = StateDir::new(&a.state);
    match (&a.cert, &a.name) {
        (Some(cert), _) => install(&a, &state, cert),
        (None, Some(cn)) => request(&a, &state, cn),
        // clap requires one of them.
        (None, None) => Err(Failure::usage(
            "pass --name CN to make a signing request, or --cert CERT.pem to install a certificate",
            "see `ota-client enroll --help`",
        )),
    }
}

fn request(a: &Args, state: &StateDir, cn: &str) -> Result<u8, Failure> {
    let req = identity::create(state, cn, a.force).map_err(|e| hint(e, state))?;
    if a.json {
        print_json(&serde_json::json!({
            "csr": req.csr,
            "cn": req.cn,
            "key_file": req.key,
        }));
    } else {
        println!("{}", req.csr.display());
        eprintln!(
            "certificate signing request for CN={} written; have the fleet CA sign it, then run \
             `ota-client enroll --state {} --cert CERT.pem`",
            req.cn,
            a.state.display()
        );
    }
    Ok(0)
}

fn install(a: &Args, state: &StateDir, cert: &std::path::Path) -> Result<u8, Failure> {
    let info = identity::install_certificate(state, cert).map_err(|e| hint(e, state))?;
    let in_use = state.config().exists();
    let not_after = info
        .not_after
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if a.json {
        print_json(&serde_json::json!({
            "certificate": state.identity_cert(),
            "cn": info.subject_cn,
            "not_after": not_after,
            "spki_sha256": info.spki_sha256(),
            "in_use": in_use,
        }));
    } else {
        println!(
            "installed {} (CN={}, valid until {not_after})",
            state.identity_cert().display(),
            info.subject_cn.as_deref().unwrap_or("-"),
        );
        if in_use {
            println!("config.json presents it to servers that require mutual TLS");
        } else {
            println!("`ota-client init` will use it");
        }
    }
    Ok(0)
}

/// Hints that name the commands for the enrollment failures.
fn hint(e: DeviceError, state: &StateDir) -> Failure {
    let dir = state.root().display();
    let hint = match &e {
        DeviceError::NoIdentityKey { .. } => Some(format!(
            "run `ota-client enroll --state {dir} --name CN` first, have the CA sign {dir}/identity.csr, then install its certificate with --cert"
        )),
        DeviceError::Certificate(PkiError::KeyMismatch { .. }) => Some(format!(
            "this certificate was issued for another key: have the CA sign {dir}/identity.csr (e.g. `ota-ca issue --csr {dir}/identity.csr`) and install that certificate"
        )),
        DeviceError::InvalidSetting { .. } => Some(
            "pass --name DEVICE-ID: 1 to 64 characters of A-Z a-z 0-9 . _ - (the device id in the fleet CA)".into(),
        ),
        DeviceError::AlreadyExists { .. } => Some(format!(
            "this device already has an identity key; install its certificate with `ota-client enroll --state {dir} --cert CERT.pem`, or pass --force to replace the key (its certificate stops working)"
        )),
        _ => None,
    };
    let mut f = Failure::from(e);
    if let Some(h) = hint {
        f.hint = h;
    }
    f
}
