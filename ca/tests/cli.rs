//! `ota-ca` end to end, with the openssl CLI as the independent checker.
mod common;

use common::*;
use std::path::Path;

#[test]
fn init_makes_a_ca_openssl_accepts_with_modes_regardless_of_umask() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);

    let text = openssl_ok(&["x509", "-in", s(&ca.join("ca.pem")), "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("Subject: CN = Test Fleet CA"), "{text}");
    assert!(text.contains("prime256v1"), "P-256 by default: {text}");
    // The empty CRL is signed by the CA and has a nextUpdate.
    let crl = openssl_ok(&[
        "crl",
        "-in",
        s(&ca.join("crl.pem")),
        "-CAfile",
        s(&ca.join("ca.pem")),
        "-noout",
        "-text",
    ]);
    assert!(crl.contains("verify OK"), "{crl}");
    assert!(crl.contains("Next Update"), "{crl}");
    // The key is PKCS#8 PEM that openssl reads.
    let key = std::fs::read_to_string(ca.join("ca.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    openssl_ok(&["pkey", "-in", s(&ca.join("ca.key")), "-noout"]);

    // umask 077 was in force: the modes are set, not inherited.
    assert_eq!(mode(&ca), 0o700);
    assert_eq!(mode(&ca.join("ca.key")), 0o600);
    for f in ["ca.pem", "crl.pem", "index.json"] {
        assert_eq!(mode(&ca.join(f)), 0o644, "{f}");
    }
    assert_eq!(mode(&ca.join("issued")), 0o755);
    assert_eq!(index(&ca), Vec::<serde_json::Value>::new());

    // An existing CA is never overwritten, and there is no --force.
    let key_before = std::fs::read(ca.join("ca.key")).unwrap();
    let err = fails(&["init", "--dir", s(&ca), "--name", "Other"], 2);
    assert!(err.contains("already exists"), "{err}");
    fails(&["init", "--dir", s(&ca), "--name", "Other", "--force"], 2);
    assert_eq!(std::fs::read(ca.join("ca.key")).unwrap(), key_before);
    // A file where the directory should be is refused too.
    let file = root.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    fails(&["init", "--dir", s(&file), "--name", "X"], 2);
}

#[test]
fn issue_from_an_openssl_csr_gives_a_client_certificate_that_verifies() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let csr = make_csr(root.path(), "dev-0001");
    let out = root.path().join("dev.pem");
    let json = ok(&[
        "issue",
        "--dir",
        s(&ca),
        "--csr",
        s(&csr),
        "--out",
        s(&out),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ca_pem = ca.join("ca.pem");

    let verify = openssl_ok(&["verify", "-CAfile", s(&ca_pem), s(&out)]);
    assert!(verify.contains(": OK"), "{verify}");
    openssl_ok(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        s(&ca_pem),
        s(&out),
    ]);
    let purpose = openssl_ok(&["x509", "-in", s(&out), "-noout", "-purpose"]);
    assert!(purpose.contains("SSL client : Yes"), "{purpose}");
    assert!(purpose.contains("SSL server : No"), "{purpose}");
    let text = openssl_ok(&["x509", "-in", s(&out), "-noout", "-text"]);
    for want in [
        "Subject: CN = dev-0001",
        "Issuer: CN = Test Fleet CA",
        "TLS Web Client Authentication",
        "Digital Signature",
        "CA:FALSE",
        "Authority Key Identifier",
        "Subject Key Identifier",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert_eq!(mode(&out), 0o644);

    // Recorded: serial (16 random bytes), sha256 of the DER, a copy in issued/.
    let serial = serial_of(&out).to_ascii_lowercase();
    assert_eq!(serial.len(), 32, "{serial}");
    let entries = index(&ca);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["serial"], serial.as_str());
    assert_eq!(e["kind"], "device");
    assert_eq!(e["subject_cn"], "dev-0001");
    assert_eq!(e["revoked_at"], serde_json::Value::Null);
    assert_eq!(e["reason"], serde_json::Value::Null);
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(der_of("x509", &out)));
    assert_eq!(e["sha256"], sha.as_str());
    assert_eq!(report["certificate"]["serial"], serial.as_str());
    let copy = ca.join("issued").join(format!("{serial}.pem"));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&out).unwrap());
    assert_eq!(mode(&copy), 0o644);
    assert_eq!(mode(&ca.join("index.json")), 0o644);
}

