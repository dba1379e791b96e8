//! Delegations made and rotated on repositories built here (one Ed25519 key per top-level
//! role), checked by loading them back and by walking them the way a client does.
use super::*;
use crate::config::{CompressionPolicy, CONFIG_FILE, CONFIG_FORMAT};
use crate::keys::key_file_name;
use crate::policy::ROLES;
use crate::repository::{meta_entry, METADATA_DIR, TARGETS_DIR};
use crate::rotate::{self, KeyDirs, KeyType, Request, RotateError};
use crate::RepoError;
use chrono::{DateTime, TimeZone, Utc};
use ota_formats::crypto::{EcdsaP256Signer, Ed25519Signer, Signer};
use ota_formats::metadata::{
    RawMetadata, RoleType, Root, Signed, Snapshot, TargetFile, Targets, Timestamp,
};
use ota_formats::trust::TrustedSet;
use serde_json::Map;
use std::path::{Path, PathBuf};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn sign<T: RoleType>(value: T, key: &Ed25519Signer) -> Vec<u8> {
    Signed::sign(value, &[key as &dyn Signer])
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// A repository signed at [`now`], one key per top-level role saved as `ROLE-1.pem` in
/// `keys/`.
struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    dirs: KeyDirs,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let dirs = KeyDirs {
            keys: tmp.path().join("keys"),
            online: None,
        };
        std::fs::create_dir_all(&dirs.keys).unwrap();
        std::fs::create_dir_all(repo.join(METADATA_DIR)).unwrap();
        std::fs::create_dir_all(repo.join(TARGETS_DIR)).unwrap();
        let expires = now() + chrono::Duration::days(365);
        let mut root = Root::new(1, expires);
        let mut keys = Vec::new();
        for (i, role) in ROLES.iter().enumerate() {
            let k = Ed25519Signer::from_seed(&[i as u8 + 1; 32]);
            root.add_key(role, k.public_key()).unwrap();
            crate::keys::save_key(&dirs.keys, &key_file_name(role, 1), &k).unwrap();
            keys.push(k);
        }
        let config = RepoConfig {
            format: CONFIG_FORMAT,
            expiry: ROLES
                .iter()
                .map(|r| (r.to_string(), Period::from_secs(30 * 86_400)))
                .collect(),
            key_files: ROLES
                .iter()
                .map(|r| (r.to_string(), vec![key_file_name(r, 1)]))
                .collect(),
            compression: CompressionPolicy::default(),
            online_roles: false,
            extra: Map::new(),
        };
        std::fs::write(repo.join(CONFIG_FILE), config.to_bytes().unwrap()).unwrap();
        let md = repo.join(METADATA_DIR);
        let root_bytes = sign(root, &keys[0]);
        std::fs::write(md.join("1.root.json"), &root_bytes).unwrap();
        std::fs::write(md.join("root.json"), &root_bytes).unwrap();
        let targets = sign(Targets::new(1, expires), &keys[1]);
        std::fs::write(md.join("1.targets.json"), &targets).unwrap();
        let mut snapshot = Snapshot::new(1, expires);
        snapshot
            .meta
            .insert("targets.json".into(), meta_entry(1, &targets));
        let snapshot = sign(snapshot, &keys[2]);
        std::fs::write(md.join("1.snapshot.json"), &snapshot).unwrap();
        let ts = Timestamp::new(1, expires, meta_entry(1, &snapshot));
        std::fs::write(md.join("timestamp.json"), sign(ts, &keys[3])).unwrap();
        Fixture {
            _tmp: tmp,
            repo,
            dirs,
        }
    }

    fn tmp(&self) -> &Path {
        self._tmp.path()
    }

    fn load(&self) -> Repository {
        Repository::load(&self.repo).unwrap()
    }

    fn delegate(&self, req: &DelegateRequest) -> Result<Delegated> {
        delegate(&self.repo, &self.dirs, req, now())
    }

    fn rotate(&self, req: &Request) -> Result<DelegationRotated> {
        rotate(&self.repo, &self.dirs, req, now())
    }

    /// Every file of the repository and of the key directory.
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for d in [
            self.repo.clone(),
            self.repo.join(METADATA_DIR),
            self.repo.join(TARGETS_DIR),
            self.dirs.keys.clone(),
        ] {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_file() {
                    out.insert(e.path(), std::fs::read(e.path()).unwrap());
                }
            }
        }
        out
    }

    /// Delegated role `role`'s targets as a client gets them: the root chain from version 1,
    /// timestamp, snapshot, top-level targets, then the role through the targets' delegation.
    fn client_view(&self, role: &str) -> std::result::Result<Targets, String> {
        self.client_view_at(role, now())
    }

    /// [`Fixture::client_view`] by a client whose clock says `at`.
    fn client_view_at(
        &self,
        role: &str,
        at: DateTime<Utc>,
    ) -> std::result::Result<Targets, String> {
        let md = self.repo.join(METADATA_DIR);
        let read = |name: String| std::fs::read(md.join(name)).unwrap();
        let mut set = TrustedSet::new(&read("1.root.json".into()), at).unwrap();
        let mut v = 2;
        while md.join(format!("{v}.root.json")).exists() {
            set.update_root(&read(format!("{v}.root.json"))).unwrap();
            v += 1;
        }
        set.update_timestamp(&read("timestamp.json".into()))
            .unwrap();
        let s = set.snapshot_meta().unwrap().version;
        set.update_snapshot(&read(format!("{s}.snapshot.json")), false)
            .unwrap();
        let meta = |set: &TrustedSet, entry: &str| {
            set.snapshot()
                .and_then(|s| s.meta.get(entry))
                .map(|m| m.version)
                .ok_or_else(|| format!("the snapshot does not list {entry}"))
        };
        let t = meta(&set, "targets.json")?;
        set.update_targets(&read(format!("{t}.targets.json")))
            .unwrap();
        let r = meta(&set, &format!("{role}.json"))?;
        set.update_delegated_targets(&read(format!("{r}.{role}.json")), role, "targets")
            .map(|t| t.signed().clone())
            .map_err(|e| e.to_string())
    }
}

