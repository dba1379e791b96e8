//! Serving behaviour over real HTTP: bodies, headers, HEAD, ranges, ETags, cache policy.

mod common;

use common::{pattern, request, Fixture, TestServer, HASH_PREFIX};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[test]
fn get_serves_metadata_with_full_headers() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let r = srv.get("/metadata/5.targets.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"targets\":5}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
    let etag = r.header("etag").unwrap();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
}

#[test]
fn get_serves_nested_and_hash_prefixed_targets_as_octet_stream() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let r = srv.get(&format!("/targets/{HASH_PREFIX}.fw.bin"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pattern(10_000));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let r = srv.get(&format!("/targets/sub/{HASH_PREFIX}.app.img"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"nested"[..]));
    let r = srv.get("/targets/empty.bin");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    assert!(r.body.is_empty());
}

#[test]
fn large_target_streams_intact() {
    let fx = Fixture::new();
    let data = pattern(12 * 1024 * 1024 + 3);
    std::fs::write(fx.target("big.img"), &data).unwrap();
    let srv = TestServer::start(&fx.repo());
    let r = srv.get("/targets/big.img");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("12582915"));
    assert!(r.body == data, "body differs from file");
    let r = srv.get_with("/targets/big.img", &[("Range", "bytes=10000000-")]);
    assert_eq!(r.status, 206);
    assert!(r.body == data[10_000_000..]);
}

#[test]
fn percent_encoded_role_file_names_are_served_literally() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    // The file on disk is literally `4.role%2Fname.json`; `%25` decodes to `%` once.
    let r = srv.get("/metadata/4.role%252Fname.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"delegated\":\"role/name\"}");
    // Decoding twice would map this to `4.role/name.json`; it must not find the file.
    let r = srv.get("/metadata/4.role%2Fname.json");
    assert_eq!(r.status, 400);
}

#[test]
fn head_has_headers_but_no_body() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let get = srv.get("/targets/plain.txt");
    let head = request(srv.addr, "HEAD", "/targets/plain.txt", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("12"));
    for h in [
        "etag",
        "last-modified",
        "content-type",
        "cache-control",
        "accept-ranges",
    ] {
        assert_eq!(head.header(h), get.header(h), "{h}");
    }
}

#[test]
fn other_methods_get_405_with_allow() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = request(
            srv.addr,
            m,
            "/targets/plain.txt",
            &[("Content-Length", "0")],
        );
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // Nothing was written.
    assert_eq!(
        std::fs::read(fx.target("plain.txt")).unwrap(),
        b"hello target"
    );
}

#[test]
fn byte_ranges() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let path = format!("/targets/{HASH_PREFIX}.fw.bin");
    let data = pattern(10_000);
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=9990-", 9990, 9999),
        ("bytes=-10", 9990, 9999),
        ("bytes=9000-20000", 9000, 9999),
    ];
    for &(range, start, end) in cases {
        let r = srv.get_with(&path, &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.body, &data[start..=end], "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/10000").as_str())
        );
        assert_eq!(
            r.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
    }
    for range in ["bytes=10000-", "bytes=20000-30000", "bytes=-0"] {
        let r = srv.get_with(&path, &[("Range", range)]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */10000"));
        assert!(r.body.is_empty());
    }
    // Multiple ranges and invalid syntax: full body with 200.
    for range in ["bytes=0-1,5-6", "bytes=5-1", "lines=1-2"] {
        let r = srv.get_with(&path, &[("Range", range)]);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.body, data);
    }
    // HEAD ignores Range.
    let r = request(srv.addr, "HEAD", &path, &[("Range", "bytes=0-9")]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("10000")));
}

#[test]
fn if_range_honours_only_the_current_strong_etag() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let etag = srv
        .get("/targets/plain.txt")
        .header("etag")
        .unwrap()
        .to_owned();
    let r = srv.get_with(
        "/targets/plain.txt",
        &[("Range", "bytes=6-"), ("If-Range", &etag)],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &b"target"[..]));
    let weak = format!("W/{etag}");
    for stale in [
        "\"not-the-tag\"",
        weak.as_str(),
        "Mon, 01 Jan 2001 00:00:00 GMT",
    ] {
        let r = srv.get_with(
            "/targets/plain.txt",
            &[("Range", "bytes=6-"), ("If-Range", stale)],
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hello target"[..]),
            "{stale}"
        );
    }
}

