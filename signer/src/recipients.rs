//! `ota-recipients.json`: who encrypted targets are for. Public keys only.
//!
//! Two kinds of recipients, both X25519 keys in the envelope's text form (`otapub1…`):
//!
//! - **devices**: one key pair per device, made on the device (`ota-client keygen`), which
//!   keeps the secret; a release for a device gets a per-device slip file;
//! - **groups**: one key pair per group (a hardware model, a fleet), made here by
//!   `ota-sign recipients group-create`, whose secret is written to the keys directory for
//!   provisioning into every device of the group; a release for a group gets one slip
//!   embedded in the signed metadata.
//!
//! The file lives in the repository directory (it holds no secret) and is replaced atomically.
use crate::{Error, Result};
use ota_formats::envelope::{RecipientId, RecipientPublicKey};
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use ota_fs::user_file;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// File name of the recipients list inside the repository directory.
pub const RECIPIENTS_FILE: &str = "ota-recipients.json";
/// Format version of the recipients file.
pub const RECIPIENTS_FORMAT: u32 = 1;
/// Largest recipients file (and `recipients import` list) read: about a million devices.
pub const MAX_RECIPIENTS_LEN: u64 = 256 << 20;
/// Longest recipient or group name, in bytes.
pub const MAX_NAME_LEN: usize = ota_formats::envelope::MAX_RECIPIENT_NAME_LEN;

/// A recipient group and its public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's public key (the secret is provisioned into its devices).
    pub public_key: RecipientPublicKey,
    /// Id of the public key (as written in slips).
    pub recipient_id: RecipientId,
}

/// A device and its public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Unique device name.
    pub name: String,
    /// The device's public key (its secret never leaves the device).
    pub public_key: RecipientPublicKey,
    /// Id of the public key: the device's slip is `<target>.slips/<id>.slip`.
    pub recipient_id: RecipientId,
    /// The group the device belongs to, if any.
    pub group: Option<String>,
}

/// The contents of `ota-recipients.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipients {
    /// Format version ([`RECIPIENTS_FORMAT`]).
    pub format: u32,
    /// Groups by name.
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
    /// Devices, sorted by name.
    #[serde(default)]
    pub devices: Vec<Device>,
}

impl Default for Recipients {
    fn default() -> Self {
        Recipients {
            format: RECIPIENTS_FORMAT,
            groups: BTreeMap::new(),
            devices: Vec::new(),
        }
    }
}

