//! Role keys on a PKCS#11 token: SoftHSM2 tokens made in a temporary directory, keys made
//! with pkcs11-tool (OpenSC), signatures made through `ota_repo::key_source` and verified
//! with `ota_formats::crypto::Key::verify` and as metadata against a root.
//!
//! Without SoftHSM2 and pkcs11-tool the tests say SKIPPED, unless `CI` is set: then they fail.
//! SoftHSM2 reads its configuration once per process, so every test here shares one token
//! directory (made once, before the module is loaded).
use ota_formats::crypto::{Key, Signer};
use ota_formats::metadata::{RawMetadata, Root, Signed, Targets};
use ota_repo::key_source::{open, KeyAccess, KeyRef, KeySourceError, OpenError, Secret, Secrets};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PIN: &str = "1234";
const SO_PIN: &str = "5678";

struct Hsm {
    module: PathBuf,
    _dir: tempfile::TempDir,
}

fn find_module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn has_tool(name: &str) -> bool {
    Command::new(name).arg("--help").output().is_ok()
}

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("run tool");
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The shared SoftHSM2 tokens: "ota" with the test keys, "pins" for wrong-PIN attempts.
fn hsm() -> Option<&'static Hsm> {
    static HSM: OnceLock<Option<Hsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let module = find_module();
        let ok = module.is_some() && has_tool("softhsm2-util") && has_tool("pkcs11-tool");
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but SoftHSM2 (softhsm2) or pkcs11-tool (opensc) is not installed"
            );
            eprintln!(
                "SKIPPED: SoftHSM2 or pkcs11-tool is not installed; PKCS#11 keys NOT checked"
            );
            return None;
        }
        let module = module?;
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Before this process loads the module (it reads the variable once).
        std::env::set_var("SOFTHSM2_CONF", &conf);
        for label in ["ota", "pins"] {
            run(Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label])
                .args(["--so-pin", SO_PIN, "--pin", PIN]));
        }
        let keygen = |key_type: &str, label: &str, id: &str| {
            run(Command::new("pkcs11-tool")
                .env("SOFTHSM2_CONF", &conf)
                .arg("--module")
                .arg(&module)
                .args([
                    "--token-label",
                    "ota",
                    "--login",
                    "--pin",
                    PIN,
                    "--keypairgen",
                ])
                .args(["--key-type", key_type, "--label", label, "--id", id]));
        };
        keygen("EC:edwards25519", "ed", "01");
        keygen("EC:prime256v1", "ec", "02");
        keygen("rsa:2048", "rsa", "03");
        keygen("EC:secp384r1", "p384", "04");
        keygen("EC:prime256v1", "dup", "05");
        keygen("EC:prime256v1", "dup", "06");
        Some(Hsm { module, _dir: dir })
    })
    .as_ref()
}

impl Hsm {
    fn uri(&self, path: &str) -> String {
        format!(
            "pkcs11:{path}?module-path={}&pin-value={PIN}",
            self.module.display()
        )
    }

    fn open(&self, path: &str) -> Result<Box<dyn Signer + Send + Sync>, OpenError> {
        let key = KeyRef::parse(&self.uri(path)).map_err(OpenError::Source)?;
        open(Path::new("."), &key, &KeyAccess::from_env()).map(|o| o.signer)
    }
}

fn source_err(r: Result<Box<dyn Signer + Send + Sync>, OpenError>) -> KeySourceError {
    match r {
        Err(OpenError::Source(e)) => e,
        Err(_) => panic!("not a key source error"),
        Ok(s) => panic!("opened {:?}", s.public_key()),
    }
}

fn check_signs(signer: &dyn Signer, keytype: &str, scheme: &str) {
    let key: Key = signer.public_key();
    assert_eq!(
        (key.keytype.as_str(), key.scheme.as_str()),
        (keytype, scheme)
    );
    let keyid = signer.key_id().unwrap();
    assert_eq!(keyid, key.key_id().unwrap());
    let sig = signer.sign(b"the canonical bytes").unwrap();
    assert_eq!(sig.keyid, keyid);
    let raw = hex::decode(&sig.sig).unwrap();
    assert!(key.verify(&keyid, b"the canonical bytes", &raw).unwrap());
    assert!(!key.verify(&keyid, b"other bytes", &raw).unwrap());

    // Metadata signed through the token verifies against a root listing the key.
    let mut root = Root::new(1, chrono::Utc::now() + chrono::Duration::days(1));
    root.add_key("targets", key).unwrap();
    let targets = Targets::new(1, chrono::Utc::now() + chrono::Duration::days(1));
    let bytes = Signed::sign(targets, &[signer])
        .unwrap()
        .to_bytes()
        .unwrap();
    let rk = root.role("targets").unwrap();
    RawMetadata::from_bytes(&bytes)
        .unwrap()
        .verify("targets", &root, &rk.keyids, rk.threshold)
        .unwrap();
}

#[test]
fn ed25519_and_p256_token_keys_sign_verifiable_metadata() {
    let Some(h) = hsm() else { return };
    let ed = h.open("token=ota;object=ed").unwrap();
    check_signs(ed.as_ref(), "ed25519", "ed25519");
    let ec = h.open("token=ota;object=ec").unwrap();
    check_signs(ec.as_ref(), "ecdsa", "ecdsa-sha2-nistp256");
    // By id alone, the same key.
    let by_id = h.open("token=ota;id=%02").unwrap();
    assert_eq!(by_id.key_id().unwrap(), ec.key_id().unwrap());
    // ECDSA signatures are randomised but all verify (DER, as TUF lists them).
    let a = ec.sign(b"m").unwrap();
    let b = ec.sign(b"m").unwrap();
    assert_ne!(a.sig, b.sig);
    assert!(hex::decode(&a.sig).unwrap()[0] == 0x30, "DER SEQUENCE");
}

