//! `ota-sign recipients`: the devices and groups that encrypted targets are for.
use crate::keys;
use crate::recipients::{self, parse_public_key, validate_name, Device, Recipients};
use crate::{Error, Result};
use ota_formats::envelope::{RecipientId, RecipientSecretKey};
use ota_fs::atomic;
use ota_fs::mode::SECRET_FILE;
use ota_fs::user_file;
use ota_repo::lock::RepoLock;
use ota_repo::Repository;
use serde::Serialize;
use std::path::{Path, PathBuf};

const EXAMPLE: &str = "\
Examples:
  ota-sign recipients group-create --repo repo --keys ~/ota-keys board-a
  ota-sign recipients add --repo repo gw-0001 otapub1Qm9v... --group board-a
  ota-sign recipients list --repo repo --json
  ota-sign recipients remove --repo repo gw-0001
  ota-sign add --repo repo --keys ~/ota-keys fw.img --name gw --version 1.2.0 --hardware board-a --encrypt-to group:board-a,device:lab-1

Devices make their key pair themselves (`ota-client keygen` prints the otapub1... public key).
A group's key pair is made by group-create: its secret goes to KEYS_DIR/group-GROUP.otasec
(mode 0600) and is provisioned into every device of the group. Public keys are kept in
DIR/ota-recipients.json.";

/// Arguments of `recipients`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// The operation.
    #[command(subcommand)]
    pub command: Sub,
}

