//! Role keys that are not plain files, end to end through the real binaries: keys on a
//! PKCS#11 token (SoftHSM2, set up here in a temporary directory; keys made with pkcs11-tool)
//! that `ota-sign keys import-pkcs11` makes the targets keys and `ota-sign add` signs with,
//! a device (`ota-client`) installing what they signed; and key files encrypted with a
//! passphrase (`ota-sign keys encrypt`, OpenSSL). Bad modules, tokens, PINs, objects, key
//! types, passphrases and damaged files fail with exit 3 and leave the repository unchanged.
//!
//! Without SoftHSM2 or pkcs11-tool the token tests say SKIPPED, unless `CI` is set: then
//! they fail.
use ota_tests::cli::{self, Run};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// Not hex, so it cannot appear by chance in key ids of the output.
const PIN: &str = "ota-pin-4321";

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

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run tool");
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A SoftHSM2 token "ota" of its own (a token directory and configuration in a temp dir).
struct Token {
    dir: tempfile::TempDir,
    module: PathBuf,
}

impl Token {
    /// `None` (SKIPPED) without SoftHSM2 or pkcs11-tool; a failure then when `CI` is set.
    fn new() -> Option<Self> {
        let module = find_module();
        if module.is_none() || !has_tool("softhsm2-util") || !has_tool("pkcs11-tool") {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but SoftHSM2 (softhsm2) or pkcs11-tool (opensc) is not installed"
            );
            eprintln!("SKIPPED: SoftHSM2 or pkcs11-tool is not installed; HSM keys NOT checked");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let t = Token {
            dir,
            module: module?,
        };
        ok(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", t.conf())
            .args(["--init-token", "--free", "--label", "ota"])
            .args(["--so-pin", "0000", "--pin", PIN]));
        Some(t)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// A key pair on the token (`EC:edwards25519`, `EC:prime256v1`, `rsa:2048`).
    fn keygen(&self, key_type: &str, label: &str, id: &str) {
        ok(Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", self.conf())
            .arg("--module")
            .arg(&self.module)
            .args([
                "--token-label",
                "ota",
                "--login",
                "--pin",
                PIN,
                "--keypairgen",
            ])
            .args(["--key-type", key_type, "--label", label, "--id", id]));
    }
}

/// `ota-sign ARGS` with exactly the OTA_* environment given (and the token's SoftHSM2
/// configuration); standard input is not a terminal, so nothing is asked.
fn sign<S: AsRef<OsStr>>(token: Option<&Token>, env: &[(&str, &str)], args: &[S]) -> Run {
    let mut cmd = Command::new(cli::bin("ota-sign"));
    for v in [
        "OTA_PKCS11_MODULE",
        "OTA_PKCS11_PIN",
        "OTA_KEY_PASSPHRASE",
        "SOFTHSM2_CONF",
    ] {
        cmd.env_remove(v);
    }
    if let Some(t) = token {
        cmd.env("SOFTHSM2_CONF", t.conf());
    }
    cmd.envs(env.iter().copied());
    let out = cmd.args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Repo {
    dir: tempfile::TempDir,
    repo: PathBuf,
    keys: PathBuf,
}

impl Repo {
    fn init() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (repo, keys) = (dir.path().join("repo"), dir.path().join("keys"));
        let r = sign(
            None,
            &[],
            &[
                "init".as_ref(),
                "--repo".as_ref(),
                repo.as_os_str(),
                "--keys".as_ref(),
                keys.as_os_str(),
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        Repo { dir, repo, keys }
    }

    fn add_args(&self, version: &str, data: &[u8]) -> Vec<std::ffi::OsString> {
        let img = self.dir.path().join(format!("fw-{version}.img"));
        std::fs::write(&img, data).unwrap();
        let mut v: Vec<std::ffi::OsString> = ["add", "--repo"].map(Into::into).to_vec();
        v.push(self.repo.clone().into());
        v.push("--keys".into());
        v.push(self.keys.clone().into());
        v.push(img.into());
        for a in [
            "--name",
            "gw",
            "--version",
            version,
            "--hardware",
            "board-a",
        ] {
            v.push(a.into());
        }
        v
    }

    fn import(&self, t: &Token, env: &[(&str, &str)], uri: &str, extra: &[&str]) -> Run {
        let mut args: Vec<&OsStr> = vec![
            "keys".as_ref(),
            "import-pkcs11".as_ref(),
            "--repo".as_ref(),
            self.repo.as_os_str(),
            "--keys".as_ref(),
            self.keys.as_os_str(),
            "--role".as_ref(),
            "targets".as_ref(),
            "--uri".as_ref(),
            uri.as_ref(),
            "--json".as_ref(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        sign(Some(t), env, &args)
    }

    fn targets_signers(&self) -> Vec<String> {
        let ts: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.repo.join("metadata/timestamp.json")).unwrap(),
        )
        .unwrap();
        let sv = ts["signed"]["meta"]["snapshot.json"]["version"]
            .as_u64()
            .unwrap();
        let snap: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.repo.join(format!("metadata/{sv}.snapshot.json"))).unwrap(),
        )
        .unwrap();
        let tv = snap["signed"]["meta"]["targets.json"]["version"]
            .as_u64()
            .unwrap();
        let t: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.repo.join(format!("metadata/{tv}.targets.json"))).unwrap(),
        )
        .unwrap();
        t["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["keyid"].as_str().unwrap().to_string())
            .collect()
    }
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// A device of the repository served by ota-server, initialised with root version 1.
struct Device {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Device {
    fn new(repo: &Repo, server: &TestServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let root = repo.repo.join("metadata/1.root.json");
        let r = cli::client(
            &state,
            &[
                "init",
                "--root",
                root.to_str().unwrap(),
                "--server",
                &server.url(),
                "--hardware",
                "board-a",
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        Device { dir, state }
    }

    fn update(&self) -> PathBuf {
        let slot = self.dir.path().join("firmware.img");
        let r = cli::client(
            &self.state,
            &["update", "--install-to", slot.to_str().unwrap(), "--json"],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.json()["result"], "installed", "{r:?}");
        slot
    }
}

/// init with file keys, v1 installed; the targets role switched to the token key `label`;
/// v2 added (signed by the token) and installed by a device that trusted root v1.
fn switch_targets_to_token_and_install(key_type: &str, scheme: &str) {
    let Some(t) = Token::new() else { return };
    t.keygen(key_type, "targets-hsm", "01");
    let module = t.module.to_str().unwrap();
    let env = [("OTA_PKCS11_MODULE", module), ("OTA_PKCS11_PIN", PIN)];
    let repo = Repo::init();
    let r = sign(None, &[], &repo.add_args("1.0.0", &image(1, 50_000)));
    assert_eq!(r.code, 0, "{r:?}");
    let server = TestServer::start(&repo.repo);
    let dev = Device::new(&repo, &server);
    assert_eq!(std::fs::read(dev.update()).unwrap(), image(1, 50_000));

    let r = repo.import(&t, &env, "pkcs11:token=ota;object=targets-hsm", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["root_version"], 2, "{report}");
    assert_eq!(report["scheme"], scheme);
    assert_eq!(report["retired_entries"][0], "targets-1.pem");
    let hsm_keyid = report["keyid"].as_str().unwrap().to_string();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.repo.join("ota-repo.json")).unwrap()).unwrap();
    assert_eq!(
        config["key_files"]["targets"],
        serde_json::json!(["pkcs11:token=ota;object=targets-hsm"])
    );
    assert_eq!(repo.targets_signers(), vec![hsm_keyid.clone()]);
    // The retired file key is not needed any more.
    std::fs::remove_file(repo.keys.join("targets-1.pem")).unwrap();