#[test]
fn sans_of_the_csr_are_copied_but_not_its_ca_request() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let csr = root.path().join("d.csr");
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&root.path().join("d.key")),
        "-subj",
        "/CN=gw-7",
        "-addext",
        "subjectAltName=DNS:gw-7.fleet.example,IP:192.0.2.7",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-out",
        s(&csr),
    ]);
    let out = root.path().join("d.pem");
    ok(&["issue", "--dir", s(&ca), "--csr", s(&csr), "--out", s(&out)]);
    let text = openssl_ok(&["x509", "-in", s(&out), "-noout", "-text"]);
    assert!(
        text.contains("DNS:gw-7.fleet.example, IP Address:192.0.2.7"),
        "{text}"
    );
    assert!(
        text.contains("CA:FALSE") && !text.contains("CA:TRUE"),
        "{text}"
    );
    assert_eq!(
        index(&ca)[0]["sans"],
        serde_json::json!(["DNS:gw-7.fleet.example", "IP:192.0.2.7"])
    );
}

/// The offset and length of the header, and the length of the content, of the DER element
/// at `at`.
fn tlv(der: &[u8], at: usize) -> (usize, usize) {
    let first = der[at + 1];
    if first < 0x80 {
        (2, first as usize)
    } else {
        let n = (first & 0x7f) as usize;
        let len = der[at + 2..at + 2 + n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | *b as usize);
        (2 + n, len)
    }
}

fn der_sequence(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

#[test]
fn a_csr_whose_signature_does_not_verify_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let csr = make_csr(root.path(), "dev-0002");
    let mut der = der_of("req", &csr);
    // The last byte belongs to the signature (the end of its `s` integer).
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let bad = root.path().join("bad.csr");
    der_to_pem(&der, "CERTIFICATE REQUEST", &bad);
    // openssl agrees it is broken (OpenSSL 3.0 `req -verify` exits 0 either way: read it).
    let check = openssl(&["req", "-in", s(&bad), "-noout", "-verify"]);
    let said = String::from_utf8_lossy(&check.stderr).to_string()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(
        !said.contains("verify OK") && said.contains("verify failure"),
        "{said}"
    );

    let out = root.path().join("bad.pem");
    let err = fails(
        &["issue", "--dir", s(&ca), "--csr", s(&bad), "--out", s(&out)],
        2,
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one error line and one hint: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("signature does not verify"),
        "{err}"
    );
    assert!(lines[1].starts_with("hint: "), "{err}");
    assert!(!out.exists());
    assert!(index(&ca).is_empty());

    // The request of one key with the signature of another: also refused.
    let other = der_of("req", &make_csr(root.path(), "dev-0003"));
    let good = der_of("req", &csr);
    let (h1, _) = tlv(&good, 0);
    let (ih, il) = tlv(&good, h1);
    let info = &good[h1..h1 + ih + il];
    let (h2, _) = tlv(&other, 0);
    let (oh, ol) = tlv(&other, h2);
    let rest = &other[h2 + oh + ol..];
    let swapped = der_sequence(&[info, rest].concat());
    let swapped_path = root.path().join("swapped.csr");
    der_to_pem(&swapped, "CERTIFICATE REQUEST", &swapped_path);
    let err = fails(
        &[
            "issue",
            "--dir",
            s(&ca),
            "--csr",
            s(&swapped_path),
            "--out",
            s(&out),
            "--json",
        ],
        2,
    );
    assert!(err.contains("signature does not verify"), "{err}");
    let stdout = ota_ca(&[
        "issue",
        "--dir",
        s(&ca),
        "--csr",
        s(&swapped_path),
        "--out",
        s(&out),
        "--json",
    ])
    .stdout;
    let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(v["error"]["kind"], "input");
    assert_eq!(v["error"]["exit_code"], 2);

    // Not a CSR at all, and a CN that is no device id.
    let junk = root.path().join("junk.csr");
    std::fs::write(&junk, b"hello").unwrap();
    fails(
        &[
            "issue",
            "--dir",
            s(&ca),
            "--csr",
            s(&junk),
            "--out",
            s(&out),
        ],
        2,
    );
    let badcn = make_csr(root.path(), "has space");
    let err = fails(
        &[
            "issue",
            "--dir",
            s(&ca),
            "--csr",
            s(&badcn),
            "--out",
            s(&out),
        ],
        2,
    );
    assert!(err.contains("not a valid device id"), "{err}");
    fails(
        &[
            "issue",
            "--dir",
            s(&ca),
            "--csr",
            "/dev/zero",
            "--out",
            s(&out),
        ],
        2,
    );
    assert!(index(&ca).is_empty());
}

