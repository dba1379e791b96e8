//! The device CLI end to end: `ota-sign` publishes, the real `ota-server` (and nginx) serves,
//! `ota-client` checks and installs into temp dirs. Exit codes are part of the contract.
use ota_tests::cli::{run, tree, Run, SignedRepo};
use ota_tests::nginx::Nginx;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::PathBuf;

/// A signed repository (fields `repo`, `keys`, `work` through `Deref`) and its test helpers.
struct Release(SignedRepo);

impl std::ops::Deref for Release {
    type Target = SignedRepo;
    fn deref(&self) -> &SignedRepo {
        &self.0
    }
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    // Compressible but distinct per seed.
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

impl Release {
    fn new() -> Self {
        Release(SignedRepo::init())
    }

    fn root(&self) -> PathBuf {
        self.repo.join("metadata/1.root.json")
    }

    fn add(&self, version: &str, data: &[u8]) -> String {
        self.add_named("gateway-fw", version, data)
    }

    fn add_named(&self, name: &str, version: &str, data: &[u8]) -> String {
        self.0.add(name, version, "board-a,board-b", data, &[])
    }

    /// The stored file of a target (`targets/<sha256>.<name>`).
    fn target_file(&self, name: &str) -> PathBuf {
        let suffix = format!(".{name}");
        std::fs::read_dir(self.repo.join("targets"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&suffix))
            .unwrap()
    }
}

struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
}

impl Dev {
    fn new(rel: &Release, server: &str, hardware: &str) -> Self {
        Self::with_args(rel, server, hardware, &[])
    }

    fn with_args(rel: &Release, server: &str, hardware: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(dir.path().join("slot")).unwrap();
        let slot = dir.path().join("slot/firmware.img");
        let d = Dev {
            _dir: dir,
            state,
            slot,
        };
        let root = rel.root();
        let mut args = vec![
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            hardware,
        ];
        args.extend(extra);
        let r = d.client(&args);
        assert_eq!(r.code, 0, "{r:?}");
        d
    }

    fn client(&self, args: &[&str]) -> Run {
        ota_tests::cli::client(&self.state, args)
    }

    fn update(&self) -> Run {
        self.client(&[
            "update",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
        ])
    }

    fn installed(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.state.join("installed.json")).unwrap()).unwrap()
    }

    /// The slot directory and installed.json, to prove a refused update changed nothing.
    fn observable(&self) -> (Vec<(PathBuf, Vec<u8>)>, Vec<u8>) {
        (
            tree(self.slot.parent().unwrap()).into_iter().collect(),
            std::fs::read(self.state.join("installed.json")).unwrap(),
        )
    }
}

fn assert_refused_unchanged(
    dev: &Dev,
    r: &Run,
    code: i32,
    before: &(Vec<(PathBuf, Vec<u8>)>, Vec<u8>),
) {
    assert_eq!(r.code, code, "{r:?}");
    assert!(
        r.stderr.contains("error: ") && r.stderr.contains("hint: "),
        "{r:?}"
    );
    assert_eq!(
        &dev.observable(),
        before,
        "a refused update changed the slot or installed.json"
    );
}