fn apps() -> DelegateRequest {
    DelegateRequest {
        role: "apps".into(),
        paths: vec!["apps-*".into()],
        generate: Some(KeyType::Ed25519),
        ..DelegateRequest::default()
    }
}

/// The delegation error inside `e`.
fn del(e: &RepoError) -> &DelegationError {
    match e {
        RepoError::Rotate(r) => match r.as_ref() {
            RotateError::Delegation(d) => d,
            other => panic!("not a delegation error: {other}"),
        },
        other => panic!("not a delegation error: {other}"),
    }
}

fn rot(e: &RepoError) -> &RotateError {
    match e {
        RepoError::Rotate(r) => r,
        other => panic!("not a rotation error: {other}"),
    }
}

fn signer_ids(path: &Path) -> Vec<String> {
    let raw = RawMetadata::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    raw.signatures.iter().map(|s| s.keyid.clone()).collect()
}

/// Publish a target file `name` with `data` under delegated `role` (what `add --role` does).
fn add_target(f: &Fixture, role: &str, name: &str, data: &[u8]) -> RolePublished {
    let repo = f.load();
    let entry = TargetFile::from_bytes(data);
    let file = crate::repository::target_file_path(&f.repo, name, entry.sha256().unwrap());
    std::fs::write(file, data).unwrap();
    let mut content = load_role(&repo, role).unwrap().signed;
    content.targets.insert(name.into(), entry);
    let access = crate::key_source::KeyAccess::from_env();
    let signers = RoleSigners::load(&repo, &f.dirs, role, &access).unwrap();
    publish_targets(&repo, &signers, content, now()).unwrap()
}

#[test]
fn a_delegation_publishes_targets_the_role_snapshot_and_timestamp() {
    let f = Fixture::new();
    let done = f
        .delegate(&DelegateRequest {
            paths: vec!["apps-*".into(), " apps/* ".into(), "apps-*".into()],
            terminating: true,
            ..apps()
        })
        .unwrap();
    assert_eq!(done.version, 1);
    assert_eq!(done.paths, ["apps-*", "apps/*"]);
    assert_eq!(done.threshold, 1);
    let p = &done.published;
    assert_eq!(p.signed, ["targets", "snapshot", "timestamp"]);
    assert_eq!((p.root_version, p.targets_version), (1, 2));
    assert_eq!(done.added[0].file.as_deref(), Some("apps-1.pem"));
    assert!(done.added[0].generated);
    assert_eq!(
        done.period,
        Period::from_secs(30 * 86_400),
        "targets' period"
    );

    let repo = f.load();
    let (keys, role) = delegation(&repo.targets.signed, "apps").unwrap();
    assert_eq!(role.keyids, done.keyids);
    assert!(role.terminating);
    assert!(keys.keys.contains_key(&done.keyids[0]));
    assert_eq!(repo.snapshot.signed.meta["apps.json"].version, 1);
    assert_eq!(repo.config.files("apps"), ["apps-1.pem"]);
    assert_eq!(period(&repo.config, "apps"), done.period);
    let md = f.repo.join(METADATA_DIR);
    assert_eq!(signer_ids(&md.join("1.apps.json")), done.keyids);
    let loaded = crate::keys::load_key(&f.dirs.keys, "apps-1.pem").unwrap();
    assert_eq!(loaded.keyid, done.keyids[0]);
    // A client follows the delegation.
    let view = f.client_view("apps").unwrap();
    assert_eq!((view.version, view.targets.len()), (1, 0));
    assert_eq!(load_role(&repo, "apps").unwrap().signed.version, 1);
}

