//! Key rotation and compromise recovery end to end (issue 14), with the real `ota-sign`,
//! `ota-server` and `ota-client` (signer/RECOVERY.md describes the procedures):
//!
//! - a compromised targets key is rotated out; a release signed with it afterwards is refused
//!   by devices, which keep their firmware;
//! - a fast-forward attack with the snapshot and timestamp keys freezes devices; rotating the
//!   timestamp key recovers them (the client forgets its trusted timestamp and snapshot);
//! - a root key compromised below the threshold is rotated out; a root signed with it alone
//!   is refused;
//! - a device away for 50 root versions (key and threshold changes, Ed25519 to ECDSA P-256)
//!   follows the whole chain in one update;
//! - with online roles, a rotated timestamp key is written to the online key directory and
//!   the restarted `ota-server` signs with it.
use ota_formats::metadata::{MetaFile, Signed, Snapshot, Timestamp};
use ota_repo::repository::meta_entry;
use ota_tests::keyroll::{copy_dir, serve_attacker_files, Device, Repo, Saved};
use ota_tests::server::TestServer;
use ota_tests::tls_server::ServerProcess;
use ota_tests::RepoHost;
use std::path::Path;

fn image(tag: &str) -> Vec<u8> {
    format!("firmware {tag} ").repeat(500).into_bytes()
}

/// Sign `value` with the key files `files` of `dir`.
fn sign_with<T: ota_formats::metadata::RoleType>(value: T, dir: &Path, files: &[&str]) -> Vec<u8> {
    let keys: Vec<_> = files
        .iter()
        .map(|f| ota_repo::keys::load_key(dir, f).unwrap())
        .collect();
    Signed::sign(value, &ota_repo::keys::as_signers(&keys))
        .unwrap()
        .to_bytes()
        .unwrap()
}

#[test]
fn a_compromised_targets_key_is_rotated_out_and_releases_signed_with_it_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &[]);
    repo.release("1.0.0", &image("1.0.0"));
    let server = TestServer::start(&repo.repo);
    let fresh = Device::init(&repo.first_root(), &server.url(), None);
    let old_root = repo.first_root();
    assert_eq!(fresh.update().code, 0);
    // A second device that will not hear of the rotation before the attack.
    let away = Device::init(&old_root, &server.url(), None);
    assert_eq!(away.update().code, 0);
    assert_eq!(away.installed().as_deref(), Some("1.0.0"));

    // The attacker's copy of the repository and keys, taken before the rotation.
    let attacker = dir.path().join("attacker");
    copy_dir(&repo.repo, &attacker.join("repo"));
    copy_dir(&repo.keys, &attacker.join("keys"));

    // Recovery: rotate the targets key out; every current target is re-signed with the new key.
    let old = repo.keyids("targets");
    let r = repo.ok(&[
        "rotate",
        "--role",
        "targets",
        "--generate",
        "--remove-key",
        &old[0],
        "--json",
    ]);
    let v = r.json();
    assert_eq!(v["root_version"], 2);
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    assert_eq!(loaded.targets.signed.targets.len(), 1);
    assert_eq!(loaded.targets.signed.version, 3, "re-signed");
    assert_eq!(
        fresh.client(&["check"]).code,
        100,
        "up to date, rotated metadata verifies"
    );
    assert_eq!(fresh.root_version(), 2);
    // A device set up now from root v1 installs the re-signed 1.0.0.
    let newcomer = Device::init(&old_root, &server.url(), None);
    assert_eq!(newcomer.update().code, 0);
    assert_eq!(newcomer.installed().as_deref(), Some("1.0.0"));

    // The attacker signs a release with the old targets key (and has the snapshot and
    // timestamp signed, as a compromised repository host could) and serves it beside the
    // real root chain.
    let evil = Repo {
        repo: attacker.join("repo"),
        keys: attacker.join("keys"),
        now: None,
    };
    evil.release("6.6.6", &image("evil"));
    evil.ok(&["publish", "--force"]);
    let saved = Saved::take(&repo.repo);
    serve_attacker_files(&evil.repo, &repo.repo);
    for dev in [&fresh, &away, &newcomer] {
        let r = dev.assert_refused(4);
        assert!(r.stderr.contains("targets"), "{r:?}");
        assert_eq!(
            dev.root_version(),
            2,
            "the rotation reached the device first"
        );
    }

    // The real repository again, and a real release signed with the new key: every device
    // installs it, the one away for the rotation and the attack too.
    saved.restore();
    repo.release("1.1.0", &image("1.1.0"));
    // The attacker's timestamp and snapshot (v4, signed with the real keys) are what devices
    // trust as newest: the real repository moves past them. (Rotating the snapshot and
    // timestamp keys as well, RECOVERY.md (b), needs no such step.)
    repo.ok(&["publish", "--force"]);
    for dev in [&fresh, &away, &newcomer] {
        let r = dev.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(std::fs::read(&dev.slot).unwrap(), image("1.1.0"));
    }
}

