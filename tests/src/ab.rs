//! An A/B device for end-to-end tests: two slot files, a boot environment, a state directory,
//! driven through the real `ota-client` binary.
use crate::cli::{client, Run, SignedRepo};
use std::path::{Path, PathBuf};

/// Deterministic, compressible, distinct per seed.
pub fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 12) as u8))
        .collect()
}

/// A device with slots `a` and `b` (regular files) in a temp dir.
pub struct AbDevice {
    _dir: tempfile::TempDir,
    /// The state directory.
    pub state: PathBuf,
    /// Slot a.
    pub slot_a: PathBuf,
    /// Slot b.
    pub slot_b: PathBuf,
    /// The boot environment file (for `file:` and `grub:`), or the fw_env.config (`uboot:`).
    pub env: PathBuf,
}

impl AbDevice {
    /// Slot a holds `factory` (the image the device shipped with), slot b is empty; nothing
    /// is initialised yet.
    pub fn new(factory: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let slot_a = dir.path().join("slot-a.img");
        let slot_b = dir.path().join("slot-b.img");
        std::fs::write(&slot_a, factory).unwrap();
        std::fs::write(&slot_b, b"").unwrap();
        AbDevice {
            state: dir.path().join("state"),
            env: dir.path().join("bootenv"),
            slot_a,
            slot_b,
            _dir: dir,
        }
    }

    /// The temp dir everything lives in.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// `ota-client init` in A/B mode with boot control `spec` (e.g. `file:ENV`), 8 MiB file
    /// slots; returns the run.
    pub fn init_with(&self, repo: &SignedRepo, server: &str, spec: &str, extra: &[&str]) -> Run {
        self.init_slots(repo, server, spec, &self.slot_b, "8MiB", extra)
    }

    /// `ota-client init` in A/B mode with `slot_b` as slot b and `--slot-size SIZE`.
    pub fn init_slots(
        &self,
        repo: &SignedRepo,
        server: &str,
        spec: &str,
        slot_b: &Path,
        size: &str,
        extra: &[&str],
    ) -> Run {
        let root = repo.repo.join("metadata/1.root.json");
        let a = format!("a={}", self.slot_a.display());
        let b = format!("b={}", slot_b.display());
        let mut args = vec![
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            "board-a",
            "--name",
            "gateway-fw",
            "--slot",
            &a,
            "--slot",
            &b,
            "--boot-control",
            spec,
            "--slot-size",
            size,
        ];
        args.extend(extra);
        self.client(&args)
    }

    /// The `file:` boot control of this device's environment file.
    pub fn file_spec(&self) -> String {
        format!("file:{}", self.env.display())
    }

    /// `init` with a `file:` environment; asserts success.
    pub fn init(&self, repo: &SignedRepo, server: &str) {
        let r = self.init_with(repo, server, &self.file_spec(), &[]);
        assert_eq!(r.code, 0, "{r:?}");
    }

    /// `ota-client CMD --state STATE ARGS...`.
    pub fn client(&self, args: &[&str]) -> Run {
        client(&self.state, args)
    }

    /// Run and assert the exit code; returns stdout as JSON (`--json` is added).
    pub fn json(&self, args: &[&str], code: i32) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let r = self.client(&all);
        assert_eq!(r.code, code, "ota-client {all:?}: {r:?}");
        r.json()
    }

    /// `status --json`.
    pub fn status(&self) -> serde_json::Value {
        self.json(&["status"], 0)
    }

    /// A simulated reboot; returns the slot that booted.
    pub fn reboot(&self) -> String {
        let out = self.json(&["simulate-boot"], 0);
        out["booted"].as_str().unwrap().to_string()
    }

    /// The path of slot `s`.
    pub fn slot(&self, s: &str) -> &Path {
        match s {
            "a" => &self.slot_a,
            _ => &self.slot_b,
        }
    }

    /// The first `len` bytes of slot `s`.
    pub fn slot_image(&self, s: &str, len: usize) -> Vec<u8> {
        let mut b = std::fs::read(self.slot(s)).unwrap();
        b.truncate(len);
        b
    }
}
