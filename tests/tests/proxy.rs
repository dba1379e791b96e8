//! The device's `--proxy` (config `"tls".proxy`) through a real forward proxy: Debian's
//! `tinyproxy`, started here in the foreground on a free loopback port with a generated
//! configuration. The real `ota-server` serves a repository signed by the real `ota-sign`
//! over HTTPS (a fleet CA and server certificate from `ota-ca`) and over plain HTTP; the real
//! `ota-client` updates through the proxy, and tinyproxy's log shows what went through it:
//! a `CONNECT` tunnel for HTTPS (and none of the paths inside it), plain `GET`s for HTTP.
//!
//! tinyproxy is a test dependency (`.ci/run` installs it): without it these tests fail.
use ota_tests::cli::{Run, SignedRepo};
use ota_tests::server::TestServer;
use ota_tests::tls_server::{FleetCa, TlsServer};
use ota_tests::RepoHost;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tinyproxy process, killed on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// The tinyproxy binary (Debian installs it in /usr/bin; older packages used /usr/sbin).
fn tinyproxy_bin() -> PathBuf {
    for p in ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    match Command::new("tinyproxy").arg("-v").output() {
        Ok(_) => PathBuf::from("tinyproxy"),
        Err(e) => panic!(
            "tinyproxy is not installed ({e}): install the Debian package `tinyproxy` \
             (`apt-get install tinyproxy`; .ci/run does)"
        ),
    }
}

/// A port on 127.0.0.1 nothing listens on (right now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Tinyproxy {
    /// Start tinyproxy in `dir` (configuration, log and pid file there), allowing CONNECT to
    /// `connect_ports` only. Retries on another port if the chosen one was taken meanwhile.
    fn start(dir: &Path, connect_ports: &[u16]) -> Self {
        let bin = tinyproxy_bin();
        let mut last = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let log = dir.join(format!("tinyproxy-{attempt}.log"));
            let conf = dir.join(format!("tinyproxy-{attempt}.conf"));
            let mut text = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\n\
                 LogFile \"{}\"\nLogLevel Info\nPidFile \"{}\"\nAllow 127.0.0.1\n",
                log.display(),
                dir.join(format!("tinyproxy-{attempt}.pid")).display()
            );
            for p in connect_ports {
                text.push_str(&format!("ConnectPort {p}\n"));
            }
            std::fs::write(&conf, text).unwrap();
            let mut child = Command::new(&bin)
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                    last = format!("tinyproxy exited with {status}: {err}{log_text}");
                    break;
                }
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Tinyproxy { child, port, log };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = "tinyproxy did not listen within 10 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("cannot start tinyproxy: {last}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines tinyproxy logged (`Request (file descriptor N): GET ... HTTP/1.1`).
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("Request (file descriptor ").map(|(_, r)| r))
            .filter_map(|r| r.split_once("): ").map(|(_, line)| line.to_string()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn image(seed: u8) -> Vec<u8> {
    (0..300_000u32)
        .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A device (state dir and install slot) in a temp dir.
struct Device {
    _dir: tempfile::TempDir,
    state: PathBuf,
    slot: PathBuf,
}

impl Device {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Device {
            state: dir.path().join("state"),
            slot: dir.path().join("fw.img"),
            _dir: dir,
        }
    }

    /// `ota-client init` against `server` with `extra` options; asserts success.
    fn init(&self, rel: &SignedRepo, server: &str, extra: &[&str]) {
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
            "fw",
        ];
        args.extend(extra);
        let r = ota_tests::cli::client(&self.state, &args);
        assert_eq!(r.code, 0, "{r:?}");
    }

    fn update(&self) -> Run {
        ota_tests::cli::client(
            &self.state,
            &["update", "--install-to", self.slot.to_str().unwrap()],
        )
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn update_over_https_through_a_connect_tunnel() {
    let rel = SignedRepo::init();
    rel.add("fw", "1.0.0", "board-a", &image(1), &[]);
    let fleet = FleetCa::create(&rel.work);
    let server = TlsServer::start(&rel.repo, &fleet, false);
    let server_port = port_of(&server.url());
    let tmp = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(tmp.path(), &[server_port]);

    let dev = Device::new();
    dev.init(
        &rel,
        &server.url(),
        &[
            "--ca-bundle",
            fleet.ca_pem().to_str().unwrap(),
            "--proxy",
            &proxy.url(),
        ],
    );
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image(1));

    let requests = proxy.requests();
    let tunnel = format!("CONNECT 127.0.0.1:{server_port} ");
    assert!(
        requests.iter().any(|l| l.starts_with(&tunnel)),
        "tinyproxy logged no {tunnel:?}: {requests:?}"
    );
    // Everything went through the tunnel: the proxy saw no request line but CONNECTs, and
    // none of the paths inside the TLS connection.
    assert!(
        requests.iter().all(|l| l.starts_with("CONNECT ")),
        "{requests:?}"
    );
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    for path in ["timestamp.json", "targets/", "fw-1.0.0"] {
        assert!(!log.contains(path), "the proxy saw {path:?}: {log}");
    }

    // A second release: the device goes on updating through the proxy.
    rel.add("fw", "1.1.0", "board-a", &image(2), &[]);
    let before = proxy.requests().len();
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image(2));
    assert!(proxy.requests().len() > before, "{:?}", proxy.requests());
}

#[test]
fn update_over_http_through_the_proxy() {
    let rel = SignedRepo::init();
    rel.add("fw", "1.0.0", "board-a", &image(3), &[]);
    let server = TestServer::start(&rel.repo);
    let tmp = tempfile::tempdir().unwrap();
    let proxy = Tinyproxy::start(tmp.path(), &[]);

    let dev = Device::new();
    dev.init(&rel, &server.url(), &["--proxy", &proxy.url()]);
    let r = dev.update();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read(&dev.slot).unwrap(), image(3));

    // Plain HTTP goes to the proxy as absolute-form GETs for the server's URLs.
    let requests = proxy.requests();
    for want in [
        format!("GET {}/metadata/timestamp.json ", server.url()),
        format!("GET {}/targets/", server.url()),
    ] {
        assert!(
            requests.iter().any(|l| l.starts_with(&want)),
            "tinyproxy logged no {want:?}: {requests:?}"
        );
    }
}

