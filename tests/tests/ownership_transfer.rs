//! Issue 12 end to end with the toolkit's own pieces only: `ota-ca` makes the fleet CA, the
//! server certificate and (from the device's own signing request) the device certificate;
//! `ota-server` serves the repository over mutual TLS and checks the CA's CRL; `ota-client`
//! enrolls and installs an encrypted release. Then the device changes owners (`reenroll`):
//! the operator issues the new certificate, revokes the old one and replaces the device's
//! encryption key. Afterwards the old certificate is refused by the server, the old
//! encryption key opens no later release, and the device keeps updating.
use ota_formats::envelope::{slip_path, EncryptionInfo, KeySlip, RecipientSecretKey};
use ota_tests::cli::{run, Run, SignedRepo};
use ota_tests::tls_server::{FleetCa, TlsServer};
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Device {
    state: PathBuf,
    slot: PathBuf,
}

impl Device {
    fn client(&self, args: &[&str]) -> Run {
        ota_tests::cli::client(&self.state, args)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.client(args);
        assert_eq!(r.code, 0, "ota-client {args:?}: {r:?}");
        r
    }

    fn update(&self) -> Run {
        self.client(&[
            "update",
            "--install-to",
            self.slot.to_str().unwrap(),
            "--json",
        ])
    }

    fn secret(&self) -> RecipientSecretKey {
        let text = std::fs::read_to_string(self.state.join("device.key")).unwrap();
        RecipientSecretKey::from_text(text.trim()).unwrap()
    }
}

/// `curl` over mutual TLS with `cert`/`key`: the HTTP status, or `None` when the handshake
/// (or anything before a status) failed.
fn curl_status(url: &str, ca_pem: &Path, cert: &Path, key: &Path) -> Option<u16> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(ca_pem)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(url)
        .output()
        .ok()?;
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (code != 0).then_some(code)
}

fn add(rel: &SignedRepo, version: &str, image: &[u8], encrypt_to: &str) {
    rel.add(
        "fw",
        version,
        "board-a",
        image,
        &["--encrypt-to", encrypt_to],
    );
}

fn recipients(rel: &SignedRepo, args: &[&str]) {
    let mut all: Vec<&str> = vec!["recipients", args[0], "--repo", rel.repo.to_str().unwrap()];
    all.extend(&args[1..]);
    let r = run("ota-sign", &all);
    assert_eq!(r.code, 0, "{r:?}");
}

fn image(seed: u8) -> Vec<u8> {
    (0..200_000u32)
        .map(|i| ((i / 5) as u8).wrapping_mul(17).wrapping_add(seed))
        .collect()
}