#[test]
fn revoked_certificates_are_in_the_crl_and_fail_crl_checks() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let revoked = issue(root.path(), &ca, "dev-a");
    let kept = issue(root.path(), &ca, "dev-b");
    let by_cert = issue(root.path(), &ca, "dev-c");
    let serial = serial_of(&revoked);
    let ca_pem = ca.join("ca.pem");
    let crl = ca.join("crl.pem");
    let number_before = crl_number(&crl, &ca_pem);

    let json = ok(&[
        "revoke",
        "--dir",
        s(&ca),
        "--serial",
        &serial,
        "--reason",
        "keyCompromise",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["already_revoked"], false);
    assert_eq!(report["certificate"]["reason"], "keyCompromise");

    let text = openssl_ok(&[
        "crl",
        "-in",
        s(&crl),
        "-CAfile",
        s(&ca_pem),
        "-noout",
        "-text",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains(&format!("Serial Number: {serial}")), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(crl_number(&crl, &ca_pem) > number_before);
    assert_eq!(mode(&crl), 0o644);

    let check = |cert: &Path| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CRLfile",
            s(&crl),
            "-CAfile",
            s(&ca_pem),
            s(cert),
        ])
    };
    let bad = check(&revoked);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("revoked")
            || String::from_utf8_lossy(&bad.stderr).contains("revoked")
    );
    assert!(check(&kept).status.success());

    // By certificate file; the entry records when and why.
    ok(&[
        "revoke",
        "--dir",
        s(&ca),
        "--cert",
        s(&by_cert),
        "--reason",
        "cessationOfOperation",
    ]);
    assert!(!check(&by_cert).status.success());
    let entries = index(&ca);
    let c = entries.iter().find(|e| e["subject_cn"] == "dev-c").unwrap();
    assert_eq!(c["reason"], "cessationOfOperation");
    assert!(c["revoked_at"].is_string());

    // Revoking again changes nothing; an unknown serial is refused.
    let again = ok(&["revoke", "--dir", s(&ca), "--serial", &serial, "--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["already_revoked"], true);
    assert_eq!(again["certificate"]["reason"], "keyCompromise");
    fails(&["revoke", "--dir", s(&ca), "--serial", "0123abcd"], 2);
    fails(&["revoke", "--dir", s(&ca), "--serial", "zz"], 2);
    fails(
        &[
            "revoke",
            "--dir",
            s(&ca),
            "--serial",
            &serial,
            "--reason",
            "bogus",
        ],
        2,
    );
    // A certificate of another CA with a known serial is not ours.
    let other_root = tempfile::tempdir().unwrap();
    let other_ca = init_ca(other_root.path(), &[]);
    let foreign = issue(other_root.path(), &other_ca, "dev-x");
    fails(&["revoke", "--dir", s(&ca), "--cert", s(&foreign)], 2);
}

fn crl_number(crl: &Path, ca_pem: &Path) -> u128 {
    let text = openssl_ok(&[
        "crl",
        "-in",
        s(crl),
        "-CAfile",
        s(ca_pem),
        "-noout",
        "-crlnumber",
    ]);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("crlNumber="))
        .unwrap_or_else(|| panic!("{text}"));
    let hex = line.trim().trim_start_matches("0x");
    u128::from_str_radix(hex, 16).unwrap()
}

