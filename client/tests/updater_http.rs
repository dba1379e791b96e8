//! The updater over real HTTP on 127.0.0.1, including an endless-data attack.
mod support;

use ota_client::{Error, FixedClock, Updater, UpdaterConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use support::{now, Repo};

/// A minimal HTTP/1.0 file server for `root`; paths under `/endless/` stream data forever.
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("/").to_string();
            if path.starts_with("/endless/") {
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
                let chunk = [b'{'; 4096];
                while stream.write_all(&chunk).is_ok() {}
                continue;
            }
            match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => {
                    let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                }
                Err(_) => {
                    let _ =
                        stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    format!("http://{addr}")
}

fn config(md: &std::path::Path, metadata_url: &str, targets_url: &str) -> UpdaterConfig {
    let mut c = UpdaterConfig::http(md, metadata_url, targets_url).unwrap();
    c.clock = Box::new(FixedClock(now()));
    c
}

#[test]
fn refresh_and_download_over_http() {
    let mut repo = Repo::new();
    repo.add_target("targets", "fw.bin", b"firmware over http");
    repo.publish();
    let tmp = tempfile::tempdir().unwrap();
    repo.write_to(&tmp.path().join("repo"));
    let base = serve(tmp.path().join("repo"));
    let md = tmp.path().join("md");
    Updater::bootstrap(&md, &repo.root_bytes(1)).unwrap();
    // Base URLs without a trailing slash work too.
    let mut up = Updater::new(config(
        &md,
        &format!("{base}/metadata"),
        &format!("{base}/targets/"),
    ))
    .unwrap();
    let t = up.get_target_info("fw.bin").unwrap().unwrap();
    let p = up.download_target(&t, &tmp.path().join("dl")).unwrap();
    assert_eq!(std::fs::read(p).unwrap(), b"firmware over http");
}

#[test]
fn endless_timestamp_is_cut_off_at_the_limit() {
    let repo = Repo::new();
    let tmp = tempfile::tempdir().unwrap();
    repo.write_to(&tmp.path().join("repo"));
    // Every file under /endless/ streams forever; skip the root chain so the timestamp (cap
    // 16 KiB) is the first fetch.
    let base = serve(tmp.path().join("repo"));
    let md = tmp.path().join("md");
    Updater::bootstrap(&md, &repo.root_bytes(1)).unwrap();
    let mut c = config(&md, &format!("{base}/endless/metadata/"), &base);
    c.limits.max_root_rotations = 0;
    let err = Updater::new(c).unwrap().refresh().unwrap_err();
    assert!(
        matches!(err, Error::LengthExceeded { limit: 16384, .. }),
        "{err}"
    );
}

#[test]
fn unreachable_server_is_a_transport_error() {
    let repo = Repo::new();
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("md");
    Updater::bootstrap(&md, &repo.root_bytes(1)).unwrap();
    // Bind then drop: nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/metadata/");
    let err = Updater::new(config(&md, &url, &url))
        .unwrap()
        .refresh()
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err}");
    assert!(UpdaterConfig::http(&md, "ftp://example/", "ftp://example/").is_err());
}
