//! Files named by a user (keys, firmware, base images, device lists) that are not regular
//! files are refused at once, with the right exit code and a message naming the path and
//! what it is. Before, a FIFO key file blocked `ota-sign add` forever and a link to
//! /dev/zero made it read gigabytes, both while it held the repository lock.
mod common;

use common::*;
use std::time::Duration;

/// Long enough for a loaded machine, far below what a blocked or endless read would take.
const LIMIT: Duration = Duration::from_secs(60);

fn refused(args: &[String], exit: i32, needle: &str) {
    let (o, took) = run_with_timeout(args, LIMIT);
    assert_fails(&o, exit, needle);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn a_fifo_or_dev_zero_as_key_file_is_refused_quickly_with_exit_3() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 1);
    let key = env.keys.join("targets-1.pem");
    let saved = std::fs::read(&key).unwrap();

    std::fs::remove_file(&key).unwrap();
    mkfifo(&key);
    let before = tree(env.tmp.path());
    refused(
        &env.add_args(&img, "fw", "1.0.0", "hw"),
        3,
        &format!("key file {} is a FIFO, not a regular file", key.display()),
    );
    assert_eq!(tree(env.tmp.path()), before, "nothing may change");
    assert!(
        !env.repo.join(".ota-sign.lock").exists(),
        "the lock is released"
    );

    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &key).unwrap();
    refused(
        &env.add_args(&img, "fw", "1.0.0", "hw"),
        3,
        &format!(
            "key file {} is a character device, not a regular file",
            key.display()
        ),
    );

    // `publish` and `init` (which reuses present key files) load keys the same way.
    refused(
        &{
            let mut a = env.repo_args("publish");
            a.push("--force".into());
            a
        },
        3,
        "is a character device",
    );
    let other = env.tmp.path().join("repo2");
    refused(
        &[
            "init".into(),
            "--repo".into(),
            other.display().to_string(),
            "--keys".into(),
            env.keys.display().to_string(),
        ],
        3,
        "is a character device",
    );

    // An oversized key file is refused without reading it all.
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, vec![b'A'; 1 << 20]).unwrap();
    refused(
        &env.add_args(&img, "fw", "1.0.0", "hw"),
        3,
        "is larger than the limit",
    );

    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, saved).unwrap();
    assert_eq!(code(&run(env.add_args(&img, "fw", "1.0.0", "hw"))), 0);
}

#[test]
fn a_fifo_as_firmware_or_base_image_is_refused_quickly_with_exit_2() {
    let env = Env::new();
    env.init(&[]);
    let fifo = env.tmp.path().join("fw.fifo");
    mkfifo(&fifo);
    let before = tree(env.tmp.path());
    refused(
        &env.add_args(&fifo, "fw", "1.0.0", "hw"),
        2,
        &format!("firmware {} is a FIFO, not a regular file", fifo.display()),
    );
    assert_eq!(tree(env.tmp.path()), before, "nothing may change");

    let zero = env.tmp.path().join("zero.img");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    refused(
        &env.add_args(&zero, "fw", "1.0.0", "hw"),
        2,
        "is a character device, not a regular file",
    );

    let v1 = env.image("v1.img", 50_000, 2);
    assert_eq!(code(&run(env.add_args(&v1, "fw", "1.0.0", "hw"))), 0);
    let v2 = env.image("v2.img", 50_000, 3);
    let mut args = env.add_args(&v2, "fw", "1.1.0", "hw");
    args.extend([
        "--delta-from".to_string(),
        "fw@1.0.0".into(),
        "--base-image".into(),
        fifo.display().to_string(),
    ]);
    let before = tree(env.tmp.path());
    refused(
        &args,
        2,
        &format!(
            "--base-image {} is a FIFO, not a regular file",
            fifo.display()
        ),
    );
    assert_eq!(tree(env.tmp.path()), before, "nothing may change");
}

#[test]
fn a_fifo_as_device_list_or_repository_file_is_refused_quickly() {
    let env = Env::new();
    env.init(&[]);
    let fifo = env.tmp.path().join("fleet.fifo");
    mkfifo(&fifo);
    refused(
        &[
            "recipients".into(),
            "import".into(),
            "--repo".into(),
            env.repo.display().to_string(),
            fifo.display().to_string(),
        ],
        2,
        &format!("device list {} is a FIFO", fifo.display()),
    );

    // The repository's own files are read the same way (exit 4: a corrupt repository).
    let recipients = env.repo.join("ota-recipients.json");
    mkfifo(&recipients);
    refused(
        &[
            "recipients".into(),
            "list".into(),
            "--repo".into(),
            env.repo.display().to_string(),
        ],
        4,
        "ota-recipients.json is a FIFO",
    );
    std::fs::remove_file(&recipients).unwrap();

    let config = env.repo.join("ota-repo.json");
    std::fs::remove_file(&config).unwrap();
    mkfifo(&config);
    refused(
        &[
            "status".into(),
            "--repo".into(),
            env.repo.display().to_string(),
        ],
        4,
        "ota-repo.json is a FIFO",
    );
}
