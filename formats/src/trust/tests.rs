//! Rules of the state machine on fixed inputs. The client's `tests/trusted_set.rs` covers the
//! refresh as the updater drives it; these cover the rules it does not reach: order, rollback
//! after kept intermediate metadata, expiry of the final roles and of delegated roles,
//! thresholds that one key must not meet twice, delegation lookups, and what repository
//! editors use.
use super::*;
use crate::crypto::{Ed25519Signer, Signature, Signer};
use crate::hash::{sha256_hex, Hashes};
use crate::metadata::{
    DelegatedRole, Delegations, MetaFile, RoleType, Root, Signed, Snapshot, SuccinctRoles, Targets,
    Timestamp,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Map;
use std::collections::BTreeMap;

fn at(year: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap()
}

fn now() -> DateTime<Utc> {
    at(2025)
}

fn key(seed: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(&[seed; 32])
}

fn sign<T: RoleType + Clone>(value: &T, signers: &[&Ed25519Signer]) -> Vec<u8> {
    let signers: Vec<&dyn Signer> = signers.iter().map(|k| *k as &dyn Signer).collect();
    Signed::sign(value.clone(), &signers)
        .unwrap()
        .to_bytes()
        .unwrap()
}

fn listing(version: u64, bytes: &[u8]) -> MetaFile {
    let mut m = MetaFile::new(version);
    m.length = Some(bytes.len() as u64);
    m.hashes = Some(Hashes::from([("sha256".to_string(), sha256_hex(bytes))]));
    m
}

/// One key per top-level role (seeds 1 to 4), metadata expiring in 2030.
struct Repo {
    root: Root,
    timestamp: Timestamp,
    snapshot: Snapshot,
    targets: Targets,
    delegated: BTreeMap<String, (Targets, u8)>,
}

impl Repo {
    fn new() -> Self {
        let mut root = Root::new(1, at(2030));
        for (seed, role) in (1..).zip(Root::TOP_LEVEL) {
            root.add_key(role, key(seed).public_key()).unwrap();
        }
        Repo {
            root,
            timestamp: Timestamp::new(1, at(2030), MetaFile::new(1)),
            snapshot: Snapshot::new(1, at(2030)),
            targets: Targets::new(1, at(2030)),
            delegated: BTreeMap::new(),
        }
    }

    fn root_bytes(&self) -> Vec<u8> {
        sign(&self.root, &[&key(1)])
    }

    fn delegate(&mut self, name: &str, paths: &[&str], terminating: bool, seed: u8) {
        let d = self.targets.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            extra: Map::new(),
        });
        let id = key(seed).key_id().unwrap();
        d.keys.insert(id.clone(), key(seed).public_key());
        d.roles.as_mut().unwrap().push(DelegatedRole {
            name: name.into(),
            keyids: vec![id],
            threshold: 1,
            terminating,
            paths: Some(paths.iter().map(|p| p.to_string()).collect()),
            path_hash_prefixes: None,
            extra: Map::new(),
        });
        self.delegated
            .insert(name.into(), (Targets::new(1, at(2030)), seed));
    }

    /// Signed bytes of every role: targets and delegated roles, the snapshot listing them,
    /// the timestamp listing the snapshot with its length and hash.
    fn publish(&mut self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        out.insert("targets".to_string(), sign(&self.targets, &[&key(4)]));
        self.snapshot
            .meta
            .insert("targets.json".into(), MetaFile::new(self.targets.version));
        for (name, (t, seed)) in &self.delegated {
            out.insert(name.clone(), sign(t, &[&key(*seed)]));
            self.snapshot
                .meta
                .insert(format!("{name}.json"), MetaFile::new(t.version));
        }
        let snapshot = sign(&self.snapshot, &[&key(3)]);
        self.timestamp.meta.insert(
            "snapshot.json".into(),
            listing(self.snapshot.version, &snapshot),
        );
        out.insert("snapshot".into(), snapshot);
        out.insert("timestamp".into(), sign(&self.timestamp, &[&key(2)]));
        out
    }
}

/// A set with root, timestamp, snapshot and top-level targets of `files` loaded.
fn loaded(repo: &Repo, files: &BTreeMap<String, Vec<u8>>) -> TrustedSet {
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    t.update_timestamp(&files["timestamp"]).unwrap();
    t.update_snapshot(&files["snapshot"], false).unwrap();
    t.update_targets(&files["targets"]).unwrap();
    t
}

