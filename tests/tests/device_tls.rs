//! The device over HTTPS: nginx serves a repository signed by the real `ota-sign` with a
//! server certificate from a fleet CA made by the real `ota-ca`, optionally requiring client
//! certificates; the real `ota-client` is configured with `init --ca-bundle/--pin-spki/
//! --client-cert`, enrolls (`enroll`, CSR issued by `ota-ca issue`, `enroll --cert`) and
//! changes owner (`reenroll`). rcgen makes only what a CA tool must not: a self-signed server
//! certificate (the pinned-key case) and an expired certificate.
//!
//! nginx (`ssl`, `ssl_verify_client on`) is the HTTPS server of most cases: it refuses a
//! missing client certificate with a 400 page after the handshake. `ota-server` with
//! `--client-ca` (its library, in process) refuses in the handshake with a TLS alert; both are
//! covered.
use ota_tests::cli::{run, Run, SignedRepo};
use ota_tests::nginx::{Nginx, Tls};
use ota_tests::tls_server::FleetCa;
use ota_tests::RepoHost;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use std::path::{Path, PathBuf};

/// A fleet CA made by the real `ota-ca`, and files made with it, in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: FleetCa,
    /// The CA certificate (the device's --ca-bundle, nginx's client CA).
    ca_pem: PathBuf,
}

/// A certificate and key written to files, with the sha256 of the key's SPKI.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    spki_sha256: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa {
            dir: dir.path().join(format!("{name}-ca")),
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
        };
        ca.run(&["init", "--name", &format!("{name} fleet CA")]);
        // A copy, as an operator hands it out: tests delete it to show devices keep theirs.
        let ca_pem = dir.path().join(format!("{name}-ca.pem"));
        std::fs::copy(ca.ca_pem(), &ca_pem).unwrap();
        Pki { dir, ca, ca_pem }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn spki_of(cert: &Path) -> String {
        let der = &ota_client::pki::read_certificates(cert).unwrap()[0];
        ota_client::pki::CertInfo::parse(cert, 1, der)
            .unwrap()
            .spki_sha256()
    }

    /// A server certificate for 127.0.0.1: `ota-ca issue-server`, or self-signed (rcgen:
    /// a CA tool makes no self-signed server certificates; that is the pinned-key case).
    fn server(&self, name: &str, self_signed: bool) -> Leaf {
        let (cert, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        if self_signed {
            let key_pair = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::new()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "127.0.0.1");
            params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let c = params.self_signed(&key_pair).unwrap();
            std::fs::write(&cert, c.pem()).unwrap();
            std::fs::write(&key, key_pair.serialize_pem()).unwrap();
        } else {
            self.ca.run(&[
                "issue-server",
                "--name",
                "127.0.0.1",
                "--out-cert",
                cert.to_str().unwrap(),
                "--out-key",
                key.to_str().unwrap(),
            ]);
        }
        Leaf {
            spki_sha256: Self::spki_of(&cert),
            cert,
            key,
        }
    }

    /// A client certificate with its own key: the key and CSR made as a device would (rcgen
    /// stands in for the device), the certificate issued by `ota-ca issue`.
    fn client(&self, name: &str) -> Leaf {
        let key_pair = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let csr = params.serialize_request(&key_pair).unwrap();
        let csr_path = self.write(&format!("{name}.csr"), &csr.pem().unwrap());
        let key = self.write(&format!("{name}.key"), &key_pair.serialize_pem());
        let cert = self.sign_csr(&csr_path, &format!("{name}.pem"));
        Leaf {
            spki_sha256: Self::spki_of(&cert),
            cert,
            key,
        }
    }

    /// Issue a device's CSR with `ota-ca issue` (a new key for the same device id is an
    /// ownership transfer or a re-enrollment: `--replace`).
    fn sign_csr(&self, csr: &Path, out: &str) -> PathBuf {
        let path = self.path(out);
        self.ca.run(&[
            "issue",
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            path.to_str().unwrap(),
            "--replace",
        ]);
        path
    }

    /// A certificate for `csr` that expired long ago, signed by a CA of the same name as
    /// this one but another key (rcgen: `ota-ca` issues nothing in the past). Enough for
    /// `enroll --cert`, which checks the validity and the key, not the issuer.
    fn expired(&self, csr: &Path, out: &str) -> PathBuf {
        let pem = std::fs::read_to_string(csr).unwrap();
        let mut req = CertificateSigningRequestParams::from_pem(&pem).unwrap();
        req.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        req.params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        req.params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = Issuer::new(ca, ca_key);
        let cert = req.signed_by(&issuer).unwrap();
        self.write(out, &cert.pem())
    }
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 5) as u8).wrapping_mul(17).wrapping_add(seed))
        .collect()
}

