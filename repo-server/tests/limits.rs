//! Connection limits and the header timeout: idle or silent connections must neither pile up
//! until the process runs out of file descriptors nor keep normal clients waiting.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{parse_response, Fixture};

const BIN: &str = env!("CARGO_BIN_EXE_ota-server");

/// A server process, killed when dropped so a failing test does not leave it running.
struct ServerProc {
    child: Child,
    addr: SocketAddr,
}

impl ServerProc {
    /// Runs `ota-server` through `sh` so `shell_prefix` (e.g. `ulimit -n 1024;`) applies to it.
    /// Stderr goes to `log` rather than a pipe nobody drains, which could block the server.
    fn spawn(shell_prefix: &str, repo: &Path, extra: &[&str], log: &Path) -> Self {
        let script = format!("{shell_prefix} exec \"$0\" \"$@\"");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(BIN)
            .args(["--repo", repo.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim_end()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected startup line {line:?}"))
            .parse()
            .unwrap();
        ServerProc { child, addr }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The soft RLIMIT_NOFILE of this process, from /proc (no unsafe code needed).
fn own_nofile_soft_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft = line.split_whitespace().nth(3).unwrap();
    if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse().unwrap()
    }
}

/// This process must hold `needed` sockets; raise its soft limit with prlimit(1) if necessary.
fn ensure_own_fd_limit(needed: u64) {
    if own_nofile_soft_limit() >= needed {
        return;
    }
    let pid = std::process::id().to_string();
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={needed}:")])
        .status();
    let now = own_nofile_soft_limit();
    assert!(
        now >= needed,
        "this test needs RLIMIT_NOFILE >= {needed} (soft limit is {now}); raise it with ulimit -n"
    );
}

fn get_timestamp(addr: SocketAddr) -> std::io::Result<common::Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(parse_response(&buf))
}

#[test]
fn idle_connections_do_not_lock_out_normal_clients() {
    const IDLE: usize = 1100;
    ensure_own_fd_limit(IDLE as u64 + 200);
    let fx = Fixture::new();
    let log = fx.dir.path().join("server.log");
    let srv = ServerProc::spawn("ulimit -n 1024 || exit 99;", &fx.repo(), &[], &log);

    // Connections that never send a byte: more than the server has file descriptors for.
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        match TcpStream::connect_timeout(&srv.addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("idle connection {i} failed: {e}"),
        }
    }

    let started = Instant::now();
    let r = get_timestamp(srv.addr).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        panic!("normal request failed with {IDLE} idle connections open: {e}; log tail: {tail:?}")
    });
    let took = started.elapsed();
    eprintln!("normal request with {IDLE} idle connections open took {took:?}");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"timestamp\":7}");
    assert!(
        took < Duration::from_secs(1),
        "normal request took {took:?}"
    );
    drop(idle);
    drop(srv);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains("Too many open files"),
        "the server ran out of descriptors: {}",
        log.lines().find(|l| l.contains("Too many")).unwrap_or("")
    );
}

/// Reads until the server closes the connection; returns when that happened.
fn wait_closed(s: &mut TcpStream) -> Instant {
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Instant::now(),
            // The server's own frames (an HTTP/2 SETTINGS frame) may come first.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Instant::now(),
            Err(e) => panic!("connection still open after 6 s: {e}"),
        }
    }
}