#[test]
fn delegate_and_rotate_round_trip() {
    let f = Fixture::new();
    let first = f.delegate(&apps()).unwrap();
    let old = first.keyids[0].clone();
    add_target(&f, "apps", "apps-1.0.img", b"app one");
    assert!(f
        .client_view("apps")
        .unwrap()
        .targets
        .contains_key("apps-1.0.img"));
    let root_before = std::fs::read(f.repo.join("metadata/root.json")).unwrap();

    let done = f
        .rotate(&Request {
            role: "apps".into(),
            generate: Some(KeyType::EcdsaP256),
            remove: vec![old[..8].to_string()],
            ..Request::default()
        })
        .unwrap();
    assert_eq!(done.version, 3);
    assert_eq!(done.root_version, 1);
    assert_eq!(done.change.removed, std::slice::from_ref(&old));
    assert_eq!(done.change.threshold, 1);
    let new = done.change.keyids.clone();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    assert_eq!(done.change.added[0].keytype, "ecdsa");
    assert_eq!(done.change.added[0].file.as_deref(), Some("apps-2.pem"));
    assert_eq!(done.retired_files, [f.dirs.keys.join("apps-1.pem")]);
    assert!(
        f.dirs.keys.join("apps-1.pem").exists(),
        "left for its owner"
    );

    // Root is untouched; the repository loads and verifies; the old key is out of the
    // delegation (its keys too), the new version is signed by the new key only and keeps the
    // targets.
    assert_eq!(
        std::fs::read(f.repo.join("metadata/root.json")).unwrap(),
        root_before
    );
    let repo = f.load();
    assert_eq!(repo.root.signed.version, 1);
    let (keys, role) = delegation(&repo.targets.signed, "apps").unwrap();
    assert_eq!(role.keyids, new);
    assert!(!keys.keys.contains_key(&old));
    assert_eq!(repo.snapshot.signed.meta["apps.json"].version, 3);
    assert_eq!(signer_ids(&done.file), new);
    assert_eq!(repo.config.files("apps"), ["apps-2.pem"]);
    let view = f.client_view("apps").unwrap();
    assert_eq!(view.version, 3);
    assert!(view.targets.contains_key("apps-1.0.img"));

    // The new key signs what comes next; metadata signed with the old key does not verify.
    add_target(&f, "apps", "apps-1.1.img", b"app two");
    assert_eq!(f.client_view("apps").unwrap().targets.len(), 2);
    let repo = f.load();
    let mut forged = load_role(&repo, "apps").unwrap().signed;
    forged.version = 5;
    let old_key = crate::keys::load_key(&f.dirs.keys, "apps-1.pem").unwrap();
    let e = sign_delegated(
        "apps",
        forged,
        &[old_key.signer.as_ref()],
        &repo.targets.signed,
    )
    .unwrap_err();
    assert!(
        matches!(e, RepoError::Sign { ref role, .. } if role == "apps"),
        "{e}"
    );
}

