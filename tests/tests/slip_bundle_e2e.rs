//! Slip bundles end to end with the real binaries: `ota-sign add --encrypt-to all-devices
//! --slips bundle` writes one slip file per release for a fleet (here 3,000 devices, so the
//! bundle has several blocks), the real `ota-server` serves it, and each `ota-client` device
//! fetches its block with one Range request and installs. A device that is not in the bundle
//! skips the release; a bundle that does not match its signed index (records shifted, a file
//! larger than the index says, a file cut short, another release's bundle) is refused with a
//! named error and changes nothing.
use ota_formats::envelope::{
    bundle_path, RecipientPublicKey, RecipientSecretKey, SlipBundleIndex, RECORD_LEN,
};
use ota_tests::cli::Run;
use ota_tests::release::{Device as Dev, Owner};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;

const NAME: &str = "gateway-fw";
const HW: &str = "board-a";
const FLEET: usize = 3000;

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `ota-sign add` a release of `data` with its device slips in a bundle.
fn add(owner: &Owner, version: &str, data: &[u8]) -> (String, Run) {
    let extra = ["--encrypt-to", "all-devices", "--slips", "bundle", "--json"];
    owner.add(NAME, HW, version, data, &extra)
}

/// A device with its own key; returns it and its public key.
fn device(owner: &Owner, server: &str) -> (Dev, String) {
    let d = Dev::new(owner, server, HW);
    let (public, _) = d.keygen();
    (d, public)
}

