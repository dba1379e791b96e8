//! A repository with online roles built in code, and uploads staged beside it.
use super::*;
use crate::config::{CompressionPolicy, RepoConfig, CONFIG_FORMAT};
use crate::policy::{expires_at, Period, ROLES};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::metadata::{DelegatedRole, Root, Snapshot, TargetFile, Timestamp};
use serde_json::Map;
use std::collections::BTreeMap;

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    staging: PathBuf,
    signer: OnlineSigner,
    targets_keys: Vec<Ed25519Signer>,
    now: DateTime<Utc>,
}

fn sign<T: ota_formats::metadata::RoleType>(value: T, keys: &[&Ed25519Signer]) -> Vec<u8> {
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| *k as &dyn Signer).collect();
    Signed::sign(value, &signers).unwrap().to_bytes().unwrap()
}

impl Fixture {
    /// An online-roles repository (targets v1, no targets) whose targets role needs
    /// `targets_threshold` of as many keys.
    fn new(targets_threshold: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let online = dir.path().join("keys-online");
        std::fs::create_dir_all(repo.join(METADATA_DIR)).unwrap();
        std::fs::create_dir_all(repo.join(TARGETS_DIR)).unwrap();
        std::fs::create_dir_all(&online).unwrap();
        let now = Utc::now();
        let day = Period::from_secs(86_400);
        let mut keys: BTreeMap<&str, Vec<Ed25519Signer>> = BTreeMap::new();
        for role in ROLES {
            let n = if role == "targets" {
                targets_threshold
            } else {
                1
            };
            keys.insert(role, (0..n).map(|_| Ed25519Signer::generate()).collect());
        }
        let mut root = Root::new(1, expires_at(now, day));
        let mut key_files = BTreeMap::new();
        for role in ROLES {
            let mut files = Vec::new();
            for (i, k) in keys[role].iter().enumerate() {
                root.add_key(role, k.public_key()).unwrap();
                let file = crate::keys::key_file_name(role, i + 1);
                if role == "snapshot" || role == "timestamp" {
                    crate::keys::save_key(&online, &file, k).unwrap();
                }
                files.push(file);
            }
            root.roles.get_mut(role).unwrap().threshold = keys[role].len() as u64;
            key_files.insert(role.to_string(), files);
        }
        let config = RepoConfig {
            format: CONFIG_FORMAT,
            expiry: ROLES.iter().map(|r| (r.to_string(), day)).collect(),
            key_files,
            compression: CompressionPolicy::default(),
            online_roles: true,
            extra: Map::new(),
        };
        let all = |role: &str| keys[role].iter().collect::<Vec<_>>();
        let root_bytes = sign(root, &all("root"));
        let targets_bytes = sign(Targets::new(1, expires_at(now, day)), &all("targets"));
        let mut snapshot = Snapshot::new(1, expires_at(now, day));
        snapshot
            .meta
            .insert("targets.json".into(), meta_entry(1, &targets_bytes));
        let snapshot_bytes = sign(snapshot, &all("snapshot"));
        let timestamp = Timestamp::new(1, expires_at(now, day), meta_entry(1, &snapshot_bytes));
        let md = repo.join(METADATA_DIR);
        for (name, bytes) in [
            ("1.root.json", &root_bytes),
            ("root.json", &root_bytes),
            ("1.targets.json", &targets_bytes),
            ("1.snapshot.json", &snapshot_bytes),
            ("timestamp.json", &sign(timestamp, &all("timestamp"))),
        ] {
            std::fs::write(md.join(name), bytes).unwrap();
        }
        std::fs::write(
            repo.join(crate::config::CONFIG_FILE),
            config.to_bytes().unwrap(),
        )
        .unwrap();
        let signer = OnlineSigner::load(&online, &repo).unwrap();
        let staging = repo.join(UPLOADS_DIR).join("test-upload");
        let targets_keys = keys.remove("targets").unwrap();
        Fixture {
            _dir: dir,
            repo,
            staging,
            signer,
            targets_keys,
            now,
        }
    }

    fn live(&self) -> Repository {
        Repository::load(&self.repo).unwrap()
    }

    /// The live targets with `files` added, as version `version`.
    fn targets(&self, version: u64, files: &[(&str, &[u8])]) -> Targets {
        let mut t = self.live().targets.signed;
        t.version = version;
        t.expires = self.now + chrono::Duration::days(30);
        for (name, data) in files {
            t.targets
                .insert(name.to_string(), TargetFile::from_bytes(data));
        }
        t
    }

