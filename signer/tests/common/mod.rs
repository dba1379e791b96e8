//! Helpers for the tests that run the real `ota-sign` binary on temp directories.
#![allow(dead_code)]

use ota_formats::metadata::{RawMetadata, Root, Snapshot, Targets, Timestamp};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_ota-sign");

/// Run `ota-sign` with `args`.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ota-sign")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert a failure with `expected` exit code and the one-line error + hint format.
pub fn assert_fails(o: &Output, expected: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(code(o), expected, "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(lines.len(), 2, "expected error + hint, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[1].starts_with("hint: "), "{err}");
    assert!(
        lines[0].contains(needle),
        "error should mention {needle:?}: {err}"
    );
}

/// A temp work area with `repo/` and `keys/` paths (not created).
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
    pub keys: PathBuf,
}

impl Env {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let keys = tmp.path().join("keys");
        Env { tmp, repo, keys }
    }

    /// `init` with default settings plus `extra` arguments; panics on failure.
    pub fn init(&self, extra: &[&str]) {
        let mut args = vec![
            "init".to_string(),
            "--repo".into(),
            self.repo.display().to_string(),
            "--keys".into(),
            self.keys.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = run(&args);
        assert_eq!(code(&o), 0, "init failed: {}", stderr(&o));
    }

    /// Write a firmware image of `len` pseudo-random but compressible bytes.
    pub fn image(&self, name: &str, len: usize, seed: u8) -> PathBuf {
        let p = self.tmp.path().join(name);
        let mut data = Vec::with_capacity(len);
        let mut x: u32 = 0x1234_5678 ^ u32::from(seed);
        while data.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Repeat short runs so zstd has something to find.
            let run = (x % 7) as usize + 1;
            for _ in 0..run {
                data.push((x >> 8) as u8);
            }
        }
        data.truncate(len);
        std::fs::write(&p, &data).unwrap();
        p
    }

    /// `add` arguments for `file`.
    pub fn add_args(&self, file: &Path, name: &str, version: &str, hw: &str) -> Vec<String> {
        vec![
            "add".into(),
            "--repo".into(),
            self.repo.display().to_string(),
            "--keys".into(),
            self.keys.display().to_string(),
            file.display().to_string(),
            "--name".into(),
            name.into(),
            "--version".into(),
            version.into(),
            "--hardware".into(),
            hw.into(),
        ]
    }

    pub fn repo_args(&self, cmd: &str) -> Vec<String> {
        vec![
            cmd.into(),
            "--repo".into(),
            self.repo.display().to_string(),
            "--keys".into(),
            self.keys.display().to_string(),
        ]
    }

    pub fn md(&self, name: &str) -> PathBuf {
        self.repo.join("metadata").join(name)
    }
}

/// Every file and directory under `dir` with its mode and content hash: a fingerprint to
/// prove that a refused command changed nothing on disk.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (u32, String)> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if meta.is_dir() {
                out.insert(rel, (mode, String::new()));
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                // Never followed: it may point at /dev/zero.
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, (mode, format!("-> {}", target.display())));
            } else if !meta.is_file() {
                // A FIFO or device: reading it would block or never end.
                out.insert(rel, (mode, "special".into()));
            } else {
                let h = ota_formats::hash::sha256_hex(&std::fs::read(&p).unwrap());
                out.insert(rel, (mode, h));
            }
        }
    }
    out
}

/// Read and parse a metadata file without verification.
pub fn raw(path: &Path) -> RawMetadata {
    RawMetadata::from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// Load all top-level metadata the way a client does, verifying signatures, thresholds,
/// and the lengths and hashes that timestamp and snapshot list.
pub struct Verified {
    pub root: Root,
    pub timestamp: Timestamp,
    pub snapshot: Snapshot,
    pub targets: Targets,
}

pub fn verify_repo(repo: &Path) -> Verified {
    let md = repo.join("metadata");
    let rraw = raw(&md.join("root.json"));
    let root: Root = rraw.parse().unwrap();
    let rk = root.role("root").unwrap();
    rraw.verify("root", &root, &rk.keyids, rk.threshold)
        .expect("root signed by its threshold of root keys");
    let check = |raw: &RawMetadata, role: &str| {
        let rk = root.role(role).unwrap();
        raw.verify(role, &root, &rk.keyids, rk.threshold)
            .unwrap_or_else(|e| panic!("{role}: {e}"));
    };
    let traw = raw(&md.join("timestamp.json"));
    check(&traw, "timestamp");
    let timestamp: Timestamp = traw.parse().unwrap();
    let sm = timestamp.snapshot_meta().unwrap().clone();
    let sbytes = std::fs::read(md.join(format!("{}.snapshot.json", sm.version))).unwrap();
    ota_formats::hash::verify_bytes(&sbytes, sm.hashes.as_ref().unwrap(), sm.length.unwrap())
        .expect("timestamp lists the snapshot's length and sha256");
    let sraw = RawMetadata::from_bytes(&sbytes).unwrap();
    check(&sraw, "snapshot");
    let snapshot: Snapshot = sraw.parse().unwrap();
    assert_eq!(snapshot.version, sm.version);
    let tm = snapshot.meta["targets.json"].clone();
    let tbytes = std::fs::read(md.join(format!("{}.targets.json", tm.version))).unwrap();
    ota_formats::hash::verify_bytes(&tbytes, tm.hashes.as_ref().unwrap(), tm.length.unwrap())
        .expect("snapshot lists the targets' length and sha256");
    let tr = RawMetadata::from_bytes(&tbytes).unwrap();
    check(&tr, "targets");
    let targets: Targets = tr.parse().unwrap();
    assert_eq!(targets.version, tm.version);
    Verified {
        root,
        timestamp,
        snapshot,
        targets,
    }
}

pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

/// Run `ota-sign` with `args`, killing it after `limit` (a regression that blocks on a FIFO
/// or reads `/dev/zero` must fail the test, not hang the suite). Returns the output and how
/// long it took; panics if it had to be killed.
pub fn run_with_timeout<I, S>(args: I, limit: std::time::Duration) -> (Output, std::time::Duration)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::process::Stdio;
    use std::time::Instant;
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ota-sign");
    loop {
        if child.try_wait().expect("wait for ota-sign").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap ota-sign");
            panic!(
                "ota-sign did not finish within {limit:?} (killed); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect ota-sign output");
    (out, start.elapsed())
}

/// Make a FIFO at `path` (with mkfifo(1)).
pub fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}
