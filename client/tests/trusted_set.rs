//! The verification state machine on fixed inputs: each attack is refused with its own error.
mod support;

use ota_client::trusted::TrustedSet;
use ota_client::Error;
use ota_formats::crypto::Signer;
use support::{at, key, now, Repo};

fn loaded(repo: &Repo) -> TrustedSet {
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    t.update_snapshot(&repo.bytes("snapshot"), false).unwrap();
    t.update_targets(&repo.bytes("targets")).unwrap();
    t
}

#[test]
fn full_chain_is_trusted() {
    let mut repo = Repo::new();
    repo.add_target("targets", "fw.bin", b"firmware");
    repo.publish();
    let t = loaded(&repo);
    assert!(t.top_targets().unwrap().targets.contains_key("fw.bin"));
}

#[test]
fn steps_out_of_order_are_refused() {
    let repo = Repo::new();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    let err = t
        .update_snapshot(&repo.bytes("snapshot"), false)
        .unwrap_err();
    assert!(matches!(err, Error::Workflow(_)));
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    let err = t.update_root(&repo.root_bytes(1)).unwrap_err();
    assert!(matches!(err, Error::Workflow(_)));
}

#[test]
fn root_rotation_needs_old_and_new_signatures() {
    let mut repo = Repo::new();
    repo.next_root();
    let old_id = key(1).key_id().unwrap();
    repo.root.remove_key("root", &old_id);
    repo.root.add_key("root", key(11).public_key()).unwrap();

    // Signed by the new key only: the trusted (old) root's threshold is not met.
    repo.root_signers = vec![key(11)];
    repo.publish_root();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    let err = t.update_root(&repo.root_bytes(2)).unwrap_err();
    assert!(matches!(err, Error::SignatureThreshold { ref role, .. } if role == "root"));

    // Signed by the old key only: the new root's own threshold is not met.
    repo.roots.pop();
    repo.root_signers = vec![key(1)];
    repo.publish_root();
    let err = t.update_root(&repo.root_bytes(2)).unwrap_err();
    assert!(matches!(err, Error::SignatureThreshold { .. }));

    // Both: accepted.
    repo.roots.pop();
    repo.root_signers = vec![key(1), key(11)];
    repo.publish_root();
    assert_eq!(t.update_root(&repo.root_bytes(2)).unwrap().version, 2);
}

#[test]
fn root_version_must_grow_by_exactly_one() {
    let mut repo = Repo::new();
    repo.root.version = 3;
    repo.publish_root(); // published as index 1, but says version 3
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    let err = t.update_root(&repo.root_bytes(2)).unwrap_err();
    assert!(matches!(
        err,
        Error::VersionMismatch {
            expected: 2,
            actual: 3,
            ..
        }
    ));
    // Replaying the trusted root itself is not a new version either.
    let err = t.update_root(&repo.root_bytes(1)).unwrap_err();
    assert!(matches!(
        err,
        Error::VersionMismatch {
            expected: 2,
            actual: 1,
            ..
        }
    ));
}

#[test]
fn expired_final_root_stops_the_timestamp() {
    let mut repo = Repo::new();
    repo.next_root();
    repo.root.expires = at(2020);
    repo.publish_root();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    // An expired intermediate root is accepted (the chain may continue past it)...
    t.update_root(&repo.root_bytes(2)).unwrap();
    // ...but as the final root it fails.
    let err = t.update_timestamp(&repo.bytes("timestamp")).unwrap_err();
    assert!(matches!(err, Error::ExpiredMetadata { ref role, .. } if role == "root"));
}

#[test]
fn timestamp_rollback_and_equal_version() {
    let mut repo = Repo::new();
    let v1 = repo.bytes("timestamp");
    repo.timestamp.version = 2;
    repo.publish();
    let v2 = repo.bytes("timestamp");
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&v2).unwrap();
    let err = t.update_timestamp(&v1).unwrap_err();
    assert!(matches!(
        err,
        Error::Rollback { ref role, trusted: 2, new: 1 } if role == "timestamp"
    ));
    assert!(matches!(
        t.update_timestamp(&v2).unwrap_err(),
        Error::EqualVersion { version: 2 }
    ));
}

#[test]
fn snapshot_version_rollback_in_timestamp() {
    let mut repo = Repo::new();
    repo.snapshot.version = 5;
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    repo.timestamp.version = 2;
    repo.snapshot.version = 4;
    repo.publish();
    let err = t.update_timestamp(&repo.bytes("timestamp")).unwrap_err();
    assert!(matches!(
        err,
        Error::Rollback { ref role, trusted: 5, new: 4 } if role == "snapshot"
    ));
}

#[test]
fn expired_timestamp_is_kept_for_rollback_but_blocks_snapshot() {
    let mut repo = Repo::new();
    repo.timestamp.expires = at(2024);
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    let err = t.update_timestamp(&repo.bytes("timestamp")).unwrap_err();
    assert!(matches!(err, Error::ExpiredMetadata { ref role, .. } if role == "timestamp"));
    assert_eq!(t.timestamp().unwrap().version, 1);
    let err = t
        .update_snapshot(&repo.bytes("snapshot"), false)
        .unwrap_err();
    assert!(matches!(err, Error::ExpiredMetadata { ref role, .. } if role == "timestamp"));
}

#[test]
fn timestamp_signed_by_wrong_key_is_refused() {
    let repo = Repo::new();
    let ts = ota_formats::metadata::Signed::sign(repo.timestamp.clone(), &[&key(3) as &dyn Signer])
        .unwrap()
        .to_bytes()
        .unwrap();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    let err = t.update_timestamp(&ts).unwrap_err();
    assert!(matches!(err, Error::SignatureThreshold { ref role, .. } if role == "timestamp"));
}

