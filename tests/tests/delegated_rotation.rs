//! A delegated role end to end, with the real `ota-sign`, `ota-server` and `ota-client`:
//!
//! - `ota-sign delegate` makes role `fw` for `gw-*`, `ota-sign add --role fw` publishes a
//!   release under it, and a device installs it (found through the delegation);
//! - `ota-sign rotate --role fw` replaces the role's key (root unchanged); the release signed
//!   before still verifies, a new one signed under the rotated delegation installs;
//! - metadata of `fw` signed with the OLD key (written by hand as the next version, with a
//!   snapshot and timestamp signed by the repository's real keys, as a compromised release
//!   machine or repository host could) is refused by devices, which keep their firmware; the
//!   very same hand-made metadata signed with the NEW key installs.
use ota_formats::hash::sha256_hex;
use ota_formats::metadata::{Signed, Snapshot, TargetFile, Targets, Timestamp};
use ota_formats::target_meta::{Compression, ImageInfo, OtaTarget};
use ota_repo::repository::{meta_entry, target_file_path};
use ota_repo::upload::metadata_file_name;
use ota_tests::keyroll::{Device, Repo};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::Path;

fn image(tag: &str) -> Vec<u8> {
    format!("firmware {tag} ").repeat(500).into_bytes()
}

/// `ota-sign add --role fw` of `data` as `gw` `version` for hardware `board-a`.
fn release_in_fw(repo: &Repo, version: &str, data: &[u8]) -> serde_json::Value {
    let file = repo.repo.with_file_name(format!("fw-{version}.img"));
    std::fs::write(&file, data).unwrap();
    repo.ok(&[
        "add",
        file.to_str().unwrap(),
        "--name",
        "gw",
        "--version",
        version,
        "--hardware",
        "board-a",
        "--role",
        "fw",
        "--json",
    ])
    .json()
}

