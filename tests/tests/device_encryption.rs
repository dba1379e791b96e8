//! Encrypted releases through the device CLI (issue 4): targets encrypted with the envelope
//! API and published with `RepoFixture`, served by the real `ota-server`, installed by
//! `ota-client`. The right device decrypts; every wrong key, slip or payload is refused with
//! exit 4 and leaves the installed firmware and installed.json untouched.
use ota_formats::envelope::{
    encrypt_stream, slip_path, wrap_key, DataKey, EncryptParams, EncryptionInfo,
    RecipientPublicKey, SlipBinding, HEADER_LEN, TAG_LEN,
};
use ota_formats::hash::sha256_hex;
use ota_formats::metadata::TargetFile;
use ota_formats::target_meta::{Compression, ImageInfo, OtaTarget};
use ota_tests::cli::{run, tree, Run};
use ota_tests::fixture::RepoFixture;
use ota_tests::noise::noise;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::PathBuf;

const CHUNK: u32 = 4096;

struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
    public: RecipientPublicKey,
}

impl Dev {
    fn new(fx: &RepoFixture, host: &dyn RepoHost) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(dir.path().join("slot")).unwrap();
        let root = dir.path().join("root.json");
        std::fs::write(&root, fx.root_bytes()).unwrap();
        let s = state.to_str().unwrap().to_string();
        let r = run(
            "ota-client",
            &[
                "init",
                "--state",
                &s,
                "--root",
                root.to_str().unwrap(),
                "--server",
                &host.url(),
                "--hardware",
                "board-a",
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let r = run("ota-client", &["keygen", "--state", &s, "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        let public =
            RecipientPublicKey::from_text(r.json()["public_key"].as_str().unwrap()).unwrap();
        assert_eq!(r.json()["recipient_id"], public.id().to_string());
        let again = run("ota-client", &["keygen", "--state", &s]);
        assert_eq!(again.code, 2, "keygen must not overwrite: {again:?}");
        Dev {
            slot: dir.path().join("slot/firmware.img"),
            _dir: dir,
            state,
            public,
        }
    }

    fn update(&self) -> Run {
        run(
            "ota-client",
            &[
                "update",
                "--state",
                self.state.to_str().unwrap(),
                "--install-to",
                self.slot.to_str().unwrap(),
                "--json",
            ],
        )
    }

    fn client(&self, args: &[&str]) -> Run {
        ota_tests::cli::client(&self.state, args)
    }

    fn observable(&self) -> (Vec<(PathBuf, Vec<u8>)>, Vec<u8>) {
        (
            tree(self.slot.parent().unwrap()).into_iter().collect(),
            std::fs::read(self.state.join("installed.json")).unwrap(),
        )
    }

    fn installed_version(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.state.join("installed.json")).unwrap())
                .unwrap();
        v["version"].as_str().unwrap().to_string()
    }
}

/// An encrypted release: the sealed payload and its (slip-less) encryption info.
struct Sealed {
    image: Vec<u8>,
    key: DataKey,
    sealed: Vec<u8>,
    info: EncryptionInfo,
}

fn seal(image: Vec<u8>) -> Sealed {
    let compressed = zstd::encode_all(&image[..], 3).unwrap();
    let key = DataKey::generate();
    let mut sealed = Vec::new();
    let params = EncryptParams::new(compressed.len() as u64).with_chunk_size(CHUNK);
    let payload = encrypt_stream(&compressed[..], &mut sealed, &key, &params).unwrap();
    Sealed {
        image,
        key,
        sealed,
        info: EncryptionInfo::new(&payload),
    }
}

/// Publish `wire` as the only version-`version` target `path`, with `info` as its signed
/// `custom.ota.encryption` (or plain when `None`).
fn publish(
    fx: &mut RepoFixture,
    path: &str,
    version: &str,
    image: &[u8],
    wire: &[u8],
    compression: Compression,
    info: Option<&EncryptionInfo>,
) {
    fx.targets.targets.retain(|p, _| !p.starts_with("fw-2."));
    let mut ota = OtaTarget::new(
        "fw",
        version,
        vec!["board-a".into()],
        ImageInfo::new(image.len() as u64, sha256_hex(image)),
        compression,
    )
    .unwrap();
    ota.encryption = info.map(|i| serde_json::to_value(i).unwrap());
    let mut entry: TargetFile = fx.store_target(path, wire);
    entry.custom = Some(ota.to_custom(None).unwrap());
    fx.targets.targets.insert(path.to_string(), entry);
    fx.publish();
}

fn put_slip(
    fx: &RepoFixture,
    target: &str,
    for_device: &Dev,
    slip: &ota_formats::envelope::KeySlip,
) {
    let rel = slip_path(target, &for_device.public.id());
    let p = fx.path().join("targets").join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, slip.to_bytes().unwrap()).unwrap();
}