#[test]
fn refused_delegations_write_nothing() {
    let f = Fixture::new();
    f.delegate(&apps()).unwrap();
    let tmp = f.tmp();
    let private = tmp.join("private.pem");
    std::fs::write(
        &private,
        EcdsaP256Signer::generate().to_pkcs8_pem().unwrap(),
    )
    .unwrap();
    let public = tmp.join("holder.json");
    let holder = Ed25519Signer::generate();
    std::fs::write(&public, serde_json::to_vec(&holder.public_key()).unwrap()).unwrap();
    let targets_key = tmp.join("targets.json");
    let root = f.load().root.signed;
    let tk = &root.roles["targets"].keyids[0];
    std::fs::write(&targets_key, serde_json::to_vec(&root.keys[tk]).unwrap()).unwrap();
    let before = f.files();
    let named = |role: &str| DelegateRequest {
        role: role.into(),
        ..apps()
    };
    let cases: Vec<(DelegateRequest, &str)> = vec![
        (named("targets"), "top-level role"),
        (named("Root"), "top-level role"),
        (named("apps"), "delegated already"),
        (named("a/b"), "cannot name a delegated role"),
        (named("-x"), "cannot name a delegated role"),
        (named(""), "cannot name a delegated role"),
        (
            DelegateRequest {
                paths: vec![],
                ..named("tools")
            },
            "at least one path pattern",
        ),
        (
            DelegateRequest {
                paths: vec!["  ".into()],
                ..named("tools")
            },
            "it is empty",
        ),
        (
            DelegateRequest {
                paths: vec!["/abs/*".into()],
                ..named("tools")
            },
            "leading '/'",
        ),
        (
            DelegateRequest {
                paths: vec!["a/../*".into()],
                ..named("tools")
            },
            "'..'",
        ),
        (
            DelegateRequest {
                threshold: Some(0),
                ..named("tools")
            },
            "threshold of 0",
        ),
        (
            DelegateRequest {
                threshold: Some(2),
                ..named("tools")
            },
            "threshold 2 of role tools is above its 1 key(s)",
        ),
        (
            DelegateRequest {
                generate: None,
                ..named("tools")
            },
            "needs at least one key",
        ),
        (
            DelegateRequest {
                add: vec![private.clone()],
                ..named("tools")
            },
            "holds a private key",
        ),
        (
            DelegateRequest {
                add: vec![targets_key.clone()],
                ..named("tools")
            },
            "already a key of role targets",
        ),
        // Threshold 2: the holder's private key is not here, so version 1 cannot be signed.
        (
            DelegateRequest {
                add: vec![public.clone()],
                threshold: Some(2),
                ..named("tools")
            },
            "needs 2 signature(s)",
        ),
    ];
    for (r, needle) in cases {
        let e = f.delegate(&r).unwrap_err();
        assert!(e.to_string().contains(needle), "{:?}: {e}", r.role);
        assert_eq!(f.files(), before, "{:?} ({needle}) wrote something", r.role);
    }
    assert!(matches!(
        del(&f.delegate(&named("apps")).unwrap_err()),
        DelegationError::AlreadyDelegated { .. }
    ));

    // Targets staged for the next publish: refused too.
    let repo = f.load();
    crate::publish::stage(&repo, &repo.targets.signed).unwrap();
    let before = f.files();
    let e = f.delegate(&named("tools")).unwrap_err();
    assert!(
        matches!(del(&e), DelegationError::TargetsStaged { .. }),
        "{e}"
    );
    assert_eq!(f.files(), before);
}

#[test]
fn a_public_key_whose_holder_put_the_private_key_in_place_signs_the_first_version() {
    let f = Fixture::new();
    let holder = EcdsaP256Signer::generate();
    let public = f.tmp().join("holder.pub");
    let spki = holder.public_key();
    std::fs::write(&public, serde_json::to_vec(&spki).unwrap()).unwrap();
    // Threshold 1 of 2: the generated key signs; the holder's file name is expected.
    let done = f
        .delegate(&DelegateRequest {
            add: vec![public.clone()],
            ..apps()
        })
        .unwrap();
    assert_eq!(done.keyids.len(), 2);
    assert_eq!(
        done.expected_files,
        [f.dirs.keys.join("apps-2.pem")],
        "{done:?}"
    );
    let mut files = f.load().config.files("apps").to_vec();
    files.sort();
    assert_eq!(files, ["apps-1.pem", "apps-2.pem"]);
    // The holder puts the key there; a threshold of 2 then signs with both.
    std::fs::write(
        f.dirs.keys.join("apps-2.pem"),
        holder.to_pkcs8_pem().unwrap(),
    )
    .unwrap();
    let done = f
        .rotate(&Request {
            role: "apps".into(),
            threshold: Some(2),
            ..Request::default()
        })
        .unwrap();
    assert_eq!(done.change.threshold, 2);
    let mut signed = signer_ids(&done.file);
    signed.sort();
    let mut all = done.change.keyids.clone();
    all.sort();
    assert_eq!(signed, all);
    f.client_view("apps").unwrap();
}

