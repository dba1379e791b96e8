//! A/B installs end to end with the real binaries (issue 11): `ota-sign` publishes,
//! `ota-server` serves, `ota-client` writes the inactive slot, the boot environment is
//! switched, a simulated reboot applies the boot loader's rule, `mark-good` commits; a
//! release that never marks good is rolled back after `bootlimit` boots, reported as failed
//! and not retried; a newer one installs normally.
use ota_tests::ab::{image, AbDevice};
use ota_tests::cli::SignedRepo;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;

const LEN: usize = 300_000;

fn env_text(dev: &AbDevice) -> String {
    std::fs::read_to_string(&dev.env).unwrap()
}

#[test]
fn update_trial_commit_rollback_and_retry_with_a_newer_release() {
    let repo = SignedRepo::init();
    let (v1, v2, v3, v4) = (image(1, LEN), image(2, LEN), image(3, LEN), image(4, LEN));
    repo.add("gateway-fw", "1.0.0", "board-a", &v1, &[]);
    let server = TestServer::start(&repo.repo);
    let dev = AbDevice::new(&v1);
    dev.init(&repo, &server.url());
    assert!(
        env_text(&dev).contains("ota_slot=a"),
        "init created the env"
    );

    // Fresh device: slot a runs an image of unknown version.
    let s = dev.status();
    assert_eq!(s["booted"], "a");
    assert_eq!(s["committed"], "a");
    assert_eq!(s["slots"]["a"]["state"], "committed");
    assert!(s["slots"]["a"]["version"].is_null());
    assert_eq!(s["slots"]["b"]["state"], "unknown");
    assert_eq!(s["update_state"], "idle");
    assert_eq!(s["boot"]["bootlimit"], 3);
    assert_eq!(s["failed_versions"], serde_json::json!([]));
    assert!(s["last_error"].is_null());
    // The documented keys come first, in order.
    let keys: Vec<&String> = s.as_object().unwrap().keys().take(7).collect();
    assert_eq!(
        keys,
        [
            "booted",
            "committed",
            "slots",
            "boot",
            "update_state",
            "failed_versions",
            "last_error"
        ]
    );

    // 1.0.0 is installable (version unknown): it goes to slot b.
    let out = dev.json(&["update"], 0);
    assert_eq!(out["result"], "reboot-needed", "{out}");
    assert_eq!(out["slot"], "b");
    assert_eq!(dev.slot_image("b", LEN), v1);
    assert_eq!(std::fs::metadata(&dev.slot_b).unwrap().len(), LEN as u64);
    let s = dev.status();
    assert_eq!(s["update_state"], "pending-reboot");
    assert_eq!(s["booted"], "a", "still running a until the reboot");
    assert_eq!(s["boot"]["ota_slot"], "b");
    assert_eq!(s["boot"]["upgrade_available"], 1);
    assert_eq!(s["slots"]["b"]["state"], "written");

    // While the trial is pending: nothing is installed, exit 100; mark-good commits nothing.
    repo.add("gateway-fw", "2.0.0", "board-a", &v2, &[]);
    let out = dev.json(&["update"], 100);
    assert_eq!(out["result"], "trial-pending", "{out}");
    let out = dev.json(&["mark-good"], 0);
    assert_eq!(out["result"], "not-booted-yet", "{out}");
    assert_eq!(dev.status()["boot"]["upgrade_available"], 1);

    // Reboot into b on trial, mark it good.
    assert_eq!(dev.reboot(), "b");
    let s = dev.status();
    assert_eq!(s["update_state"], "trial");
    assert_eq!(s["booted"], "b");
    assert_eq!(s["slots"]["b"]["state"], "trial");
    let out = dev.json(&["mark-good"], 0);
    assert_eq!(out["result"], "committed", "{out}");
    assert_eq!(out["version"], "1.0.0");
    let s = dev.status();
    assert_eq!(s["committed"], "b");
    assert_eq!(s["slots"]["b"]["state"], "committed");
    assert_eq!(s["slots"]["b"]["version"], "1.0.0");
    assert_eq!(s["boot"]["upgrade_available"], 0);
    assert_eq!(s["boot"]["bootcount"], 0);
    assert_eq!(s["installed"]["version"], "1.0.0");
    // mark-good again: nothing pending, still exit 0.
    assert_eq!(dev.json(&["mark-good"], 0)["result"], "nothing-pending");

    // 2.0.0 goes to slot a, is booted and committed.
    assert_eq!(dev.json(&["update"], 0)["slot"], "a");
    assert_eq!(dev.slot_image("a", LEN), v2);
    assert_eq!(dev.reboot(), "a");
    assert_eq!(dev.json(&["mark-good"], 0)["version"], "2.0.0");

    // 3.0.0 never marks good: booted bootlimit (3) times on trial, then the boot loader
    // falls back to the committed slot a... which is where 2.0.0 runs.
    repo.add("gateway-fw", "3.0.0", "board-a", &v3, &[]);
    assert_eq!(dev.json(&["update"], 0)["slot"], "b");
    for n in 1..=3 {
        assert_eq!(dev.reboot(), "b", "trial boot {n}");
        assert_eq!(dev.status()["update_state"], "trial");
    }
    assert_eq!(dev.reboot(), "a", "the fourth boot falls back");
    let s = dev.status();
    assert_eq!(s["booted"], "a");
    assert_eq!(s["committed"], "a");
    assert_eq!(s["update_state"], "idle");
    assert_eq!(s["failed_versions"], serde_json::json!(["3.0.0"]));
    assert_eq!(s["slots"]["b"]["state"], "failed");
    assert_eq!(s["slots"]["a"]["version"], "2.0.0");
    assert!(
        s["last_error"].as_str().unwrap().contains("3.0.0"),
        "{}",
        s["last_error"]
    );
    assert_eq!(s["installed"]["version"], "2.0.0");
    assert_eq!(dev.slot_image("a", LEN), v2, "the known-good image runs");

    // 3.0.0 is not retried; the older releases in the repository are never offered.
    let out = dev.json(&["update"], 100);
    assert_eq!(out["result"], "up-to-date", "{out}");
    let skipped = out["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["version"] == "3.0.0"
                && s["reason"].as_str().unwrap().contains("failed to boot")),
        "{out}"
    );

    // A newer release installs normally.
    repo.add("gateway-fw", "4.0.0", "board-a", &v4, &[]);
    assert_eq!(dev.json(&["update"], 0)["slot"], "b");
    assert_eq!(dev.slot_image("b", LEN), v4);
    assert_eq!(dev.reboot(), "b");
    assert_eq!(dev.json(&["mark-good"], 0)["version"], "4.0.0");
    let s = dev.status();
    assert_eq!(s["committed"], "b");
    assert_eq!(s["slots"]["b"]["version"], "4.0.0");
    assert_eq!(s["failed_versions"], serde_json::json!(["3.0.0"]));
}

