//! Online roles (issue 13): `ota-sign init --online-roles` splits the keys (root and targets
//! for the release machine, snapshot and timestamp for the server); `ota-server
//! --online-keys` re-signs the timestamp and snapshot before they expire, so a repository
//! left alone keeps serving valid metadata, and publishes the targets versions the release
//! machine signs offline. A key directory holding an offline key is refused at start-up.
use ota_tests::cli::{bin, client, run, Run};
use ota_tests::tls_server::ServerProcess;
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `ota-server --online-keys KEYS` serving `repo`.
fn online_server(repo: &Path, online_keys: &Path) -> ServerProcess {
    ServerProcess::spawn(repo, &["--online-keys".as_ref(), online_keys.as_os_str()])
}

fn timestamp(repo: &Path) -> serde_json::Value {
    let bytes = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn sign(args: &[&str]) -> Run {
    let r = run("ota-sign", args);
    assert_eq!(r.code, 0, "ota-sign {args:?}: {r:?}");
    r
}

/// Wait until `cond` holds (checked every 100 ms), at most `secs`.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_repository_left_alone_stays_valid_and_offline_releases_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, keys) = (dir.path().join("repo"), dir.path().join("keys"));
    let online: PathBuf = dir.path().join("keys-online");
    let r = sign(&[
        "init",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--online-roles",
        "--timestamp-expiry",
        "4s",
        "--snapshot-expiry",
        "8s",
        "--json",
    ]);
    assert_eq!(r.json()["online_keys"], online.to_str().unwrap());
    // The split: snapshot and timestamp keys only in keys-online, none of them in keys.
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(
        names(&online)
            .iter()
            .all(|n| n.starts_with("snapshot") || n.starts_with("timestamp")),
        "{:?}",
        names(&online)
    );
    assert!(
        names(&keys)
            .iter()
            .all(|n| n.starts_with("root") || n.starts_with("targets")),
        "{:?}",
        names(&keys)
    );

    // The full key directory is refused by the server: root and targets keys stay offline.
    let out = Command::new(bin("ota-server"))
        .args(["--listen", "127.0.0.1:0", "--repo"])
        .arg(&repo)
        .arg("--online-keys")
        .arg(&keys)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("root key") || stderr.contains("targets key"),
        "{stderr}"
    );

    let server = online_server(&repo, &online);
    let first = timestamp(&repo)["signed"]["version"].as_u64().unwrap();

    // A device set up now keeps updating long after the first timestamp (4 s) expired.
    let state = dir.path().join("device");
    let root = repo.join("metadata/1.root.json");
    let r = client(
        &state,
        &[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            &server.url(),
            "--hardware",
            "board-a",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    std::thread::sleep(Duration::from_secs(10));
    let ts = timestamp(&repo);
    assert!(
        ts["signed"]["version"].as_u64().unwrap() >= first + 2,
        "{ts}"
    );
    let expires: chrono::DateTime<chrono::Utc> =
        ts["signed"]["expires"].as_str().unwrap().parse().unwrap();
    assert!(
        expires > chrono::Utc::now(),
        "served timestamp is valid: {ts}"
    );
    let r = client(&state, &["check", "--json"]);
    assert_eq!(r.code, 100, "up to date, metadata valid: {r:?}");

    // The release machine signs a release with the targets key only; the server publishes it.
    let fw = dir.path().join("fw.img");
    std::fs::write(&fw, b"firmware 1.0.0 for board-a").unwrap();
    let r = sign(&[
        "add",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        fw.to_str().unwrap(),
        "--name",
        "gw",
        "--version",
        "1.0.0",
        "--hardware",
        "board-a",
        "--json",
    ]);
    let targets_version = r.json()["targets_version"].as_u64();
    wait_for(10, "the server to publish the new targets", || {
        let r = client(&state, &["check", "--json"]);
        r.code == 0
    });
    let slot = dir.path().join("firmware.img");
    let r = client(
        &state,
        &["update", "--install-to", slot.to_str().unwrap(), "--json"],
    );
    assert_eq!(r.code, 0, "{r:?} (targets {targets_version:?})");
    assert_eq!(std::fs::read(&slot).unwrap(), b"firmware 1.0.0 for board-a");
}

/// A simulated year with the real signer and a fake clock: checked every 6 hours, the
/// timestamp (1 day) and snapshot (7 days) are always valid, renewed only when due (a quarter
/// of the period left), and versions only grow.
#[test]
fn a_simulated_year_of_online_signing_never_lets_metadata_expire() {
    use ota_repo::online::OnlineSigner;
    let dir = tempfile::tempdir().unwrap();
    let (repo, keys) = (dir.path().join("repo"), dir.path().join("keys"));
    sign(&[
        "init",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--online-roles",
        "--timestamp-expiry",
        "1d",
        "--snapshot-expiry",
        "7d",
    ]);
    let signer = OnlineSigner::load(&dir.path().join("keys-online"), &repo).unwrap();
    let start = chrono::Utc::now();
    let (mut renewals, mut last_version) = (0, 0);
    for step in 0..(365 * 4) {
        let now = start + chrono::Duration::hours(6 * step);
        if signer.renew(&repo, now).unwrap().is_some() {
            renewals += 1;
        }
        let loaded = ota_repo::Repository::load(&repo).unwrap();
        let ts = &loaded.timestamp.signed;
        assert!(
            ts.expires > now + chrono::Duration::hours(6),
            "step {step}: {ts:?}"
        );
        assert!(loaded.snapshot.signed.expires > now, "step {step}");
        assert!(ts.version >= last_version);
        last_version = ts.version;
    }
    // Renewed when a quarter of a day is left: about once a day, not at every check.
    assert!(
        (300..=500).contains(&renewals),
        "{renewals} renewals in a year"
    );
}
