//! Regression tests for refresh cost that do not depend on timing: the requests a refresh makes
//! against a real ota-server, counted by a transport wrapper. A warm cache must cost only the
//! root probe and the timestamp; resolving targets across 50 delegated roles must fetch each
//! role once; a changed or tampered role must be fetched again.
#[path = "../benches/common/mod.rs"]
mod common;

use common::{
    bootstrap, counting_updater, counting_updater_with, delegated_repo, one_target_per_role,
    role_name, RequestLog,
};
use ota_client::Limits;
use ota_tests::fixture::RepoFixture;
use ota_tests::server::TestServer;
use std::collections::BTreeSet;

const TARGETS: usize = 1_000;
const ROLES: usize = 50;

/// What a cold refresh must fetch: the next root (probe), the timestamp, then every file the
/// snapshot lists at its listed version, each exactly once.
fn cold_requests(fx: &RepoFixture) -> BTreeSet<String> {
    let mut expected = BTreeSet::from([
        format!("{}.root.json", fx.root.version + 1),
        "timestamp.json".to_string(),
        format!("{}.snapshot.json", fx.snapshot.version),
    ]);
    for (file, meta) in &fx.snapshot.meta {
        expected.insert(format!("{}.{file}", meta.version));
    }
    expected
}

fn warm_requests(fx: &RepoFixture) -> Vec<String> {
    vec![
        format!("{}.root.json", fx.root.version + 1),
        "timestamp.json".to_string(),
    ]
}

fn assert_each_once(log: &[String], expected: &BTreeSet<String>) {
    let unique: BTreeSet<String> = log.iter().cloned().collect();
    assert_eq!(unique.len(), log.len(), "a file was fetched twice: {log:?}");
    assert_eq!(&unique, expected);
}

fn lookup_all(up: &mut ota_client::Updater) {
    for t in one_target_per_role(ROLES) {
        let found = up.get_target_info(&t).unwrap().unwrap();
        assert_eq!(found.role(), t.split('/').next().unwrap());
    }
    assert_eq!(up.all_targets().unwrap().len(), TARGETS);
}

#[test]
fn cold_lookup_across_50_roles_fetches_each_role_once_and_warm_only_the_timestamp() {
    let fx = delegated_repo(TARGETS, ROLES);
    let server = TestServer::start(fx.path());
    let device = tempfile::tempdir().unwrap();
    bootstrap(device.path(), &fx);
    let log = RequestLog::default();

    let mut up = counting_updater(device.path(), &server, &log);
    lookup_all(&mut up);
    let cold = log.take();
    assert_eq!(cold.len(), ROLES + 4);
    assert_each_once(&cold, &cold_requests(&fx));

    // Same updater again (roles in memory), then a new one over the warm cache (a reboot).
    lookup_all(&mut up);
    assert!(log.take().is_empty());
    let mut up = counting_updater(device.path(), &server, &log);
    up.refresh().unwrap();
    lookup_all(&mut up);
    assert_eq!(log.take(), warm_requests(&fx));
}

#[test]
fn warm_refresh_refetches_only_what_changed() {
    let mut fx = delegated_repo(TARGETS, ROLES);
    let server = TestServer::start(fx.path());
    let device = tempfile::tempdir().unwrap();
    bootstrap(device.path(), &fx);
    let log = RequestLog::default();
    lookup_all(&mut counting_updater(device.path(), &server, &log));
    log.take();

    // The fixture re-signs every role on publish, so every role has a new version.
    let role = role_name(7);
    let new_target = format!("{role}/new.bin");
    fx.add_delegated_target(&role, &new_target, b"new");
    fx.publish();
    let mut up = counting_updater(device.path(), &server, &log);
    let found = up.get_target_info(&new_target).unwrap().unwrap();
    assert_eq!(found.role(), role);
    assert_eq!(up.all_targets().unwrap().len(), TARGETS + 1);
    assert_each_once(&log.take(), &cold_requests(&fx));
}

/// A repository, its server, and a device that looked every target up once (its requests
/// cleared).
fn looked_up_once() -> (RepoFixture, TestServer, tempfile::TempDir, RequestLog) {
    let fx = delegated_repo(TARGETS, ROLES);
    let server = TestServer::start(fx.path());
    let device = tempfile::tempdir().unwrap();
    bootstrap(device.path(), &fx);
    let log = RequestLog::default();
    lookup_all(&mut counting_updater(device.path(), &server, &log));
    log.take();
    (fx, server, device, log)
}