#[test]
fn each_step_needs_the_previous_one_and_none_can_be_redone_after_the_next() {
    let mut repo = Repo::new();
    repo.delegate("team", &["team/*"], false, 20);
    let files = repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    let workflow = |r: Result<()>| matches!(r, Err(TrustError::Workflow(_)));
    assert!(workflow(t.update_targets(&files["targets"]).map(drop)));
    assert!(workflow(t.snapshot_meta().map(drop)));
    t.update_timestamp(&files["timestamp"]).unwrap();
    assert!(workflow(t.update_targets(&files["targets"]).map(drop)));
    t.update_snapshot(&files["snapshot"], false).unwrap();
    // A delegated role before its delegator.
    assert!(workflow(
        t.update_delegated_targets(&files["team"], "team", "targets")
            .map(drop)
    ));
    t.update_targets(&files["targets"]).unwrap();
    assert!(workflow(t.update_root(&repo.root_bytes()).map(drop)));
    assert!(workflow(t.update_timestamp(&files["timestamp"]).map(drop)));
    assert!(workflow(
        t.update_snapshot(&files["snapshot"], false).map(drop)
    ));
    t.update_delegated_targets(&files["team"], "team", "targets")
        .unwrap();
    // Root delegates only the top-level targets.
    assert!(matches!(
        t.update_delegated_targets(&files["team"], "team", "root"),
        Err(TrustError::NotDelegated { .. })
    ));
}

#[test]
fn an_expired_kept_timestamp_still_stops_a_rollback_and_a_newer_one_replaces_it() {
    let mut repo = Repo::new();
    repo.timestamp.version = 5;
    repo.snapshot.version = 5;
    repo.timestamp.expires = at(2024);
    let old = repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    assert!(matches!(
        t.update_timestamp(&old["timestamp"]),
        Err(TrustError::ExpiredMetadata { ref role, .. }) if role == "timestamp"
    ));
    // An older timestamp is a rollback even though the trusted one expired.
    repo.timestamp.version = 4;
    repo.timestamp.expires = at(2030);
    let older = repo.publish();
    assert!(matches!(
        t.update_timestamp(&older["timestamp"]),
        Err(TrustError::Rollback { ref role, trusted: 5, new: 4 }) if role == "timestamp"
    ));
    // So is a newer timestamp listing an older snapshot.
    repo.timestamp.version = 6;
    repo.snapshot.version = 4;
    let back = repo.publish();
    assert!(matches!(
        t.update_timestamp(&back["timestamp"]),
        Err(TrustError::Rollback { ref role, trusted: 5, new: 4 }) if role == "snapshot"
    ));
    // A newer, valid one replaces it and the refresh goes on.
    repo.snapshot.version = 5;
    let new = repo.publish();
    assert_eq!(t.update_timestamp(&new["timestamp"]).unwrap().version, 6);
    t.update_snapshot(&new["snapshot"], false).unwrap();
}

#[test]
fn a_cached_snapshot_is_the_baseline_for_rollback_of_the_new_one() {
    let mut repo = Repo::new();
    repo.delegate("team", &["team/*"], false, 20);
    repo.delegated.get_mut("team").unwrap().0.version = 7;
    let cached = repo.publish();
    repo.timestamp.version = 2;
    repo.snapshot.version = 2;
    repo.delegated.get_mut("team").unwrap().0.version = 6;
    let new = repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    t.update_timestamp(&new["timestamp"]).unwrap();
    // Not final (the timestamp lists version 2), but kept.
    assert!(matches!(
        t.update_snapshot(&cached["snapshot"], true),
        Err(TrustError::VersionMismatch {
            expected: 2,
            actual: 1,
            ..
        })
    ));
    assert_eq!(t.snapshot().unwrap().version, 1);
    assert!(matches!(
        t.update_snapshot(&new["snapshot"], false),
        Err(TrustError::Rollback { ref role, trusted: 7, new: 6 }) if role == "team"
    ));
}

#[test]
fn an_expired_intermediate_root_is_passed_but_an_expired_final_root_stops_the_refresh() {
    let mut repo = Repo::new();
    repo.root.expires = at(2020);
    let v1 = repo.root_bytes();
    repo.root.version = 2;
    let v2 = repo.root_bytes();
    repo.root.version = 3;
    repo.root.expires = at(2030);
    let v3 = repo.root_bytes();
    let files = repo.publish();

    let mut t = TrustedSet::new(&v1, now()).unwrap();
    t.update_root(&v2).unwrap();
    assert!(matches!(
        t.update_timestamp(&files["timestamp"]),
        Err(TrustError::ExpiredMetadata { ref role, .. }) if role == "root"
    ));
    let mut t = TrustedSet::new(&v1, now()).unwrap();
    t.update_root(&v2).unwrap();
    t.update_root(&v3).unwrap();
    t.update_timestamp(&files["timestamp"]).unwrap();
}

