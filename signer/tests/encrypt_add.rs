//! `ota-sign add --encrypt-to`: encrypted targets, group slips in metadata, per-device slip
//! files, checked with the envelope API as a device would.
mod common;

use common::*;
use ota_formats::envelope::{
    decrypt_stream_checked, slip_path, EncryptionInfo, EnvelopeError, KeySlip, RecipientSecretKey,
};
use ota_formats::metadata::TargetFile;
use ota_formats::target_meta::OtaTarget;
use ota_signer::recipients::Recipients;
use std::io::Read;
use std::path::PathBuf;
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
    ok(&recipients(env, &["group-create", "--keys", &keys, group]));
    let file = env.keys.join(format!("group-{group}.otasec"));
    RecipientSecretKey::from_text(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn device(env: &Env, name: &str, group: Option<&str>) -> RecipientSecretKey {
    let secret = RecipientSecretKey::generate();
    let public = secret.public_key().to_text();
    let mut args = vec!["add", name, &public];
    if let Some(g) = group {
        args.extend(["--group", g]);
    }
    ok(&recipients(env, &args));
    secret
}

fn add_encrypted(env: &Env, img: &std::path::Path, version: &str, to: &str) -> Output {
    let mut args = env.add_args(img, "gw", version, "board-a");
    args.extend(["--encrypt-to".into(), to.into(), "--json".into()]);
    run(&args)
}

/// The published entry of `target`, its bytes, and its encryption info.
fn published(env: &Env, target: &str) -> (TargetFile, OtaTarget, Vec<u8>, EncryptionInfo) {
    let v = verify_repo(&env.repo);
    let t = v.targets.targets[target].clone();
    let file = env
        .repo
        .join("targets")
        .join(format!("{}.{target}", t.sha256().unwrap()));
    let bytes = std::fs::read(file).unwrap();
    ota_formats::hash::verify_bytes(&bytes, &t.hashes, t.length)
        .expect("TUF length and hashes are those of the encrypted file");
    let ota = OtaTarget::from_custom(t.custom.as_ref()).unwrap().unwrap();
    let info: EncryptionInfo = serde_json::from_value(ota.encryption.clone().unwrap()).unwrap();
    (t, ota, bytes, info)
}

fn slip_file(env: &Env, target: &str, secret: &RecipientSecretKey) -> PathBuf {
    env.repo
        .join("targets")
        .join(slip_path(target, &secret.id()))
}

/// What a device does: unwrap, decrypt, decompress.
fn install(
    target: &str,
    bytes: &[u8],
    info: &EncryptionInfo,
    secret: &RecipientSecretKey,
    device_slip: Option<&KeySlip>,
) -> Result<Vec<u8>, EnvelopeError> {
    let key = info.unwrap_data_key(target, secret, device_slip)?;
    let mut zst = Vec::new();
    decrypt_stream_checked(bytes, &mut zst, &key, info)?;
    let mut dec = zstd::stream::read::Decoder::new(&zst[..]).unwrap();
    dec.window_log_max(23).unwrap();
    let mut image = Vec::new();
    dec.read_to_end(&mut image).unwrap();
    Ok(image)
}

#[test]
fn encrypted_target_opens_for_its_group_and_device_only() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    let group = group_create(&env, "board-a");
    let member = device(&env, "gw-0001", Some("board-a"));
    let lab = device(&env, "lab-1", None);
    let other = device(&env, "lab-2", None);
    let img = env.image("fw.img", 300 * 1024 + 5, 3);
    let image = std::fs::read(&img).unwrap();

    let o = add_encrypted(&env, &img, "1.2.0", "group:board-a,device:lab-1");
    ok(&o);
    let report = json(&o);
    assert_eq!(report["encryption"]["groups"][0], "board-a");
    assert_eq!(report["encryption"]["device_slips"], 1);

    let target = "gw-1.2.0.img.zst";
    let (t, ota, bytes, info) = published(&env, target);
    // custom.ota.image stays the plaintext image.
    assert_eq!(ota.image.length, image.len() as u64);
    assert_eq!(ota.image.sha256, ota_formats::hash::sha256_hex(&image));
    assert_eq!(t.length, bytes.len() as u64);
    assert_eq!(&bytes[..8], b"OTAENV\r\n", "the target file is an envelope");
    assert!(info.device_slips);
    // The group slip is in the signed metadata, and only it.
    assert_eq!(info.slips.len(), 1);
    assert_eq!(info.slips[0].recipient, group.id());
    assert_eq!(info.slips[0].target, target);

    // Group: the group secret (provisioned into member devices) decrypts via the metadata.
    assert_eq!(install(target, &bytes, &info, &group, None).unwrap(), image);
    // The decrypted payload is the zstd stream.
    let key = info.unwrap_data_key(target, &group, None).unwrap();
    let mut zst = Vec::new();
    decrypt_stream_checked(&bytes[..], &mut zst, &key, &info).unwrap();
    assert_eq!(&zst[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    assert_eq!(info.plaintext_length, zst.len() as u64);

    // Device: its slip file at targets/<target>.slips/<id>.slip.
    let path = slip_file(&env, target, &lab);
    assert_eq!(
        path,
        env.repo
            .join("targets/gw-1.2.0.img.zst.slips")
            .join(format!("{}.slip", lab.id()))
    );
    assert_eq!(mode(&path), 0o644);
    let slip = KeySlip::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        install(target, &bytes, &info, &lab, Some(&slip)).unwrap(),
        image
    );
    // ... only with that device's secret,
    assert!(matches!(
        install(target, &bytes, &info, &other, Some(&slip)),
        Err(EnvelopeError::WrongKey { .. })
    ));
    // ... and only for that target.
    assert!(matches!(
        info.unwrap_data_key("gw-9.9.9.img.zst", &lab, Some(&slip)),
        Err(EnvelopeError::BindingMismatch { .. })
    ));
    // Devices that were not asked for have no slip at all.
    for s in [&member, &other] {
        assert!(!slip_file(&env, target, s).exists());
        assert!(matches!(
            install(target, &bytes, &info, s, None),
            Err(EnvelopeError::NoSlipForRecipient(_))
        ));
    }
    let dir = env.repo.join("targets/gw-1.2.0.img.zst.slips");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    // A second release: a slip of the first one does not open it.
    let img2 = env.image("fw2.img", 200 * 1024, 4);
    ok(&add_encrypted(&env, &img2, "1.3.0", "device:lab-1"));
    let (_, _, bytes2, info2) = published(&env, "gw-1.3.0.img.zst");
    assert!(info2.slips.is_empty());
    let mut moved = slip.clone();
    moved.target = "gw-1.3.0.img.zst".into();
    moved.payload_id = info2.payload_id;
    assert!(matches!(
        install("gw-1.3.0.img.zst", &bytes2, &info2, &lab, Some(&moved)),
        Err(EnvelopeError::SlipDoesNotOpen)
    ));

    // No temp files or directories left.
    for (p, _) in tree(&env.repo) {
        assert!(!p.to_string_lossy().contains(".ota-tmp-"), "{p:?}");
    }
}

#[test]
fn a_removed_device_has_no_slip_in_the_next_release() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    let a = device(&env, "dev-a", None);
    let b = device(&env, "dev-b", None);
    let img = env.image("fw.img", 64 * 1024, 5);
    let image = std::fs::read(&img).unwrap();
    ok(&add_encrypted(&env, &img, "1.0.0", "all-devices"));
    ok(&recipients(&env, &["remove", "dev-b"]));
    ok(&add_encrypted(&env, &img, "1.1.0", "all-devices"));

    let (v1, v2) = ("gw-1.0.0.img.zst", "gw-1.1.0.img.zst");
    assert!(slip_file(&env, v2, &a).exists());
    assert!(
        !slip_file(&env, v2, &b).exists(),
        "removed device got a slip"
    );
    let (_, _, bytes2, info2) = published(&env, v2);
    assert!(matches!(
        install(v2, &bytes2, &info2, &b, None),
        Err(EnvelopeError::NoSlipForRecipient(_))
    ));
    let slip_a = KeySlip::from_bytes(&std::fs::read(slip_file(&env, v2, &a)).unwrap()).unwrap();
    assert_eq!(
        install(v2, &bytes2, &info2, &a, Some(&slip_a)).unwrap(),
        image
    );

    // The earlier release is unaffected: b still opens it.
    let (_, _, bytes1, info1) = published(&env, v1);
    let slip_b = KeySlip::from_bytes(&std::fs::read(slip_file(&env, v1, &b)).unwrap()).unwrap();
    assert_eq!(
        install(v1, &bytes1, &info1, &b, Some(&slip_b)).unwrap(),
        image
    );
}

