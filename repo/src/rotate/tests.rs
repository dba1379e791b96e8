//! Rotations on repositories built here (one Ed25519 key per role, or as many as a threshold
//! asks), checked by loading them back the way a client verifies them.
use super::*;
use crate::config::{CompressionPolicy, CONFIG_FILE, CONFIG_FORMAT};
use crate::keys::key_file_name;
use crate::policy::ROLES;
use crate::repository::{meta_entry, TARGETS_DIR};
use chrono::TimeZone;
use ota_formats::crypto::{EcdsaP256Signer, Ed25519Signer};
use ota_formats::metadata::{RoleType, Snapshot, Targets, Timestamp};
use serde_json::Map;
use std::collections::BTreeMap;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn sign<T: RoleType>(value: T, keys: &[&Ed25519Signer]) -> Vec<u8> {
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| *k as &dyn Signer).collect();
    Signed::sign(value, &signers).unwrap().to_bytes().unwrap()
}

/// A repository signed at [`now`] with `n[role]` keys per role (threshold `n`), the keys
/// saved as `ROLE-I.pem` in `keys/` (snapshot and timestamp in `online/` with online roles).
struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    dirs: KeyDirs,
}

impl Fixture {
    fn new(root_keys: usize, online: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let dirs = KeyDirs {
            keys: tmp.path().join("keys"),
            online: Some(tmp.path().join("online")),
        };
        for d in [&dirs.keys, dirs.online.as_ref().unwrap()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(repo.join(METADATA_DIR)).unwrap();
        std::fs::create_dir_all(repo.join(TARGETS_DIR)).unwrap();
        let expires = now() + chrono::Duration::days(365);
        let mut root = Root::new(1, expires);
        let mut keys: BTreeMap<&str, Vec<Ed25519Signer>> = BTreeMap::new();
        let mut files = BTreeMap::new();
        for (r, role) in ROLES.iter().enumerate() {
            let n = if *role == "root" { root_keys } else { 1 };
            let dir = if online && ONLINE_ROLES.contains(role) {
                dirs.online.clone().unwrap()
            } else {
                dirs.keys.clone()
            };
            let mut names = Vec::new();
            for i in 0..n {
                let k = Ed25519Signer::from_seed(&[(r * 16 + i + 1) as u8; 32]);
                root.add_key(role, k.public_key()).unwrap();
                let name = key_file_name(role, i + 1);
                crate::keys::save_key(&dir, &name, &k).unwrap();
                names.push(name);
                keys.entry(role).or_default().push(k);
            }
            root.roles.get_mut(*role).unwrap().threshold = n as u64;
            files.insert(role.to_string(), names);
        }
        let config = RepoConfig {
            format: CONFIG_FORMAT,
            expiry: ROLES
                .iter()
                .map(|r| (r.to_string(), Period::from_secs(30 * 86_400)))
                .collect(),
            key_files: files,
            compression: CompressionPolicy::default(),
            online_roles: online,
            extra: Map::new(),
        };
        std::fs::write(repo.join(CONFIG_FILE), config.to_bytes().unwrap()).unwrap();
        let all = |role: &str| keys[role].iter().collect::<Vec<_>>();
        let md = repo.join(METADATA_DIR);
        let root_bytes = sign(root, &all("root"));
        std::fs::write(md.join("1.root.json"), &root_bytes).unwrap();
        std::fs::write(md.join("root.json"), &root_bytes).unwrap();
        let targets = sign(Targets::new(1, expires), &all("targets"));
        std::fs::write(md.join("1.targets.json"), &targets).unwrap();
        let mut snapshot = Snapshot::new(1, expires);
        snapshot
            .meta
            .insert("targets.json".into(), meta_entry(1, &targets));
        let snapshot = sign(snapshot, &all("snapshot"));
        std::fs::write(md.join("1.snapshot.json"), &snapshot).unwrap();
        let ts = Timestamp::new(1, expires, meta_entry(1, &snapshot));
        std::fs::write(md.join("timestamp.json"), sign(ts, &all("timestamp"))).unwrap();
        Fixture {
            _tmp: tmp,
            repo,
            dirs,
        }
    }

    fn load(&self) -> Repository {
        Repository::load(&self.repo).unwrap()
    }

    fn rotate(&self, req: &Request) -> Result<Rotated> {
        rotate(&self.repo, &self.dirs, req, now())
    }

    fn keyids(&self, role: &str) -> Vec<String> {
        self.load().root.signed.role(role).unwrap().keyids.clone()
    }

    /// Every file of the repository and of the key directories.
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let dirs = [
            self.repo.clone(),
            self.repo.join(METADATA_DIR),
            self.repo.join(TARGETS_DIR),
            self.dirs.keys.clone(),
            self.dirs.online.clone().unwrap(),
        ];
        for d in dirs {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_file() {
                    out.insert(e.path(), std::fs::read(e.path()).unwrap());
                }
            }
        }
        out
    }
}