fn chunk_range(i: usize) -> std::ops::Range<usize> {
    let start = HEADER_LEN + i * (CHUNK as usize + TAG_LEN);
    start..start + CHUNK as usize + TAG_LEN
}

#[test]
fn encrypted_releases_group_and_device_slips_and_every_refusal() {
    let mut fx = RepoFixture::new();
    let v1 = noise(1, 20_000);
    publish(
        &mut fx,
        "fw-1.0.0.img",
        "1.0.0",
        &v1,
        &v1,
        Compression::None,
        None,
    );
    let server = TestServer::start(fx.path());
    let (group, per_device, outsider) = (
        Dev::new(&fx, &server),
        Dev::new(&fx, &server),
        Dev::new(&fx, &server),
    );
    // An unencrypted target still works.
    for d in [&group, &per_device, &outsider] {
        let r = d.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(std::fs::read(&d.slot).unwrap(), v1);
    }

    // Release 2.0.0: a group slip embedded in metadata for `group`, a slip file for
    // `per_device`, nothing for `outsider`.
    let good = seal(noise(2, 60_000));
    let target = "fw-2.0.0.img.zst.enc";
    let binding = good.info.binding(target);
    let mut info = good.info.clone();
    info.slips
        .push(wrap_key(&good.key, &group.public, &binding).unwrap());
    info.device_slips = true;
    let device_slip = wrap_key(&good.key, &per_device.public, &binding).unwrap();
    put_slip(&fx, target, &per_device, &device_slip);
    publish(
        &mut fx,
        target,
        "2.0.0",
        &good.image,
        &good.sealed,
        Compression::Zstd,
        Some(&info),
    );

    // Not addressed to `outsider`: not an update for it (issue 10, defect 8: it used to be
    // "update available" then exit 4 on every run). Up to date, nothing downloaded.
    let before = outsider.observable();
    let r = outsider.update();
    assert_eq!(r.code, 100, "{r:?}");
    assert_eq!(r.json()["skipped"][0]["version"], "2.0.0", "{r:?}");
    assert_eq!(
        r.json()["skipped"][0]["reason"],
        "encrypted for other devices",
        "{r:?}"
    );
    assert_eq!(outsider.observable(), before);
    let c = outsider.client(&["check"]);
    assert_eq!(c.code, 100, "{c:?}");
    assert!(c.stdout.contains("not for this device: 2.0.0"), "{c:?}");

    for d in [&group, &per_device] {
        let r = d.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(std::fs::read(&d.slot).unwrap(), good.image);
        assert_eq!(d.installed_version(), "2.0.0");
    }

    // Every broken variant, offered to `outsider` (still on 1.0.0): refused, nothing changed.
    type Variant = (
        &'static str,
        &'static str,
        Box<dyn Fn(&mut Vec<u8>) -> Option<SlipBinding>>,
    );
    let variants: Vec<Variant> = vec![
        (
            "another-key",
            "key slip is for recipient",
            Box::new(|_| None),
        ),
        (
            "other-target",
            "bound to target",
            Box::new(|_| {
                Some(SlipBinding::new(
                    "fw-9.9.9.img.zst.enc",
                    ota_formats::envelope::PayloadId([7; 16]),
                ))
            }),
        ),
        (
            "flipped-bit",
            "does not authenticate",
            Box::new(|b: &mut Vec<u8>| {
                let r = chunk_range(2);
                b[r.start + 100] ^= 0x04;
                None
            }),
        ),
        (
            "cut-last-chunk",
            "truncated",
            Box::new(|b: &mut Vec<u8>| {
                let n = b.len();
                let last = (n - HEADER_LEN) % (CHUNK as usize + TAG_LEN);
                b.truncate(
                    n - if last == 0 {
                        CHUNK as usize + TAG_LEN
                    } else {
                        last
                    },
                );
                None
            }),
        ),
        (
            "swapped-chunks",
            "reordered",
            Box::new(|b: &mut Vec<u8>| {
                let (a, c) = (chunk_range(1), chunk_range(2));
                let first = b[a.clone()].to_vec();
                let second = b[c.clone()].to_vec();
                b[a].copy_from_slice(&second);
                b[c].copy_from_slice(&first);
                None
            }),
        ),
    ];
    for (case, expect, mutate) in variants {
        let s = seal(noise(3, 60_000));
        let path = format!("fw-2.0.0-{case}.img.zst.enc");
        let mut wire = s.sealed.clone();
        let binding = mutate(&mut wire).unwrap_or_else(|| s.info.binding(&path));
        let mut info = s.info.clone();
        info.device_slips = true;
        let slip = if case == "another-key" {
            // The slip file at the outsider's path is the one made for another device.
            wrap_key(&s.key, &per_device.public, &binding).unwrap()
        } else {
            wrap_key(&s.key, &outsider.public, &binding).unwrap()
        };
        put_slip(&fx, &path, &outsider, &slip);
        publish(
            &mut fx,
            &path,
            "2.0.0",
            &s.image,
            &wire,
            Compression::Zstd,
            Some(&info),
        );
        let before = outsider.observable();
        let r = outsider.update();
        assert_eq!(r.code, 4, "{case}: {r:?}");
        assert!(
            r.stderr.contains(expect),
            "{case}: expected {expect:?} in {r:?}"
        );
        assert!(r.stderr.contains("hint: "), "{case}: {r:?}");
        assert_eq!(outsider.observable(), before, "{case}: something changed");
        assert_eq!(std::fs::read(&outsider.slot).unwrap(), v1, "{case}");
        assert_eq!(outsider.installed_version(), "1.0.0", "{case}");
    }

    // A good slip for the outsider: now it installs.
    let s = seal(noise(4, 30_000));
    let path = "fw-2.0.0-final.img.zst.enc";
    let mut info = s.info.clone();
    info.device_slips = true;
    put_slip(
        &fx,
        path,
        &outsider,
        &wrap_key(&s.key, &outsider.public, &s.info.binding(path)).unwrap(),
    );
    publish(
        &mut fx,
        path,
        "2.0.0",
        &s.image,
        &s.sealed,
        Compression::Zstd,
        Some(&info),
    );
    let r = outsider.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&outsider.slot).unwrap(), s.image);
}

