//! Release withdrawal and deliberate rollback (issue 14), with the real binaries:
//! `ota-sign withdraw` removes a release from what devices see (those that run it keep it),
//! `ota-sign add --rollback-from VERSION` signs an older release that only devices running
//! VERSION install, and nothing else makes a device go backwards.
use ota_tests::ab::{image, AbDevice};
use ota_tests::cli::{run, tree, Run, SignedRepo};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};

/// A single-file device on `server`.
struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
}

impl Dev {
    fn new(rel: &SignedRepo, server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = Dev {
            state: dir.path().join("state"),
            slot: dir.path().join("firmware.img"),
            _dir: dir,
        };
        let root = rel.repo.join("metadata/1.root.json");
        let r = d.client(&[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            "board-a",
            "--name",
            "gateway-fw",
        ]);
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
            "--no-report",
        ])
    }

    /// Update and expect `version` installed (exit 0).
    fn installs(&self, version: &str) {
        let r = self.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.json()["installed"]["version"], version, "{r:?}");
        assert_eq!(self.version(), version);
    }

    /// Update and expect nothing installed (exit 100), the slot and record unchanged.
    fn stays(&self) {
        let before = (tree(self.slot.parent().unwrap()), self.version());
        let r = self.update();
        assert_eq!(r.code, 100, "{r:?}");
        let after = (tree(self.slot.parent().unwrap()), self.version());
        assert_eq!(before.1, after.1);
        assert!(
            before
                .0
                .iter()
                .filter(|(p, _)| !p.starts_with(&self.state))
                .eq(after.0.iter().filter(|(p, _)| !p.starts_with(&self.state))),
            "the firmware changed"
        );
    }

    fn version(&self) -> String {
        let bytes = std::fs::read(self.state.join("installed.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["version"].as_str().unwrap().to_string()
    }
}

fn sign(args: &[&str]) -> Run {
    run("ota-sign", args)
}

fn target_file(repo: &Path, target: &str) -> Option<PathBuf> {
    let suffix = format!(".{target}");
    std::fs::read_dir(repo.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&suffix))
}

/// The signed `custom.ota` of `target` in the current targets metadata.
fn signed_ota(repo: &Path, target: &str) -> Option<serde_json::Value> {
    let ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    let snap_v = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snap: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{snap_v}.snapshot.json"))).unwrap(),
    )
    .unwrap();
    let t_v = snap["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .unwrap();
    let t: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{t_v}.targets.json"))).unwrap(),
    )
    .unwrap();
    t["signed"]["targets"][target]["custom"]["ota"]
        .as_object()
        .map(|o| serde_json::Value::Object(o.clone()))
}

