//! A TUF repository built in code, for tests: keys, roles, targets and delegations, written as
//! `metadata/N.role.json` + `metadata/timestamp.json` and `targets/<sha256>.<name>` (consistent
//! snapshots), with hooks to tamper with any of it.
use chrono::{DateTime, Duration, Utc};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::hash::{sha256_hex, Hashes};
use ota_formats::metadata::{
    DelegatedRole, Delegations, MetaFile, RoleType, Root, Signed, Snapshot, Targets, Timestamp,
};
use serde_json::Map;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A delegated role with its own key and metadata.
pub struct DelegatedFixture {
    /// The role's signing key.
    pub key: Ed25519Signer,
    /// Its current metadata.
    pub targets: Targets,
}

/// A whole repository on disk.
pub struct RepoFixture {
    /// Holds the repository (`metadata/`, `targets/`).
    pub dir: tempfile::TempDir,
    /// Keys currently trusted for root (threshold = root.roles["root"].threshold).
    pub root_keys: Vec<Ed25519Signer>,
    /// Targets key.
    pub targets_key: Ed25519Signer,
    /// Snapshot key.
    pub snapshot_key: Ed25519Signer,
    /// Timestamp key.
    pub timestamp_key: Ed25519Signer,
    /// Current root.
    pub root: Root,
    /// Current top-level targets.
    pub targets: Targets,
    /// Delegated roles by name (delegated from top-level targets).
    pub delegated: BTreeMap<String, DelegatedFixture>,
    /// Current snapshot.
    pub snapshot: Snapshot,
    /// Current timestamp.
    pub timestamp: Timestamp,
    /// Expiry used for new metadata.
    pub expires: DateTime<Utc>,
}

fn far_future() -> DateTime<Utc> {
    Utc::now() + Duration::days(365)
}

