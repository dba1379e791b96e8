//! Delta updates end to end: the real `ota-sign` publishes patch targets, the real
//! `ota-server` serves them, the real `ota-client` applies them to the installed image (or
//! falls back to the full image).
use ota_tests::cli::{run, tree, Run, SignedRepo};
use ota_tests::noise::noise;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const NAME: &str = "gateway-fw";

/// 1.0.0 and a 1.1.0 that differs by a few edits (a typical firmware fix).
fn releases() -> (Vec<u8>, Vec<u8>) {
    let v1 = noise(1, 384 * 1024);
    let mut v2 = v1.clone();
    v2[5000..5064].copy_from_slice(&noise(2, 64));
    v2.splice(200_000..200_000, noise(3, 3000));
    v2.extend_from_slice(b"release 1.1.0");
    (v1, v2)
}

/// A signed repository (fields `repo`, `keys`, `work` through `Deref`) and its test helpers.
struct Repo(SignedRepo);

impl std::ops::Deref for Repo {
    type Target = SignedRepo;
    fn deref(&self) -> &SignedRepo {
        &self.0
    }
}

impl Repo {
    fn new() -> Self {
        Repo(SignedRepo::init())
    }

    /// `ota-sign add` of `data` as `version` with `extra` arguments, `--json`.
    fn add_with(&self, version: &str, data: &[u8], extra: &[&str]) -> Run {
        let file = self.work.join(format!("fw-{version}.img"));
        std::fs::write(&file, data).unwrap();
        let mut args: Vec<OsString> = vec![
            "add".into(),
            "--repo".into(),
            self.repo.clone().into(),
            "--keys".into(),
            self.keys.clone().into(),
            file.into(),
            "--name".into(),
            NAME.into(),
            "--version".into(),
            version.into(),
            "--hardware".into(),
            "board-a".into(),
            "--json".into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        run("ota-sign", &args)
    }

    fn add(&self, version: &str, data: &[u8], extra: &[&str]) -> serde_json::Value {
        let r = self.add_with(version, data, extra);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()
    }

    /// The stored file of a target (`targets/<sha256>.<name>`).
    fn target_file(&self, name: &str) -> Option<PathBuf> {
        let suffix = format!(".{name}");
        std::fs::read_dir(self.repo.join("targets"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&suffix))
    }

    fn root(&self) -> PathBuf {
        self.repo.join("metadata/1.root.json")
    }
}

struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
}