/// Sign `value` with the key file `file` of `dir`.
fn sign_with<T: ota_formats::metadata::RoleType>(value: T, dir: &Path, file: &str) -> Vec<u8> {
    let key = ota_repo::keys::load_key(dir, file).unwrap();
    Signed::sign(value, &[key.signer.as_ref()])
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Publish by hand, in the served repository, the next version of role `fw`: `base` (its
/// content) with a release `gw` `version` (its target file placed), signed with the key file
/// `fw_key` of the key directory, with a snapshot and a timestamp signed by the repository's
/// own keys.
fn publish_fw_by_hand(repo: &Repo, base: &Targets, fw_key: &str, version: &str, data: &[u8]) {
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    let mut fw = base.clone();
    let zst = zstd::encode_all(data, 3).unwrap();
    let path = format!("gw-{version}.img.zst");
    let mut entry = TargetFile::from_bytes(&zst);
    let ota = OtaTarget::new(
        "gw",
        version,
        vec!["board-a".into()],
        ImageInfo::new(data.len() as u64, sha256_hex(data)),
        Compression::Zstd,
    )
    .unwrap();
    entry.custom = Some(ota.to_custom(None).unwrap());
    std::fs::write(target_file_path(&repo.repo, &path, &sha256_hex(&zst)), &zst).unwrap();
    fw.targets.insert(path, entry);
    // Above every version on disk (a refused one included).
    fw.version = loaded.next_version("fw", fw.version);
    let md = repo.repo.join("metadata");
    let fw_bytes = sign_with(fw.clone(), &repo.keys, fw_key);
    std::fs::write(md.join(metadata_file_name("fw", fw.version)), &fw_bytes).unwrap();

    let mut snapshot: Snapshot = loaded.snapshot.signed.clone();
    snapshot.version = loaded.next_version("snapshot", snapshot.version);
    snapshot
        .meta
        .insert("fw.json".into(), meta_entry(fw.version, &fw_bytes));
    let snapshot_version = snapshot.version;
    let snapshot = sign_with(snapshot, &repo.keys, "snapshot-1.pem");
    std::fs::write(
        md.join(format!("{snapshot_version}.snapshot.json")),
        &snapshot,
    )
    .unwrap();
    let mut ts: Timestamp = loaded.timestamp.signed.clone();
    ts.version += 1;
    ts.meta.insert(
        "snapshot.json".into(),
        meta_entry(snapshot_version, &snapshot),
    );
    std::fs::write(
        md.join("timestamp.json"),
        sign_with(ts, &repo.keys, "timestamp-1.pem"),
    )
    .unwrap();
}

#[test]
fn a_delegated_role_is_made_rotated_and_its_old_key_refused_by_devices() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &[]);
    let root_before = std::fs::read(repo.repo.join("metadata/root.json")).unwrap();

    // The delegation, and a release under it.
    let v = repo
        .ok(&[
            "delegate",
            "--role",
            "fw",
            "--paths",
            "gw-*",
            "--generate",
            "--json",
        ])
        .json();
    assert_eq!(v["version"], 1, "{v}");
    assert_eq!(v["added"][0]["file"], "fw-1.pem", "{v}");
    let old_key = v["keyids"][0].as_str().unwrap().to_string();
    let added = release_in_fw(&repo, "1.0.0", &image("1.0.0"));
    assert_eq!(added["delegated"]["role"], "fw", "{added}");
    assert_eq!(added["delegated"]["version"], 2, "{added}");
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    assert!(
        loaded.targets.signed.targets.is_empty(),
        "listed by the delegated role, not by the top-level targets"
    );
    // A target outside the delegated paths is refused, with nothing written.
    let before = ota_tests::cli::tree(&repo.repo);
    let other = repo.repo.with_file_name("other.img");
    std::fs::write(&other, image("other")).unwrap();
    let r = repo.sign(&[
        "add",
        other.to_str().unwrap(),
        "--name",
        "modem",
        "--version",
        "1.0.0",
        "--hardware",
        "board-a",
        "--role",
        "fw",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not delegated to role fw"), "{r:?}");
    assert_eq!(ota_tests::cli::tree(&repo.repo), before);

    let server = TestServer::start(&repo.repo);
    let dev = Device::init(&repo.first_root(), &server.url(), None);
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev.installed().as_deref(), Some("1.0.0"));
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image("1.0.0"));

    // Rotation of the role's key: no new root; the release signed before still verifies.
    let v = repo
        .ok(&[
            "rotate",
            "--role",
            "fw",
            "--generate",
            "--remove-key",
            &old_key[..12],
            "--json",
        ])
        .json();
    assert_eq!(v["root_version"], 1, "{v}");
    assert_eq!(v["change"]["removed"][0], old_key.as_str(), "{v}");
    assert_eq!(v["change"]["added"][0]["file"], "fw-2.pem", "{v}");
    assert_eq!(
        v["retired_files"][0],
        repo.keys.join("fw-1.pem").to_str().unwrap()
    );
    let new_key = v["change"]["keyids"][0].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert_eq!(
        std::fs::read(repo.repo.join("metadata/root.json")).unwrap(),
        root_before,
        "root unchanged"
    );
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    let (keys, role) = ota_repo::delegation::delegation(&loaded.targets.signed, "fw").unwrap();
    assert_eq!(role.keyids, std::slice::from_ref(&new_key));
    assert!(!keys.keys.contains_key(&old_key));
    assert_eq!(dev.client(&["check"]).code, 100, "up to date");
    assert_eq!(dev.root_version(), 1);

    // A release signed under the rotated delegation installs.
    release_in_fw(&repo, "1.1.0", &image("1.1.0"));
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image("1.1.0"));

    // fw's next version signed with the OLD key (its file is still on the release machine),
    // listed by a snapshot and timestamp signed with the real keys: refused, by the device
    // that saw the rotation and by one that starts from root v1 now; nothing installed.
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    let base = ota_repo::delegation::load_role(&loaded, "fw")
        .unwrap()
        .signed;
    publish_fw_by_hand(&repo, &base, "fw-1.pem", "6.6.6", &image("evil"));
    let r = dev.assert_refused(4);
    assert!(r.stderr.contains("fw"), "{r:?}");
    assert_eq!(dev.installed().as_deref(), Some("1.1.0"));
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image("1.1.0"));
    let newcomer = Device::init(&repo.first_root(), &server.url(), None);
    newcomer.assert_refused(4);
    assert_eq!(newcomer.installed(), None);

    // The same hand-made metadata signed with the NEW key installs: the refusal above was
    // the old key's, nothing else.
    publish_fw_by_hand(&repo, &base, "fw-2.pem", "1.2.0", &image("1.2.0"));
    for d in [&dev, &newcomer] {
        let r = d.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(d.installed().as_deref(), Some("1.2.0"));
        assert_eq!(std::fs::read(&d.slot).unwrap(), image("1.2.0"));
    }
}