#[test]
fn snapshot_must_match_timestamp_hashes_and_version() {
    let mut repo = Repo::new();
    let old_snapshot = repo.bytes("snapshot");
    repo.timestamp.version = 2;
    repo.snapshot.version = 2;
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    // Mix-and-match: an older, correctly signed snapshot does not match the listed hash.
    let err = t.update_snapshot(&old_snapshot, false).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }));
    // From the cache (hash not checked), it is kept but is not the listed version.
    let err = t.update_snapshot(&old_snapshot, true).unwrap_err();
    assert!(matches!(
        err,
        Error::VersionMismatch {
            expected: 2,
            actual: 1,
            ..
        }
    ));
    t.update_snapshot(&repo.bytes("snapshot"), false).unwrap();
}

#[test]
fn snapshot_cannot_roll_back_or_drop_targets_versions() {
    let mut repo = Repo::new();
    repo.targets.version = 3;
    repo.publish();
    let cached = repo.bytes("snapshot");
    repo.timestamp.version = 2;
    repo.snapshot.version = 2;
    repo.targets.version = 2;
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    let _ = t.update_snapshot(&cached, true); // intermediate (version 1 ≠ 2)
    let err = t
        .update_snapshot(&repo.bytes("snapshot"), false)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Rollback { ref role, trusted: 3, new: 2 } if role == "targets"
    ));

    let mut repo = Repo::new();
    repo.delegate("targets", "team", &["team/*"], 20);
    repo.publish();
    let cached = repo.bytes("snapshot");
    repo.snapshot.meta.remove("team.json");
    repo.delegated.clear();
    repo.timestamp.version = 2;
    repo.snapshot.version = 2;
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    t.update_snapshot(&cached, true).unwrap_err();
    let err = t
        .update_snapshot(&repo.bytes("snapshot"), false)
        .unwrap_err();
    assert!(matches!(err, Error::SnapshotEntryRemoved { ref file } if file == "team.json"));
}

#[test]
fn targets_must_be_the_version_snapshot_lists() {
    let mut repo = Repo::new();
    let old_targets = repo.bytes("targets");
    repo.targets.version = 2;
    repo.timestamp.version = 2;
    repo.snapshot.version = 2;
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    t.update_snapshot(&repo.bytes("snapshot"), false).unwrap();
    let err = t.update_targets(&old_targets).unwrap_err();
    assert!(matches!(
        err,
        Error::VersionMismatch {
            expected: 2,
            actual: 1,
            ..
        }
    ));
}

#[test]
fn expired_snapshot_and_targets_are_refused() {
    let mut repo = Repo::new();
    repo.snapshot.expires = at(2024);
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    let err = t
        .update_snapshot(&repo.bytes("snapshot"), false)
        .unwrap_err();
    assert!(matches!(err, Error::ExpiredMetadata { ref role, .. } if role == "snapshot"));

    let mut repo = Repo::new();
    repo.targets.expires = at(2024);
    repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(1), now()).unwrap();
    t.update_timestamp(&repo.bytes("timestamp")).unwrap();
    t.update_snapshot(&repo.bytes("snapshot"), false).unwrap();
    let err = t.update_targets(&repo.bytes("targets")).unwrap_err();
    assert!(matches!(err, Error::ExpiredMetadata { ref role, .. } if role == "targets"));
    assert!(t.top_targets().is_none());
}

#[test]
fn delegated_roles_need_snapshot_entry_and_delegator_keys() {
    let mut repo = Repo::new();
    repo.delegate("targets", "team", &["team/*"], 20);
    repo.delegate("targets", "other", &["other/*"], 21);
    repo.publish();
    let mut t = loaded(&repo);
    // Signed by a key the delegator does not trust for this role.
    let err = t
        .update_delegated_targets(&repo.bytes("other"), "team", "targets")
        .unwrap_err();
    assert!(matches!(err, Error::SignatureThreshold { ref role, .. } if role == "team"));
    // Not listed in snapshot.
    let err = t
        .update_delegated_targets(&repo.bytes("team"), "ghost", "targets")
        .unwrap_err();
    assert!(matches!(err, Error::NotInSnapshot { ref role } if role == "ghost"));
    // Not delegated by the claimed delegator.
    t.update_delegated_targets(&repo.bytes("team"), "team", "targets")
        .unwrap();
    let err = t
        .update_delegated_targets(&repo.bytes("other"), "other", "team")
        .unwrap_err();
    assert!(matches!(err, Error::NotDelegated { .. }));
}

#[test]
fn loaded_role_is_reverified_against_each_new_delegator() {
    // Diamond: a and b both delegate to "release", with different keys; release is signed
    // only with a's key, so reaching it through b must fail.
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["team-a/*"], 20);
    repo.delegate("targets", "b", &["team-b/*"], 21);
    repo.delegate("a", "release", &["team-a/*"], 22);
    repo.delegate("b", "release", &["team-b/*"], 23);
    repo.publish();
    let mut t = loaded(&repo);
    t.update_delegated_targets(&repo.bytes("a"), "a", "targets")
        .unwrap();
    t.update_delegated_targets(&repo.bytes("b"), "b", "targets")
        .unwrap();
    t.update_delegated_targets(&repo.bytes("release"), "release", "a")
        .unwrap();
    assert!(t.loaded_targets_via("release", "a").unwrap().is_some());
    let err = t.loaded_targets_via("release", "b").unwrap_err();
    assert!(matches!(err, Error::SignatureThreshold { ref role, .. } if role == "release"));
}
