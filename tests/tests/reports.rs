//! Signed device status reports (issue 13): `ota-client update` and `ota-client report` post
//! a report signed with the device's identity key; `ota-server` verifies the certificate
//! (device CA, CRL), the signature and the claimed device id, refuses replays, stores it
//! (SQLite beside the repository by default) and `ota-server devices` lists and flags devices.
use ota_tests::cli::{client, run, Run, SignedRepo};
use ota_tests::tls_server::{FleetCa, ServerProcess};
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};
use std::process::Command;

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// An enrolled device: state dir, install path, certificate and key files.
struct Dev {
    state: PathBuf,
    slot: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Dev {
    /// `init` against `server` trusting `ca`, `enroll --name NAME`, the CSR issued by `ca`,
    /// `enroll --cert`.
    fn enrolled(dir: &Path, name: &str, rel: &SignedRepo, server: &str, ca: &FleetCa) -> Dev {
        let state = dir.join(name);
        let root = rel.repo.join("metadata/1.root.json");
        let ca_pem = ca.ca_pem();
        let r = client(
            &state,
            &[
                "init",
                "--root",
                root.to_str().unwrap(),
                "--server",
                server,
                "--hardware",
                "board-a",
                "--name",
                "gateway-fw",
                "--ca-bundle",
                ca_pem.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let r = client(&state, &["enroll", "--name", name]);
        assert_eq!(r.code, 0, "{r:?}");
        let cert = dir.join(format!("{name}.pem"));
        ca.run(&[
            "issue",
            "--csr",
            state.join("identity.csr").to_str().unwrap(),
            "--out",
            cert.to_str().unwrap(),
        ]);
        let r = client(&state, &["enroll", "--cert", cert.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{r:?}");
        Dev {
            slot: dir.join(format!("{name}.img")),
            key: state.join("identity.key"),
            cert: state.join("identity.pem"),
            state,
        }
    }

    fn client(&self, args: &[&str]) -> Run {
        client(&self.state, args)
    }

    /// The signed report the device would send now (`report --print`).
    fn printed_report(&self) -> serde_json::Value {
        let r = self.client(&["report", "--print"]);
        assert_eq!(r.code, 0, "{r:?}");
        r.json()
    }
}

/// `curl` POST of `body` to `url` with `dev`'s client certificate (if any); (status, body).
fn post(url: &str, ca: &Path, dev: Option<&Dev>, body: &serde_json::Value) -> (u16, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body.to_string()).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", file.path().display()));
    if let Some(d) = dev {
        cmd.arg("--cert").arg(&d.cert).arg("--key").arg(&d.key);
    }
    let out = cmd.arg(url).output().expect("curl (installed by .ci/run)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `ota-server devices ARGS --json` (exit code, output).
fn devices(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["devices"];
    all.extend(args);
    all.push("--json");
    let r = run("ota-server", &all);
    assert!(r.code == 0 || r.code == 10, "{r:?}");
    (r.code, r.json())
}

fn device<'a>(list: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

#[test]
fn reports_over_mutual_tls_are_verified_stored_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let rel = SignedRepo::init();
    rel.add("gateway-fw", "1.0.0", "board-a", &image(1, 100_000), &[]);
    let ca = FleetCa::create(dir.path());
    let crl = ca.dir.join("crl.pem");
    let ca_pem = ca.ca_pem();
    let server = ServerProcess::spawn(
        &rel.repo,
        &[
            "--tls-cert".as_ref(),
            ca.server_cert.as_os_str(),
            "--tls-key".as_ref(),
            ca.server_key.as_os_str(),
            "--client-ca".as_ref(),
            ca_pem.as_os_str(),
            "--crl".as_ref(),
            crl.as_os_str(),
        ],
    );
    let url = server.url();
    let reports = format!("{url}/api/v1/reports");
    let gw1 = Dev::enrolled(dir.path(), "gw-1", &rel, &url, &ca);
    let gw2 = Dev::enrolled(dir.path(), "gw-2", &rel, &url, &ca);

    // The update posts a report after the attempt, without being asked.
    let r = gw1.client(&["update", "--install-to", gw1.slot.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let repo = rel.repo.to_str().unwrap();
    let (code, list) = devices(&["--repo", repo]);
    let d = device(&list, "gw-1");
    assert_eq!(d["last"]["installed_version"], "1.0.0", "{d}");
    assert_eq!(d["last"]["root_version"], 1);
    assert_eq!(d["last"]["update_state"], "idle");
    assert!(d["last"]["cert_not_after"].is_string(), "{d}");
    // ota-sign's timestamp lives a day: inside the default 30-day window.
    assert!(
        d["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["flag"] == "metadata-expiring"),
        "{d}"
    );
    assert_eq!(code, 10, "a flagged device makes `devices` exit 10");
    let (code, quiet) = devices(&["--repo", repo, "--expiring-within", "0", "--flagged"]);
    assert_eq!((code, quiet["devices"].as_array().unwrap().len()), (0, 0));
    assert_eq!(list["total"], 1, "gw-2 has not reported: {list}");

    // `report` on demand; the sequence grows.
    let r = gw2.client(&["report", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let first = r.json()["sequence"].as_u64().unwrap();
    let r = gw2.client(&["report", "--json"]);
    assert!(r.json()["sequence"].as_u64().unwrap() > first, "{r:?}");
    let reports_of = |id: &str| device(&devices(&["--repo", repo]).1, id)["reports"].clone();
    assert_eq!(reports_of("gw-2"), 2);

    // A replay (the same signed report twice) is refused and changes nothing.
    let report = gw1.printed_report();
    let (status, body) = post(&reports, &ca_pem, Some(&gw1), &report);
    assert_eq!(status, 200, "{body}");
    let before = reports_of("gw-1");
    let (status, body) = post(&reports, &ca_pem, Some(&gw1), &report);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("replayed report"), "{body}");
    assert_eq!(reports_of("gw-1"), before);

    // gw-2's report relayed over gw-1's connection: refused.
    let other = gw2.printed_report();
    let (status, body) = post(&reports, &ca_pem, Some(&gw1), &other);
    assert_eq!(
        (status, body.contains("connection authenticated")),
        (403, true),
        "{body}"
    );
    // gw-2's signed report presented with gw-1's certificate: the signature is not gw-1's.
    let mut forged = other.clone();
    forged["certificate"] = gw1.printed_report()["certificate"].clone();
    let (status, body) = post(&reports, &ca_pem, Some(&gw1), &forged);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not signed by the device key"), "{body}");
    // A changed body no longer matches its signature.
    let mut changed = gw1.printed_report();
    changed["signed"]["installed"]["version"] = "9.9.9".into();
    let (status, body) = post(&reports, &ca_pem, Some(&gw1), &changed);
    assert_eq!(
        (status, body.contains("does not verify")),
        (403, true),
        "{body}"
    );
    assert_eq!(reports_of("gw-1"), before);
    assert_eq!(reports_of("gw-2"), 2);

    // Garbage is a 400 with a reason, never stored.
    let (status, body) = post(&reports, &ca_pem, Some(&gw1), &serde_json::json!({"x": 1}));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn behind_a_proxy_reports_carry_their_certificate_and_revoked_devices_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rel = SignedRepo::init();
    rel.add("gateway-fw", "1.0.0", "board-a", &image(2, 50_000), &[]);
    let ca = FleetCa::create(dir.path());
    let crl = ca.dir.join("crl.pem");
    let ca_pem = ca.ca_pem();
    let db = dir.path().join("fleet.sqlite");
    // Plain HTTP, as behind a TLS-terminating proxy: the connection proves nothing, the
    // report's own certificate and signature do.
    let server = ServerProcess::spawn(
        &rel.repo,
        &[
            "--report-ca".as_ref(),
            ca_pem.as_os_str(),
            "--crl".as_ref(),
            crl.as_os_str(),
            "--database".as_ref(),
            db.as_os_str(),
        ],
    );
    let url = server.url();
    let dev = Dev::enrolled(dir.path(), "gw-7", &rel, &url, &ca);
    let r = dev.client(&["report", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["device_id"], "gw-7");
    let (_, list) = devices(&["--database", db.to_str().unwrap()]);
    assert_eq!(device(&list, "gw-7")["reports"], 1);
    assert!(
        !rel.repo.with_extension("fleet.sqlite").exists(),
        "--database was given"
    );

    // A certificate from another CA is refused.
    let other_ca = FleetCa::create(&dir.path().join("other"));
    let stranger = Dev::enrolled(dir.path(), "gw-x", &rel, &url, &other_ca);
    let r = stranger.client(&["report"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("device certificate refused"), "{r:?}");
    assert!(
        r.stderr
            .contains("hint: the service does not accept this device's certificate"),
        "{r:?}"
    );

    // Revoked: the CRL is re-read and the device's reports are refused from then on.
    ca.run(&[
        "revoke",
        "--cert",
        dev.cert.to_str().unwrap(),
        "--reason",
        "keyCompromise",
    ]);
    let mut refused = None;
    for _ in 0..50 {
        let r = dev.client(&["report"]);
        if r.code != 0 {
            refused = Some(r);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = refused.expect("a revoked device's report was still accepted after 10 s");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("revoked"), "{r:?}");
    let (_, list) = devices(&["--database", db.to_str().unwrap()]);
    let stored = device(&list, "gw-7")["reports"].as_u64().unwrap();
    assert!(stored >= 1);
    assert_eq!(list["total"], 1, "the stranger was never stored: {list}");
}