/// Check a device or group name: 1 to 64 ASCII letters, digits, `.`, `_`, `-`, starting with
/// a letter or digit (group names become key file names).
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = ota_formats::envelope::is_valid_recipient_name(name);
    if ok {
        Ok(())
    } else {
        Err(Error::input(
            format!("invalid {kind} name {name:?}"),
            format!(
                "use 1-{MAX_NAME_LEN} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

/// Parse a public key given on the command line, naming it in the error.
pub fn parse_public_key(owner: &str, text: &str) -> Result<RecipientPublicKey> {
    RecipientPublicKey::from_text(text).map_err(|e| {
        let shown: String = text.trim().chars().take(24).collect();
        let more = if text.trim().chars().count() > 24 {
            "…"
        } else {
            ""
        };
        Error::input(
            format!("invalid public key {shown:?}{more} for {owner}: {e}"),
            "pass the whole otapub1… line that `ota-client keygen` printed on the device",
        )
    })
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::repo(
        format!("{} is corrupt: {why}", path.display()),
        format!("restore {RECIPIENTS_FILE} from your backup or version control"),
    )
}

/// Path of the recipients file of the repository in `repo_dir`.
pub fn path(repo_dir: &Path) -> PathBuf {
    repo_dir.join(RECIPIENTS_FILE)
}

impl Recipients {
    /// Load the recipients of the repository in `repo_dir`; no file means none yet.
    pub fn load(repo_dir: &Path) -> Result<Self> {
        let p = path(repo_dir);
        let bytes = match user_file::read_optional(&p, MAX_RECIPIENTS_LEN) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Self::default()),
            Err(e) => {
                return Err(Error::user_file(
                    "recipients file",
                    e,
                    Error::repo,
                    &format!("restore {RECIPIENTS_FILE} from your backup or version control"),
                ))
            }
        };
        let r: Recipients = serde_json::from_slice(&bytes).map_err(|e| corrupt(&p, e))?;
        r.check().map_err(|why| corrupt(&p, why))?;
        Ok(r)
    }

    /// Consistency: supported format, sorted unique device names, ids matching keys, no key
    /// listed twice, groups of devices existing.
    fn check(&self) -> std::result::Result<(), String> {
        if self.format != RECIPIENTS_FORMAT {
            return Err(format!("unsupported format {}", self.format));
        }
        let mut ids = BTreeSet::new();
        for (name, g) in &self.groups {
            if g.public_key.id() != g.recipient_id {
                return Err(format!("group {name}: recipient_id does not match its key"));
            }
            if !ids.insert(g.recipient_id) {
                return Err(format!("group {name}: key listed twice"));
            }
        }
        for pair in self.devices.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(format!(
                    "devices not sorted or duplicated at {:?}",
                    pair[1].name
                ));
            }
        }
        for d in &self.devices {
            if d.public_key.id() != d.recipient_id {
                return Err(format!(
                    "device {}: recipient_id does not match its key",
                    d.name
                ));
            }
            if !ids.insert(d.recipient_id) {
                return Err(format!("device {}: key listed twice", d.name));
            }
            if let Some(g) = &d.group {
                if !self.groups.contains_key(g) {
                    return Err(format!("device {}: unknown group {g}", d.name));
                }
            }
        }
        Ok(())
    }

    /// Replace the file atomically.
    pub fn save(&self, repo_dir: &Path) -> Result<()> {
        let p = path(repo_dir);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::write(&p, e))?;
        bytes.push(b'\n');
        atomic::replace(&p, &bytes, PUBLIC_FILE).map_err(|e| Error::write(&p, e))
    }

    /// The device named `name`.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices
            .binary_search_by(|d| d.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.devices[i])
    }

    /// Who already holds `id` (a device or group), for duplicate-key errors.
    fn holder_of(&self, id: &RecipientId) -> Option<String> {
        if let Some((name, _)) = self.groups.iter().find(|(_, g)| g.recipient_id == *id) {
            return Some(format!("group {name}"));
        }
        self.devices
            .iter()
            .find(|d| d.recipient_id == *id)
            .map(|d| format!("device {}", d.name))
    }

    /// Add a device; refuses a duplicate name or key and an unknown group.
    pub fn add_device(
        &mut self,
        name: &str,
        key: RecipientPublicKey,
        group: Option<String>,
    ) -> Result<&Device> {
        validate_name("device", name)?;
        if let Some(g) = &group {
            validate_name("group", g)?;
            if !self.groups.contains_key(g) {
                return Err(Error::input(
                    format!("unknown group {g:?}"),
                    format!("create it first: ota-sign recipients group-create --repo DIR --keys KEYS_DIR {g}"),
                ));
            }
        }
        let at = match self.devices.binary_search_by(|d| d.name.as_str().cmp(name)) {
            Ok(_) => {
                return Err(Error::input(
                    format!("a recipient named {name:?} already exists"),
                    format!("pick another name, or remove it first: ota-sign recipients remove --repo DIR {name}"),
                ))
            }
            Err(at) => at,
        };
        let id = key.id();
        if let Some(holder) = self.holder_of(&id) {
            return Err(Error::input(
                format!("public key {id} is already registered as {holder}"),
                "each device needs its own key pair: run `ota-client keygen` on the new device",
            ));
        }
        self.devices.insert(
            at,
            Device {
                name: name.to_string(),
                public_key: key,
                recipient_id: id,
                group,
            },
        );
        Ok(&self.devices[at])
    }

    /// Remove a device; refuses an unknown name.
    pub fn remove_device(&mut self, name: &str) -> Result<Device> {
        match self.devices.binary_search_by(|d| d.name.as_str().cmp(name)) {
            Ok(i) => Ok(self.devices.remove(i)),
            Err(_) => Err(Error::input(
                format!("no recipient named {name:?}"),
                "see the registered names with: ota-sign recipients list --repo DIR",
            )),
        }
    }

    /// Add a group with its public key; refuses a duplicate name or key.
    pub fn add_group(&mut self, name: &str, key: RecipientPublicKey) -> Result<&Group> {
        validate_name("group", name)?;
        if self.groups.contains_key(name) {
            return Err(Error::input(
                format!("group {name:?} already exists"),
                "pick another name; its secret key is already in the keys directory",
            ));
        }
        let id = key.id();
        if let Some(holder) = self.holder_of(&id) {
            return Err(Error::input(
                format!("public key {id} is already registered as {holder}"),
                "re-run the command: a fresh key is drawn each time",
            ));
        }
        let g = self.groups.entry(name.to_string()).or_insert(Group {
            public_key: key,
            recipient_id: id,
        });
        Ok(g)
    }

    /// Add many devices at once (a fleet list), all or nothing: every entry is checked as
    /// by [`Recipients::add_device`] (also against the others) before any is added. Each entry
    /// comes with where it was read (e.g. "devices.txt line 7"), to name it in errors.
    pub fn import(&mut self, entries: Vec<(String, Device)>) -> Result<usize> {
        let mut names: BTreeSet<String> = self.devices.iter().map(|d| d.name.clone()).collect();
        let mut ids: BTreeMap<RecipientId, String> = self
            .groups
            .iter()
            .map(|(n, g)| (g.recipient_id, format!("group {n}")))
            .chain(
                self.devices
                    .iter()
                    .map(|d| (d.recipient_id, format!("device {}", d.name))),
            )
            .collect();
        let count = entries.len();
        let mut new = Vec::with_capacity(count);
        for (where_, d) in entries {
            let ctx = |e: Error| Error::input(format!("{where_}: {e}"), e.hint().to_string());
            validate_name("device", &d.name).map_err(ctx)?;
            if let Some(g) = &d.group {
                if !self.groups.contains_key(g) {
                    return Err(Error::input(
                        format!("{where_}: unknown group {g:?}"),
                        format!("create it first: ota-sign recipients group-create --repo DIR --keys KEYS_DIR {g}"),
                    ));
                }
            }
            if !names.insert(d.name.clone()) {
                return Err(Error::input(
                    format!("{where_}: a recipient named {:?} already exists", d.name),
                    "device names must be unique; remove the duplicate line or the registered device",
                ));
            }
            if let Some(holder) = ids.insert(d.recipient_id, format!("device {}", d.name)) {
                return Err(Error::input(
                    format!(
                        "{where_}: public key {} is already registered as {holder}",
                        d.recipient_id
                    ),
                    "each device needs its own key pair",
                ));
            }
            new.push(d);
        }
        self.devices.extend(new);
        self.devices.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(count)
    }

    /// Number of devices in `group`.
    pub fn members(&self, group: &str) -> usize {
        self.devices
            .iter()
            .filter(|d| d.group.as_deref() == Some(group))
            .count()
    }
}