#[test]
fn expiry_is_strict_at_the_reference_time_and_applies_to_delegated_roles() {
    let mut repo = Repo::new();
    repo.delegate("team", &["team/*"], false, 20);
    repo.delegated.get_mut("team").unwrap().0.expires = now();
    let files = repo.publish();
    let mut t = loaded(&repo, &files);
    assert!(matches!(
        t.update_delegated_targets(&files["team"], "team", "targets"),
        Err(TrustError::ExpiredMetadata { ref role, .. }) if role == "team"
    ));
    assert!(t.targets_role("team").is_none());
    // One second before, it is valid.
    let before = now() - chrono::Duration::seconds(1);
    let mut t = TrustedSet::new(&repo.root_bytes(), before).unwrap();
    t.update_timestamp(&files["timestamp"]).unwrap();
    t.update_snapshot(&files["snapshot"], false).unwrap();
    t.update_targets(&files["targets"]).unwrap();
    t.update_delegated_targets(&files["team"], "team", "targets")
        .unwrap();
}

#[test]
fn one_key_never_counts_twice_towards_a_threshold() {
    let mut repo = Repo::new();
    repo.root.roles.get_mut("timestamp").unwrap().threshold = 2;
    // The timestamp key listed under a second id: one key, two ids.
    let real = key(2).key_id().unwrap();
    repo.root.keys.insert("alias".into(), key(2).public_key());
    repo.root
        .roles
        .get_mut("timestamp")
        .unwrap()
        .keyids
        .push("alias".into());
    let files = repo.publish();
    let mut signed: Signed<Timestamp> = serde_json::from_slice(&files["timestamp"]).unwrap();
    let mut again = signed.signatures[0].clone();
    again.keyid = "alias".into();
    signed.signatures.push(again);
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    let err = t.update_timestamp(&signed.to_bytes().unwrap()).unwrap_err();
    assert!(
        matches!(err, TrustError::SignatureThreshold { ref role, source: crate::Error::ThresholdNotMet { valid: 1, threshold: 2, .. } } if role == "timestamp"),
        "{err:?}"
    );

    // The same signature listed twice is refused outright.
    let mut signed: Signed<Timestamp> = serde_json::from_slice(&files["timestamp"]).unwrap();
    signed.signatures.push(signed.signatures[0].clone());
    let err = t.update_timestamp(&signed.to_bytes().unwrap()).unwrap_err();
    assert!(
        matches!(err, TrustError::SignatureThreshold { source: crate::Error::DuplicateKeyId { ref keyid, .. }, .. } if *keyid == real),
        "{err:?}"
    );

    // A role listing one key id twice cannot reach threshold 2 with it.
    let mut repo = Repo::new();
    let ts = repo.root.roles.get_mut("timestamp").unwrap();
    ts.keyids.push(real.clone());
    ts.threshold = 2;
    let files = repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    assert!(matches!(
        t.update_timestamp(&files["timestamp"]),
        Err(TrustError::SignatureThreshold {
            source: crate::Error::DuplicateKeyId { .. },
            ..
        })
    ));
}

#[test]
fn unknown_signatures_do_not_count_and_do_not_hurt() {
    let mut repo = Repo::new();
    let files = repo.publish();
    let mut signed: Signed<Timestamp> = serde_json::from_slice(&files["timestamp"]).unwrap();
    signed.signatures.insert(
        0,
        Signature {
            keyid: "unknown".into(),
            sig: "00".repeat(64),
            extra: Map::new(),
        },
    );
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    t.update_timestamp(&signed.to_bytes().unwrap()).unwrap();
    assert_eq!(t.timestamp().unwrap().signatures().len(), 2);
}

#[test]
fn unknown_fields_are_covered_by_the_signatures_as_received() {
    let mut repo = Repo::new();
    repo.targets
        .extra
        .insert("x-vendor".into(), serde_json::json!({"b": 1, "a": [1, 2]}));
    let files = repo.publish();
    let t = loaded(&repo, &files);
    assert!(t.top_targets().unwrap().extra.contains_key("x-vendor"));
}

