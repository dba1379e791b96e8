mod common;

use common::*;
use ota_formats::crypto::{Ed25519Signer, Signer};
use std::path::Path;

#[test]
fn init_writes_a_signed_repository_and_private_keys() {
    let env = Env::new();
    let o = run([
        "init",
        "--repo",
        env.repo.to_str().unwrap(),
        "--keys",
        env.keys.to_str().unwrap(),
        "--threshold",
        "root=2",
        "--threshold",
        "targets=3",
        "--timestamp-expiry",
        "12h",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report = json(&o);
    assert_eq!(report["roles"]["root"]["threshold"], 2);
    assert_eq!(
        report["roles"]["targets"]["key_files"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    for f in [
        "1.root.json",
        "root.json",
        "1.targets.json",
        "1.snapshot.json",
        "timestamp.json",
    ] {
        assert!(env.md(f).is_file(), "{f} missing");
    }
    assert!(env.repo.join("targets").is_dir());
    assert!(env.repo.join("ota-repo.json").is_file());
    assert_eq!(
        std::fs::read(env.md("1.root.json")).unwrap(),
        std::fs::read(env.md("root.json")).unwrap()
    );

    // Keys: 0700 directory, 0600 files, N per role, all loadable.
    assert_eq!(mode(&env.keys), 0o700);
    let mut files: Vec<String> = std::fs::read_dir(&env.keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "root-1.pem",
            "root-2.pem",
            "snapshot-1.pem",
            "targets-1.pem",
            "targets-2.pem",
            "targets-3.pem",
            "timestamp-1.pem"
        ]
    );
    for f in &files {
        let p = env.keys.join(f);
        assert_eq!(mode(&p), 0o600, "{f}");
        Ed25519Signer::from_pkcs8_pem(&std::fs::read_to_string(&p).unwrap()).unwrap();
    }

    // Metadata verifies as a client would, with the asked thresholds.
    let v = verify_repo(&env.repo);
    assert_eq!(v.root.role("root").unwrap().threshold, 2);
    assert_eq!(v.root.role("root").unwrap().keyids.len(), 2);
    assert_eq!(v.root.role("targets").unwrap().threshold, 3);
    assert_eq!(v.root.role("snapshot").unwrap().threshold, 1);
    assert!(v.root.consistent());
    assert_eq!(v.timestamp.version, 1);
    assert_eq!(v.snapshot.version, 1);
    assert!(v.targets.targets.is_empty());
    let left = v.timestamp.expires - chrono::Utc::now();
    assert!(left <= chrono::Duration::hours(12) && left > chrono::Duration::hours(11));

    // Root signed by exactly the root keys: one root signature missing breaks the threshold.
    let mut raw = raw(&env.md("root.json"));
    raw.signatures.pop();
    let rk = v.root.role("root").unwrap();
    assert!(raw
        .verify("root", &v.root, &rk.keyids, rk.threshold)
        .is_err());

    // The config names key files and never holds key material.
    let cfg = std::fs::read_to_string(env.repo.join("ota-repo.json")).unwrap();
    assert!(cfg.contains("root-1.pem") && !cfg.contains("PRIVATE KEY"));
    assert!(cfg.contains("\"timestamp\": \"12h\""), "{cfg}");

    // Status loads it.
    let o = run(["status", "--repo", env.repo.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn init_refuses_an_existing_repository_and_changes_nothing() {
    let env = Env::new();
    env.init(&[]);
    let before = tree(env.tmp.path());
    let o = run(env.repo_args("init"));
    assert_fails(&o, 4, "already exists");
    assert_eq!(tree(env.tmp.path()), before);

    // A non-empty directory that is not a repository is refused too.
    let other = env.tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "x").unwrap();
    let before = tree(env.tmp.path());
    let o = run([
        "init",
        "--repo",
        other.to_str().unwrap(),
        "--keys",
        env.tmp.path().join("k2").to_str().unwrap(),
    ]);
    assert_fails(&o, 2, "not an empty directory");
    assert_eq!(tree(env.tmp.path()), before);
}

#[test]
fn init_accepts_an_existing_empty_directory() {
    let env = Env::new();
    std::fs::create_dir(&env.repo).unwrap();
    env.init(&[]);
    verify_repo(&env.repo);
}

#[test]
fn init_refuses_keys_inside_the_repository() {
    let env = Env::new();
    for keys in [
        env.repo.join("keys"),
        env.repo.clone(),
        env.repo.join("a/../k"),
    ] {
        let o = run([
            "init",
            "--repo",
            env.repo.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ]);
        assert_fails(&o, 3, "inside the repository");
        assert!(tree(env.tmp.path()).is_empty(), "nothing may be created");
    }
}

#[test]
fn init_rejects_bad_policy_flags_without_writing() {
    let env = Env::new();
    for (flag, val, needle) in [
        ("--threshold", "root=0", "threshold"),
        ("--threshold", "admin=2", "threshold"),
        ("--threshold", "root", "threshold"),
        ("--targets-expiry", "90", "expiry period"),
        ("--root-expiry", "0d", "expiry period"),
        ("--snapshot-expiry", "1y", "expiry period"),
    ] {
        let mut args = env.repo_args("init");
        args.extend([flag.to_string(), val.to_string()]);
        let o = run(&args);
        assert_fails(&o, 2, needle);
        assert!(
            tree(env.tmp.path()).is_empty(),
            "{flag} {val}: nothing may be created"
        );
    }
}

fn key_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = ["root-1", "targets-1", "snapshot-1", "timestamp-1"]
        .iter()
        .map(|f| {
            let pem = std::fs::read_to_string(dir.join(format!("{f}.pem"))).unwrap();
            Ed25519Signer::from_pkcs8_pem(&pem)
                .unwrap()
                .key_id()
                .unwrap()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn init_reuses_existing_keys_and_generates_missing_ones() {
    let env = Env::new();
    env.init(&[]);
    let ids = key_ids(&env.keys);
    let keys_before = tree(&env.keys);

    let repo2 = env.tmp.path().join("repo2");
    let o = run([
        "init",
        "--repo",
        repo2.to_str().unwrap(),
        "--keys",
        env.keys.to_str().unwrap(),
        "--threshold",
        "root=2",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report = json(&o);
    assert_eq!(
        report["roles"]["root"]["reused"],
        serde_json::json!(["root-1.pem"])
    );
    assert_eq!(
        report["roles"]["targets"]["reused"],
        serde_json::json!(["targets-1.pem"])
    );
    // Existing keys untouched, one new root key.
    let keys_after = tree(&env.keys);
    for (k, v) in &keys_before {
        assert_eq!(keys_after.get(k), Some(v), "{k:?} changed");
    }
    assert_eq!(mode(&env.keys.join("root-2.pem")), 0o600);
    let v = verify_repo(&repo2);
    let mut listed: Vec<String> = v.root.keys.keys().cloned().collect();
    listed.sort();
    for id in &ids {
        assert!(listed.contains(id));
    }
    assert_eq!(listed.len(), 5);
}

#[test]
fn init_with_the_public_example_keys() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys-example");
    let before = tree(&example);
    let env = Env::new();
    let o = run([
        "init",
        "--repo",
        env.repo.to_str().unwrap(),
        "--keys",
        example.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(tree(&example), before, "keys-example must not change");
    let v = verify_repo(&env.repo);
    let ids = key_ids(&example);
    let mut listed: Vec<String> = v.root.keys.keys().cloned().collect();
    listed.sort();
    assert_eq!(listed, ids);
    assert!(std::fs::read_to_string(example.join("README.md"))
        .unwrap()
        .contains("INSECURE"));
}

#[test]
fn init_refuses_an_unusable_existing_key_file() {
    let env = Env::new();
    std::fs::create_dir(&env.keys).unwrap();
    std::fs::write(env.keys.join("targets-1.pem"), "not a key").unwrap();
    let before = tree(env.tmp.path());
    let o = run(env.repo_args("init"));
    assert_fails(&o, 3, "targets-1.pem");
    assert_eq!(tree(env.tmp.path()), before);
}

#[test]
fn init_refuses_one_key_for_two_roles() {
    let env = Env::new();
    std::fs::create_dir(&env.keys).unwrap();
    let pem = Ed25519Signer::generate().to_pkcs8_pem().unwrap();
    std::fs::write(env.keys.join("targets-1.pem"), &pem).unwrap();
    std::fs::write(env.keys.join("snapshot-1.pem"), &pem).unwrap();
    let before = tree(env.tmp.path());
    let o = run(env.repo_args("init"));
    assert_fails(&o, 3, "already used");
    assert_eq!(tree(env.tmp.path()), before);
}