#[test]
fn withdrawn_releases_stay_where_installed_and_only_signed_rollbacks_go_back() {
    let rel = SignedRepo::init();
    let (repo, keys) = (
        rel.repo.to_str().unwrap().to_string(),
        rel.keys.to_str().unwrap().to_string(),
    );
    let server = TestServer::start(&rel.repo);
    let url = server.url();
    let add = |v: &str, seed: u8, extra: &[&str]| {
        rel.add("gateway-fw", v, "board-a", &image(seed, 20_000), extra)
    };

    // Devices on each version: 1.0.0, 1.1.0, 1.2.0, and two plus an A/B device on 1.3.0.
    add("1.0.0", 10, &[]);
    let low = Dev::new(&rel, &url);
    low.installs("1.0.0");
    add("1.1.0", 11, &[]);
    let on11 = Dev::new(&rel, &url);
    on11.installs("1.1.0");
    add("1.2.0", 12, &[]);
    let on12 = Dev::new(&rel, &url);
    on12.installs("1.2.0");
    add("1.3.0", 13, &[]);
    let stay = Dev::new(&rel, &url);
    stay.installs("1.3.0");
    let back = Dev::new(&rel, &url);
    back.installs("1.3.0");
    let ab = AbDevice::new(&image(1, 20_000));
    ab.init(&rel, &url);
    let r = ab.json(&["update", "--no-report"], 0);
    assert_eq!(r["release"]["version"], "1.3.0", "{r}");
    assert_eq!(ab.reboot(), "b");
    ab.json(&["mark-good"], 0);

    // Withdraw 1.3.0: a new targets version without it; the file stays on disk.
    let file_13 = target_file(&rel.repo, "gateway-fw-1.3.0.img.zst").unwrap();
    let r = sign(&[
        "withdraw",
        "--repo",
        &repo,
        "--keys",
        &keys,
        "gateway-fw@1.3.0",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let w = r.json();
    assert_eq!(
        w["withdrawn"],
        serde_json::json!(["gateway-fw-1.3.0.img.zst"])
    );
    assert_eq!(
        w["still_listed"],
        serde_json::json!(["1.2.0", "1.1.0", "1.0.0"])
    );
    assert!(w["published"]["targets_version"].as_u64().unwrap() > 1);
    assert!(file_13.exists(), "the file is kept without --delete-file");
    assert!(signed_ota(&rel.repo, "gateway-fw-1.3.0.img.zst").is_none());
    // Withdrawing it again: not listed (exit 2), nothing changes.
    let r = sign(&[
        "withdraw",
        "--repo",
        &repo,
        "--keys",
        &keys,
        "gateway-fw@1.3.0",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not listed"), "{r:?}");

    // The device on the withdrawn version stays; the one below never installs it.
    stay.stays();
    low.installs("1.2.0");
    on12.stays();

    // Rollback refusals: the target version is listed (devices would come back to it), a
    // newer release is listed, the version was never published, or is not newer.
    let r = sign(&[
        "add",
        "--repo",
        &repo,
        "--keys",
        &keys,
        rel.work.join("gateway-fw-1.1.0.img").to_str().unwrap(),
        "--name",
        "gateway-fw",
        "--version",
        "1.1.1",
        "--hardware",
        "board-a",
        "--rollback-from",
        "1.3.0",
    ]);
    assert_eq!(r.code, 5, "1.2.0 is listed and newer than 1.1.1: {r:?}");
    assert!(r.stderr.contains("1.2.0"), "{r:?}");
    let fw = rel.work.join("rb.img");
    std::fs::write(&fw, image(11, 20_000)).unwrap();
    let try_rollback = |version: &str, from: &str| {
        sign(&[
            "add",
            "--repo",
            &repo,
            "--keys",
            &keys,
            fw.to_str().unwrap(),
            "--name",
            "gateway-fw",
            "--version",
            version,
            "--hardware",
            "board-a",
            "--rollback-from",
            from,
        ])
    };
    let r = try_rollback("1.2.1", "1.2.0");
    assert_eq!(r.code, 2, "1.2.0 is not newer than 1.2.1: {r:?}");
    let r = try_rollback("1.2.1", "1.2.5");
    assert_eq!(r.code, 2, "1.2.5 was never published: {r:?}");
    assert!(r.stderr.contains("never published"), "{r:?}");
    let r = try_rollback("1.1.1", "1.2.0");
    assert_eq!(r.code, 5, "1.2.0 is still listed: {r:?}");
    assert!(r.stderr.contains("withdraw"), "{r:?}");

    // Withdraw 1.2.0 as well, deleting its file.
    let file_12 = target_file(&rel.repo, "gateway-fw-1.2.0.img.zst").unwrap();
    let r = sign(&[
        "withdraw",
        "--repo",
        &repo,
        "--keys",
        &keys,
        "gateway-fw@1.2.0",
        "--delete-file",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["deleted_files"],
        serde_json::json!([file_12.to_str().unwrap()])
    );
    assert!(!file_12.exists());
    let r = sign(&["status", "--repo", &repo, "--json"]);
    assert!(r.code == 0 || r.code == 10, "{r:?}");

    // The signed rollback: 1.1.1 for the devices on 1.3.0.
    let r = try_rollback("1.1.1", "1.3.0");
    assert_eq!(r.code, 0, "{r:?}");
    let ota = signed_ota(&rel.repo, "gateway-fw-1.1.1.img.zst").unwrap();
    assert_eq!(ota["rollback_from"], serde_json::json!(["1.3.0"]), "{ota}");

    // Devices on 1.3.0 roll back (check says so), on another newer version they do not.
    let r = back.client(&["check", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["update"]["rollback_from"], "1.3.0", "{r:?}");
    back.installs("1.1.1");
    stay.installs("1.1.1");
    on12.stays();
    low.stays();
    on11.installs("1.1.1"); // below it: an ordinary update
                            // A/B: the committed version is what the rollback names.
    let r = ab.json(&["update", "--no-report"], 0);
    assert_eq!(r["release"]["version"], "1.1.1", "{r}");
    assert_eq!(ab.reboot(), "a");
    ab.json(&["mark-good"], 0);
    assert_eq!(ab.status()["slots"]["a"]["version"], "1.1.1");
    ab.json(&["update", "--no-report"], 100);

    // --allow-downgrade signs a release no device running a newer version installs.
    let r = sign(&[
        "add",
        "--repo",
        &repo,
        "--keys",
        &keys,
        fw.to_str().unwrap(),
        "--name",
        "gateway-fw",
        "--version",
        "0.9.0",
        "--hardware",
        "board-a",
        "--allow-downgrade",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    back.stays();
    on12.stays();

    // A newer release reaches everyone, the rolled-back devices included.
    add("1.4.0", 14, &[]);
    for d in [&back, &stay, &on12, &low, &on11] {
        d.installs("1.4.0");
    }
}
