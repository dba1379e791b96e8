//! The CLI contract: `--help` states every exit code as the README and the behaviour do
//! (exit 4 includes a repository locked by another run), and every `--json` command prints
//! the JSON error object on stdout when it fails.
mod common;

use common::*;
use std::path::Path;

/// The exit codes a text documents: lines starting (after `|` or spaces) with a number.
fn documented_codes(text: &str, table: bool) -> Vec<u32> {
    text.lines()
        .filter_map(|l| {
            let l = if table {
                l.strip_prefix("| ")?
            } else {
                l.strip_prefix("  ")?
            };
            l.split([' ', '|']).next()?.parse().ok()
        })
        .collect()
}

#[test]
fn help_states_the_exit_codes_of_the_readme_including_locked() {
    let o = run(["--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    let exit_codes = &help[help.find("Exit codes:").expect("exit codes in --help")..];
    let line4 = exit_codes
        .lines()
        .skip_while(|l| !l.starts_with("  4 "))
        .take(2)
        .collect::<String>();
    assert!(
        line4.contains("locked"),
        "exit 4 must mention a lock: {line4}"
    );

    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("## Exit codes").unwrap()..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    assert!(section.contains("locked"), "{section}");
    let in_readme = documented_codes(section, true);
    let in_help = documented_codes(exit_codes, false);
    assert_eq!(in_help, in_readme, "--help and README list the same codes");
    assert_eq!(in_help, [0, 1, 2, 3, 4, 5, 6, 7, 10]);
}

#[test]
fn a_locked_repository_is_exit_4() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 1);
    // Held by a live process: this test holds the OS lock on the lock file.
    let lock = env.repo.join(".ota-sign.lock");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let held = std::fs::File::open(&lock).unwrap();
    held.try_lock().unwrap();
    let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
    assert_fails(&o, 4, "another ota-sign is writing this repository");
    let mut args = env.repo_args("publish");
    args.push("--json".into());
    let o = run(&args);
    assert_eq!(code(&o), 4);
    assert_eq!(json(&o)["error"]["kind"], "repo");
    assert!(lock.exists(), "someone else's lock is left alone");
    drop(held);
}

/// Assert that `o` failed with `exit` and printed exactly the JSON error object.
fn assert_json_error(o: &std::process::Output, exit: i32, kind: &str, needle: &str) {
    assert_eq!(code(o), exit, "stderr: {}", stderr(o));
    let v = json(o);
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 1, "{v}");
    let e = v["error"].as_object().expect("an error object");
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["exit_code", "hint", "kind", "message"], "{v}");
    assert_eq!(e["exit_code"], exit, "{v}");
    assert_eq!(e["kind"], kind, "{v}");
    assert!(
        e["message"].as_str().unwrap().contains(needle),
        "message should mention {needle:?}: {v}"
    );
    assert!(!e["hint"].as_str().unwrap().is_empty(), "{v}");
    // The person reading stderr still gets the two lines.
    assert!(stderr(o).contains("error: "), "{}", stderr(o));
}

fn with_json(mut args: Vec<String>) -> Vec<String> {
    args.push("--json".into());
    args
}

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_json_command_reports_failures_as_a_json_error_object() {
    let env = Env::new();
    env.init(&[]);
    let repo = env.repo.display().to_string();
    let keys = env.keys.display().to_string();
    let img = env.image("fw.img", 10_000, 1);
    let missing = env.tmp.path().join("nowhere").display().to_string();

    // init: the repository exists (4).
    assert_json_error(
        &run(with_json(env.repo_args("init"))),
        4,
        "repo",
        "already exists",
    );
    // add: a bad version (2), keys of a missing directory (3), not newer (5).
    assert_json_error(
        &run(with_json(env.add_args(&img, "fw", "one", "hw"))),
        2,
        "input",
        "invalid version",
    );
    let mut args = env.add_args(&img, "fw", "1.0.0", "hw");
    args[4] = missing.clone();
    assert_json_error(&run(with_json(args)), 3, "keys", "does not exist");
    assert_eq!(code(&run(env.add_args(&img, "fw", "1.0.0", "hw"))), 0);
    assert_json_error(
        &run(with_json(env.add_args(&img, "fw", "0.9.0", "hw"))),
        5,
        "policy",
        "not newer",
    );
    // publish and status: no repository (4).
    assert_json_error(
        &run(with_json(strs(&[
            "publish", "--repo", &missing, "--keys", &keys,
        ]))),
        4,
        "repo",
        "does not exist",
    );
    assert_json_error(
        &run(with_json(strs(&["status", "--repo", &missing]))),
        4,
        "repo",
        "does not exist",
    );
    // recipients: each operation.
    assert_json_error(
        &run(with_json(strs(&["recipients", "list", "--repo", &missing]))),
        4,
        "repo",
        "does not exist",
    );
    assert_json_error(
        &run(with_json(strs(&[
            "recipients",
            "add",
            "--repo",
            &repo,
            "dev-1",
            "otapub1nonsense",
        ]))),
        2,
        "input",
        "invalid public key",
    );
    assert_json_error(
        &run(with_json(strs(&[
            "recipients",
            "remove",
            "--repo",
            &repo,
            "nobody",
        ]))),
        2,
        "input",
        "no recipient named",
    );
    assert_json_error(
        &run(with_json(strs(&[
            "recipients",
            "import",
            "--repo",
            &repo,
            &missing,
        ]))),
        2,
        "input",
        "does not exist",
    );
    assert_json_error(
        &run(with_json(strs(&[
            "recipients",
            "group-create",
            "--repo",
            &repo,
            "--keys",
            &keys,
            "bad name",
        ]))),
        2,
        "input",
        "invalid group name",
    );
    // A write that fails part-way (1): the metadata directory is read-only. Root ignores
    // permissions, so only check when they apply.
    let md = env.repo.join("metadata");
    let perms = std::fs::metadata(&md).unwrap().permissions();
    std::fs::set_permissions(&md, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let probe = md.join("probe");
    if std::fs::write(&probe, b"x").is_err() {
        let mut args = env.repo_args("publish");
        args.push("--force".into());
        assert_json_error(&run(with_json(args)), 1, "io", "cannot write");
    } else {
        std::fs::remove_file(&probe).unwrap();
        eprintln!(
            "SKIPPED: running as root, a read-only directory is writable; exit 1 NOT checked"
        );
    }
    std::fs::set_permissions(&md, perms).unwrap();

    // A command line clap refuses is a JSON error too when --json is among the words.
    let o = run(["add", "--json", "--repo", &repo]);
    assert_json_error(&o, 2, "input", "required arguments were not provided");
    let o = run(["status", "--json", "--bogus"]);
    assert_json_error(&o, 2, "input", "--bogus");
    // Without --json, stdout stays empty on failure.
    let o = run(["status", "--repo", &missing]);
    assert_eq!(code(&o), 4);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}