#[test]
fn delta_against_the_committed_slot_hashes_only_the_signed_base_length() {
    let repo = SignedRepo::init();
    let v1 = image(1, LEN);
    let mut v2 = v1.clone();
    v2[1000..1100].copy_from_slice(&[0xAA; 100]);
    repo.add("gateway-fw", "1.0.0", "board-a", &v1, &[]);
    repo.add(
        "gateway-fw",
        "1.1.0",
        "board-a",
        &v2,
        &["--delta-from-previous", "1"],
    );
    let server = TestServer::start(&repo.repo);
    // Slot a is a partition: the image, then the rest of the partition.
    let mut partition = v1.clone();
    partition.extend(std::iter::repeat_n(0xFFu8, 200_000));
    let dev = AbDevice::new(&partition);
    dev.init(&repo, &server.url());
    let out = dev.json(&["update"], 0);
    assert_eq!(out["delta_used"], true, "{out}");
    assert!(
        out["downloaded_bytes"].as_u64().unwrap() < (LEN / 4) as u64,
        "{out}"
    );
    assert_eq!(dev.slot_image("b", LEN), v2);
    assert_eq!(dev.reboot(), "b");
    assert_eq!(dev.json(&["mark-good"], 0)["version"], "1.1.0");
}

#[test]
fn unusable_slots_and_boot_environments_are_refused_before_anything_is_written() {
    let repo = SignedRepo::init();
    let v1 = image(1, LEN);
    repo.add("gateway-fw", "1.0.0", "board-a", &v1, &[]);
    let server = TestServer::start(&repo.repo);

    // The same slot under two names (a link): refused at init, nothing created.
    let dev = AbDevice::new(&v1);
    std::fs::remove_file(&dev.slot_b).unwrap();
    std::os::unix::fs::symlink(&dev.slot_a, &dev.slot_b).unwrap();
    let r = dev.init_with(&repo, &server.url(), &dev.file_spec(), &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("same file"), "{r:?}");
    assert!(!dev.state.join("config.json").exists());
    assert!(!dev.env.exists());

    // A slot too small for the image: refused before download, slot and env untouched.
    let dev = AbDevice::new(&v1);
    let r = dev.init_slots(
        &repo,
        &server.url(),
        &dev.file_spec(),
        &dev.slot_b,
        "1KiB",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let env_before = std::fs::read(&dev.env).unwrap();
    let out = dev.json(&["update"], 2);
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too small"),
        "{out}"
    );
    assert_eq!(std::fs::read(&dev.slot_b).unwrap(), b"");
    assert_eq!(std::fs::read(&dev.env).unwrap(), env_before);
    assert_eq!(dev.status()["update_state"], "idle");

    // Garbage in the boot environment: clear error naming it, nothing written.
    let dev = AbDevice::new(&v1);
    dev.init(&repo, &server.url());
    std::fs::write(&dev.env, "ota_slot=c\nupgrade_available=0\n").unwrap();
    let out = dev.json(&["update"], 2);
    let msg = out["error"]["message"].as_str().unwrap();
    assert!(msg.contains("ota_slot"), "{out}");
    assert_eq!(std::fs::read(&dev.slot_b).unwrap(), b"");
    assert_eq!(
        std::fs::read_to_string(&dev.env).unwrap(),
        "ota_slot=c\nupgrade_available=0\n"
    );

    // grub-editenv missing from PATH: init refuses with the tool's name, writes nothing.
    let dev = AbDevice::new(&v1);
    let empty = dev.dir().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let root = repo.repo.join("metadata/1.root.json");
    let out = std::process::Command::new(ota_tests::cli::bin("ota-client"))
        .env("PATH", &empty)
        .args(["init", "--state"])
        .arg(&dev.state)
        .args(["--root"])
        .arg(&root)
        .args(["--server", &server.url(), "--hardware", "board-a"])
        .arg(format!("--slot=a={}", dev.slot_a.display()))
        .arg(format!("--slot=b={}", dev.slot_b.display()))
        .arg(format!("--boot-control=grub:{}", dev.env.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("grub-editenv"), "{stderr}");
    assert!(!dev.state.join("config.json").exists());
}

#[test]
fn a_read_only_slot_is_refused_before_anything_is_downloaded() {
    use std::os::unix::fs::PermissionsExt;
    let repo = SignedRepo::init();
    let v1 = image(1, LEN);
    repo.add("gateway-fw", "1.0.0", "board-a", &v1, &[]);
    let server = TestServer::start(&repo.repo);
    let dev = AbDevice::new(&v1);
    std::fs::set_permissions(&dev.slot_b, std::fs::Permissions::from_mode(0o444)).unwrap();
    // root ignores file modes: then use a read-only sysfs attribute, which nobody can open
    // for writing.
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .open(&dev.slot_b)
        .is_ok();
    let slot_b = if writable {
        std::path::PathBuf::from("/sys/kernel/uevent_seqnum")
    } else {
        dev.slot_b.clone()
    };
    assert!(std::fs::OpenOptions::new()
        .write(true)
        .open(&slot_b)
        .is_err());
    let r = dev.init_slots(&repo, &server.url(), &dev.file_spec(), &slot_b, "8MiB", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let env_before = std::fs::read(&dev.env).unwrap();
    let out = dev.json(&["update"], 2);
    let msg = out["error"]["message"].as_str().unwrap();
    assert!(msg.contains("not writable"), "{out}");
    assert!(
        !dev.state.join("downloads").exists()
            || std::fs::read_dir(dev.state.join("downloads"))
                .unwrap()
                .next()
                .is_none(),
        "nothing downloaded"
    );
    assert_eq!(std::fs::read(&dev.env).unwrap(), env_before);
    assert_eq!(dev.slot_image("a", LEN), v1);
    let s = dev.status();
    assert_eq!(s["boot"]["ota_slot"], "a");
    assert_eq!(s["update_state"], "idle");
}

#[test]
fn an_install_hook_receives_the_verified_image_then_commit() {
    use std::os::unix::fs::PermissionsExt;
    let repo = SignedRepo::init();
    let v1 = image(7, LEN);
    repo.add("gateway-fw", "1.0.0", "board-a", &v1, &[]);
    let server = TestServer::start(&repo.repo);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let hook = dir.path().join("flash-mcu");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$1 $OTA_IMAGE_NAME $OTA_IMAGE_VERSION $OTA_IMAGE_LENGTH\" >> {log}\n\
             [ \"$1\" = write ] && cat > {got}\nexit 0\n",
            log = dir.path().join("log").display(),
            got = dir.path().join("received").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = repo.repo.join("metadata/1.root.json");
    let r = ota_tests::cli::client(
        &state,
        &[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            &server.url(),
            "--hardware",
            "board-a",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = ota_tests::cli::client(
        &state,
        &["update", "--install-hook", hook.to_str().unwrap(), "--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["installed"]["version"], "1.0.0");
    assert_eq!(std::fs::read(dir.path().join("received")).unwrap(), v1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        format!("write gateway-fw 1.0.0 {LEN}\ncommit gateway-fw 1.0.0 {LEN}\n")
    );
    // Up to date afterwards: the hook is not called again.
    let r = ota_tests::cli::client(
        &state,
        &["update", "--install-hook", hook.to_str().unwrap()],
    );
    assert_eq!(r.code, 100, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}
