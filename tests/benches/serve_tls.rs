//! Serving benchmark (issue 12 Performance, issue 13 Serving speed): `ota-server` and nginx side
//! by side on 127.0.0.1, serving the same repository, over TLS with the same certificate and key
//! and over plain HTTP.
//!
//! Run: `cargo bench -p ota-tests --bench serve_tls` (`OTA_BENCH_SECS=N` per measurement,
//! default 5; `OTA_BENCH_REPS=N` repetitions, default 1, the median is printed).
//!
//! Set-up, all with the real binaries: `ota-sign init` makes a signed repository, `ota-ca init`
//! + `ota-ca issue-server` an ECDSA P-256 CA and a server certificate for IP 127.0.0.1. Then:
//!
//! - `ota-server --tls-cert --tls-key` (release build, its multi-thread tokio runtime: one worker
//!   thread per core, so 2 here), no `--client-ca`, so resumption is allowed;
//! - nginx with `worker_processes 2` (`master_process on`), `ssl_protocols TLSv1.2 TLSv1.3`
//!   (nginx 1.22's default has no TLS 1.3, ota-server prefers it), `ssl_session_cache shared:SSL:1m`
//!   and `ssl_session_tickets on`, `keepalive_requests` unlimited in practice (ota-server has no
//!   per-connection request cap).
//!
//! Both log every request (ota-server's info log on stderr, nginx's access log), each to a file.
//! The same two set-ups without TLS flags serve plain HTTP (a second ota-server process and a
//! second nginx master, so each pair differs only in TLS). A 10 MiB target is added to the
//! repository for the throughput rows.
//!
//! Measurements, one server at a time, the same client for both:
//!
//! 1. full handshakes/s: 2 × `openssl s_time -new` in parallel (s_time is single-threaded),
//!    handshake then close, no HTTP;
//! 2. resumed handshakes/s: 2 × `openssl s_time -reuse -www /metadata/timestamp.json` in
//!    parallel. The GET is needed: with TLS 1.3 the session ticket arrives after the handshake
//!    and s_time only reads it when it reads a response. Each connection is checked to have
//!    been resumed (s_time prints `r` for it);
//! 3. `timestamp.json` over HTTPS: `wrk -t2 -c64 --latency`, requests/s and p99 latency,
//!    refusing any non-2xx response or socket error;
//! 4. `timestamp.json` over plain HTTP, the same way (issue 13);
//! 5. the 10 MiB target over plain HTTP: `wrk -t2 -c8`, MiB/s (issue 13).
//!
//! Every server gets a 1 s wrk warm-up first, and the order of the two servers alternates per
//! measurement and repetition, so neither is always measured first.
//!
//! s_time's own "N connections in T real seconds" has a one-second resolution (and its other
//! rate is per *client CPU* second), so the rate is computed from the wall time of each s_time
//! process measured here, summed over the two.
//!
//! Everything shares the 2 cores: client and server compete, equally for both servers. A
//! missing tool (openssl, nginx, wrk) prints SKIPPED with the apt-get line and exits 0.
use ota_tests::cli::{bin, run, SignedRepo};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The goal of issue 12: at least this fraction of nginx's rate on every throughput row.
const GOAL: f64 = 0.9;
/// wrk connections for `timestamp.json`.
const CONNECTIONS: u32 = 64;
/// wrk connections for the large target.
const BIG_CONNECTIONS: u32 = 8;
/// Size of the large target.
const BIG_LEN: usize = 10 * 1024 * 1024;
/// Its URL path.
const BIG_PATH: &str = "/targets/bench-10MiB.bin";
/// Parallel s_time clients (and wrk threads).
const CLIENTS: usize = 2;

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Tools {
    openssl: PathBuf,
    nginx: PathBuf,
    wrk: PathBuf,
}

