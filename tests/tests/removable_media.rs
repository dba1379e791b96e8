//! Updates from removable media (issue 14): `ota-sign export` writes a self-contained copy of
//! what devices see, `ota-client update --from DIR` installs from it with the verification of
//! a network update, and the network refresh that follows continues from the state the copy
//! left. A tampered copy (a target byte, signed metadata, an older copy) is refused and the
//! device keeps its firmware and state.
use ota_tests::cli::{run, tree, Run, SignedRepo};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};

/// Nothing listens here: a device configured with it has no network.
const NO_SERVER: &str = "http://127.0.0.1:1";

struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
}

impl Dev {
    fn new(rel: &SignedRepo) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("slot")).unwrap();
        let d = Dev {
            state: dir.path().join("state"),
            slot: dir.path().join("slot/firmware.img"),
            _dir: dir,
        };
        let root = rel.repo.join("metadata/1.root.json");
        let r = d.client(&[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            NO_SERVER,
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

    fn update(&self, from: Option<&Path>) -> Run {
        let mut args = vec![
            "update",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
            "--no-report",
        ];
        if let Some(f) = from {
            args.extend(["--from", f.to_str().unwrap()]);
        }
        self.client(&args)
    }

    fn set_server(&self, url: &str) {
        let path = self.state.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        c["server"] = url.into();
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    /// The firmware and every state file (metadata, installed.json, time floor).
    fn everything(&self) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        tree(self._dir.path())
    }

    /// The firmware and installed.json only.
    fn firmware(&self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        (
            std::fs::read(&self.slot).ok(),
            std::fs::read(self.state.join("installed.json")).ok(),
        )
    }

    fn version(&self) -> String {
        let bytes = std::fs::read(self.state.join("installed.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["version"].as_str().unwrap().to_string()
    }
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 12) as u8))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn export(rel: &SignedRepo, to: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "export",
        "--repo",
        rel.repo.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--json",
    ];
    args.extend(extra);
    let r = run("ota-sign", &args);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
}

/// The stick's file under `dir` whose name ends with `suffix`.
fn find(dir: &Path, suffix: &str) -> PathBuf {
    tree(dir)
        .into_keys()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

fn assert_refused(r: &Run) {
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("error: ") && r.stderr.contains("hint: "),
        "{r:?}"
    );
}

