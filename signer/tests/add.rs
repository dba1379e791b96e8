mod common;

use common::*;
use ota_formats::target_meta::{Compression, OtaTarget};
use std::io::Read;

#[test]
fn add_publishes_a_compressed_target_with_signed_custom_metadata() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 3 * 1024 * 1024 + 17, 1);
    let image = std::fs::read(&img).unwrap();
    let mut args = env.add_args(&img, "gateway-fw", "1.2.0", "board-a,board-b,board-a");
    args.push("--json".into());
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report = json(&o);
    assert_eq!(report["target"], "gateway-fw-1.2.0.img.zst");
    assert_eq!(report["published"]["targets_version"], 2);

    let v = verify_repo(&env.repo);
    assert_eq!(
        (v.targets.version, v.snapshot.version, v.timestamp.version),
        (2, 2, 2)
    );
    let t = &v.targets.targets["gateway-fw-1.2.0.img.zst"];
    let sha = t.sha256().unwrap();
    let file = env
        .repo
        .join("targets")
        .join(format!("{sha}.gateway-fw-1.2.0.img.zst"));
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.len() as u64, t.length);
    ota_formats::hash::verify_bytes(&bytes, &t.hashes, t.length).unwrap();
    assert!(
        bytes.len() < image.len(),
        "compressible image should shrink"
    );

    let ota = OtaTarget::from_custom(t.custom.as_ref()).unwrap().unwrap();
    assert_eq!(ota.name, "gateway-fw");
    assert_eq!(ota.version, "1.2.0");
    assert_eq!(ota.hardware_ids, ["board-a", "board-b"]);
    assert_eq!(ota.compression, Compression::Zstd);
    assert_eq!(ota.image.length, image.len() as u64);
    assert_eq!(ota.image.sha256, ota_formats::hash::sha256_hex(&image));

    // Decompressing with an 8 MiB window limit gives the image back.
    let mut dec = zstd::stream::read::Decoder::new(&bytes[..]).unwrap();
    dec.window_log_max(23).unwrap();
    let mut out = Vec::new();
    dec.read_to_end(&mut out).unwrap();
    assert_eq!(out, image);

    // No temp files left anywhere.
    for (p, _) in tree(&env.repo) {
        assert!(!p.to_string_lossy().contains(".ota-tmp-"), "{p:?}");
    }
}

#[test]
fn the_window_stays_within_8_mib_for_large_images() {
    let env = Env::new();
    // A fast level keeps the test quick; the window cap must hold whatever the level.
    env.init(&["--zstd-level", "3"]);
    let img = env.image("big.img", 20 * 1024 * 1024, 9);
    let o = run(env.add_args(&img, "big", "1.0.0", "hw"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = verify_repo(&env.repo);
    let t = &v.targets.targets["big-1.0.0.img.zst"];
    let file = env
        .repo
        .join("targets")
        .join(format!("{}.big-1.0.0.img.zst", t.sha256().unwrap()));
    let bytes = std::fs::read(file).unwrap();
    let mut dec = zstd::stream::read::Decoder::new(&bytes[..]).unwrap();
    dec.window_log_max(23).unwrap();
    let mut out = Vec::new();
    dec.read_to_end(&mut out)
        .expect("decodes with a decoder limited to an 8 MiB window");
    assert_eq!(out.len(), 20 * 1024 * 1024);
}

#[test]
fn versions_must_grow_unless_downgrade_is_allowed() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 100_000, 2);
    assert_eq!(code(&run(env.add_args(&img, "fw", "1.2.0", "hw"))), 0);

    for older in ["1.2.0", "1.1.9", "1.2.0-rc.1", "1.2.0+build.7", "0.9.0"] {
        let other = env.image("fw2.img", 100_000, 3);
        let before = tree(env.tmp.path());
        let o = run(env.add_args(&other, "fw", older, "hw"));
        assert_fails(&o, 5, "not newer");
        assert_eq!(tree(env.tmp.path()), before, "{older}: nothing may change");
    }

    // Another image name has its own version line.
    let other = env.image("other.img", 50_000, 4);
    assert_eq!(
        code(&run(env.add_args(&other, "other-fw", "0.1.0", "hw"))),
        0
    );

    let mut args = env.add_args(&img, "fw", "1.1.9", "hw");
    args.push("--allow-downgrade".into());
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = verify_repo(&env.repo);
    assert!(v.targets.targets.contains_key("fw-1.1.9.img.zst"));
    assert!(v.targets.targets.contains_key("fw-1.2.0.img.zst"));
    assert_eq!(v.targets.version, 4);

    assert_eq!(
        code(&run(env.add_args(&img, "fw", "1.3.0-beta.1", "hw"))),
        0
    );
}

