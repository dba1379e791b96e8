//! Attacks on the update channel, each refused with a specific error while the device keeps
//! its previously trusted metadata and files. Repositories are built in code and served by a
//! real ota-server on 127.0.0.1.
use chrono::{Duration, Utc};
use ota_client::Error;
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::hash::sha256_hex;
use ota_formats::metadata::Signed;
use ota_tests::device::TestDevice;
use ota_tests::fixture::{sign_bytes, RepoFixture};
use ota_tests::server::TestServer;

const FW1: &[u8] = b"firmware version one";

/// A repository with one target, a device that has already fetched it, and the server.
fn setup() -> (RepoFixture, TestServer, TestDevice) {
    let mut fx = RepoFixture::new();
    fx.add_target("fw.img", FW1);
    fx.publish();
    let server = TestServer::start(fx.path());
    let dev = TestDevice::new(&fx.root_bytes(), &server);
    let path = dev.fetch("fw.img").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), FW1);
    (fx, server, dev)
}

fn cached(dev: &TestDevice, file: &str) -> Vec<u8> {
    std::fs::read(dev.metadata_dir().join(file)).unwrap()
}

#[test]
fn tampered_target_is_refused_and_good_copy_kept() {
    let (mut fx, _server, dev) = setup();
    fx.add_target("fw2.img", b"firmware two, genuine");
    fx.publish();
    let sha = sha256_hex(b"firmware two, genuine");
    std::fs::write(
        fx.path().join("targets").join(format!("{sha}.fw2.img")),
        b"firmware two, EVIL!!!",
    )
    .unwrap();
    let err = dev.fetch("fw2.img").unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err:?}");
    assert!(!dev.downloads_dir().join("fw2.img").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dev.downloads_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "only the first good download: {leftovers:?}"
    );
}

#[test]
fn tampered_metadata_is_refused() {
    let (mut fx, _server, dev) = setup();
    fx.add_target("fw2.img", b"two");
    fx.publish();
    // The attacker edits the signed targets without the targets key: swap in a new hash.
    let file = format!("{}.targets.json", fx.targets.version);
    let text = String::from_utf8(fx.read_metadata(&file)).unwrap();
    let tampered = text.replace(&sha256_hex(b"two"), &sha256_hex(b"evil"));
    assert_ne!(text, tampered);
    fx.write_metadata(&file, tampered.as_bytes());
    let before = cached(&dev, "targets.json");
    let err = dev.updater().refresh().unwrap_err();
    // The snapshot pins no hash here, so the signature check is what refuses it.
    assert!(matches!(err, Error::SignatureThreshold { .. }), "{err:?}");
    assert_eq!(cached(&dev, "targets.json"), before);
}

#[test]
fn timestamp_rollback_is_refused() {
    let (mut fx, _server, dev) = setup();
    let old_ts = fx.read_metadata("timestamp.json");
    fx.publish();
    dev.updater().refresh().unwrap();
    let trusted = cached(&dev, "timestamp.json");
    fx.write_metadata("timestamp.json", &old_ts);
    let err = dev.updater().refresh().unwrap_err();
    assert!(
        matches!(err, Error::Rollback { ref role, trusted: 3, new: 2 } if role == "timestamp"),
        "{err:?}"
    );
    assert_eq!(cached(&dev, "timestamp.json"), trusted);
}

#[test]
fn snapshot_rollback_is_refused() {
    let (mut fx, _server, dev) = setup();
    fx.publish();
    dev.updater().refresh().unwrap();
    let trusted = cached(&dev, "snapshot.json");
    // A newer timestamp that points at an older snapshot version (signed by the timestamp key).
    fx.timestamp.version += 1;
    let old_snap = fx.read_metadata("2.snapshot.json");
    let meta = fx.timestamp.meta.get_mut("snapshot.json").unwrap();
    meta.version = 2;
    meta.length = Some(old_snap.len() as u64);
    meta.hashes = Some([("sha256".to_string(), sha256_hex(&old_snap))].into());
    fx.write_metadata(
        "timestamp.json",
        &sign_bytes(&fx.timestamp, &fx.timestamp_key),
    );
    let err = dev.updater().refresh().unwrap_err();
    assert!(
        matches!(err, Error::Rollback { ref role, .. } if role.contains("snapshot")),
        "{err:?}"
    );
    assert_eq!(cached(&dev, "snapshot.json"), trusted);
}

#[test]
fn targets_rollback_is_refused() {
    let (mut fx, _server, dev) = setup();
    fx.publish(); // targets v3
    dev.updater().refresh().unwrap();
    let trusted = cached(&dev, "targets.json");
    // A new snapshot (validly signed) that lists an older targets version.
    fx.snapshot.version += 1;
    fx.snapshot.meta.get_mut("targets.json").unwrap().version = 2;
    let snap = sign_bytes(&fx.snapshot, &fx.snapshot_key);
    fx.write_metadata(&format!("{}.snapshot.json", fx.snapshot.version), &snap);
    fx.timestamp.version += 1;
    let meta = fx.timestamp.meta.get_mut("snapshot.json").unwrap();
    meta.version = fx.snapshot.version;
    meta.length = Some(snap.len() as u64);
    meta.hashes = Some([("sha256".to_string(), sha256_hex(&snap))].into());
    fx.write_metadata(
        "timestamp.json",
        &sign_bytes(&fx.timestamp, &fx.timestamp_key),
    );
    let err = dev.updater().refresh().unwrap_err();
    assert!(
        matches!(err, Error::Rollback { ref role, .. } if role.contains("targets")),
        "{err:?}"
    );
    assert_eq!(cached(&dev, "targets.json"), trusted);
}

