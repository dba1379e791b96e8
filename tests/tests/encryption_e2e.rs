//! Encrypted firmware as a user runs it, with the real binaries only: `ota-sign` registers
//! recipients and encrypts releases, the real `ota-server` serves them, `ota-client` devices
//! (own key from `keygen`, group key from `keys import-group`) install or refuse them.
use ota_tests::cli::run_with_stdin;
use ota_tests::release::{Device as Dev, Owner};
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::Path;

const NAME: &str = "gateway-fw";
const GROUP: &str = "board-a";

fn image(seed: u8, len: usize) -> Vec<u8> {
    // Compressible but distinct per seed.
    (0..len)
        .map(|i| ((i / 5) as u8).wrapping_mul(17).wrapping_add(seed))
        .collect()
}

fn args(parts: &[&Path]) -> Vec<std::ffi::OsString> {
    parts.iter().map(|p| p.as_os_str().to_owned()).collect()
}

/// `ota-sign add` a release of `data`, encrypted to `encrypt_to` if given.
fn add(owner: &Owner, version: &str, data: &[u8], encrypt_to: Option<&str>) -> String {
    let extra: Vec<&str> = encrypt_to
        .map(|to| vec!["--encrypt-to", to])
        .unwrap_or_default();
    owner.add(NAME, GROUP, version, data, &extra).0
}

#[test]
fn device_group_and_revoked_recipients_end_to_end() {
    let owner = Owner::new();
    let server = TestServer::start(&owner.repo);
    let url = server.url();

    // Devices make their keys; the owner registers them and creates group board-a (B in it).
    let a = Dev::new(&owner, &url, GROUP);
    let b = Dev::new(&owner, &url, GROUP);
    let (a_pub, a_id) = a.keygen();
    let (b_pub, b_id) = b.keygen();
    let keys = owner.keys.to_str().unwrap();
    owner.recipients("group-create", &["--keys", keys, GROUP]);
    owner.recipients("add", &["dev-a", &a_pub]);
    owner.recipients("add", &["dev-b", &b_pub, "--group", GROUP]);
    let listed = owner.recipients("list", &["--json"]).json();
    let group_id = listed["groups"][0]["recipient_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_file = owner.keys.join(format!("group-{GROUP}.otasec"));

    // B gets the group secret provisioned from the file ota-sign wrote.
    let r = b.client(&[
        "keys",
        "import-group",
        "--name",
        GROUP,
        secret_file.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let held = b.client(&["keys", "list", "--json"]).json();
    assert_eq!(held["device_key"]["recipient_id"], b_id.as_str());
    assert_eq!(held["group_keys"][0]["name"], GROUP);
    assert_eq!(held["group_keys"][0]["recipient_id"], group_id.as_str());
    let status = b.client(&["status", "--json"]).json();
    assert_eq!(
        status["keys"]["group_keys"][0]["recipient_id"],
        group_id.as_str()
    );
    // Importing again needs --force; a public key is not a group secret.
    let again = [
        "keys",
        "import-group",
        "--name",
        GROUP,
        secret_file.to_str().unwrap(),
    ];
    assert_eq!(b.client(&again).code, 2);
    let forced: Vec<&str> = again.iter().copied().chain(["--force"]).collect();
    assert_eq!(b.client(&forced).code, 0);
    let public = owner.work.join("public.txt");
    std::fs::write(&public, &a_pub).unwrap();
    let r = a.client(&[
        "keys",
        "import-group",
        "--name",
        GROUP,
        public.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("public key"), "{r:?}");
    let held = a.client(&["keys", "list", "--json"]).json();
    assert_eq!(held["group_keys"], serde_json::json!([]));
    assert_eq!(held["device_key"]["recipient_id"], a_id.as_str());

    // 1.0.0, not encrypted: every device installs it.
    let v1 = image(1, 300_000);
    add(&owner, "1.0.0", &v1, None);
    a.installs("1.0.0", &v1);
    b.installs("1.0.0", &v1);

    // 1.1.0 for dev-a alone: A installs it; B (registered, not addressed) is refused.
    let v11 = image(2, 300_000);
    let t11 = add(&owner, "1.1.0", &v11, Some("device:dev-a"));
    assert!(owner.slip(&t11, &a_id).is_file());
    assert!(!owner.slip(&t11, &b_id).exists());
    a.installs("1.1.0", &v11);
    b.skipped("1.1.0");
    assert_eq!(b.installed()["version"], "1.0.0");

    // 1.2.0 for group board-a: B installs it with the group key, A (no group key) is refused,
    // and a device holding only the group key (no keygen, key piped in on stdin) installs it.
    let v12 = image(3, 300_000);
    add(&owner, "1.2.0", &v12, Some(&format!("group:{GROUP}")));
    b.installs("1.2.0", &v12);
    a.skipped("1.2.0");
    assert_eq!(a.installed()["version"], "1.1.0");
    let c = Dev::new(&owner, &url, GROUP);
    let secret = std::fs::read(&secret_file).unwrap();
    let r = run_with_stdin(
        "ota-client",
        &args(&[
            Path::new("keys"),
            Path::new("import-group"),
            Path::new("--state"),
            &c.state,
            Path::new("--name"),
            Path::new(GROUP),
            Path::new("-"),
        ]),
        &secret,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let held = c.client(&["keys", "list", "--json"]).json();
    assert_eq!(held["device_key"], serde_json::Value::Null);
    assert_eq!(held["group_keys"][0]["recipient_id"], group_id.as_str());
    c.installs("1.2.0", &v12);

    // dev-a is removed: 1.3.0 for all devices has no slip for A; B installs it (device slip
    // file, although it also holds a group key).
    owner.recipients("remove", &["dev-a"]);
    let v13 = image(4, 300_000);
    let t13 = add(&owner, "1.3.0", &v13, Some("all-devices"));
    assert!(!owner.slip(&t13, &a_id).exists());
    assert!(owner.slip(&t13, &b_id).is_file());
    a.skipped("1.3.0");
    assert_eq!(a.installed()["version"], "1.1.0");
    assert_eq!(std::fs::read(&a.slot).unwrap(), v11);
    b.installs("1.3.0", &v13);
    // C holds only the group key and there is no group slip: not for it either.
    c.skipped("1.3.0");

    // An unencrypted release still installs everywhere.
    let v14 = image(5, 300_000);
    add(&owner, "1.4.0", &v14, None);
    for d in [&a, &b, &c] {
        d.installs("1.4.0", &v14);
    }

    // The newest release is for B only, an older newer-than-installed one for everybody: A
    // passes over 1.6.0 and installs 1.5.0 (a release not for a device is not an update).
    let v15 = image(6, 300_000);
    add(&owner, "1.5.0", &v15, None);
    let v16 = image(7, 300_000);
    add(&owner, "1.6.0", &v16, Some("device:dev-b"));
    let r = a.client(&["check", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["update"]["version"], "1.5.0", "{r:?}");
    assert_eq!(r.json()["skipped"][0]["version"], "1.6.0", "{r:?}");
    a.installs("1.5.0", &v15);
    b.installs("1.6.0", &v16);
}