/// The rotation error inside `e`.
fn rot(e: &RepoError) -> &RotateError {
    match e {
        RepoError::Rotate(r) => r,
        other => panic!("not a rotation error: {other}"),
    }
}

fn req(role: &str) -> Request {
    Request {
        role: role.into(),
        ..Request::default()
    }
}

fn signer_ids(bytes: &[u8]) -> Vec<String> {
    let raw = RawMetadata::from_bytes(bytes).unwrap();
    raw.signatures.iter().map(|s| s.keyid.clone()).collect()
}

#[test]
fn a_targets_rotation_re_signs_targets_snapshot_and_timestamp_under_a_new_root() {
    let f = Fixture::new(1, false);
    let old = f.keyids("targets");
    let r = Request {
        generate: Some(KeyType::EcdsaP256),
        remove: vec![old[0][..8].to_string()],
        ..req("targets")
    };
    let done = f.rotate(&r).unwrap();
    assert_eq!(done.root_version, 2);
    let p = done.published.as_ref().unwrap();
    assert_eq!(p.signed, ["root", "targets", "snapshot", "timestamp"]);
    assert_eq!(done.retired_files, [f.dirs.keys.join("targets-1.pem")]);
    let added = &done.changes[0].added[0];
    assert_eq!(
        (
            added.keytype.as_str(),
            added.file.as_deref(),
            added.generated
        ),
        ("ecdsa", Some("targets-2.pem"), true)
    );

    // Loads as a client verifies it: root chain 1 -> 2, targets signed by the new key only.
    let repo = f.load();
    assert_eq!(repo.root.signed.version, 2);
    let new = f.keyids("targets");
    assert_eq!(new, std::slice::from_ref(&added.keyid));
    let md = f.repo.join(METADATA_DIR);
    let targets = std::fs::read(md.join(format!("{}.targets.json", p.targets_version))).unwrap();
    assert_eq!(signer_ids(&targets), new);
    assert_eq!(repo.config.files("targets"), ["targets-2.pem"]);
    let mode = std::fs::metadata(f.dirs.keys.join("targets-2.pem"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    // The root is signed by the (unchanged) root key; the root key is unchanged.
    let root = std::fs::read(md.join("2.root.json")).unwrap();
    assert_eq!(signer_ids(&root), f.keyids("root"));
    // The new key signs the next targets through the normal path.
    let keys = crate::keys::load_role(&f.dirs.keys, &repo.config, &repo.root.signed, "targets");
    assert_eq!(keys.unwrap()[0].keyid, new[0]);
}

#[test]
fn a_new_root_is_signed_by_the_old_and_the_new_root_keys_to_their_thresholds() {
    let f = Fixture::new(1, false);
    let old = f.keyids("root");
    let done = f
        .rotate(&Request {
            generate: Some(KeyType::Ed25519),
            remove: old.clone(),
            ..req("root")
        })
        .unwrap();
    assert_eq!(done.published.as_ref().unwrap().signed, ["root"]);
    let new = f.keyids("root");
    assert_eq!(new.len(), 1);
    assert_ne!(new, old);
    let root2 = std::fs::read(f.repo.join("metadata/2.root.json")).unwrap();
    let mut ids = signer_ids(&root2);
    ids.sort();
    let mut both = vec![old[0].clone(), new[0].clone()];
    both.sort();
    assert_eq!(ids, both, "signed by the old and the new root key");
    assert_eq!(f.load().config.files("root"), ["root-2.pem"]);

    // Threshold 2 with a second generated key: both held here, so it signs.
    let done = f
        .rotate(&Request {
            generate: Some(KeyType::EcdsaP256),
            threshold: Some(2),
            ..req("root")
        })
        .unwrap();
    assert_eq!(done.root_version, 3);
    assert_eq!(done.changes[0].threshold, 2);
    assert_eq!(f.load().config.files("root"), ["root-2.pem", "root-3.pem"]);

    // Without one of them, the current root's threshold (2) cannot be met: refused, and
    // nothing changes (not even a generated key is left behind).
    std::fs::rename(
        f.dirs.keys.join("root-3.pem"),
        f.repo.parent().unwrap().join("away.pem"),
    )
    .unwrap();
    let before = f.files();
    let err = f
        .rotate(&Request {
            generate: Some(KeyType::Ed25519),
            ..req("root")
        })
        .unwrap_err();
    assert!(
        matches!(
            rot(&err),
            RotateError::NotEnoughKeys { threshold: 2, found: 1, missing, of_root, .. }
                if missing == &["root-3.pem"] && of_root.contains("current root v3")
        ),
        "{err}"
    );
    assert_eq!(f.files(), before);
}

#[test]
fn refused_requests_change_nothing() {
    let f = Fixture::new(2, false);
    let tmp = f.repo.parent().unwrap();
    let targets = f.keyids("targets");
    let snapshot = f.keyids("snapshot");
    let junk = tmp.join("junk.pub");
    std::fs::write(
        &junk,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let private = tmp.join("private.pem");
    let p256 = EcdsaP256Signer::generate();
    std::fs::write(&private, p256.to_pkcs8_pem().unwrap()).unwrap();
    let listed = tmp.join("listed.json");
    let existing = f.load().root.signed.keys[&snapshot[0]].clone();
    std::fs::write(&listed, serde_json::to_vec(&existing).unwrap()).unwrap();
    let before = f.files();
    let cases: Vec<(Request, &str)> = vec![
        (req("nobody"), "not a role"),
        (req("targets"), "nothing to rotate"),
        (
            Request {
                remove: vec!["00000000".into()],
                ..req("targets")
            },
            "is not a key of role targets",
        ),
        (
            Request {
                remove: vec![snapshot[0].clone()],
                ..req("targets")
            },
            "is a key of role snapshot",
        ),
        (
            Request {
                remove: targets.clone(),
                ..req("targets")
            },
            "would leave role targets with no keys",
        ),
        (
            Request {
                threshold: Some(0),
                ..req("targets")
            },
            "threshold of 0",
        ),
        (
            Request {
                threshold: Some(4),
                generate: Some(KeyType::Ed25519),
                ..req("root")
            },
            "threshold 4 of role root is above its 3 key(s)",
        ),
        (
            Request {
                add: vec![junk.clone()],
                ..req("targets")
            },
            "junk.pub",
        ),
        (
            Request {
                add: vec![private.clone()],
                ..req("targets")
            },
            "holds a private key",
        ),
        (
            Request {
                add: vec![listed.clone()],
                ..req("targets")
            },
            "already a key of role snapshot",
        ),
        (
            Request {
                add: vec![tmp.join("missing.pub")],
                ..req("targets")
            },
            "missing.pub",
        ),
    ];
    for (r, needle) in cases {
        let err = f.rotate(&r).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle:?}: {err}");
        assert_eq!(f.files(), before, "{needle}: nothing written");
    }
    // The threshold-above case said 3 keys: 2 root keys and the generated one; a removal
    // below the threshold is refused the same way.
    let roots = f.keyids("root");
    let err = f
        .rotate(&Request {
            remove: vec![roots[0].clone()],
            ..req("root")
        })
        .unwrap_err();
    assert!(matches!(
        rot(&err),
        RotateError::ThresholdAboveKeys {
            threshold: 2,
            keys: 1,
            ..
        }
    ));
    assert_eq!(f.files(), before);
}

#[test]
fn public_keys_are_listed_with_the_file_name_their_holders_use() {
    let f = Fixture::new(1, false);
    let tmp = f.repo.parent().unwrap();
    // PEM SubjectPublicKeyInfo of a P-256 key, and a TUF key object with its own key id.
    let p256 = EcdsaP256Signer::generate();
    let pem = tmp.join("alice.pub");
    std::fs::write(&pem, &p256.public_key().keyval.public).unwrap();
    let ed = Ed25519Signer::generate();
    let json = tmp.join("bob.json");
    let id = ed.key_id().unwrap();
    std::fs::write(
        &json,
        serde_json::to_vec(&serde_json::json!({ &id: ed.public_key() })).unwrap(),
    )
    .unwrap();
    let done = f
        .rotate(&Request {
            add: vec![pem, json],
            ..req("targets")
        })
        .unwrap();
    let ids = f.keyids("targets");
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&p256.key_id().unwrap()) && ids.contains(&id));
    assert_eq!(
        done.expected_files,
        [
            f.dirs.keys.join("targets-2.pem"),
            f.dirs.keys.join("targets-3.pem")
        ]
    );
    let repo = f.load();
    assert_eq!(
        repo.config.files("targets"),
        ["targets-1.pem", "targets-2.pem", "targets-3.pem"]
    );
    // Threshold 1 is met by the key held here, which signed the new targets.
    assert_eq!(repo.targets.signed.version, 2);
    // The holder drops the private key in place and signs with it.
    crate::keys::save_key(&f.dirs.keys, "targets-3.pem", &ed).unwrap();
    let loaded =
        crate::keys::load_role(&f.dirs.keys, &repo.config, &repo.root.signed, "targets").unwrap();
    assert_eq!(loaded.len(), 2);
}