/// `ota-sign add` an image of `gateway-fw` for board-a.
fn publish(rel: &SignedRepo, version: &str, data: &[u8]) {
    rel.add("gateway-fw", version, "board-a", data, &[]);
}

/// A device: state dir and install slot in a temp dir.
struct Dev {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
}

impl Dev {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Dev {
            state: dir.path().join("state"),
            slot: dir.path().join("firmware.img"),
            _dir: dir,
        }
    }

    fn client(&self, args: &[&str]) -> Run {
        ota_tests::cli::client(&self.state, args)
    }

    /// `init` against `server` with `extra` options; the result (not asserted).
    fn init(&self, rel: &SignedRepo, server: &str, extra: &[&str]) -> Run {
        let root = rel.repo.join("metadata/1.root.json");
        let mut args = vec![
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            "board-a",
            "--name",
            "gateway-fw",
        ];
        args.extend(extra);
        self.client(&args)
    }

    fn update(&self) -> Run {
        self.client(&["update", "--install-to", self.slot.to_str().unwrap()])
    }

    fn file(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }

    fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.file("config.json")).unwrap()).unwrap()
    }
}

/// Exit code `code`, with an `error:` line containing `needle`.
#[track_caller]
fn assert_fails(r: &Run, code: i32, needle: &str) {
    assert_eq!(r.code, code, "{r:?}");
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {r:?}"));
    assert!(error.contains(needle), "{needle:?} not in {error:?}");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The pin of the server's certificate as the README computes it with openssl, if openssl
/// is installed: the README's command must agree with the device's notion of a pin.
fn openssl_pin(cert: &Path) -> Option<String> {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | sha256sum",
        cert.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let hex = text.split_whitespace().next()?;
    (out.status.success() && hex.len() == 64).then(|| hex.to_string())
}

#[test]
fn https_with_the_fleet_ca_pin_and_system_roots() {
    let rel = SignedRepo::init();
    let v1 = image(1, 300_000);
    publish(&rel, "1.0.0", &v1);
    let pki = Pki::new("fleet");
    let server = pki.server("server", false);
    let Some(nginx) = Nginx::start_tls(
        &rel.repo,
        &Tls {
            cert: &server.cert,
            key: &server.key,
            client_ca: None,
            // nginx 1.22 offers TLS 1.2 only unless told (1.23.4 added 1.3 to its default).
            protocols: Some("TLSv1.2 TLSv1.3"),
        },
    ) else {
        return;
    };
    let url = nginx.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = pki.ca_pem.to_str().unwrap();

    // (1) The fleet CA: installed over HTTPS; the bundle is copied into the state dir.
    let dev = Dev::new();
    let r = dev.init(&rel, &url, &["--ca-bundle", ca]);
    assert_eq!(r.code, 0, "{r:?}");
    let ca_copy = dev.file("ca.pem");
    assert_eq!(
        dev.config()["tls"]["ca_bundle"],
        std::path::absolute(&ca_copy).unwrap().to_str().unwrap()
    );
    std::fs::remove_file(&pki.ca_pem).unwrap();
    let r = dev.update();
    assert_eq!(
        r.code, 0,
        "the device must not need the original bundle: {r:?}"
    );
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v1);
    let status = dev.client(&["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.json()["installed"]["version"], "1.0.0");
    let ca = ca_copy.to_str().unwrap();

    // TLS 1.3 only.
    let dev13 = Dev::new();
    let r = dev13.init(&rel, &url, &["--ca-bundle", ca, "--tls-min", "1.3"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev13.config()["tls"]["min_version"], "1.3");
    assert_eq!(dev13.update().code, 0);

    // (2) System roots only: the test CA is not among them.
    let public = Dev::new();
    assert_eq!(public.init(&rel, &url, &[]).code, 0);
    assert!(
        public.config().get("tls").is_none(),
        "no settings, no tls key"
    );
    let r = public.update();
    assert_fails(&r, 3, "certificate not trusted");
    assert!(r.stderr.contains("TLS handshake failed"), "{r:?}");
    assert!(
        r.stderr
            .contains("hint: the server is not one this device trusts"),
        "{r:?}"
    );
    assert!(!public.slot.exists());

    // (3) The server key's pin, alone and with the CA; a wrong pin is refused.
    if let Some(pin) = openssl_pin(&server.cert) {
        assert_eq!(pin, server.spki_sha256, "README's openssl pin command");
    }
    let pinned = Dev::new();
    let upper = server.spki_sha256.to_uppercase();
    let r = pinned.init(&rel, &url, &["--pin-spki", &upper]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        pinned.config()["tls"]["pin_spki_sha256"],
        server.spki_sha256,
        "stored lower-case"
    );
    assert_eq!(pinned.update().code, 0);
    let both = Dev::new();
    let r = both.init(
        &rel,
        &url,
        &["--ca-bundle", ca, "--pin-spki", &server.spki_sha256],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(both.update().code, 0);
    let wrong = Dev::new();
    let other = pki.server("other", false);
    let r = wrong.init(
        &rel,
        &url,
        &["--ca-bundle", ca, "--pin-spki", &other.spki_sha256],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = wrong.update();
    assert_fails(&r, 3, "does not match the pinned SPKI sha256");
    assert!(
        r.stderr.contains(&server.spki_sha256),
        "names the key found: {r:?}"
    );
    assert!(!wrong.slot.exists());
    let wrong_alone = Dev::new();
    let r = wrong_alone.init(&rel, &url, &["--pin-spki", &other.spki_sha256]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_fails(&wrong_alone.update(), 3, "does not match the pinned");
}

#[test]
fn a_pinned_self_signed_server() {
    let rel = SignedRepo::init();
    publish(&rel, "1.0.0", &image(3, 100_000));
    let pki = Pki::new("fleet");
    let server = pki.server("selfsigned", true);
    let Some(nginx) = Nginx::start_tls(
        &rel.repo,
        &Tls {
            cert: &server.cert,
            key: &server.key,
            client_ca: None,
            protocols: Some("TLSv1.2"),
        },
    ) else {
        return;
    };
    // The pin alone accepts it (over TLS 1.2, so the 1.2 signature check runs too) ...
    let dev = Dev::new();
    let r = dev.init(&rel, &nginx.url(), &["--pin-spki", &server.spki_sha256]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(dev.update().code, 0);
    // ... with a CA bundle both must pass, and the CA did not issue it.
    let both = Dev::new();
    let ca = pki.ca_pem.to_str().unwrap();
    let r = both.init(
        &rel,
        &nginx.url(),
        &["--ca-bundle", ca, "--pin-spki", &server.spki_sha256],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_fails(&both.update(), 3, "certificate not trusted");
    // TLS 1.3 required, the server offers 1.2 only.
    let tls13 = Dev::new();
    let r = tls13.init(
        &rel,
        &nginx.url(),
        &["--pin-spki", &server.spki_sha256, "--tls-min", "1.3"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_fails(
        &tls13.update(),
        3,
        "TLS handshake failed: the server refused the connection: no TLS version in common",
    );
}

#[test]
fn bad_tls_input_is_refused_at_init() {
    let rel = SignedRepo::init();
    let pki = Pki::new("fleet");
    let device = pki.client("device-1");
    let other = pki.client("device-2");
    let junk = pki.write(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let (ca, cert, key) = (
        pki.ca_pem.to_str().unwrap(),
        device.cert.to_str().unwrap(),
        device.key.to_str().unwrap(),
    );
    let server = "https://127.0.0.1:9";
    let not_hex = "x".repeat(64);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--ca-bundle", key],
            "no PEM certificate (BEGIN CERTIFICATE) found: the file holds only PRIVATE KEY",
        ),
        (
            vec!["--ca-bundle", junk.to_str().unwrap()],
            "no usable CA certificate",
        ),
        (
            vec!["--ca-bundle", "/nonexistent/ca.pem"],
            "/nonexistent/ca.pem does not exist",
        ),
        (vec!["--ca-bundle", "/dev/zero"], "not a regular file"),
        (vec!["--pin-spki", "abc"], "invalid SPKI pin"),
        (vec!["--pin-spki", &not_hex], "not hexadecimal"),
        (
            vec!["--ca-bundle", ca, "--client-cert", key, "--client-key", key],
            "no PEM certificate",
        ),
        (
            vec![
                "--ca-bundle",
                ca,
                "--client-cert",
                cert,
                "--client-key",
                cert,
            ],
            "no PEM private key",
        ),
        (
            vec![
                "--ca-bundle",
                ca,
                "--client-cert",
                cert,
                "--client-key",
                other.key.to_str().unwrap(),
            ],
            "does not match the private key",
        ),
        (vec!["--proxy", "socks5://127.0.0.1:1080"], "invalid proxy"),
    ];
    for (extra, needle) in cases {
        let dev = Dev::new();
        let r = dev.init(&rel, server, &extra);
        assert_fails(&r, 2, needle);
        assert!(r.stderr.contains("hint: check --ca-bundle"), "{r:?}");
        assert_eq!(
            r.stderr
                .lines()
                .filter(|l| l.starts_with("error: "))
                .count(),
            1,
            "one error line: {r:?}"
        );
        assert!(!dev.file("config.json").exists(), "{extra:?} left a config");
    }
    // Refused by the command line itself (usage, exit 2).
    for extra in [
        vec!["--tls-min", "1.1"],
        vec!["--client-cert", cert],
        vec!["--client-key", key],
    ] {
        let dev = Dev::new();
        let r = dev.init(&rel, server, &extra);
        assert_eq!(r.code, 2, "{extra:?}: {r:?}");
        assert!(!dev.file("config.json").exists());
    }
    // A good pair is copied in, the key private.
    let dev = Dev::new();
    let r = dev.init(
        &rel,
        server,
        &[
            "--ca-bundle",
            ca,
            "--client-cert",
            cert,
            "--client-key",
            key,
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let tls = &r.json()["tls"];
    assert!(
        tls["client_cert"]
            .as_str()
            .unwrap()
            .ends_with("state/identity.pem"),
        "{tls}"
    );
    assert!(
        tls["client_key"]
            .as_str()
            .unwrap()
            .ends_with("state/identity.key"),
        "{tls}"
    );
    #[cfg(unix)]
    assert_eq!(mode(&dev.file("identity.key")), 0o600);
}

#[test]
fn mutual_tls_enrollment_and_ownership_transfer() {
    let rel = SignedRepo::init();
    let v1 = image(5, 200_000);
    publish(&rel, "1.0.0", &v1);
    let pki = Pki::new("fleet");
    let server = pki.server("server", false);
    let Some(nginx) = Nginx::start_tls(
        &rel.repo,
        &Tls {
            cert: &server.cert,
            key: &server.key,
            client_ca: Some(&pki.ca_pem),
            protocols: None,
        },
    ) else {
        return;
    };
    let ca = pki.ca_pem.to_str().unwrap();
    let dev = Dev::new();
    let r = dev.init(&rel, &nginx.url(), &["--ca-bundle", ca]);
    assert_eq!(r.code, 0, "{r:?}");

    // (4) No client certificate: the server refuses the device.
    let r = dev.update();
    assert_fails(&r, 3, "the server requires a client certificate");
    assert!(
        r.stderr
            .contains("hint: the server requires a client certificate it accepts"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("No required SSL certificate was sent"),
        "{r:?}"
    );
    assert!(!dev.slot.exists());

    // enroll: key (0600) and CSR; a second enroll does not replace the key.
    let r = dev.client(&["enroll", "--name", "gw-0042", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let csr = PathBuf::from(r.json()["csr"].as_str().unwrap());
    assert_eq!(r.json()["cn"], "gw-0042");
    assert_eq!(csr, dev.file("identity.csr"));
    #[cfg(unix)]
    assert_eq!(mode(&dev.file("identity.key")), 0o600);
    let key1 = std::fs::read(dev.file("identity.key")).unwrap();
    assert!(String::from_utf8_lossy(&key1).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_fails(
        &dev.client(&["enroll", "--name", "gw-0042"]),
        2,
        "identity.key already exists",
    );
    assert_eq!(std::fs::read(dev.file("identity.key")).unwrap(), key1);
    let r = dev.client(&["enroll"]);
    assert_eq!(r.code, 2, "--name or --cert is required: {r:?}");

    // (5) A certificate for another key, an expired one, a file that is no certificate.
    let foreign = pki.client("someone-else");
    let r = dev.client(&["enroll", "--cert", foreign.cert.to_str().unwrap()]);
    assert_fails(&r, 2, "does not match the private key");
    assert!(
        r.stderr
            .contains("hint: this certificate was issued for another key"),
        "{r:?}"
    );
    let expired = pki.expired(&csr, "expired.pem");
    assert_fails(
        &dev.client(&["enroll", "--cert", expired.to_str().unwrap()]),
        2,
        "expired at 2001-01-01",
    );
    assert_fails(
        &dev.client(&["enroll", "--cert", csr.to_str().unwrap()]),
        2,
        "the file holds only CERTIFICATE REQUEST",
    );
    assert!(!dev.file("identity.pem").exists());

    // The CA signs the CSR; the device installs it and is let in.
    let issued = pki.sign_csr(&csr, "gw-0042.pem");
    let r = dev.client(&["enroll", "--cert", issued.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["cn"], "gw-0042");
    assert_eq!(r.json()["in_use"], true);
    assert!(dev.config()["tls"]["client_cert"]
        .as_str()
        .unwrap()
        .ends_with("identity.pem"));
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v1);

    // A device holding a group key and a device key, for the transfer below.
    let r = dev.client(&["keygen", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let old_public = r.json()["public_key"].as_str().unwrap().to_string();
    let group = dev.state.parent().unwrap().join("group.otasec");
    let group_secret = ota_formats::envelope::RecipientSecretKey::generate();
    std::fs::write(&group, format!("{}\n", group_secret.to_text().as_str())).unwrap();
    let r = run(
        "ota-client",
        &[
            "keys",
            "import-group",
            "--state",
            dev.state.to_str().unwrap(),
            "--name",
            "seller-fleet",
            group.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let old_device_key = std::fs::read(dev.file("device.key")).unwrap();
    let metadata_before = std::fs::read(dev.file("metadata/root.json")).unwrap();
    let installed_before = std::fs::read(dev.file("installed.json")).unwrap();

    // (6) reenroll: new identity key and CSR, new device key; the old certificate and the
    // previous owner's group key are gone; metadata and installed record are kept.
    let r = dev.client(&["reenroll", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = r.json();
    assert_eq!(out["cn"], "gw-0042", "the name carries over");
    assert_eq!(
        out["removed_group_keys"],
        serde_json::json!(["seller-fleet"])
    );
    assert_ne!(out["public_key"].as_str().unwrap(), old_public);
    assert_ne!(
        std::fs::read(dev.file("device.key")).unwrap(),
        old_device_key
    );
    assert_ne!(std::fs::read(dev.file("identity.key")).unwrap(), key1);
    assert!(!dev.file("identity.pem").exists());
    assert!(!dev.file("group-keys").exists());
    assert!(dev.config()["tls"].get("client_cert").is_none());
    assert_eq!(
        std::fs::read(dev.file("metadata/root.json")).unwrap(),
        metadata_before
    );
    assert_eq!(
        std::fs::read(dev.file("installed.json")).unwrap(),
        installed_before
    );
    let keys = run(
        "ota-client",
        &[
            "keys",
            "list",
            "--state",
            dev.state.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(keys.json()["device_key"]["public_key"], out["public_key"]);

    // The old certificate no longer fits, and without a new one the server refuses.
    assert_fails(
        &dev.client(&["enroll", "--cert", issued.to_str().unwrap()]),
        2,
        "does not match",
    );
    assert_fails(&dev.update(), 3, "requires a client certificate");

    // The operator issues a certificate for the new CSR: the device updates again.
    let v2 = image(6, 210_000);
    publish(&rel, "1.1.0", &v2);
    let reissued = pki.sign_csr(&dev.file("identity.csr"), "gw-0042-b.pem");
    let r = dev.client(&["enroll", "--cert", reissued.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v2);
}

/// `ota-server` in this process with HTTPS and mutual TLS (its library API, as the binary's
/// `--tls-cert --tls-key --client-ca` set it up), on its own Tokio runtime.
struct TlsOtaServer {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsOtaServer {
    fn start(repo: &Path, cert: &Path, key: &Path, client_ca: &Path) -> Self {
        let tls = ota_repo_server::TlsSettings::from_flags(
            Some(cert.to_path_buf()),
            Some(key.to_path_buf()),
            Some(client_ca.to_path_buf()),
            Vec::new(),
            false,
        )
        .unwrap();
        let config = ota_repo_server::Config {
            tls,
            ..ota_repo_server::Config::new(repo, "127.0.0.1:0".parse().unwrap())
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let running = ota_repo_server::serve(config, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
                addr_tx.send(running.local_addr()).unwrap();
                running.wait().await;
            });
        });
        TlsOtaServer {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for TlsOtaServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn ota_server_with_mutual_tls() {
    let rel = SignedRepo::init();
    let v1 = image(7, 150_000);
    publish(&rel, "1.0.0", &v1);
    let pki = Pki::new("fleet");
    let server = pki.server("server", false);
    let srv = TlsOtaServer::start(&rel.repo, &server.cert, &server.key, &pki.ca_pem);
    let ca = pki.ca_pem.to_str().unwrap();

    // No client certificate: rustls refuses it in the handshake (an alert, not a 400 page).
    let dev = Dev::new();
    assert_eq!(dev.init(&rel, &srv.url(), &["--ca-bundle", ca]).code, 0);
    let r = dev.update();
    assert_fails(
        &r,
        3,
        "TLS handshake failed: the server refused the connection: it requires a client certificate",
    );
    assert!(
        r.stderr.contains(
            "hint: the server requires a client certificate it accepts: `ota-client enroll"
        ),
        "{r:?}"
    );

    // A certificate from another CA: refused too.
    let stranger_ca = Pki::new("stranger");
    let stranger = stranger_ca.client("gw-9");
    let other = Dev::new();
    let r = other.init(
        &rel,
        &srv.url(),
        &[
            "--ca-bundle",
            ca,
            "--client-cert",
            stranger.cert.to_str().unwrap(),
            "--client-key",
            stranger.key.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_fails(
        &other.update(),
        3,
        "the server refused the connection: it does not accept this device's certificate",
    );

    // Enrolled with the fleet CA: let in.
    let r = dev.client(&["enroll", "--name", "gw-0100"]);
    assert_eq!(r.code, 0, "{r:?}");
    let cert = pki.sign_csr(&dev.file("identity.csr"), "gw-0100.pem");
    assert_eq!(
        dev.client(&["enroll", "--cert", cert.to_str().unwrap()])
            .code,
        0
    );
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), v1);
}