#[test]
fn hardware_means_the_groups_named_like_the_hardware_ids() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    let group = group_create(&env, "board-a");
    device(&env, "gw-0001", Some("board-a"));
    let img = env.image("fw.img", 10_000, 6);
    ok(&add_encrypted(&env, &img, "1.0.0", "hardware"));
    let (_, _, bytes, info) = published(&env, "gw-1.0.0.img.zst");
    assert_eq!(info.slips.len(), 1);
    assert!(!info.device_slips);
    assert!(!env.repo.join("targets/gw-1.0.0.img.zst.slips").exists());
    assert_eq!(
        install("gw-1.0.0.img.zst", &bytes, &info, &group, None).unwrap(),
        std::fs::read(&img).unwrap()
    );
}

#[test]
fn releases_without_resolvable_recipients_are_refused_with_no_change() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    let img = env.image("fw.img", 10_000, 7);
    let keys = env.keys.display().to_string();
    // No devices at all.
    let before = tree(env.tmp.path());
    assert_fails(
        &add_encrypted(&env, &img, "1.0.0", "all-devices"),
        2,
        "no devices are registered",
    );
    assert_eq!(tree(env.tmp.path()), before);

    ok(&recipients(
        &env,
        &["group-create", "--keys", &keys, "empty"],
    ));
    ok(&recipients(
        &env,
        &["group-create", "--keys", &keys, "board-b"],
    ));
    device(&env, "gw-0001", Some("board-b"));
    let cases = [
        ("group:empty", "recipient group \"empty\" has no devices"),
        ("group:nope", "unknown recipient group \"nope\""),
        ("device:nope", "unknown recipient device \"nope\""),
        (
            "device:gw-0001,device:ghost",
            "unknown recipient device \"ghost\"",
        ),
        ("hardware", "hardware id \"board-a\" has no recipient group"),
        ("everyone", "invalid --encrypt-to element \"everyone\""),
        ("", "invalid --encrypt-to element"),
    ];
    for (to, needle) in cases {
        let before = tree(env.tmp.path());
        assert_fails(&add_encrypted(&env, &img, "1.0.0", to), 2, needle);
        assert_eq!(
            tree(env.tmp.path()),
            before,
            "--encrypt-to {to:?} changed the disk"
        );
    }
}

