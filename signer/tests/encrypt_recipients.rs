//! `ota-sign recipients`: the recipients file, group keys, and refused input.
mod common;

use common::*;
use ota_formats::envelope::{RecipientPublicKey, RecipientSecretKey};
use std::process::Output;

fn recipients(env: &Env, args: &[&str]) -> Output {
    let mut all = vec![
        "recipients".to_string(),
        args[0].to_string(),
        "--repo".into(),
        env.repo.display().to_string(),
    ];
    all.extend(args[1..].iter().map(|s| s.to_string()));
    run(&all)
}

fn ok(o: &Output) {
    assert_eq!(code(o), 0, "stderr: {}", stderr(o));
}

fn group_create(env: &Env, group: &str) -> RecipientSecretKey {
    let keys = env.keys.display().to_string();
    let o = recipients(env, &["group-create", "--keys", &keys, group, "--json"]);
    ok(&o);
    let report = json(&o);
    let file = env.keys.join(format!("group-{group}.otasec"));
    assert_eq!(report["secret_key_file"], file.display().to_string());
    assert!(
        report.get("secret_key").is_none(),
        "secret printed without --print-secret"
    );
    let secret = RecipientSecretKey::from_text(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(report["group"]["public_key"], secret.public_key().to_text());
    secret
}

#[test]
fn recipients_round_trip_through_the_file() {
    let env = Env::new();
    env.init(&[]);
    let group = group_create(&env, "board-a");
    let file = env.keys.join("group-board-a.otasec");
    assert_eq!(mode(&file), 0o600, "group secret must be private");
    // The secret never lands in the repository.
    let secret_text = group.to_text().to_string();
    for (p, _) in tree(&env.repo) {
        let full = env.repo.join(&p);
        if full.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&full).unwrap()).into_owned();
            assert!(!text.contains(&secret_text), "group secret found in {p:?}");
            assert!(!text.contains("otasec1"), "a secret key found in {p:?}");
        }
    }

    let d1 = RecipientSecretKey::generate();
    let d2 = RecipientSecretKey::generate();
    ok(&recipients(
        &env,
        &[
            "add",
            "gw-0001",
            &d1.public_key().to_text(),
            "--group",
            "board-a",
        ],
    ));
    let o = recipients(
        &env,
        &["add", "lab-1", &d2.public_key().to_text(), "--json"],
    );
    ok(&o);
    assert_eq!(json(&o)["recipient_id"], d2.id().to_string());

    let o = recipients(&env, &["list", "--json"]);
    ok(&o);
    let list = json(&o);
    assert_eq!(list["groups"][0]["name"], "board-a");
    assert_eq!(list["groups"][0]["recipient_id"], group.id().to_string());
    assert_eq!(list["groups"][0]["devices"], 1);
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0]["name"], "gw-0001");
    assert_eq!(devices[0]["group"], "board-a");
    assert_eq!(devices[0]["public_key"], d1.public_key().to_text());
    assert_eq!(devices[0]["recipient_id"], d1.id().to_string());
    assert_eq!(devices[1]["name"], "lab-1");
    assert!(devices[1]["group"].is_null());

    // The file itself: public keys only, readable by the documented format.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.repo.join("ota-recipients.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["format"], 1);
    let pk: RecipientPublicKey =
        serde_json::from_value(on_disk["devices"][1]["public_key"].clone()).unwrap();
    assert_eq!(pk, *d2.public_key());

    let o = recipients(&env, &["list"]);
    ok(&o);
    let text = stdout(&o);
    assert!(
        text.contains("gw-0001") && text.contains("lab-1") && text.contains("board-a"),
        "{text}"
    );

    ok(&recipients(&env, &["remove", "lab-1"]));
    let list = json(&recipients(&env, &["list", "--json"]));
    let names: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gw-0001"]);
    // The name (and key) can be registered again after removal.
    ok(&recipients(
        &env,
        &["add", "lab-1", &d2.public_key().to_text()],
    ));
}

#[test]
fn print_secret_prints_the_group_secret_for_provisioning() {
    let env = Env::new();
    env.init(&[]);
    let keys = env.keys.display().to_string();
    let o = recipients(
        &env,
        &[
            "group-create",
            "--keys",
            &keys,
            "fleet-eu",
            "--print-secret",
        ],
    );
    ok(&o);
    let printed = stdout(&o)
        .lines()
        .find(|l| l.starts_with("otasec1"))
        .expect("secret on stdout")
        .to_string();
    let on_disk = std::fs::read_to_string(env.keys.join("group-fleet-eu.otasec")).unwrap();
    assert_eq!(printed, on_disk.trim());
}