/// Register `named` devices and `FLEET` others (random keys) in one import.
fn register(owner: &Owner, named: &[(&str, &str)]) {
    let mut list: String = named
        .iter()
        .map(|(name, public)| format!("{name} {public}\n"))
        .collect();
    for i in 0..FLEET {
        let k = RecipientSecretKey::generate();
        list.push_str(&format!("fleet-{i:05} {}\n", k.public_key().to_text()));
    }
    let file = owner.work.join("fleet.txt");
    std::fs::write(&file, list).unwrap();
    owner.ok(&[
        "recipients",
        "import",
        "--repo",
        owner.repo.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
}

/// Offer `dev` the current release with the bundle file replaced by `bytes`: refused with
/// `code` and `needle` on stderr, nothing changed.
fn refused(owner: &Owner, target: &str, dev: &Dev, bytes: &[u8], code: i32, needle: &str) {
    let path = owner.bundle(target);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let before = dev.observable();
    let r = dev.update();
    std::fs::write(&path, &good).unwrap();
    assert_eq!(r.code, code, "{needle}: {r:?}");
    assert!(r.stderr.contains(needle), "expected {needle:?}: {r:?}");
    assert_eq!(dev.observable(), before, "{needle}: something changed");
}

#[test]
fn a_fleet_release_in_one_slip_bundle_installs_and_every_lie_is_refused() {
    let owner = Owner::new();
    let server = TestServer::start(&owner.repo);
    let url = server.url();
    let (a, a_pub) = device(&owner, &url);
    let a_id = RecipientPublicKey::from_text(&a_pub).unwrap().id();
    let (b, b_pub) = device(&owner, &url);
    let (outsider, _) = device(&owner, &url);
    register(&owner, &[("dev-a", &a_pub), ("dev-b", &b_pub)]);

    let v1 = image(1, 200_000);
    let (t1, r) = add(&owner, "1.0.0", &v1);
    assert_eq!(r.json()["encryption"]["device_slips"], FLEET as u64 + 2);
    // One file for the whole fleet, no slip directory.
    let bundle = std::fs::read(owner.bundle(&t1)).unwrap();
    let header = 31 + t1.len();
    assert_eq!(bundle.len(), header + (FLEET + 2) * RECORD_LEN);
    assert!(!owner
        .repo
        .join("targets")
        .join(format!("{t1}.slips"))
        .exists());
    let listed = r.json()["ota"]["encryption"]["slip_bundle"].clone();
    assert_eq!(listed["records"], FLEET as u64 + 2, "{listed}");
    assert!(
        listed["block_bits"].as_u64().unwrap() >= 1,
        "several blocks: {listed}"
    );

    for d in [&a, &b] {
        let r = d.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(std::fs::read(&d.slot).unwrap(), v1);
    }
    // Not in the bundle: not an update for it.
    let before = outsider.observable();
    let r = outsider.update();
    assert_eq!(r.code, 100, "{r:?}");
    assert_eq!(r.json()["skipped"][0]["version"], "1.0.0", "{r:?}");
    assert_eq!(outsider.observable(), before);

    let v2 = image(2, 200_000);
    let (t2, added) = add(&owner, "2.0.0", &v2);
    let good = std::fs::read(owner.bundle(&t2)).unwrap();
    // Records shifted by one: every block holds a record of another block.
    let mut shifted = good.clone();
    shifted.splice(header..header, [0xff; RECORD_LEN]);
    shifted.truncate(good.len());
    refused(&owner, &t2, &a, &shifted, 4, "not of block");
    // A file larger than its index says.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; RECORD_LEN]);
    refused(&owner, &t2, &a, &longer, 4, "larger than");
    // Cut short: in the middle of this device's block (the server answers fewer bytes), and
    // before it (416).
    let index = index_of(&added);
    let (_, at, len) = index.block_for(&a_id).unwrap();
    let cut = usize::try_from(at + len).unwrap() - 10;
    refused(&owner, &t2, &a, &good[..cut], 4, "the index says");
    refused(
        &owner,
        &t2,
        &a,
        &good[..header],
        4,
        "is 0 bytes, the index says",
    );
    // Release 1.0.0's bundle in its place: the records are this device's, for another payload.
    let old = std::fs::read(owner.bundle(&t1)).unwrap();
    assert_eq!(old.len(), good.len());
    refused(&owner, &t2, &a, &old, 4, "does not open");

    // The real bundle again: both install.
    for d in [&a, &b] {
        let r = d.update();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(std::fs::read(&d.slot).unwrap(), v2);
    }
    // Withdrawn with its files: the bundle goes too.
    owner.ok(&[
        "withdraw",
        "--repo",
        owner.repo.to_str().unwrap(),
        "--keys",
        owner.keys.to_str().unwrap(),
        &format!("{NAME}@2.0.0"),
        "--delete-file",
    ]);
    assert!(!owner.bundle(&t2).exists());
}

/// The signed `slip_bundle` index of a release, from `ota-sign add --json` (its `ota` is
/// the target's signed custom metadata).
fn index_of(added: &Run) -> SlipBundleIndex {
    serde_json::from_value(added.json()["ota"]["encryption"]["slip_bundle"].clone()).unwrap()
}

#[test]
fn a_bundle_on_removable_media_installs_and_a_short_block_is_refused() {
    // The same reading through the directory transport (`update --from` a USB stick made
    // by `ota-sign export`, which copies the bundle).
    let owner = Owner::new();
    let server = TestServer::start(&owner.repo);
    let (a, a_pub) = device(&owner, &server.url());
    let a_id = RecipientPublicKey::from_text(&a_pub).unwrap().id();
    register(&owner, &[("dev-a", &a_pub)]);
    let v1 = image(3, 50_000);
    let (t1, added) = add(&owner, "1.0.0", &v1);
    let stick = owner.work.join("stick");
    owner.ok(&[
        "export",
        "--repo",
        owner.repo.to_str().unwrap(),
        "--to",
        stick.to_str().unwrap(),
    ]);
    let on_stick = stick.join("targets").join(bundle_path(&t1));
    let good = std::fs::read(&on_stick).unwrap();
    assert_eq!(good, std::fs::read(owner.bundle(&t1)).unwrap());
    let from = |a: &Dev| {
        a.client(&[
            "update",
            "--from",
            stick.to_str().unwrap(),
            "--install-to",
            a.slot.to_str().unwrap(),
            "--json",
        ])
    };
    let index = index_of(&added);
    let (_, at, len) = index.block_for(&a_id).unwrap();
    std::fs::write(&on_stick, &good[..usize::try_from(at + len).unwrap() - 1]).unwrap();
    let before = a.observable();
    let r = from(&a);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("the index says"), "{r:?}");
    assert_eq!(a.observable(), before);
    std::fs::write(&on_stick, &good).unwrap();
    let r = from(&a);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&a.slot).unwrap(), v1);
}
