mod common;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::*;

fn at(t: DateTime<Utc>) -> String {
    format!("--now={}", t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn status_json(env: &Env, now: DateTime<Utc>) -> (i32, serde_json::Value, String) {
    let o = run([
        "status",
        "--repo",
        env.repo.to_str().unwrap(),
        "--json",
        &at(now),
    ]);
    (code(&o), json(&o), stderr(&o))
}

#[test]
fn publish_does_nothing_when_fresh_and_force_bumps_versions() {
    let env = Env::new();
    env.init(&[]);
    let before = tree(env.tmp.path());
    let mut args = env.repo_args("publish");
    args.push("--json".into());
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["changed"], false);
    assert_eq!(tree(env.tmp.path()), before);

    args.push("--force".into());
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["changed"], true);
    assert_eq!(
        r["signed"],
        serde_json::json!(["targets", "snapshot", "timestamp"])
    );
    let v = verify_repo(&env.repo);
    assert_eq!(
        (v.targets.version, v.snapshot.version, v.timestamp.version),
        (2, 2, 2)
    );
    // The previous versions are still there, untouched (clients may be mid-update).
    for f in ["1.targets.json", "1.snapshot.json", "1.root.json"] {
        assert_eq!(
            before[&std::path::PathBuf::from("repo/metadata").join(f)].1,
            ota_formats::hash::sha256_hex(&std::fs::read(env.md(f)).unwrap()),
            "{f}"
        );
    }
    // Snapshot and timestamp point at the new files (verify_repo checked length and hash).
    assert_eq!(v.snapshot.meta["targets.json"].version, 2);
    assert_eq!(v.timestamp.snapshot_meta().unwrap().version, 2);
}

#[test]
fn publish_resigns_only_what_is_due() {
    let env = Env::new();
    env.init(&[]);
    let now = Utc::now();
    // 20 h later the 1 d timestamp has under a quarter left; the 7 d snapshot does not.
    let mut args = env.repo_args("publish");
    args.extend(["--json".to_string(), at(now + Duration::hours(20))]);
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["signed"], serde_json::json!(["timestamp"]));
    let v = verify_repo(&env.repo);
    assert_eq!(
        (v.targets.version, v.snapshot.version, v.timestamp.version),
        (1, 1, 2)
    );
    let left = v.timestamp.expires - (now + Duration::hours(20));
    assert!(
        left > Duration::hours(23),
        "new timestamp gets a full period"
    );

    // Only the timestamp key is needed for that.
    std::fs::remove_file(env.keys.join("targets-1.pem")).unwrap();
    std::fs::remove_file(env.keys.join("snapshot-1.pem")).unwrap();
    let mut args = env.repo_args("publish");
    args.push(at(now + Duration::hours(40)));
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(verify_repo(&env.repo).timestamp.version, 3);

    // Six days on, the snapshot is due too, and its key is missing: refused, no change.
    let before = tree(env.tmp.path());
    let mut args = env.repo_args("publish");
    args.push(at(now + Duration::days(6)));
    assert_fails(&run(&args), 3, "snapshot");
    assert_eq!(tree(env.tmp.path()), before);
}

