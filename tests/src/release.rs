//! Encrypted releases as people run them, for the end-to-end tests: the release owner drives
//! `ota-sign` on a repository of its own, a device drives `ota-client` and installs into a file.
use crate::cli::{run, tree, Run};
use std::path::PathBuf;

/// The release owner: a repository and its keys (made by `ota-sign init`), and a work
/// directory for images.
pub struct Owner {
    _dir: tempfile::TempDir,
    /// The repository.
    pub repo: PathBuf,
    /// Its keys.
    pub keys: PathBuf,
    /// Scratch space for images and lists.
    pub work: PathBuf,
}

impl Owner {
    /// A new repository (`ota-sign init`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let o = Owner {
            repo: dir.path().join("repo"),
            keys: dir.path().join("keys"),
            work: dir.path().join("work"),
            _dir: dir,
        };
        std::fs::create_dir(&o.work).unwrap();
        o.ok(&[
            "init",
            "--repo",
            o.repo.to_str().unwrap(),
            "--keys",
            o.keys.to_str().unwrap(),
        ]);
        o
    }

    /// Run `ota-sign` with `a`.
    pub fn sign(&self, a: &[&str]) -> Run {
        run("ota-sign", a)
    }

    /// Run `ota-sign` with `a`, which must succeed.
    pub fn ok(&self, a: &[&str]) -> Run {
        let r = self.sign(a);
        assert_eq!(r.code, 0, "ota-sign {a:?}: {r:?}");
        r
    }

    /// `ota-sign recipients SUB --repo REPO REST...`, which must succeed.
    pub fn recipients(&self, sub: &str, rest: &[&str]) -> Run {
        let mut a = vec!["recipients", sub, "--repo", self.repo.to_str().unwrap()];
        a.extend(rest);
        self.ok(&a)
    }

    /// `ota-sign add` of `data` as `name` `version` for `hardware`, with `extra` arguments;
    /// returns the target name and the run.
    pub fn add(
        &self,
        name: &str,
        hardware: &str,
        version: &str,
        data: &[u8],
        extra: &[&str],
    ) -> (String, Run) {
        let file = self.work.join(format!("fw-{version}.img"));
        std::fs::write(&file, data).unwrap();
        let mut a = vec![
            "add",
            "--repo",
            self.repo.to_str().unwrap(),
            "--keys",
            self.keys.to_str().unwrap(),
            file.to_str().unwrap(),
            "--name",
            name,
            "--version",
            version,
            "--hardware",
            hardware,
        ];
        a.extend(extra);
        let r = self.ok(&a);
        (format!("{name}-{version}.img.zst"), r)
    }

    /// The first root, which devices are provisioned with.
    pub fn root(&self) -> PathBuf {
        self.repo.join("metadata/1.root.json")
    }

    /// The per-device slip file of `target` for recipient `id`.
    pub fn slip(&self, target: &str, id: &str) -> PathBuf {
        self.repo
            .join("targets")
            .join(format!("{target}.slips/{id}.slip"))
    }

    /// The slip bundle of `target`.
    pub fn bundle(&self, target: &str) -> PathBuf {
        self.repo
            .join("targets")
            .join(ota_formats::envelope::bundle_path(target))
    }
}

impl Default for Owner {
    fn default() -> Self {
        Self::new()
    }
}

/// The slot directory's files and installed.json, to prove a refused update changed nothing.
pub type Observed = (Vec<(PathBuf, Vec<u8>)>, Option<Vec<u8>>);

/// A device: a state directory and the file its firmware is installed to.
pub struct Device {
    _dir: tempfile::TempDir,
    /// `--state`.
    pub state: PathBuf,
    /// `--install-to`.
    pub slot: PathBuf,
}

impl Device {
    /// `ota-client init` with `owner`'s first root, `server` and `hardware`.
    pub fn new(owner: &Owner, server: &str, hardware: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("slot")).unwrap();
        let d = Device {
            state: dir.path().join("state"),
            slot: dir.path().join("slot/firmware.img"),
            _dir: dir,
        };
        let root = owner.root();
        let r = d.client(&[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            hardware,
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        d
    }

    /// Run `ota-client` with `a` and this device's `--state`.
    pub fn client(&self, a: &[&str]) -> Run {
        let state = self.state.to_str().unwrap();
        // `keys` has subcommands: --state goes after the second word.
        let split = if a[0] == "keys" { 2 } else { 1 };
        let mut all: Vec<&str> = a[..split].to_vec();
        all.extend(["--state", state]);
        all.extend(&a[split..]);
        run("ota-client", &all)
    }

    /// `keygen`; returns (public key, recipient id).
    pub fn keygen(&self) -> (String, String) {
        let r = self.client(&["keygen", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        (
            j["public_key"].as_str().unwrap().to_string(),
            j["recipient_id"].as_str().unwrap().to_string(),
        )
    }

    /// `update --install-to SLOT --json`.
    pub fn update(&self) -> Run {
        self.client(&[
            "update",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
        ])
    }

    /// `update` installs `version`, byte-identical to `data`.
    pub fn installs(&self, version: &str, data: &[u8]) {
        let r = self.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(
            std::fs::read(&self.slot).unwrap(),
            data,
            "{version} installed byte-identical"
        );
        assert_eq!(self.installed()["version"], version);
    }

    /// The newest release is encrypted to other devices: not an update for this one. `update`
    /// says so (exit 100, the release listed as skipped) and changes nothing.
    pub fn skipped(&self, version: &str) -> Run {
        let before = self.observable();
        let r = self.update();
        assert_eq!(r.code, 100, "{r:?}");
        assert_eq!(r.json()["skipped"][0]["version"], version, "{r:?}");
        assert_eq!(
            self.observable(),
            before,
            "a skipped release changed the slot or installed.json"
        );
        r
    }

    /// installed.json.
    pub fn installed(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.state.join("installed.json")).unwrap()).unwrap()
    }

    /// What a refused update must leave unchanged.
    pub fn observable(&self) -> Observed {
        (
            tree(self.slot.parent().unwrap()).into_iter().collect(),
            std::fs::read(self.state.join("installed.json")).ok(),
        )
    }
}
