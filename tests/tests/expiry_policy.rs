//! The expiry policy in one place (issue 14): `ota-sign status` lists every role's expiry,
//! the start of its warning window, who re-signs it and what devices do once it expired;
//! every other command that touches the repository warns about a role inside its window.
//! Snapshot and timestamp of an online-roles repository are the server's: reported as
//! notes, never as ota-sign warnings or exit code 10.
use ota_tests::cli::{run, Run};
use std::path::Path;

fn sign(args: &[&str]) -> Run {
    run("ota-sign", args)
}

fn init(dir: &Path, online: bool) -> (String, String) {
    let (repo, keys) = (dir.join("repo"), dir.join("keys"));
    let mut args = vec![
        "init",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
    ];
    if online {
        args.push("--online-roles");
    }
    let r = sign(&args);
    assert_eq!(r.code, 0, "{r:?}");
    (
        repo.to_str().unwrap().to_string(),
        keys.to_str().unwrap().to_string(),
    )
}

/// RFC 3339 for now + `hours`.
fn in_hours(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339()
}

#[test]
fn status_tells_who_re_signs_what_and_commands_warn_ahead_of_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, keys) = init(dir.path(), false);

    // Fresh: nothing to warn about; every role's policy is there.
    let r = sign(&["status", "--repo", &repo, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let s = r.json();
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let x = &s["roles"][role];
        assert_eq!(x["signed_by"], "offline", "{role}: {x}");
        assert!(
            !x["key_files"].as_array().unwrap().is_empty(),
            "{role}: {x}"
        );
        assert!(
            x["at_expiry"].as_str().unwrap().contains("refuse"),
            "{role}: {x}"
        );
        assert!(x["warn_from"].as_str().unwrap() < x["expires"].as_str().unwrap());
    }
    assert!(s["roles"]["root"]["resign"]
        .as_str()
        .unwrap()
        .contains("publish --root"));
    assert!(s["roles"]["root"]["at_expiry"]
        .as_str()
        .unwrap()
        .contains("root keys"));
    assert!(s["roles"]["timestamp"]["resign"]
        .as_str()
        .unwrap()
        .contains("ota-sign publish"));
    let r = sign(&["status", "--repo", &repo]);
    assert!(r.stdout.contains("expiry policy:"), "{r:?}");

    // 20 hours later the one-day timestamp is inside its window (6 h): status says so
    // (exit 10), and so does any other command touching the repository.
    let later = in_hours(20);
    let r = sign(&["--now", &later, "status", "--repo", &repo, "--json"]);
    assert_eq!(r.code, 10, "{r:?}");
    assert_eq!(r.json()["roles"]["timestamp"]["health"], "expiring");
    assert!(r.stderr.contains("warning: timestamp expires in"), "{r:?}");
    let r = sign(&["--now", &later, "recipients", "list", "--repo", &repo]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("warning: timestamp expires in") && r.stderr.contains("ota-sign publish"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("warning: root"), "{r:?}");
    // Past expiry: what devices do, and how to fix it.
    let expired = in_hours(30);
    let r = sign(&["--now", &expired, "recipients", "list", "--repo", &repo]);
    assert!(
        r.stderr.contains("warning: timestamp expired")
            && r.stderr.contains("devices refuse every update"),
        "{r:?}"
    );
    // After publish re-signed it, no warning is left.
    let r = sign(&["--now", &later, "publish", "--repo", &repo, "--keys", &keys]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning: timestamp"), "{r:?}");
    // Root near its expiry (365 d): warned, with the root keys named as the fix.
    let r = sign(&[
        "--now",
        &in_hours(24 * 300),
        "recipients",
        "list",
        "--repo",
        &repo,
    ]);
    assert!(
        r.stderr.contains("warning: root expires in") && r.stderr.contains("--root"),
        "{r:?}"
    );
}

#[test]
fn online_snapshot_and_timestamp_are_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _keys) = init(dir.path(), true);
    let later = in_hours(30);
    let r = sign(&["--now", &later, "status", "--repo", &repo, "--json"]);
    assert_eq!(r.code, 0, "the server renews them, not ota-sign: {r:?}");
    let s = r.json();
    assert_eq!(s["online_roles"], true);
    for role in ["snapshot", "timestamp"] {
        assert_eq!(s["roles"][role]["signed_by"], "online", "{s}");
        assert!(s["roles"][role]["resign"]
            .as_str()
            .unwrap()
            .contains("ota-server --online-keys"));
    }
    assert_eq!(s["roles"]["timestamp"]["health"], "expired");
    assert_eq!(s["roles"]["targets"]["signed_by"], "offline");
    assert_eq!(s["warnings"], serde_json::json!([]));
    assert!(s["notes"][0].as_str().unwrap().contains("timestamp"), "{s}");
    assert!(r.stderr.contains("note: timestamp"), "{r:?}");
    assert!(!r.stderr.contains("warning:"), "{r:?}");
    let r = sign(&["--now", &later, "recipients", "list", "--repo", &repo]);
    assert!(!r.stderr.contains("warning:"), "{r:?}");
    // The offline roles are still ota-sign's to warn about.
    let r = sign(&["--now", &in_hours(24 * 80), "status", "--repo", &repo]);
    assert_eq!(r.code, 10, "{r:?}");
    assert!(r.stderr.contains("warning: targets"), "{r:?}");
}
