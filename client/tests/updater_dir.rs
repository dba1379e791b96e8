//! The updater against a repository in a local directory (removable media), real files.
mod support;

use ota_client::{Error, FixedClock, Limits, Updater, UpdaterConfig};
use ota_formats::crypto::Signer;
use std::path::Path;
use support::{at, key, now, Repo};

fn updater(repo_dir: &Path, md: &Path) -> Updater {
    let mut config = UpdaterConfig::local_dir(md, repo_dir);
    config.clock = Box::new(FixedClock(now()));
    Updater::new(config).unwrap()
}

fn setup(repo: &Repo) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let md = tmp.path().join("metadata");
    repo.write_to(&repo_dir);
    Updater::bootstrap(&md, &repo.root_bytes(1)).unwrap();
    (tmp, repo_dir, md)
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn refresh_caches_exactly_the_verified_bytes() {
    let mut repo = Repo::new();
    repo.add_target("targets", "fw.bin", b"firmware");
    repo.publish();
    let (_tmp, repo_dir, md) = setup(&repo);
    updater(&repo_dir, &md).refresh().unwrap();
    assert_eq!(
        dir_names(&md),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    for role in ["timestamp", "snapshot", "targets"] {
        assert_eq!(
            std::fs::read(md.join(format!("{role}.json"))).unwrap(),
            repo.bytes(role)
        );
    }
}

#[test]
fn bootstrap_refuses_a_root_not_signed_by_itself() {
    let mut repo = Repo::new();
    repo.root_signers = vec![key(9)];
    repo.publish_root();
    let tmp = tempfile::tempdir().unwrap();
    let err = Updater::bootstrap(tmp.path(), &repo.root_bytes(2)).unwrap_err();
    assert!(matches!(err, Error::SignatureThreshold { .. }));
    assert!(dir_names(tmp.path()).is_empty());
}

#[test]
fn download_verifies_caches_and_never_overwrites_with_bad_data() {
    let mut repo = Repo::new();
    repo.add_target("targets", "dir/fw.bin", b"firmware v1");
    repo.publish();
    let (tmp, repo_dir, md) = setup(&repo);
    let dl = tmp.path().join("downloads");
    let mut up = updater(&repo_dir, &md);
    let target = up.get_target_info("dir/fw.bin").unwrap().unwrap();
    assert_eq!(target.role(), "targets");
    assert!(up.find_cached_target(&target, &dl).unwrap().is_none());
    let path = up.download_target(&target, &dl).unwrap();
    assert_eq!(path, dl.join("dir%2Ffw.bin"));
    assert_eq!(std::fs::read(&path).unwrap(), b"firmware v1");
    assert_eq!(
        up.find_cached_target(&target, &dl).unwrap(),
        Some(path.clone())
    );

    // The repository now serves other bytes of the same length: refused, good file kept.
    std::fs::write(repo_dir.join("targets/dir/fw.bin"), b"evilware v1").unwrap();
    std::fs::write(&path, b"firmware v0").unwrap(); // stale copy: not a cache hit
    assert!(up.find_cached_target(&target, &dl).unwrap().is_none());
    let err = up.download_target(&target, &dl).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"firmware v0");
    // Endless data: cut at the listed length.
    std::fs::write(repo_dir.join("targets/dir/fw.bin"), vec![b'x'; 1 << 20]).unwrap();
    let err = up.download_target(&target, &dl).unwrap_err();
    assert!(matches!(err, Error::LengthExceeded { .. }), "{err}");
    assert_eq!(dir_names(&dl), ["dir%2Ffw.bin"], "no temp files left");
    // Missing target.
    assert!(up.get_target_info("nope.bin").unwrap().is_none());
}

#[test]
fn consistent_snapshot_fetches_versioned_metadata_and_hash_prefixed_targets() {
    let mut repo = Repo::new();
    repo.root.consistent_snapshot = Some(true);
    repo.roots.clear();
    repo.publish_root();
    repo.add_target("targets", "dir/fw.bin", b"firmware");
    repo.publish();
    let (tmp, repo_dir, md) = setup(&repo);
    // Only the versioned / hash-prefixed names remain.
    for f in [
        "metadata/snapshot.json",
        "metadata/targets.json",
        "targets/dir/fw.bin",
    ] {
        std::fs::remove_file(repo_dir.join(f)).unwrap();
    }
    let mut up = updater(&repo_dir, &md);
    let target = up.get_target_info("dir/fw.bin").unwrap().unwrap();
    let path = up.download_target(&target, &tmp.path().join("dl")).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), b"firmware");
}