#[test]
fn expired_timestamp_is_refused() {
    let (mut fx, _server, dev) = setup();
    let trusted_snapshot = cached(&dev, "snapshot.json");
    let downloads_before: Vec<_> = std::fs::read_dir(dev.downloads_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    fx.expires = Utc::now() - Duration::hours(1);
    fx.add_target("fw2.img", b"two");
    fx.publish();
    let err = dev.updater().refresh().unwrap_err();
    assert!(
        matches!(err, Error::ExpiredMetadata { ref role, .. } if role == "timestamp"),
        "{err:?}"
    );
    let err = dev.fetch("fw2.img").unwrap_err();
    assert!(matches!(err, Error::ExpiredMetadata { .. }), "{err:?}");
    // Nothing past the expired timestamp was trusted or downloaded.
    assert_eq!(cached(&dev, "snapshot.json"), trusted_snapshot);
    let downloads_after: Vec<_> = std::fs::read_dir(dev.downloads_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(downloads_after, downloads_before);
}

#[test]
fn mix_and_match_snapshot_is_refused() {
    let (mut fx, _server, dev) = setup();
    fx.publish(); // snapshot v3, timestamp pins its hash
                  // Serve a different, validly signed snapshot under the pinned version's name.
    let mut other = fx.snapshot.clone();
    other.meta.get_mut("targets.json").unwrap().version = 1;
    fx.write_metadata(
        &format!("{}.snapshot.json", fx.snapshot.version),
        &sign_bytes(&other, &fx.snapshot_key),
    );
    let before = cached(&dev, "snapshot.json");
    let err = dev.updater().refresh().unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err:?}");
    assert_eq!(cached(&dev, "snapshot.json"), before);
}

#[test]
fn endless_data_is_cut_off() {
    let (fx, _server, dev) = setup();
    let before = dev.snapshot_files();
    // 64 MiB of whitespace: valid JSON prefix, never-ending for a client without a cap.
    let huge = vec![b' '; 64 << 20];
    fx.write_metadata("timestamp.json", &huge);
    let started = std::time::Instant::now();
    let err = dev.updater().refresh().unwrap_err();
    assert!(matches!(err, Error::LengthExceeded { .. }), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(dev.snapshot_files(), before);
}

#[test]
fn untrusted_key_is_refused() {
    let (mut fx, _server, dev) = setup();
    let before = dev.snapshot_files();
    fx.publish();
    // Re-sign the new timestamp with a key root does not list.
    let rogue = Ed25519Signer::generate();
    fx.write_metadata("timestamp.json", &sign_bytes(&fx.timestamp, &rogue));
    let err = dev.updater().refresh().unwrap_err();
    assert!(matches!(err, Error::SignatureThreshold { .. }), "{err:?}");
    assert_eq!(dev.snapshot_files(), before);
}

#[test]
fn signatures_below_threshold_are_refused() {
    let (mut fx, _server, dev) = setup();
    // Root now demands two timestamp signatures.
    let second = Ed25519Signer::generate();
    fx.root.add_key("timestamp", second.public_key()).unwrap();
    fx.root.roles.get_mut("timestamp").unwrap().threshold = 2;
    fx.root.version += 1;
    fx.write_root();
    fx.publish(); // signed by only one of the two timestamp keys
    let err = dev.updater().refresh().unwrap_err();
    assert!(
        matches!(err, Error::SignatureThreshold { ref role, .. } if role == "timestamp"),
        "{err:?}"
    );
    // With both signatures it is accepted.
    let mut ts = Signed::sign(fx.timestamp.clone(), &[&fx.timestamp_key as &dyn Signer]).unwrap();
    ts.add_signature(&second).unwrap();
    fx.write_metadata("timestamp.json", &ts.to_bytes().unwrap());
    dev.updater().refresh().unwrap();
}

#[test]
fn root_rotation_without_old_threshold_is_refused() {
    let (mut fx, _server, dev) = setup();
    let trusted_root = cached(&dev, "root.json");
    // The attacker holds only new keys: version 2 signed by the new key alone.
    let new_key = Ed25519Signer::generate();
    let old_ids = fx.root.roles["root"].keyids.clone();
    for id in &old_ids {
        fx.root.remove_key("root", id);
    }
    fx.root.add_key("root", new_key.public_key()).unwrap();
    fx.root.version = 2;
    fx.write_root_signed_by(&[&new_key]);
    let err = dev.updater().refresh().unwrap_err();
    assert!(
        matches!(err, Error::SignatureThreshold { ref role, .. } if role == "root"),
        "{err:?}"
    );
    assert_eq!(cached(&dev, "root.json"), trusted_root);
}

#[test]
fn long_root_rotation_chain_is_followed() {
    let (mut fx, _server, dev) = setup();
    for _ in 0..24 {
        fx.rotate_root(vec![Ed25519Signer::generate()]);
    }
    fx.add_target("fw2.img", b"after 24 rotations");
    fx.publish();
    let path = dev.fetch("fw2.img").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), b"after 24 rotations");
    let root: ota_formats::metadata::Root =
        ota_formats::metadata::RawMetadata::from_bytes(&cached(&dev, "root.json"))
            .unwrap()
            .parse()
            .unwrap();
    assert_eq!(root.version, 25);
}