#[test]
fn a_staged_root_waits_unsigned_and_is_published_once_signed() {
    let f = Fixture::new(1, false);
    let before = f.files();
    let old_targets = f.keyids("targets");
    let done = f
        .rotate(&Request {
            generate: Some(KeyType::Ed25519),
            remove: old_targets.clone(),
            stage: true,
            ..req("targets")
        })
        .unwrap();
    let staged_path = f.repo.join(STAGED_ROOT_FILE);
    assert_eq!(done.staged.as_deref(), Some(staged_path.as_path()));
    assert!(done.published.is_none());
    // Only the staged root and the generated key were written; the policy is unchanged.
    let mut after = f.files();
    assert!(after.remove(&staged_path).is_some());
    assert!(after.remove(&f.dirs.keys.join("targets-2.pem")).is_some());
    assert_eq!(after, before);
    let staged = read_staged_root(&f.repo).unwrap().unwrap();
    assert_eq!(staged.version, 2);
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&staged_path).unwrap()).unwrap();
    assert_eq!(value["_type"], "root", "the signed part, no envelope");

    // One staged root at a time.
    let err = f
        .rotate(&Request {
            generate: Some(KeyType::Ed25519),
            ..req("snapshot")
        })
        .unwrap_err();
    assert!(matches!(
        rot(&err),
        RotateError::StagedRootPending { version: 2, .. }
    ));

    // A root signed by a key the current root does not know is refused.
    let stranger = Ed25519Signer::generate();
    let bad = sign(staged.clone(), &[&stranger]);
    let err = publish_root(&f.repo, &f.dirs, &bad, now()).unwrap_err();
    assert!(
        matches!(rot(&err), RotateError::RootNotSigned { by, .. } if by.contains("current root v1")),
        "{err}"
    );
    // Signed by the root key (the ceremony's job), it is published with the targets re-signed
    // by the generated key, which the policy now lists.
    let root_key = crate::keys::load_key(&f.dirs.keys, "root-1.pem").unwrap();
    let signed = Signed::sign(staged, &crate::keys::as_signers(&[root_key]))
        .unwrap()
        .to_bytes()
        .unwrap();
    let done = publish_root(&f.repo, &f.dirs, &signed, now()).unwrap();
    assert_eq!(
        done.published.as_ref().unwrap().signed,
        ["root", "targets", "snapshot", "timestamp"]
    );
    assert!(!staged_path.exists());
    let repo = f.load();
    assert_eq!(repo.root.signed.version, 2);
    assert_eq!(repo.config.files("targets"), ["targets-2.pem"]);
    assert_eq!(done.retired_files, [f.dirs.keys.join("targets-1.pem")]);
    // The same root again is not the next version.
    let err = publish_root(&f.repo, &f.dirs, &signed, now()).unwrap_err();
    assert!(matches!(
        rot(&err),
        RotateError::RootVersion {
            version: 2,
            expected: 3
        }
    ));
}

