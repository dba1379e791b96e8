//! Interoperability with python-tuf (PyPI `tuf`, ngclient): it refreshes from ota-server serving
//! a repository written with ota-formats and downloads targets with matching hashes.
use ota_formats::hash::sha256_hex;
use ota_tests::fixture::RepoFixture;
use ota_tests::python::{python_tuf, script};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::process::Command;

fn ngclient_fetch(fx: &RepoFixture, server: &TestServer, target: &str) -> std::process::Output {
    let python = python_tuf().unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("trusted-root.json");
    std::fs::write(&root, fx.root_bytes()).unwrap();
    Command::new(python)
        .arg(script("ngclient_fetch.py"))
        .arg(server.metadata_url())
        .arg(server.targets_url())
        .arg(&root)
        .arg(target)
        .arg(work.path())
        .output()
        .unwrap()
}

#[test]
fn python_tuf_downloads_from_ota_server() {
    if python_tuf().is_none() {
        return;
    }
    let mut fx = RepoFixture::new();
    let firmware: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    fx.add_target("gateway-2.0.0.img", &firmware);
    fx.delegate("vendor", &["vendor/*"], false);
    fx.add_delegated_target("vendor", "vendor/modem.bin", b"modem firmware");
    fx.publish();
    // A second publication, so python-tuf walks a real version history.
    fx.publish();
    let server = TestServer::start(fx.path());

    for (name, data) in [
        ("gateway-2.0.0.img", &firmware[..]),
        ("vendor/modem.bin", b"modem firmware"),
    ] {
        let out = ngclient_fetch(&fx, &server, name);
        assert!(
            out.status.success(),
            "python-tuf failed on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["sha256"], sha256_hex(data), "{name}");
        assert_eq!(report["length"], data.len() as u64);
    }
}

#[test]
fn python_tuf_refuses_a_tampered_target_from_ota_server() {
    if python_tuf().is_none() {
        return;
    }
    let mut fx = RepoFixture::new();
    fx.add_target("gateway-2.0.0.img", b"genuine firmware");
    fx.publish();
    let sha = sha256_hex(b"genuine firmware");
    std::fs::write(
        fx.path()
            .join("targets")
            .join(format!("{sha}.gateway-2.0.0.img")),
        b"evil firmware!!!",
    )
    .unwrap();
    let server = TestServer::start(fx.path());
    let out = ngclient_fetch(&fx, &server, "gateway-2.0.0.img");
    assert!(!out.status.success(), "python-tuf accepted tampered bytes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LengthOrHashMismatchError"),
        "python-tuf failed for another reason than the hash mismatch: {stderr}"
    );
}
