//! `ota-client keys`: the device's decryption keys (group secrets and the device key).
use crate::{exit_codes, print_json, Failure};
use ota_client::device::{keys, Keyring, StateDir};
use std::io::Read;
use std::path::PathBuf;

/// Largest key file read (an `otasec1...` line is 55 bytes).
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Arguments of `keys`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client keys import-group --state /var/lib/ota --name board-a group-board-a.otasec\n",
    "  ota-client keys list --state /var/lib/ota --json\n\n",
    exit_codes!()
))]
pub struct Args {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Store a group's secret key (from `ota-sign recipients group-create`) on this device.
    ImportGroup(ImportArgs),
    /// Show the device key id and the imported group key ids.
    List(ListArgs),
}

/// Arguments of `keys import-group`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client keys import-group --state /var/lib/ota --name board-a group-board-a.otasec\n",
    "  provision-tool get-secret board-a | ota-client keys import-group --state /var/lib/ota --name board-a -\n\n",
    "FILE holds one line otasec1... (KEYS/group-NAME.otasec written by `ota-sign recipients\n",
    "group-create`). It is stored in DIR/group-keys/NAME.key (mode 0600); the device then\n",
    "installs releases encrypted with `--encrypt-to group:NAME`.\n\n",
    exit_codes!()
))]
pub struct ImportArgs {
    /// Device state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The group's name (as in `ota-sign recipients list`).
    #[arg(long, value_name = "GROUP")]
    pub name: String,
    /// File with the group's secret key, or `-` for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace an existing key of this group.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `keys list`.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  ota-client keys list --state /var/lib/ota\n",
    "  ota-client keys list --state /var/lib/ota --json | jq -r '.group_keys[].name'\n\n",
    exit_codes!()
))]
pub struct ListArgs {
    /// Device state directory.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    match a.command {
        KeysCommand::ImportGroup(a) => import(a),
        KeysCommand::List(a) => list(a),
    }
}

fn read_text(file: &std::path::Path) -> Result<zeroize::Zeroizing<String>, Failure> {
    let mut text = zeroize::Zeroizing::new(String::new());
    let result = if file.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_KEY_FILE_LEN)
            .read_to_string(&mut text)
    } else {
        // Regular files only: a FIFO or a link to /dev/zero must not hang the device.
        ota_fs::user_file::open(file)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|f| f.take(MAX_KEY_FILE_LEN).read_to_string(&mut text))
    };
    result.map_err(|e| {
        Failure::usage(
            format!("reading the group key {}: {e}", file.display()),
            "pass the group's otasec1... key file (or - for stdin)",
        )
    })?;
    Ok(text)
}

fn import(a: ImportArgs) -> Result<u8, Failure> {
    let state = StateDir::new(&a.state);
    let text = read_text(&a.file)?;
    let source = a.file.display().to_string();
    let key = keys::import_group(&state, &a.name, &text, &source, a.force)?;
    let id = key.id().to_string();
    if a.json {
        print_json(&serde_json::json!({
            "name": a.name,
            "recipient_id": id,
            "key_file": state.group_key(&a.name),
        }));
    } else {
        println!("imported group {} (recipient {id})", a.name);
    }
    Ok(0)
}

/// JSON description of the held keys (also used by `status`).
pub fn describe(state: &StateDir, ring: &Keyring) -> serde_json::Value {
    serde_json::json!({
        "device_key": ring.device.as_ref().map(|k| serde_json::json!({
            "recipient_id": k.id().to_string(),
            "public_key": k.public_key().to_text(),
            "key_file": state.device_key(),
        })),
        "group_keys": ring.groups.iter().map(|g| serde_json::json!({
            "name": g.name,
            "recipient_id": g.key.id().to_string(),
            "key_file": state.group_key(&g.name),
        })).collect::<Vec<_>>(),
    })
}

fn list(a: ListArgs) -> Result<u8, Failure> {
    let state = StateDir::new(&a.state);
    let ring = Keyring::load(&state)?;
    if a.json {
        print_json(&describe(&state, &ring));
    } else {
        match &ring.device {
            Some(k) => println!("device key:  recipient {} ({})", k.id(), k.public_key()),
            None => println!("device key:  none (ota-client keygen)"),
        }
        if ring.groups.is_empty() {
            println!("group keys:  none (ota-client keys import-group)");
        }
        for g in &ring.groups {
            println!("group key:   {} recipient {}", g.name, g.key.id());
        }
    }
    Ok(0)
}
