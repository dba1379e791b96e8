//! Key files: written as PKCS#8 version 1 (RFC 8410), which OpenSSL 3 and python
//! `cryptography` load (before, ota-sign wrote version 2, which both refuse), version 2 files
//! still load, and files that are not Ed25519 PEM keys are described as what they are.
mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn openssl() -> Option<&'static str> {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: the openssl command is not installed; OpenSSL interop NOT checked");
    }
    found.then_some("openssl")
}

/// The hex public keys root.json lists.
fn root_public_keys(repo: &Path) -> Vec<String> {
    verify_repo(repo)
        .root
        .keys
        .values()
        .map(|k| k.keyval.public.clone())
        .collect()
}

fn key_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 4, "{v:?}");
    v
}

#[test]
fn generated_keys_load_in_openssl_and_python_cryptography() {
    let env = Env::new();
    env.init(&[]);
    let listed = root_public_keys(&env.repo);
    for f in key_files(&env.keys) {
        let pem = std::fs::read_to_string(&f).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        if let Some(openssl) = openssl() {
            let o = Command::new(openssl)
                .args(["pkey", "-noout", "-in"])
                .arg(&f)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "openssl pkey cannot load {}: {}",
                f.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            // And it is the key root.json lists: the raw public key ends the DER SPKI.
            let o = Command::new(openssl)
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&f)
                .output()
                .unwrap();
            assert!(o.status.success());
            let public = hex::encode(&o.stdout[o.stdout.len() - 32..]);
            assert!(listed.contains(&public), "{} not in root", f.display());
        }
        match std::env::var_os("OTA_PYTHON") {
            None => eprintln!("SKIPPED: OTA_PYTHON is not set; python cryptography NOT checked"),
            Some(py) => {
                let script = "import sys\n\
                    from cryptography.hazmat.primitives import serialization as s\n\
                    k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
                    print(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())\n";
                let o = Command::new(py)
                    .args(["-c", script])
                    .arg(&f)
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "python cryptography cannot load {}: {}",
                    f.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
                let public = String::from_utf8(o.stdout).unwrap().trim().to_string();
                assert!(listed.contains(&public), "{} not in root", f.display());
            }
        }
    }
}

#[test]
fn keys_made_by_openssl_are_used_and_old_v2_keys_still_sign() {
    // keys-example/ was written by an earlier ota-sign: PKCS#8 version 2 ("MFECAQEw...": the
    // version field is 1, i.e. v2). It is left as it is and must keep working.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys-example");
    let env = Env::new();
    std::fs::create_dir(&env.keys).unwrap();
    for f in key_files(&example) {
        let pem = std::fs::read_to_string(&f).unwrap();
        assert!(
            pem.contains("\nMFECAQEw"),
            "{} is no longer v2",
            f.display()
        );
        std::fs::copy(&f, env.keys.join(f.file_name().unwrap())).unwrap();
    }
    if let Some(openssl) = openssl() {
        // A key OpenSSL generated replaces the example targets key.
        let t = env.keys.join("targets-1.pem");
        std::fs::remove_file(&t).unwrap();
        let o = Command::new(openssl)
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&t)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 1);
    let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    verify_repo(&env.repo);
}

#[test]
fn a_garbage_key_file_is_said_not_to_be_a_pem_key() {
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 2);
    let key = env.keys.join("targets-1.pem");
    for garbage in [
        &b"garbage\0\x01\x02 not a key"[..],
        b"hello world\n",
        b"",
        &[0x30, 0x82, 0x01, 0xff, 0xfe, 0x00, 0x9c],
    ] {
        std::fs::write(&key, garbage).unwrap();
        let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
        assert_fails(
            &o,
            3,
            &format!("key file {} is not a PEM private key", key.display()),
        );
        let err = stderr(&o);
        assert!(
            err.contains("-----BEGIN PRIVATE KEY-----") && err.contains("Ed25519"),
            "says what is expected: {err}"
        );
        assert!(!err.contains("NUL"), "{err}");
    }
}

#[test]
fn an_rsa_key_file_is_said_to_be_an_rsa_key() {
    let Some(openssl) = openssl() else { return };
    let env = Env::new();
    env.init(&[]);
    let img = env.image("fw.img", 10_000, 3);
    let key = env.keys.join("targets-1.pem");
    std::fs::remove_file(&key).unwrap();
    let o = Command::new(openssl)
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(env.add_args(&img, "fw", "1.0.0", "hw"));
    assert_fails(
        &o,
        3,
        &format!(
            "key file {} holds an RSA key (OID 1.2.840.113549.1.1.1); ota-sign signs with Ed25519 keys",
            key.display()
        ),
    );
    // Before, it was reported as "unsupported OID 1.3.101.112": Ed25519's, the one we want.
    assert!(!stderr(&o).contains("unsupported"), "{}", stderr(&o));

    // The same key in the older PKCS#1 form ("BEGIN RSA PRIVATE KEY").
    let pkcs1 = env.tmp.path().join("rsa1.pem");
    let o = Command::new(openssl)
        .args(["pkey", "-traditional", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pkcs1)
        .output()
        .unwrap();
    if o.status.success()
        && std::fs::read_to_string(&pkcs1)
            .unwrap()
            .contains("BEGIN RSA")
    {
        std::fs::copy(&pkcs1, &key).unwrap();
        assert_fails(
            &run(env.add_args(&img, "fw", "1.0.0", "hw")),
            3,
            "holds an RSA private key in PKCS#1 form (-----BEGIN RSA PRIVATE KEY-----)",
        );
    }
}
