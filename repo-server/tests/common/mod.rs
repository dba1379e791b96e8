//! Shared test fixtures: a real repository on disk, an in-process server on 127.0.0.1 and a raw
//! HTTP/1.1 client (raw, so request paths reach the server exactly as written, `..` included).

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ota_repo_server::{serve, Config, RunningServer, ShutdownOutcome};

pub const SECRET: &[u8] = b"TOP SECRET - outside the repository";
pub const HASH_PREFIX: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// A temporary directory holding `repo/` (metadata + targets) and `secret.txt` beside it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let meta = repo.join("metadata");
        let targets = repo.join("targets");
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::create_dir_all(targets.join("sub")).unwrap();
        for (name, body) in [
            ("root.json", "{\"root\":\"current\"}"),
            ("1.root.json", "{\"root\":1}"),
            ("2.root.json", "{\"root\":2}"),
            ("timestamp.json", "{\"timestamp\":7}"),
            ("3.snapshot.json", "{\"snapshot\":3}"),
            ("snapshot.json", "{\"snapshot\":\"latest\"}"),
            ("5.targets.json", "{\"targets\":5}"),
            ("4.role%2Fname.json", "{\"delegated\":\"role/name\"}"),
        ] {
            std::fs::write(meta.join(name), body).unwrap();
        }
        std::fs::write(
            targets.join(format!("{HASH_PREFIX}.fw.bin")),
            pattern(10_000),
        )
        .unwrap();
        std::fs::write(
            targets.join("sub").join(format!("{HASH_PREFIX}.app.img")),
            b"nested",
        )
        .unwrap();
        std::fs::write(targets.join("plain.txt"), b"hello target").unwrap();
        std::fs::write(targets.join("empty.bin"), b"").unwrap();
        std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
        Fixture { dir }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn secret(&self) -> PathBuf {
        self.dir.path().join("secret.txt")
    }

    pub fn target(&self, rel: &str) -> PathBuf {
        self.repo().join("targets").join(rel)
    }
}

/// Deterministic non-repeating-ish content, so a wrong offset shows up as wrong bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 251) % 256) as u8).collect()
}

/// An in-process server on its own runtime; stopped (and awaited) on drop or by `stop`.
pub struct TestServer {
    pub addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<RunningServer>,
}

impl TestServer {
    pub fn start(repo: &Path) -> Self {
        Self::start_with(Config::new(repo, "127.0.0.1:0".parse().unwrap()))
    }

    pub fn start_with(config: Config) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = rt
            .block_on(serve(config, async move {
                let _ = rx.await;
            }))
            .unwrap();
        TestServer {
            addr: running.local_addr(),
            rt,
            stop: Some(tx),
            running: Some(running),
        }
    }

    /// Asks the server to shut down without waiting.
    pub fn trigger_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the shutdown to finish and reports how it ended.
    pub fn wait(&mut self) -> ShutdownOutcome {
        self.trigger_stop();
        let running = self.running.take().unwrap();
        self.rt.block_on(running.wait())
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        request(self.addr, "GET", path, headers)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.running.is_some() {
            self.wait();
        }
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Sends one request with `Connection: close` and reads the response to EOF.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    send_raw(addr, req.as_bytes())
}

pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header terminator");
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Resp {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}
