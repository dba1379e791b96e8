//! Power-cut simulation (issue 11): SIGKILL keeps the page cache, a power cut does not. One
//! A/B update, the reboot into the new slot and `mark-good` run in-process with every slot,
//! state and boot-environment write recorded ([`Recorder`]); then, for every prefix of that
//! sequence, the disk is set to what a power cut at that point leaves (unsynced data dropped,
//! names not yet made durable by a directory fsync gone), the device powers on (the boot
//! loader's rule runs), and the invariant is checked: the slot the boot loader boots holds a
//! complete image whose sha256 is signed. Then the device carries on by itself (update,
//! reboot, mark-good, as its service would) and must end on the new release.
use ota_client::boot::{BootControl, EnvFile};
use ota_client::device::{Device, SlotOutcome, StateDir};
use ota_client::storage::crash_sim::{Recorder, Snapshot};
use ota_formats::hash::sha256_hex;
use ota_tests::ab::AbDevice;
use ota_tests::cli::SignedRepo;
use ota_tests::noise::noise;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::PathBuf;
use std::sync::Arc;

const LEN: usize = 300_000;

/// The signed images (sha256 of each) a booted slot may hold.
struct Signed {
    images: Vec<Vec<u8>>,
}

impl Signed {
    /// Whether `slot` starts with one of the signed images, complete.
    fn holds_complete_image(&self, slot: &[u8]) -> bool {
        self.images
            .iter()
            .any(|img| slot.len() >= img.len() && sha256_hex(&slot[..img.len()]) == sha256_hex(img))
    }
}

/// Power on: the boot loader applies its rule; returns the slot that boots and whether it
/// boots it on trial.
fn power_on(dev: &AbDevice) -> (String, bool) {
    let env = EnvFile::new(&dev.env);
    let vars = env.read().expect("the boot environment is always readable");
    let (slot, after) = vars.boot();
    if after != vars {
        env.write(&after).unwrap();
    }
    (slot.to_string(), after.upgrade_available)
}

/// The booted slot holds a complete signed image; a trial boot boots exactly `trial_image`
/// (the release being installed), never an older image left in that slot.
fn check_booted(
    dev: &AbDevice,
    signed: &Signed,
    (booted, trial): &(String, bool),
    trial_image: &[u8],
    what: &str,
) {
    let content = std::fs::read(dev.slot(booted)).unwrap();
    assert!(
        signed.holds_complete_image(&content),
        "{what}: the boot loader boots slot {booted}, which holds no complete signed image"
    );
    if *trial {
        assert!(
            content.len() >= trial_image.len() && content[..trial_image.len()] == *trial_image,
            "{what}: a trial boot of slot {booted}, which does not hold the release on trial"
        );
    }
}

/// Run the device's service loop from whatever state it is in until it runs `want`
/// committed: update, reboot into the trial, mark good. Checks the boot invariant at every
/// reboot. Returns how many steps it took.
fn carry_on(dev: &AbDevice, signed: &Signed, want: &[u8], version: &str, what: &str) -> usize {
    for step in 0..12 {
        let mut device = Device::open(StateDir::new(&dev.state), |_| {}).unwrap();
        let status = device.slot_status().unwrap();
        let committed = status
            .slots
            .a
            .version
            .clone()
            .filter(|_| status.committed.as_str() == "a")
            .or(status
                .slots
                .b
                .version
                .clone()
                .filter(|_| status.committed.as_str() == "b"));
        match status.update_state {
            "idle" if committed.as_deref() == Some(version) => {
                // What is recorded as committed is what the committed slot holds.
                let slot = std::fs::read(dev.slot(status.committed.as_str())).unwrap();
                assert!(
                    slot.len() >= want.len() && slot[..want.len()] == *want,
                    "{what}: slot {} is recorded as {version} but holds another image",
                    status.committed
                );
                return step;
            }
            "idle" | "slot-verified" => match device.update_slots() {
                Ok(SlotOutcome::RebootNeeded { .. }) | Ok(SlotOutcome::TrialPending { .. }) => {}
                other => panic!("{what}: update from {status:?}: {other:?}"),
            },
            "pending-reboot" => {
                let booted = power_on(dev);
                check_booted(dev, signed, &booted, want, what);
            }
            "trial" => {
                device.mark_good().unwrap();
            }
            other => panic!("{what}: unexpected state {other}"),
        }
    }
    panic!("{what}: the device did not reach {version} by itself");
}