#[test]
fn export_then_update_offline_then_online_and_tampered_copies_are_refused() {
    let rel = SignedRepo::init();
    let tmp = tempfile::tempdir().unwrap();
    let v11 = image(3, 120_000);
    let mut v12 = v11.clone();
    v12[5_000..5_100].fill(0xAB);

    rel.add("gateway-fw", "1.0.0", "board-a", &image(1, 120_000), &[]);
    let mirror_old = tmp.path().join("mirror-old");
    copy_dir(&rel.repo, &mirror_old);
    rel.add("gateway-fw", "1.1.0", "board-a", &v11, &[]);
    rel.add("modem-fw", "3.0.0", "board-z", &image(9, 1_000), &[]);

    // Export: the newest release of each image; a non-empty directory is refused.
    let stick_old = tmp.path().join("stick-old");
    let e = export(&rel, &stick_old, &[]);
    let names: Vec<(&str, &str)> = e["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["version"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("gateway-fw", "1.1.0"), ("modem-fw", "3.0.0")]);
    assert!(stick_old.join("metadata/1.root.json").is_file());
    assert!(stick_old.join("metadata/timestamp.json").is_file());
    assert!(tree(&stick_old.join("targets"))
        .keys()
        .all(|p| !p.to_string_lossy().contains("1.0.0")));
    let r = run(
        "ota-sign",
        &[
            "export",
            "--repo",
            rel.repo.to_str().unwrap(),
            "--to",
            stick_old.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not empty"), "{r:?}");
    for bad in ["gateway-fw@9.9.9", "gateway-fw"] {
        let r = run(
            "ota-sign",
            &[
                "export",
                "--repo",
                rel.repo.to_str().unwrap(),
                "--to",
                tmp.path().join("unused").to_str().unwrap(),
                "--target",
                bad,
                "--json",
            ],
        );
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert_eq!(r.json()["error"]["exit_code"], 2);
    }
    // A copy made when the metadata has expired would be refused by every device.
    let r = run(
        "ota-sign",
        &[
            "--now",
            "2200-01-01T00:00:00Z",
            "export",
            "--repo",
            rel.repo.to_str().unwrap(),
            "--to",
            tmp.path().join("unused").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("expired"), "{r:?}");

    // 1.2.0 with a patch from 1.1.0; the stick of it has the patch too.
    rel.add(
        "gateway-fw",
        "1.2.0",
        "board-a",
        &v12,
        &["--delta-from", "gateway-fw@1.1.0"],
    );
    let stick = tmp.path().join("stick");
    let e = export(&rel, &stick, &["--target", "gateway-fw@1.2.0"]);
    assert_eq!(
        e["releases"][0]["targets"],
        serde_json::json!([
            "gateway-fw-1.2.0.img.zst",
            "gateway-fw-1.2.0.from-1.1.0.patch"
        ])
    );

    // A device with no network installs from the old stick, then from the new one (by delta).
    let dev = Dev::new(&rel);
    assert_eq!(dev.update(None).code, 3, "no network");
    let r = dev.update(Some(&stick_old));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev.version(), "1.1.0");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v11);
    let r = dev.update(Some(&stick_old));
    assert_eq!(r.code, 100, "{r:?}");

    // The stick's metadata is the floor: a server with older metadata is a rollback.
    let old_server = TestServer::start(&mirror_old);
    dev.set_server(&old_server.url());
    let before = dev.everything();
    assert_refused(&dev.update(None));
    assert_eq!(dev.everything(), before, "refused, nothing changed");
    drop(old_server);

    // Tampered copies of the new stick.
    let tampered = |name: &str, edit: &dyn Fn(&Path)| {
        let dir = tmp.path().join(name);
        copy_dir(&stick, &dir);
        edit(&dir);
        dir
    };
    // Signed metadata edited (before the device has the genuine one: a file it already trusts
    // is not read again): the timestamp (nothing stored), the targets (refused by hash).
    let bad_timestamp = tampered("bad-timestamp", &|d| {
        let f = d.join("metadata/timestamp.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        v["signed"]["expires"] = "2199-01-01T00:00:00Z".into();
        std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();
    });
    let before = dev.everything();
    assert_refused(&dev.update(Some(&bad_timestamp)));
    assert_eq!(dev.everything(), before, "refused, nothing changed");
    let bad_targets = tampered("bad-targets", &|d| {
        let f = find(&d.join("metadata"), ".targets.json");
        let s = std::fs::read_to_string(&f).unwrap();
        let edited = s.replacen("board-a", "board-b", 1);
        assert_ne!(s, edited);
        std::fs::write(&f, edited).unwrap();
    });
    let fw = dev.firmware();
    assert_refused(&dev.update(Some(&bad_targets)));
    assert_eq!(dev.firmware(), fw);

    // A target byte: the metadata is valid (and kept), the image refused.
    let bad_target = tampered("bad-target", &|d| {
        for f in [
            find(d, ".gateway-fw-1.2.0.img.zst"),
            find(d, ".gateway-fw-1.2.0.from-1.1.0.patch"),
        ] {
            let mut b = std::fs::read(&f).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 1;
            std::fs::write(&f, b).unwrap();
        }
    });
    assert_refused(&dev.update(Some(&bad_target)));
    assert_eq!(
        dev.firmware(),
        fw,
        "the firmware and installed.json are kept"
    );
    // The genuine stick: 1.2.0 by its patch, without network.
    let r = dev.update(Some(&stick));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["delta_used"], true, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v12);

    // An older stick after a newer one: a rollback, refused, nothing changed.
    let before = dev.everything();
    assert_refused(&dev.update(Some(&stick_old)));
    assert_eq!(dev.everything(), before);
    // A directory without a copy is a usage error (exit 2), not a network one.
    let r = dev.update(Some(tmp.path()));
    assert_eq!(r.code, 2, "{r:?}");

    // Online again: the network refresh continues from the stick's state.
    rel.add("gateway-fw", "1.3.0", "board-a", &image(4, 120_000), &[]);
    let server = TestServer::start(&rel.repo);
    dev.set_server(&server.url());
    let r = dev.update(None);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev.version(), "1.3.0");
}

#[test]
fn an_encrypted_release_travels_with_its_key_slips() {
    let rel = SignedRepo::init();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Dev::new(&rel);
    let r = dev.client(&["keygen", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let public = r.json()["public_key"].as_str().unwrap().to_string();
    let r = run(
        "ota-sign",
        &[
            "recipients",
            "add",
            "--repo",
            rel.repo.to_str().unwrap(),
            "dev-1",
            &public,
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let img = image(7, 50_000);
    rel.add(
        "gateway-fw",
        "2.0.0",
        "board-a",
        &img,
        &["--encrypt-to", "device:dev-1"],
    );
    let stick = tmp.path().join("stick");
    let e = export(&rel, &stick, &[]);
    assert_eq!(e["releases"][0]["version"], "2.0.0");
    let slips: Vec<PathBuf> = tree(&stick.join("targets"))
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".slip"))
        .collect();
    assert_eq!(slips.len(), 1, "the device's key slip is on the copy");

    // Without its slip the release is not one this device can read: passed over, nothing
    // installed. With it (the copy as exported), installed.
    let stripped = tmp.path().join("stripped");
    copy_dir(&stick, &stripped);
    std::fs::remove_file(stripped.join(slips[0].strip_prefix(&stick).unwrap())).unwrap();
    let r = dev.update(Some(&stripped));
    assert_eq!(r.code, 100, "{r:?}");
    assert_eq!(r.json()["skipped"][0]["version"], "2.0.0", "{r:?}");
    assert_eq!(dev.firmware(), (None, None));
    let r = dev.update(Some(&stick));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), img);
}
