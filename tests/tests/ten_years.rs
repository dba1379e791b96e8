//! Ten years of a repository on a fake clock (issue 14): `ota-sign --now` signs at each
//! simulated date, `ota-client` runs under `faketime` at it. Every year the release machine
//! re-signs what expired, rotates the root key and publishes a release:
//! - from year 3 the root keys are ECDSA P-256 instead of Ed25519 (a change of key type: the
//!   first P-256 root is signed by the last Ed25519 root key and the new P-256 one);
//! - in year 4 the targets key is compromised, rotated out (for a P-256 key), and a release
//!   signed with it is refused;
//! - in year 5 a device that never reaches the server is updated once from a USB stick
//!   (`ota-sign export`, `ota-client update --from`); an older stick is refused after it;
//! - from year 8 a release needs two people: a second targets key (Ed25519, held by its owner)
//!   and threshold 2, each release signed in a ceremony (`request`, `sign-request` by each
//!   holder, `combine`), which one signature does not pass.
//!
//! One device updates every year; another sleeps from year 0 to year 10 and catches up in one
//! update, walking every root version in between (all but the last long expired); the device
//! of the USB stick is brought online in year 10 and walks the roots from where the stick left
//! it.
use chrono::{DateTime, Duration, TimeZone, Utc};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_tests::cli::{run, tree, Run};
use ota_tests::keyroll::{copy_dir, serve_attacker_files, Device, Repo, Saved};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The first year whose root key is ECDSA P-256 (the earlier ones are Ed25519).
const P256_ROOT: i64 = 3;
/// The year the targets key leaks.
const COMPROMISE: i64 = 4;
/// The year of the USB stick the offline device is updated from.
const STICK: i64 = 5;
/// The year of an older stick, left in a drawer.
const OLD_STICK: i64 = 2;
/// The first year whose release needs two targets key holders (a signing ceremony).
const TWO_PERSON: i64 = 8;

/// Nothing listens here: a device configured with it has no network.
const NO_SERVER: &str = "http://127.0.0.1:1";

fn image(version: &str) -> Vec<u8> {
    format!("firmware {version} for board-a ")
        .repeat(300)
        .into_bytes()
}

