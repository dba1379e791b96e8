//! The `ota-server` binary: startup line, SIGTERM → exit 0, startup errors → documented codes.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{request, Fixture};

const BIN: &str = env!("CARGO_BIN_EXE_ota-server");

/// Starts the binary and returns it with the address parsed from its startup line.
fn spawn(args: &[&str]) -> (Child, String) {
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
    (child, line.trim_end().to_owned())
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits up to 10 s for the child to exit.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ota-server did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_then_exits_zero_on_sigterm() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let (mut child, line) = spawn(&["--repo", repo.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let addr: SocketAddr = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);
    let r = request(addr, "GET", "/metadata/1.root.json", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"root\":1}"[..]));

    sigterm(&child);
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The access log line for the request went to stderr.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("/metadata/1.root.json") && stderr.contains("200"),
        "{stderr}"
    );
}

#[test]
fn json_startup_line_and_json_logs() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let (mut child, line) = spawn(&[
        "--repo",
        repo.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--log-format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(v["listening"], format!("http://{addr}"));
    assert_eq!(request(addr, "GET", "/targets/nope", &[]).status, 404);
    sigterm(&child);
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let access = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["path"] == "/targets/nope")
        .unwrap_or_else(|| panic!("no JSON access log line in {stderr}"));
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 404);
    assert!(access["bytes"].is_u64() && access["duration_us"].is_u64());
}

fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn missing_repo_exits_2_with_one_line() {
    let fx = Fixture::new();
    let missing = fx.dir.path().join("does-not-exist");
    let (code, stderr) = run_to_end(&[
        "--repo",
        missing.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("does not exist")
            && stderr.contains("hint:")
    );
}

#[test]
fn repo_without_metadata_exits_2() {
    let fx = Fixture::new();
    // The fixture's parent directory holds repo/ but no metadata/ itself.
    let (code, stderr) = run_to_end(&[
        "--repo",
        fx.dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no metadata/"), "{stderr}");
}

#[test]
fn address_in_use_exits_3() {
    let fx = Fixture::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_end(&["--repo", fx.repo().to_str().unwrap(), "--listen", &addr]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn help_documents_example_and_exit_codes() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Example:",
        "ota-server --repo",
        "Exit codes:",
        "  1  ",
        "  3  ",
        "101",
        "--max-connections <N>",
        "--header-timeout <SECS>",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn ctrl_c_also_exits_zero() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let (mut child, line) = spawn(&["--repo", repo.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}
