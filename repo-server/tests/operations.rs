//! Operations (issue 13): Prometheus `/metrics`, the TOML configuration file with command-line
//! overrides, and start-up refusals of unusable report databases.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{request, Fixture};

const BIN: &str = env!("CARGO_BIN_EXE_ota-server");

/// A started server, killed on drop.
struct Running(Child, SocketAddr);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the binary; `Ok` with its address, or `Err((exit code, stderr))` when it stops.
fn start(args: &[&str]) -> Result<Running, (i32, String)> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if let Some(addr) = line.trim().strip_prefix("listening on http://") {
        return Ok(Running(child, addr.parse().unwrap()));
    }
    let out = child.wait_with_output().unwrap();
    Err((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Metadata whose `signed.version` and `signed.expires` the metrics read.
fn metadata(repo: &Path, name: &str, version: u64, expires: &str, meta: serde_json::Value) {
    let doc = serde_json::json!({"signed": {"version": version, "expires": expires, "meta": meta}, "signatures": []});
    std::fs::write(repo.join("metadata").join(name), doc.to_string()).unwrap();
}

#[test]
fn metrics_count_requests_bytes_errors_and_show_role_expiry() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let soon = (chrono::Utc::now() + chrono::Duration::hours(6)).to_rfc3339();
    metadata(
        &repo,
        "root.json",
        2,
        "2099-01-01T00:00:00Z",
        serde_json::json!({}),
    );
    metadata(
        &repo,
        "timestamp.json",
        7,
        &soon,
        serde_json::json!({"snapshot.json": {"version": 3}}),
    );
    metadata(
        &repo,
        "3.snapshot.json",
        3,
        "2098-01-01T00:00:00Z",
        serde_json::json!({"targets.json": {"version": 5}}),
    );
    metadata(
        &repo,
        "5.targets.json",
        5,
        "2097-01-01T00:00:00Z",
        serde_json::json!({}),
    );
    let server = start(&["--repo", repo.to_str().unwrap(), "--listen", "127.0.0.1:0"]).unwrap();
    let addr = server.1;
    for _ in 0..3 {
        assert_eq!(
            request(addr, "GET", "/metadata/timestamp.json", &[]).status,
            200
        );
    }
    assert_eq!(
        request(addr, "GET", "/targets/nothing-here", &[]).status,
        404
    );
    assert_eq!(request(addr, "DELETE", "/elsewhere", &[]).status, 405);
    let resp = request(addr, "GET", "/metrics", &[]);
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let text = String::from_utf8(resp.body).unwrap();
    assert!(
        text.contains("ota_requests_total{route=\"metadata\",status=\"200\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("ota_errors_total{route=\"targets\",status=\"404\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ota_errors_total{route=\"other\",status=\"405\"} 1\n"),
        "{text}"
    );
    let ts_len = std::fs::metadata(repo.join("metadata/timestamp.json"))
        .unwrap()
        .len();
    assert!(
        text.contains(&format!(
            "ota_response_bytes_total{{route=\"metadata\"}} {}\n",
            3 * ts_len
        )),
        "{text}"
    );
    let gauge = |role: &str| -> i64 {
        let key = format!("ota_role_expires_in_seconds{{role=\"{role}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or_else(|| panic!("{key} missing: {text}"));
        line[key.len()..].parse().unwrap()
    };
    let left = gauge("timestamp");
    assert!((6 * 3600 - 120..=6 * 3600).contains(&left), "{left}");
    assert!(gauge("targets") > gauge("timestamp"));
    assert!(
        text.contains("ota_role_version{role=\"snapshot\"} 3\n"),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    // No reports without a device CA: no report counters either.
    assert!(!text.contains("ota_reports_total"), "{text}");
    let resp = request(addr, "POST", "/api/v1/reports", &[("Content-Length", "0")]);
    assert_eq!(resp.status, 404);
}

#[test]
fn a_configuration_file_sets_everything_and_flags_win() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    // A port someone else holds: the file's listen address fails, the flag's works.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let conf = dir.join("ota-server.toml");
    std::fs::write(
        &conf,
        format!("# relative to this file\nrepo = \"repo\"\nlisten = \"127.0.0.1:{port}\"\nheader-timeout = 5\n"),
    )
    .unwrap();
    let (code, stderr) = start(&["--config", conf.to_str().unwrap()]).err().unwrap();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    let server = start(&[
        "--config",
        conf.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert_eq!(
        request(server.1, "GET", "/targets/plain.txt", &[]).status,
        200
    );
    drop(taken);
}

#[test]
fn configuration_mistakes_are_refused_with_the_file_and_key_named() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    let conf = dir.join("bad.toml");
    for (text, needle) in [
        (
            "repo = \"repo\"\ntls_cert = \"x.pem\"\n",
            "unknown field `tls_cert`",
        ),
        (
            "repo = \"repo\"\nmax-connections = \"many\"\n",
            "max-connections",
        ),
        ("repo = \"repo\"\nlisten = [1, 2\n", "line 2"),
        (
            "repo = \"repo\"\nlog-format = \"xml\"\n",
            "log-format \"xml\"",
        ),
        ("listen = \"127.0.0.1:0\"\n", "no repository"),
        (
            "repo = \"repo\"\npublish-token-file = \"token\"\n",
            "--publish-token-file needs --online-keys",
        ),
        (
            "repo = \"repo\"\nmax-upload-size = \"lots\"\n",
            "max-upload-size \"lots\"",
        ),
    ] {
        std::fs::write(&conf, text).unwrap();
        let (code, stderr) = start(&["--config", conf.to_str().unwrap()]).err().unwrap();
        assert_eq!(code, 2, "{text}: {stderr}");
        assert!(stderr.contains(needle), "{text}: {stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }
    let (code, stderr) = start(&["--config", dir.join("missing.toml").to_str().unwrap()])
        .err()
        .unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn unusable_report_databases_stop_the_start() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    let repo = fx.repo();
    let ca = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, params.self_signed(&ca).unwrap().pem()).unwrap();
    let base = [
        "--repo",
        repo.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--report-ca",
        ca_pem.to_str().unwrap(),
    ];

    // Nothing listens on port 1: refused at once, the password never shown.
    let started = Instant::now();
    let mut args = base.to_vec();
    args.extend(["--database", "postgres://ota:s3cret@127.0.0.1:1/fleet"]);
    let (code, stderr) = start(&args).err().unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unreachable") && !stderr.contains("s3cret"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // A file that is not a database is left alone.
    let corrupt = dir.join("fleet.sqlite");
    std::fs::write(&corrupt, vec![0x5a; 8192]).unwrap();
    let mut args = base.to_vec();
    args.extend(["--database", corrupt.to_str().unwrap()]);
    let (code, stderr) = start(&args).err().unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a database"), "{stderr}");
    assert_eq!(std::fs::read(&corrupt).unwrap(), vec![0x5a; 8192]);

    // --database without a device CA: reports could not be verified.
    let (code, stderr) = start(&[
        "--repo",
        repo.to_str().unwrap(),
        "--database",
        corrupt.to_str().unwrap(),
    ])
    .err()
    .unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--database needs --client-ca or --report-ca"),
        "{stderr}"
    );

    // The default store is a file beside the repository, created on start.
    let server = start(&base).unwrap();
    assert!(dir.join("repo.fleet.sqlite").is_file());
    let resp = common::send_raw(
        server.1,
        format!(
            "POST /api/v1/reports HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
            server.1
        )
        .as_bytes(),
    );
    assert_eq!(resp.status, 400, "an empty body is not a report");
    assert_eq!(request(server.1, "GET", "/api/v1/reports", &[]).status, 405);
}