#[test]
fn refused_rotations_of_a_delegated_role_write_nothing() {
    let f = Fixture::new();
    let done = f.delegate(&apps()).unwrap();
    let id = done.keyids[0].clone();
    let before = f.files();
    let req = |r: Request| Request {
        role: "apps".into(),
        ..r
    };
    let cases: Vec<(Request, &str)> = vec![
        (
            req(Request {
                remove: vec![id.clone()],
                ..Request::default()
            }),
            "would leave role apps with no keys",
        ),
        (
            req(Request {
                threshold: Some(2),
                ..Request::default()
            }),
            "threshold 2 of role apps is above its 1 key(s)",
        ),
        (req(Request::default()), "nothing to rotate for role apps"),
        (
            req(Request {
                generate: Some(KeyType::Ed25519),
                stage: true,
                ..Request::default()
            }),
            "no new root is staged",
        ),
        (
            Request {
                role: "nobody".into(),
                generate: Some(KeyType::Ed25519),
                ..Request::default()
            },
            "not a role",
        ),
        (
            req(Request {
                remove: vec![f.load().root.signed.roles["targets"].keyids[0].clone()],
                ..Request::default()
            }),
            "is not a key of role apps",
        ),
    ];
    for (r, needle) in cases {
        let e = f.rotate(&r).unwrap_err();
        assert!(e.to_string().contains(needle), "{needle}: {e}");
        assert_eq!(f.files(), before, "{needle}: wrote something");
    }
    assert!(matches!(
        rot(&f.rotate(&req(Request::default())).unwrap_err()),
        RotateError::NothingToChange { .. }
    ));
    // Without its key file, the new version cannot be signed (threshold of the new set).
    std::fs::rename(f.dirs.keys.join("apps-1.pem"), f.tmp().join("apps-1.pem")).unwrap();
    let before = f.files();
    let extra = write_public(&f, "extra.pub");
    let e = f
        .rotate(&req(Request {
            add: vec![extra],
            ..Request::default()
        }))
        .unwrap_err();
    assert!(
        matches!(rot(&e), RotateError::NotEnoughKeys { threshold: 1, found: 0, missing, .. } if missing == &["apps-1.pem"]),
        "{e}"
    );
    assert_eq!(f.files(), before);
}

/// A public key file of a new Ed25519 key in the fixture's temp dir.
fn write_public(f: &Fixture, name: &str) -> PathBuf {
    let path = f.tmp().join(name);
    let k = Ed25519Signer::generate();
    std::fs::write(&path, serde_json::to_vec(&k.public_key()).unwrap()).unwrap();
    path
}

#[test]
fn rotate_dispatches_a_delegated_role_and_top_level_rotations_keep_the_delegation() {
    let f = Fixture::new();
    f.delegate(&apps()).unwrap();
    add_target(&f, "apps", "apps-1.0.img", b"app one");

    // ota_repo::rotate takes a delegated role too: root unchanged.
    let done = rotate::rotate(
        &f.repo,
        &f.dirs,
        &Request {
            role: "apps".into(),
            generate: Some(KeyType::Ed25519),
            ..Request::default()
        },
        now(),
    )
    .unwrap();
    assert_eq!(done.root_version, 1);
    assert_eq!(done.changes[0].role, "apps");
    assert_eq!(done.changes[0].keyids.len(), 2);
    let p = done.published.unwrap();
    assert_eq!(p.signed, ["targets", "apps", "snapshot", "timestamp"]);

    // A top-level rotation of the targets key re-signs targets with the delegation in it;
    // the snapshot still lists the role, and its key files stay in the policy.
    let old = f.load().root.signed.roles["targets"].keyids.clone();
    rotate::rotate(
        &f.repo,
        &f.dirs,
        &Request {
            role: "targets".into(),
            generate: Some(KeyType::Ed25519),
            remove: old,
            ..Request::default()
        },
        now(),
    )
    .unwrap();
    let repo = f.load();
    assert_eq!(repo.root.signed.version, 2);
    assert_eq!(repo.config.files("apps"), ["apps-1.pem", "apps-2.pem"]);
    assert!(repo.snapshot.signed.meta.contains_key("apps.json"));
    let view = f.client_view("apps").unwrap();
    assert!(view.targets.contains_key("apps-1.0.img"));
    // And a publish keeps listing it.
    let needs = crate::publish::plan(&repo, false, true, now());
    let loaded: crate::keys::RoleKeys = needs
        .roles()
        .into_iter()
        .map(|r| {
            let k =
                crate::keys::load_role(&f.dirs.keys, &repo.config, &repo.root.signed, r).unwrap();
            (r.to_string(), k)
        })
        .collect();
    let signers = crate::keys::role_signers(&loaded);
    crate::publish::publish(&repo, repo.working_targets(), needs, &signers, now()).unwrap();
    assert!(f.client_view("apps").is_ok());
}

