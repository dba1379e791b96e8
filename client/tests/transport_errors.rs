//! The HTTP transport against misbehaving loopback servers: slow retrieval (trickled or
//! silent responses) is cut off by the transfer bounds, 403 is "forbidden" yet still ends
//! the root chain, and network errors read as one line naming the failing URL once.
mod support;

use ota_client::transport::{fetch_bytes, HttpTransport, TransferBounds, TransportError};
use ota_client::{Error, FixedClock, Updater, UpdaterConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{now, Repo};

/// What the test server does for one request path.
enum Reply {
    /// The file, all at once.
    Fast(Vec<u8>),
    /// The file one byte at a time, one byte every `.1`, with its Content-Length up front.
    Trickle(Vec<u8>, Duration),
    /// A status with an empty body.
    Status(u16),
    /// `302 Found` to this URL.
    Redirect(String),
    /// A 200 head announcing `.0` bytes, then nothing (the connection stays open).
    HeadThenSilence(u64),
    /// Nothing at all, connection open.
    Silence,
    /// Close without reading the request, so the client sees a reset.
    Reset,
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// An HTTP/1.0 server on 127.0.0.1, one thread per connection; returns `http://ADDR`.
fn serve(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: Arc<Handler> = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || answer(stream, &*handler));
        }
    });
    format!("http://{addr}")
}

