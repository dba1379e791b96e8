//! A small in-memory TUF repository for client tests: fixed ed25519 keys (one per role),
//! fixed dates, and helpers to sign and publish each role.
#![allow(dead_code)]
use chrono::{DateTime, TimeZone, Utc};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::hash::{sha256_hex, Hashes};
use ota_formats::metadata::{
    DelegatedRole, Delegations, MetaFile, Root, Signed, Snapshot, TargetFile, Targets, Timestamp,
};
use serde_json::Map;
use std::collections::BTreeMap;
use std::path::Path;

pub fn at(year: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap()
}

/// "Now" in tests; metadata expires in 2030 unless a test says otherwise.
pub fn now() -> DateTime<Utc> {
    at(2025)
}

pub fn key(seed: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(&[seed; 32])
}

pub struct Repo {
    pub root: Root,
    pub root_signers: Vec<Ed25519Signer>,
    pub timestamp: Timestamp,
    pub snapshot: Snapshot,
    pub targets: Targets,
    /// Delegated roles: name → (metadata, signer).
    pub delegated: BTreeMap<String, (Targets, Ed25519Signer)>,
    /// Target contents by path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Signed bytes of every published root version (index 0 = v1).
    pub roots: Vec<Vec<u8>>,
    pub published: BTreeMap<String, Vec<u8>>,
}

impl Repo {
    pub fn new() -> Self {
        let mut root = Root::new(1, at(2030));
        root.consistent_snapshot = Some(false);
        root.add_key("root", key(1).public_key()).unwrap();
        root.add_key("timestamp", key(2).public_key()).unwrap();
        root.add_key("snapshot", key(3).public_key()).unwrap();
        root.add_key("targets", key(4).public_key()).unwrap();
        let mut repo = Repo {
            root,
            root_signers: vec![key(1)],
            timestamp: Timestamp::new(1, at(2030), MetaFile::new(1)),
            snapshot: Snapshot::new(1, at(2030)),
            targets: Targets::new(1, at(2030)),
            delegated: BTreeMap::new(),
            files: BTreeMap::new(),
            roots: Vec::new(),
            published: BTreeMap::new(),
        };
        repo.publish_root();
        repo.publish();
        repo
    }

    pub fn root_bytes(&self, version: u64) -> Vec<u8> {
        self.roots[(version - 1) as usize].clone()
    }

    /// Sign the current root with `root_signers` and publish it as the next version.
    pub fn publish_root(&mut self) {
        let signers: Vec<&dyn Signer> =
            self.root_signers.iter().map(|k| k as &dyn Signer).collect();
        let bytes = Signed::sign(self.root.clone(), &signers)
            .unwrap()
            .to_bytes()
            .unwrap();
        self.roots.push(bytes);
    }

    /// Start the next root version (caller changes keys, then calls `publish_root`).
    pub fn next_root(&mut self) {
        self.root.version += 1;
    }

    pub fn add_target(&mut self, role: &str, path: &str, data: &[u8]) {
        let t = if role == "targets" {
            &mut self.targets
        } else {
            &mut self.delegated.get_mut(role).unwrap().0
        };
        t.targets
            .insert(path.to_string(), TargetFile::from_bytes(data));
        self.files.insert(path.to_string(), data.to_vec());
    }

    pub fn delegate(&mut self, from: &str, name: &str, paths: &[&str], signer_seed: u8) {
        let signer = key(signer_seed);
        let id = signer.key_id().unwrap();
        let delegator = if from == "targets" {
            &mut self.targets
        } else {
            &mut self.delegated.get_mut(from).unwrap().0
        };
        let d = delegator.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            extra: Map::new(),
        });
        d.keys.insert(id.clone(), signer.public_key());
        d.roles.as_mut().unwrap().push(DelegatedRole {
            name: name.to_string(),
            keyids: vec![id],
            threshold: 1,
            terminating: false,
            paths: Some(paths.iter().map(|s| s.to_string()).collect()),
            path_hash_prefixes: None,
            extra: Map::new(),
        });
        self.delegated
            .entry(name.to_string())
            .or_insert_with(|| (Targets::new(1, at(2030)), signer));
    }

    fn sign<T: ota_formats::metadata::RoleType + Clone>(
        value: &T,
        signer: &Ed25519Signer,
    ) -> Vec<u8> {
        Signed::sign(value.clone(), &[signer as &dyn Signer])
            .unwrap()
            .to_bytes()
            .unwrap()
    }

    /// Sign targets (and delegated roles), then snapshot listing their versions, then a
    /// timestamp listing the snapshot with its length and sha256. Versions are not bumped:
    /// tests change them explicitly.
    pub fn publish(&mut self) {
        let targets = Self::sign(&self.targets, &key(4));
        self.snapshot
            .meta
            .insert("targets.json".into(), MetaFile::new(self.targets.version));
        self.published.insert("targets".into(), targets);
        for (name, (t, signer)) in &self.delegated {
            self.snapshot
                .meta
                .insert(format!("{name}.json"), MetaFile::new(t.version));
            self.published.insert(name.clone(), Self::sign(t, signer));
        }
        let snapshot = Self::sign(&self.snapshot, &key(3));
        let mut meta = MetaFile::new(self.snapshot.version);
        meta.length = Some(snapshot.len() as u64);
        meta.hashes = Some(Hashes::from([(
            "sha256".to_string(),
            sha256_hex(&snapshot),
        )]));
        self.timestamp.meta.insert("snapshot.json".into(), meta);
        self.published.insert("snapshot".into(), snapshot);
        let ts = Self::sign(&self.timestamp, &key(2));
        self.published.insert("timestamp".into(), ts);
    }

    pub fn bytes(&self, role: &str) -> Vec<u8> {
        self.published[role].clone()
    }

    /// Write the repository in the layout the updater fetches (`metadata/`, `targets/`).
    pub fn write_to(&self, dir: &Path) {
        let md = dir.join("metadata");
        let tg = dir.join("targets");
        std::fs::create_dir_all(&md).unwrap();
        std::fs::create_dir_all(&tg).unwrap();
        for (i, r) in self.roots.iter().enumerate() {
            std::fs::write(md.join(format!("{}.root.json", i + 1)), r).unwrap();
        }
        let consistent = self.root.consistent();
        for (role, bytes) in &self.published {
            std::fs::write(md.join(format!("{role}.json")), bytes).unwrap();
            if consistent && role != "timestamp" {
                let v = match role.as_str() {
                    "snapshot" => self.snapshot.version,
                    "targets" => self.targets.version,
                    other => self.delegated[other].0.version,
                };
                std::fs::write(md.join(format!("{v}.{role}.json")), bytes).unwrap();
            }
        }
        for (path, data) in &self.files {
            let p = tg.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            if consistent {
                let name = p.file_name().unwrap().to_str().unwrap();
                let hashed = p.with_file_name(format!("{}.{name}", sha256_hex(data)));
                std::fs::write(hashed, data).unwrap();
            }
        }
    }
}
