//! Interoperability the other way round: our client loads a repository written by python-tuf's
//! Metadata API (tests/python/make_repo.py), over ota-server and over nginx, and downloads its
//! targets (top-level and delegated) with matching hashes.
use ota_tests::device::TestDevice;
use ota_tests::nginx::Nginx;
use ota_tests::python::{python_tuf, script};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::collections::BTreeMap;
use std::process::Command;

fn python_repo() -> Option<(tempfile::TempDir, BTreeMap<String, String>)> {
    let python = python_tuf()?;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(python)
        .arg(script("make_repo.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make_repo.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hashes: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    Some((dir, hashes))
}

fn fetch_all(host: &dyn RepoHost, repo: &std::path::Path, hashes: &BTreeMap<String, String>) {
    let root = std::fs::read(repo.join("metadata/1.root.json")).unwrap();
    let dev = TestDevice::new(&root, host);
    for (name, sha) in hashes {
        let path = dev.fetch(name).unwrap();
        let data = std::fs::read(path).unwrap();
        assert_eq!(&ota_formats::hash::sha256_hex(&data), sha, "{name}");
    }
    let err = dev.fetch("not-there.bin").unwrap_err();
    assert!(
        matches!(err, ota_client::Error::TargetNotFound { .. }),
        "{err:?}"
    );
}

#[test]
fn our_client_reads_a_python_tuf_repository_over_ota_server() {
    let Some((repo, hashes)) = python_repo() else {
        return;
    };
    assert_eq!(hashes.len(), 2);
    let server = TestServer::start(repo.path());
    fetch_all(&server, repo.path(), &hashes);
}

#[test]
fn our_client_reads_a_python_tuf_repository_over_nginx() {
    let Some((repo, hashes)) = python_repo() else {
        return;
    };
    let Some(nginx) = Nginx::start(repo.path()) else {
        return;
    };
    fetch_all(&nginx, repo.path(), &hashes);
}