/// Operations on recipients.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Register a device's public key (optionally as a member of a group).
    #[command(
        after_help = "Example:\n  ota-sign recipients add --repo repo gw-0001 otapub1Qm9v... --group board-a"
    )]
    Add {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// Unique device name (letters, digits, '.', '_', '-').
        name: String,
        /// The device's public key, as printed by `ota-client keygen` (otapub1...).
        #[arg(value_name = "PUBKEY")]
        public_key: String,
        /// Group the device belongs to (created with `recipients group-create`).
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register many devices from a file: one `NAME PUBKEY [GROUP]` per line, all or nothing.
    #[command(
        after_help = "Example:\n  ota-sign recipients import --repo repo fleet.txt\n\nfleet.txt (blank lines and lines starting with # are ignored):\n  gw-0001 otapub1Qm9v... board-a\n  lab-1   otapub1Zx3k..."
    )]
    Import {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The device list.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unregister a device: later releases have no slip for it (earlier ones keep theirs).
    #[command(after_help = "Example:\n  ota-sign recipients remove --repo repo gw-0001")]
    Remove {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// Device name.
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List groups and devices.
    #[command(after_help = "Example:\n  ota-sign recipients list --repo repo --json")]
    List {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a group and its key pair; the secret goes to KEYS_DIR/group-GROUP.otasec.
    #[command(
        after_help = "Example:\n  ota-sign recipients group-create --repo repo --keys ~/ota-keys board-a\n\nProvision the secret key file into every device of the group (e.g. as the\nclient's group key); anyone holding it can decrypt every release for the group."
    )]
    GroupCreate {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// Directory of the private keys (outside the repository).
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        /// Group name (letters, digits, '.', '_', '-'), e.g. a hardware id.
        group: String,
        /// Also print the secret key (otasec1...) on stdout, for provisioning tools.
        #[arg(long)]
        print_secret: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A group as listed.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    /// Group name.
    pub name: String,
    /// Public key text.
    pub public_key: String,
    /// Recipient id.
    pub recipient_id: RecipientId,
    /// Number of member devices.
    pub devices: usize,
}

/// What `recipients list` reports.
#[derive(Debug, Serialize)]
pub struct ListReport {
    /// Groups.
    pub groups: Vec<GroupReport>,
    /// Devices, by name.
    pub devices: Vec<Device>,
}

/// What `recipients group-create` reports.
#[derive(Debug, Serialize)]
pub struct GroupCreated {
    /// The group.
    pub group: GroupReport,
    /// Where its secret key was written.
    pub secret_key_file: PathBuf,
    /// The secret key, only with `--print-secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

/// File name of a group's secret key in the keys directory: `group-NAME.otasec`.
pub fn group_secret_file(group: &str) -> String {
    format!("group-{group}.otasec")
}

/// Run `recipients`.
pub fn run(a: Args) -> Result<u8> {
    match a.command {
        Sub::Add {
            repo,
            name,
            public_key,
            group,
            json,
        } => {
            validate_name("device", &name)?;
            let key = parse_public_key(&format!("device {name}"), &public_key)?;
            let _lock = RepoLock::acquire(&repo)?;
            Repository::load(&repo)?;
            let mut r = Recipients::load(&repo)?;
            let d = r.add_device(&name, key, group)?.clone();
            r.save(&repo)?;
            if json {
                super::print_json(&d);
            } else {
                let g = d
                    .group
                    .as_deref()
                    .map(|g| format!(" in group {g}"))
                    .unwrap_or_default();
                println!(
                    "added device {}{g} (recipient id {})",
                    d.name, d.recipient_id
                );
            }
            Ok(0)
        }
        Sub::Import { repo, file, json } => {
            let entries = read_fleet(&file)?;
            let _lock = RepoLock::acquire(&repo)?;
            Repository::load(&repo)?;
            let mut r = Recipients::load(&repo)?;
            let added = r.import(entries)?;
            r.save(&repo)?;
            if json {
                super::print_json(&serde_json::json!({"added": added, "devices": r.devices.len()}));
            } else {
                println!("added {added} device(s); {} registered", r.devices.len());
            }
            Ok(0)
        }
        Sub::Remove { repo, name, json } => {
            let _lock = RepoLock::acquire(&repo)?;
            Repository::load(&repo)?;
            let mut r = Recipients::load(&repo)?;
            let d = r.remove_device(&name)?;
            r.save(&repo)?;
            if json {
                super::print_json(&d);
            } else {
                println!(
                    "removed device {} (recipient id {}); releases added from now on have no slip for it",
                    d.name, d.recipient_id
                );
                if let Some(g) = &d.group {
                    println!("note: it still holds the secret key of group {g}, which decrypts every release for {g}");
                }
            }
            Ok(0)
        }
        Sub::List { repo, json } => {
            Repository::load(&repo)?;
            let r = Recipients::load(&repo)?;
            let report = ListReport {
                groups: r
                    .groups
                    .iter()
                    .map(|(name, g)| group_report(&r, name, g))
                    .collect(),
                devices: r.devices.clone(),
            };
            if json {
                super::print_json(&report);
            } else {
                print_list(&report);
            }
            Ok(0)
        }
        Sub::GroupCreate {
            repo,
            keys,
            group,
            print_secret,
            json,
        } => group_create(&repo, &keys, &group, print_secret, json),
    }
}

/// Parse a fleet list: `NAME PUBKEY [GROUP]` per line.
fn read_fleet(file: &Path) -> Result<Vec<(String, Device)>> {
    let text = user_file::read_to_string(file, recipients::MAX_RECIPIENTS_LEN).map_err(|e| {
        Error::user_file(
            "device list",
            e,
            Error::input,
            "pass a readable text file with one `NAME PUBKEY [GROUP]` per line",
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let where_ = format!("{} line {}", file.display(), i + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (name, key, group) = match fields[..] {
            [n, k] => (n, k, None),
            [n, k, g] => (n, k, Some(g.to_string())),
            _ => {
                return Err(Error::input(
                    format!(
                        "{where_}: expected `NAME PUBKEY [GROUP]`, got {} fields",
                        fields.len()
                    ),
                    "one device per line: name, otapub1... key, optional group",
                ))
            }
        };
        let key = parse_public_key(&format!("device {name} ({where_})"), key)?;
        out.push((
            where_,
            Device {
                name: name.to_string(),
                recipient_id: key.id(),
                public_key: key,
                group,
            },
        ));
    }
    Ok(out)
}

fn group_report(r: &Recipients, name: &str, g: &recipients::Group) -> GroupReport {
    GroupReport {
        name: name.to_string(),
        public_key: g.public_key.to_text(),
        recipient_id: g.recipient_id,
        devices: r.members(name),
    }
}

fn print_list(report: &ListReport) {
    if report.groups.is_empty() && report.devices.is_empty() {
        println!("no recipients (add some with `ota-sign recipients add`)");
        return;
    }
    for g in &report.groups {
        println!(
            "group  {:<24} {}  {} device(s)",
            g.name, g.recipient_id, g.devices
        );
    }
    for d in &report.devices {
        println!(
            "device {:<24} {}  {}",
            d.name,
            d.recipient_id,
            d.group.as_deref().unwrap_or("-")
        );
    }
}

fn group_create(
    repo: &Path,
    keys_dir: &Path,
    group: &str,
    print_secret: bool,
    json: bool,
) -> Result<u8> {
    validate_name("group", group)?;
    keys::check_outside_repo(keys_dir, repo)?;
    let _lock = RepoLock::acquire(repo)?;
    Repository::load(repo)?;
    let mut r = Recipients::load(repo)?;
    let secret = RecipientSecretKey::generate();
    // Checks the name and key are new before anything is written.
    r.add_group(group, secret.public_key().clone())?;
    let file = keys_dir.join(group_secret_file(group));
    if file.exists() {
        return Err(Error::keys(
            format!("{} already exists", file.display()),
            "a group of that name was created before (perhaps for another repository); pick another name, or move the old file away",
        ));
    }
    keys::ensure_key_dir(keys_dir)?;
    let mut text = secret.to_text();
    text.push('\n');
    // The secret first: a crash before the recipients file is saved leaves an unused key file.
    atomic::write_new(&file, text.as_bytes(), SECRET_FILE).map_err(|e| Error::write(&file, e))?;
    r.save(repo)?;
    let g = &r.groups[group];
    let report = GroupCreated {
        group: group_report(&r, group, g),
        secret_key_file: file,
        secret_key: print_secret.then(|| secret.to_text().to_string()),
    };
    if json {
        super::print_json(&report);
    } else {
        println!(
            "created group {group} (recipient id {}); its secret key is in {} (mode 600)",
            g.recipient_id,
            report.secret_key_file.display()
        );
        if let Some(s) = &report.secret_key {
            println!("{s}");
        } else {
            println!("provision that file into every device of the group");
        }
    }
    Ok(0)
}