impl Dev {
    fn new(repo: &Repo, server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(dir.path().join("slot")).unwrap();
        let slot = dir.path().join("slot/firmware.img");
        let d = Dev {
            _dir: dir,
            state,
            slot,
        };
        let root = repo.root();
        let r = d.client(&[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            "board-a",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        d
    }

    fn client(&self, args: &[&str]) -> Run {
        ota_tests::cli::client(&self.state, args)
    }

    fn update(&self) -> serde_json::Value {
        let r = self.client(&[
            "update",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()
    }

    fn check(&self) -> serde_json::Value {
        let r = self.client(&[
            "check",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()
    }
}

fn targets_json(repo: &Path) -> serde_json::Value {
    let ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    let snap_v = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snap: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{snap_v}.snapshot.json"))).unwrap(),
    )
    .unwrap();
    let tv = snap["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .unwrap();
    serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{tv}.targets.json"))).unwrap(),
    )
    .unwrap()
}

#[test]
fn device_applies_the_patch_or_falls_back_to_the_full_image() {
    let (v1, v2) = releases();
    let repo = Repo::new();
    repo.add("1.0.0", &v1, &[]);
    let server = TestServer::start(&repo.repo);
    let url = server.url();

    // Three devices on 1.0.0; one of them has a slot that no longer is 1.0.0.
    let devs: Vec<Dev> = (0..3).map(|_| Dev::new(&repo, &url)).collect();
    for d in &devs {
        let out = d.update();
        assert_eq!(out["delta_used"], false, "{out}");
        assert_eq!(std::fs::read(&d.slot).unwrap(), v1);
    }
    let mut modified = v1.clone();
    modified[100] ^= 0xff;
    std::fs::write(&devs[1].slot, &modified).unwrap();

    let added = repo.add("1.1.0", &v2, &["--delta-from-previous", "1"]);
    let delta = &added["deltas"][0];
    assert_eq!(delta["published"], true, "{added}");
    assert_eq!(delta["base_version"], "1.0.0");
    let patch_target = "gateway-fw-1.1.0.from-1.0.0.patch";
    assert_eq!(delta["target"], patch_target);
    let full_len = added["length"].as_u64().unwrap();
    let patch_len = delta["length"].as_u64().unwrap();
    assert!(
        patch_len * 20 < full_len,
        "patch {patch_len} vs full {full_len}"
    );
    // The signed metadata of the patch: same release, typed delta naming the base.
    let tj = targets_json(&repo.repo);
    let ota = &tj["signed"]["targets"][patch_target]["custom"]["ota"];
    assert_eq!(ota["version"], "1.1.0");
    assert_eq!(
        ota["image"],
        tj["signed"]["targets"]["gateway-fw-1.1.0.img.zst"]["custom"]["ota"]["image"]
    );
    assert_eq!(ota["delta"]["base"]["version"], "1.0.0");
    assert_eq!(ota["delta"]["base"]["length"], v1.len() as u64);
    assert_eq!(ota["delta"]["format"], "ota-patch-v1");

    // Base matches: `check` announces the patch, `update` downloads only the patch.
    let checked = devs[0].check();
    assert_eq!(checked["delta"], patch_target, "{checked}");
    assert_eq!(checked["download_bytes"], patch_len);
    let out = devs[0].update();
    assert_eq!(out["delta_used"], true, "{out}");
    assert_eq!(out["delta"], patch_target);
    assert_eq!(out["downloaded_bytes"], patch_len, "{out}");
    assert!(out["delta_fallback"].is_null());
    assert_eq!(
        std::fs::read(&devs[0].slot).unwrap(),
        v2,
        "byte-identical result"
    );
    assert_eq!(out["installed"]["version"], "1.1.0");

    // A modified slot is no patch base: the full image, installed correctly.
    let checked = devs[1].check();
    assert!(checked["delta"].is_null(), "{checked}");
    let out = devs[1].update();
    assert_eq!(out["delta_used"], false, "{out}");
    assert!(
        out["delta_fallback"].is_null(),
        "no delta was even tried: {out}"
    );
    assert_eq!(out["downloaded_bytes"], full_len);
    assert_eq!(std::fs::read(&devs[1].slot).unwrap(), v2);

    // A corrupted patch on the server: TUF refuses it, the device falls back to the full image.
    let stored = repo.target_file(patch_target).unwrap();
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    bytes[mid + 1] ^= 0xaa;
    std::fs::write(&stored, &bytes).unwrap();
    let r = devs[2].client(&[
        "update",
        "--install-to",
        devs[2].slot.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("falling back to the full image"), "{r:?}");
    let out = r.json();
    assert_eq!(out["delta_used"], false, "{out}");
    assert!(out["delta_fallback"].is_string(), "{out}");
    assert_eq!(std::fs::read(&devs[2].slot).unwrap(), v2);
    assert_eq!(out["installed"]["version"], "1.1.0");
}

#[test]
fn delta_from_unknown_version_or_wrong_base_image_changes_nothing() {
    let (v1, v2) = releases();
    let repo = Repo::new();
    repo.add("1.0.0", &v1, &[]);
    let before = tree(&repo.repo);
    let r = repo.add_with("1.1.0", &v2, &["--delta-from", "gateway-fw@0.9.0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.starts_with("error: "), "{r:?}");
    assert!(
        r.stderr.contains("0.9.0") && r.stderr.contains("\nhint: "),
        "{r:?}"
    );
    assert_eq!(r.stderr.lines().count(), 2, "{r:?}");
    assert_eq!(tree(&repo.repo), before, "nothing changed on disk");

    // A --base-image that is not the base's image.
    let wrong = repo.work.join("not-1.0.0.img");
    std::fs::write(&wrong, &v2).unwrap();
    let r = repo.add_with(
        "1.1.0",
        &v2,
        &[
            "--delta-from",
            "gateway-fw@1.0.0",
            "--base-image",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("not the image of any delta base"),
        "{r:?}"
    );
    assert_eq!(tree(&repo.repo), before, "nothing changed on disk");

    // Another image name is refused too.
    let r = repo.add_with("1.1.0", &v2, &["--delta-from", "modem@1.0.0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(tree(&repo.repo), before);
}

#[test]
fn a_patch_that_is_not_smaller_is_not_published() {
    let repo = Repo::new();
    repo.add("1.0.0", &noise(10, 256 * 1024), &[]);
    let added = repo.add(
        "1.1.0",
        &noise(11, 256 * 1024),
        &["--delta-from", "gateway-fw@1.0.0"],
    );
    let delta = &added["deltas"][0];
    assert_eq!(delta["published"], false, "{added}");
    assert!(delta["reason"]
        .as_str()
        .unwrap()
        .contains("not clearly smaller"));
    assert!(delta["length"].is_null());
    assert!(repo
        .target_file("gateway-fw-1.1.0.from-1.0.0.patch")
        .is_none());
    let tj = targets_json(&repo.repo);
    let names: Vec<&String> = tj["signed"]["targets"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        names,
        ["gateway-fw-1.0.0.img.zst", "gateway-fw-1.1.0.img.zst"]
    );
}

#[test]
fn encrypted_release_gets_an_encrypted_patch_from_the_given_base_image() {
    let (v1, v2) = releases();
    let repo = Repo::new();
    let server = TestServer::start(&repo.repo);
    let dev = Dev::new(&repo, &server.url());
    let r = dev.client(&["keygen", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let public = r.json()["public_key"].as_str().unwrap().to_string();
    let r = run(
        "ota-sign",
        &[
            "recipients",
            "add",
            "--repo",
            repo.repo.to_str().unwrap(),
            "dev-a",
            &public,
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    repo.add("1.0.0", &v1, &["--encrypt-to", "device:dev-a"]);
    assert_eq!(dev.update()["installed"]["version"], "1.0.0");

    // The base is encrypted: the signer cannot read it and says what to do.
    let before = tree(&repo.repo);
    let enc = ["--encrypt-to", "device:dev-a", "--delta-from-previous", "1"];
    let r = repo.add_with("1.1.0", &v2, &enc);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("encrypted") && r.stderr.contains("--base-image"),
        "{r:?}"
    );
    assert_eq!(tree(&repo.repo), before, "nothing changed on disk");

    let base = repo.work.join("fw-1.0.0.img");
    let mut with_base: Vec<&str> = enc.to_vec();
    with_base.extend(["--base-image", base.to_str().unwrap()]);
    let added = repo.add("1.1.0", &v2, &with_base);
    assert_eq!(added["deltas"][0]["published"], true, "{added}");
    let patch_target = "gateway-fw-1.1.0.from-1.0.0.patch";
    let tj = targets_json(&repo.repo);
    let ota = &tj["signed"]["targets"][patch_target]["custom"]["ota"];
    assert!(ota["encryption"].is_object(), "patch is encrypted: {ota}");
    assert!(repo
        .repo
        .join(format!("targets/{patch_target}.slips"))
        .is_dir());
    // The stored patch is not the plaintext patch format (magic bytes hidden).
    let stored = std::fs::read(repo.target_file(patch_target).unwrap()).unwrap();
    assert_eq!(
        stored.len() as u64,
        added["deltas"][0]["length"].as_u64().unwrap()
    );
    assert!(!stored.starts_with(&ota_formats::patch::MAGIC[..]));

    let out = dev.update();
    assert_eq!(out["delta_used"], true, "{out}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v2);
}

/// A firmware image holding an LZ4-compressed kernel (as `lz4 -l -9` makes them): 3 MiB of
/// text-like content, a byte changed every 2,000 bytes per version.
fn kernel_image(version: u8) -> Vec<u8> {
    use ota_formats::patch::expand::lz4;
    let vocab: Vec<Vec<u8>> = (0..4000)
        .map(|i| noise(50 + i, 3 + (i as usize % 9)))
        .collect();
    let mut kernel = Vec::new();
    let mut x = 99u64;
    while kernel.len() < 3 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        kernel.extend_from_slice(&vocab[(x >> 33) as usize % vocab.len()]);
    }
    for at in (700..kernel.len()).step_by(2_000) {
        kernel[at] = kernel[at].wrapping_add(version);
    }
    let mut img = noise(60, 64 * 1024);
    img.extend(lz4::encode(&kernel, 9).unwrap());
    img.extend_from_slice(&[version; 4]);
    img
}

#[test]
fn compressed_kernel_is_patched_decompressed_and_recompressed_on_the_device() {
    let (v1, v2, v3) = (kernel_image(1), kernel_image(2), kernel_image(3));
    let repo = Repo::new();
    repo.add("1.0.0", &v1, &[]);
    let server = TestServer::start(&repo.repo);
    let dev = Dev::new(&repo, &server.url());
    assert_eq!(dev.update()["delta_used"], false);

    let added = repo.add("1.1.0", &v2, &["--delta-from-previous", "1"]);
    let delta = &added["deltas"][0];
    assert_eq!(delta["published"], true, "{added}");
    assert_eq!(delta["method"], "expanded-sparse-diff", "{added}");
    let out = dev.update();
    assert_eq!(out["delta_used"], true, "{out}");
    assert_eq!(
        std::fs::read(&dev.slot).unwrap(),
        v2,
        "kernel recompressed exactly"
    );

    // --delta-no-expand diffs the compressed bytes: a valid but much larger patch.
    let plain = repo.add(
        "1.2.0",
        &v3,
        &["--delta-from-previous", "1", "--delta-no-expand"],
    );
    let d3 = &plain["deltas"][0];
    assert_ne!(d3["method"], "expanded-sparse-diff", "{plain}");
    assert!(
        d3["patch_length"].as_u64().unwrap() > 4 * delta["patch_length"].as_u64().unwrap(),
        "{plain} vs {added}"
    );
}