#[test]
fn crl_command_re_signs_with_a_new_next_update_and_prints_its_path() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let ca_pem = ca.join("ca.pem");
    let crl = ca.join("crl.pem");
    let before = crl_number(&crl, &ca_pem);
    let out = ok(&["crl", "--dir", s(&ca), "--days", "7"]);
    assert_eq!(out.trim(), s(&crl));
    assert!(crl_number(&crl, &ca_pem) > before);
    let json = ok(&["crl", "--dir", s(&ca), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let this = chrono::DateTime::parse_from_rfc3339(v["this_update"].as_str().unwrap()).unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(v["next_update"].as_str().unwrap()).unwrap();
    assert_eq!((next - this).num_days(), 30);
    let text = openssl_ok(&[
        "crl",
        "-in",
        s(&crl),
        "-CAfile",
        s(&ca_pem),
        "-noout",
        "-nextupdate",
    ]);
    assert!(text.contains("nextUpdate="), "{text}");
    // A revoke afterwards keeps the CRL's period unless told otherwise.
    ok(&["crl", "--dir", s(&ca), "--days", "3"]);
    let cert = issue(root.path(), &ca, "dev-1");
    let json = ok(&[
        "revoke",
        "--dir",
        s(&ca),
        "--serial",
        &serial_of(&cert),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let this =
        chrono::DateTime::parse_from_rfc3339(v["crl"]["this_update"].as_str().unwrap()).unwrap();
    let next =
        chrono::DateTime::parse_from_rfc3339(v["crl"]["next_update"].as_str().unwrap()).unwrap();
    assert_eq!((next - this).num_days(), 3);
}

#[test]
fn issue_server_gives_a_server_certificate_and_a_private_key() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let cert = root.path().join("server.pem");
    let key = root.path().join("server.key");
    let json = ok(&[
        "issue-server",
        "--dir",
        s(&ca),
        "--name",
        "ota.example.com",
        "--san",
        "DNS:localhost",
        "--san",
        "IP:127.0.0.1",
        "--out-cert",
        s(&cert),
        "--out-key",
        s(&key),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["certificate"]["kind"], "server");
    let ca_pem = ca.join("ca.pem");
    openssl_ok(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        s(&ca_pem),
        s(&cert),
    ]);
    let text = openssl_ok(&["x509", "-in", s(&cert), "-noout", "-text"]);
    assert!(
        text.contains("DNS:ota.example.com, DNS:localhost, IP Address:127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&cert), 0o644);
    // The key belongs to the certificate.
    let from_key = openssl_ok(&["pkey", "-in", s(&key), "-pubout"]);
    let from_cert = openssl_ok(&["x509", "-in", s(&cert), "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);

    // A server may be re-issued (renewal overlaps), but a key is never overwritten.
    let key_before = std::fs::read(&key).unwrap();
    let err = fails(
        &[
            "issue-server",
            "--dir",
            s(&ca),
            "--name",
            "ota.example.com",
            "--out-cert",
            s(&cert),
            "--out-key",
            s(&key),
        ],
        2,
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), key_before);
    assert_eq!(index(&ca).len(), 1, "nothing issued for a refused run");
    let key2 = root.path().join("server2.key");
    ok(&[
        "issue-server",
        "--dir",
        s(&ca),
        "--name",
        "ota.example.com",
        "--out-cert",
        s(&cert),
        "--out-key",
        s(&key2),
    ]);
    assert_eq!(index(&ca).len(), 2);
    // Bad names and SANs are input errors.
    for bad in [
        vec!["--name", "not a host"],
        vec!["--name", "ok.example", "--san", "localhost"],
        vec!["--name", "ok.example", "--san", "IP:999.1.1.1"],
    ] {
        let mut args = vec!["issue-server", "--dir", s(&ca)];
        args.extend(bad);
        let k = root.path().join("k3.key");
        args.extend(["--out-cert", s(&cert), "--out-key", s(&k)]);
        fails(&args, 2);
        assert!(!k.exists());
    }
}

#[test]
fn a_device_id_with_a_valid_certificate_needs_replace() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let first = issue(root.path(), &ca, "dev-9");
    let csr = make_csr(root.path(), "dev-9");
    let out = root.path().join("dev-9-new.pem");
    let err = fails(
        &["issue", "--dir", s(&ca), "--csr", s(&csr), "--out", s(&out)],
        2,
    );
    assert!(err.contains("already has a valid certificate"), "{err}");
    assert!(err.contains("--replace"), "{err}");
    assert!(!out.exists());
    assert_eq!(index(&ca).len(), 1);

    let replaced = ota_ca(&[
        "issue",
        "--dir",
        s(&ca),
        "--csr",
        s(&csr),
        "--out",
        s(&out),
        "--replace",
    ]);
    assert!(replaced.status.success());
    let note = String::from_utf8_lossy(&replaced.stderr);
    let old = serial_of(&first).to_ascii_lowercase();
    assert!(
        note.contains("note:") && note.contains(&old) && note.contains("ota-ca revoke"),
        "{note}"
    );
    assert_eq!(index(&ca).len(), 2);

    // Once the old ones are revoked, the id is free again without --replace.
    ok(&["revoke", "--dir", s(&ca), "--serial", &old]);
    ok(&[
        "revoke",
        "--dir",
        s(&ca),
        "--serial",
        &serial_of(&out),
        "--reason",
        "superseded",
    ]);
    ok(&["issue", "--dir", s(&ca), "--csr", s(&csr), "--out", s(&out)]);
}

#[test]
fn list_shows_valid_expired_and_revoked() {
    let root = tempfile::tempdir().unwrap();
    // A CA made two years ago, and a one-day certificate issued a year ago.
    let ca = init_ca(root.path(), &["--now", "2024-01-01T00:00:00Z"]);
    let csr = make_csr(root.path(), "old-dev");
    let old = root.path().join("old.pem");
    ok(&[
        "issue",
        "--dir",
        s(&ca),
        "--csr",
        s(&csr),
        "--out",
        s(&old),
        "--days",
        "1",
        "--now",
        "2025-01-01T00:00:00Z",
    ]);
    let valid = issue(root.path(), &ca, "live-dev");
    let gone = issue(root.path(), &ca, "gone-dev");
    ok(&["revoke", "--dir", s(&ca), "--serial", &serial_of(&gone)]);
    // An expired certificate does not block its id.
    let csr2 = make_csr(root.path(), "old-dev");
    ok(&[
        "issue",
        "--dir",
        s(&ca),
        "--csr",
        s(&csr2),
        "--out",
        s(&root.path().join("old2.pem")),
    ]);

    let json = ok(&["list", "--dir", s(&ca), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let certs = v["certificates"].as_array().unwrap();
    let state = |serial: String| {
        certs
            .iter()
            .find(|c| c["serial"] == serial.to_ascii_lowercase().as_str())
            .map(|c| c["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(state(serial_of(&old)), "expired");
    assert_eq!(state(serial_of(&valid)), "valid");
    assert_eq!(state(serial_of(&gone)), "revoked");
    assert_eq!(certs.len(), 4);
    assert_eq!(v["ca"]["name"], "Test Fleet CA");
    assert!(v["crl"]["next_update"].is_string());

    let table = ok(&["list", "--dir", s(&ca)]);
    assert!(table.starts_with("SERIAL"), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(
        table.contains("expired") && table.contains("revoked"),
        "{table}"
    );
}

#[test]
fn concurrent_issues_all_land_in_the_index() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let csrs: Vec<_> = (0..8)
        .map(|i| make_csr(root.path(), &format!("par-{i}")))
        .collect();
    let children: Vec<_> = csrs
        .iter()
        .enumerate()
        .map(|(i, csr)| {
            std::process::Command::new(BIN)
                .args([
                    "issue",
                    "--dir",
                    s(&ca),
                    "--csr",
                    s(csr),
                    "--out",
                    s(&root.path().join(format!("par-{i}.pem"))),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let entries = index(&ca);
    assert_eq!(entries.len(), 8);
    let mut cns: Vec<_> = entries
        .iter()
        .map(|e| e["subject_cn"].as_str().unwrap().to_string())
        .collect();
    cns.sort();
    assert_eq!(cns, (0..8).map(|i| format!("par-{i}")).collect::<Vec<_>>());
    assert_eq!(std::fs::read_dir(ca.join("issued")).unwrap().count(), 8);
    // No temp files were left behind.
    for d in [ca.clone(), ca.join("issued")] {
        for e in std::fs::read_dir(d).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            assert!(!name.starts_with(".ota-tmp-"), "{name}");
        }
    }
}

#[test]
fn a_held_lock_is_exit_3_and_a_missing_ca_too() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &[]);
    let csr = make_csr(root.path(), "dev-l");
    let out = root.path().join("l.pem");
    let lock = std::fs::File::open(ca.join(".lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let args = [
        "issue",
        "--dir",
        s(&ca),
        "--csr",
        s(&csr),
        "--out",
        s(&out),
        "--lock-wait",
        "0",
        "--json",
    ];
    let err = fails(&args, 3);
    assert!(err.contains("locked"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&ota_ca(&args).stdout).unwrap();
    assert_eq!(v["error"]["kind"], "ca");
    drop(lock);
    ok(&args);

    fails(&["list", "--dir", s(&root.path().join("nope"))], 3);
    // An incomplete CA (init interrupted before index.json).
    std::fs::remove_file(ca.join("index.json")).unwrap();
    let err = fails(&["list", "--dir", s(&ca)], 3);
    assert!(err.contains("index.json"), "{err}");
}

#[test]
fn an_ed25519_ca_issues_certificates_openssl_verifies() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(root.path(), &["--key-type", "ed25519", "--days", "30"]);
    let text = openssl_ok(&["x509", "-in", s(&ca.join("ca.pem")), "-noout", "-text"]);
    assert!(text.contains("ED25519"), "{text}");
    // Cut to the CA's own end, with a note.
    let csr = make_csr(root.path(), "dev-ed");
    let out = root.path().join("dev-ed.pem");
    let run = ota_ca(&["issue", "--dir", s(&ca), "--csr", s(&csr), "--out", s(&out)]);
    assert!(run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("cut to the CA certificate's end"));
    openssl_ok(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        s(&ca.join("ca.pem")),
        s(&out),
    ]);
    ok(&["revoke", "--dir", s(&ca), "--serial", &serial_of(&out)]);
    let crl = openssl_ok(&[
        "crl",
        "-in",
        s(&ca.join("crl.pem")),
        "-CAfile",
        s(&ca.join("ca.pem")),
        "-noout",
        "-text",
    ]);
    assert!(crl.contains("verify OK"), "{crl}");
}

#[test]
fn help_has_examples_and_exit_codes() {
    let top = ok(&["--help"]);
    assert!(
        top.contains("Exit codes:") && top.contains("Example"),
        "{top}"
    );
    for cmd in ["init", "issue", "issue-server", "revoke", "crl", "list"] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("Examples:"), "{cmd}: {help}");
        assert!(help.contains(&format!("ota-ca {cmd} ")), "{cmd}: {help}");
        assert!(help.contains("--json"), "{cmd}: {help}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&ota_ca(&["issue", "--json"]).stdout).unwrap();
    assert_eq!(v["error"]["kind"], "input");
    assert_eq!(v["error"]["exit_code"], 2);
}
