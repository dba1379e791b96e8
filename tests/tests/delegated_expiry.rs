//! A delegated role's expiry end to end, on a fake clock (`ota-sign --now`, `ota-client` under
//! `faketime`), with the real `ota-sign`, `ota-server` and `ota-client`:
//!
//! - role `fw` (a 10-day period) lists release gw 1.0.0; 8 days on it is inside its warning
//!   window: `ota-sign status` lists it like a top-level role and warns (exit 10), and so does
//!   every other command; a `publish` without its key file is refused (exit 3, naming it) and
//!   writes nothing; `export` refuses a copy once it has expired;
//! - without a publish, a device whose clock is past fw's expiry refuses every update (the
//!   top-level release it runs is kept); after `ota-sign publish` (fw's next version, a fresh
//!   expiry, the snapshot listing it, the timestamp last, no versioned file replaced) the same
//!   device installs gw 1.0.0 from the delegation;
//! - `ota-sign export` of releases listed by fw (a full image, a patch, an encrypted image with
//!   its key slip) installs from the stick on a device with no network.
use chrono::{DateTime, Duration, TimeZone, Utc};
use ota_tests::cli::{run, tree, Run};
use ota_tests::keyroll::{Device, Repo};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};

/// Nothing listens here: a device configured with it has no network.
const NO_SERVER: &str = "http://127.0.0.1:1";

/// 40 kB of pseudo-random bytes seeded by `tag` (incompressible: a patch between two
/// releases is far smaller than either).
fn image(tag: &str) -> Vec<u8> {
    let mut x = tag.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..40_000)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as u8
        })
        .collect()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 0).unwrap()
}

