//! Running the workspace's real binaries (`ota-client`, `ota-sign`) from tests: they are built
//! once per test process (`cargo build`, a no-op when up to date) and run with captured output.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>/` of the running test binary.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test>-<hash>
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Path of a workspace binary, built if needed (`ota-client`, `ota-sign`, `ota-server`,
/// `ota-ca`).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.arg("build");
        if bin_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .args([
                "--quiet",
                "-p",
                "ota-client",
                "--bin",
                "ota-client",
                "-p",
                "ota-signer",
                "--bin",
                "ota-sign",
                "-p",
                "ota-repo-server",
                "--bin",
                "ota-server",
                "-p",
                "ota-ca",
                "--bin",
                "ota-ca",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .unwrap();
        assert!(status.success(), "building the binaries failed");
    });
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// Run `ota-client COMMAND --state STATE ARGS...` (`args[0]` is the command).
pub fn client(state: &Path, args: &[&str]) -> Run {
    let mut all: Vec<&std::ffi::OsStr> =
        vec![args[0].as_ref(), "--state".as_ref(), state.as_os_str()];
    for a in &args[1..] {
        all.push(a.as_ref());
    }
    run("ota-client", &all)
}

/// Output of one command.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Run binary `name` with `args`.
pub fn run<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> Run {
    let out = Command::new(bin(name)).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file under `dir` (recursively) with its bytes, for "nothing changed" checks.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Run binary `name` with `args`, writing `input` to its stdin.
pub fn run_with_stdin<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S], input: &[u8]) -> Run {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A repository made by the real `ota-sign init` in a temp dir, with its keys beside it and a
/// `work/` dir for firmware files.
pub struct SignedRepo {
    _dir: tempfile::TempDir,
    /// The repository (`metadata/`, `targets/`).
    pub repo: PathBuf,
    /// The role keys (outside the repository).
    pub keys: PathBuf,
    /// Scratch space for images to add.
    pub work: PathBuf,
}

impl SignedRepo {
    /// Run `ota-sign init` and assert it succeeded.
    pub fn init() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (repo, keys, work) = (
            dir.path().join("repo"),
            dir.path().join("keys"),
            dir.path().join("work"),
        );
        std::fs::create_dir(&work).unwrap();
        let r = run(
            "ota-sign",
            &[
                "init".as_ref(),
                "--repo".as_ref(),
                repo.as_os_str(),
                "--keys".as_ref(),
                keys.as_os_str(),
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        SignedRepo {
            _dir: dir,
            repo,
            keys,
            work,
        }
    }

    /// `ota-sign add` the image `data` as `name` `version` for `hardware` (comma-separated),
    /// with `extra` arguments (e.g. `--encrypt-to`); asserts it succeeded and returns the
    /// target name (`NAME-VERSION.img.zst`).
    pub fn add(
        &self,
        name: &str,
        version: &str,
        hardware: &str,
        data: &[u8],
        extra: &[&str],
    ) -> String {
        let file = self.work.join(format!("{name}-{version}.img"));
        std::fs::write(&file, data).unwrap();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "add".as_ref(),
            "--repo".as_ref(),
            self.repo.as_os_str(),
            "--keys".as_ref(),
            self.keys.as_os_str(),
            file.as_os_str(),
            "--name".as_ref(),
            name.as_ref(),
            "--version".as_ref(),
            version.as_ref(),
            "--hardware".as_ref(),
            hardware.as_ref(),
        ];
        for a in extra {
            args.push(a.as_ref());
        }
        let r = run("ota-sign", &args);
        assert_eq!(r.code, 0, "{r:?}");
        format!("{name}-{version}.img.zst")
    }
}