#[test]
fn status_reports_expiry_and_warns_with_exit_10() {
    let env = Env::new();
    env.init(&["--threshold", "root=2"]);
    let now = Utc::now();
    let (c, s, err) = status_json(&env, now);
    assert_eq!(c, 0, "{err}");
    assert_eq!(s["warnings"], serde_json::json!([]));
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let r = &s["roles"][role];
        assert_eq!(r["health"], "ok", "{role}");
        assert_eq!(r["version"], 1);
        assert!(r["expires"].is_string());
        assert!(r["keyids"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.as_str().unwrap().len() == 64));
    }
    assert_eq!(s["roles"]["root"]["threshold"], 2);
    assert_eq!(s["roles"]["root"]["keyids"].as_array().unwrap().len(), 2);
    assert_eq!(s["roles"]["timestamp"]["period"], "1d");
    let left = s["roles"]["timestamp"]["seconds_left"].as_i64().unwrap();
    assert!((86_300..=86_400).contains(&left), "{left}");

    // 19 h on: 5 h left of 1 d is under a quarter.
    let (c, s, err) = status_json(&env, now + Duration::hours(19));
    assert_eq!(c, 10, "{err}");
    assert_eq!(s["roles"]["timestamp"]["health"], "expiring");
    assert_eq!(s["roles"]["snapshot"]["health"], "ok");
    assert!(err.contains("warning: timestamp expires in"), "{err}");

    // 8 days on: timestamp and snapshot expired.
    let (c, s, err) = status_json(&env, now + Duration::days(8));
    assert_eq!(c, 10);
    assert_eq!(s["roles"]["timestamp"]["health"], "expired");
    assert_eq!(s["roles"]["snapshot"]["health"], "expired");
    assert!(s["roles"]["timestamp"]["seconds_left"].as_i64().unwrap() < 0);
    assert_eq!(s["warnings"].as_array().unwrap().len(), 2);
    assert!(err.contains("expired"), "{err}");

    // Publishing then clears the warnings.
    let mut args = env.repo_args("publish");
    args.push(at(now + Duration::days(8)));
    assert_eq!(code(&run(&args)), 0);
    let (c, _, err) = status_json(&env, now + Duration::days(8));
    assert_eq!(c, 0, "{err}");

    // Human output lists the roles too.
    let o = run(["status", "--repo", env.repo.to_str().unwrap()]);
    let out = stdout(&o);
    for role in ["root", "targets", "snapshot", "timestamp"] {
        assert!(out.contains(role), "{out}");
    }
}

#[test]
fn status_lists_targets_with_their_metadata() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 20_000, 11);
    assert_eq!(code(&run(env.add_args(&img, "fw", "2.0.0", "a,b"))), 0);
    let (c, s, err) = status_json(&env, Utc::now());
    assert_eq!(c, 0, "{err}");
    let t = &s["targets"][0];
    assert_eq!(t["path"], "fw-2.0.0.img.zst");
    assert_eq!(t["ota"]["version"], "2.0.0");
    assert_eq!(t["ota"]["hardware_ids"], serde_json::json!(["a", "b"]));
}

#[test]
fn help_has_examples_and_exit_codes() {
    for cmd in ["init", "add", "publish", "status"] {
        let o = run([cmd, "--help"]);
        assert_eq!(code(&o), 0);
        let out = stdout(&o);
        assert!(out.contains("Example"), "{cmd}: {out}");
        assert!(out.contains(&format!("ota-sign {cmd}")), "{cmd}: {out}");
    }
    let out = stdout(&run(["--help"]));
    assert!(out.contains("Exit codes") && out.contains("10"), "{out}");
}