#[test]
fn bad_input_is_refused_with_its_exit_code_and_no_change() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 5);
    let missing = env.tmp.path().join("missing.img");
    let empty = env.tmp.path().join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            env.add_args(&missing, "fw", "1.0.0", "hw"),
            2,
            "missing.img",
        ),
        (
            env.add_args(env.tmp.path(), "fw", "1.0.0", "hw"),
            2,
            "not a regular file",
        ),
        (env.add_args(&empty, "fw", "1.0.0", "hw"), 2, "empty"),
        (env.add_args(&img, "fw", "1.0", "hw"), 2, "invalid version"),
        (
            env.add_args(&img, "fw", "v1.0.0", "hw"),
            2,
            "invalid version",
        ),
        (
            env.add_args(&img, "fw", "1.0.0", "board a"),
            2,
            "hardware id",
        ),
        (env.add_args(&img, "fw", "1.0.0", "a,,b"), 2, "hardware id"),
        (env.add_args(&img, "fw/x", "1.0.0", "hw"), 2, "image name"),
        (env.add_args(&img, "../fw", "1.0.0", "hw"), 2, "image name"),
    ];
    let before = tree(env.tmp.path());
    for (args, exit, needle) in cases {
        let o = run(&args);
        assert_fails(&o, exit, needle);
        assert_eq!(tree(env.tmp.path()), before, "{args:?} changed the disk");
    }
}

#[test]
fn key_problems_are_refused_with_exit_3_and_no_change() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 6);

    // Keys directory that does not exist.
    let mut args = env.add_args(&img, "fw", "1.0.0", "hw");
    args[4] = env.tmp.path().join("nokeys").display().to_string();
    let before = tree(env.tmp.path());
    assert_fails(&run(&args), 3, "does not exist");
    assert_eq!(tree(env.tmp.path()), before);

    // A missing key file.
    let saved = std::fs::read(env.keys.join("snapshot-1.pem")).unwrap();
    std::fs::remove_file(env.keys.join("snapshot-1.pem")).unwrap();
    let before = tree(env.tmp.path());
    assert_fails(&run(env.add_args(&img, "fw", "1.0.0", "hw")), 3, "snapshot");
    assert_eq!(tree(env.tmp.path()), before);
    std::fs::write(env.keys.join("snapshot-1.pem"), &saved).unwrap();

    // An unreadable (corrupt) key file.
    let saved = std::fs::read(env.keys.join("targets-1.pem")).unwrap();
    std::fs::write(
        env.keys.join("targets-1.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    )
    .unwrap();
    let before = tree(env.tmp.path());
    assert_fails(
        &run(env.add_args(&img, "fw", "1.0.0", "hw")),
        3,
        "targets-1.pem",
    );
    assert_eq!(tree(env.tmp.path()), before);

    // A key of the wrong role: the timestamp key in the targets key's place.
    let ts = std::fs::read(env.keys.join("timestamp-1.pem")).unwrap();
    std::fs::write(env.keys.join("targets-1.pem"), &ts).unwrap();
    let before = tree(env.tmp.path());
    assert_fails(
        &run(env.add_args(&img, "fw", "1.0.0", "hw")),
        3,
        "is not a targets key",
    );
    assert_eq!(tree(env.tmp.path()), before);

    // A key of another repository.
    let other = Env::new();
    other.init(&[]);
    let foreign = std::fs::read(other.keys.join("targets-1.pem")).unwrap();
    std::fs::write(env.keys.join("targets-1.pem"), foreign).unwrap();
    let before = tree(env.tmp.path());
    assert_fails(
        &run(env.add_args(&img, "fw", "1.0.0", "hw")),
        3,
        "is not a targets key",
    );
    assert_eq!(tree(env.tmp.path()), before);

    // Keys inside the repository directory are refused outright.
    std::fs::write(env.keys.join("targets-1.pem"), &saved).unwrap();
    let inside = env.repo.join("keys");
    let mut args = env.add_args(&img, "fw", "1.0.0", "hw");
    args[4] = inside.display().to_string();
    let before = tree(env.tmp.path());
    assert_fails(&run(&args), 3, "inside the repository");
    assert_eq!(tree(env.tmp.path()), before);

    // With the right keys back, it works.
    assert_eq!(code(&run(env.add_args(&img, "fw", "1.0.0", "hw"))), 0);
}

#[test]
fn corrupt_repositories_are_refused_with_exit_4_and_no_change() {
    let img_env = Env::new();
    let img = img_env.image("fw.img", 10_000, 7);
    type Damage = fn(&Env);
    let damages: Vec<(&str, Damage, &str)> = vec![
        (
            "no repo",
            |e| std::fs::remove_dir_all(&e.repo).unwrap(),
            "does not exist",
        ),
        (
            "no config",
            |e| std::fs::remove_file(e.repo.join("ota-repo.json")).unwrap(),
            "not an ota-sign repository",
        ),
        (
            "bad config",
            |e| std::fs::write(e.repo.join("ota-repo.json"), "{").unwrap(),
            "ota-repo.json",
        ),
        (
            "truncated timestamp",
            |e| {
                let p = e.md("timestamp.json");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
            "timestamp.json",
        ),
        (
            "tampered targets",
            |e| {
                let p = e.md("1.targets.json");
                let s = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("\"version\": 1", "\"version\": 1 ");
                std::fs::write(&p, s).unwrap();
            },
            "1.targets.json",
        ),
        (
            "key file outside the keys directory",
            |e| {
                let p = e.repo.join("ota-repo.json");
                let c = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("\"targets-1.pem\"", "\"../keys/targets-1.pem\"");
                std::fs::write(&p, c).unwrap();
            },
            "not a plain file name",
        ),
        (
            "missing snapshot",
            |e| std::fs::remove_file(e.md("1.snapshot.json")).unwrap(),
            "1.snapshot.json",
        ),
        (
            "root differs",
            |e| std::fs::write(e.md("1.root.json"), "{}").unwrap(),
            "root",
        ),
        (
            "forged timestamp signature",
            |e| {
                let p = e.md("timestamp.json");
                let s = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("\"version\": 1,", "\"version\": 7,");
                std::fs::write(&p, s).unwrap();
            },
            "signature",
        ),
    ];
    for (what, damage, needle) in damages {
        let env = Env::new();
        env.init(&[]);
        damage(&env);
        let before = tree(env.tmp.path());
        let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
        assert_fails(&o, 4, needle);
        assert_eq!(tree(env.tmp.path()), before, "{what}: nothing may change");
        let o = run(env.repo_args("publish"));
        assert_eq!(code(&o), 4, "{what}: publish: {}", stderr(&o));
        let o = run(["status", "--repo", env.repo.to_str().unwrap()]);
        assert_eq!(code(&o), 4, "{what}: status: {}", stderr(&o));
        assert_eq!(tree(env.tmp.path()), before, "{what}: nothing may change");
    }
}

#[test]
fn a_missing_target_file_is_a_corrupt_repository() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 8);
    assert_eq!(code(&run(env.add_args(&img, "fw", "1.0.0", "hw"))), 0);
    for e in std::fs::read_dir(env.repo.join("targets")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let o = run(["status", "--repo", env.repo.to_str().unwrap()]);
    assert_fails(&o, 4, "target file");
}

#[test]
fn interrupted_runs_leave_no_trap() {
    // Simulate a crash after the versioned files of a run were written but before the
    // timestamp was replaced: the next run must skip the stale versions, not overwrite them.
    let env = Env::new();
    env.init(&[]);
    let stale = b"{\"stale\": true}\n";
    std::fs::write(env.md("2.targets.json"), stale).unwrap();
    std::fs::write(env.md("2.snapshot.json"), stale).unwrap();
    let img = env.image("fw.img", 10_000, 10);
    let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(env.md("2.targets.json")).unwrap(), stale);
    let v = verify_repo(&env.repo);
    assert_eq!(
        (v.targets.version, v.snapshot.version, v.timestamp.version),
        (3, 3, 2)
    );
}