fn answer(mut stream: TcpStream, handler: &Handler) {
    // Peek the path without consuming, so `Reset` can leave the request unread.
    let mut peek = [0u8; 1024];
    let n = stream.peek(&mut peek).unwrap_or(0);
    let head = String::from_utf8_lossy(&peek[..n]).to_string();
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let reply = handler(&path);
    if matches!(reply, Reply::Reset) {
        // Wait for the whole request, then drop it unread: the kernel answers with a RST.
        std::thread::sleep(Duration::from_millis(100));
        return;
    }
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let _ = match reply {
        Reply::Fast(body) => stream
            .write_all(
                format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        Reply::Trickle(body, every) => {
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let mut r = stream.write_all(head.as_bytes());
            for b in body {
                if r.is_err() {
                    break;
                }
                std::thread::sleep(every);
                r = stream.write_all(&[b]);
            }
            r
        }
        Reply::Status(code) => stream
            .write_all(format!("HTTP/1.0 {code} Nope\r\nContent-Length: 0\r\n\r\n").as_bytes()),
        Reply::Redirect(to) => stream.write_all(
            format!("HTTP/1.0 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        ),
        Reply::HeadThenSilence(len) => {
            let r = stream
                .write_all(format!("HTTP/1.0 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
            std::thread::sleep(Duration::from_secs(30));
            r
        }
        Reply::Silence => {
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        }
        Reply::Reset => unreachable!(),
    };
}

/// Files of a repository directory: `Fast` when present, else 404.
fn file_or_404(root: &Path, path: &str) -> Reply {
    match std::fs::read(root.join(path.trim_start_matches('/'))) {
        Ok(b) => Reply::Fast(b),
        Err(_) => Reply::Status(404),
    }
}

/// A published one-target repository on disk, and a device metadata dir trusting its root.
fn repo(target: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let mut repo = Repo::new();
    repo.add_target("targets", "fw.bin", target);
    repo.publish();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    repo.write_to(&dir);
    let md = tmp.path().join("md");
    Updater::bootstrap(&md, &repo.root_bytes(1)).unwrap();
    (tmp, dir, md)
}

fn updater(md: &Path, base: &str, metadata: TransferBounds, targets: TransferBounds) -> Updater {
    let mut c = UpdaterConfig::new(
        md,
        Box::new(HttpTransport::with_bounds(&format!("{base}/metadata/"), metadata).unwrap()),
        Box::new(HttpTransport::with_bounds(&format!("{base}/targets/"), targets).unwrap()),
    );
    c.clock = Box::new(FixedClock(now()));
    Updater::new(c).unwrap()
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    out
}

fn deadline(d: Duration) -> TransferBounds {
    TransferBounds {
        deadline: Some(d),
        min_rate: 0,
        grace: Duration::ZERO,
        stall: Duration::from_secs(60),
    }
}

fn dead_port() -> u16 {
    // Bind then drop: nothing listens on this port.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn trickled_timestamp_is_cut_off_at_the_deadline() {
    let (_tmp, dir, md) = repo(b"fw");
    let base = serve(move |path| match path {
        "/metadata/timestamp.json" => Reply::Trickle(
            std::fs::read(dir.join("metadata/timestamp.json")).unwrap(),
            Duration::from_millis(200),
        ),
        p => file_or_404(&dir, p),
    });
    let before = files(&md);
    let mut up = updater(
        &md,
        &base,
        deadline(Duration::from_millis(1500)),
        TransferBounds::TARGETS,
    );
    let start = Instant::now();
    let err = up.refresh().unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500 + 1000), "took {took:?}");
    let Error::Transport(TransportError::TooSlow { location, reason }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(location, &format!("{base}/metadata/timestamp.json"));
    assert!(reason.contains("1.5 s deadline"), "{reason}");
    assert!(
        err.to_string().starts_with(&format!(
            "fetching {base}/metadata/timestamp.json: too slow: "
        )),
        "{err}"
    );
    assert_eq!(files(&md), before, "nothing trusted changed");
}

#[test]
fn silent_server_is_interrupted_at_the_deadline() {
    let base = serve(|path| match path {
        "/metadata/head-only.json" => Reply::HeadThenSilence(100),
        _ => Reply::Silence,
    });
    let t = HttpTransport::with_bounds(
        &format!("{base}/metadata/"),
        deadline(Duration::from_secs(1)),
    )
    .unwrap();
    for name in ["head-only.json", "no-head.json"] {
        let start = Instant::now();
        let err = fetch_bytes(&t, name, 1000).unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_millis(2000), "{name} took {took:?}");
        assert!(
            matches!(&err, TransportError::TooSlow { location, .. } if location.ends_with(name)),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn target_below_the_rate_floor_is_refused() {
    let image = vec![7u8; 20_000];
    let (tmp, dir, md) = repo(&image);
    let base = serve(move |path| {
        if path.starts_with("/targets/") {
            // 5 bytes/s, far below the floor.
            match std::fs::read(dir.join(path.trim_start_matches('/'))) {
                Ok(b) => Reply::Trickle(b, Duration::from_millis(200)),
                Err(_) => Reply::Status(404),
            }
        } else {
            file_or_404(&dir, path)
        }
    });
    let floor = TransferBounds {
        deadline: None,
        min_rate: 1000,
        grace: Duration::from_secs(1),
        stall: Duration::from_secs(60),
    };
    let mut up = updater(&md, &base, TransferBounds::METADATA, floor);
    let t = up.get_target_info("fw.bin").unwrap().unwrap();
    let dl = tmp.path().join("dl");
    let start = Instant::now();
    let err = up.download_target(&t, &dl).unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1000 + 1000), "took {took:?}");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("below the minimum average of 1000 bytes/s"),
        "{msg}"
    );
    assert_eq!(msg.matches(&base).count(), 1, "{msg}");
    assert!(!ota_client::target_download::target_file_in(&dl, &t).exists());

    // The same floor, read through the transport: a distinct TooSlow error.
    let targets = HttpTransport::with_bounds(&format!("{base}/targets/"), floor).unwrap();
    let name = std::fs::read_dir(tmp.path().join("repo/targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with("fw.bin"))
        .max_by_key(String::len)
        .unwrap();
    let err = fetch_bytes(&targets, &name, 20_000).unwrap_err();
    assert!(matches!(err, TransportError::TooSlow { .. }), "{err:?}");
}

#[test]
fn stalled_target_is_interrupted_after_the_stall_bound() {
    // No deadline: a server that sends the head and then nothing is cut off after `stall`
    // (1 s here; 30 s by default), whatever the size of the file.
    let base = serve(|_| Reply::HeadThenSilence(1000));
    let floor = TransferBounds {
        deadline: None,
        min_rate: 1000,
        grace: Duration::from_secs(1),
        stall: Duration::from_secs(1),
    };
    let t = HttpTransport::with_bounds(&format!("{base}/targets/"), floor).unwrap();
    let start = Instant::now();
    let err = fetch_bytes(&t, "fw.bin", 1000).unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(3000), "took {took:?}");
    assert!(matches!(err, TransportError::TooSlow { .. }), "{err:?}");
}

#[test]
fn fast_transfers_pass_the_default_bounds() {
    let (tmp, dir, md) = repo(&vec![1u8; 300_000]);
    let base = serve(move |path| file_or_404(&dir, path));
    let mut up = updater(
        &md,
        &base,
        TransferBounds::METADATA,
        TransferBounds::TARGETS,
    );
    let t = up.get_target_info("fw.bin").unwrap().unwrap();
    let p = up.download_target(&t, &tmp.path().join("dl")).unwrap();
    assert_eq!(std::fs::read(p).unwrap().len(), 300_000);
}

#[test]
fn forbidden_is_reported_as_such_and_still_ends_the_root_chain() {
    // Like an object store: 403 for every file it does not have.
    let (_tmp, dir, md) = repo(b"fw");
    let d = dir.clone();
    let base = serve(move |path| match file_or_404(&d, path) {
        Reply::Status(404) => Reply::Status(403),
        other => other,
    });
    let mut up = updater(
        &md,
        &base,
        TransferBounds::METADATA,
        TransferBounds::TARGETS,
    );
    up.refresh()
        .expect("403 for 2.root.json ends the root chain");

    let t = HttpTransport::new(&format!("{base}/metadata/")).unwrap();
    let err = fetch_bytes(&t, "missing.json", 100).unwrap_err();
    assert!(matches!(err, TransportError::Forbidden { .. }), "{err:?}");
    assert!(err.is_missing());
    assert_eq!(
        err.to_string(),
        format!("{base}/metadata/missing.json: forbidden (HTTP 403)")
    );

    // Other statuses are neither.
    let base = serve(|_| Reply::Status(500));
    let t = HttpTransport::new(&format!("{base}/metadata/")).unwrap();
    let err = fetch_bytes(&t, "timestamp.json", 100).unwrap_err();
    assert!(!err.is_missing());
    assert_eq!(
        err.to_string(),
        format!("fetching {base}/metadata/timestamp.json: HTTP status 500")
    );
    let _ = dir;
}

#[test]
fn connection_refused_is_one_line_naming_the_url_once() {
    let port = dead_port();
    let t = HttpTransport::new(&format!("http://127.0.0.1:{port}/metadata/")).unwrap();
    let err = fetch_bytes(&t, "timestamp.json", 100).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("fetching http://127.0.0.1:{port}/metadata/timestamp.json: connection refused")
    );
}

#[test]
fn failed_redirect_names_the_url_that_failed() {
    let dead = dead_port();
    let base = serve(move |path| Reply::Redirect(format!("http://127.0.0.1:{dead}/moved{path}")));
    let t = HttpTransport::new(&format!("{base}/metadata/")).unwrap();
    let err = fetch_bytes(&t, "timestamp.json", 100).unwrap_err();
    let TransportError::Other { location, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        location,
        &format!("http://127.0.0.1:{dead}/moved/metadata/timestamp.json")
    );
    assert_eq!(
        err.to_string(),
        format!(
            "fetching http://127.0.0.1:{dead}/moved/metadata/timestamp.json: connection refused \
             (redirected from {base}/metadata/timestamp.json)"
        )
    );
}

#[test]
fn reset_connection_does_not_repeat_itself() {
    let base = serve(|_| Reply::Reset);
    let t = HttpTransport::new(&format!("{base}/metadata/")).unwrap();
    let err = fetch_bytes(&t, "timestamp.json", 100).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("Network Error"), "{msg}");
    assert_eq!(msg.matches(&base).count(), 1, "{msg}");
    assert!(
        msg == format!("fetching {base}/metadata/timestamp.json: connection reset by the server")
            || msg
                == format!(
                    "fetching {base}/metadata/timestamp.json: connection closed by the server"
                ),
        "{msg}"
    );
}

#[test]
fn redirects_are_followed_and_bounded() {
    let (_tmp, dir, md) = repo(b"fw");
    let base = serve(move |path| match path.strip_prefix("/old") {
        // A relative Location, resolved against the URL that answered.
        Some(rest) => Reply::Redirect(rest.to_string()),
        None if path.starts_with("/loop/") => Reply::Redirect(path.to_string()),
        None => file_or_404(&dir, path),
    });
    let mut up = updater(
        &md,
        &format!("{base}/old"),
        TransferBounds::METADATA,
        TransferBounds::TARGETS,
    );
    up.refresh().unwrap();
    assert!(up.get_target_info("fw.bin").unwrap().is_some());

    let t = HttpTransport::new(&format!("{base}/loop/")).unwrap();
    let err = fetch_bytes(&t, "x.json", 100).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("fetching {base}/loop/x.json: more than 5 redirects")
    );
}
