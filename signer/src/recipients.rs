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
    /// Devices: one slip each.
    pub devices: DeviceList,
}

impl Resolved {
    /// Whether nobody could decrypt.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.devices.is_empty()
    }
}

/// The devices of a release: a few named ones held here, or every registered device, read
/// again from `ota-recipients.json` whenever they are walked ([`DeviceList::for_each_batch`]),
/// so a million devices cost no memory.
#[derive(Debug, Clone)]
pub enum DeviceList {
    /// These devices (name, key).
    Listed(Vec<(String, RecipientPublicKey)>),
    /// Every device of the recipients file of the repository in `repo_dir`.
    All {
        /// The repository directory (see [`path`]).
        repo_dir: PathBuf,
        /// How many devices it listed when the release was resolved.
        count: u64,
    },
}

impl Default for DeviceList {
    fn default() -> Self {
        DeviceList::Listed(Vec::new())
    }
}

impl DeviceList {
    /// Number of devices.
    pub fn len(&self) -> u64 {
        match self {
            DeviceList::Listed(d) => d.len() as u64,
            DeviceList::All { count, .. } => *count,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hand the devices' keys to `f` in batches of at most `batch` keys, in file order. A
    /// streamed list is checked again as it is read; one that changed size since it was
    /// resolved is refused (the repository lock keeps other `ota-sign` runs out).
    pub fn for_each_batch(
        &self,
        batch: usize,
        mut f: impl FnMut(Vec<RecipientPublicKey>) -> Result<()>,
    ) -> Result<()> {
        let batch = batch.max(1);
        match self {
            DeviceList::Listed(devices) => {
                for part in devices.chunks(batch) {
                    f(part.iter().map(|(_, k)| k.clone()).collect())?;
                }
                Ok(())
            }
            DeviceList::All { repo_dir, count } => {
                let mut pending = Vec::with_capacity(batch);
                let mut seen = 0u64;
                stream(repo_dir, |d| {
                    seen += 1;
                    pending.push(d.public_key);
                    if pending.len() == batch {
                        f(std::mem::replace(&mut pending, Vec::with_capacity(batch)))?;
                    }
                    Ok(())
                })?;
                if !pending.is_empty() {
                    f(pending)?;
                }
                if seen != *count {
                    return Err(Error::repo(
                        format!(
                            "{} changed while it was read: {seen} devices, {count} before",
                            path(repo_dir).display()
                        ),
                        "run one ota-sign command at a time on a repository, then re-run",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What a streamed pass over `ota-recipients.json` saw besides the devices.
#[derive(Debug, Default)]
pub struct Head {
    /// Groups by name.
    pub groups: BTreeMap<String, Group>,
    /// Number of devices.
    pub devices: u64,
    /// Number of devices of each group.
    pub members: BTreeMap<String, u64>,
}

/// Read the recipients file of `repo_dir` once, handing each device to `on_device` as it is
/// parsed: memory stays that of one device however large the fleet. No file means no devices
/// and no groups.
///
/// The same checks as [`Recipients::load`] (format, ids matching keys, device names sorted
/// and unique, known groups) except one that would need a set of every key: a key listed for
/// two devices. Writing their slips refuses that instead (two slips for one key).
pub fn stream(repo_dir: &Path, on_device: impl FnMut(Device) -> Result<()>) -> Result<Head> {
    use std::io::Read;
    let p = path(repo_dir);
    let file_error = |e| {
        Error::user_file(
            "recipients file",
            e,
            Error::repo,
            &format!("restore {RECIPIENTS_FILE} from your backup or version control"),
        )
    };
    let file = match user_file::open(&p) {
        Ok(f) => f,
        Err(user_file::UserFileError::NotFound { .. }) => return Ok(Head::default()),
        Err(e) => return Err(file_error(e)),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_RECIPIENTS_LEN {
        return Err(file_error(user_file::UserFileError::TooLarge {
            path: p.clone(),
            limit: MAX_RECIPIENTS_LEN,
        }));
    }
    let reader =
        std::io::BufReader::with_capacity(1 << 16, file.take(MAX_RECIPIENTS_LEN.saturating_add(1)));
    let mut failure = None;
    let mut walk = streaming::Walk::new(on_device, &mut failure);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let parsed = serde::Deserializer::deserialize_map(&mut de, &mut walk).and_then(|()| de.end());
    let head = walk.finish();
    if let Some(err) = failure {
        return Err(err);
    }
    parsed.map_err(|e| corrupt(&p, e))?;
    head.map_err(|why| corrupt(&p, why))
}

/// The serde visitor of [`stream`].
mod streaming {
    use super::{Device, Error, Group, Head, RECIPIENTS_FORMAT};
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt;

    pub(super) struct Walk<'a, F> {
        on_device: F,
        failure: &'a mut Option<Error>,
        format: Option<u32>,
        head: Head,
        groups_seen: bool,
        last_name: Option<String>,
    }

    impl<'a, F: FnMut(Device) -> crate::Result<()>> Walk<'a, F> {
        pub(super) fn new(on_device: F, failure: &'a mut Option<Error>) -> Self {
            Walk {
                on_device,
                failure,
                format: None,
                head: Head::default(),
                groups_seen: false,
                last_name: None,
            }
        }

        /// The checks that need the whole file: format, groups of the devices.
        pub(super) fn finish(self) -> Result<Head, String> {
            match self.format {
                Some(RECIPIENTS_FORMAT) => {}
                Some(f) => return Err(format!("unsupported format {f}")),
                None => return Err("missing field `format`".into()),
            }
            let mut ids = BTreeSet::new();
            for (name, g) in &self.head.groups {
                if g.public_key.id() != g.recipient_id {
                    return Err(format!("group {name}: recipient_id does not match its key"));
                }
                if !ids.insert(g.recipient_id) {
                    return Err(format!("group {name}: key listed twice"));
                }
            }
            if let Some(g) = self
                .head
                .members
                .keys()
                .find(|g| !self.head.groups.contains_key(*g))
            {
                return Err(format!("a device of unknown group {g}"));
            }
            Ok(self.head)
        }

        fn device(&mut self, d: &Device) -> Result<(), String> {
            if self
                .last_name
                .as_deref()
                .is_some_and(|last| last >= d.name.as_str())
            {
                return Err(format!("devices not sorted or duplicated at {:?}", d.name));
            }
            if d.public_key.id() != d.recipient_id {
                return Err(format!(
                    "device {}: recipient_id does not match its key",
                    d.name
                ));
            }
            let group_key = |g: &Group| g.recipient_id == d.recipient_id;
            if self.head.groups.values().any(group_key) {
                return Err(format!("device {}: key listed twice", d.name));
            }
            if let Some(g) = &d.group {
                if self.groups_seen && !self.head.groups.contains_key(g) {
                    return Err(format!("device {}: unknown group {g}", d.name));
                }
                *self.head.members.entry(g.clone()).or_default() += 1;
            }
            self.head.devices += 1;
            self.last_name = Some(d.name.clone());
            Ok(())
        }
    }

    impl<'de, F: FnMut(Device) -> crate::Result<()>> Visitor<'de> for &mut Walk<'_, F> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a recipients object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "format" => self.format = Some(map.next_value()?),
                    "groups" => {
                        self.head.groups = map.next_value::<BTreeMap<String, Group>>()?;
                        self.groups_seen = true;
                    }
                    "devices" => map.next_value_seed(Devices(&mut *self))?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }

    struct Devices<'w, 'a, F>(&'w mut Walk<'a, F>);

    impl<'de, F: FnMut(Device) -> crate::Result<()>> DeserializeSeed<'de> for Devices<'_, '_, F> {
        type Value = ();

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de, F: FnMut(Device) -> crate::Result<()>> Visitor<'de> for Devices<'_, '_, F> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of devices")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let walk = self.0;
            while let Some(device) = seq.next_element::<Device>()? {
                walk.device(&device).map_err(de::Error::custom)?;
                if let Err(e) = (walk.on_device)(device) {
                    *walk.failure = Some(e);
                    return Err(de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
}

fn no_recipients(msg: String) -> Error {
    Error::input(
        msg,
        "register devices first (ota-sign recipients add --repo DIR NAME PUBKEY [--group GROUP]); nothing was written",
    )
}

/// The keys a release for `selectors` is wrapped for, from the recipients file of `repo_dir`
/// read once as a stream ([`stream`]): only groups and the devices named by `device:NAME`
/// are held; `all-devices` is read again when the slips are made. `hardware_ids` are the
/// target's.
///
/// Refused: unknown names, a group without devices, `all-devices` without devices,
/// `hardware` when a hardware id has no group of that name, and an empty result.
pub fn resolve(
    repo_dir: &Path,
    selectors: &[Selector],
    hardware_ids: &[String],
) -> Result<Resolved> {
    let wanted: BTreeSet<&str> = selectors
        .iter()
        .filter_map(|s| match s {
            Selector::Device(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let mut picked: BTreeMap<String, Device> = BTreeMap::new();
    let head = stream(repo_dir, |d| {
        if wanted.contains(d.name.as_str()) {
            picked.insert(d.name.clone(), d);
        }
        Ok(())
    })?;
    let mut out = Resolved::default();
    let mut listed = Vec::new();
    let mut all = false;
    let mut seen = BTreeSet::new();
    let mut add_group = |out: &mut Resolved, name: &str| -> Result<()> {
        let Some(g) = head.groups.get(name) else {
            return Err(Error::input(
                format!("unknown recipient group {name:?} in --encrypt-to"),
                "see the groups with: ota-sign recipients list --repo DIR",
            ));
        };
        if head.members.get(name).copied().unwrap_or(0) == 0 {
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
    for sel in selectors {
        match sel {
            Selector::Group(name) => add_group(&mut out, name)?,
            Selector::Hardware => {
                for hw in hardware_ids {
                    if !head.groups.contains_key(hw) {
                        return Err(Error::input(
                            format!("--encrypt-to hardware: hardware id {hw:?} has no recipient group of that name"),
                            format!("create it (ota-sign recipients group-create --repo DIR --keys KEYS_DIR {hw}), or name the recipients explicitly"),
                        ));
                    }
                    add_group(&mut out, hw)?;
                }
            }
            Selector::Device(name) => {
                let Some(d) = picked.get(name) else {
                    return Err(Error::input(
                        format!("unknown recipient device {name:?} in --encrypt-to"),
                        "see the devices with: ota-sign recipients list --repo DIR",
                    ));
                };
                if device_ids.insert(d.recipient_id) {
                    listed.push((d.name.clone(), d.public_key.clone()));
                }
            }
            Selector::AllDevices => {
                if head.devices == 0 {
                    return Err(no_recipients(
                        "--encrypt-to all-devices: no devices are registered".into(),
                    ));
                }
                all = true;
            }
        }
    }
    // Every device includes the named ones.
    out.devices = if all {
        DeviceList::All {
            repo_dir: repo_dir.to_path_buf(),
            count: head.devices,
        }
    } else {
        DeviceList::Listed(listed)
    };
    if out.is_empty() {
        return Err(no_recipients(
            "--encrypt-to resolves to no recipients".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_formats::envelope::RecipientSecretKey;

    fn fleet(n: usize) -> Recipients {
        let mut r = Recipients::default();
        r.add_group(
            "board-a",
            RecipientSecretKey::generate().public_key().clone(),
        )
        .unwrap();
        for i in 0..n {
            let group = (i % 2 == 0).then(|| "board-a".to_string());
            r.add_device(
                &format!("dev-{i:03}"),
                RecipientSecretKey::generate().public_key().clone(),
                group,
            )
            .unwrap();
        }
        r
    }

    fn streamed(dir: &Path) -> Result<(Head, Vec<Device>)> {
        let mut devices = Vec::new();
        let head = stream(dir, |d| {
            devices.push(d);
            Ok(())
        })?;
        Ok((head, devices))
    }

    #[test]
    fn streaming_sees_what_load_sees_and_all_devices_is_read_again_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let r = fleet(25);
        r.save(dir.path()).unwrap();
        let (head, devices) = streamed(dir.path()).unwrap();
        assert_eq!(devices, Recipients::load(dir.path()).unwrap().devices);
        assert_eq!(
            (head.devices, head.groups, head.members["board-a"]),
            (25, r.groups.clone(), 13)
        );

        let all = resolve(
            dir.path(),
            &[Selector::AllDevices, Selector::Device("dev-003".into())],
            &[],
        )
        .unwrap();
        assert_eq!(all.devices.len(), 25);
        let mut batches = Vec::new();
        all.devices
            .for_each_batch(10, |b| {
                batches.push(b);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let keys: Vec<_> = batches.into_iter().flatten().collect();
        let expected: Vec<_> = r.devices.iter().map(|d| d.public_key.clone()).collect();
        assert_eq!(keys, expected);

        let one = resolve(dir.path(), &[Selector::Device("dev-003".into())], &[]).unwrap();
        assert!(
            matches!(&one.devices, DeviceList::Listed(d) if d.len() == 1 && d[0].0 == "dev-003")
        );
        let err = resolve(dir.path(), &[Selector::Device("dev-999".into())], &[]).unwrap_err();
        assert!(
            err.to_string().contains("unknown recipient device"),
            "{err}"
        );

        // The file changed between resolving and making the slips.
        fleet(3).save(dir.path()).unwrap();
        let err = all.devices.for_each_batch(10, |_| Ok(())).unwrap_err();
        assert!(
            err.to_string().contains("changed while it was read"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_file_is_refused_while_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let r = fleet(4);
        let good = serde_json::to_string(&r).unwrap();
        let cases = [
            (good.replace("\"dev-001\"", "\"dev-009\""), "not sorted"),
            (
                good.replace(
                    &r.devices[1].recipient_id.to_string(),
                    &r.devices[2].recipient_id.to_string(),
                ),
                "does not match its key",
            ),
            (
                good.replace("\"group\":\"board-a\"", "\"group\":\"board-b\""),
                "unknown group",
            ),
            (
                good.replace("\"format\":1", "\"format\":2"),
                "unsupported format",
            ),
            (good[..good.len() - 40].to_string(), "is corrupt"),
        ];
        for (text, needle) in cases {
            std::fs::write(path(dir.path()), &text).unwrap();
            let err = streamed(dir.path()).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
            assert_eq!(err.kind(), "repo");
        }
        // A failure of the caller stops the walk and is returned as it is.
        std::fs::write(path(dir.path()), &good).unwrap();
        let mut seen = 0;
        let err = stream(dir.path(), |_| {
            seen += 1;
            Err(Error::input("stop here", "-"))
        })
        .unwrap_err();
        assert_eq!((seen, err.kind()), (1, "input"));
        // No file: nobody.
        std::fs::remove_file(path(dir.path())).unwrap();
        assert_eq!(streamed(dir.path()).unwrap().0.devices, 0);
    }
}