/// The fast-forward attack: whoever holds the snapshot and timestamp keys publishes huge
/// versions; devices that saw them refuse the real metadata as a rollback until those keys
/// are rotated.
fn fast_forward(repo: &Repo) {
    let md = repo.repo.join("metadata");
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    let mut snapshot: Snapshot = loaded.snapshot.signed.clone();
    snapshot.version = 1000;
    snapshot
        .meta
        .insert("targets.json".into(), MetaFile::new(1000));
    let snapshot = sign_with(snapshot, &repo.keys, &["snapshot-1.pem"]);
    std::fs::write(md.join("1000.snapshot.json"), &snapshot).unwrap();
    let mut ts: Timestamp = loaded.timestamp.signed.clone();
    ts.version = 1000;
    ts.meta
        .insert("snapshot.json".into(), meta_entry(1000, &snapshot));
    let ts = sign_with(ts, &repo.keys, &["timestamp-1.pem"]);
    std::fs::write(md.join("timestamp.json"), ts).unwrap();
}

#[test]
fn rotating_the_timestamp_key_recovers_devices_from_a_fast_forward_attack() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &[]);
    repo.release("1.0.0", &image("1.0.0"));
    let server = TestServer::start(&repo.repo);
    let dev = Device::init(&repo.first_root(), &server.url(), None);
    assert_eq!(dev.update().code, 0);

    let saved = Saved::take(&repo.repo);
    fast_forward(&repo);
    // The device trusts timestamp and snapshot v1000, then finds no targets v1000.
    let before = dev.observable();
    assert_ne!(dev.update().code, 0);
    assert_eq!(dev.observable(), before);
    let cached = std::fs::read(dev.state.join("metadata/snapshot.json")).unwrap();
    assert!(String::from_utf8_lossy(&cached).contains("1000"));

    // The real metadata again, even with a new release: refused as a rollback (frozen).
    saved.restore();
    repo.release("1.1.0", &image("1.1.0"));
    let r = dev.assert_refused(4);
    assert!(
        r.stderr.contains("rollback") || r.stderr.contains("older"),
        "{r:?}"
    );

    // Recovery (RECOVERY.md (b)): rotate the timestamp key. The device walks to root v2,
    // sees the timestamp keys changed, forgets its trusted timestamp AND snapshot (the
    // snapshot v1000 signed with the still-valid snapshot key included), and updates.
    let old = repo.keyids("timestamp");
    repo.ok(&[
        "rotate",
        "--role",
        "timestamp",
        "--generate",
        "--remove-key",
        &old[0],
    ]);
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev.installed().as_deref(), Some("1.1.0"));
    assert_eq!(dev.root_version(), 2);

    // The old timestamp key is refused from now on, and the device keeps what it has.
    let saved = Saved::take(&repo.repo);
    fast_forward(&repo);
    let r = dev.assert_refused(4);
    assert!(r.stderr.contains("timestamp"), "{r:?}");
    saved.restore();

    // Rotating the snapshot key too (the attacker held it) keeps devices updating.
    let old = repo.keyids("snapshot");
    repo.ok(&[
        "rotate",
        "--role",
        "snapshot",
        "--generate",
        "--remove-key",
        &old[0],
    ]);
    repo.release("1.2.0", &image("1.2.0"));
    assert_eq!(dev.update().code, 0);
    assert_eq!(dev.installed().as_deref(), Some("1.2.0"));
    assert_eq!(dev.root_version(), 3);
}

