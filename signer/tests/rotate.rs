//! `ota-sign rotate` on the command line: rotations publish one new root and what it requires,
//! bad input is refused with its exit code (and the JSON error object) and changes nothing,
//! and `--stage` writes the new root unsigned.
mod common;

use common::*;
use std::path::Path;

fn rotate_args(env: &Env, extra: &[&str]) -> Vec<String> {
    let mut args = env.repo_args("rotate");
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The key ids of `role` in the current root.
fn keyids(env: &Env, role: &str) -> Vec<String> {
    let o = run(["status", "--repo", env.repo.to_str().unwrap(), "--json"]);
    json(&o)["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// A fingerprint of a directory tree ([`tree`]).
type Fingerprint = Vec<(std::path::PathBuf, (u32, String))>;

/// The repository and the key directory, to prove a refused command changed nothing.
fn state(env: &Env) -> (Fingerprint, Fingerprint) {
    (
        tree(&env.repo).into_iter().collect(),
        tree(&env.keys).into_iter().collect(),
    )
}

#[test]
fn a_targets_rotation_publishes_a_new_root_and_the_next_release_signs_with_the_new_key() {
    let env = Env::new();
    env.init(&[]);
    let old = keyids(&env, "targets");
    let o = run(rotate_args(
        &env,
        &[
            "--role",
            "targets",
            "--generate",
            "--key-type",
            "ecdsa-p256",
            "--remove-key",
            &old[0][..12],
            "--json",
        ],
    ));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["root_version"], 2);
    assert_eq!(
        v["published"]["signed"],
        serde_json::json!(["root", "targets", "snapshot", "timestamp"])
    );
    let change = &v["changes"][0];
    assert_eq!(change["role"], "targets");
    assert_eq!(change["removed"], serde_json::json!([old[0]]));
    assert_eq!(change["added"][0]["keytype"], "ecdsa");
    assert_eq!(change["added"][0]["file"], "targets-2.pem");
    let retired = env.keys.join("targets-1.pem");
    assert_eq!(v["retired_files"][0], retired.to_str().unwrap());
    assert_eq!(
        keyids(&env, "targets"),
        [change["added"][0]["keyid"].as_str().unwrap()]
    );
    let verified = verify_repo(&env.repo);
    assert_eq!(verified.root.version, 2);

    // The next release is signed with the new (P-256) key, and the repository verifies.
    let img = env.image("fw.img", 20_000, 3);
    let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let targets = raw(&env.md(&format!(
        "{}.targets.json",
        verify_repo(&env.repo).targets.version
    )));
    assert_eq!(targets.signatures.len(), 1);
    assert_eq!(targets.signatures[0].keyid, keyids(&env, "targets")[0]);

    // The human form says what changed and what to destroy.
    let o = run(rotate_args(&env, &["--role", "snapshot", "--generate"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("snapshot: threshold 1 of 2 key(s)"), "{out}");
    assert!(out.contains("published root v3"), "{out}");
}

#[test]
fn bad_input_is_refused_with_its_exit_code_and_changes_nothing() {
    let env = Env::new();
    env.init(&["--threshold", "root=2"]);
    let targets = keyids(&env, "targets");
    let snapshot = keyids(&env, "snapshot");
    let junk = env.tmp.path().join("junk.pub");
    std::fs::write(&junk, "not a key\n").unwrap();
    let private = env.keys.join("targets-1.pem");
    let junk = junk.to_str().unwrap().to_string();
    let private = private.to_str().unwrap().to_string();
    let before = state(&env);
    let cases: Vec<(Vec<&str>, i32, &str, &str)> = vec![
        (
            vec!["--role", "delegate-x", "--generate"],
            2,
            "input",
            "not a role",
        ),
        (vec!["--role", "targets"], 2, "input", "nothing to rotate"),
        (
            vec!["--role", "targets", "--remove-key", "deadbeefdeadbeef"],
            2,
            "input",
            "is not a key of role targets",
        ),
        (
            vec!["--role", "targets", "--remove-key", &snapshot[0]],
            2,
            "input",
            "is a key of role snapshot",
        ),
        (
            vec!["--role", "targets", "--remove-key", &targets[0]],
            2,
            "input",
            "would leave role targets with no keys",
        ),
        (
            vec!["--role", "targets", "--threshold", "0"],
            2,
            "input",
            "threshold of 0",
        ),
        (
            vec!["--role", "root", "--threshold", "3"],
            2,
            "input",
            "threshold 3 of role root is above its 2 key(s)",
        ),
        (
            vec!["--role", "targets", "--add-key", &junk],
            2,
            "input",
            "junk.pub",
        ),
        (
            vec!["--role", "targets", "--add-key", &private],
            2,
            "input",
            "holds a private key",
        ),
        (
            vec!["--role", "targets", "--generate", "--expires", "1y"],
            2,
            "input",
            "invalid --expires",
        ),
        (
            vec!["--role", "targets", "--generate", "--key-type", "rsa"],
            2,
            "input",
            "invalid --key-type",
        ),
    ];
    for (args, exit, kind, needle) in &cases {
        let o = run(rotate_args(&env, args));
        assert_fails(&o, *exit, needle);
        let mut with_json = rotate_args(&env, args);
        with_json.push("--json".into());
        let o = run(with_json);
        assert_eq!(code(&o), *exit, "{args:?}: {}", stderr(&o));
        assert_eq!(json(&o)["error"]["kind"], *kind, "{args:?}");
        assert_eq!(state(&env), before, "{args:?} changed something");
    }

    // Root threshold 2 with one of its two keys away: the current root's threshold cannot be
    // met. Exit 3, naming the missing file; the hint offers --stage.
    let away = env.tmp.path().join("root-2.pem");
    std::fs::rename(env.keys.join("root-2.pem"), &away).unwrap();
    let before = state(&env);
    let o = run(rotate_args(&env, &["--role", "targets", "--generate"]));
    assert_fails(
        &o,
        3,
        "root v2 needs 2 signature(s) by root keys of the current root v1; 1 found",
    );
    assert!(
        stderr(&o).contains("root-2.pem") && stderr(&o).contains("--stage"),
        "{}",
        stderr(&o)
    );
    assert_eq!(state(&env), before, "no key generated, nothing published");
    std::fs::rename(&away, env.keys.join("root-2.pem")).unwrap();
}

#[test]
fn stage_writes_the_new_root_unsigned_and_blocks_a_second_rotation() {
    let env = Env::new();
    env.init(&[]);
    let root = keyids(&env, "root");
    let o = run(rotate_args(
        &env,
        &[
            "--role",
            "root",
            "--generate",
            "--remove-key",
            &root[0],
            "--stage",
            "--json",
        ],
    ));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let staged = env.repo.join("ota-staged-root.json");
    assert_eq!(v["staged"], staged.to_str().unwrap());
    assert!(v.get("published").is_none(), "{v}");
    let signed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&staged).unwrap()).unwrap();
    assert_eq!(signed["_type"], "root");
    assert_eq!(signed["version"], 2);
    assert!(signed.get("signatures").is_none(), "the signed part only");
    assert!(!env.md("2.root.json").exists(), "nothing published");
    assert!(
        env.keys.join("root-2.pem").exists(),
        "the generated key is kept for the ceremony"
    );
    assert_eq!(keyids(&env, "root"), root);

    let o = run(rotate_args(&env, &["--role", "targets", "--generate"]));
    assert_fails(&o, 4, "already staged");
}

#[test]
fn init_makes_p256_role_keys_with_key_type() {
    let env = Env::new();
    env.init(&["--key-type", "ecdsa-p256", "--threshold", "root=2"]);
    let verified = verify_repo(&env.repo);
    assert_eq!(verified.root.keys.len(), 5);
    for key in verified.root.keys.values() {
        assert_eq!(key.scheme, "ecdsa-sha2-nistp256");
    }
    let img = env.image("fw.img", 10_000, 1);
    assert_eq!(code(&run(env.add_args(&img, "fw", "1.0.0", "hw"))), 0);
    let env = Env::new();
    let mut args = env.repo_args("init");
    args.extend(["--key-type".to_string(), "dsa".to_string()]);
    assert_fails(&run(args), 2, "invalid --key-type");
    assert!(!env.repo.exists() && !env.keys.exists());
}

#[test]
fn help_has_examples_and_exit_codes() {
    let o = run(["rotate", "--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    for needle in [
        "Examples:",
        "--stage",
        "Exit codes:",
        "Delegated roles",
        "RECOVERY.md",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("RECOVERY.md")
        .exists());
}
