//! Graceful shutdown in-process: in-flight downloads finish, new connections are refused, and a
//! client that stalls past the grace period does not keep the server alive.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{pattern, Fixture, TestServer};
use ota_repo_server::{Config, ShutdownOutcome};

const BIG: usize = 16 * 1024 * 1024;

/// Sends a GET for big.img and reads the response head; returns the reader positioned at the body.
fn start_download(srv: &TestServer) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /targets/big.img HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    reader
}

#[test]
fn in_flight_download_completes_after_shutdown_is_requested() {
    let fx = Fixture::new();
    let data = pattern(BIG);
    std::fs::write(fx.target("big.img"), &data).unwrap();
    let mut srv = TestServer::start(&fx.repo());
    let mut reader = start_download(&srv);
    let mut first = vec![0; 1024];
    reader.read_exact(&mut first).unwrap();

    srv.trigger_stop();
    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(srv.addr).is_ok() {
        assert!(Instant::now() < deadline, "listener still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The download that was in flight still delivers every byte, then the connection closes.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    first.extend_from_slice(&rest);
    assert_eq!(first.len(), BIG);
    assert!(first == data, "body differs from file");
    assert_eq!(srv.wait(), ShutdownOutcome::Graceful);
}

#[test]
fn stalled_client_is_dropped_after_the_grace_period() {
    let fx = Fixture::new();
    std::fs::write(fx.target("big.img"), pattern(BIG)).unwrap();
    let mut config = Config::new(fx.repo(), "127.0.0.1:0".parse().unwrap());
    config.shutdown_timeout = Duration::from_millis(300);
    let mut srv = TestServer::start_with(config);
    // Read only the head and then stop reading: the server cannot finish the body.
    let _stalled = start_download(&srv);
    let started = Instant::now();
    assert_eq!(srv.wait(), ShutdownOutcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn idle_keep_alive_connection_does_not_delay_shutdown() {
    let fx = Fixture::new();
    let mut srv = TestServer::start(&fx.repo());
    let mut idle = TcpStream::connect(srv.addr).unwrap();
    write!(idle, "GET /targets/plain.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    assert_eq!(srv.wait(), ShutdownOutcome::Graceful);
    assert!(started.elapsed() < Duration::from_secs(5));
}