#[test]
fn delegated_metadata_must_match_the_snapshot_length_and_hashes_when_listed() {
    let mut repo = Repo::new();
    repo.delegate("team", &["team/*"], false, 20);
    let mut files = repo.publish();
    let team = files["team"].clone();
    // List the delegated role with its length and hash, as a snapshot may.
    repo.snapshot
        .meta
        .insert("team.json".into(), listing(1, &team));
    let snapshot = sign(&repo.snapshot, &[&key(3)]);
    repo.timestamp
        .meta
        .insert("snapshot.json".into(), listing(1, &snapshot));
    files.insert("snapshot".into(), snapshot);
    files.insert("timestamp".into(), sign(&repo.timestamp, &[&key(2)]));

    let mut t = loaded(&repo, &files);
    let mut longer = team.clone();
    longer.push(b'\n');
    assert!(matches!(
        t.update_delegated_targets(&longer, "team", "targets"),
        Err(TrustError::HashMismatch { ref what, source: crate::Error::LengthMismatch { .. } }) if what == "team"
    ));
    t.update_delegated_targets(&team, "team", "targets")
        .unwrap();
}

#[test]
fn delegates_are_listed_in_priority_order_with_their_terminating_flag() {
    let mut repo = Repo::new();
    repo.delegate("a", &["fw/*"], false, 20);
    repo.delegate("b", &["other/*"], false, 21);
    repo.delegate("c", &["fw/*.bin"], true, 22);
    repo.delegate("d", &["*/*"], false, 23);
    let files = repo.publish();
    let t = loaded(&repo, &files);
    let names = |path: &str| -> Vec<(String, bool)> {
        t.delegates_for("targets", path)
            .unwrap()
            .into_iter()
            .map(|d| (d.role, d.terminating))
            .collect()
    };
    assert_eq!(
        names("fw/x.bin"),
        [
            ("a".to_string(), false),
            ("c".to_string(), true),
            ("d".to_string(), false)
        ]
    );
    assert_eq!(
        names("other/y"),
        [("b".to_string(), false), ("d".to_string(), false)]
    );
    assert!(names("top").is_empty());
    assert!(t.delegates_for("ghost", "fw/x.bin").is_none());
}

#[test]
fn succinct_roles_give_the_one_bin_of_the_path() {
    let mut repo = Repo::new();
    let id = key(30).key_id().unwrap();
    let succinct = SuccinctRoles {
        keyids: vec![id.clone()],
        threshold: 1,
        bit_length: 4,
        name_prefix: "bin".into(),
        extra: Map::new(),
    };
    let bin = succinct.role_for("fw/x.bin");
    repo.targets.delegations = Some(Delegations {
        keys: BTreeMap::from([(id, key(30).public_key())]),
        roles: None,
        succinct_roles: Some(succinct),
        extra: Map::new(),
    });
    repo.delegated
        .insert(bin.clone(), (Targets::new(1, at(2030)), 30));
    let files = repo.publish();
    let mut t = loaded(&repo, &files);
    assert_eq!(
        t.delegates_for("targets", "fw/x.bin").unwrap(),
        [Delegate {
            role: bin.clone(),
            terminating: false
        }]
    );
    t.update_delegated_targets(&files[&bin], &bin, "targets")
        .unwrap();
    // A name that is not one of the bins is not delegated.
    assert!(matches!(
        t.update_delegated_targets(&files[&bin], "bin-zz", "targets"),
        Err(TrustError::NotInSnapshot { .. })
    ));
}

#[test]
fn an_editor_loads_an_expired_repository_with_every_other_rule_checked() {
    let mut repo = Repo::new();
    repo.root.expires = at(2001);
    repo.timestamp.expires = at(2001);
    repo.snapshot.expires = at(2001);
    repo.targets.expires = at(2001);
    let files = repo.publish();
    let mut t = TrustedSet::new_ignoring_expiry(&repo.root_bytes()).unwrap();
    t.update_timestamp(&files["timestamp"]).unwrap();
    t.update_snapshot(&files["snapshot"], false).unwrap();
    t.update_targets(&files["targets"]).unwrap();
    // Signatures still count.
    let forged = sign(&repo.targets, &[&key(3)]);
    assert!(matches!(
        t.check_unlisted_targets(&forged),
        Err(TrustError::SignatureThreshold { .. })
    ));
    let mut next = repo.targets.clone();
    next.version = 2;
    let unlisted = t.check_unlisted_targets(&sign(&next, &[&key(4)])).unwrap();
    assert_eq!(unlisted.signed.version, 2);
    assert!(t.targets_role("targets").unwrap().version == 1);

    let top = t.into_top_level().unwrap();
    assert_eq!(top.snapshot.version, 1);
    let signed = top.targets.into_signed();
    assert_eq!(signed.signatures.len(), 1);
}

