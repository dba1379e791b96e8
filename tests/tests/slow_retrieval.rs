//! Slow retrieval and network error messages through the real `ota-client` binary: a
//! repository made by `ota-sign`, served by a loopback server that can trickle files, and a
//! device whose `config.json` sets short transfer bounds.
use ota_tests::cli::{tree, Run, SignedRepo};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serve every file at full speed.
const FAST: u8 = 0;
/// Trickle `metadata/timestamp.json`, one byte every 200 ms.
const SLOW_TIMESTAMP: u8 = 1;
/// Trickle files under `targets/`, one byte every 5 ms (200 bytes/s).
const SLOW_TARGETS: u8 = 2;

/// A file server over `root` whose pace is switched by `mode`; returns `http://ADDR`.
fn serve(root: PathBuf, mode: Arc<AtomicU8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (root, mode) = (root.clone(), mode.load(Ordering::SeqCst));
            std::thread::spawn(move || answer(stream, &root, mode));
        }
    });
    format!("http://{addr}")
}

fn answer(mut stream: TcpStream, root: &Path, mode: u8) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let path = line
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let Ok(body) = std::fs::read(root.join(path)) else {
        let _ = stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let every = match mode {
        SLOW_TIMESTAMP if path == "metadata/timestamp.json" => Duration::from_millis(200),
        SLOW_TARGETS if path.starts_with("targets/") => Duration::from_millis(5),
        _ => {
            let _ = stream.write_all(&body);
            return;
        }
    };
    for b in body {
        std::thread::sleep(every);
        if stream.write_all(&[b]).is_err() {
            return;
        }
    }
}

struct Device {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Device {
    fn init(repo: &SignedRepo, server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let root = repo.repo.join("metadata/1.root.json");
        let d = Device { dir, state };
        let r = d.client(&[
            "init",
            "--root",
            root.to_str().unwrap(),
            "--server",
            server,
            "--hardware",
            "board-a",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        d
    }

    fn client(&self, args: &[&str]) -> Run {
        ota_tests::cli::client(&self.state, args)
    }

    /// Set `config.json`'s `"transfer"` object.
    fn set_transfer(&self, transfer: serde_json::Value) {
        let path = self.state.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        cfg["transfer"] = transfer;
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    }
}

/// A repository offering one 20 KB image for board-a.
fn release() -> SignedRepo {
    let repo = SignedRepo::init();
    let image: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    repo.add("gateway-fw", "1.0.0", "board-a", &image, &[]);
    repo
}

/// The `error:` line of a failed run.
fn error_line(r: &Run) -> &str {
    r.stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {r:?}"))
}

#[test]
fn trickled_metadata_and_targets_are_cut_off_and_change_nothing() {
    let repo = release();
    let mode = Arc::new(AtomicU8::new(FAST));
    let url = serve(repo.repo.clone(), mode.clone());
    let dev = Device::init(&repo, &url);
    dev.set_transfer(serde_json::json!({"metadata_deadline_secs": 2}));

    // At full speed the short deadline is no obstacle.
    let r = dev.client(&["check", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["update"]["version"], "1.0.0");

    // 612-byte-ish timestamp at 5 bytes/s: cut off at the 2 s deadline, exit 3.
    mode.store(SLOW_TIMESTAMP, Ordering::SeqCst);
    let before = tree(&dev.state);
    let start = Instant::now();
    let r = dev.client(&["check"]);
    let took = start.elapsed();
    assert_eq!(r.code, 3, "{r:?}");
    assert!(took < Duration::from_secs(2 + 3), "took {took:?}");
    let timestamp_url = format!("{url}/metadata/timestamp.json");
    assert!(
        error_line(&r).starts_with(&format!(
            "error: fetching {timestamp_url}: too slow: not complete within the 2 s deadline ("
        )),
        "{r:?}"
    );
    assert_eq!(error_line(&r).matches(&url).count(), 1, "{r:?}");
    assert_eq!(
        tree(&dev.state),
        before,
        "trusted metadata and state unchanged"
    );

    // The image at 200 bytes/s, under a 10 KB/s floor after 1 s: refused, nothing installed.
    dev.set_transfer(serde_json::json!({"min_rate_bytes_per_sec": 10_000, "grace_secs": 1}));
    mode.store(SLOW_TARGETS, Ordering::SeqCst);
    let slot = dev.dir.path().join("fw.img");
    std::fs::write(&slot, b"old image").unwrap();
    let start = Instant::now();
    let r = dev.client(&["update", "--install-to", slot.to_str().unwrap()]);
    let took = start.elapsed();
    assert_eq!(r.code, 3, "{r:?}");
    assert!(took < Duration::from_secs(1 + 3), "took {took:?}");
    let line = error_line(&r);
    assert!(
        line.starts_with(&format!("error: fetching {url}/targets/")),
        "{r:?}"
    );
    assert!(
        line.contains(": too slow: ")
            && line.contains("below the minimum average of 10000 bytes/s"),
        "{r:?}"
    );
    assert_eq!(line.matches(&url).count(), 1, "{r:?}");
    assert_eq!(std::fs::read(&slot).unwrap(), b"old image");
    assert!(!dev.state.join("installed.json").exists());
}

#[test]
fn unreachable_server_is_one_clean_line() {
    let repo = SignedRepo::init();
    // Bind then drop: nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let dev = Device::init(&repo, &url);
    let r = dev.client(&["check"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        error_line(&r),
        format!("error: fetching {url}/metadata/2.root.json: connection refused"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("Network Error"), "{r:?}");
}
