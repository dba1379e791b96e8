//! The device clock (issue 14), with the real `ota-client` under `faketime`: a device never
//! checks expiry at a time earlier than the newest time it has already seen (its time floor,
//! `STATE/time-floor.json`), says so when its clock is behind, and names a clearly wrong
//! clock (more than a day behind, or before 2020) in `status` and in the refusal.
use ota_tests::ab::image;
use ota_tests::cli::{bin, run, tree, Run, SignedRepo};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
}

impl Dev {
    fn new(rel: &SignedRepo, server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = Dev {
            state: dir.path().join("state"),
            slot: dir.path().join("firmware.img"),
            _dir: dir,
        };
        let root = rel.repo.join("metadata/1.root.json");
        let r = ota_tests::cli::client(
            &d.state,
            &[
                "init",
                "--root",
                root.to_str().unwrap(),
                "--server",
                server,
                "--hardware",
                "board-a",
                "--name",
                "gateway-fw",
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        d
    }

    /// `ota-client ARGS... --state STATE` with the clock set to `time` (a `date -d` string;
    /// the clock then runs from there), or the real clock for `None`.
    fn client_at(&self, time: Option<&str>, args: &[&str]) -> Run {
        let mut cmd = match time {
            Some(t) => {
                let mut c = Command::new("faketime");
                c.arg(t).arg(bin("ota-client"));
                c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                c
            }
            None => Command::new(bin("ota-client")),
        };
        cmd.arg(args[0])
            .arg("--state")
            .arg(&self.state)
            .args(&args[1..]);
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn update_at(&self, time: Option<&str>) -> Run {
        self.client_at(
            time,
            &[
                "update",
                "--install-to",
                self.slot.to_str().unwrap(),
                "--json",
                "--no-report",
            ],
        )
    }

    fn floor(&self) -> chrono::DateTime<chrono::Utc> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.state.join("time-floor.json")).unwrap())
                .unwrap();
        v["time_floor"].as_str().unwrap().parse().unwrap()
    }

    fn everything(&self) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        tree(self._dir.path())
    }
}

fn faketime_works() -> bool {
    Command::new("faketime")
        .args(["2019-06-01 00:00:00", "date", "+%Y"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "2019")
}

fn add(rel: &SignedRepo, version: &str, seed: u8) {
    rel.add("gateway-fw", version, "board-a", &image(seed, 20_000), &[]);
}

fn sign_at(now: &str, args: &[&str], repo: &Path) -> Run {
    let mut all = vec!["--now", now];
    all.extend(args);
    all.extend(["--repo", repo.to_str().unwrap()]);
    run("ota-sign", &all)
}

#[test]
fn the_time_floor_stops_a_clock_that_went_back_from_accepting_stale_metadata() {
    if !faketime_works() {
        assert!(
            std::env::var_os("CI").is_none(),
            "faketime is required in CI (.ci/run installs it)"
        );
        eprintln!("skipped: faketime is not installed");
        return;
    }
    let rel = SignedRepo::init();
    let server = TestServer::start(&rel.repo);
    add(&rel, "1.0.0", 1);
    let dev = Dev::new(&rel, &server.url());
    assert!(!dev.state.join("time-floor.json").exists());

    // A successful refresh records the time floor.
    let before = chrono::Utc::now();
    let r = dev.update_at(None);
    assert_eq!(r.code, 0, "{r:?}");
    let floor = dev.floor();
    assert!(floor >= before - chrono::Duration::seconds(2), "{floor}");
    let r = dev.client_at(None, &["status", "--json"]);
    assert_eq!(r.json()["clock"]["state"], "ok", "{r:?}");

    // Before 2020: clearly wrong, said by status (human and JSON).
    let r = dev.client_at(Some("2019-06-01 00:00:00"), &["status", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let clock = &r.json()["clock"];
    assert_eq!(clock["state"], "wrong", "{r:?}");
    let msg = clock["message"].as_str().unwrap();
    assert!(
        msg.contains("the device clock says 2019-06-01") && msg.contains("before 2020"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("earlier than {}", &floor.to_rfc3339()[..10])),
        "{msg}"
    );
    let r = dev.client_at(Some("2019-06-01 00:00:00"), &["status"]);
    assert!(
        r.stdout
            .contains("clock:        the device clock says 2019"),
        "{r:?}"
    );

    // Two hours behind: expiry is checked at the floor, with a warning; the update works.
    add(&rel, "1.1.0", 2);
    let r = dev.update_at(Some("2 hours ago"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("the device clock says") && r.stderr.contains("already seen"),
        "{r:?}"
    );
    assert_eq!(r.json()["installed"]["version"], "1.1.0");
    assert!(dev.floor() >= floor, "the floor never goes back");

    // Freeze attack: metadata signed three days ago with a one-day timestamp (valid by a
    // clock that went back three days, expired by the floor) is refused, and the refusal
    // names the clock. Nothing changes on the device.
    let past = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    add(&rel, "1.2.0", 3);
    let r = sign_at(
        &past,
        &["publish", "--force", "--keys", rel.keys.to_str().unwrap()],
        &rel.repo,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let state = dev.everything();
    let r = dev.update_at(Some("71 hours ago"));
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("expired"), "{r:?}");
    assert!(
        r.stderr.contains("the device clock says") && r.stderr.contains("the clock is wrong"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: set the device clock"), "{r:?}");
    assert_eq!(r.json()["error"]["exit_code"], 4);
    assert_eq!(dev.everything(), state, "refused: firmware and state kept");
    // With the right clock the stale metadata is refused too (it has expired).
    assert_eq!(dev.update_at(None).code, 4);
    // Control: a device that never saw a later time has only its clock to go by.
    let fresh = Dev::new(&rel, &server.url());
    let r = fresh.update_at(Some("71 hours ago"));
    assert_eq!(r.code, 0, "{r:?}");

    // The expired-metadata policy: "refuse" is the only one; anything else is refused.
    let cfg_path = dev.state.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["expired_metadata"] = "refuse".into();
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let r = dev.client_at(None, &["status", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["expired_metadata"], "refuse");
    cfg["expired_metadata"] = "ignore".into();
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let r = dev.update_at(None);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("expired_metadata") || r.stderr.contains("refuse"),
        "{r:?}"
    );
}
