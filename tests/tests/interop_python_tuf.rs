//! Interoperability with python-tuf (PyPI `tuf`, ngclient): it refreshes from ota-server serving
//! a repository written with ota-formats and downloads targets with matching hashes.
use ota_formats::hash::sha256_hex;
use ota_tests::fixture::RepoFixture;
use ota_tests::python::{python_tuf, script};
use ota_tests::server::TestServer;
use ota_tests::tls_server::{FleetCa, TlsServer};
use ota_tests::RepoHost;
use std::process::Command;

fn ngclient_fetch(fx: &RepoFixture, server: &dyn RepoHost, target: &str) -> std::process::Output {
    ngclient_fetch_trusting(fx, server, target, None)
}

/// Run python-tuf's ngclient; `ca_bundle` (if any) is the only CA its TLS layer trusts
/// (`SSL_CERT_FILE`, which Python's ssl module and so urllib3 read).
fn ngclient_fetch_trusting(
    fx: &RepoFixture,
    server: &dyn RepoHost,
    target: &str,
    ca_bundle: Option<&std::path::Path>,
) -> std::process::Output {
    let python = python_tuf().unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("trusted-root.json");
    std::fs::write(&root, fx.root_bytes()).unwrap();
    let mut cmd = Command::new(python);
    match ca_bundle {
        Some(ca) => cmd.env("SSL_CERT_FILE", ca),
        None => cmd.env_remove("SSL_CERT_FILE"),
    };
    cmd.arg(script("ngclient_fetch.py"))
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

/// python-tuf downloads over HTTPS from ota-server with a private fleet CA (made by ota-ca),
/// and refuses the same server when it does not trust that CA.
#[test]
fn python_tuf_downloads_over_https_with_a_private_ca() {
    if python_tuf().is_none() {
        return;
    }
    let mut fx = RepoFixture::new();
    let firmware: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect();
    fx.add_target("gateway-3.0.0.img", &firmware);
    fx.publish();
    let work = tempfile::tempdir().unwrap();
    let ca = FleetCa::create(work.path());
    let server = TlsServer::start(fx.path(), &ca, false);
    assert!(server.url().starts_with("https://"));

    let out = ngclient_fetch_trusting(&fx, &server, "gateway-3.0.0.img", Some(&ca.ca_pem()));
    assert!(
        out.status.success(),
        "python-tuf over HTTPS failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sha256"], sha256_hex(&firmware));

    // Without the fleet CA, the certificate is not trusted: nothing is downloaded.
    let empty = work.path().join("empty.pem");
    std::fs::write(&empty, b"").unwrap();
    let out = ngclient_fetch_trusting(&fx, &server, "gateway-3.0.0.img", Some(&empty));
    assert!(!out.status.success(), "python-tuf trusted an unknown CA");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // python-tuf 7's urllib3 fetcher drops the TLS error's text (it only keeps timeouts), so
    // the refusal shows as a DownloadError of the first file, the next root version.
    assert!(
        stderr.contains("CERTIFICATE_VERIFY_FAILED")
            || stderr.contains("DownloadError: Failed to download https://"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing may be reported as downloaded"
    );
}