#[test]
fn a_killed_add_leaves_the_previous_release_intact() {
    let env = Env::new();
    env.init(&[]);
    let first = env.image("first.img", 10_000, 30);
    assert_eq!(code(&run(env.add_args(&first, "fw", "1.0.0", "hw"))), 0);
    let published = tree(&env.repo.join("metadata"));
    // Level 19 on 24 MiB takes seconds: kill it mid-compression.
    let img = env.image("big.img", 24 * 1024 * 1024, 31);
    let mut child = std::process::Command::new(BIN)
        .args(env.add_args(&img, "fw", "2.0.0", "hw"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = env.repo.join(".ota-sign.lock");
    let tmp_seen = || {
        std::fs::read_dir(env.repo.join("targets"))
            .unwrap()
            .any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".ota-tmp-")
            })
    };
    let start = std::time::Instant::now();
    while !(lock.exists() && tmp_seen()) && start.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(tmp_seen(), "compression should have started");
    child.kill().unwrap();
    child.wait().unwrap();

    // Clients still get the previous release, complete and verified.
    assert_eq!(tree(&env.repo.join("metadata")), published);
    let v = verify_repo(&env.repo);
    assert_eq!(v.targets.targets.len(), 1);
    // The next run takes over the stale lock, removes the temp file, and publishes.
    let small = env.image("small.img", 10_000, 32);
    let o = run(env.add_args(&small, "fw", "2.0.0", "hw"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!tmp_seen());
    assert!(!lock.exists());
    assert_eq!(verify_repo(&env.repo).targets.targets.len(), 2);
}
