//! HTTPS and mutual TLS against the real `ota-server` binary on 127.0.0.1, with foreign clients
//! (`curl`, `openssl s_client`) and a rustls client. Every certificate is generated here with
//! rcgen: a CA, a server certificate for 127.0.0.1/localhost, device certificates, an expired
//! one, one from another CA, and CRLs.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Fixture;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_ota-server");

/// True when curl and openssl are on PATH; otherwise says so (these tests need both).
fn tools_present(test: &str) -> bool {
    for tool in ["curl", "openssl"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            || Command::new(tool)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !found {
            eprintln!("SKIPPED {test}: `{tool}` is not installed (apt-get install curl openssl)");
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Certificates

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(cn: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::new(self.params.clone(), &self.key)
    }

    /// A leaf certificate: `client` for devices (clientAuth), else a server (serverAuth).
    fn issue(&self, cn: &str, sans: &[SanType], serial: u64, client: bool) -> Leaf {
        self.issue_valid(cn, sans, serial, client, None)
    }

    fn issue_valid(
        &self,
        cn: &str,
        sans: &[SanType],
        serial: u64,
        client: bool,
        years: Option<(i32, i32)>,
    ) -> Leaf {
        self.issue_with(cn, sans, serial, client, |params| {
            if let Some((from, to)) = years {
                params.not_before = date_time_ymd(from, 1, 1);
                params.not_after = date_time_ymd(to, 1, 1);
            }
        })
    }

    /// A leaf certificate, `adjust`ed before it is signed (e.g. its validity).
    fn issue_with(
        &self,
        cn: &str,
        sans: &[SanType],
        serial: u64,
        client: bool,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans.to_vec();
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        params.use_authority_key_identifier_extension = true;
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        Leaf {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A CRL revoking `serials`; `number` must grow with each new CRL.
    fn crl(&self, number: u64, serials: &[u64]) -> String {
        self.crl_until(number, serials, None)
    }

    /// A CRL whose nextUpdate is `next_update` (Unix seconds; default 2099).
    fn crl_until(&self, number: u64, serials: &[u64], next_update: Option<u64>) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2025, 1, 1),
            next_update: next_update.map_or(date_time_ymd(2099, 1, 1), |t| {
                date_time_ymd(1970, 1, 1) + Duration::from_secs(t)
            }),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date_time_ymd(2025, 6, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer()).unwrap().pem().unwrap()
    }
}

struct Leaf {
    pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Leaf {
    fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(&self.der))
    }
}

fn server_sans() -> Vec<SanType> {
    vec![
        SanType::DnsName("localhost".try_into().unwrap()),
        SanType::IpAddress([127, 0, 0, 1].into()),
    ]
}

/// Every file the tests need, written into the fixture directory.
struct Pki {
    dir: PathBuf,
    ca: Ca,
    other_ca: Ca,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let pki = Pki {
            dir: dir.join("pki"),
            ca: Ca::new("OTA Test CA"),
            other_ca: Ca::new("Some Other CA"),
        };
        std::fs::create_dir_all(&pki.dir).unwrap();
        pki.write("ca.pem", &pki.ca.pem);
        pki.write("other-ca.pem", &pki.other_ca.pem);
        let server = pki.ca.issue("ota-server", &server_sans(), 1, false);
        pki.write_leaf("server", &server);
        let uri = SanType::URI("urn:ota:device:0001".try_into().unwrap());
        pki.write_leaf("device", &pki.ca.issue("device-0001", &[uri], 100, true));
        pki.write_leaf("device2", &pki.ca.issue("device-0002", &[], 101, true));
        pki.write_leaf(
            "expired",
            &pki.ca
                .issue_valid("device-old", &[], 102, true, Some((2020, 2021))),
        );
        pki.write_leaf(
            "stranger",
            &pki.other_ca.issue("device-0001", &[], 100, true),
        );
        pki.write("crl.pem", &pki.ca.crl(1, &[]));
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// Writes via a temporary file and rename, as deployment tools replace certificates.
    fn write(&self, name: &str, content: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    fn write_leaf(&self, name: &str, leaf: &Leaf) {
        self.write(&format!("{name}.pem"), &leaf.pem);
        self.write(&format!("{name}.key"), &leaf.key_pem);
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.p("server.pem"),
            "--tls-key".into(),
            self.p("server.key"),
        ]
    }

    fn mtls_args(&self) -> Vec<String> {
        let mut args = self.server_args();
        args.extend([
            "--client-ca".into(),
            self.p("ca.pem"),
            "--crl".into(),
            self.p("crl.pem"),
        ]);
        args
    }
}

// ---------------------------------------------------------------------------------------------
// The server process

struct ServerProc {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl ServerProc {
    fn spawn(fx: &Fixture, args: &[String]) -> Self {
        let log = fx.dir.path().join("server.log");
        let mut child = Command::new(BIN)
            .args([
                "--repo",
                fx.repo().to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim_end()
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("unexpected startup line {line:?}; log: {log}")
            })
            .parse()
            .unwrap();
        ServerProc { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to 3 s for a log line containing every one of `needles`; returns it.
    fn wait_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} in:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

struct CurlOut {
    ok: bool,
    status: String,
    version: String,
    body: String,
    stderr: String,
}

/// curl resolving `localhost` to 127.0.0.1 (the server certificate names both).
fn curl(srv: &ServerProc, path: &str, extra: &[&str]) -> CurlOut {
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr.port());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--resolve", &resolve])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(srv.url(path))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (status, version) = tail.split_once(' ').unwrap_or((tail, ""));
    CurlOut {
        ok: out.status.success(),
        status: status.to_owned(),
        version: version.to_owned(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn curl_device(srv: &ServerProc, pki: &Pki, path: &str, who: Option<&str>) -> CurlOut {
    let ca = pki.p("ca.pem");
    let mut args = vec!["--cacert".to_owned(), ca];
    if let Some(who) = who {
        args.extend([
            "--cert".into(),
            pki.p(&format!("{who}.pem")),
            "--key".into(),
            pki.p(&format!("{who}.key")),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(srv, path, &args)
}

/// `openssl s_client` with `extra` flags and an immediate EOF on stdin.
fn s_client(srv: &ServerProc, pki: &Pki, extra: &[&str]) -> Output {
    let connect = srv.addr.to_string();
    let ca = pki.p("ca.pem");
    Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", &connect])
        .args([
            "-servername",
            "localhost",
            "-CAfile",
            &ca,
            "-verify_return_error",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rustls_client(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(pki.path("ca.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type TlsConn = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsConn {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

fn peer_sha256(tls: &TlsConn) -> String {
    let chain = tls.conn.peer_certificates().unwrap();
    hex::encode(Sha256::digest(chain[0].as_ref()))
}

/// One keep-alive HTTP/1.1 GET on an open connection; returns status and body.
fn get_keepalive(tls: &mut TlsConn, path: &str) -> (u16, Vec<u8>) {
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).unwrap();
    (status, body)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn https_with_tls12_tls13_and_h2_only() {
    if !tools_present("https_with_tls12_tls13_and_h2_only") {
        return;
    }
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let srv = ServerProc::spawn(&fx, &pki.server_args());

    let r = curl_device(&srv, &pki, "/metadata/timestamp.json", None);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        (r.status.as_str(), r.body.as_str()),
        ("200", "{\"timestamp\":7}")
    );
    // curl offers h2 by ALPN and gets it.
    assert_eq!(r.version, "2");

    let ca = pki.p("ca.pem");
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let r = curl(&srv, "/targets/plain.txt", &["--cacert", &ca, flag]);
        assert!(r.ok, "{}", r.stderr);
        assert_eq!((r.status.as_str(), r.version.as_str()), ("200", version));
        assert_eq!(r.body, "hello target");
    }

    // SECLEVEL=0 so the client really offers TLS 1.1 instead of refusing on its own.
    let r = curl(
        &srv,
        "/metadata/timestamp.json",
        &[
            "--cacert",
            &ca,
            "--tlsv1.1",
            "--tls-max",
            "1.1",
            "--ciphers",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    assert!(!r.ok, "TLS 1.1 was accepted: {} {}", r.status, r.body);

    let old = s_client(&srv, &pki, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    let t = text(&old);
    assert!(
        !old.status.success() || !t.contains("Verify return code: 0"),
        "{t}"
    );
    srv.wait_log(&["TLS handshake failed"]);

    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let out = s_client(&srv, &pki, &[flag]);
        let t = text(&out);
        assert!(t.contains(&format!("New, {version}")), "{flag}: {t}");
        assert!(t.contains("Verify return code: 0 (ok)"), "{flag}: {t}");
    }
    let out = s_client(&srv, &pki, &["-alpn", "h2"]);
    let t = text(&out);
    assert!(t.contains("ALPN protocol: h2"), "{t}");
    let out = s_client(&srv, &pki, &["-alpn", "http/1.1"]);
    assert!(text(&out).contains("ALPN protocol: http/1.1"));

    // Plain HTTP on the TLS port gets no HTTP answer (rustls sends an alert, or nothing).
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    srv.wait_log(&["TLS handshake failed", "InvalidContentType"]);
    eprintln!("server log:\n{}", srv.log_text());
}

#[test]
fn mutual_tls_refuses_missing_foreign_expired_and_revoked_certificates() {
    if !tools_present("mutual_tls_refuses_missing_foreign_expired_and_revoked_certificates") {
        return;
    }
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let srv = ServerProc::spawn(&fx, &pki.mtls_args());

    for who in ["device", "device2"] {
        for path in ["/metadata/timestamp.json", "/targets/plain.txt"] {
            let r = curl_device(&srv, &pki, path, Some(who));
            assert!(
                r.ok && r.status == "200",
                "{who} {path}: {} {}",
                r.status,
                r.stderr
            );
        }
    }
    let r = curl(
        &srv,
        "/targets/plain.txt",
        &[
            "--cacert",
            &pki.p("ca.pem"),
            "--cert",
            &pki.p("device.pem"),
            "--key",
            &pki.p("device.key"),
            "--http2",
        ],
    );
    assert_eq!(
        (r.status.as_str(), r.version.as_str()),
        ("200", "2"),
        "{}",
        r.stderr
    );

    for (who, reason) in [
        (None, "no client certificate"),
        (Some("stranger"), "not issued by a --client-ca certificate"),
        (Some("expired"), "expired"),
    ] {
        for path in ["/metadata/timestamp.json", "/targets/plain.txt"] {
            let r = curl_device(&srv, &pki, path, who);
            assert!(
                !r.ok && r.status != "200" && r.body.is_empty(),
                "{who:?} {path} was served: {} {}",
                r.status,
                r.body
            );
        }
        let line = srv.wait_log(&["client certificate refused", reason]);
        assert!(line.contains("127.0.0.1:"), "no peer address: {line}");
    }

    // Revoke device2 by rewriting the CRL; the server notices the change without a signal.
    std::thread::sleep(Duration::from_millis(20));
    pki.write("crl.pem", &pki.ca.crl(2, &[101]));
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let r = curl_device(&srv, &pki, "/metadata/timestamp.json", Some("device2"));
        if !r.ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "device2 still served 8 s after its revocation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    srv.wait_log(&["revocation list reloaded"]);
    srv.wait_log(&["client certificate refused", "revoked"]);
    let r = curl_device(&srv, &pki, "/targets/plain.txt", Some("device2"));
    assert!(!r.ok, "revoked device served: {}", r.status);
    // The other device is unaffected.
    let r = curl_device(&srv, &pki, "/targets/plain.txt", Some("device"));
    assert_eq!(r.status, "200", "{}", r.stderr);

    // A broken CRL update is reported and the previous list stays in force.
    pki.write(
        "crl.pem",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    srv.wait_log(&["CRL file changed but cannot be used"]);
    assert!(!curl_device(&srv, &pki, "/targets/plain.txt", Some("device2")).ok);
    assert_eq!(
        curl_device(&srv, &pki, "/targets/plain.txt", Some("device")).status,
        "200"
    );
    eprintln!("server log:\n{}", srv.log_text());
}

#[test]
fn open_metadata_serves_metadata_to_anyone_and_403_elsewhere() {
    if !tools_present("open_metadata_serves_metadata_to_anyone_and_403_elsewhere") {
        return;
    }
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let mut args = pki.mtls_args();
    args.extend([
        "--open-metadata".into(),
        "--log-format".into(),
        "json".into(),
        "-v".into(),
    ]);
    let srv = ServerProc::spawn(&fx, &args);

    let r = curl_device(&srv, &pki, "/metadata/timestamp.json", None);
    assert_eq!(
        (r.status.as_str(), r.body.as_str()),
        ("200", "{\"timestamp\":7}"),
        "{}",
        r.stderr
    );
    for path in ["/targets/plain.txt", "/targets/nope", "/", "/metadata"] {
        let r = curl_device(&srv, &pki, path, None);
        assert_eq!(r.status, "403", "{path}: {}", r.stderr);
    }
    srv.wait_log(&[
        "this path needs a verified device certificate",
        "/targets/plain.txt",
    ]);

    // A certificate that is presented is verified even for open paths.
    for who in ["stranger", "expired"] {
        let r = curl_device(&srv, &pki, "/metadata/timestamp.json", Some(who));
        assert!(!r.ok, "{who} served: {}", r.status);
    }

    let r = curl_device(&srv, &pki, "/targets/plain.txt", Some("device"));
    assert_eq!(
        (r.status.as_str(), r.body.as_str()),
        ("200", "hello target")
    );
    // The verified identity reaches the handler: access log and debug line.
    let device = std::fs::read_to_string(pki.path("device.pem")).unwrap();
    let der = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(device.as_bytes()).unwrap()
    };
    let sha = hex::encode(Sha256::digest(der.as_ref()));
    let line = srv.wait_log(&["\"request\"", "/targets/plain.txt", "\"status\":200"]);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["device_cn"], "device-0001", "{line}");
    assert_eq!(v["device_sha256"], sha.as_str(), "{line}");
    let debug = srv.wait_log(&["request from verified device"]);
    assert!(debug.contains("URI:urn:ota:device:0001"), "{debug}");
    // Anonymous requests carry no identity fields.
    let anon = srv.wait_log(&["\"request\"", "/metadata/timestamp.json"]);
    assert!(!anon.contains("device_cn"), "{anon}");
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_established_connections() {
    if !tools_present("sighup_reloads_the_certificate_and_keeps_established_connections") {
        return;
    }
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let srv = ServerProc::spawn(&fx, &pki.server_args());
    let client = rustls_client(&pki);

    let old_sha = hex::encode(Sha256::digest(
        std::fs::read_to_string(pki.path("server.pem"))
            .ok()
            .and_then(|p| {
                use rustls::pki_types::pem::PemObject;
                rustls::pki_types::CertificateDer::from_pem_slice(p.as_bytes()).ok()
            })
            .unwrap()
            .as_ref(),
    ));
    let mut kept = connect(srv.addr, &client);
    assert_eq!(peer_sha256(&kept), old_sha);
    assert_eq!(get_keepalive(&mut kept, "/metadata/timestamp.json").0, 200);

    let new = pki.ca.issue("ota-server", &server_sans(), 2, false);
    pki.write_leaf("server", &new);
    srv.signal("-HUP");
    srv.wait_log(&["TLS certificates", "SIGHUP", &new.sha256_hex()]);

    let fresh = connect(srv.addr, &client);
    assert_eq!(peer_sha256(&fresh), new.sha256_hex());
    // The same seen by a foreign client.
    let script = format!(
        "openssl s_client -connect {} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        srv.addr
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let fp = String::from_utf8_lossy(&out.stdout)
        .to_ascii_lowercase()
        .replace(':', "");
    assert!(fp.contains(&new.sha256_hex()), "openssl saw {fp}");

    // The connection opened before the reload keeps its session and is still served.
    let (status, body) = get_keepalive(&mut kept, "/targets/plain.txt");
    assert_eq!((status, body.as_slice()), (200, &b"hello target"[..]));
    assert_eq!(peer_sha256(&kept), old_sha);

    // A reload with a broken certificate file keeps the current certificate.
    pki.write("server.pem", "not a certificate\n");
    srv.signal("-HUP");
    let line = srv.wait_log(&["TLS reload failed"]);
    assert!(line.contains("server.pem"), "{line}");
    let after = connect(srv.addr, &client);
    assert_eq!(peer_sha256(&after), new.sha256_hex());
    // A key that does not match is refused the same way.
    pki.write_leaf("server", &new);
    let other = pki.ca.issue("ota-server", &server_sans(), 3, false);
    pki.write("server.key", &other.key_pem);
    srv.signal("-HUP");
    srv.wait_log(&["TLS reload failed", "is not the private key"]);
    let after = connect(srv.addr, &client);
    assert_eq!(peer_sha256(&after), new.sha256_hex());
    assert!(
        srv.log_text()
            .lines()
            .filter(|l| l.contains("SIGHUP received"))
            .count()
            >= 3
    );
}

#[test]
fn tls_handshake_is_bounded_by_the_header_timeout_and_the_connection_limit() {
    if !tools_present("tls_handshake_is_bounded_by_the_header_timeout_and_the_connection_limit") {
        return;
    }
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let mut args = pki.server_args();
    args.extend([
        "--header-timeout".into(),
        "1".into(),
        "--max-connections".into(),
        "3".into(),
    ]);
    let srv = ServerProc::spawn(&fx, &args);

    // A ClientHello record header promising more bytes than ever arrive.
    let partial_hello: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
    for (name, bytes) in [("silent", &[][..]), ("partial ClientHello", partial_hello)] {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.write_all(bytes).unwrap();
        let started = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{name}: still open after 6 s: {e}"),
            }
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(4),
            "{name}: closed after {took:?}, expected about 1 s"
        );
    }

    // More silent connections than the limit: a real client is still served at once.
    let idle: Vec<TcpStream> = (0..6)
        .map(|_| TcpStream::connect(srv.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let r = curl_device(&srv, &pki, "/metadata/timestamp.json", None);
    assert_eq!(r.status, "200", "{}", r.stderr);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn help_documents_tls() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--tls-cert <PEM>",
        "--tls-key <PEM>",
        "--client-ca <PEM>",
        "--crl <PEM>",
        "--open-metadata",
        "kill -HUP",
        "curl --cacert ca.pem --cert device.pem --key device.key https://",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn bad_tls_input_exits_2_with_one_line() {
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let write = |name: &str, content: &[u8]| {
        let p = pki.path(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let expired = pki
        .ca
        .issue_valid("ota-server", &server_sans(), 9, false, Some((2020, 2021)));
    pki.write_leaf("expired-server", &expired);
    let garbage = write("garbage.pem", b"hello, I am not PEM\n");
    let der = write("server.der", &pki.ca.issue("x", &[], 10, false).der);
    let bad_crl = write(
        "bad-crl.pem",
        b"-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n",
    );
    pki.write("other-crl.pem", &pki.other_ca.crl(1, &[]));
    let missing = pki.p("missing.pem");
    let (device_key, exp_cert, exp_key, other_crl) = (
        pki.p("device.key"),
        pki.p("expired-server.pem"),
        pki.p("expired-server.key"),
        pki.p("other-crl.pem"),
    );
    let (cert, key, ca, crl) = (
        pki.p("server.pem"),
        pki.p("server.key"),
        pki.p("ca.pem"),
        pki.p("crl.pem"),
    );

    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "key as certificate",
            vec!["--tls-cert", &key, "--tls-key", &key],
            vec![&key, "no certificate", "PRIVATE KEY"],
        ),
        (
            "text as certificate",
            vec!["--tls-cert", &garbage, "--tls-key", &key],
            vec![&garbage, "not PEM"],
        ),
        (
            "DER certificate",
            vec!["--tls-cert", &der, "--tls-key", &key],
            vec![&der, "DER"],
        ),
        (
            "missing certificate",
            vec!["--tls-cert", &missing, "--tls-key", &key],
            vec![&missing, "does not exist"],
        ),
        (
            "certificate as key",
            vec!["--tls-cert", &cert, "--tls-key", &cert],
            vec![&cert, "no private key"],
        ),
        (
            "key of another certificate",
            vec!["--tls-cert", &cert, "--tls-key", &device_key],
            vec!["device.key", "is not the private key", &cert],
        ),
        (
            "expired server certificate",
            vec!["--tls-cert", &exp_cert, "--tls-key", &exp_key],
            vec!["expired-server.pem", "expired on 2021-01-01"],
        ),
        (
            "key without certificate",
            vec!["--tls-key", &key],
            vec!["--tls-key needs --tls-cert"],
        ),
        (
            "certificate without key",
            vec!["--tls-cert", &cert],
            vec!["--tls-cert needs --tls-key"],
        ),
        (
            "client CA without TLS",
            vec!["--client-ca", &ca],
            vec!["--client-ca needs TLS"],
        ),
        (
            "CRL without client CA",
            vec!["--tls-cert", &cert, "--tls-key", &key, "--crl", &crl],
            vec!["--crl needs --client-ca"],
        ),
        (
            "CA bundle without a certificate",
            vec!["--tls-cert", &cert, "--tls-key", &key, "--client-ca", &crl],
            vec![&crl, "no CA certificate", "X509 CRL"],
        ),
        (
            "CRL that does not parse",
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--client-ca",
                &ca,
                "--crl",
                &bad_crl,
            ],
            vec![&bad_crl, "does not parse"],
        ),
        (
            "CRL of another CA",
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--client-ca",
                &ca,
                "--crl",
                &other_crl,
            ],
            vec!["other-crl.pem", "not issued by a --client-ca"],
        ),
        (
            "certificate as CRL",
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--client-ca",
                &ca,
                "--crl",
                &cert,
            ],
            vec![&cert, "no CRL"],
        ),
    ];
    for (name, args, needles) in cases {
        let started = Instant::now();
        let out = Command::new(BIN)
            .args([
                "--repo",
                fx.repo().to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: started anyway");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains("(hint: "),
            "{name}: {stderr}"
        );
        for n in needles {
            assert!(stderr.contains(n), "{name}: {n:?} not in {stderr}");
        }
        assert!(took < Duration::from_secs(1), "{name}: took {took:?}");
        eprintln!("{name}: {}", stderr.trim_end());
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A CRL carrying the name of the `--client-ca` but signed by another key (rcgen: `ota-ca`
/// signs only with its own key) is refused at start-up, and a reload or a CRL-file change
/// that brings one keeps the previous revocation list.
#[test]
fn crl_signed_by_another_key_under_the_ca_name_is_refused() {
    if !tools_present("crl_signed_by_another_key_under_the_ca_name_is_refused") {
        return;
    }
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let impostor = Ca::new("OTA Test CA");
    // It would "revoke" device-0001 (serial 100) if it were believed.
    pki.write("impostor-crl.pem", &impostor.crl(5, &[100]));
    let mut args = pki.server_args();
    args.extend([
        "--client-ca".into(),
        pki.p("ca.pem"),
        "--crl".into(),
        pki.p("impostor-crl.pem"),
    ]);
    let out = Command::new(BIN)
        .args([
            "--repo",
            fx.repo().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in [
        "impostor-crl.pem",
        "CN=OTA Test CA",
        "signature does not verify",
        "(hint: ",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }

    // Running with the real CRL: the impostor's CRL replacing it is not taken (file watch),
    // nor by SIGHUP, and the device it "revokes" goes on being served.
    let srv = ServerProc::spawn(&fx, &pki.mtls_args());
    let get = || curl_device(&srv, &pki, "/targets/plain.txt", Some("device")).status;
    assert_eq!(get(), "200");
    std::thread::sleep(Duration::from_millis(20));
    pki.write("crl.pem", &impostor.crl(6, &[100]));
    let line = srv.wait_log(&["CRL file changed but cannot be used"]);
    assert!(line.contains("signature does not verify"), "{line}");
    assert_eq!(get(), "200");
    srv.signal("-HUP");
    let line = srv.wait_log(&["TLS reload failed"]);
    assert!(line.contains("signature does not verify"), "{line}");
    assert_eq!(get(), "200");
    assert!(!srv.log_text().contains("revocation list reloaded"));
}

/// A CRL past its nextUpdate and a server certificate close to its notAfter are warned about
/// at start-up; a CRL that lapses while the server runs is warned about when it does (the
/// periodic check), and is still used.
#[test]
fn lapsed_crl_and_expiring_server_certificate_are_warned_about() {
    if !tools_present("lapsed_crl_and_expiring_server_certificate_are_warned_about") {
        return;
    }
    let fx = Fixture::new();
    let pki = Pki::new(fx.dir.path());
    let now = unix_now();
    // A server certificate valid for 5 more days.
    let soon = pki
        .ca
        .issue_with("ota-server", &server_sans(), 7, false, |p| {
            p.not_after = date_time_ymd(1970, 1, 1) + Duration::from_secs(now + 5 * 86_400);
        });
    pki.write_leaf("server", &soon);
    // A CRL that lapsed yesterday, revoking device-0002.
    pki.write("crl.pem", &pki.ca.crl_until(2, &[101], Some(now - 86_400)));
    let srv = ServerProc::spawn(&fx, &pki.mtls_args());
    let line = srv.wait_log(&["WARN", "expires within 14 days"]);
    assert!(
        line.contains("days_left=4") || line.contains("days_left=5"),
        "{line}"
    );
    assert!(line.contains("server.pem"), "{line}");
    let line = srv.wait_log(&["WARN", "past its nextUpdate"]);
    assert!(line.contains("crl.pem"), "{line}");
    assert!(line.contains("CN=OTA Test CA"), "{line}");
    // Still used: the revoked device is refused, the other served.
    let r = curl_device(&srv, &pki, "/targets/plain.txt", Some("device"));
    assert_eq!(r.status, "200", "{}", r.stderr);
    let r = curl_device(&srv, &pki, "/targets/plain.txt", Some("device2"));
    assert!(!r.ok, "revoked device served: {}", r.status);
    drop(srv);

    // A fresh certificate and a CRL that lapses 3 s after start: nothing at start, then the
    // warning once the check (every 2 s) sees the lapse.
    pki.write_leaf(
        "server",
        &pki.ca.issue("ota-server", &server_sans(), 8, false),
    );
    let lapse = unix_now() + 3;
    pki.write("crl.pem", &pki.ca.crl_until(3, &[101], Some(lapse)));
    let srv = ServerProc::spawn(&fx, &pki.mtls_args());
    srv.wait_log(&["TLS certificates"]);
    let text = srv.log_text();
    assert!(!text.contains("past its nextUpdate"), "{text}");
    assert!(!text.contains("expires within"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.log_text().contains("past its nextUpdate") {
        assert!(
            Instant::now() < deadline,
            "no warning 10 s after start: {}",
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(unix_now() >= lapse, "warned before the lapse");
    // Once per lapse (repeated hourly), not at every 2 s check.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(srv.log_text().matches("past its nextUpdate").count(), 1);
}