/// One element of `--encrypt-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `group:NAME`: the group's key (one slip in the metadata).
    Group(String),
    /// `device:NAME`: the device's key (one slip file).
    Device(String),
    /// `all-devices`: every registered device (one slip file each).
    AllDevices,
    /// `hardware`: the groups named like the target's hardware ids.
    Hardware,
}

/// Parse the comma-separated `--encrypt-to` list.
pub fn parse_selectors(list: &str) -> Result<Vec<Selector>> {
    let hint = "use a comma list of group:NAME, device:NAME, all-devices and hardware, e.g. --encrypt-to group:board-a,device:lab-1";
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim) {
        let sel = if item == "all-devices" {
            Selector::AllDevices
        } else if item == "hardware" {
            Selector::Hardware
        } else if let Some(n) = item.strip_prefix("group:") {
            Selector::Group(n.to_string())
        } else if let Some(n) = item.strip_prefix("device:") {
            Selector::Device(n.to_string())
        } else {
            return Err(Error::input(
                format!("invalid --encrypt-to element {item:?}"),
                hint,
            ));
        };
        if !out.contains(&sel) {
            out.push(sel);
        }
    }
    Ok(out)
}

/// Recipients of one release, deduplicated by key.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Groups (name, key): slips embedded in the metadata.
    pub groups: Vec<(String, RecipientPublicKey)>,
    /// Devices (name, key): one slip file each.
    pub devices: Vec<(String, RecipientPublicKey)>,
}