fn tools() -> Result<Tools, Vec<&'static str>> {
    let (openssl, nginx, wrk) = (find_tool("openssl"), find_tool("nginx"), find_tool("wrk"));
    match (openssl, nginx, wrk) {
        (Some(openssl), Some(nginx), Some(wrk)) => Ok(Tools {
            openssl,
            nginx,
            wrk,
        }),
        (o, n, w) => Err([(o, "openssl"), (n, "nginx"), (w, "wrk")]
            .into_iter()
            .filter(|(p, _)| p.is_none())
            .map(|(_, name)| name)
            .collect()),
    }
}

/// A server under test, stopped on drop.
struct Server {
    name: &'static str,
    port: u16,
    tls: bool,
    child: Child,
    /// nginx runs a master and workers: stop it with SIGQUIT/SIGTERM so the workers go too.
    graceful: bool,
    log: PathBuf,
}

impl Server {
    fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
    fn connect(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.graceful {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificate and key, or `None` for plain HTTP.
type Tls<'a> = Option<(&'a Path, &'a Path)>;

fn start_ota_server(dir: &Path, repo: &Path, tls: Tls) -> Server {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let log = dir.join(format!("ota-server-{scheme}.log"));
    let mut cmd = Command::new(bin("ota-server"));
    cmd.arg("--repo")
        .arg(repo)
        .args(["--listen", "127.0.0.1:0"]);
    if let Some((cert, key)) = tls {
        cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix(&format!("listening on {scheme}://"))
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "ota-server did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    Server {
        name: "ota-server",
        port,
        tls: tls.is_some(),
        child,
        graceful: false,
        log,
    }
}

fn start_nginx(nginx: &Path, dir: &Path, repo: &Path, tls: Tls) -> Server {
    let d = dir.join(if tls.is_some() {
        "nginx-https"
    } else {
        "nginx-http"
    });
    std::fs::create_dir(&d).unwrap();
    // Reserve a free port, release it, and let nginx bind it (tiny race, fine here).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // With a master process running as root, workers would switch to `nobody` and could not
    // read the 0700 temp dirs; keep them as this user.
    let user = if is_root(&d) { "user root;\n" } else { "" };
    let dd = d.display();
    let listen = match tls {
        Some((cert, key)) => format!(
            "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
            cert.display(),
            key.display()
        ),
        None => format!("listen 127.0.0.1:{port};"),
    };
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\n{user}pid {dd}/nginx.pid;\n\
         error_log {dd}/error.log;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  access_log {dd}/access.log;\n  client_body_temp_path {dd}/body;\n\
           proxy_temp_path {dd}/proxy;\n  fastcgi_temp_path {dd}/fastcgi;\n\
           uwsgi_temp_path {dd}/uwsgi;\n  scgi_temp_path {dd}/scgi;\n\
           types {{ application/json json; }}\n  default_type application/octet-stream;\n\
           keepalive_requests 100000000;\n\
           ssl_protocols TLSv1.2 TLSv1.3;\n\
           ssl_session_cache shared:SSL:1m;\n  ssl_session_tickets on;\n\
           server {{\n    {listen}\n    root {};\n  }}\n}}\n",
        repo.display(),
    );
    let conf_path = d.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        name: "nginx",
        port,
        tls: tls.is_some(),
        child,
        graceful: true,
        log: d.join("error.log"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start on port {port}: {}",
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn is_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join(".uid");
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(&probe).unwrap();
    uid == 0
}

/// What a plain `openssl s_client` negotiates with `server`, e.g. "TLSv1.3
/// TLS_AES_256_GCM_SHA384 X25519", to show both servers run the same handshake.
fn negotiated(openssl: &Path, server: &Server) -> String {
    let out = Command::new(openssl)
        .args(["s_client", "-brief", "-connect", &server.connect()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().split(',').next().unwrap_or("").trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    };
    format!(
        "{} {} {} (signature {})",
        field("Protocol version:"),
        field("Ciphersuite:"),
        field("Server Temp Key:"),
        field("Signature type:")
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Handshake {
    New,
    Resumed,
}

/// One s_time process's result.
struct STime {
    connections: u64,
    reused: u64,
    wall: Duration,
    bytes_per_conn: u64,
}

fn parse_s_time(out: &str, wall: Duration) -> STime {
    let connections = out
        .lines()
        .find_map(|l| {
            let (n, rest) = l.split_once(" connections in ")?;
            rest.contains("s;").then(|| n.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no 'N connections in Ts;' line in s_time output:\n{out}"));
    let bytes_per_conn = out
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" real seconds, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0);
    // One character per timed connection after "starting": `r` when the session was resumed.
    let marks = out.split_once("starting").map_or(out, |(_, m)| m);
    let reused = marks
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| "r*t3".contains(c)))
        .map(|l| l.chars().filter(|&c| c == 'r').count() as u64)
        .sum();
    STime {
        connections,
        reused,
        wall,
        bytes_per_conn,
    }
}

/// Handshakes per second of `CLIENTS` parallel s_time processes, and how many were made.
fn s_time(openssl: &Path, server: &Server, kind: Handshake, secs: u64) -> (f64, u64) {
    let mut args = vec![
        "s_time".to_string(),
        "-connect".into(),
        server.connect(),
        "-time".into(),
        secs.to_string(),
    ];
    match kind {
        Handshake::New => args.push("-new".into()),
        Handshake::Resumed => {
            args.extend(["-reuse", "-www", "/metadata/timestamp.json"].map(String::from))
        }
    }
    // Output to files, not pipes: s_time prints a character per connection, and an undrained
    // pipe would stall the second process while the first is being waited for.
    let out_dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut running: Vec<(Child, PathBuf, PathBuf, Option<Duration>)> = (0..CLIENTS)
        .map(|i| {
            let (out, err) = (
                out_dir.path().join(format!("{i}.out")),
                out_dir.path().join(format!("{i}.err")),
            );
            let child = Command::new(openssl)
                .args(&args)
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap();
            (child, out, err, None)
        })
        .collect();
    // Each process's own wall time, to the millisecond.
    while running.iter().any(|r| r.3.is_none()) {
        for r in running.iter_mut().filter(|r| r.3.is_none()) {
            if let Some(status) = r.0.try_wait().unwrap() {
                r.3 = Some(start.elapsed());
                let text = std::fs::read_to_string(&r.1).unwrap_or_default();
                assert!(
                    status.success(),
                    "s_time against {} failed: {text}\n{}",
                    server.name,
                    std::fs::read_to_string(&r.2).unwrap_or_default()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let results: Vec<STime> = running
        .iter()
        .map(|(_, out, _, wall)| {
            parse_s_time(&std::fs::read_to_string(out).unwrap(), wall.unwrap())
        })
        .collect();
    for r in &results {
        assert!(
            r.connections > 0,
            "s_time made no connection to {}",
            server.name
        );
        match kind {
            Handshake::New => {
                assert_eq!(r.reused, 0, "{}: a -new handshake was resumed", server.name)
            }
            Handshake::Resumed => {
                assert!(
                    r.reused == r.connections,
                    "{}: only {} of {} -reuse connections were resumed",
                    server.name,
                    r.reused,
                    r.connections
                );
                assert!(
                    r.bytes_per_conn > 0,
                    "{}: s_time -www read no response",
                    server.name
                );
            }
        }
    }
    // Each process ran until its own wall clock passed `secs`: its rate over its own run.
    let rate = results
        .iter()
        .map(|r| r.connections as f64 / r.wall.as_secs_f64())
        .sum();
    (rate, results.iter().map(|r| r.connections).sum())
}

struct WrkRun {
    rps: f64,
    p99: Duration,
    requests: u64,
    /// Response bytes per second (wrk's Transfer/sec).
    bytes_per_sec: f64,
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// wrk's sizes: "1.23GB", "512.00KB".
fn parse_size(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(num.parse::<f64>().ok()? * scale)
}

fn wrk(wrk: &Path, server: &Server, path: &str, connections: u32, secs: u64) -> WrkRun {
    let out = Command::new(wrk)
        .arg(format!("-t{CLIENTS}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg(server.url(path))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk against {} failed: {text}{}",
        server.name,
        String::from_utf8_lossy(&out.stderr)
    );
    for bad in ["Non-2xx or 3xx responses", "Socket errors"] {
        assert!(
            !text.contains(bad),
            "wrk against {}: {bad}\n{text}",
            server.name
        );
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%").and_then(parse_duration))
        .unwrap_or_else(|| panic!("no 99% latency in wrk output:\n{text}"));
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no 'N requests in' in wrk output:\n{text}"));
    let bytes_per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Transfer/sec:").and_then(parse_size))
        .unwrap_or_else(|| panic!("no Transfer/sec in wrk output:\n{text}"));
    WrkRun {
        rps,
        p99,
        requests,
        bytes_per_sec,
    }
}

/// CPU time (user + system) used so far by process `root` and its children (nginx's workers),
/// from /proc; `None` where /proc is not available.
fn cpu_time(root: u32) -> Option<Duration> {
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(entry) = entry else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ... utime stime ..."; comm may hold spaces and parentheses.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let pid: u32 = head.split_whitespace().next()?.parse().ok()?;
        let f: Vec<&str> = tail.split_whitespace().collect();
        let ppid: u32 = f.get(1)?.parse().ok()?;
        if pid == root || ppid == root {
            ticks += f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        }
    }
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Runs `work` (returning its rate and how many operations it made) and returns the rate and
/// the server's CPU microseconds per operation (NaN without /proc).
fn with_cpu(server: &Server, work: impl FnOnce() -> (f64, u64)) -> (f64, f64) {
    let before = cpu_time(server.child.id());
    let (rate, ops) = work();
    let after = cpu_time(server.child.id());
    let per_op = match (before, after) {
        (Some(b), Some(a)) if ops > 0 => (a - b).as_secs_f64() * 1e6 / ops as f64,
        _ => f64::NAN,
    };
    (rate, per_op)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn main() {
    let tools = match tools() {
        Ok(t) => t,
        Err(missing) => {
            println!(
                "SKIPPED: serve_tls bench needs {} (apt-get install -y wrk nginx openssl)",
                missing.join(", ")
            );
            return;
        }
    };
    let secs = env_number("OTA_BENCH_SECS", 5);
    let reps = env_number("OTA_BENCH_REPS", 1) as usize;

    let signed = SignedRepo::init();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let r = run(
        "ota-ca",
        &[
            "init".as_ref(),
            "--dir".as_ref(),
            ca.as_os_str(),
            "--name".as_ref(),
            "Bench CA".as_ref(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(
        "ota-ca",
        &[
            "issue-server".as_ref(),
            "--dir".as_ref(),
            ca.as_os_str(),
            "--name".as_ref(),
            "localhost".as_ref(),
            "--san".as_ref(),
            "IP:127.0.0.1".as_ref(),
            "--key-type".as_ref(),
            "ecdsa-p256".as_ref(),
            "--out-cert".as_ref(),
            cert.as_os_str(),
            "--out-key".as_ref(),
            key.as_os_str(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");

    // Random bytes: nothing on the way can shrink them.
    let mut big = vec![0u8; BIG_LEN];
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(
        signed
            .repo
            .join("targets")
            .join(BIG_PATH.trim_start_matches("/targets/")),
        big,
    )
    .unwrap();

    let tls = Some((cert.as_path(), key.as_path()));
    let ours = start_ota_server(dir.path(), &signed.repo, tls);
    let peer = start_nginx(&tools.nginx, dir.path(), &signed.repo, tls);
    let ours_plain = start_ota_server(dir.path(), &signed.repo, None);
    let peer_plain = start_nginx(&tools.nginx, dir.path(), &signed.repo, None);
    let servers = [&ours, &peer];
    let plain = [&ours_plain, &peer_plain];

    println!(
        "serve_tls: ota-server vs nginx on 127.0.0.1, same ECDSA P-256 certificate, {} cores shared with the clients, {secs} s per measurement{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if reps > 1 { format!(", median of {reps}") } else { String::new() }
    );
    println!("ota-server: release build, multi-thread tokio runtime (one worker per core)");
    println!("nginx:      worker_processes 2, ssl_protocols TLSv1.2 TLSv1.3, ssl_session_cache shared:SSL:1m, ssl_session_tickets on");
    for s in servers {
        println!(
            "{:<11} negotiates {}",
            format!("{}:", s.name),
            negotiated(&tools.openssl, s)
        );
    }
    for s in servers.iter().chain(&plain) {
        // Warm-up: first connections, page cache, ota-server's file cache, nginx's workers.
        wrk(&tools.wrk, s, "/metadata/timestamp.json", CONNECTIONS, 1);
        wrk(&tools.wrk, s, BIG_PATH, BIG_CONNECTIONS, 1);
    }

    let mut m = Measurements::default();
    let mut turn = 0;
    for _ in 0..reps {
        // Alternate which server goes first, so drift in the machine's load does not always
        // favour the same one.
        let mut order = || {
            turn += 1;
            if turn % 2 == 0 {
                [0, 1]
            } else {
                [1, 0]
            }
        };
        for i in order() {
            let (rate, cpu) = with_cpu(servers[i], || {
                s_time(&tools.openssl, servers[i], Handshake::New, secs)
            });
            m.new.push(i, rate, cpu);
        }
        for i in order() {
            let (rate, cpu) = with_cpu(servers[i], || {
                s_time(&tools.openssl, servers[i], Handshake::Resumed, secs)
            });
            m.resumed.push(i, rate, cpu);
        }
        for i in order() {
            let mut latency = Duration::ZERO;
            let (rate, cpu) = with_cpu(servers[i], || {
                let w = wrk(
                    &tools.wrk,
                    servers[i],
                    "/metadata/timestamp.json",
                    CONNECTIONS,
                    secs,
                );
                latency = w.p99;
                (w.rps, w.requests)
            });
            m.tls_rps.push(i, rate, cpu);
            m.p99[i].push(latency.as_secs_f64() * 1e3);
        }
        for i in order() {
            let (rate, cpu) = with_cpu(plain[i], || {
                let w = wrk(
                    &tools.wrk,
                    plain[i],
                    "/metadata/timestamp.json",
                    CONNECTIONS,
                    secs,
                );
                (w.rps, w.requests)
            });
            m.plain_rps.push(i, rate, cpu);
        }
        for i in order() {
            let (rate, cpu) = with_cpu(plain[i], || {
                let w = wrk(&tools.wrk, plain[i], BIG_PATH, BIG_CONNECTIONS, secs);
                // Per MiB rather than per request, so the CPU row reads like the rate.
                let mib = w.bytes_per_sec / (1024.0 * 1024.0);
                (mib, (mib * secs as f64) as u64)
            });
            m.big.push(i, rate, cpu);
        }
    }
    for i in 0..2 {
        m.peak_mib[i].push(peak_resident_mib(servers[i].child.id()));
        m.peak_mib_plain[i].push(peak_resident_mib(plain[i].child.id()));
    }
    print!("{}", m.table());
}

/// Peak resident memory (VmHWM) of process `root` and its children (nginx's workers), in MiB,
/// over the whole run; NaN without /proc.
fn peak_resident_mib(root: u32) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    let mut kib = 0u64;
    for entry in dir.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().trim_end_matches(" kB").trim().to_string())
        };
        let pid = field("Pid:").and_then(|v| v.parse::<u32>().ok());
        let ppid = field("PPid:").and_then(|v| v.parse::<u32>().ok());
        if pid == Some(root) || ppid == Some(root) {
            kib += field("VmHWM:").and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    kib as f64 / 1024.0
}

/// Samples of one measurement: `[ota-server, nginx]`.
#[derive(Default)]
struct Series {
    rate: [Vec<f64>; 2],
    cpu: [Vec<f64>; 2],
}

impl Series {
    fn push(&mut self, server: usize, rate: f64, cpu: f64) {
        self.rate[server].push(rate);
        self.cpu[server].push(cpu);
    }
}

#[derive(Default)]
struct Measurements {
    new: Series,
    resumed: Series,
    tls_rps: Series,
    p99: [Vec<f64>; 2],
    plain_rps: Series,
    big: Series,
    /// Peak resident memory after all the load, MiB: HTTPS servers, plain servers.
    peak_mib: [Vec<f64>; 2],
    peak_mib_plain: [Vec<f64>; 2],
}

impl Measurements {
    fn table(&self) -> String {
        let mut table = String::new();
        writeln!(
            table,
            "\n{:<50} {:>11} {:>11} {:>7}  goal {GOAL}x",
            "metric", "ota-server", "nginx", "ratio"
        )
        .unwrap();
        let mut all_met = true;
        let mut row =
            |name: &str, samples: &[Vec<f64>; 2], higher_better: bool, decimals: usize| {
                let (a, b) = (median(samples[0].clone()), median(samples[1].clone()));
                let ratio = a / b;
                let verdict = if higher_better {
                    let met = ratio >= GOAL;
                    all_met &= met;
                    if met {
                        "met"
                    } else {
                        "NOT MET"
                    }
                } else {
                    "(lower is better)"
                };
                writeln!(
                    table,
                    "{name:<50} {a:>11.decimals$} {b:>11.decimals$} {ratio:>7.3}  {verdict}"
                )
                .unwrap();
            };
        let c = CONNECTIONS;
        row(
            "TLS handshakes/s, new (2 x s_time -new)",
            &self.new.rate,
            true,
            0,
        );
        row(
            "TLS handshakes/s, resumed (2 x s_time -reuse)*",
            &self.resumed.rate,
            true,
            0,
        );
        row(
            &format!("HTTPS timestamp.json req/s (wrk -t2 -c{c})"),
            &self.tls_rps.rate,
            true,
            0,
        );
        row(
            &format!("HTTP timestamp.json req/s (wrk -t2 -c{c})"),
            &self.plain_rps.rate,
            true,
            0,
        );
        row(
            &format!("HTTP 10 MiB target MiB/s (wrk -t2 -c{BIG_CONNECTIONS})"),
            &self.big.rate,
            true,
            0,
        );
        row("HTTPS timestamp.json p99 latency, ms", &self.p99, false, 2);
        row("server CPU per new handshake, µs", &self.new.cpu, false, 0);
        row(
            "server CPU per resumed handshake + GET, µs",
            &self.resumed.cpu,
            false,
            0,
        );
        row(
            "server CPU per HTTPS timestamp.json request, µs",
            &self.tls_rps.cpu,
            false,
            1,
        );
        row(
            "server CPU per HTTP timestamp.json request, µs",
            &self.plain_rps.cpu,
            false,
            1,
        );
        row(
            "server CPU per MiB of the 10 MiB target, µs",
            &self.big.cpu,
            false,
            0,
        );
        row(
            "peak resident memory under this load (HTTPS), MiB",
            &self.peak_mib,
            false,
            1,
        );
        row(
            "peak resident memory under this load (HTTP), MiB",
            &self.peak_mib_plain,
            false,
            1,
        );
        writeln!(
            table,
            "* resumed: each connection also GETs /metadata/timestamp.json (s_time -www), so the TLS 1.3 ticket is read; every connection checked resumed"
        )
        .unwrap();
        writeln!(
            table,
            "server CPU: user + system time of the server's processes (nginx: master + workers) during the measurement, per operation"
        )
        .unwrap();
        writeln!(
            table,
            "goal (>= {GOAL}x nginx on every rate): {}",
            if all_met { "met" } else { "NOT met" }
        )
        .unwrap();
        table
    }
}