#[test]
fn a_thousand_device_slips() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    // A fleet is registered in one run with `recipients import`.
    let secrets: Vec<RecipientSecretKey> =
        (0..1000).map(|_| RecipientSecretKey::generate()).collect();
    let fleet: String = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| format!("dev-{i:04} {}\n", s.public_key().to_text()))
        .collect();
    let fleet_file = env.tmp.path().join("fleet.txt");
    std::fs::write(&fleet_file, fleet).unwrap();
    ok(&recipients(&env, &["import", fleet_file.to_str().unwrap()]));
    assert_eq!(Recipients::load(&env.repo).unwrap().devices.len(), 1000);
    let img = env.image("fw.img", 50_000, 8);
    let started = std::time::Instant::now();
    let o = add_encrypted(&env, &img, "1.0.0", "all-devices");
    ok(&o);
    eprintln!("add with 1,000 device slips took {:?}", started.elapsed());
    assert_eq!(json(&o)["encryption"]["device_slips"], 1000);
    let target = "gw-1.0.0.img.zst";
    let dir = env.repo.join("targets").join(format!("{target}.slips"));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1000);
    let (_, _, bytes, info) = published(&env, target);
    let image = std::fs::read(&img).unwrap();
    for s in [&secrets[0], &secrets[499], &secrets[999]] {
        let slip =
            KeySlip::from_bytes(&std::fs::read(slip_file(&env, target, s)).unwrap()).unwrap();
        assert_eq!(
            install(target, &bytes, &info, s, Some(&slip)).unwrap(),
            image
        );
    }
    // Every file is a well-formed slip for its own recipient and this target.
    for s in &secrets {
        let slip =
            KeySlip::from_bytes(&std::fs::read(slip_file(&env, target, s)).unwrap()).unwrap();
        assert_eq!((slip.recipient, slip.target.as_str()), (s.id(), target));
    }
}