impl Resolved {
    /// Whether nobody could decrypt.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.devices.is_empty()
    }
}

fn no_recipients(msg: String) -> Error {
    Error::input(
        msg,
        "register devices first (ota-sign recipients add --repo DIR NAME PUBKEY [--group GROUP]); nothing was written",
    )
}

impl Recipients {
    /// The keys a release for `selectors` is wrapped for. `hardware_ids` are the target's.
    ///
    /// Refused: unknown names, a group without devices, `all-devices` without devices,
    /// `hardware` when a hardware id has no group of that name, and an empty result.
    pub fn resolve(&self, selectors: &[Selector], hardware_ids: &[String]) -> Result<Resolved> {
        let mut out = Resolved::default();
        let mut seen = BTreeSet::new();
        let mut add_group = |out: &mut Resolved, name: &str| -> Result<()> {
            let Some(g) = self.groups.get(name) else {
                return Err(Error::input(
                    format!("unknown recipient group {name:?} in --encrypt-to"),
                    "see the groups with: ota-sign recipients list --repo DIR",
                ));
            };
            if self.members(name) == 0 {
                return Err(no_recipients(format!(
                    "recipient group {name:?} has no devices"
                )));
            }
            if seen.insert(g.recipient_id) {
                out.groups.push((name.to_string(), g.public_key.clone()));
            }
            Ok(())
        };
        let mut device_ids = BTreeSet::new();
        let mut add_device = |out: &mut Resolved, d: &Device| {
            if device_ids.insert(d.recipient_id) {
                out.devices.push((d.name.clone(), d.public_key.clone()));
            }
        };
        for sel in selectors {
            match sel {
                Selector::Group(name) => add_group(&mut out, name)?,
                Selector::Hardware => {
                    for hw in hardware_ids {
                        if !self.groups.contains_key(hw) {
                            return Err(Error::input(
                                format!("--encrypt-to hardware: hardware id {hw:?} has no recipient group of that name"),
                                format!("create it (ota-sign recipients group-create --repo DIR --keys KEYS_DIR {hw}), or name the recipients explicitly"),
                            ));
                        }
                        add_group(&mut out, hw)?;
                    }
                }
                Selector::Device(name) => {
                    let Some(d) = self.device(name) else {
                        return Err(Error::input(
                            format!("unknown recipient device {name:?} in --encrypt-to"),
                            "see the devices with: ota-sign recipients list --repo DIR",
                        ));
                    };
                    add_device(&mut out, d);
                }
                Selector::AllDevices => {
                    if self.devices.is_empty() {
                        return Err(no_recipients(
                            "--encrypt-to all-devices: no devices are registered".into(),
                        ));
                    }
                    for d in &self.devices {
                        add_device(&mut out, d);
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(no_recipients(
                "--encrypt-to resolves to no recipients".into(),
            ));
        }
        Ok(out)
    }
}
