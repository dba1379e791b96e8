//! Helpers of the `ota-ca` tests: run the built binary (under umask 077, so the modes it
//! gives its files are seen to be set, not inherited) and the `openssl` CLI, the independent
//! checker.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_ota-ca");

/// Run `ota-ca ARGS` under umask 077.
pub fn ota_ca(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .output()
        .expect("run ota-ca")
}

/// Run `ota-ca ARGS`, which must succeed; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = ota_ca(args);
    assert!(
        out.status.success(),
        "ota-ca {args:?} failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Run `ota-ca ARGS`, which must fail with `code`; returns stderr.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = ota_ca(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(code),
        "ota-ca {args:?}: stdout {}\nstderr {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Run `openssl ARGS`.
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (the tests need the openssl CLI)")
}

/// Run `openssl ARGS`, which must succeed; returns stdout and stderr together.
pub fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A new CA in `root/ca` (`ota-ca init` with `extra` arguments).
pub fn init_ca(root: &Path, extra: &[&str]) -> PathBuf {
    let dir = root.join("ca");
    let mut args = vec!["init", "--dir", s(&dir), "--name", "Test Fleet CA"];
    args.extend_from_slice(extra);
    ok(&args);
    dir
}

/// A P-256 key and CSR for `cn` made by openssl, as a device would: returns the CSR path.
pub fn make_csr(root: &Path, cn: &str) -> PathBuf {
    let key = root.join(format!("{cn}.key"));
    let csr = root.join(format!("{cn}.csr"));
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        s(&csr),
    ]);
    csr
}

/// Issue a certificate for a new CSR of `cn`: returns the certificate path.
pub fn issue(root: &Path, ca: &Path, cn: &str) -> PathBuf {
    let csr = make_csr(root, cn);
    let out = root.join(format!("{cn}.pem"));
    ok(&["issue", "--dir", s(ca), "--csr", s(&csr), "--out", s(&out)]);
    out
}

/// The serial of a certificate as openssl prints it (upper-case hex).
pub fn serial_of(cert: &Path) -> String {
    let out = openssl_ok(&["x509", "-in", s(cert), "-noout", "-serial"]);
    out.trim()
        .strip_prefix("serial=")
        .expect("serial= line")
        .to_string()
}

pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// `index.json` parsed.
pub fn index(ca: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(ca.join("index.json")).expect("index.json");
    serde_json::from_str(&text).expect("index.json is a JSON array")
}

/// The DER of a PEM CSR (`what` = "req") or certificate ("x509"), converted by openssl.
pub fn der_of(what: &str, path: &Path) -> Vec<u8> {
    let tmp = tempfile::NamedTempFile::new().expect("temp");
    openssl_ok(&[
        what,
        "-in",
        s(path),
        "-outform",
        "DER",
        "-out",
        s(tmp.path()),
    ]);
    std::fs::read(tmp.path()).expect("read DER")
}

/// Encode DER as PEM with `label` (through openssl, so the test does not trust our encoder).
pub fn der_to_pem(der: &[u8], label: &str, path: &Path) {
    let tmp = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(tmp.path(), der).expect("write");
    let out = openssl(&["base64", "-e", "-in", s(tmp.path())]);
    assert!(out.status.success());
    let body = String::from_utf8(out.stdout).expect("base64");
    std::fs::write(
        path,
        format!("-----BEGIN {label}-----\n{body}-----END {label}-----\n"),
    )
    .expect("write PEM");
}