#[test]
fn bad_recipient_input_is_refused_with_exit_2_and_no_change() {
    let env = Env::new();
    env.init(&[]);
    group_create(&env, "board-a");
    let d1 = RecipientSecretKey::generate();
    ok(&recipients(
        &env,
        &["add", "gw-0001", &d1.public_key().to_text()],
    ));
    let fresh = RecipientSecretKey::generate();
    let fresh_pub = fresh.public_key().to_text();
    let mut mistyped = fresh_pub.clone();
    let last = mistyped.pop().unwrap();
    mistyped.push(if last == 'A' { 'B' } else { 'A' });
    let truncated = fresh_pub[..fresh_pub.len() - 5].to_string();
    let secret_text = fresh.to_text().to_string();
    let keys = env.keys.display().to_string();
    let d1_pub = d1.public_key().to_text();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["add", "gw-0002", &mistyped],
            "invalid public key \"otapub1",
        ),
        (vec!["add", "gw-0002", &truncated], "invalid public key"),
        (
            vec!["add", "gw-0002", "hello"],
            "invalid public key \"hello\" for device gw-0002",
        ),
        (vec!["add", "gw-0002", &secret_text], "secret key"),
        (vec!["add", "gw-0001", &fresh_pub], "already exists"),
        (
            vec!["add", "gw-0002", &d1_pub],
            "already registered as device gw-0001",
        ),
        (
            vec!["add", "gw-0002", &fresh_pub, "--group", "nope"],
            "unknown group \"nope\"",
        ),
        (vec!["add", "../evil", &fresh_pub], "invalid device name"),
        (vec!["remove", "gw-9999"], "no recipient named \"gw-9999\""),
        (
            vec!["group-create", "--keys", &keys, "board-a"],
            "group \"board-a\" already exists",
        ),
        (
            vec!["group-create", "--keys", &keys, "a/b"],
            "invalid group name",
        ),
    ];
    for (args, needle) in cases {
        let before = tree(env.tmp.path());
        let o = recipients(&env, &args);
        assert_fails(&o, 2, needle);
        assert_eq!(tree(env.tmp.path()), before, "{args:?} changed the disk");
    }
    // The secret key must never be echoed in the error.
    let o = recipients(&env, &["add", "gw-0002", &secret_text]);
    assert!(!stderr(&o).contains(&secret_text));

    // A keys directory inside the repository is a key problem (3).
    let inside = env.repo.join("keys").display().to_string();
    let before = tree(env.tmp.path());
    let o = recipients(&env, &["group-create", "--keys", &inside, "g2"]);
    assert_fails(&o, 3, "inside the repository");
    assert_eq!(tree(env.tmp.path()), before);

    // Not a repository (4).
    let other = env.tmp.path().join("nowhere").display().to_string();
    let o = run(["recipients", "list", "--repo", &other]);
    assert_fails(&o, 4, "does not exist");
}

#[test]
fn a_corrupt_recipients_file_is_refused_with_exit_4() {
    let env = Env::new();
    env.init(&[]);
    let d1 = RecipientSecretKey::generate();
    ok(&recipients(
        &env,
        &["add", "gw-0001", &d1.public_key().to_text()],
    ));
    let path = env.repo.join("ota-recipients.json");
    let text = std::fs::read_to_string(&path).unwrap();
    // Another device's id next to this key: the id no longer matches.
    let other = RecipientSecretKey::generate().id().to_string();
    std::fs::write(&path, text.replace(&d1.id().to_string(), &other)).unwrap();
    let before = tree(env.tmp.path());
    let o = recipients(
        &env,
        &[
            "add",
            "gw-0002",
            &RecipientSecretKey::generate().public_key().to_text(),
        ],
    );
    assert_fails(&o, 4, "ota-recipients.json is corrupt");
    assert_eq!(tree(env.tmp.path()), before);
    std::fs::write(&path, "{not json").unwrap();
    assert_fails(&recipients(&env, &["list"]), 4, "is corrupt");
}

#[test]
fn import_registers_a_fleet_all_or_nothing() {
    let env = Env::new();
    env.init(&[]);
    group_create(&env, "board-a");
    let keys: Vec<RecipientSecretKey> = (0..4).map(|_| RecipientSecretKey::generate()).collect();
    ok(&recipients(
        &env,
        &["add", "gw-0000", &keys[0].public_key().to_text()],
    ));
    let line = |name: &str, k: &RecipientSecretKey, g: &str| {
        format!("{name} {} {g}\n", k.public_key().to_text())
    };
    let file = env.tmp.path().join("fleet.txt");
    let bad = [
        (
            format!(
                "# fleet\n\n{}{}",
                line("gw-0001", &keys[1], "board-a"),
                line("gw-0001", &keys[2], "")
            ),
            "line 4: a recipient named \"gw-0001\" already exists",
        ),
        (line("gw-0001", &keys[0], ""), "line 1: public key"),
        (
            line("gw-0001", &keys[1], "board-z"),
            "line 1: unknown group \"board-z\"",
        ),
        (
            format!("{}gw-0002 otapub1broken\n", line("gw-0001", &keys[1], "")),
            "line 2",
        ),
        (
            "gw-0001\n".to_string(),
            "line 1: expected `NAME PUBKEY [GROUP]`",
        ),
    ];
    for (text, needle) in bad {
        std::fs::write(&file, &text).unwrap();
        let before = tree(env.tmp.path());
        let o = recipients(&env, &["import", file.to_str().unwrap()]);
        assert_fails(&o, 2, needle);
        assert_eq!(tree(env.tmp.path()), before, "{text:?} changed the disk");
    }
    std::fs::write(
        &file,
        format!(
            "# fleet\n{}{}{}",
            line("gw-0003", &keys[3], ""),
            line("gw-0001", &keys[1], "board-a"),
            line("gw-0002", &keys[2], "")
        ),
    )
    .unwrap();
    let o = recipients(&env, &["import", file.to_str().unwrap(), "--json"]);
    ok(&o);
    assert_eq!(json(&o)["added"], 3);
    let list = json(&recipients(&env, &["list", "--json"]));
    let got: Vec<(String, String)> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["public_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = (0..4)
        .map(|i| (format!("gw-000{i}"), keys[i].public_key().to_text()))
        .collect();
    assert_eq!(got, want, "sorted by name, keys as given");
    assert_eq!(list["groups"][0]["devices"], 1);
}
