//! A burst of 10,000 devices reporting at once (issue 13, load): every report is verified and
//! stored exactly once, none lost, none duplicated, and the same reports sent again are all
//! refused as replays. Against SQLite (the default store) and, when `OTA_TEST_POSTGRES_URL`
//! names a server (as `.ci/run` sets up), PostgreSQL.
use ota_formats::crypto::EcdsaP256Signer;
use ota_formats::report::{DeviceReport, SignedReport, TrustedReport};
use ota_tests::cli::{run, SignedRepo};
use ota_tests::tls_server::ServerProcess;
use ota_tests::RepoHost;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const DEVICES: usize = 10_000;
/// Concurrent senders: far more than the server's cores, few enough for the loopback backlog.
const SENDERS: usize = 32;

/// A fleet CA (PEM written to `ca_pem`) and `n` signed reports of distinct devices.
fn fleet(ca_pem: &Path, n: usize) -> Vec<Vec<u8>> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Burst Fleet CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = params.self_signed(&ca_key).unwrap();
    std::fs::write(ca_pem, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            let id = format!("dev-{i:05}");
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, id.as_str());
            let cert = p.signed_by(&key, &issuer).unwrap();
            let signer = EcdsaP256Signer::from_pkcs8_pem(&key.serialize_pem()).unwrap();
            let mut trusted = TrustedReport::new(1, now + chrono::Duration::days(365));
            trusted.timestamp_expires = Some(now + chrono::Duration::days(1));
            let report = DeviceReport::new(&id, 1, now, "idle", trusted);
            SignedReport::sign(&report, &signer, Some(cert.pem()))
                .unwrap()
                .to_bytes()
                .unwrap()
        })
        .collect()
}

/// POST every report from `SENDERS` threads; the count of each HTTP status.
fn send_all(url: &str, reports: &Arc<Vec<Vec<u8>>>) -> std::collections::BTreeMap<u16, usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (url, reports, next) = (url.to_string(), Arc::clone(reports), Arc::clone(&next));
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let mut seen = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = reports.get(i) else { break };
                    let status = match agent
                        .post(&url)
                        .set("Content-Type", "application/json")
                        .send_bytes(body)
                    {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(code, _)) => code,
                        Err(e) => panic!("report {i}: {e}"),
                    };
                    seen.push(status);
                }
                seen
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for t in threads {
        for s in t.join().unwrap() {
            *counts.entry(s).or_insert(0) += 1;
        }
    }
    counts
}

fn burst(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let rel = SignedRepo::init();
    let ca_pem = dir.path().join("ca.pem");
    let started = std::time::Instant::now();
    let reports = Arc::new(fleet(&ca_pem, DEVICES));
    eprintln!(
        "{DEVICES} certificates and reports made in {:?}",
        started.elapsed()
    );
    let server = ServerProcess::spawn(
        &rel.repo,
        &[
            "--report-ca".as_ref(),
            ca_pem.as_os_str(),
            "--database".as_ref(),
            database.as_ref(),
        ],
    );
    let url = format!("{}/api/v1/reports", server.url());
    let started = std::time::Instant::now();
    let first = send_all(&url, &reports);
    eprintln!(
        "{DEVICES} reports sent in {:?}: {first:?}",
        started.elapsed()
    );
    assert_eq!(first.get(&200), Some(&DEVICES), "{first:?}");
    // The same reports again: every one a replay (409), none stored twice.
    let again = send_all(&url, &reports);
    assert_eq!(again.get(&409), Some(&DEVICES), "{again:?}");

    let r = run(
        "ota-server",
        &[
            "devices",
            "--database",
            database,
            "--expiring-within",
            "0",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = r.json();
    assert_eq!(list["total"], DEVICES);
    let devices = list["devices"].as_array().unwrap();
    let mut ids: Vec<&str> = devices
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), DEVICES, "a device listed twice");
    assert!(
        devices.iter().all(|d| d["reports"] == 1),
        "a report stored twice"
    );
}

#[test]
fn ten_thousand_devices_report_at_once_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    burst(dir.path().join("fleet.sqlite").to_str().unwrap());
}

#[test]
fn ten_thousand_devices_report_at_once_into_postgresql() {
    let Some(url) = ota_tests::postgres::fresh_database("burst") else {
        return;
    };
    burst(url.url());
}