#[test]
fn staged_targets_publish_as_one_release() {
    let env = Env::new();
    env.init(&[]);
    let a = env.image("a.img", 30_000, 21);
    let b = env.image("b.img", 30_000, 22);
    let stage = |file: &std::path::Path, name: &str, version: &str| {
        run([
            "add",
            "--repo",
            env.repo.to_str().unwrap(),
            "--no-publish",
            file.to_str().unwrap(),
            "--name",
            name,
            "--version",
            version,
            "--hardware",
            "hw",
            "--json",
        ])
    };
    let o = stage(&a, "app", "1.0.0");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["staged"], true);
    let o = stage(&b, "modem", "3.0.0");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Nothing is published yet: clients still see the empty release.
    let v = verify_repo(&env.repo);
    assert_eq!((v.targets.version, v.timestamp.version), (1, 1));
    assert!(v.targets.targets.is_empty());
    let (c, s, err) = status_json(&env, Utc::now());
    assert_eq!(c, 0, "{err}");
    assert_eq!(
        s["staged"],
        serde_json::json!(["app-1.0.0.img.zst", "modem-3.0.0.img.zst"])
    );
    // Staged versions count for the version policy.
    let before = tree(env.tmp.path());
    assert_fails(&stage(&a, "app", "0.9.0"), 5, "not newer");
    assert_eq!(tree(env.tmp.path()), before);

    let o = run(env.repo_args("publish"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = verify_repo(&env.repo);
    assert_eq!(
        (v.targets.version, v.snapshot.version, v.timestamp.version),
        (2, 2, 2)
    );
    assert_eq!(v.targets.targets.len(), 2);
    assert!(!env.repo.join("ota-staged.json").exists());
    let (_, s, _) = status_json(&env, Utc::now());
    assert_eq!(s["staged"], serde_json::json!([]));
}

#[test]
fn one_writer_at_a_time() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 23);
    let lock = env.repo.join(".ota-sign.lock");
    // A live owner (this test process) holds the OS lock: refused, nothing changes.
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let held = std::fs::File::open(&lock).unwrap();
    held.try_lock().unwrap();
    let before = tree(env.tmp.path());
    assert_fails(
        &run(env.add_args(&img, "fw", "1.0.0", "hw")),
        4,
        "another ota-sign",
    );
    let mut force = env.repo_args("publish");
    force.push("--force".into());
    assert_fails(&run(&force), 4, "another ota-sign");
    assert_eq!(tree(env.tmp.path()), before);
    // Once the owner is gone (the kernel drops its lock), the file it left is no lock: the
    // next writer takes it, and removes it at the end.
    drop(held);
    std::fs::write(&lock, "4194305\n").unwrap();
    let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!lock.exists());
}

#[test]
fn publish_root_extends_root_with_a_new_version() {
    let env = Env::new();
    env.init(&["--root-expiry", "8w"]);
    let now = Utc::now();
    let old_root = std::fs::read(env.md("1.root.json")).unwrap();
    // Seven weeks on, root has under a quarter of its period left: status and publish say so.
    let later = now + Duration::weeks(7);
    let (c, s, err) = status_json(&env, later);
    assert_eq!(c, 10, "{err}");
    assert_eq!(s["roles"]["root"]["health"], "expiring");
    assert!(err.contains("publish --root"), "{err}");
    let mut args = env.repo_args("publish");
    args.push(at(later));
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("publish --root"), "{}", stderr(&o));
    assert_eq!(verify_repo(&env.repo).root.version, 1);

    // Without the root key: refused, nothing changes.
    let root_key = std::fs::read(env.keys.join("root-1.pem")).unwrap();
    std::fs::remove_file(env.keys.join("root-1.pem")).unwrap();
    args.push("--root".into());
    let before = tree(env.tmp.path());
    assert_fails(&run(&args), 3, "root");
    assert_eq!(tree(env.tmp.path()), before);

    std::fs::write(env.keys.join("root-1.pem"), root_key).unwrap();
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = verify_repo(&env.repo);
    assert_eq!(v.root.version, 2);
    assert!(v.root.expires > later + Duration::weeks(7));
    assert_eq!(std::fs::read(env.md("1.root.json")).unwrap(), old_root);
    assert_eq!(
        std::fs::read(env.md("2.root.json")).unwrap(),
        std::fs::read(env.md("root.json")).unwrap()
    );
    // A client holding root v1 accepts v2: signed by v1's root keys.
    let old: ota_formats::metadata::Root = raw(&env.md("1.root.json")).parse().unwrap();
    let rk = old.role("root").unwrap();
    raw(&env.md("2.root.json"))
        .verify("root", &old, &rk.keyids, rk.threshold)
        .unwrap();
    let (c, _, err) = status_json(&env, later);
    assert_eq!(c, 0, "{err}");
}

#[test]
fn verbose_logs_go_to_stderr() {
    let env = Env::new();
    env.init(&[]);
    let o = run([
        "-v",
        "status",
        "--repo",
        env.repo.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("DEBUG"), "{}", stderr(&o));
    json(&o); // stdout stays pure JSON
    let o = run(["status", "--repo", env.repo.to_str().unwrap()]);
    assert!(!stderr(&o).contains("DEBUG"));
}