#[test]
fn two_devices_with_one_key_are_refused_when_their_slips_are_written() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    let shared = RecipientSecretKey::generate();
    device(&env, "gw-0001", None);
    device(&env, "gw-0002", None);
    // A hand-edited file: `recipients add` refuses a second device with the same key, and
    // `add` reads the list as a stream without a set of every key.
    let path = env.repo.join("ota-recipients.json");
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for d in r["devices"].as_array_mut().unwrap() {
        d["public_key"] = shared.public_key().to_text().into();
        d["recipient_id"] = shared.id().to_string().into();
    }
    std::fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();
    let img = env.image("fw.img", 20_000, 3);
    let o = add_encrypted(&env, &img, "1.0.0", "all-devices");
    assert_fails(&o, 4, "have the public key");
    let targets: Vec<_> = std::fs::read_dir(env.repo.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(targets.iter().all(|n| !n.contains("slips")), "{targets:?}");
}

#[test]
fn leftovers_of_a_crashed_run_are_replaced_and_listed_slips_never_are() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    let lab = device(&env, "lab-1", None);
    let img = env.image("fw.img", 20_000, 9);
    // A run that crashed after renaming its slips into place, before publishing metadata,
    // and one that crashed while writing slips.
    let slips = env.repo.join("targets/gw-1.0.0.img.zst.slips");
    std::fs::create_dir(&slips).unwrap();
    std::fs::write(slips.join("stale.slip"), b"old").unwrap();
    let tmp = env.repo.join("targets/.ota-tmp-slips-1-x");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("half.slip"), b"half").unwrap();

    ok(&add_encrypted(&env, &img, "1.0.0", "device:lab-1"));
    assert!(!slips.join("stale.slip").exists());
    assert!(!tmp.exists());
    let names: Vec<String> = std::fs::read_dir(&slips)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [format!("{}.slip", lab.id())]);

    // The published release's slips are never replaced, even on a deliberate re-add.
    let mut args = env.add_args(&img, "gw", "1.0.0", "board-a");
    args.extend(["--encrypt-to", "device:lab-1", "--allow-downgrade"].map(String::from));
    let before = tree(env.tmp.path());
    assert_fails(&run(&args), 5, "already listed");
    assert_eq!(tree(env.tmp.path()), before);
}

#[test]
fn encrypted_targets_can_be_staged_and_published_later() {
    let env = Env::new();
    env.init(&["--zstd-level", "3"]);
    let lab = device(&env, "lab-1", None);
    let img = env.image("fw.img", 20_000, 10);
    let args = vec![
        "add".to_string(),
        "--repo".into(),
        env.repo.display().to_string(),
        img.display().to_string(),
        "--name".into(),
        "gw".into(),
        "--version".into(),
        "2.0.0".into(),
        "--hardware".into(),
        "board-a".into(),
        "--encrypt-to".into(),
        "device:lab-1".into(),
        "--no-publish".into(),
    ];
    ok(&run(&args));
    let target = "gw-2.0.0.img.zst";
    assert!(
        slip_file(&env, target, &lab).is_file(),
        "slips are written with the payload"
    );
    assert!(!verify_repo(&env.repo).targets.targets.contains_key(target));
    ok(&run(env.repo_args("publish")));
    let (_, _, bytes, info) = published(&env, target);
    let slip = KeySlip::from_bytes(&std::fs::read(slip_file(&env, target, &lab)).unwrap()).unwrap();
    assert_eq!(
        install(target, &bytes, &info, &lab, Some(&slip)).unwrap(),
        std::fs::read(&img).unwrap()
    );
}
