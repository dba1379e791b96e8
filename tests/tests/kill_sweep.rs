//! The kill sweep (issue 11): `ota-client update` (and `mark-good`) is killed with SIGKILL at
//! every crash point it passes (`OTA_TEST_KILL_AT=N`, see `ota_client::crash_point`): each
//! chunk downloaded, decrypted, patched, written to the slot and read back, and every state
//! and boot-environment write. After each kill: the slot the boot variables select holds a
//! complete image whose sha256 is signed (and a trial boots exactly the new release); the
//! client is rerun as a service would, with no human help; and the update completes.
use ota_tests::ab::{image, AbDevice};
use ota_tests::cli::{bin, run, Run, SignedRepo};
use ota_tests::noise::noise;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Copy the regular files of `from` into `to` (recursively), replacing `to`.
fn copy_tree(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Run `ota-client ARGS --state DIR` with the kill hook at `at`.
fn client_killed_at(dev: &AbDevice, args: &[&str], at: u64) -> Run {
    let out = Command::new(bin("ota-client"))
        .arg(args[0])
        .arg("--state")
        .arg(&dev.state)
        .args(&args[1..])
        .env("OTA_TEST_KILL_AT", at.to_string())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The boot variables of the device's `file:` environment.
fn boot_vars(dev: &AbDevice) -> BTreeMap<String, String> {
    std::fs::read_to_string(&dev.env)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The invariant: the selected slot holds a complete signed image; when it is selected for
/// a trial, that image is the release being installed.
fn check_bootable(dev: &AbDevice, old: &[u8], new: &[u8], what: &str) {
    let vars = boot_vars(dev);
    let slot = vars["ota_slot"].as_str();
    let content = std::fs::read(dev.slot(slot)).unwrap();
    let holds = |img: &[u8]| content.len() >= img.len() && content[..img.len()] == *img;
    assert!(
        holds(old) || holds(new),
        "{what}: the boot variables select slot {slot}, which holds no complete signed image"
    );
    if vars["upgrade_available"] == "1" {
        assert!(
            holds(new),
            "{what}: slot {slot} is selected for a trial but does not hold the new release"
        );
    }
}

/// Rerun the device as its service would until `version` is committed: update, reboot,
/// mark-good; at most a few steps, no human help.
fn finish(dev: &AbDevice, old: &[u8], new: &[u8], version: &str, what: &str) {
    for _ in 0..8 {
        let s = dev.status();
        let committed = s["committed"].as_str().unwrap().to_string();
        match s["update_state"].as_str().unwrap() {
            "idle" if s["slots"][&committed]["version"] == version => {
                let content = std::fs::read(dev.slot(&committed)).unwrap();
                assert_eq!(&content[..new.len()], new, "{what}: committed slot content");
                return;
            }
            "pending-reboot" => {
                dev.reboot();
                check_bootable(dev, old, new, what);
            }
            "trial" => {
                dev.json(&["mark-good"], 0);
            }
            _ => {
                let r = dev.client(&["update", "--json"]);
                assert!(r.code == 0 || r.code == 100, "{what}: rerun: {r:?}");
            }
        }
    }
    panic!("{what}: the update did not complete by itself");
}

/// Kill `args` at N = 1, 2, ... on a fresh copy of the device in `template` until a run
/// passes every point; returns the labels of the points killed at.
fn sweep(
    dev: &AbDevice,
    template: &Path,
    args: &[&str],
    old: &[u8],
    new: &[u8],
    version: &str,
) -> Vec<String> {
    let mut labels = Vec::new();
    for at in 1..5000u64 {
        copy_tree(template, dev.dir());
        let r = client_killed_at(dev, args, at);
        if r.code == 0 || r.code == 100 {
            assert!(!r.stderr.contains("crash point"), "{r:?}");
            return labels;
        }
        let what = format!("{args:?} killed at point {at}");
        assert_eq!(r.code, -1, "{what}: not killed: {r:?}");
        let label = r
            .stderr
            .split(&format!("crash point {at} ("))
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or_else(|| panic!("{what}: no crash point message: {r:?}"));
        labels.push(label.to_string());
        check_bootable(dev, old, new, &what);
        finish(dev, old, new, version, &what);
    }
    panic!("more than 5000 crash points");
}

fn count(labels: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for l in labels {
        *m.entry(l.as_str()).or_insert(0) += 1;
    }
    m
}

#[test]
fn killed_at_every_crash_point_the_device_boots_and_the_update_completes() {
    const LEN: usize = 2 * 1024 * 1024 + 12345;
    let repo = SignedRepo::init();
    let v1 = image(1, LEN);
    repo.add("gateway-fw", "1.0.0", "board-a", &v1, &[]);
    let server = TestServer::start(&repo.repo);
    let dev = AbDevice::new(&v1);
    dev.init(&repo, &server.url());
    let key = dev.json(&["keygen"], 0);
    let public = key["public_key"].as_str().unwrap().to_string();
    let r = run(
        "ota-sign",
        &[
            "recipients",
            "add",
            "--repo",
            repo.repo.to_str().unwrap(),
            "dev",
            &public,
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // Encrypted, incompressible: many download, decrypt and slot chunks.
    let v2 = noise(2, LEN);
    repo.add(
        "gateway-fw",
        "2.0.0",
        "board-a",
        &v2,
        &["--encrypt-to", "device:dev"],
    );
    let template = tempfile::tempdir().unwrap();
    copy_tree(dev.dir(), template.path());

    let mut all = sweep(&dev, template.path(), &["update"], &v1, &v2, "2.0.0");
    let update = count(&all);
    println!("update: {} crash points: {update:?}", all.len());
    for phase in [
        "download",
        "decrypt",
        "slot-write",
        "slot-sync",
        "read-back",
        "state",
        "boot-env",
    ] {
        assert!(
            update.contains_key(phase),
            "no crash point in {phase}: {update:?}"
        );
    }

    // mark-good: from a device that booted the new slot on trial.
    copy_tree(template.path(), dev.dir());
    assert_eq!(dev.json(&["update"], 0)["slot"], "b");
    assert_eq!(dev.reboot(), "b");
    let trial = tempfile::tempdir().unwrap();
    copy_tree(dev.dir(), trial.path());
    let marks = sweep(&dev, trial.path(), &["mark-good"], &v1, &v2, "2.0.0");
    println!(
        "mark-good: {} crash points: {:?}",
        marks.len(),
        count(&marks)
    );
    assert!(count(&marks).contains_key("boot-env"), "{marks:?}");
    all.extend(marks);

    // A delta release against the committed slot (plain, so the patch itself is swept).
    copy_tree(template.path(), dev.dir());
    finish(
        &dev,
        &v1,
        &v2,
        "2.0.0",
        "installing 2.0.0 for the delta sweep",
    );
    let mut v3 = v2.clone();
    for i in (0..LEN).step_by(4096) {
        v3[i] ^= 0x5A;
    }
    repo.add(
        "gateway-fw",
        "3.0.0",
        "board-a",
        &v3,
        &[
            "--delta-from",
            "gateway-fw@2.0.0",
            "--base-image",
            repo.work.join("gateway-fw-2.0.0.img").to_str().unwrap(),
        ],
    );
    let delta_template = tempfile::tempdir().unwrap();
    copy_tree(dev.dir(), delta_template.path());
    let deltas = sweep(&dev, delta_template.path(), &["update"], &v2, &v3, "3.0.0");
    println!(
        "delta update: {} crash points: {:?}",
        deltas.len(),
        count(&deltas)
    );
    assert!(count(&deltas).contains_key("patch"), "{deltas:?}");
    all.extend(deltas);

    println!("kill sweep: {} crash points in all", all.len());
    assert!(all.len() >= 200, "only {} crash points", all.len());
}