#[test]
fn every_power_cut_point_leaves_a_bootable_device_that_finishes_the_update() {
    let repo = SignedRepo::init();
    let v1 = noise(1, LEN);
    let v2 = noise(2, LEN);
    repo.add("gateway-fw", "1.0.0", "board-a", &v1, &[]);
    let server = TestServer::start(&repo.repo);
    let dev = AbDevice::new(&v1);
    dev.init(&repo, &server.url());
    // The device runs 1.0.0 committed: install it once (to b) and commit, the normal way.
    let signed = Signed {
        images: vec![v1.clone(), v2.clone()],
    };
    carry_on(&dev, &signed, &v1, "1.0.0", "provisioning");
    repo.add("gateway-fw", "2.0.0", "board-a", &v2, &[]);

    let paths: Vec<PathBuf> = vec![
        dev.slot_a.clone(),
        dev.slot_b.clone(),
        dev.env.clone(),
        dev.state.join("slots.json"),
    ];
    let before = Snapshot::read(&paths).unwrap();
    let config_before = std::fs::read(dev.state.join("config.json")).unwrap();
    let installed_before = std::fs::read(dev.state.join("installed.json")).unwrap();

    // The recorded run: update, reboot into the trial, mark good.
    let rec = Recorder::new();
    let storage: Arc<dyn ota_client::storage::Storage> = Arc::new(rec.clone());
    let open = |s: &Arc<dyn ota_client::storage::Storage>| {
        Device::open(StateDir::new(&dev.state), |_| {})
            .unwrap()
            .with_storage(s.clone())
    };
    let out = open(&storage).update_slots().unwrap();
    assert!(matches!(out, SlotOutcome::RebootNeeded { .. }), "{out:?}");
    {
        let env = EnvFile::new(&dev.env).with_storage(storage.clone());
        let (_, after) = env.read().unwrap().boot();
        env.write(&after).unwrap();
    }
    open(&storage).mark_good().unwrap();
    let ops = rec.ops();
    let after_all = before.after_crash(&ops);
    let b_now = std::fs::read(&dev.slot_b).unwrap();
    assert_eq!(
        after_all.get(&dev.slot_b).map(<[u8]>::to_vec),
        Some(b_now),
        "with every operation applied, the model agrees with the disk"
    );
    assert!(ops.len() > 20, "too few operations recorded: {}", ops.len());

    let mut checked = 0;
    for k in 0..=ops.len() {
        let crashed = before.after_crash(&ops[..k]);
        crashed.restore(&paths).unwrap();
        // Files outside the simulation are as they were before the run (a superset of
        // what a crash could leave: the device must cope either way).
        std::fs::write(dev.state.join("config.json"), &config_before).unwrap();
        std::fs::write(dev.state.join("installed.json"), &installed_before).unwrap();
        let what = format!(
            "power cut after {k} of {} operations ({:?})",
            ops.len(),
            ops.get(k.wrapping_sub(1)).map(op_name)
        );
        let booted = power_on(&dev);
        check_booted(&dev, &signed, &booted, &v2, &what);
        carry_on(&dev, &signed, &v2, "2.0.0", &what);
        checked += 1;
    }
    println!(
        "power-cut simulation: {checked} crash points checked over {} recorded operations",
        ops.len()
    );
    assert_eq!(checked, ops.len() + 1);
}

fn op_name(op: &ota_client::storage::crash_sim::Op) -> String {
    use ota_client::storage::crash_sim::Op;
    let name = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match op {
        Op::Create(p) => format!("create {}", name(p)),
        Op::Write { path, offset, data } => {
            format!("write {} @{offset}+{}", name(path), data.len())
        }
        Op::SetLen(p, n) => format!("truncate {} {n}", name(p)),
        Op::Sync(p) => format!("fsync {}", name(p)),
        Op::Rename(a, b) => format!("rename {} {}", name(a), name(b)),
        Op::SyncDir(p) => format!("fsync dir {}", name(p)),
    }
}