#[test]
fn a_root_key_compromised_below_the_threshold_is_rotated_out() {
    let dir = tempfile::tempdir().unwrap();
    // Root threshold 2 of 3 keys: init makes two, a rotation adds the third.
    let repo = Repo::init(dir.path(), None, &["--threshold", "root=2"]);
    repo.ok(&["rotate", "--role", "root", "--generate"]);
    repo.release("1.0.0", &image("1.0.0"));
    let server = TestServer::start(&repo.repo);
    let dev = Device::init(&repo.first_root(), &server.url(), None);
    assert_eq!(dev.update().code, 0);
    assert_eq!(dev.root_version(), 2);

    // root-1.pem is stolen (and gone from the release machine). Alone it cannot sign a root:
    // the attacker's root v3 (their own key for targets) is refused, nothing changes.
    let stolen = dir.path().join("stolen");
    std::fs::create_dir(&stolen).unwrap();
    std::fs::rename(repo.keys.join("root-1.pem"), stolen.join("root-1.pem")).unwrap();
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    let mut evil = loaded.root.signed.clone();
    evil.version = 3;
    let attacker_key = ota_formats::crypto::Ed25519Signer::generate();
    let targets = evil.roles["targets"].keyids.clone();
    for id in &targets {
        evil.remove_key("targets", id);
    }
    use ota_formats::crypto::Signer;
    evil.add_key("targets", attacker_key.public_key()).unwrap();
    let evil = sign_with(evil, &stolen, &["root-1.pem"]);
    let md = repo.repo.join("metadata");
    std::fs::write(md.join("3.root.json"), &evil).unwrap();
    let r = dev.assert_refused(4);
    assert!(r.stderr.contains("root"), "{r:?}");
    assert_eq!(dev.root_version(), 2);
    std::fs::remove_file(md.join("3.root.json")).unwrap();

    // Recovery (RECOVERY.md (c)): the two remaining root keys sign root v3 without the
    // stolen key, with a new key instead; threshold 2 of 3 again.
    let stolen_id = ota_repo::keys::load_key(&stolen, "root-1.pem")
        .unwrap()
        .keyid;
    let r = repo.ok(&[
        "rotate",
        "--role",
        "root",
        "--generate",
        "--remove-key",
        &stolen_id,
        "--json",
    ]);
    assert_eq!(r.json()["changes"][0]["threshold"], 2);
    assert_eq!(repo.keyids("root").len(), 3);
    assert!(!repo.keyids("root").contains(&stolen_id));
    repo.release("1.1.0", &image("1.1.0"));
    assert_eq!(dev.update().code, 0);
    assert_eq!(dev.root_version(), 3);

    // A root v4 signed with the stolen key and one more real root key still is not signed
    // by the threshold of root v3's keys (the stolen one no longer counts): refused.
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    let mut next = loaded.root.signed.clone();
    next.version = 4;
    let keys: Vec<_> = [(&stolen, "root-1.pem"), (&repo.keys, "root-2.pem")]
        .iter()
        .map(|(d, f)| ota_repo::keys::load_key(d, f).unwrap())
        .collect();
    let bytes = Signed::sign(next, &ota_repo::keys::as_signers(&keys))
        .unwrap()
        .to_bytes()
        .unwrap();
    std::fs::write(md.join("4.root.json"), bytes).unwrap();
    dev.assert_refused(4);
    assert_eq!(dev.root_version(), 3);
    std::fs::remove_file(md.join("4.root.json")).unwrap();
}

/// 50 rotations: every role in turn, the root threshold between 1 and 2, a key removed
/// whenever a role has two, and from the 41st on ECDSA P-256 keys instead of Ed25519.
#[test]
fn a_device_away_for_fifty_root_versions_follows_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &[]);
    repo.release("1.0.0", &image("1.0.0"));
    let server = TestServer::start(&repo.repo);
    let dev = Device::init(&repo.first_root(), &server.url(), None);
    assert_eq!(dev.update().code, 0);
    let roles = ["root", "targets", "snapshot", "timestamp", "root"];
    for i in 0..50 {
        let role = roles[i % roles.len()];
        // P-256 verification is slow in pure Rust: the switch comes late, so that each of
        // the 50 runs of ota-sign does not verify dozens of P-256 roots.
        let key_type = if i < 40 { "ed25519" } else { "ecdsa-p256" };
        let ids = repo.keyids(role);
        let mut args = vec![
            "rotate",
            "--role",
            role,
            "--generate",
            "--key-type",
            key_type,
        ];
        let removing = ids.len() >= 2;
        if removing {
            args.extend(["--remove-key", ids[0].as_str()]);
        }
        let count = ids.len() + 1 - usize::from(removing);
        let threshold = if role == "root" && (i / 5) % 2 == 1 {
            "2"
        } else {
            "1"
        };
        if count >= 2 {
            args.extend(["--threshold", threshold]);
        }
        let r = repo.ok(&args);
        assert!(
            r.stdout.contains(&format!("published root v{}", i + 2)),
            "{r:?}"
        );
    }
    for role in ["root", "targets", "snapshot", "timestamp"] {
        assert_eq!(repo.keyids(role).len(), 2, "{role}");
    }
    let root = ota_repo::Repository::load(&repo.repo).unwrap().root.signed;
    assert_eq!(root.version, 51);
    for (id, key) in &root.keys {
        assert_eq!(key.keytype, "ecdsa", "{id}: every key is P-256 by now");
    }
    repo.release("2.0.0", &image("2.0.0"));

    // One update walks roots 2..=51 and installs the release signed with today's keys.
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image("2.0.0"));
    assert_eq!(dev.root_version(), 51);
}