fn year(start: DateTime<Utc>, k: i64) -> DateTime<Utc> {
    start + Duration::days(365 * k)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ota-sign ARGS --now=NOW`, for the commands that take no `--keys` (`export`, `request`,
/// `sign-request`; [`Repo::sign`] passes `--keys`).
fn ota_sign_at(now: DateTime<Utc>, args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.push(format!("--now={}", now.to_rfc3339()));
    run("ota-sign", &all)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn ten_years_of_rotations_a_compromise_a_usb_stick_a_ceremony_and_a_device_that_slept() {
    let start = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut repo = Repo::init(dir.path(), Some(start), &["--root-expiry", "400d"]);
    repo.release("0.0.0", &image("0.0.0"));
    let server = TestServer::start(&repo.repo);
    let device_at = |t: DateTime<Utc>| Device::init(&repo.first_root(), &server.url(), Some(t));
    let mut yearly = device_at(start + Duration::hours(1));
    let mut sleeper = device_at(start + Duration::hours(1));
    for dev in [&yearly, &sleeper] {
        assert_eq!(dev.update().code, 0);
        assert_eq!(dev.installed().as_deref(), Some("0.0.0"));
    }
    // Provisioned with the same first root, but out of the network's reach: only removable
    // media update it (until year 10).
    let mut offline = Device::init(
        &repo.first_root(),
        NO_SERVER,
        Some(start + Duration::hours(1)),
    );
    // A year later, with nothing re-signed, the repository has expired: devices refuse it.
    yearly.now = Some(year(start, 1));
    let r = yearly.assert_refused(4);
    assert!(r.stderr.contains("expired"), "{r:?}");

    let mut root_version = 1;
    let mut old_stick = None;
    let mut holders = Vec::new();
    for k in 1..=10 {
        let now = year(start, k);
        repo.now = Some(now);
        // What expired is re-signed. Once releases need two people the release machine cannot
        // re-sign targets alone: the year's ceremony re-signs targets, snapshot and timestamp.
        if k <= TWO_PERSON {
            repo.ok(&["publish"]);
        }
        // The root (400 days) is rotated before it expires.
        let old = repo.keyids("root");
        let mut rotate = vec![
            "rotate",
            "--role",
            "root",
            "--generate",
            "--remove-key",
            &old[0],
            "--expires",
            "400d",
        ];
        if k >= P256_ROOT {
            rotate.extend(["--key-type", "ecdsa-p256"]);
        }
        repo.ok(&rotate);
        root_version += 1;
        if k == P256_ROOT {
            the_root_key_changes_type(&repo, root_version);
        }
        yearly.now = Some(now + Duration::hours(1));
        if k == COMPROMISE {
            compromise_of_the_targets_key(&repo, &yearly, dir.path());
            root_version += 1;
        }
        if k == TWO_PERSON {
            holders = two_person_rule(&repo, &dir.path().join("bob"));
            root_version += 1;
        }
        let version = format!("{k}.0.0");
        if k >= TWO_PERSON {
            ceremony_release(&repo, &version, &holders, &dir.path().join("ceremony"));
        } else {
            repo.release(&version, &image(&version));
        }
        if k == COMPROMISE {
            // Past the attacker's timestamp and snapshot (signed with the real keys).
            repo.ok(&["publish", "--force"]);
        }
        if k == OLD_STICK {
            let stick = dir.path().join("usb-year-2");
            usb_stick(&repo, &stick, &version, root_version);
            old_stick = Some(stick);
        }
        if k == STICK {
            offline.now = Some(now + Duration::hours(3));
            let stick = dir.path().join("usb-year-5");
            usb_stick(&repo, &stick, &version, root_version);
            updated_once_from_usb_sticks(&offline, &stick, old_stick.as_deref().unwrap());
            assert_eq!(offline.root_version(), root_version);
        }
        let r = yearly.update();
        assert_eq!(r.code, 0, "year {k}: {r:?}");
        assert_eq!(yearly.installed().as_deref(), Some(version.as_str()));
        assert_eq!(yearly.root_version(), root_version, "year {k}");
    }
    assert_eq!(
        root_version, 13,
        "ten yearly rotations, the targets key's and the second targets holder's"
    );
    // The ceremonies are in the audit log, its chain intact: per year a request, the combine
    // refused with one signature, the two signatures accepted and the publication.
    let r = ota_sign_at(
        year(start, 10),
        &["audit", "verify", "--repo", s(&repo.repo), "--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["entries_count"], 15, "{r:?}");

    // The sleeper wakes up in year 10 with root v1 (expired nine years ago) and firmware
    // 0.0.0: one update walks roots 2..=13 (Ed25519, then P-256 root keys) and installs
    // 10.0.0, signed by both targets key holders.
    sleeper.now = Some(year(start, 10) + Duration::hours(2));
    assert_eq!(sleeper.installed().as_deref(), Some("0.0.0"));
    let r = sleeper.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&sleeper.slot).unwrap(), image("10.0.0"));
    assert_eq!(sleeper.root_version(), 13);

    // The offline device is brought into the network's reach in year 10: it trusts root v7
    // and runs 5.0.0, as the year-5 stick left it; from there the server's roots 8..=13 and
    // the final release.
    offline.now = Some(year(start, 10) + Duration::hours(2));
    assert_eq!(offline.root_version(), 7);
    assert_eq!(offline.installed().as_deref(), Some("5.0.0"));
    let config = offline.state.join("config.json");
    let mut c = read_json(&config);
    c["server"] = server.url().into();
    std::fs::write(&config, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let r = offline.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&offline.slot).unwrap(), image("10.0.0"));
    assert_eq!(offline.installed().as_deref(), Some("10.0.0"));
    assert_eq!(offline.root_version(), 13);

    // A device whose clock is wrong by more than the timestamp's day refuses the repository
    // (freshness is checked against the device's own time).
    sleeper.now = Some(year(start, 10) + Duration::days(3));
    sleeper.assert_refused(4);
}

/// The (keytype, scheme) of each root key of `N.root.json`, and the key ids that signed it.
fn root_keys(repo: &Repo, version: u64) -> (Vec<(String, String)>, Vec<String>) {
    let root = read_json(&repo.repo.join(format!("metadata/{version}.root.json")));
    let signed = &root["signed"];
    let types = signed["roles"]["root"]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            let key = &signed["keys"][id.as_str().unwrap()];
            (
                key["keytype"].as_str().unwrap().to_string(),
                key["scheme"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let signers = root["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sig| sig["keyid"].as_str().unwrap().to_string())
        .collect();
    (types, signers)
}

/// Year 3: the new root key is ECDSA P-256, the one it replaces was Ed25519; the new root is
/// signed by both (devices verify the old key's Ed25519 signature and the new P-256 one).
fn the_root_key_changes_type(repo: &Repo, version: u64) {
    let ed25519 = ("ed25519".to_string(), "ed25519".to_string());
    let p256 = ("ecdsa".to_string(), "ecdsa-sha2-nistp256".to_string());
    let (before, _) = root_keys(repo, version - 1);
    let (after, signers) = root_keys(repo, version);
    assert_eq!(before, [ed25519]);
    assert_eq!(after, [p256]);
    let old = read_json(
        &repo
            .repo
            .join(format!("metadata/{}.root.json", version - 1)),
    );
    let old_id = old["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap();
    let new_id = &repo.keyids("root")[0];
    let mut expected = vec![old_id.to_string(), new_id.clone()];
    let mut signers = signers;
    expected.sort();
    signers.sort();
    assert_eq!(signers, expected, "signed by the old and the new root key");
}

/// Year 4: the targets key leaks. The release machine rotates it out (for a P-256 key); the
/// attacker signs a release with it (and has it listed, as a compromised repository host
/// could): refused by the device, which keeps its firmware.
fn compromise_of_the_targets_key(repo: &Repo, dev: &Device, dir: &Path) {
    let attacker = dir.join("attacker");
    copy_dir(&repo.repo, &attacker.join("repo"));
    copy_dir(&repo.keys, &attacker.join("keys"));
    let old = repo.keyids("targets");
    let r = repo.ok(&[
        "rotate",
        "--role",
        "targets",
        "--generate",
        "--key-type",
        "ecdsa-p256",
        "--remove-key",
        &old[0],
        "--json",
    ]);
    let retired = r.json()["retired_files"][0].as_str().unwrap().to_string();
    assert!(retired.ends_with("targets-1.pem"), "{retired}");
    assert_eq!(
        r.json()["changes"][0]["added"][0]["keytype"],
        "ecdsa",
        "{r:?}"
    );

    let evil = Repo {
        repo: attacker.join("repo"),
        keys: attacker.join("keys"),
        now: repo.now,
    };
    evil.release("6.6.6", &image("evil"));
    evil.ok(&["publish", "--force"]);
    let saved = Saved::take(&repo.repo);
    serve_attacker_files(&evil.repo, &repo.repo);
    let r = dev.assert_refused(4);
    assert!(r.stderr.contains("targets"), "{r:?}");
    saved.restore();
}

/// `ota-sign export` of the newest release (`version`) to the empty directory `to`, at the
/// year's date: the roots 1..=`root_version` travel with it.
fn usb_stick(repo: &Repo, to: &Path, version: &str, root_version: u64) {
    let r = ota_sign_at(
        repo.now.unwrap(),
        &["export", "--repo", s(&repo.repo), "--to", s(to), "--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let releases = r.json()["releases"].clone();
    assert_eq!(releases.as_array().unwrap().len(), 1, "{releases}");
    assert_eq!(
        (
            releases[0]["name"].as_str(),
            releases[0]["version"].as_str()
        ),
        (Some("gw"), Some(version))
    );
    for v in 1..=root_version {
        assert!(to.join(format!("metadata/{v}.root.json")).is_file(), "{v}");
    }
}

/// Year 5: the device without network (it trusts root v1, nothing installed) is updated from
/// the year's stick: root v1 to the year's root, 5.0.0 byte for byte. The same stick again has
/// nothing new; the year-2 stick found in a drawer is older than what the device has seen:
/// refused, firmware and state unchanged.
fn updated_once_from_usb_sticks(dev: &Device, stick: &Path, old_stick: &Path) {
    let from = |dir: &Path| {
        dev.client(&[
            "update",
            "--install-to",
            s(&dev.slot),
            "--from",
            s(dir),
            "--json",
        ])
    };
    assert_eq!(dev.root_version(), 1);
    assert_eq!(dev.installed(), None);
    let r = dev.update();
    assert_eq!(r.code, 3, "no network: {r:?}");

    let r = from(stick);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image("5.0.0"));
    assert_eq!(dev.installed().as_deref(), Some("5.0.0"));
    let r = from(stick);
    assert_eq!(r.code, 100, "{r:?}");

    let before = tree(dev.state.parent().unwrap());
    let r = from(old_stick);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("rollback of timestamp"), "{r:?}");
    assert_eq!(
        tree(dev.state.parent().unwrap()),
        before,
        "a refused stick changed the device"
    );
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image("5.0.0"));
}

/// Year 8: releases need two people. Bob makes his own (Ed25519) targets key; for the
/// rotation he brings it to the release machine under the name it is listed under, so that
/// the new targets (threshold 2) can be signed by both keys, then takes it home. Alice keeps
/// the release machine's (P-256) targets key. Returns the two holders and their key files.
fn two_person_rule(repo: &Repo, home: &Path) -> Vec<(&'static str, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let files = read_json(&repo.repo.join("ota-repo.json"))["key_files"]["targets"].clone();
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
    let alice = repo.keys.join(files[0].as_str().unwrap());

    std::fs::create_dir_all(home).unwrap();
    let key = Ed25519Signer::generate();
    let bob = home.join("bob-targets.pem");
    std::fs::write(&bob, key.to_pkcs8_pem().unwrap()).unwrap();
    std::fs::set_permissions(&bob, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = home.join("bob-targets.pub.json");
    std::fs::write(&public, serde_json::to_vec(&key.public_key()).unwrap()).unwrap();

    let visiting = repo.keys.join("targets-3.pem");
    std::fs::copy(&bob, &visiting).unwrap();
    let r = repo.ok(&[
        "rotate",
        "--role",
        "targets",
        "--add-key",
        s(&public),
        "--threshold",
        "2",
        "--json",
    ]);
    std::fs::remove_file(&visiting).unwrap();
    let change = &r.json()["changes"][0];
    assert_eq!(change["added"][0]["file"], "targets-3.pem", "{r:?}");
    assert_eq!(change["added"][0]["keyid"], key.key_id().unwrap(), "{r:?}");
    assert_eq!(change["threshold"], 2, "{r:?}");
    assert_eq!(repo.keyids("targets").len(), 2);
    vec![("alice", alice), ("bob", bob)]
}

/// A release through the signing ceremony: staged (`add --no-publish`), a request, each holder
/// signs it with only their own key; combine refuses one signature (nothing published: the
/// same timestamp bytes) and publishes with both.
fn ceremony_release(repo: &Repo, version: &str, holders: &[(&str, PathBuf)], work: &Path) {
    let now = repo.now.unwrap();
    std::fs::create_dir_all(work).unwrap();
    let file = repo.repo.with_file_name(format!("fw-{version}.img"));
    std::fs::write(&file, image(version)).unwrap();
    repo.ok(&[
        "add",
        s(&file),
        "--name",
        "gw",
        "--version",
        version,
        "--hardware",
        "board-a",
        "--no-publish",
    ]);
    let request = work.join(format!("targets-{version}.request.json"));
    let r = ota_sign_at(
        now,
        &[
            "request",
            "--repo",
            s(&repo.repo),
            "--role",
            "targets",
            "--out",
            s(&request),
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let t = &r.json()["thresholds"][0];
    assert_eq!(t["threshold"], 2, "{r:?}");
    assert_eq!(t["keyids"].as_array().unwrap().len(), 2, "{r:?}");
    let added = format!("+ target gw-{version}.img.zst");
    assert!(r.json()["summary"].to_string().contains(&added), "{r:?}");

    let sigs: Vec<PathBuf> = holders
        .iter()
        .map(|(name, key)| {
            let out = work.join(format!("{version}.{name}.sig.json"));
            let r = ota_sign_at(
                now,
                &[
                    "sign-request",
                    s(&request),
                    "--key",
                    s(key),
                    "--signer-name",
                    name,
                    "--out",
                    s(&out),
                    "--json",
                ],
            );
            assert_eq!(r.code, 0, "{name}: {r:?}");
            out
        })
        .collect();
    let combine = |sigs: &[PathBuf]| {
        let mut args = vec!["combine", s(&request)];
        args.extend(sigs.iter().map(|p| s(p)));
        args.push("--json");
        repo.sign(&args)
    };

    let metadata = repo.repo.join("metadata");
    let before = tree(&metadata);
    let timestamp = std::fs::read(metadata.join("timestamp.json")).unwrap();
    let r = combine(&sigs[..1]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "keys", "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("targets: 1 valid signature(s) of the 2 needed"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(metadata.join("timestamp.json")).unwrap(),
        timestamp,
        "one signature published a timestamp"
    );
    assert!(tree(&metadata) == before, "one signature changed metadata/");

    let r = combine(&sigs);
    assert_eq!(r.code, 0, "{r:?}");
    let out = r.json();
    let signers: Vec<&str> = out["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["signer"].as_str())
        .collect();
    assert_eq!(signers, ["alice", "bob"], "{out}");
    let v = out["published"]["targets_version"].as_u64().unwrap();
    let published = read_json(&metadata.join(format!("{v}.targets.json")));
    assert_eq!(published["signatures"].as_array().unwrap().len(), 2);
    assert_ne!(
        std::fs::read(metadata.join("timestamp.json")).unwrap(),
        timestamp
    );
}