#[test]
fn tampered_cached_role_is_fetched_again_and_only_it() {
    let (fx, server, device, log) = looked_up_once();

    let role = role_name(13);
    let cached = device.path().join(format!("{role}.json"));
    let mut bytes = std::fs::read(&cached).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&cached, &bytes).unwrap();

    let mut up = counting_updater(device.path(), &server, &log);
    lookup_all(&mut up);
    let mut expected = warm_requests(&fx);
    expected.push(format!(
        "{}.{role}.json",
        fx.snapshot.meta[&format!("{role}.json")].version
    ));
    assert_eq!(log.take(), expected);
    // The cache holds the verified bytes again.
    assert_ne!(std::fs::read(&cached).unwrap(), bytes);
}

/// Delegated roles are cached without fsync (the snapshot pins them), so after a power cut a
/// cached role may be empty or cut short: it must be fetched again like a tampered one, and the
/// durable files (root, timestamp, snapshot) are not refetched.
#[test]
fn a_cached_role_emptied_or_cut_short_by_a_power_cut_is_fetched_again() {
    let (fx, server, device, log) = looked_up_once();

    let (emptied, cut) = (role_name(7), role_name(42));
    let path = |role: &str| device.path().join(format!("{role}.json"));
    let verified = std::fs::read(path(&cut)).unwrap();
    std::fs::write(path(&emptied), b"").unwrap();
    std::fs::write(path(&cut), &verified[..verified.len() / 3]).unwrap();

    let mut up = counting_updater(device.path(), &server, &log);
    lookup_all(&mut up);
    let mut expected = warm_requests(&fx);
    for role in [&emptied, &cut] {
        let version = fx.snapshot.meta[&format!("{role}.json")].version;
        expected.push(format!("{version}.{role}.json"));
    }
    assert_eq!(log.take(), expected);
    assert_eq!(std::fs::read(path(&cut)).unwrap(), verified);
    assert!(!std::fs::read(path(&emptied)).unwrap().is_empty());
}

/// With a memory budget of one target entry, every delegated role is forgotten as soon as the
/// next one is loaded: lookups still find the same targets, forgotten roles are verified again
/// from the metadata directory (no request), and a role whose cached and served copies no
/// longer verify when it is loaded again is refused with the error a fresh device gets.
#[test]
fn roles_forgotten_to_bound_memory_are_verified_again_from_the_cache() {
    let fx = delegated_repo(TARGETS, ROLES);
    let server = TestServer::start(fx.path());
    let device = tempfile::tempdir().unwrap();
    bootstrap(device.path(), &fx);
    let log = RequestLog::default();
    let tight = Limits {
        resident_target_entries: 1,
        ..Limits::default()
    };
    let mut up = counting_updater_with(device.path(), &server, &log, tight);
    lookup_all(&mut up);
    assert_each_once(&log.take(), &cold_requests(&fx));
    // Twice more in the same updater: every role is loaded again, from the cache only.
    lookup_all(&mut up);
    lookup_all(&mut up);
    assert!(log.take().is_empty());

    // role-013 was forgotten; its cached copy and the server's are now signed by no one.
    let role = role_name(13);
    let version = fx.snapshot.meta[&format!("{role}.json")].version;
    let served = fx.metadata_dir().join(format!("{version}.{role}.json"));
    let tamper = |path: &std::path::Path| {
        let text = std::fs::read_to_string(path).unwrap();
        std::fs::write(path, text.replace("file-", "fil3-")).unwrap();
    };
    tamper(&device.path().join(format!("{role}.json")));
    tamper(&served);
    let target = one_target_per_role(ROLES).remove(13);
    let late = up.get_target_info(&target).unwrap_err();
    assert!(
        matches!(&late, ota_client::Error::SignatureThreshold { role: r, .. } if *r == role),
        "{late}"
    );
    // A fresh device meets the same refusal, and a target of another role is still found.
    let fresh = tempfile::tempdir().unwrap();
    bootstrap(fresh.path(), &fx);
    let mut other = counting_updater(fresh.path(), &server, &log);
    let first = other.get_target_info(&target).unwrap_err();
    assert_eq!(first.to_string(), late.to_string());
    assert!(up
        .get_target_info(&one_target_per_role(ROLES)[12])
        .unwrap()
        .is_some());
}