#[test]
fn with_online_roles_the_new_timestamp_key_goes_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &["--online-roles"]);
    let online = dir.path().join("keys-online");
    // The server that signs (its URL changes with each start) and the one devices use.
    let signer =
        |_: ()| ServerProcess::spawn(&repo.repo, &["--online-keys".as_ref(), online.as_os_str()]);
    let mut online_server = signer(());
    let server = TestServer::start(&repo.repo);
    let dev = Device::init(&repo.first_root(), &server.url(), None);
    let published = |dev: &Device, version: &str| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while dev.update().code != 0 {
            assert!(
                std::time::Instant::now() < until,
                "{version} never published"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert_eq!(dev.installed().as_deref(), Some(version));
    };
    repo.release("1.0.0", &image("1.0.0"));
    published(&dev, "1.0.0");

    let old = repo.keyids("timestamp");
    let r = repo.ok(&[
        "rotate",
        "--role",
        "timestamp",
        "--generate",
        "--remove-key",
        &old[0],
        "--json",
    ]);
    assert_eq!(
        r.json()["changes"][0]["added"][0]["file"],
        "timestamp-2.pem"
    );
    assert!(online.join("timestamp-2.pem").exists());
    assert!(
        !repo.keys.join("timestamp-2.pem").exists(),
        "online keys stay out of --keys"
    );
    assert_eq!(dev.client(&["check"]).code, 100);
    assert_eq!(dev.root_version(), 2);

    // The server restarted with the online key directory signs the next release.
    drop(online_server);
    online_server = signer(());
    repo.release("1.1.0", &image("1.1.0"));
    published(&dev, "1.1.0");
    let ts = std::fs::read(repo.repo.join("metadata/timestamp.json")).unwrap();
    let ts = ota_formats::metadata::RawMetadata::from_bytes(&ts).unwrap();
    assert_eq!(ts.signatures[0].keyid, repo.keyids("timestamp")[0]);
    drop(online_server);
}

/// A crash between the new `N.root.json` and `timestamp.json` of a key-changing rotation:
/// ota-sign refuses the repository and says how to finish; devices that fetched the new root
/// keep their firmware meanwhile; `rotate --resume` finishes it and devices update again.
#[test]
fn a_rotation_interrupted_after_its_root_is_finished_with_resume() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &[]);
    repo.release("1.0.0", &image("1.0.0"));
    let server = TestServer::start(&repo.repo);
    let dev = Device::init(&repo.first_root(), &server.url(), None);
    assert_eq!(dev.update().code, 0);

    let md = repo.repo.join("metadata");
    let old_timestamp = std::fs::read(md.join("timestamp.json")).unwrap();
    let old_config = std::fs::read(repo.repo.join("ota-repo.json")).unwrap();
    let old = repo.keyids("timestamp");
    repo.ok(&[
        "rotate",
        "--role",
        "timestamp",
        "--generate",
        "--remove-key",
        &old[0],
    ]);
    // The crash: root v2 was written, the timestamp signed by the new key and the policy
    // were not.
    std::fs::write(md.join("timestamp.json"), &old_timestamp).unwrap();
    std::fs::write(repo.repo.join("ota-repo.json"), &old_config).unwrap();

    let r = repo.sign(&["status", "--json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let err = &r.json()["error"];
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("publication of root v2"),
        "{r:?}"
    );
    assert!(err["hint"].as_str().unwrap().contains("--resume"), "{r:?}");
    // The device takes root v2 and refuses the timestamp the retired key signed.
    let r = dev.assert_refused(4);
    assert!(r.stderr.contains("timestamp"), "{r:?}");
    assert_eq!(dev.installed().as_deref(), Some("1.0.0"));

    let r = repo.ok(&["rotate", "--resume", "--json"]);
    assert_eq!(r.json()["root_version"], 2, "{r:?}");
    let r = repo.ok(&["rotate", "--resume", "--json"]);
    assert_eq!(r.json()["resumed"], false, "nothing left to finish");
    repo.release("1.1.0", &image("1.1.0"));
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev.installed().as_deref(), Some("1.1.0"));
    assert_eq!(dev.root_version(), 2);
}
