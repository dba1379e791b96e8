//! Support for the key-rotation tests (`tests/tests/rotation.rs`, `ten_years.rs`): a
//! repository driven by the real `ota-sign` (optionally at a fake time, `--now`), devices
//! driven by the real `ota-client` (optionally under `faketime`), and snapshots of a
//! repository directory to serve an attacker's files for a while and restore the real ones.
use crate::cli::{bin, run, tree, Run};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A repository and its key directory made by `ota-sign init`.
pub struct Repo {
    /// The repository directory.
    pub repo: PathBuf,
    /// The key directory.
    pub keys: PathBuf,
    /// The fake time passed to every `ota-sign` call (`--now`), if any.
    pub now: Option<DateTime<Utc>>,
}

impl Repo {
    /// `ota-sign init` in `dir` (`repo/`, `keys/`) with `extra` arguments.
    pub fn init(dir: &Path, now: Option<DateTime<Utc>>, extra: &[&str]) -> Self {
        let r = Repo {
            repo: dir.join("repo"),
            keys: dir.join("keys"),
            now,
        };
        let mut args = vec!["init"];
        args.extend(extra);
        r.ok(&args);
        r
    }

    /// Run `ota-sign COMMAND --repo REPO --keys KEYS ARGS...` (and `--now`).
    pub fn sign(&self, args: &[&str]) -> Run {
        let mut all: Vec<String> = vec![
            args[0].to_string(),
            "--repo".into(),
            self.repo.display().to_string(),
        ];
        if args[0] != "status" {
            all.push("--keys".into());
            all.push(self.keys.display().to_string());
        }
        all.extend(args[1..].iter().map(|s| s.to_string()));
        if let Some(t) = self.now {
            all.push(format!("--now={}", t.to_rfc3339()));
        }
        run("ota-sign", &all)
    }

    /// Like [`Repo::sign`], asserting success.
    /// A live `ota-server --online-keys` takes the repository's writer lock every second
    /// while it renews; `ota-sign` refuses (exit 4) rather than waits, so retry that for a while.
    pub fn ok(&self, args: &[&str]) -> Run {
        let mut r = self.sign(args);
        for _ in 0..50 {
            if !(r.code == 4 && r.stderr.contains("is locked")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            r = self.sign(args);
        }
        assert_eq!(r.code, 0, "ota-sign {args:?}: {r:?}");
        r
    }

    /// `ota-sign add` of `data` as `gw` `version` for hardware `board-a`.
    pub fn release(&self, version: &str, data: &[u8]) {
        let file = self.repo.with_file_name(format!("fw-{version}.img"));
        std::fs::write(&file, data).unwrap();
        self.ok(&[
            "add",
            file.to_str().unwrap(),
            "--name",
            "gw",
            "--version",
            version,
            "--hardware",
            "board-a",
        ]);
    }

    /// The key ids of `role` in the current root (as `ota-sign` wrote it, not verified).
    pub fn keyids(&self, role: &str) -> Vec<String> {
        let bytes = std::fs::read(self.repo.join("metadata/root.json")).unwrap();
        let root: ota_formats::metadata::Signed<ota_formats::metadata::Root> =
            ota_formats::metadata::Signed::from_bytes_unverified(&bytes).unwrap();
        root.signed.role(role).unwrap().keyids.clone()
    }

    /// The first root (what devices are provisioned with).
    pub fn first_root(&self) -> PathBuf {
        self.repo.join("metadata/1.root.json")
    }
}

/// A device: an `ota-client` state directory and the file it installs to.
pub struct Device {
    _dir: tempfile::TempDir,
    /// The state directory.
    pub state: PathBuf,
    /// The installed image.
    pub slot: PathBuf,
    /// The fake time of every `ota-client` call (run under `faketime`), if any.
    pub now: Option<DateTime<Utc>>,
}

impl Device {
    /// `ota-client init` with `root` for `server`, hardware `board-a`.
    pub fn init(root: &Path, server: &str, now: Option<DateTime<Utc>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = Device {
            state: dir.path().join("state"),
            slot: dir.path().join("firmware.img"),
            _dir: dir,
            now,
        };
        let r = d.client(&[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            "board-a",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        d
    }

    /// Run `ota-client COMMAND --state STATE ARGS...`, under `faketime` at [`Device::now`].
    pub fn client(&self, args: &[&str]) -> Run {
        let mut all: Vec<String> = vec![
            args[0].to_string(),
            "--state".into(),
            self.state.display().to_string(),
        ];
        all.extend(args[1..].iter().map(|s| s.to_string()));
        let Some(now) = self.now else {
            return run("ota-client", &all);
        };
        // The wall clock starts at `now` and runs; monotonic clocks (timeouts) stay real.
        let out = Command::new("faketime")
            .arg("-f")
            .arg(now.format("@%Y-%m-%d %H:%M:%S").to_string())
            .arg(bin("ota-client"))
            .args(&all)
            .env("TZ", "UTC")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `ota-client update --install-to SLOT --json`.
    pub fn update(&self) -> Run {
        self.client(&[
            "update",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
        ])
    }

    /// The installed version (`installed.json`), if any.
    pub fn installed(&self) -> Option<String> {
        let bytes = std::fs::read(self.state.join("installed.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v["version"].as_str().map(String::from)
    }

    /// The root version the device trusts (`ota-client status`).
    pub fn root_version(&self) -> u64 {
        let r = self.client(&["status", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()["root_version"].as_u64().unwrap()
    }

    /// The installed image and `installed.json`, to prove a refused update changed nothing.
    pub fn observable(&self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        (
            std::fs::read(&self.slot).ok(),
            std::fs::read(self.state.join("installed.json")).ok(),
        )
    }

    /// Assert that an update is refused (exit `code`) and changes nothing a user sees.
    pub fn assert_refused(&self, code: i32) -> Run {
        let before = self.observable();
        let r = self.update();
        assert_eq!(r.code, code, "{r:?}");
        assert_eq!(
            self.observable(),
            before,
            "a refused update changed the device"
        );
        r
    }
}

/// The files of a directory tree, to put back later ([`Saved::restore`]).
pub struct Saved {
    dir: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Saved {
    /// Remember every file under `dir`.
    pub fn take(dir: &Path) -> Self {
        Saved {
            dir: dir.to_path_buf(),
            files: tree(dir),
        }
    }

    /// Put every remembered file back and remove files added since.
    pub fn restore(&self) {
        for path in tree(&self.dir).keys() {
            if !self.files.contains_key(path) {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (path, bytes) in &self.files {
            if std::fs::read(path).ok().as_ref() != Some(bytes) {
                std::fs::write(path, bytes).unwrap();
            }
        }
    }
}

/// Copy the directory tree `from` to `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Copy an attacker's metadata (everything but the roots) and target files from `attacker`
/// into the served repository `repo`.
pub fn serve_attacker_files(attacker: &Path, repo: &Path) {
    for sub in ["metadata", "targets"] {
        for (path, bytes) in tree(&attacker.join(sub)) {
            let rel = path.strip_prefix(attacker).unwrap();
            let name = rel.file_name().unwrap().to_string_lossy();
            if name.ends_with("root.json") {
                continue;
            }
            let dest = repo.join(rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(dest, bytes).unwrap();
        }
    }
}