#[test]
fn refused_delegations_and_rotations_exit_with_their_codes_and_change_nothing() {
    use ota_formats::crypto::Signer;
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &[]);
    let v = repo
        .ok(&[
            "delegate",
            "--role",
            "fw",
            "--paths",
            "gw-*",
            "--generate",
            "--json",
        ])
        .json();
    let fw_key = v["keyids"][0].as_str().unwrap().to_string();
    let private = repo.keys.join("targets-1.pem");
    let private = private.to_str().unwrap();
    let public = dir.path().join("holder.json");
    let holder = ota_formats::crypto::Ed25519Signer::generate();
    std::fs::write(&public, serde_json::to_vec(&holder.public_key()).unwrap()).unwrap();
    let public = public.to_str().unwrap();
    let state = || {
        (
            ota_tests::cli::tree(&repo.repo),
            ota_tests::cli::tree(&repo.keys),
        )
    };
    let before = state();
    let cases: Vec<(Vec<&str>, i32, &str, &str)> = vec![
        (
            vec![
                "delegate",
                "--role",
                "targets",
                "--paths",
                "x-*",
                "--generate",
            ],
            2,
            "input",
            "top-level role",
        ),
        (
            vec!["delegate", "--role", "fw", "--paths", "x-*", "--generate"],
            2,
            "input",
            "delegated already",
        ),
        (
            vec!["delegate", "--role", "x", "--paths", "/x-*", "--generate"],
            2,
            "input",
            "leading '/'",
        ),
        (
            vec!["delegate", "--role", "x", "--paths", "x-*"],
            2,
            "input",
            "needs at least one key",
        ),
        (
            vec![
                "delegate",
                "--role",
                "x",
                "--paths",
                "x-*",
                "--generate",
                "--threshold",
                "0",
            ],
            2,
            "input",
            "threshold of 0",
        ),
        (
            vec![
                "delegate",
                "--role",
                "x",
                "--paths",
                "x-*",
                "--generate",
                "--threshold",
                "2",
            ],
            2,
            "input",
            "above its 1 key(s)",
        ),
        (
            vec![
                "delegate",
                "--role",
                "x",
                "--paths",
                "x-*",
                "--add-key",
                private,
            ],
            2,
            "input",
            "holds a private key",
        ),
        // The holder's private key is not here: version 1 cannot be signed.
        (
            vec![
                "delegate",
                "--role",
                "x",
                "--paths",
                "x-*",
                "--add-key",
                public,
            ],
            3,
            "keys",
            "needs 1 signature(s)",
        ),
        (
            vec!["rotate", "--role", "fw", "--remove-key", &fw_key],
            2,
            "input",
            "would leave role fw with no keys",
        ),
        (
            vec!["rotate", "--role", "fw", "--threshold", "2"],
            2,
            "input",
            "above its 1 key(s)",
        ),
        (
            vec!["rotate", "--role", "fw", "--generate", "--stage"],
            2,
            "input",
            "no new root is staged",
        ),
        (
            vec!["rotate", "--role", "fw", "--add-key", private],
            2,
            "input",
            "holds a private key",
        ),
    ];
    for (mut args, code, kind, needle) in cases {
        args.push("--json");
        let r = repo.sign(&args);
        assert_eq!(r.code, code, "{args:?}: {r:?}");
        let e = &r.json()["error"];
        assert_eq!(e["kind"], kind, "{args:?}: {r:?}");
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{args:?}: {needle}: {r:?}"
        );
        assert!(!e["hint"].as_str().unwrap().is_empty());
        assert_eq!(state(), before, "{args:?} wrote something");
    }
    // No --paths at all: a usage error.
    let r = repo.sign(&["delegate", "--role", "x", "--generate"]);
    assert_eq!(r.code, 2, "{r:?}");

    // Without the role's key file, its next version cannot be signed: exit 3, nothing written.
    let away = dir.path().join("fw-1.pem");
    std::fs::rename(repo.keys.join("fw-1.pem"), &away).unwrap();
    let before = state();
    let r = repo.sign(&["rotate", "--role", "fw", "--add-key", public, "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "keys", "{r:?}");
    assert_eq!(state(), before);
    std::fs::rename(&away, repo.keys.join("fw-1.pem")).unwrap();

    for (cmd, needles) in [
        ("delegate", &["Examples:", "--paths", "Exit codes"][..]),
        ("rotate", &["Examples:", "--role apps", "Exit codes"][..]),
        ("add", &["Examples:", "--role apps"][..]),
    ] {
        let r = ota_tests::cli::run("ota-sign", &[cmd, "--help"]);
        assert_eq!(r.code, 0, "{r:?}");
        for needle in needles {
            assert!(r.stdout.contains(needle), "{cmd} --help: {needle}: {r:?}");
        }
    }
}