#[test]
fn enroll_update_over_mutual_tls_then_change_owners() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: curl is not installed (.ci/run installs it)");
        return;
    }
    let rel = SignedRepo::init();
    let work = rel.work.clone();
    let fleet = FleetCa::create(&work);
    let server = TlsServer::start(&rel.repo, &fleet, true);
    let ca_pem = fleet.ca_pem();

    // Seller's side at manufacture: provision, make the keys on the device, get certified.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("slot")).unwrap();
    let dev = Device {
        state: dir.path().join("state"),
        slot: dir.path().join("slot/fw.img"),
    };
    let root = rel.repo.join("metadata/1.root.json");
    dev.ok(&[
        "init",
        "--root",
        root.to_str().unwrap(),
        "--server",
        &server.url(),
        "--hardware",
        "board-a",
        "--name",
        "fw",
        "--ca-bundle",
        ca_pem.to_str().unwrap(),
    ]);
    // Without a device certificate the server gives nothing (mutual TLS on every route).
    let r = dev.client(&["check"]);
    assert_eq!(r.code, 3, "no client certificate must be refused: {r:?}");

    let key = dev.ok(&["keygen", "--json"]).json();
    let old_public = key["public_key"].as_str().unwrap().to_string();
    dev.ok(&["enroll", "--name", "gw-0001"]);
    let old_cert = work.join("gw-0001.pem");
    fleet.run(&[
        "issue",
        "--csr",
        dev.state.join("identity.csr").to_str().unwrap(),
        "--out",
        old_cert.to_str().unwrap(),
    ]);
    dev.ok(&["enroll", "--cert", old_cert.to_str().unwrap()]);
    recipients(&rel, &["add", "gw-0001", &old_public]);
    add(&rel, "1.0.0", &image(1), "device:gw-0001");
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image(1));

    // The previous owner's credentials, as a copy they might have kept.
    let old = work.join("old");
    std::fs::create_dir(&old).unwrap();
    for f in ["identity.key", "identity.pem", "device.key"] {
        std::fs::copy(dev.state.join(f), old.join(f)).unwrap();
    }
    let old_secret = dev.secret();
    let ts = format!("{}/metadata/timestamp.json", server.url());
    assert_eq!(
        curl_status(
            &ts,
            &ca_pem,
            &old.join("identity.pem"),
            &old.join("identity.key")
        ),
        Some(200),
        "the certificate works before the transfer"
    );

    // Ownership transfer: the device makes new keys; the operator certifies the new identity,
    // revokes the old certificate and replaces the encryption key; the buyer installs it.
    let r = dev.ok(&["reenroll", "--name", "gw-0001-b", "--json"]);
    let new_public = r.json()["public_key"]
        .as_str()
        .unwrap_or_else(|| panic!("reenroll --json names the new public key: {r:?}"))
        .to_string();
    assert_ne!(new_public, old_public);
    assert_ne!(
        std::fs::read(dev.state.join("identity.key")).unwrap(),
        std::fs::read(old.join("identity.key")).unwrap()
    );
    let new_cert = work.join("gw-0001-b.pem");
    fleet.run(&[
        "issue",
        "--csr",
        dev.state.join("identity.csr").to_str().unwrap(),
        "--out",
        new_cert.to_str().unwrap(),
    ]);
    fleet.run(&[
        "revoke",
        "--cert",
        old_cert.to_str().unwrap(),
        "--reason",
        "superseded",
    ]);
    recipients(&rel, &["remove", "gw-0001"]);
    recipients(&rel, &["add", "gw-0001", &new_public]);
    dev.ok(&["enroll", "--cert", new_cert.to_str().unwrap()]);

    // The server re-reads the CRL when it changes: the old certificate is refused from then on.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = curl_status(
            &ts,
            &ca_pem,
            &old.join("identity.pem"),
            &old.join("identity.key"),
        );
        if status.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked certificate is still accepted ({status:?})"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        curl_status(&ts, &ca_pem, &new_cert, &dev.state.join("identity.key")),
        Some(200)
    );

    // The next release is for the new key only, and the device keeps updating.
    add(&rel, "1.1.0", &image(2), "device:gw-0001");
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image(2));
    assert_eq!(r.json()["installed"]["version"], "1.1.0");

    // The old encryption key opens nothing of it: no slip is published for it, and the slip
    // that is published does not open with it.
    let targets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dev.state.join("metadata/targets.json")).unwrap())
            .unwrap();
    let (name, entry) = targets["signed"]["targets"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, t)| t["custom"]["ota"]["version"] == "1.1.0")
        .unwrap();
    let info: EncryptionInfo =
        serde_json::from_value(entry["custom"]["ota"]["encryption"].clone()).unwrap();
    let slip_file = |id: ota_formats::envelope::RecipientId| {
        rel.repo.join("targets").join(slip_path(name, &id))
    };
    assert!(
        !slip_file(old_secret.id()).exists(),
        "no slip for the old key"
    );
    let new_slip =
        KeySlip::from_bytes(&std::fs::read(slip_file(dev.secret().id())).unwrap()).unwrap();
    assert!(
        info.unwrap_data_key(name, &old_secret, Some(&new_slip))
            .is_err(),
        "the old key must not open the new release"
    );
}