    let r = sign(Some(&t), &env, &repo.add_args("2.0.0", &image(2, 60_000)));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(repo.targets_signers(), vec![hsm_keyid]);
    ota_repo::Repository::load(&repo.repo).expect("the repository verifies");
    // The device walks root v1 -> v2 and installs what the token signed.
    assert_eq!(std::fs::read(dev.update()).unwrap(), image(2, 60_000));
}

#[test]
fn add_signs_with_an_ed25519_token_key_and_a_device_installs_it() {
    switch_targets_to_token_and_install("EC:edwards25519", "ed25519");
}

#[test]
fn add_signs_with_a_p256_token_key_and_a_device_installs_it() {
    switch_targets_to_token_and_install("EC:prime256v1", "ecdsa-sha2-nistp256");
}

#[test]
fn import_with_keep_adds_beside_and_again_only_lists() {
    let Some(t) = Token::new() else { return };
    t.keygen("EC:edwards25519", "t2", "07");
    let module = t.module.to_str().unwrap();
    let env = [("OTA_PKCS11_MODULE", module), ("OTA_PKCS11_PIN", PIN)];
    let repo = Repo::init();
    let uri = "pkcs11:token=ota;object=t2";
    let r = repo.import(&t, &env, uri, &["--keep"]);
    assert_eq!(r.code, 0, "{r:?}");
    let hsm = r.json()["keyid"].as_str().unwrap().to_string();
    assert_eq!(r.json()["root_version"], 2);
    assert_eq!(r.json()["removed"], serde_json::json!([]));
    let mut signers = repo.targets_signers();
    signers.sort();
    assert_eq!(signers.len(), 2, "the file key and the token key sign");
    assert!(signers.contains(&hsm));

    // Authorised already and kept: only the policy (unchanged) is written, no new root.
    let before = cli::tree(&repo.repo);
    let r = repo.import(&t, &env, uri, &["--keep"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["root_version"], serde_json::Value::Null);
    assert_eq!(cli::tree(&repo.repo), before);

    // Without --keep the file key leaves root and the policy.
    let r = repo.import(&t, &env, uri, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["root_version"], 3);
    assert_eq!(
        r.json()["retired_entries"],
        serde_json::json!(["targets-1.pem"])
    );
    assert_eq!(repo.targets_signers(), vec![hsm]);
    let r = sign(Some(&t), &env, &repo.add_args("1.0.0", &image(7, 5000)));
    assert_eq!(r.code, 0, "{r:?}");
    ota_repo::Repository::load(&repo.repo).expect("the repository verifies");
}

fn assert_fails(r: &Run, says: &str) {
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains(says),
        "expected {says:?} in: {}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    assert!(
        !r.stderr.contains(PIN),
        "the PIN is never printed: {}",
        r.stderr
    );
}

#[test]
fn bad_modules_tokens_pins_and_keys_fail_and_change_nothing() {
    let Some(t) = Token::new() else { return };
    t.keygen("EC:edwards25519", "targets-hsm", "01");
    t.keygen("rsa:2048", "rsa", "02");
    let module = t.module.to_str().unwrap().to_string();
    let repo = Repo::init();
    let good = [
        ("OTA_PKCS11_MODULE", module.as_str()),
        ("OTA_PKCS11_PIN", PIN),
    ];

    // Refused imports: nothing changes.
    let before = cli::tree(&repo.repo);
    for (uri, env, says) in [
        (
            "pkcs11:token=nope;object=targets-hsm",
            &good[..],
            "no PKCS#11 token labelled \"nope\"",
        ),
        (
            "pkcs11:token=ota;object=nope",
            &good[..],
            "has no private key labelled \"nope\"",
        ),
        ("pkcs11:token=ota;object=rsa", &good[..], "CKK_RSA"),
        ("pkcs11:token=ota;object=targets-hsm", &good[..1], "no PIN"),
        (
            "pkcs11:token=ota;object=targets-hsm",
            &[("OTA_PKCS11_PIN", PIN)][..],
            "no PKCS#11 module",
        ),
    ] {
        let r = repo.import(&t, env, uri, &[]);
        assert_fails(&r, says);
        assert_eq!(r.json()["error"]["kind"], "keys");
        assert_eq!(cli::tree(&repo.repo), before, "{uri}");
    }
    let r = repo.import(
        &t,
        &[
            ("OTA_PKCS11_MODULE", module.as_str()),
            ("OTA_PKCS11_PIN", "999999"),
        ],
        "pkcs11:token=ota;object=targets-hsm",
        &[],
    );
    assert_fails(&r, "CKR_PIN_INCORRECT");
    assert_eq!(cli::tree(&repo.repo), before);

    // Switched; then `add` with a broken module, PIN or token leaves the repository alone.
    let r = repo.import(&t, &good, "pkcs11:token=ota;object=targets-hsm", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let garbage = repo.dir.path().join("not-a-module.so");
    std::fs::write(&garbage, b"not a shared library").unwrap();
    let missing = repo.dir.path().join("missing.so");
    let before = cli::tree(&repo.repo);
    let add = repo.add_args("1.0.0", &image(3, 10_000));
    for (env, says) in [
        (
            vec![
                ("OTA_PKCS11_MODULE", missing.to_str().unwrap()),
                ("OTA_PKCS11_PIN", PIN),
            ],
            "cannot load PKCS#11 module",
        ),
        (
            vec![
                ("OTA_PKCS11_MODULE", garbage.to_str().unwrap()),
                ("OTA_PKCS11_PIN", PIN),
            ],
            "cannot load PKCS#11 module",
        ),
        (
            vec![
                ("OTA_PKCS11_MODULE", module.as_str()),
                ("OTA_PKCS11_PIN", "000000"),
            ],
            "CKR_PIN_INCORRECT",
        ),
        (vec![("OTA_PKCS11_MODULE", module.as_str())], "no PIN"),
    ] {
        let r = sign(Some(&t), &env, &add);
        assert_fails(&r, says);
        assert_eq!(cli::tree(&repo.repo), before);
    }
    // The key deleted from the token.
    ok(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", t.conf())
        .arg("--module")
        .arg(&t.module)
        .args(["--token-label", "ota", "--login", "--pin", PIN])
        .args([
            "--delete-object",
            "--type",
            "privkey",
            "--label",
            "targets-hsm",
        ]));
    let r = sign(Some(&t), &good, &add);
    assert_fails(&r, "has no private key labelled \"targets-hsm\"");
    assert_eq!(cli::tree(&repo.repo), before);
}

fn openssl() -> Option<&'static str> {
    Command::new("openssl")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "openssl")
}

#[test]
fn encrypted_key_files_sign_with_the_right_passphrase_only() {
    let repo = Repo::init();
    let key = repo.keys.join("targets-1.pem");
    let plain = std::fs::read(&key).unwrap();
    let pass = [("OTA_KEY_PASSPHRASE", "correct horse")];
    let enc_args = |extra: &[&str]| {
        let mut v: Vec<std::ffi::OsString> = vec!["keys".into(), "encrypt".into(), "--in".into()];
        v.push(key.clone().into());
        v.extend(extra.iter().map(Into::into));
        v
    };
    // No passphrase, no terminal: refused, key untouched.
    let r = sign(None, &[], &enc_args(&[]));
    assert_fails(&r, "no passphrase");
    assert_eq!(std::fs::read(&key).unwrap(), plain);

    let r = sign(None, &pass, &enc_args(&["--json"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["kdf"], "scrypt");
    let enc = std::fs::read_to_string(&key).unwrap();
    assert!(
        enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{enc}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let r = sign(None, &pass, &enc_args(&[]));
    assert_fails(&r, "encrypted already");

    let before = cli::tree(&repo.repo);
    let add = repo.add_args("1.0.0", &image(4, 10_000));
    let r = sign(None, &[], &add);
    assert_fails(&r, "no passphrase was given");
    assert_eq!(cli::tree(&repo.repo), before);
    let r = sign(None, &[("OTA_KEY_PASSPHRASE", "wrong")], &add);
    assert_fails(&r, "wrong passphrase");
    assert_eq!(cli::tree(&repo.repo), before);
    // A damaged file: a line of the base64 body cut short.
    let mut lines: Vec<String> = enc.lines().map(String::from).collect();
    lines[2].truncate(10);
    std::fs::write(&key, lines.join("\n") + "\n").unwrap();
    let r = sign(None, &pass, &add);
    assert_fails(&r, "damaged encrypted private key");
    assert_eq!(cli::tree(&repo.repo), before);
    std::fs::write(&key, &enc).unwrap();
    let r = sign(None, &pass, &add);
    assert_eq!(r.code, 0, "{r:?}");

    // PBKDF2 to a new file; OpenSSL reads it, and ota-sign reads OpenSSL's scrypt files.
    let Some(openssl) = openssl() else {
        eprintln!("SKIPPED: openssl is not installed; OpenSSL interop NOT checked");
        return;
    };
    let snapshot_key = repo.keys.join("snapshot-1.pem");
    let out = repo.dir.path().join("snapshot-1.enc.pem");
    let r = sign(
        None,
        &pass,
        &[
            "keys".as_ref(),
            "encrypt".as_ref(),
            "--in".as_ref(),
            snapshot_key.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--kdf".as_ref(),
            "pbkdf2".as_ref(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    ok(Command::new(openssl)
        .args(["pkey", "-noout", "-passin", "pass:correct horse", "-in"])
        .arg(&out));
    let timestamp_key = repo.keys.join("timestamp-1.pem");
    let openssl_enc = repo.dir.path().join("ts.enc");
    ok(Command::new(openssl)
        .args([
            "pkcs8",
            "-topk8",
            "-scrypt",
            "-passout",
            "pass:correct horse",
            "-in",
        ])
        .arg(&timestamp_key)
        .arg("-out")
        .arg(&openssl_enc));
    std::fs::copy(&openssl_enc, &timestamp_key).unwrap();
    std::fs::copy(&out, &snapshot_key).unwrap();
    let r = sign(None, &pass, &repo.add_args("2.0.0", &image(5, 10_000)));
    assert_eq!(r.code, 0, "{r:?}");
    ota_repo::Repository::load(&repo.repo).expect("the repository verifies");
}

#[test]
fn a_damaged_token_entry_in_the_policy_is_a_key_error() {
    let repo = Repo::init();
    let cfg_path = repo.repo.join("ota-repo.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["key_files"]["targets"] = serde_json::json!(["pkcs11:token=ota;object=t?pin-value=1234"]);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let r = sign(None, &[], &repo.add_args("1.0.0", &image(6, 1000)));
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("pin-value"), "{}", r.stderr);
    assert!(!r.stderr.contains("1234"), "{}", r.stderr);
}