#[test]
fn verified_download_is_reused_after_a_refusal_and_a_keyless_device_skips() {
    let mut fx = RepoFixture::new();
    let server = TestServer::start(fx.path());
    let dev = Dev::new(&fx, &server);
    let s = seal(noise(5, 30_000));
    let path = "fw-2.0.0.img.zst.enc";
    let mut info = s.info.clone();
    info.device_slips = true;
    publish(
        &mut fx,
        path,
        "2.0.0",
        &s.image,
        &s.sealed,
        Compression::Zstd,
        Some(&info),
    );

    // A slip at this device's path made for another key: refused (evidence of a mistake or
    // tampering, not "not for this device"), but the TUF-verified download stays cached.
    let stranger = ota_formats::envelope::RecipientSecretKey::generate();
    put_slip(
        &fx,
        path,
        &dev,
        &wrap_key(&s.key, stranger.public_key(), &s.info.binding(path)).unwrap(),
    );
    let r = dev.update();
    assert_eq!(r.code, 4, "{r:?}");
    assert!(!dev.slot.exists());
    assert!(!dev.state.join("installed.json").exists());
    let downloads: Vec<_> = std::fs::read_dir(dev.state.join("downloads"))
        .unwrap()
        .collect();
    assert_eq!(downloads.len(), 1);

    // The slip appears and the server loses the target file: the cached copy is used.
    put_slip(
        &fx,
        path,
        &dev,
        &wrap_key(&s.key, &dev.public, &s.info.binding(path)).unwrap(),
    );
    let stored = fx
        .path()
        .join("targets")
        .join(format!("{}.{path}", sha256_hex(&s.sealed)));
    std::fs::remove_file(stored).unwrap();
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), s.image);
    assert_eq!(dev.installed_version(), "2.0.0");

    // A device without any key is not a recipient of an encrypted release: it is passed
    // over (with the reason, and a warning in the log), nothing changes.
    std::fs::remove_file(dev.state.join("device.key")).unwrap();
    std::fs::remove_file(dev.state.join("installed.json")).unwrap();
    let before = tree(dev.slot.parent().unwrap());
    let r = dev.update();
    assert_eq!(r.code, 100, "{r:?}");
    assert_eq!(
        r.json()["skipped"][0]["reason"],
        "encrypted, and this device holds no decryption key",
        "{r:?}"
    );
    assert!(r.stderr.contains("holds no decryption key"), "{r:?}");
    assert_eq!(tree(dev.slot.parent().unwrap()), before);
}