#[test]
fn online_keys_are_read_from_and_written_to_the_online_directory() {
    let f = Fixture::new(1, true);
    let online = f.dirs.online.clone().unwrap();
    let old = f.keyids("timestamp");
    let done = f
        .rotate(&Request {
            generate: Some(KeyType::Ed25519),
            remove: old,
            ..req("timestamp")
        })
        .unwrap();
    assert_eq!(
        done.published.as_ref().unwrap().signed,
        ["root", "timestamp"]
    );
    assert!(online.join("timestamp-2.pem").exists());
    assert!(!f.dirs.keys.join("timestamp-2.pem").exists());
    assert_eq!(f.load().config.files("timestamp"), ["timestamp-2.pem"]);
    // A targets rotation re-signs snapshot and timestamp with the online keys.
    let done = f
        .rotate(&Request {
            generate: Some(KeyType::Ed25519),
            ..req("targets")
        })
        .unwrap();
    assert_eq!(
        done.published.as_ref().unwrap().signed,
        ["root", "targets", "snapshot", "timestamp"]
    );
    // Without the online directory: refused, naming it.
    let dirs = KeyDirs {
        keys: f.dirs.keys.clone(),
        online: None,
    };
    let err = rotate(
        &f.repo,
        &dirs,
        &Request {
            generate: Some(KeyType::Ed25519),
            ..req("snapshot")
        },
        now(),
    )
    .unwrap_err();
    assert!(matches!(rot(&err), RotateError::NoOnlineKeyDir));
}