#[test]
fn targets_outside_the_delegated_paths_are_refused() {
    let f = Fixture::new();
    f.delegate(&apps()).unwrap();
    let repo = f.load();
    let e = check_target_paths(&repo, "apps", &["apps-1.img", "gateway-1.img"]).unwrap_err();
    assert!(
        matches!(del(&e), DelegationError::PathNotDelegated { target, .. } if target == "gateway-1.img"),
        "{e}"
    );
    // `*` stays within one path segment.
    assert!(check_target_paths(&repo, "apps", &["apps-x/y.img"]).is_err());
    let e = check_target_paths(&repo, "nobody", &["apps-1.img"]).unwrap_err();
    assert!(
        matches!(del(&e), DelegationError::NotDelegated { .. }),
        "{e}"
    );
}

/// `apps` (period 10 days, a target listed) and `tools` (365 days), delegated at [`now`].
fn two_roles(f: &Fixture) {
    f.delegate(&DelegateRequest {
        expires: Some(Period::from_secs(10 * 86_400)),
        ..apps()
    })
    .unwrap();
    f.delegate(&DelegateRequest {
        role: "tools".into(),
        paths: vec!["tools-*".into()],
        expires: Some(Period::from_secs(365 * 86_400)),
        ..apps()
    })
    .unwrap();
    add_target(f, "apps", "apps-1.0.img", b"app one");
}

/// Plan at `at` as `ota-sign publish` does, load every key, publish.
fn publish_at(
    f: &Fixture,
    force: bool,
    at: DateTime<Utc>,
) -> Result<(crate::publish::Published, Vec<Renewed>)> {
    let repo = f.load();
    let plan = crate::publish::plan_with_delegated(&repo, repo.staged.is_some(), force, at)?;
    let access = crate::key_source::KeyAccess::from_env();
    let mut renewals = Vec::new();
    for due in plan.delegated {
        renewals.push(load_renewal(&repo, &f.dirs.keys, due, &access)?);
    }
    let mut loaded = crate::keys::RoleKeys::new();
    for role in plan.needs.roles() {
        let k = crate::keys::load_role(&f.dirs.keys, &repo.config, &repo.root.signed, role)?;
        loaded.insert(role.to_string(), k);
    }
    let signers = crate::keys::role_signers(&loaded);
    publish_with_renewals(
        &repo,
        repo.working_targets(),
        plan.needs,
        &renewals,
        &signers,
        at,
    )
}