#[test]
fn an_incomplete_chain_has_no_top_level() {
    let mut repo = Repo::new();
    let files = repo.publish();
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    t.update_timestamp(&files["timestamp"]).unwrap();
    t.update_snapshot(&files["snapshot"], false).unwrap();
    assert!(matches!(t.into_top_level(), Err(TrustError::Workflow(_))));
}

/// Parsers disagree on which of two equal keys wins (serde keeps the last, others the first),
/// so a file listing a target twice could verify under one reading and install under the
/// other: metadata with a duplicate key is refused before any signature is checked.
#[test]
fn a_role_listing_a_key_twice_is_refused_as_invalid() {
    let mut repo = Repo::new();
    repo.targets.targets.insert(
        "a.bin".into(),
        crate::metadata::TargetFile::from_bytes(b"a"),
    );
    let files = repo.publish();
    let text = String::from_utf8(files["targets"].clone()).unwrap();
    let twice = text.replacen(
        "\"targets\": {",
        "\"targets\": {\"a.bin\": {\"length\": 1, \"hashes\": {\"sha256\": \"00\"}},",
        1,
    );
    assert_ne!(twice, text);
    let mut t = TrustedSet::new(&repo.root_bytes(), now()).unwrap();
    t.update_timestamp(&files["timestamp"]).unwrap();
    t.update_snapshot(&files["snapshot"], false).unwrap();
    let err = t.update_targets(twice.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, TrustError::InvalidMetadata { role, .. } if role == "targets"),
        "{err}"
    );
    assert!(err.to_string().contains("duplicate key \"a.bin\""), "{err}");
    assert!(t.top_targets().is_none());
    // The file as signed loads.
    t.update_targets(&files["targets"]).unwrap();
}

/// Delegated entries kept as verified bytes read back exactly as a parse into maps reads them,
/// and a role with a bad entry is refused when it is loaded, not when the entry is looked up.
#[test]
fn indexed_entries_read_as_parsed_ones_and_are_checked_when_the_role_is_loaded() {
    use crate::metadata::TargetFile;
    let mut repo = Repo::new();
    repo.delegate("team", &["team/*"], false, 20);
    let mut custom = TargetFile::from_bytes(b"two");
    custom.custom = Some(serde_json::json!({"version": "2.0", "nested": {"b": 1, "a": [true]}}));
    let team = &mut repo.delegated.get_mut("team").unwrap().0;
    team.targets
        .insert("team/one.bin".into(), TargetFile::from_bytes(b"one"));
    team.targets.insert("team/two \"q\".bin".into(), custom);
    let files = repo.publish();

    let mut parsed = loaded(&repo, &files);
    parsed
        .update_delegated_targets(&files["team"], "team", "targets")
        .unwrap();
    let mut indexed = loaded(&repo, &files);
    indexed.index_delegated_entries();
    indexed
        .update_delegated_targets(&files["team"], "team", "targets")
        .unwrap();
    assert!(indexed.targets_role("team").unwrap().targets.is_empty());
    assert_eq!(indexed.target_count("team"), Some(2));
    assert_eq!(indexed.target_paths("team"), parsed.target_paths("team"));
    for path in ["team/one.bin", "team/two \"q\".bin", "team/none.bin"] {
        assert_eq!(
            indexed.target("team", path).unwrap(),
            parsed.target("team", path).unwrap(),
            "{path}"
        );
    }
    assert!(indexed.target("team", "team/one.bin").unwrap().is_some());
    // The top-level targets are always parsed.
    assert_eq!(indexed.target_count("targets"), Some(0));

    // An entry without hashes, signed by the right key: refused at load in both readings.
    let team = &mut repo.delegated.get_mut("team").unwrap().0;
    team.version += 1;
    team.targets.get_mut("team/one.bin").unwrap().hashes.clear();
    let files = repo.publish();
    for index in [false, true] {
        let mut t = loaded(&repo, &files);
        if index {
            t.index_delegated_entries();
        }
        let err = t
            .update_delegated_targets(&files["team"], "team", "targets")
            .unwrap_err();
        assert!(
            matches!(&err, TrustError::InvalidMetadata { role, .. } if role == "team"),
            "{err}"
        );
        assert!(t.target_count("team").is_none());
    }
}