#[test]
fn silent_connections_are_closed_after_the_header_timeout() {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    let fx = Fixture::new();
    let log = fx.dir.path().join("server.log");
    let srv = ServerProc::spawn("", &fx.repo(), &["--header-timeout", "1"], &log);
    let addr = srv.addr;

    let h2_hello = [H2_PREFACE, EMPTY_SETTINGS].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("never sends a byte", Vec::new()),
        (
            "partial HTTP/1 head",
            b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\n".to_vec(),
        ),
        ("partial HTTP/2 preface", H2_PREFACE[..16].to_vec()),
        ("HTTP/2 preface and SETTINGS, no request", h2_hello),
        (
            "keep-alive after one request",
            b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(name, bytes)| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&bytes).unwrap();
                if name.starts_with("keep-alive") {
                    // The idle period starts once the response has been sent.
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !got.ends_with(b"{\"timestamp\":7}") {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "{name}: closed before the response");
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got.starts_with(b"HTTP/1.1 200"), "{name}");
                }
                let idle_from = Instant::now();
                let closed_after = wait_closed(&mut s) - idle_from;
                (name, closed_after)
            })
        })
        .collect();
    for t in threads {
        let (name, closed_after) = t.join().unwrap();
        assert!(
            closed_after >= Duration::from_millis(800) && closed_after < Duration::from_secs(4),
            "{name}: closed after {closed_after:?}, expected about 1 s"
        );
    }
    // The server is still fine afterwards.
    assert_eq!(get_timestamp(addr).unwrap().status, 200);
}

const BIG: usize = 16 * 1024 * 1024;

/// Sends a GET for big.img and reads the response head; returns the reader positioned at the body.
fn start_download(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /targets/big.img HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return reader;
        }
    }
}

#[test]
fn download_slower_than_the_header_timeout_completes() {
    let fx = Fixture::new();
    let data = common::pattern(BIG);
    std::fs::write(fx.target("big.img"), &data).unwrap();
    let mut config = ota_repo_server::Config::new(fx.repo(), "127.0.0.1:0".parse().unwrap());
    config.header_timeout = Duration::from_secs(1);
    let srv = common::TestServer::start_with(config);

    // About 2.5 s for the body: the timeout must not cut a response that is still being sent.
    let started = Instant::now();
    let mut reader = start_download(srv.addr);
    let mut body = vec![0u8; BIG];
    for chunk in body.chunks_mut(256 * 1024) {
        reader.read_exact(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(started.elapsed() > Duration::from_secs(2));
    assert!(body == data, "body differs from file");
}

#[test]
fn busy_connections_keep_their_slots_and_new_clients_wait() {
    let fx = Fixture::new();
    std::fs::write(fx.target("big.img"), common::pattern(BIG)).unwrap();
    let mut config = ota_repo_server::Config::new(fx.repo(), "127.0.0.1:0".parse().unwrap());
    config.max_connections = 2;
    let srv = common::TestServer::start_with(config);

    // Two downloads that stop reading: busy, so neither evictable nor timed out.
    let first = start_download(srv.addr);
    let _second = start_download(srv.addr);

    let mut waiting = TcpStream::connect(srv.addr).unwrap();
    waiting
        .write_all(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = Vec::new();
    let early = waiting.read_to_end(&mut buf);
    assert!(
        early.is_err() && buf.is_empty(),
        "served beyond the limit: {early:?} {buf:?}"
    );

    // Ending one download frees its slot for the waiting client.
    drop(first);
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    waiting.read_to_end(&mut buf).unwrap();
    let r = parse_response(&buf);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"{\"timestamp\":7}"[..])
    );
}

#[test]
fn descriptor_exhaustion_backs_off_quietly_and_recovers() {
    // A limit the descriptors cannot carry, so accept fails with EMFILE.
    let fx = Fixture::new();
    let log = fx.dir.path().join("server.log");
    let srv = ServerProc::spawn(
        "ulimit -n 128 || exit 99;",
        &fx.repo(),
        &["--max-connections", "1000"],
        &log,
    );
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect_timeout(&srv.addr, Duration::from_secs(5)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let text = std::fs::read_to_string(&log).unwrap();
    let failures = text.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        text.contains("Too many open files"),
        "EMFILE was expected: {text}"
    );
    assert!(
        failures <= 1,
        "{failures} accept warnings in 1.5 s; expected them rate-limited"
    );
    assert!(
        text.contains("open-file limit is below"),
        "no startup warning: {text}"
    );

    // Once the idle clients go away the server serves again (after at most one back-off).
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match get_timestamp(srv.addr) {
            Ok(r) if r.status == 200 => break,
            other => assert!(
                Instant::now() < deadline,
                "not serving after the idle clients left: {:?}",
                other.map(|r| r.status)
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