#[test]
fn if_none_match_gives_304_and_replacement_changes_the_etag() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let first = srv.get("/metadata/timestamp.json");
    let etag = first.header("etag").unwrap().to_owned();
    let r = srv.get_with("/metadata/timestamp.json", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let list = format!("\"other\", {etag}");
    assert_eq!(
        srv.get_with("/metadata/timestamp.json", &[("If-None-Match", &list)])
            .status,
        304
    );
    assert_eq!(
        srv.get_with("/metadata/timestamp.json", &[("If-None-Match", "*")])
            .status,
        304
    );
    assert_eq!(
        srv.get_with(
            "/metadata/timestamp.json",
            &[("If-None-Match", "\"other\"")]
        )
        .status,
        200
    );
    // A new timestamp written the way repository tools do (temp file + rename).
    let meta = fx.repo().join("metadata");
    std::fs::write(meta.join("timestamp.json.tmp"), "{\"timestamp\":8}").unwrap();
    std::fs::rename(meta.join("timestamp.json.tmp"), meta.join("timestamp.json")).unwrap();
    let r = srv.get_with("/metadata/timestamp.json", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"timestamp\":8}");
    assert_ne!(r.header("etag"), Some(etag.as_str()));
}

#[test]
fn if_modified_since_gives_304_unless_if_none_match_disagrees() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let lm = srv
        .get("/targets/plain.txt")
        .header("last-modified")
        .unwrap()
        .to_owned();
    assert_eq!(
        srv.get_with("/targets/plain.txt", &[("If-Modified-Since", &lm)])
            .status,
        304
    );
    assert_eq!(
        srv.get_with(
            "/targets/plain.txt",
            &[("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")]
        )
        .status,
        200
    );
    // If-None-Match takes precedence (RFC 9110 §13.2.2).
    assert_eq!(
        srv.get_with(
            "/targets/plain.txt",
            &[("If-Modified-Since", &lm), ("If-None-Match", "\"other\"")]
        )
        .status,
        200
    );
}

#[test]
fn cache_control_per_file_kind() {
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let cases = [
        ("/metadata/timestamp.json", "no-store"),
        ("/metadata/root.json", "no-store"),
        ("/metadata/1.root.json", "no-store"),
        ("/metadata/2.root.json", "no-store"),
        ("/metadata/3.snapshot.json", IMMUTABLE),
        ("/metadata/5.targets.json", IMMUTABLE),
        ("/metadata/4.role%252Fname.json", IMMUTABLE),
        ("/metadata/snapshot.json", "public, max-age=60"),
        ("/targets/plain.txt", "public, max-age=60"),
    ];
    for (path, want) in cases {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("cache-control"), Some(want), "{path}");
    }
    let hashed = format!("/targets/{HASH_PREFIX}.fw.bin");
    assert_eq!(srv.get(&hashed).header("cache-control"), Some(IMMUTABLE));
    let nested = format!("/targets/sub/{HASH_PREFIX}.app.img");
    assert_eq!(srv.get(&nested).header("cache-control"), Some(IMMUTABLE));
    // Missing files, including the next root a client probes for, must not be cached.
    for path in [
        "/metadata/3.root.json",
        "/targets/nope.bin",
        "/",
        "/favicon.ico",
    ] {
        let r = srv.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
    let r = srv.get_with(&hashed, &[("Range", "bytes=99999-")]);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (416, Some("no-store"))
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    use std::io::{BufRead, BufReader, Read, Write};
    let fx = Fixture::new();
    let srv = TestServer::start(&fx.repo());
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for _ in 0..3 {
        write!(s, "GET /targets/plain.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(body, b"hello target");
    }
}

#[test]
fn healthz_says_whether_devices_can_update() {
    let fx = Fixture::new();
    let future = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ts = fx.repo().join("metadata/timestamp.json");
    std::fs::write(&ts, format!(r#"{{"signed":{{"expires":"{future}"}}}}"#)).unwrap();
    let srv = TestServer::start(&fx.repo());
    let r = srv.get("/healthz");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains(&future), "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Expired: 503, saying so (a monitor notices before the devices do).
    std::fs::write(&ts, r#"{"signed":{"expires":"2001-01-01T00:00:00Z"}}"#).unwrap();
    let r = srv.get("/healthz");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("expired at 2001-01-01"),
        "{r:?}"
    );
    // Gone: 503 too.
    std::fs::remove_file(&ts).unwrap();
    assert_eq!(srv.get("/healthz").status, 503);
}