#[test]
fn delegations_are_loaded_lazily_under_encoded_names() {
    let mut repo = Repo::new();
    repo.delegate("targets", "team a", &["team/*"], 20);
    repo.delegate("targets", "unused", &["other/*"], 21);
    repo.add_target("team a", "team/app.bin", b"app");
    repo.publish();
    let (_tmp, repo_dir, md) = setup(&repo);
    let mut up = updater(&repo_dir, &md);
    up.refresh().unwrap();
    assert!(
        !md.join("team%20a.json").exists(),
        "not loaded before a lookup"
    );
    let t = up.get_target_info("team/app.bin").unwrap().unwrap();
    assert_eq!(t.role(), "team a");
    up.wait_for_metadata_writes();
    assert!(md.join("team%20a.json").exists());
    assert!(
        !md.join("unused.json").exists(),
        "paths do not match: never fetched"
    );
    // `*` does not cross `/`.
    assert!(up.get_target_info("team/sub/app.bin").unwrap().is_none());
    let all = up.all_targets().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].path(), "team/app.bin");
}

#[test]
fn search_stops_after_max_delegations() {
    let mut repo = Repo::new();
    let mut parent = "targets".to_string();
    for i in 0..5 {
        let name = format!("d{i}");
        repo.delegate(&parent, &name, &["*"], 20 + i);
        parent = name;
    }
    repo.add_target(&parent, "deep.bin", b"deep");
    repo.publish();
    let (_tmp, repo_dir, md) = setup(&repo);
    let mut up = updater(&repo_dir, &md);
    assert!(up.get_target_info("deep.bin").unwrap().is_some());
    let mut config = UpdaterConfig::local_dir(&md, &repo_dir);
    config.clock = Box::new(FixedClock(now()));
    config.limits = Limits {
        max_delegations: 3,
        ..Limits::default()
    };
    let mut up = Updater::new(config).unwrap();
    assert!(up.get_target_info("deep.bin").unwrap().is_none());
}

#[test]
fn expired_new_root_is_saved_then_refresh_fails() {
    let mut repo = Repo::new();
    repo.next_root();
    repo.root.expires = at(2020);
    repo.publish_root();
    let (_tmp, repo_dir, md) = setup(&repo);
    let err = updater(&repo_dir, &md).refresh().unwrap_err();
    assert!(matches!(err, Error::ExpiredMetadata { ref role, .. } if role == "root"));
    assert_eq!(
        std::fs::read(md.join("root.json")).unwrap(),
        repo.root_bytes(2)
    );
}

#[test]
fn timestamp_key_rotation_recovers_from_fast_forward() {
    let mut repo = Repo::new();
    repo.timestamp.version = 1000; // a compromised timestamp key pushed a huge version
    repo.publish();
    let (_tmp, repo_dir, md) = setup(&repo);
    updater(&repo_dir, &md).refresh().unwrap();

    // Recovery: rotate the timestamp key in root v2 and restart the timestamp at version 1.
    repo.next_root();
    let old = key(2).key_id().unwrap();
    repo.root.remove_key("timestamp", &old);
    repo.root
        .add_key("timestamp", key(12).public_key())
        .unwrap();
    repo.publish_root();
    repo.timestamp.version = 1;
    repo.publish();
    let ts =
        ota_formats::metadata::Signed::sign(repo.timestamp.clone(), &[&key(12) as &dyn Signer])
            .unwrap()
            .to_bytes()
            .unwrap();
    repo.published.insert("timestamp".into(), ts.clone());
    repo.write_to(&repo_dir);
    updater(&repo_dir, &md).refresh().unwrap();
    assert_eq!(std::fs::read(md.join("timestamp.json")).unwrap(), ts);
}

#[test]
fn timestamp_rollback_is_refused_and_cache_kept() {
    let mut repo = Repo::new();
    let v1 = repo.bytes("timestamp");
    repo.timestamp.version = 2;
    repo.publish();
    let (_tmp, repo_dir, md) = setup(&repo);
    updater(&repo_dir, &md).refresh().unwrap();
    std::fs::write(repo_dir.join("metadata/timestamp.json"), &v1).unwrap();
    let err = updater(&repo_dir, &md).refresh().unwrap_err();
    assert!(matches!(
        err,
        Error::Rollback {
            trusted: 2,
            new: 1,
            ..
        }
    ));
    assert_eq!(
        std::fs::read(md.join("timestamp.json")).unwrap(),
        repo.bytes("timestamp")
    );
}