impl RepoFixture {
    /// A repository with one key per top-level role, version 1 of everything, no targets.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
        std::fs::create_dir_all(dir.path().join("targets")).unwrap();
        let expires = far_future();
        let root_key = Ed25519Signer::generate();
        let targets_key = Ed25519Signer::generate();
        let snapshot_key = Ed25519Signer::generate();
        let timestamp_key = Ed25519Signer::generate();
        let mut root = Root::new(1, expires);
        root.add_key("root", root_key.public_key()).unwrap();
        root.add_key("targets", targets_key.public_key()).unwrap();
        root.add_key("snapshot", snapshot_key.public_key()).unwrap();
        root.add_key("timestamp", timestamp_key.public_key())
            .unwrap();
        let mut fx = RepoFixture {
            dir,
            root_keys: vec![root_key],
            targets_key,
            snapshot_key,
            timestamp_key,
            root,
            targets: Targets::new(0, expires),
            delegated: BTreeMap::new(),
            snapshot: Snapshot::new(0, expires),
            timestamp: Timestamp::new(0, expires, MetaFile::new(1)),
            expires,
        };
        fx.write_root();
        fx.publish();
        fx
    }

    /// Repository root directory (holds `metadata/` and `targets/`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `metadata/` directory.
    pub fn metadata_dir(&self) -> PathBuf {
        self.path().join("metadata")
    }

    /// The bytes of the current `root.json` (what a device is provisioned with).
    pub fn root_bytes(&self) -> Vec<u8> {
        std::fs::read(self.metadata_dir().join("root.json")).unwrap()
    }

    /// Sign the current root with all current root keys and write `N.root.json` + `root.json`.
    pub fn write_root(&mut self) {
        let keys: Vec<&dyn Signer> = self.root_keys.iter().map(|k| k as &dyn Signer).collect();
        self.write_root_signed_by(&keys);
    }

    /// Write the current root signed by exactly `keys`.
    pub fn write_root_signed_by(&self, keys: &[&dyn Signer]) {
        let bytes = Signed::sign(self.root.clone(), keys)
            .unwrap()
            .to_bytes()
            .unwrap();
        let v = self.root.version;
        self.write_metadata(&format!("{v}.root.json"), &bytes);
        self.write_metadata("root.json", &bytes);
    }

    /// Rotate root: bump the version, replace the root keys by `new_keys` and sign with the old
    /// and new keys (a valid rotation).
    pub fn rotate_root(&mut self, new_keys: Vec<Ed25519Signer>) {
        let old_keys = std::mem::replace(&mut self.root_keys, new_keys);
        self.root.version += 1;
        let old_ids: Vec<String> = self.root.roles["root"].keyids.clone();
        for id in &old_ids {
            self.root.remove_key("root", id);
        }
        for k in &self.root_keys {
            self.root.add_key("root", k.public_key()).unwrap();
        }
        let mut signers: Vec<&dyn Signer> = old_keys.iter().map(|k| k as &dyn Signer).collect();
        signers.extend(self.root_keys.iter().map(|k| k as &dyn Signer));
        self.write_root_signed_by(&signers);
    }

    /// Add a target to the top-level targets role (not yet published).
    pub fn add_target(&mut self, name: &str, data: &[u8]) {
        let entry = self.store_target(name, data);
        self.targets.targets.insert(name.to_string(), entry);
    }

    /// Write a target file under `targets/<sha256>.<name>` and return its entry.
    pub fn store_target(&self, name: &str, data: &[u8]) -> ota_formats::metadata::TargetFile {
        let entry = ota_formats::metadata::TargetFile::from_bytes(data);
        let sha = sha256_hex(data);
        let (dir, base) = match name.rsplit_once('/') {
            Some((d, b)) => (self.path().join("targets").join(d), b),
            None => (self.path().join("targets"), name),
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{sha}.{base}")), data).unwrap();
        entry
    }

    /// Delegate `paths` from top-level targets to a new role `name` with its own key.
    pub fn delegate(&mut self, name: &str, paths: &[&str], terminating: bool) {
        let key = Ed25519Signer::generate();
        let keyid = key.key_id().unwrap();
        let d = self.targets.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            extra: Map::new(),
        });
        d.keys.insert(keyid.clone(), key.public_key());
        d.roles.get_or_insert_with(Vec::new).push(DelegatedRole {
            name: name.to_string(),
            keyids: vec![keyid],
            threshold: 1,
            terminating,
            paths: Some(paths.iter().map(|p| p.to_string()).collect()),
            path_hash_prefixes: None,
            extra: Map::new(),
        });
        self.delegated.insert(
            name.to_string(),
            DelegatedFixture {
                key,
                targets: Targets::new(0, self.expires),
            },
        );
    }

    /// Add a target to delegated role `role` (not yet published).
    pub fn add_delegated_target(&mut self, role: &str, name: &str, data: &[u8]) {
        let entry = self.store_target(name, data);
        self.delegated
            .get_mut(role)
            .unwrap()
            .targets
            .targets
            .insert(name.to_string(), entry);
    }

    /// Bump and sign targets (and every delegated role), snapshot and timestamp; write them.
    pub fn publish(&mut self) {
        let mut meta = BTreeMap::new();
        self.targets.version += 1;
        self.targets.expires = self.expires;
        let bytes = sign_bytes(&self.targets, &self.targets_key);
        self.write_metadata(&format!("{}.targets.json", self.targets.version), &bytes);
        meta.insert(
            "targets.json".to_string(),
            MetaFile::new(self.targets.version),
        );
        let names: Vec<String> = self.delegated.keys().cloned().collect();
        for name in names {
            let d = self.delegated.get_mut(&name).unwrap();
            d.targets.version += 1;
            d.targets.expires = self.expires;
            let bytes = sign_bytes(&d.targets, &d.key);
            let v = d.targets.version;
            self.write_metadata(&format!("{v}.{}.json", encode_role(&name)), &bytes);
            meta.insert(format!("{name}.json"), MetaFile::new(v));
        }
        self.snapshot.version += 1;
        self.snapshot.expires = self.expires;
        self.snapshot.meta = meta;
        let snap = sign_bytes(&self.snapshot, &self.snapshot_key);
        self.write_metadata(&format!("{}.snapshot.json", self.snapshot.version), &snap);
        self.timestamp.version += 1;
        self.timestamp.expires = self.expires;
        let mut hashes = Hashes::new();
        hashes.insert("sha256".into(), sha256_hex(&snap));
        self.timestamp.meta.insert(
            "snapshot.json".into(),
            MetaFile {
                version: self.snapshot.version,
                length: Some(snap.len() as u64),
                hashes: Some(hashes),
                extra: Map::new(),
            },
        );
        let ts = sign_bytes(&self.timestamp, &self.timestamp_key);
        self.write_metadata("timestamp.json", &ts);
    }

    /// Overwrite a metadata file with arbitrary bytes (to simulate an attacker or a corrupt mirror).
    pub fn write_metadata(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.metadata_dir().join(file), bytes).unwrap();
    }

    /// Read a metadata file as served.
    pub fn read_metadata(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.metadata_dir().join(file)).unwrap()
    }
}

impl Default for RepoFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// Sign a role with one key and return the file bytes.
pub fn sign_bytes<T: RoleType + Clone>(role: &T, key: &Ed25519Signer) -> Vec<u8> {
    Signed::sign(role.clone(), &[key as &dyn Signer])
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Percent-encode a role name for file names and URLs as python-tuf does (`quote(name, "")`:
/// only letters, digits and `_.-~` stay as they are).
pub fn encode_role(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'_')
        .remove(b'.')
        .remove(b'-')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}