fn install_upgrade_and_refuse(rel: &Release, host: &dyn RepoHost, stop: impl FnOnce()) {
    let v1 = image(1, 700_000);
    rel.add("1.0.0", &v1);
    let dev = Dev::new(rel, &host.url(), "board-a");

    // Refuses to re-init without --force.
    let r = dev.client(&[
        "init",
        "--root",
        rel.root().to_str().unwrap(),
        "--server",
        &host.url(),
        "--hardware",
        "board-a",
    ]);
    assert_eq!(r.code, 2, "{r:?}");

    let r = dev.client(&["check", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["update"]["version"], "1.0.0");

    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["result"], "installed");
    assert_eq!(
        std::fs::read(&dev.slot).unwrap(),
        v1,
        "installed byte-identical"
    );
    assert_eq!(dev.installed()["version"], "1.0.0");
    assert_eq!(dev.installed()["name"], "gateway-fw");

    let r = dev.client(&["check"]);
    assert_eq!(r.code, 100, "{r:?}");
    let r = dev.update();
    assert_eq!(r.code, 100, "{r:?}");

    let status = dev.client(&["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.json()["installed"]["version"], "1.0.0");
    assert_eq!(status.json()["root_version"], 1);

    // A newer release is offered and installed.
    let v2 = image(2, 650_000);
    rel.add("1.1.0", &v2);
    let r = dev.client(&["check", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["update"]["version"], "1.1.0");
    // Installing into a directory that does not exist is a local I/O failure (exit 5).
    let before = dev.observable();
    let missing = dev.slot.parent().unwrap().join("no-such-dir/fw.img");
    let r = dev.client(&["update", "--install-to", missing.to_str().unwrap()]);
    assert_refused_unchanged(&dev, &r, 5, &before);
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v2);
    assert_eq!(dev.installed()["version"], "1.1.0");

    // A device of other hardware is offered nothing.
    let other = Dev::new(rel, &host.url(), "board-z");
    assert_eq!(other.client(&["check"]).code, 100);

    // A tampered target on the server: refused, nothing changed.
    let name = rel.add("1.2.0", &image(3, 600_000));
    let stored = rel.target_file(&name);
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();
    let before = dev.observable();
    let r = dev.update();
    assert_refused_unchanged(&dev, &r, 4, &before);
    assert!(r.stderr.contains("hashes"), "{r:?}");

    // The server goes away: exit 3, nothing changed.
    stop();
    let r = dev.update();
    assert_refused_unchanged(&dev, &r, 3, &before);
    let r = dev.client(&["check"]);
    assert_eq!(r.code, 3, "{r:?}");
}

#[test]
fn ota_server_install_upgrade_tamper_and_outage() {
    let rel = Release::new();
    let server = std::cell::RefCell::new(Some(TestServer::start(&rel.repo)));
    let host_url = server.borrow().as_ref().unwrap().url();
    struct Url(String);
    impl RepoHost for Url {
        fn url(&self) -> String {
            self.0.clone()
        }
    }
    install_upgrade_and_refuse(&rel, &Url(host_url), || {
        drop(server.borrow_mut().take());
    });
}

#[test]
fn nginx_install_upgrade_tamper_and_outage() {
    let rel = Release::new();
    let Some(nginx) = Nginx::start(&rel.repo) else {
        return;
    };
    let url = nginx.url();
    struct Url(String);
    impl RepoHost for Url {
        fn url(&self) -> String {
            self.0.clone()
        }
    }
    install_upgrade_and_refuse(&rel, &Url(url), move || drop(nginx));
}

#[test]
fn usage_and_state_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("none");
    let r = run("ota-client", &["check", "--state", state.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("hint: run `ota-client init"), "{r:?}");
    let r = run("ota-client", &["update", "--state", "x"]);
    assert_eq!(r.code, 2, "missing --install-to is a usage error: {r:?}");
    // A root that is not a valid self-signed root is refused at init.
    let bogus = dir.path().join("root.json");
    std::fs::write(&bogus, b"{}").unwrap();
    let r = run(
        "ota-client",
        &[
            "init",
            "--state",
            state.to_str().unwrap(),
            "--root",
            bogus.to_str().unwrap(),
            "--server",
            "http://127.0.0.1:9",
            "--hardware",
            "board-a",
        ],
    );
    assert_eq!(r.code, 4, "an invalid root is refused: {r:?}");
    assert!(!state.join("config.json").exists());
}

/// Issue 10, defect 4: `--install-to` a device node, a symlink, a directory or a FIFO used to
/// be replaced by a regular file (exit 0). Each is refused in one line, exit 2, untouched.
#[test]
fn install_to_anything_but_a_regular_file_is_refused() {
    use std::os::unix::fs::FileTypeExt;
    let rel = Release::new();
    rel.add("1.0.0", &image(1, 100_000));
    let server = TestServer::start(&rel.repo);
    let dev = Dev::new(&rel, &server.url(), "board-a");
    let dir = dev.slot.parent().unwrap().to_path_buf();

    let node = dir.join("fakedev");
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        // Not root: a link to an existing character device stands in (also refused).
        eprintln!("mknod not permitted; using /dev/null itself");
    }
    let node = if made {
        node
    } else {
        PathBuf::from("/dev/null")
    };
    let real = dir.join("real.img");
    std::fs::write(&real, b"old firmware").unwrap();
    let link = dir.join("link.img");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let subdir = dir.join("a-dir");
    std::fs::create_dir(&subdir).unwrap();
    let fifo = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());

    for (path, kind) in [
        (&node, "a character device"),
        (&link, "a symbolic link"),
        (&subdir, "a directory"),
        (&fifo, "a FIFO"),
    ] {
        let r = dev.client(&["update", "--install-to", path.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{kind}: {r:?}");
        assert!(
            r.stderr.contains(&format!("is {kind}, not a regular file")),
            "{kind}: {r:?}"
        );
        assert!(!dev.state.join("installed.json").exists(), "{kind}");
    }
    let meta = std::fs::symlink_metadata(&node).unwrap();
    assert!(
        meta.file_type().is_char_device(),
        "the node is still a node"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), b"old firmware");
    assert!(subdir.is_dir() && std::fs::read_dir(&subdir).unwrap().next().is_none());
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    // A regular file (or none yet) is installed as before.
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
}

/// Issue 10, defect 7: a device initialised without `--name` was offered the highest version
/// across every image of its hardware (`modem-fw 3.0.0` for its `gw` image). It now refuses to
/// guess, follows the configured line, and once it installed an image never switches.
#[test]
fn a_device_follows_one_image_line() {
    let rel = Release::new();
    rel.add_named("gw", "1.1.0", &image(1, 50_000));
    rel.add_named("modem-fw", "3.0.0", &image(2, 50_000));
    let server = TestServer::start(&rel.repo);

    let unnamed = Dev::new(&rel, &server.url(), "board-a");
    for cmd in ["check", "update"] {
        let r = if cmd == "check" {
            unnamed.client(&["check", "--json"])
        } else {
            unnamed.update()
        };
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
        assert!(r.stderr.contains("gw, modem-fw"), "{cmd}: {r:?}");
        assert!(r.stderr.contains("--name"), "{cmd}: {r:?}");
        assert_eq!(r.json()["error"]["exit_code"], 2, "{cmd}: {r:?}");
    }
    assert!(!unnamed.slot.exists());

    let named = Dev::with_args(&rel, &server.url(), "board-a", &["--name", "gw"]);
    let r = named.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(named.installed()["name"], "gw");
    assert_eq!(named.installed()["version"], "1.1.0");
    assert_eq!(named.client(&["check"]).code, 100);

    // Only one line for board-b at first: learned at the first install, then fixed.
    let rel_b = Release::new();
    rel_b.add_named("gw", "1.0.0", &image(3, 50_000));
    let server_b = TestServer::start(&rel_b.repo);
    let learner = Dev::new(&rel_b, &server_b.url(), "board-b");
    assert_eq!(learner.update().code, 0);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(learner.state.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["image_name"], "gw");
    rel_b.add_named("modem-fw", "9.0.0", &image(4, 50_000));
    let r = learner.client(&["check", "--json"]);
    assert_eq!(r.code, 100, "another image line is never offered: {r:?}");
}

/// Issue 10, defect 9: a recorded installed version that does not parse used to let any
/// version through (a warning, then carry on). It now fails closed.
#[test]
fn an_unparsable_installed_version_fails_closed() {
    let rel = Release::new();
    rel.add("1.0.0", &image(1, 50_000));
    let server = TestServer::start(&rel.repo);
    let dev = Dev::new(&rel, &server.url(), "board-a");
    assert_eq!(dev.update().code, 0);
    let path = dev.state.join("installed.json");
    let mut record = dev.installed();
    record["version"] = "latest".into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    rel.add("2.0.0", &image(2, 50_000));
    let before = dev.observable();
    let r = dev.update();
    assert_refused_unchanged(&dev, &r, 2, &before);
    assert!(r.stderr.contains("\"latest\""), "{r:?}");
}

/// Diagnostics of issue 10: every outcome of a `--json` command is JSON on stdout, logs carry
/// no colour codes off a terminal, a damaged local root is a local problem.
#[test]
fn json_errors_plain_logs_and_local_root_damage() {
    let rel = Release::new();
    rel.add("1.0.0", &image(1, 50_000));
    // Nothing listens on this port: a network error.
    let dev = Dev::new(&rel, "http://127.0.0.1:9", "board-a");
    let r = dev.client(&["check", "-vv", "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let err = &r.json()["error"];
    assert_eq!(err["kind"], "network", "{r:?}");
    assert_eq!(err["exit_code"], 3, "{r:?}");
    assert!(
        err["message"].as_str().unwrap().contains("127.0.0.1:9"),
        "{r:?}"
    );
    assert!(!err["hint"].as_str().unwrap().is_empty(), "{r:?}");
    assert!(r.stderr.contains("DEBUG"), "-vv logs: {r:?}");
    assert!(
        !r.stderr.contains('\x1b'),
        "no ANSI codes off a terminal: {r:?}"
    );

    // A usage error of a --json command is JSON too.
    let r = dev.client(&["update", "--install-to", "/", "--json"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "state", "{r:?}");
    assert_eq!(r.json()["error"]["exit_code"], 2, "{r:?}");
    assert!(r.stderr.contains("is a directory"), "{r:?}");

    // A command line clap refuses, with --json: JSON on stdout as well.
    let r = run("ota-client", &["check", "--json", "--no-such-flag"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "usage", "{r:?}");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{r:?}"
    );

    // The stored root damaged on the device: exit 2 with the remedy, not "attack" (4).
    let root = dev.state.join("metadata/root.json");
    std::fs::write(&root, b"{\"signed\": garbage").unwrap();
    let r = dev.client(&["check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("stored on this device is unusable"),
        "{r:?}"
    );
    assert!(r.stderr.contains("init --force"), "{r:?}");
}
