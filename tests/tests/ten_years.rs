//! Ten years of a repository on a fake clock (issue 14): `ota-sign --now` signs at each
//! simulated date, `ota-client` runs under `faketime` at it. Every year the release machine
//! re-signs what expired, rotates the root key and publishes a release; in year 4 the targets
//! key is compromised, rotated out, and a release signed with it is refused. One device
//! updates every year; another sleeps from year 0 to year 10 and catches up in one update,
//! walking every root version in between (all but the last long expired).
use chrono::{DateTime, Duration, TimeZone, Utc};
use ota_tests::keyroll::{copy_dir, serve_attacker_files, Device, Repo, Saved};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;

fn image(version: &str) -> Vec<u8> {
    format!("firmware {version} for board-a ")
        .repeat(300)
        .into_bytes()
}

fn year(start: DateTime<Utc>, k: i64) -> DateTime<Utc> {
    start + Duration::days(365 * k)
}

#[test]
fn ten_years_of_yearly_root_rotations_a_compromise_and_a_device_that_slept_through_it() {
    let start = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut repo = Repo::init(dir.path(), Some(start), &["--root-expiry", "400d"]);
    repo.release("0.0.0", &image("0.0.0"));
    let server = TestServer::start(&repo.repo);
    let device_at = |t: DateTime<Utc>| Device::init(&repo.first_root(), &server.url(), Some(t));
    let mut yearly = device_at(start + Duration::hours(1));
    let mut sleeper = device_at(start + Duration::hours(1));
    for dev in [&yearly, &sleeper] {
        assert_eq!(dev.update().code, 0);
        assert_eq!(dev.installed().as_deref(), Some("0.0.0"));
    }
    // A year later, with nothing re-signed, the repository has expired: devices refuse it.
    yearly.now = Some(year(start, 1));
    let r = yearly.assert_refused(4);
    assert!(r.stderr.contains("expired"), "{r:?}");

    let mut root_version = 1;
    for k in 1..=10 {
        let now = year(start, k);
        repo.now = Some(now);
        // What expired is re-signed; the root (400 days) is rotated before it expires.
        repo.ok(&["publish"]);
        let old = repo.keyids("root");
        repo.ok(&[
            "rotate",
            "--role",
            "root",
            "--generate",
            "--remove-key",
            &old[0],
            "--expires",
            "400d",
        ]);
        root_version += 1;
        yearly.now = Some(now + Duration::hours(1));
        if k == 4 {
            compromise_of_the_targets_key(&repo, &yearly, dir.path());
            root_version += 1;
        }
        let version = format!("{k}.0.0");
        repo.release(&version, &image(&version));
        if k == 4 {
            // Past the attacker's timestamp and snapshot (signed with the real keys).
            repo.ok(&["publish", "--force"]);
        }
        let r = yearly.update();
        assert_eq!(r.code, 0, "year {k}: {r:?}");
        assert_eq!(yearly.installed().as_deref(), Some(version.as_str()));
        assert_eq!(yearly.root_version(), root_version, "year {k}");
    }
    assert_eq!(
        root_version, 12,
        "ten yearly rotations and the targets key's"
    );

    // The sleeper wakes up in year 10 with root v1 (expired nine years ago) and firmware
    // 0.0.0: one update walks roots 2..=12 and installs 10.0.0.
    sleeper.now = Some(year(start, 10) + Duration::hours(2));
    assert_eq!(sleeper.installed().as_deref(), Some("0.0.0"));
    let r = sleeper.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&sleeper.slot).unwrap(), image("10.0.0"));
    assert_eq!(sleeper.root_version(), 12);

    // A device whose clock is wrong by more than the timestamp's day refuses the repository
    // (freshness is checked against the device's own time).
    sleeper.now = Some(year(start, 10) + Duration::days(3));
    sleeper.assert_refused(4);
}

/// Year 4: the targets key leaks. The release machine rotates it out; the attacker signs a
/// release with it (and has it listed, as a compromised repository host could): refused by
/// the device, which keeps its firmware.
fn compromise_of_the_targets_key(repo: &Repo, dev: &Device, dir: &std::path::Path) {
    let attacker = dir.join("attacker");
    copy_dir(&repo.repo, &attacker.join("repo"));
    copy_dir(&repo.keys, &attacker.join("keys"));
    let old = repo.keyids("targets");
    let r = repo.ok(&[
        "rotate",
        "--role",
        "targets",
        "--generate",
        "--remove-key",
        &old[0],
        "--json",
    ]);
    let retired = r.json()["retired_files"][0].as_str().unwrap().to_string();
    assert!(retired.ends_with("targets-1.pem"), "{retired}");

    let evil = Repo {
        repo: attacker.join("repo"),
        keys: attacker.join("keys"),
        now: repo.now,
    };
    evil.release("6.6.6", &image("evil"));
    evil.ok(&["publish", "--force"]);
    let saved = Saved::take(&repo.repo);
    serve_attacker_files(&evil.repo, &repo.repo);
    let r = dev.assert_refused(4);
    assert!(r.stderr.contains("targets"), "{r:?}");
    saved.restore();
}
