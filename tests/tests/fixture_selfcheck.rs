//! The fixture writes what it claims: every metadata file verifies with ota-formats.
use ota_formats::metadata::{RawMetadata, Root, Snapshot, Timestamp};
use ota_tests::fixture::RepoFixture;

#[test]
fn fixture_metadata_verifies_with_root_keys() {
    let fx = RepoFixture::new();
    let raw = RawMetadata::from_bytes(&fx.root_bytes()).unwrap();
    let root: Root = raw.parse().unwrap();
    let r = root.role("root").unwrap();
    raw.verify("root", &root, &r.keyids, r.threshold).unwrap();
    let ts_raw = RawMetadata::from_bytes(&fx.read_metadata("timestamp.json")).unwrap();
    let ts: Timestamp = ts_raw.parse().unwrap();
    let t = root.role("timestamp").unwrap();
    ts_raw
        .verify("timestamp", &root, &t.keyids, t.threshold)
        .unwrap();
    // A timestamp is not signed by the root key.
    assert!(ts_raw.verify("timestamp", &root, &r.keyids, 1).is_err());
    let snap_file = format!("{}.snapshot.json", ts.snapshot_meta().unwrap().version);
    let snap: Snapshot = RawMetadata::from_bytes(&fx.read_metadata(&snap_file))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(snap.meta["targets.json"].version, 1);
}