    fn stage_metadata(&self, file: &str, bytes: &[u8]) {
        let d = self.staging.join(METADATA_DIR);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), bytes).unwrap();
    }

    /// Stage `t` signed by `keys` as `N.targets.json`.
    fn stage_targets(&self, t: Targets, keys: &[&Ed25519Signer]) {
        let file = metadata_file_name("targets", t.version);
        self.stage_metadata(&file, &sign(t, keys));
    }

    fn stage_payload(&self, target: &str, signed_data: &[u8], data: &[u8]) {
        let sha = ota_formats::hash::sha256_hex(signed_data);
        let p = self
            .staging
            .join(TARGETS_DIR)
            .join(target_file_rel(target, &sha));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn commit(&self) -> Result<Committed> {
        commit(&self.repo, &self.staging, &self.signer, self.now)
    }

    fn keys(&self) -> Vec<&Ed25519Signer> {
        self.targets_keys.iter().collect()
    }

    /// Every file of the repository but the staging area and the lock.
    fn tree(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.repo.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.starts_with(self.repo.join(UPLOADS_DIR)) {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else if !p.ends_with(crate::lock::LOCK_FILE) {
                    out.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    /// Commit, expect a refusal, and check nothing changed and the staging is gone.
    fn refused(&self) -> RepoError {
        let before = self.tree();
        let e = self.commit().expect_err("the upload must be refused");
        assert!(e.upload_refusal().is_some(), "a refusal: {e:?}");
        assert_eq!(
            before,
            self.tree(),
            "refused ({e}), yet the repository changed"
        );
        assert!(!self.staging.exists(), "staging removed");
        e
    }
}

#[test]
fn a_verified_upload_is_published_with_a_new_snapshot_and_timestamp() {
    let fx = Fixture::new(1);
    let fw = b"firmware 2".as_slice();
    fx.stage_targets(
        fx.targets(2, &[("gw-2.img", fw), ("sub/app.bin", b"app")]),
        &fx.keys(),
    );
    fx.stage_payload("gw-2.img", fw, fw);
    fx.stage_payload("sub/app.bin", b"app", b"app");
    let checked = check(&fx.live(), &fx.staging, fx.now).unwrap();
    assert_eq!(checked.missing().count(), 2);
    let done = fx.commit().unwrap();
    assert_eq!(
        (
            done.published.targets_version,
            done.published.snapshot_version,
            done.published.timestamp_version
        ),
        (2, 2, 2)
    );
    assert_eq!(
        (done.payloads, done.payload_bytes),
        (2, fw.len() as u64 + 3)
    );
    let live = fx.live();
    assert_eq!(live.targets.signed.version, 2);
    assert!(live.pending_targets.is_none(), "listed by the new snapshot");
    let file = crate::repository::target_file_path(
        &fx.repo,
        "gw-2.img",
        &ota_formats::hash::sha256_hex(fw),
    );
    assert_eq!(std::fs::read(&file).unwrap(), fw);
    assert_eq!(mode::of(&file).unwrap(), Some(mode::PUBLIC_FILE));
    assert!(!fx.staging.exists());

    // The next release only needs the new file; the published one is not asked for again.
    fx.stage_targets(fx.targets(3, &[("gw-3.img", b"three")]), &fx.keys());
    let checked = check(&fx.live(), &fx.staging, fx.now).unwrap();
    let files: Vec<&str> = checked.payloads.iter().map(|p| p.target.as_str()).collect();
    assert_eq!(files, ["gw-3.img"]);
}

#[test]
fn a_target_file_already_in_the_repository_need_not_be_uploaded_but_must_match() {
    let fx = Fixture::new(1);
    let fw = b"already there".as_slice();
    let sha = ota_formats::hash::sha256_hex(fw);
    let dest = crate::repository::target_file_path(&fx.repo, "fw.img", &sha);
    std::fs::write(&dest, fw).unwrap();
    fx.stage_targets(fx.targets(2, &[("fw.img", fw)]), &fx.keys());
    let checked = check(&fx.live(), &fx.staging, fx.now).unwrap();
    assert!(checked.payloads[0].present && checked.missing().count() == 0);
    assert_eq!(fx.commit().unwrap().payloads, 0);
    assert_eq!(fx.live().targets.signed.version, 2);

    // Same name, other content: a conflict, refused.
    let fx = Fixture::new(1);
    std::fs::write(
        crate::repository::target_file_path(&fx.repo, "fw.img", &sha),
        b"already therX",
    )
    .unwrap();
    fx.stage_targets(fx.targets(2, &[("fw.img", fw)]), &fx.keys());
    assert!(matches!(fx.refused(), RepoError::TargetFileConflict { .. }));
}

#[test]
fn signatures_by_other_keys_or_below_the_threshold_are_refused() {
    let fx = Fixture::new(1);
    let stranger = Ed25519Signer::generate();
    fx.stage_targets(fx.targets(2, &[]), &[&stranger]);
    let e = fx.refused();
    assert!(
        matches!(&e, RepoError::UploadBelowThreshold { role, valid: 0, threshold: 1, .. } if role == "targets"),
        "{e:?}"
    );
    assert!(e.to_string().contains("0 valid signature(s)"), "{e}");

    let fx = Fixture::new(2);
    fx.stage_targets(fx.targets(2, &[]), &[&fx.targets_keys[0], &stranger]);
    let e = fx.refused();
    assert!(
        matches!(
            e,
            RepoError::UploadBelowThreshold {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{e:?}"
    );
    fx.stage_targets(fx.targets(2, &[]), &fx.keys());
    assert_eq!(fx.commit().unwrap().published.targets_version, 2);
}

#[test]
fn rolled_back_equal_and_expired_versions_are_refused() {
    let fx = Fixture::new(1);
    fx.stage_targets(fx.targets(1, &[]), &fx.keys());
    assert!(matches!(
        fx.refused(),
        RepoError::UploadNotNewer {
            version: 1,
            published: 1,
            ..
        }
    ));
    fx.stage_targets(fx.targets(3, &[]), &fx.keys());
    fx.commit().unwrap();
    fx.stage_targets(fx.targets(2, &[]), &fx.keys());
    let e = fx.refused();
    assert_eq!(
        e.upload_refusal(),
        Some(crate::error::UploadRefusal::Version)
    );
    assert!(
        e.to_string()
            .contains("targets version 2 is not newer than the published version 3"),
        "{e}"
    );

    let mut t = fx.targets(4, &[]);
    t.expires = fx.now - chrono::Duration::seconds(1);
    fx.stage_targets(t, &fx.keys());
    assert!(matches!(fx.refused(), RepoError::UploadExpired { .. }));
}

#[test]
fn target_files_must_be_uploaded_and_match_their_signed_length_and_hashes() {
    let fx = Fixture::new(1);
    let fw = b"the signed firmware".as_slice();
    fx.stage_targets(fx.targets(2, &[("fw.img", fw)]), &fx.keys());
    let e = fx.refused();
    assert!(matches!(e, RepoError::UploadPayloadMissing { .. }), "{e:?}");

    // Same length, other bytes.
    fx.stage_targets(fx.targets(2, &[("fw.img", fw)]), &fx.keys());
    fx.stage_payload("fw.img", fw, b"the signed firmwarX");
    let e = fx.refused();
    assert!(
        matches!(
            &e,
            RepoError::UploadPayloadMismatch { source, .. }
                if matches!(**source, ota_formats::Error::HashMismatch { .. })
        ),
        "{e:?}"
    );
    // Longer.
    fx.stage_targets(fx.targets(2, &[("fw.img", fw)]), &fx.keys());
    fx.stage_payload("fw.img", fw, b"the signed firmware, and more");
    let e = fx.refused();
    assert!(
        matches!(
            &e,
            RepoError::UploadPayloadMismatch { source, .. }
                if matches!(**source, ota_formats::Error::LengthMismatch { .. })
        ),
        "{e:?}"
    );
}

#[test]
fn bad_names_several_targets_and_unsafe_paths_are_refused() {
    let fx = Fixture::new(1);
    let bytes = sign(fx.targets(2, &[]), &fx.keys());
    fx.stage_metadata("2.targets.json", &bytes);
    fx.stage_metadata("timestamp.json", &bytes);
    assert!(matches!(fx.refused(), RepoError::UploadBadName { .. }));
    fx.stage_metadata("2.targets.json", &bytes);
    fx.stage_metadata("3.targets.json", &bytes);
    assert!(matches!(fx.refused(), RepoError::UploadCorrupt { .. }));
    fx.stage_metadata("3.targets.json", &bytes);
    assert!(matches!(
        fx.refused(),
        RepoError::UploadCorrupt { reason, .. } if reason.contains("its name says 3")
    ));
    std::fs::create_dir_all(&fx.staging).unwrap();
    assert!(matches!(
        fx.refused(),
        RepoError::UploadTargetsCount { found: 0 }
    ));
    fx.stage_targets(fx.targets(2, &[("a/../../x", b"x")]), &fx.keys());
    assert!(matches!(
        fx.refused(),
        RepoError::UploadUnsafeTargetPath { .. }
    ));
}

#[test]
fn delegated_metadata_verifies_with_the_delegating_role_and_is_listed_by_the_snapshot() {
    let fx = Fixture::new(1);
    let team = Ed25519Signer::generate();
    let mut t = fx.targets(2, &[]);
    t.delegations = Some(Delegations {
        keys: BTreeMap::from([(team.key_id().unwrap(), team.public_key())]),
        roles: Some(vec![DelegatedRole {
            name: "team/a".into(),
            keyids: vec![team.key_id().unwrap()],
            threshold: 1,
            terminating: false,
            paths: Some(vec!["apps/*".into()]),
            path_hash_prefixes: None,
            extra: Map::new(),
        }]),
        succinct_roles: None,
        extra: Map::new(),
    });
    let mut d = Targets::new(1, fx.now + chrono::Duration::days(30));
    d.targets
        .insert("apps/x.bin".into(), TargetFile::from_bytes(b"app x"));
    let file = metadata_file_name("team/a", 1);
    assert_eq!(file, "1.team%2Fa.json");

    // Signed by a key the delegation does not list: refused.
    let stranger = Ed25519Signer::generate();
    fx.stage_targets(t.clone(), &fx.keys());
    fx.stage_metadata(&file, &sign(d.clone(), &[&stranger]));
    fx.stage_payload("apps/x.bin", b"app x", b"app x");
    let e = fx.refused();
    assert!(
        matches!(&e, RepoError::UploadBelowThreshold { role, .. } if role == "team/a"),
        "{e:?}"
    );

    // A role nobody delegates to: refused.
    fx.stage_targets(t.clone(), &fx.keys());
    fx.stage_metadata(&metadata_file_name("team/b", 1), &sign(d.clone(), &[&team]));
    assert!(matches!(
        fx.refused(),
        RepoError::UploadNotDelegated { role, .. } if role == "team/b"
    ));

    fx.stage_targets(t.clone(), &fx.keys());
    fx.stage_metadata(&file, &sign(d.clone(), &[&team]));
    fx.stage_payload("apps/x.bin", b"app x", b"app x");
    let done = fx.commit().unwrap();
    assert_eq!(done.delegated, BTreeMap::from([("team/a".to_string(), 1)]));
    assert_eq!(done.payloads, 1);
    let live = fx.live();
    assert_eq!(live.snapshot.signed.meta["team/a.json"].version, 1);
    assert!(fx.repo.join(METADATA_DIR).join(&file).is_file());

    // Re-uploading the same delegated file with a new top-level version leaves it alone;
    // an older one is a rollback.
    fx.stage_targets(fx.targets(3, &[]), &fx.keys());
    fx.stage_metadata(&file, &sign(d.clone(), &[&team]));
    let checked = check(&fx.live(), &fx.staging, fx.now).unwrap();
    assert_eq!(checked.unchanged, std::slice::from_ref(&file));
    assert!(checked.delegated.is_empty() && checked.payloads.is_empty());
    fx.commit().unwrap();
    fx.stage_targets(fx.targets(4, &[]), &fx.keys());
    d.targets
        .insert("apps/y.bin".into(), TargetFile::from_bytes(b"y"));
    fx.stage_metadata(&file, &sign(d, &[&team]));
    assert!(matches!(
        fx.refused(),
        RepoError::UploadNotNewer { role, .. } if role == "team/a"
    ));
}

#[test]
fn commit_waits_for_the_writer_lock() {
    let fx = Fixture::new(1);
    fx.stage_targets(fx.targets(2, &[]), &fx.keys());
    let lock = RepoLock::acquire(&fx.repo).unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(lock);
    });
    let started = Instant::now();
    fx.commit().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    holder.join().unwrap();
}

#[test]
fn names_and_paths() {
    assert_eq!(
        parse_metadata_name("12.targets.json"),
        Some(MetadataName {
            version: 12,
            role: "targets".into()
        })
    );
    assert_eq!(
        parse_metadata_name("3.a%2Fb.json").map(|n| n.role),
        Some("a/b".into())
    );
    for bad in [
        "targets.json",
        "0.targets.json",
        "01.targets.json",
        "x.targets.json",
        "1.root.json",
        "1.snapshot.json",
        "1.timestamp.json",
        "1.a/b.json",
        "1.a%2fb.json",
        "1..json",
        "1.targets.txt",
        "../1.targets.json",
    ] {
        assert_eq!(parse_metadata_name(bad), None, "{bad}");
    }
    for ok in ["a", "a/b.bin", "x.slips/1.slip"] {
        assert!(is_safe_relative_path(ok), "{ok}");
    }
    for bad in ["", "/a", "a//b", "a/./b", "../a", "a/..", "a\\b", "a\0"] {
        assert!(!is_safe_relative_path(bad), "{bad:?}");
    }
    let dir = Path::new("/r");
    for path in ["fw.img", "a/b/fw.img"] {
        assert_eq!(
            dir.join(TARGETS_DIR).join(target_file_rel(path, "ab")),
            crate::repository::target_file_path(dir, path, "ab")
        );
    }
}