struct PinOnly(&'static str);

impl Secrets for PinOnly {
    fn passphrase(&self, _: &Path, _: u32) -> Result<Option<Secret>, KeySourceError> {
        Ok(None)
    }
    fn pin(&self, _: &str) -> Result<Option<Secret>, KeySourceError> {
        Ok(Some(Secret::new(self.0.to_string())))
    }
}

#[test]
fn the_pin_comes_from_a_file_or_the_secrets_and_the_module_from_the_access() {
    let Some(h) = hsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let uri = format!(
        "pkcs11:token=ota;object=ed?module-path={}&pin-source=file:{}",
        h.module.display(),
        pin_file.display()
    );
    let key = KeyRef::parse(&uri).unwrap();
    assert!(open(dir.path(), &key, &KeyAccess::from_env()).is_ok());

    let secrets = PinOnly(PIN);
    let access = KeyAccess {
        secrets: &secrets,
        module: Some(h.module.clone()),
    };
    let key = KeyRef::parse("pkcs11:token=ota;object=ec").unwrap();
    assert!(open(dir.path(), &key, &access).is_ok());
    let none = KeyAccess {
        secrets: &secrets,
        module: None,
    };
    assert!(matches!(
        open(dir.path(), &key, &none),
        Err(OpenError::Source(KeySourceError::ModuleUnset))
    ));
    // No PIN anywhere.
    let nopin = KeyRef::parse(&format!(
        "pkcs11:token=ota;object=ec?module-path={}",
        h.module.display()
    ))
    .unwrap();
    let no_secrets = KeyAccess {
        secrets: &ota_repo::key_source::EnvSecrets,
        module: None,
    };
    if std::env::var_os(ota_repo::key_source::ENV_PKCS11_PIN).is_none() {
        assert!(matches!(
            open(dir.path(), &nopin, &no_secrets),
            Err(OpenError::Source(KeySourceError::PinUnset { .. }))
        ));
    }
}

#[test]
fn bad_modules_tokens_pins_and_keys_are_told() {
    let Some(h) = hsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let open_uri = |uri: String| {
        let key = KeyRef::parse(&uri).map_err(OpenError::Source)?;
        open(dir.path(), &key, &KeyAccess::from_env()).map(|o| o.signer)
    };

    // A module that does not exist, and a file that is not a shared library.
    let missing = dir.path().join("nope.so");
    let e = source_err(open_uri(format!(
        "pkcs11:token=ota;object=ed?module-path={}&pin-value=1",
        missing.display()
    )));
    assert!(matches!(e, KeySourceError::ModuleLoad { .. }), "{e}");
    assert!(e.to_string().contains("nope.so"), "{e}");
    let garbage = dir.path().join("garbage.so");
    std::fs::write(&garbage, b"this is not an ELF file").unwrap();
    let e = source_err(open_uri(format!(
        "pkcs11:token=ota;object=ed?module-path={}&pin-value=1",
        garbage.display()
    )));
    assert!(matches!(e, KeySourceError::ModuleLoad { .. }), "{e}");
    // A real shared library that is not a PKCS#11 module.
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file());
    if let Some(libc) = libc {
        let e = source_err(open_uri(format!(
            "pkcs11:token=ota;object=ed?module-path={libc}&pin-value=1"
        )));
        assert!(matches!(e, KeySourceError::NotPkcs11 { .. }), "{e}");
        assert!(e.to_string().contains("C_GetFunctionList"), "{e}");
    }

    // A token that is not there: the message lists the labels present.
    let e = source_err(h.open("token=missing;object=ed"));
    assert!(matches!(e, KeySourceError::TokenNotFound { .. }), "{e}");
    assert!(e.to_string().contains("\"ota\""), "{e}");

    // A wrong PIN (on the token no test logs in to, so no session is logged in already).
    let e = source_err(open_uri(format!(
        "pkcs11:token=pins;object=ed?module-path={}&pin-value=9999",
        h.module.display()
    )));
    assert!(matches!(e, KeySourceError::PinIncorrect { .. }), "{e}");
    assert!(e.to_string().contains("CKR_PIN_INCORRECT"), "{e}");
    assert!(!e.to_string().contains("9999"), "{e}");

    // Objects: missing, ambiguous, of an unsupported type or curve.
    let e = source_err(h.open("token=ota;object=nothing"));
    assert!(matches!(e, KeySourceError::ObjectNotFound { .. }), "{e}");
    let e = source_err(h.open("token=ota;object=ed;id=%09"));
    assert!(e.to_string().contains("labelled \"ed\" with id 09"), "{e}");
    let e = source_err(h.open("token=ota;object=dup"));
    assert!(
        matches!(e, KeySourceError::ObjectAmbiguous { count: 2, .. }),
        "{e}"
    );
    assert!(h.open("token=ota;object=dup;id=%06").is_ok());
    let e = source_err(h.open("token=ota;object=rsa"));
    assert!(matches!(e, KeySourceError::UnsupportedKey { .. }), "{e}");
    assert!(e.to_string().contains("RSA"), "{e}");
    let e = source_err(h.open("token=ota;object=p384"));
    assert!(e.to_string().contains("P-384"), "{e}");
}