#[test]
fn publish_re_signs_a_due_delegated_role_and_leaves_the_others_alone() {
    let f = Fixture::new();
    two_roles(&f);
    let day = chrono::Duration::days(1);

    // Nothing is due right after the delegations.
    let repo = f.load();
    let plan = crate::publish::plan_with_delegated(&repo, false, false, now()).unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    // --force re-signs every delegated role too.
    let plan = crate::publish::plan_with_delegated(&repo, false, true, now()).unwrap();
    let names: Vec<&str> = plan.delegated.iter().map(|d| d.role.as_str()).collect();
    assert_eq!(names, ["apps", "tools"]);

    // 8 days on, apps (10-day period) has 2 days left: inside its warning window, like a
    // top-level role would be; tools and the top-level roles (30 days) are not due.
    let later = now() + day * 8;
    let plan = crate::publish::plan_with_delegated(&repo, false, false, later).unwrap();
    let names: Vec<&str> = plan.delegated.iter().map(|d| d.role.as_str()).collect();
    assert_eq!(names, ["apps"]);
    assert_eq!(plan.delegated[0].health, crate::policy::Health::Expiring);
    assert_eq!(
        plan.needs.roles(),
        ["snapshot", "timestamp"],
        "the snapshot lists the new version"
    );
    let apps_before = repo.snapshot.signed.meta["apps.json"].version;
    let tools_before = repo.snapshot.signed.meta["tools.json"].version;
    // A device whose clock is past apps' expiry refuses it as published now.
    assert!(f.client_view_at("apps", now() + day * 11).is_err());

    let (published, renewed) = publish_at(&f, false, later).unwrap();
    assert_eq!(published.signed, ["apps", "snapshot", "timestamp"]);
    assert_eq!(renewed.len(), 1);
    let r = &renewed[0];
    assert_eq!((r.role.as_str(), r.previous_version), ("apps", apps_before));
    assert_eq!(r.version, apps_before + 1);
    assert_eq!(
        r.expires,
        later + day * 10,
        "a fresh expiry from its period"
    );
    assert!(r.file.ends_with(format!("{}.apps.json", r.version)));
    let repo = f.load();
    assert_eq!(repo.snapshot.signed.meta["apps.json"].version, r.version);
    assert_eq!(
        repo.snapshot.signed.meta["tools.json"].version,
        tools_before
    );
    assert_eq!(published.targets_version, repo.targets.signed.version);
    // Signed by its own key, same targets; devices past the old expiry accept it now.
    let md = f.repo.join(METADATA_DIR);
    let (_, role) = delegation(&repo.targets.signed, "apps").unwrap();
    assert_eq!(signer_ids(&r.file), role.keyids);
    let view = f.client_view_at("apps", now() + day * 11).unwrap();
    assert!(view.targets.contains_key("apps-1.0.img"));
    assert!(f.client_view_at("tools", now() + day * 11).is_ok());
    // The old version is still there: versioned files are never replaced.
    assert!(md.join(format!("{apps_before}.apps.json")).is_file());
    // Not due any more.
    let plan = crate::publish::plan_with_delegated(&repo, false, false, later).unwrap();
    assert!(plan.is_empty(), "{plan:?}");

    // 28 days on: targets (30 days, re-signed at delegation time) and apps are due; one
    // publication re-signs targets, then apps checked against it, snapshot, timestamp.
    let much_later = now() + day * 28;
    let (published, renewed) = publish_at(&f, false, much_later).unwrap();
    assert_eq!(
        published.signed,
        ["targets", "apps", "snapshot", "timestamp"]
    );
    assert_eq!(renewed[0].expires, much_later + day * 10);
    let repo = f.load();
    assert_eq!(repo.targets.signed.version, published.targets_version);
    assert!(f.client_view_at("apps", much_later + day * 5).is_ok());
}

#[test]
fn a_due_delegated_role_without_its_keys_is_refused_with_nothing_written() {
    let f = Fixture::new();
    two_roles(&f);
    let later = now() + chrono::Duration::days(9);
    std::fs::remove_file(f.dirs.keys.join("apps-1.pem")).unwrap();
    let before = f.files();
    let e = publish_at(&f, false, later).unwrap_err();
    assert!(
        matches!(&e, RepoError::BelowThreshold { role, threshold: 1, found: 0, missing, .. } if role == "apps" && missing == &["apps-1.pem"]),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("apps") && msg.contains("apps-1.pem"), "{msg}");
    assert_eq!(f.files(), before);

    // A failure after the role's file was written (no timestamp key) removes it again.
    let repo = f.load();
    let plan = crate::publish::plan_with_delegated(&repo, false, true, later).unwrap();
    let access = crate::key_source::KeyAccess::from_env();
    let tools = plan
        .delegated
        .into_iter()
        .filter(|d| d.role == "tools")
        .map(|d| load_renewal(&repo, &f.dirs.keys, d, &access).unwrap())
        .collect::<Vec<_>>();
    let snapshot =
        crate::keys::load_role(&f.dirs.keys, &repo.config, &repo.root.signed, "snapshot").unwrap();
    let loaded = crate::keys::RoleKeys::from([("snapshot".to_string(), snapshot)]);
    let signers = crate::keys::role_signers(&loaded);
    let needs = crate::publish::Needs {
        snapshot: true,
        timestamp: true,
        ..Default::default()
    };
    let e = publish_with_renewals(
        &repo,
        repo.working_targets(),
        needs,
        &tools,
        &signers,
        later,
    )
    .unwrap_err();
    assert!(
        matches!(&e, RepoError::KeyMissing { role } if role == "timestamp"),
        "{e}"
    );
    assert_eq!(f.files(), before);
}