#[test]
fn key_ids_resolve_by_unique_prefix_only() {
    let f = Fixture::new(1, false);
    let root = f.load().root.signed;
    let ids = &root.role("root").unwrap().keyids;
    let change = |remove: &str| Change {
        role: "root".into(),
        add: vec![("ab".repeat(32), Ed25519Signer::generate().public_key())],
        remove: vec![remove.into()],
        threshold: None,
    };
    assert!(apply(&root, &change(&ids[0][..MIN_PREFIX])).is_ok());
    assert!(matches!(
        apply(&root, &change(&ids[0][..MIN_PREFIX - 1])),
        Err(RotateError::UnknownKeyId { .. })
    ));
    assert!(matches!(
        apply(&root, &change(&ids[0].to_uppercase())),
        Ok(Applied { ref removed, .. }) if removed == ids
    ));
}

#[test]
fn a_rotation_interrupted_after_its_root_is_finished_by_resume() {
    let f = Fixture::new(1, false);
    let md = f.repo.join(METADATA_DIR);
    let before = f.files();
    let old_ts = before[&md.join("timestamp.json")].clone();
    let old_root_copy = before[&md.join("root.json")].clone();
    let old_config = before[&f.repo.join(CONFIG_FILE)].clone();
    let mut r = req("snapshot");
    r.generate = Some(KeyType::Ed25519);
    r.remove = f.keyids("snapshot");
    f.rotate(&r).unwrap();
    let new_key = f.keyids("snapshot");

    // The crash: 2.root.json and the re-signed snapshot were written, root.json, the timestamp
    // and the policy were not (the generated key had been saved before publishing).
    std::fs::write(md.join("timestamp.json"), &old_ts).unwrap();
    std::fs::write(md.join("root.json"), &old_root_copy).unwrap();
    std::fs::write(f.repo.join(CONFIG_FILE), &old_config).unwrap();
    match Repository::load(&f.repo) {
        Err(RepoError::RotationInterrupted { version: 2, .. }) => {}
        other => panic!("expected an interrupted rotation of root v2, got {other:?}"),
    }
    // Also with root.json already copied: the timestamp lists a snapshot signed by the retired
    // key.
    std::fs::copy(md.join("2.root.json"), md.join("root.json")).unwrap();
    match Repository::load(&f.repo) {
        Err(RepoError::RotationInterrupted {
            version: 2, cause, ..
        }) => {
            assert!(
                matches!(*cause, RepoError::BadSignatures { ref path, .. } if path.ends_with("1.snapshot.json"))
            );
        }
        other => panic!("expected an interrupted rotation of root v2, got {other:?}"),
    }

    let done = resume(&f.repo, &f.dirs, &KeyAccess::from_env(), now())
        .unwrap()
        .expect("an interrupted rotation to finish");
    assert_eq!(done.root_version, 2);
    let repo = f.load();
    assert_eq!(repo.root.signed.version, 2);
    assert_eq!(repo.root.signed.role("snapshot").unwrap().keyids, new_key);
    // The snapshot version the crashed run left on disk is skipped, never replaced.
    assert_eq!(repo.snapshot.signed.version, 3);
    assert_eq!(repo.timestamp.signed.version, 2);
    let snapshot = std::fs::read(md.join("3.snapshot.json")).unwrap();
    assert_eq!(signer_ids(&snapshot), new_key);
    // The policy names the generated key again.
    assert!(repo
        .config
        .files("snapshot")
        .iter()
        .any(|f| f == "snapshot-2.pem"));

    // On a consistent repository resume writes nothing.
    let settled = f.files();
    assert!(resume(&f.repo, &f.dirs, &KeyAccess::from_env(), now())
        .unwrap()
        .is_none());
    assert_eq!(f.files(), settled);
}

#[test]
fn a_badly_signed_root_is_not_taken_for_an_interrupted_rotation() {
    let f = Fixture::new(1, false);
    let md = f.repo.join(METADATA_DIR);
    let mut next = f.load().root.signed.clone();
    next.version = 2;
    let stranger = Ed25519Signer::from_seed(&[99; 32]);
    std::fs::write(md.join("2.root.json"), sign(next, &[&stranger])).unwrap();
    assert!(matches!(
        Repository::load(&f.repo),
        Err(RepoError::BadSignatures { ref path, .. }) if path.ends_with("2.root.json")
    ));
    assert!(resume(&f.repo, &f.dirs, &KeyAccess::from_env(), now()).is_err());
}