fn day(n: i64) -> DateTime<Utc> {
    start() + Duration::days(n)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ota-sign add --role fw` of `data` as gw `version`, with `extra` arguments.
fn release_in_fw(repo: &Repo, version: &str, data: &[u8], extra: &[&str]) -> serde_json::Value {
    let file = repo.repo.with_file_name(format!("fw-{version}.img"));
    std::fs::write(&file, data).unwrap();
    let mut args = vec![
        "add",
        s(&file),
        "--name",
        "gw",
        "--version",
        version,
        "--hardware",
        "board-a",
        "--role",
        "fw",
        "--json",
    ];
    args.extend(extra);
    repo.ok(&args).json()
}

/// `ota-sign export --repo REPO --to TO ARGS --json --now=AT`.
fn export(repo: &Repo, to: &Path, at: DateTime<Utc>, extra: &[&str]) -> Run {
    let now = format!("--now={}", at.to_rfc3339());
    let mut args = vec!["export", "--repo", s(&repo.repo), "--to", s(to), "--json"];
    args.extend(extra);
    args.push(&now);
    run("ota-sign", &args)
}

/// `ota-client update --from STICK` (no network, no report) of `dev`.
fn update_from(dev: &Device, stick: &Path) -> Run {
    dev.client(&[
        "update",
        "--install-to",
        s(&dev.slot),
        "--from",
        s(stick),
        "--json",
        "--no-report",
    ])
}

/// The version in `metadata/N.fw.json` files of the repository, newest last.
fn fw_files(repo: &Repo) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = tree(&repo.repo.join("metadata"))
        .into_keys()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let n = name.strip_suffix(".fw.json")?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn a_delegated_role_near_expiry_is_warned_about_re_signed_by_publish_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    // Top-level roles with long periods: only fw comes due in this test.
    let mut repo = Repo::init(
        dir.path(),
        Some(start()),
        &[
            "--targets-expiry",
            "90d",
            "--snapshot-expiry",
            "60d",
            "--timestamp-expiry",
            "60d",
        ],
    );
    // A top-level release, installed by a device before the delegation exists.
    repo.release("0.9.0", &image("0.9.0"));
    let server = TestServer::start(&repo.repo);
    let dev = Device::init(&repo.first_root(), &server.url(), Some(start()));
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev.installed().as_deref(), Some("0.9.0"));

    let v = repo
        .ok(&[
            "delegate",
            "--role",
            "fw",
            "--paths",
            "gw-*",
            "--generate",
            "--expires",
            "10d",
            "--json",
        ])
        .json();
    assert_eq!(v["period"], "10d", "{v}");
    let fw_key = v["keyids"][0].as_str().unwrap().to_string();
    release_in_fw(&repo, "1.0.0", &image("1.0.0"), &[]);

    // Fresh: status lists fw like a top-level role, nothing to warn about.
    let r = repo.sign(&["status", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let fw = &r.json()["delegated_roles"]["fw"];
    assert_eq!(fw["version"], 2, "{fw}");
    assert_eq!(fw["health"], "ok", "{fw}");
    assert_eq!(fw["period"], "10d", "{fw}");
    assert_eq!(fw["threshold"], 1, "{fw}");
    assert_eq!(fw["keyids"][0], fw_key.as_str(), "{fw}");
    assert_eq!(fw["key_files"][0], "fw-1.pem", "{fw}");
    assert_eq!(fw["signed_by"], "offline", "{fw}");
    assert_eq!(fw["delegated_by"], "targets", "{fw}");
    assert_eq!(fw["paths"][0], "gw-*", "{fw}");
    assert_eq!(fw["expires"], day(10).to_rfc3339().replace("+00:00", "Z"));
    assert!(
        fw["resign"]
            .as_str()
            .unwrap()
            .contains("ota-sign publish --keys KEYS"),
        "{fw}"
    );
    assert!(
        fw["at_expiry"]
            .as_str()
            .unwrap()
            .contains("refuse every update"),
        "{fw}"
    );

    // 8 days on, fw has 2 of its 10 days left: status warns (exit 10), human and JSON.
    repo.now = Some(day(8));
    let r = repo.sign(&["status", "--json"]);
    assert_eq!(r.code, 10, "{r:?}");
    let st = r.json();
    assert_eq!(st["delegated_roles"]["fw"]["health"], "expiring", "{st}");
    assert_eq!(st["roles"]["targets"]["health"], "ok", "{st}");
    let warnings = st["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{st}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("delegated role fw expires in 2d") && w.contains("ota-sign publish"),
        "{w}"
    );
    let r = repo.sign(&["status"]);
    assert_eq!(r.code, 10, "{r:?}");
    assert!(
        r.stdout
            .contains("fw (delegated by targets, paths gw-*): every 10d"),
        "{r:?}"
    );
    assert!(r
        .stdout
        .lines()
        .any(|l| l.trim_start().starts_with("fw ") && l.contains("expiring")));
    assert!(
        r.stderr.contains("warning: delegated role fw expires in"),
        "{r:?}"
    );

    // publish without fw's key: refused, naming the role and its key file, nothing written;
    // the expiry warning follows, as after every command.
    let away = dir.path().join("fw-1.pem");
    std::fs::rename(repo.keys.join("fw-1.pem"), &away).unwrap();
    let before = tree(&repo.repo);
    let r = repo.sign(&["publish", "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("role fw") && msg.contains("fw-1.pem"), "{msg}");
    assert!(
        r.stderr.contains("warning: delegated role fw expires in"),
        "{r:?}"
    );
    assert_eq!(tree(&repo.repo), before, "nothing written");
    std::fs::rename(&away, repo.keys.join("fw-1.pem")).unwrap();

    // Without a publish: past fw's expiry, a device refuses every update, the top-level
    // release it runs included, and keeps its firmware; a stick of it is refused too.
    let late = Device::init(&repo.first_root(), &server.url(), Some(day(11)));
    let r = late.assert_refused(4);
    assert!(r.stderr.contains("expired"), "{r:?}");
    assert_eq!(late.installed(), None);
    let mut dev = dev;
    dev.now = Some(day(11));
    let r = dev.assert_refused(4);
    assert!(r.stderr.contains("expired"), "{r:?}");
    assert_eq!(dev.installed().as_deref(), Some("0.9.0"));
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image("0.9.0"));
    let r = export(&repo, &dir.path().join("unused"), day(11), &[]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("fw expired"), "{r:?}");

    // publish at day 8: fw's next version, a fresh 10-day expiry, signed by its key; the
    // snapshot lists it and the timestamp is written last. Versioned files stay as they were.
    let old_fw = fw_files(&repo);
    let before = tree(&repo.repo);
    let r = repo.sign(&["publish", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "{r:?}");
    let p = r.json();
    assert_eq!(p["changed"], true, "{p}");
    assert_eq!(
        p["signed"],
        serde_json::json!(["fw", "snapshot", "timestamp"]),
        "{p}"
    );
    let renewed = &p["delegated"][0];
    assert_eq!(renewed["role"], "fw", "{p}");
    assert_eq!(renewed["previous_version"], 2, "{p}");
    assert_eq!(renewed["version"], 3, "{p}");
    assert_eq!(
        renewed["expires"],
        day(18).to_rfc3339().replace("+00:00", "Z")
    );
    let after = tree(&repo.repo);
    for (path, bytes) in &before {
        if path.ends_with("metadata/timestamp.json") {
            continue;
        }
        assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
    }
    let new_fw = fw_files(&repo);
    assert_eq!(new_fw.len(), old_fw.len() + 1);
    assert!(new_fw.last().unwrap().ends_with("metadata/3.fw.json"));
    let loaded = ota_repo::Repository::load(&repo.repo).unwrap();
    assert_eq!(loaded.snapshot.signed.meta["fw.json"].version, 3);
    let fw = ota_repo::delegation::load_role(&loaded, "fw").unwrap();
    assert_eq!(fw.signed.expires, day(18));
    assert!(fw.signed.targets.contains_key("gw-1.0.0.img.zst"));
    assert_eq!(fw.signatures[0].keyid, fw_key);
    // Nothing due any more.
    let r = repo.sign(&["status", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["delegated_roles"]["fw"]["health"], "ok");
    let r = repo.sign(&["publish"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("nothing to do"), "{r:?}");

    // The devices past fw's old expiry now install gw 1.0.0 from the delegation.
    for d in [&dev, &late] {
        let r = d.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(d.installed().as_deref(), Some("1.0.0"));
        assert_eq!(std::fs::read(&d.slot).unwrap(), image("1.0.0"));
    }

    // Removable media: a device with no network, provisioned for encrypted targets.
    let offline = Device::init(&repo.first_root(), NO_SERVER, Some(day(11)));
    let r = offline.client(&["keygen", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let public = r.json()["public_key"].as_str().unwrap().to_string();
    let r = run(
        "ota-sign",
        &[
            "recipients",
            "add",
            "--repo",
            s(&repo.repo),
            "stick-dev",
            &public,
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");

    // The copy of the renewed fw: gw 1.0.0 (newest of gw, listed by fw) installs from it.
    let stick1 = dir.path().join("stick-1.0.0");
    let r = export(&repo, &stick1, day(8), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let e = r.json();
    assert_eq!(e["delegated_roles"], serde_json::json!(["fw"]), "{e}");
    assert_eq!(e["releases"][0]["version"], "1.0.0", "{e}");
    assert_eq!(
        e["expires"]["fw"],
        day(18).to_rfc3339().replace("+00:00", "Z")
    );
    assert_eq!(
        e["usable_until"],
        day(18).to_rfc3339().replace("+00:00", "Z"),
        "fw expires first"
    );
    assert!(stick1.join("metadata/3.fw.json").is_file());
    let r = update_from(&offline, &stick1);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(offline.installed().as_deref(), Some("1.0.0"));

    // gw 1.1.0 under fw with a patch from 1.0.0: the stick carries both, installed by delta.
    let v11 = {
        let mut b = image("1.0.0");
        b[1_000..1_100].fill(0xAB);
        b
    };
    release_in_fw(&repo, "1.1.0", &v11, &["--delta-from", "gw@1.0.0"]);
    let stick2 = dir.path().join("stick-1.1.0");
    let r = export(&repo, &stick2, day(8), &["--target", "gw@1.1.0"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["releases"][0]["targets"],
        serde_json::json!(["gw-1.1.0.img.zst", "gw-1.1.0.from-1.0.0.patch"])
    );
    let r = update_from(&offline, &stick2);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["delta_used"], true, "{r:?}");
    assert_eq!(std::fs::read(&offline.slot).unwrap(), v11);

    // gw 2.0.0 under fw, encrypted to the device: its key slip travels on the stick.
    let v2 = image("2.0.0");
    release_in_fw(&repo, "2.0.0", &v2, &["--encrypt-to", "device:stick-dev"]);
    let stick3 = dir.path().join("stick-2.0.0");
    let r = export(&repo, &stick3, day(8), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["releases"][0]["version"], "2.0.0");
    let slips = tree(&stick3.join("targets"))
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".slip"))
        .count();
    assert_eq!(slips, 1, "the device's key slip is on the copy");
    let r = update_from(&offline, &stick3);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(offline.installed().as_deref(), Some("2.0.0"));
    assert_eq!(std::fs::read(&offline.slot).unwrap(), v2);
}

#[test]
fn publish_force_re_signs_delegated_roles_and_status_help_tells_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), None, &[]);
    repo.ok(&["delegate", "--role", "fw", "--paths", "gw-*", "--generate"]);
    // Nothing due: nothing signed.
    let r = repo.ok(&["publish", "--json"]);
    assert_eq!(r.json()["changed"], false, "{r:?}");
    assert_eq!(r.json()["delegated"], serde_json::json!([]), "{r:?}");
    // --force re-signs every role ota-sign publishes, fw included.
    let r = repo.ok(&["publish", "--force"]);
    assert!(
        r.stdout
            .contains("re-signed targets, fw, snapshot, timestamp"),
        "{r:?}"
    );
    assert!(r.stdout.contains(", fw v2 (expires "), "{r:?}");
    for (cmd, needle) in [
        ("status", "Delegated roles"),
        ("publish", "Delegated roles"),
    ] {
        let r = run("ota-sign", &[cmd, "--help"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains(needle), "{cmd} --help: {r:?}");
    }
}