#[test]
fn a_proxy_that_refuses_the_tunnel_or_is_not_there_fails_the_update() {
    let rel = SignedRepo::init();
    rel.add("fw", "1.0.0", "board-a", &image(4), &[]);
    let fleet = FleetCa::create(&rel.work);
    let server = TlsServer::start(&rel.repo, &fleet, false);
    let server_port = port_of(&server.url());
    let tmp = tempfile::tempdir().unwrap();
    // CONNECT is allowed to another port only: the proxy refuses the tunnel to the server,
    // which shows that the device goes through the proxy and not around it.
    let other = if server_port == 65535 {
        1
    } else {
        server_port + 1
    };
    let proxy = Tinyproxy::start(tmp.path(), &[other]);
    let dev = Device::new();
    dev.init(
        &rel,
        &server.url(),
        &[
            "--ca-bundle",
            fleet.ca_pem().to_str().unwrap(),
            "--proxy",
            &proxy.url(),
        ],
    );
    let r = dev.update();
    assert_eq!(r.code, 3, "{r:?}");
    assert!(!dev.slot.exists(), "nothing is installed");
    let tunnel = format!("CONNECT 127.0.0.1:{server_port} ");
    assert!(
        proxy.requests().iter().any(|l| l.starts_with(&tunnel)),
        "{:?}",
        proxy.requests()
    );

    // A proxy port nothing listens on: exit 3.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let dev = Device::new();
    dev.init(
        &rel,
        &server.url(),
        &[
            "--ca-bundle",
            fleet.ca_pem().to_str().unwrap(),
            "--proxy",
            &dead,
        ],
    );
    let r = dev.update();
    assert_eq!(r.code, 3, "{r:?}");
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {r:?}"));
    // The error names the proxy the connection went to, and the hint says to check it.
    assert!(error.contains("connection refused"), "{error}");
    assert!(
        error.contains(&format!("through the proxy {dead}")),
        "{error}"
    );
    let hint = r
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_default();
    assert!(hint.contains("proxy"), "{hint}");
    assert!(!dev.slot.exists(), "nothing is installed");
}
