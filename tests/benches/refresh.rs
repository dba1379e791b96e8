//! Refresh benchmark (issue 15): repositories with many targets spread over delegated roles,
//! built in code and served by a real `ota-server` on 127.0.0.1, refreshed from a cold cache
//! (fresh device) and a warm one (a new `Updater` over the same metadata directory), with
//! python-tuf's ngclient as the peer when `OTA_PYTHON` is set.
//!
//! Each device run is its own process, ours as python-tuf's, so its peak resident memory
//! (VmHWM / ru_maxrss) is the refresh's alone; the time is measured inside the process, after
//! start-up and imports. In-process runs check the requests made and `all_targets`.
//!
//! Run: `cargo bench -p ota-tests --bench refresh` (`OTA_BENCH_REPS=N` repetitions, each time
//! printed is the median and each memory figure the largest; `OTA_BENCH_SERIES=10000x50,...`
//! other workloads). The bench panics if a refresh makes other requests than expected or
//! resolves the wrong number of targets, so its numbers always describe a correct run.
mod common;

use common::{bootstrap, counting_updater_with, delegated_repo, one_target_per_role, RequestLog};
use ota_client::{Limits, Updater, UpdaterConfig};
use ota_tests::fixture::RepoFixture;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// (targets, roles) of the scaling series; the second one is the headline workload.
const SERIES: [(usize, usize); 5] = [
    (1_000, 10),
    (10_000, 50),
    (40_000, 200),
    (100_000, 500),
    (1_000_000, 1),
];
const HEADLINE: (usize, usize) = (10_000, 50);
/// Set in a child process: `METADATA_URL TARGETS_URL METADATA_DIR LOOKUPS_FILE CLIENT`, one
/// per line; CLIENT is `ota` or `tough`.
const CHILD: &str = "OTA_REFRESH_BENCH_CHILD";

/// One process's run: refresh time and peak memory.
#[derive(Clone, Copy)]
struct Run {
    secs: f64,
    peak_kib: u64,
}

/// Cold and warm runs of one client on one workload (median time, largest peak).
struct Client {
    cold: Run,
    warm: Run,
}

struct Measured {
    targets: usize,
    roles: usize,
    /// Bytes of metadata a cold refresh fetched (the cached files).
    fetched: u64,
    ours: Client,
    python: Option<Client>,
    tough: Option<Client>,
    cold_all: Duration,
    warm_all: Duration,
}

fn summarise(runs: &[Run]) -> Run {
    let mut secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    secs.sort_by(f64::total_cmp);
    Run {
        secs: secs[secs.len() / 2],
        peak_kib: runs.iter().map(|r| r.peak_kib).max().unwrap_or(0),
    }
}

/// Limits raised for the workloads (a million-target role, 500 roles walked by `all_targets`),
/// as python-tuf's are raised in its script.
fn limits() -> Limits {
    Limits {
        targets: 1 << 32,
        max_delegations: 100_000,
        ..Limits::default()
    }
}

/// The child process: refresh, look every listed target up, report time and peak memory.
fn child(args: &str) {
    let parts: Vec<&str> = args.split('\n').collect();
    let [metadata_url, targets_url, dir, lookups, client] = parts[..] else {
        panic!("{CHILD}: five lines expected");
    };
    let lookups: Vec<String> = std::fs::read_to_string(lookups)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let start = Instant::now();
    match client {
        "ota" => {
            let mut config = UpdaterConfig::http(dir, metadata_url, targets_url).unwrap();
            config.limits = limits();
            let mut up = Updater::new(config).unwrap();
            up.refresh().unwrap();
            for t in &lookups {
                assert!(up.get_target_info(t).unwrap().is_some(), "{t} not found");
            }
        }
        "tough" => tough_lookups(metadata_url, targets_url, Path::new(dir), &lookups),
        other => panic!("{CHILD}: unknown client {other}"),
    }
    let secs = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    println!(
        "{}",
        serde_json::json!({ "secs": secs, "peak_kib": peak_kib })
    );
}

/// tough (awslabs) on the same workload: `RepositoryLoader::load` (which loads every
/// delegated role) with its datastore in `dir`, then `find_target` for each path. tough keeps
/// only timestamp, snapshot and targets in its datastore, so a warm run downloads the
/// delegated roles again.
fn tough_lookups(metadata_url: &str, targets_url: &str, dir: &Path, lookups: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let root = std::fs::read(dir.join("tough-root.json")).unwrap();
        let transport = tough::HttpTransportBuilder::new()
            .initial_backoff(Duration::from_millis(0))
            .tries(1)
            .build();
        let repo = tough::RepositoryLoader::new(
            &root,
            url::Url::parse(metadata_url).unwrap(),
            url::Url::parse(targets_url).unwrap(),
        )
        .transport(transport)
        .datastore(dir.join("tough"))
        .limits(tough::Limits {
            max_targets_size: 1 << 32,
            ..tough::Limits::default()
        })
        .load()
        .await
        .unwrap();
        for t in lookups {
            let name = tough::TargetName::new(t.as_str()).unwrap();
            assert!(
                repo.targets().signed.find_target(&name, false).is_ok(),
                "{t}"
            );
        }
    });
}

fn parse_run(stdout: &[u8]) -> Run {
    let v: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    Run {
        secs: v["secs"].as_f64().unwrap(),
        peak_kib: v["peak_kib"].as_u64().unwrap(),
    }
}

fn in_child(client: &str, server: &TestServer, dir: &Path, lookups: &Path) -> Run {
    let args = [
        server.metadata_url(),
        server.targets_url(),
        dir.display().to_string(),
        lookups.display().to_string(),
        client.to_string(),
    ]
    .join("\n");
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_run(&out.stdout)
}

/// python-tuf's cold (fresh directory) or warm run in `work`.
fn python_run(
    python: &std::ffi::OsStr,
    fx: &RepoFixture,
    server: &TestServer,
    work: &Path,
    lookups: &Path,
    mode: &str,
) -> Run {
    let root = work.join("root.json");
    std::fs::write(&root, fx.root_bytes()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/ngclient_refresh.py");
    let out = Command::new(python)
        .arg(script)
        .arg(server.metadata_url())
        .arg(server.targets_url())
        .arg(&root)
        .arg(lookups)
        .arg(work)
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_run(&out.stdout)
}

/// One in-process device run: refresh, then `work`; returns the time and the requests made.
fn timed(
    dir: &Path,
    server: &TestServer,
    work: &mut dyn FnMut(&mut Updater),
) -> (Duration, Vec<String>) {
    let log = RequestLog::default();
    let start = Instant::now();
    let mut up = counting_updater_with(dir, server, &log, limits());
    up.refresh().unwrap();
    work(&mut up);
    (start.elapsed(), log.take())
}

/// A fresh metadata directory for one device: under `OTA_BENCH_DEVICE_DIR` when set (to run
/// the device on another filesystem, e.g. tmpfs, and see what file creation costs), else in
/// the system's temp directory.
fn device_dir() -> tempfile::TempDir {
    match std::env::var_os("OTA_BENCH_DEVICE_DIR") {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn measure(targets: usize, roles: usize, reps: usize) -> Measured {
    let fx = delegated_repo(targets, roles);
    let server = TestServer::start(fx.path());
    let work = tempfile::tempdir().unwrap();
    let lookups = work.path().join("lookups.txt");
    std::fs::write(&lookups, one_target_per_role(roles).join("\n")).unwrap();

    // Separate processes: time and peak memory, ours and python-tuf's.
    let python = std::env::var_os("OTA_PYTHON");
    let (mut ours_cold, mut ours_warm, mut py_cold, mut py_warm) = (vec![], vec![], vec![], vec![]);
    let (mut tough_cold, mut tough_warm) = (vec![], vec![]);
    // tough holds every role parsed; past 100k targets it is left out (OTA_BENCH_TOUGH=1 forces).
    let with_tough = targets <= 100_000 || std::env::var_os("OTA_BENCH_TOUGH").is_some();
    let mut fetched = 0;
    for _ in 0..reps {
        let device = device_dir();
        bootstrap(device.path(), &fx);
        ours_cold.push(in_child("ota", &server, device.path(), &lookups));
        fetched = dir_bytes(device.path());
        ours_warm.push(in_child("ota", &server, device.path(), &lookups));
        if with_tough {
            let t = device_dir();
            std::fs::write(t.path().join("tough-root.json"), fx.root_bytes()).unwrap();
            std::fs::create_dir(t.path().join("tough")).unwrap();
            tough_cold.push(in_child("tough", &server, t.path(), &lookups));
            tough_warm.push(in_child("tough", &server, t.path(), &lookups));
        }
        if let Some(python) = &python {
            let py_device = device_dir();
            let py_dir = py_device.path();
            py_cold.push(python_run(python, &fx, &server, py_dir, &lookups, "cold"));
            py_warm.push(python_run(python, &fx, &server, py_dir, &lookups, "warm"));
        }
    }

    // In process: the requests made, and every target resolved.
    let expected_cold = roles + 4; // 2.root.json probe, timestamp, snapshot, targets, each role
    let expected_warm = vec!["2.root.json".to_string(), "timestamp.json".to_string()];
    let mut all = |up: &mut Updater| assert_eq!(up.all_targets().unwrap().len(), targets);
    let (mut cold_all, mut warm_all) = (vec![], vec![]);
    for _ in 0..reps {
        let device = device_dir();
        bootstrap(device.path(), &fx);
        let (t, req) = timed(device.path(), &server, &mut all);
        assert_eq!(req.len(), expected_cold, "cold requests: {req:?}");
        cold_all.push(t);
        let (t, req) = timed(device.path(), &server, &mut all);
        assert_eq!(req, expected_warm, "warm refresh re-downloaded metadata");
        warm_all.push(t);
    }
    cold_all.sort();
    warm_all.sort();
    Measured {
        targets,
        roles,
        fetched,
        ours: Client {
            cold: summarise(&ours_cold),
            warm: summarise(&ours_warm),
        },
        python: python.map(|_| Client {
            cold: summarise(&py_cold),
            warm: summarise(&py_warm),
        }),
        tough: with_tough.then(|| Client {
            cold: summarise(&tough_cold),
            warm: summarise(&tough_warm),
        }),
        cold_all: cold_all[reps / 2],
        warm_all: warm_all[reps / 2],
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_headline(m: &Measured, reps: usize) {
    println!(
        "refresh: {} targets over {} delegated roles, ota-server on 127.0.0.1, median of {reps}, \
         one process per run",
        m.targets, m.roles
    );
    println!(
        "work: refresh + get_target_info of one target per role ({} lookups)",
        m.roles
    );
    println!(
        "{:<11} {:<5} {:>9} {:>9} {:>13} {:>13}",
        "client", "cache", "ms", "peak MiB", "python-tuf/x", "memory ratio"
    );
    for (cache, ours, py) in [
        ("cold", m.ours.cold, m.python.as_ref().map(|p| p.cold)),
        ("warm", m.ours.warm, m.python.as_ref().map(|p| p.warm)),
    ] {
        let (speed, memory) = py.map_or(("-".into(), "-".into()), |p| {
            (
                format!("{:.1}x", p.secs / ours.secs),
                format!("{:.2}", ours.peak_kib as f64 / p.peak_kib as f64),
            )
        });
        println!(
            "{:<11} {cache:<5} {:>9.1} {:>9.1} {speed:>13} {memory:>13}",
            "ota-client",
            ours.secs * 1e3,
            mib(ours.peak_kib)
        );
        if let Some(p) = py {
            println!(
                "{:<11} {cache:<5} {:>9.1} {:>9.1}",
                "python-tuf",
                p.secs * 1e3,
                mib(p.peak_kib)
            );
        }
        let tough = m
            .tough
            .as_ref()
            .map(|t| if cache == "cold" { t.cold } else { t.warm });
        if let Some(t) = tough {
            println!(
                "{:<11} {cache:<5} {:>9.1} {:>9.1}    (ours {:.1}x faster)",
                "tough",
                t.secs * 1e3,
                mib(t.peak_kib),
                t.secs / ours.secs
            );
        }
    }
    if m.python.is_none() {
        println!("python-tuf  skipped: set OTA_PYTHON to a python with `tuf` installed");
    }
    println!(
        "in process: refresh + all_targets ({}) cold {:.1} ms, warm {:.1} ms",
        m.targets,
        m.cold_all.as_secs_f64() * 1e3,
        m.warm_all.as_secs_f64() * 1e3
    );
}

fn print_series(series: &[Measured]) {
    println!();
    println!(
        "scaling: one process per run, refresh + one lookup per role; µs/KiB = cold time per KiB \
         of metadata fetched (flat = linear in the bytes fetched)"
    );
    println!(
        "{:>8} {:>5} {:>9} | {:>8} {:>7} {:>8} {:>7} {:>7} | {:>9} {:>7} {:>9} {:>7} | {:>6} {:>6} | {:>9} {:>7} {:>9}",
        "targets",
        "roles",
        "KiB",
        "cold ms",
        "MiB",
        "warm ms",
        "MiB",
        "µs/KiB",
        "py cold",
        "MiB",
        "py warm",
        "MiB",
        "cold x",
        "warm x",
        "tough cold",
        "MiB",
        "tough warm",
    );
    for m in series {
        let kib = m.fetched as f64 / 1024.0;
        let (o, p) = (&m.ours, m.python.as_ref());
        let py = |f: fn(&Client) -> Run, mem: bool| {
            p.map_or("-".to_string(), |p| {
                let r = f(p);
                if mem {
                    format!("{:.1}", mib(r.peak_kib))
                } else {
                    format!("{:.1}", r.secs * 1e3)
                }
            })
        };
        let ratio = |f: fn(&Client) -> Run| {
            p.map_or("-".to_string(), |p| format!("{:.1}", f(p).secs / f(o).secs))
        };
        let tough = |f: fn(&Client) -> Run, mem: bool| {
            m.tough.as_ref().map_or("-".to_string(), |t| {
                let r = f(t);
                if mem {
                    format!("{:.1}", mib(r.peak_kib))
                } else {
                    format!("{:.1}", r.secs * 1e3)
                }
            })
        };
        println!(
            "{:>8} {:>5} {:>9.0} | {:>8.1} {:>7.1} {:>8.1} {:>7.1} {:>7.1} | {:>9} {:>7} {:>9} {:>7} | {:>6} {:>6} | {:>9} {:>7} {:>9}",
            m.targets,
            m.roles,
            kib,
            o.cold.secs * 1e3,
            mib(o.cold.peak_kib),
            o.warm.secs * 1e3,
            mib(o.warm.peak_kib),
            o.cold.secs * 1e6 / kib,
            py(|c| c.cold, false),
            py(|c| c.cold, true),
            py(|c| c.warm, false),
            py(|c| c.warm, true),
            ratio(|c| c.cold),
            ratio(|c| c.warm),
            tough(|c| c.cold, false),
            tough(|c| c.cold, true),
            tough(|c| c.warm, false),
        );
    }
    println!("cold x / warm x: python-tuf's time over ours (how many times faster we are)");
    println!("tough: RepositoryLoader::load (every delegated role, again when warm) + find_target");
}

fn main() {
    if let Ok(args) = std::env::var(CHILD) {
        child(&args);
        return;
    }
    let reps = std::env::var("OTA_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let workloads: Vec<(usize, usize)> = match std::env::var("OTA_BENCH_SERIES") {
        Ok(v) => v
            .split(',')
            .map(|w| {
                let (t, r) = w
                    .split_once('x')
                    .expect("OTA_BENCH_SERIES: TARGETSxROLES,...");
                (t.trim().parse().unwrap(), r.trim().parse().unwrap())
            })
            .collect(),
        Err(_) => SERIES.to_vec(),
    };
    let series: Vec<Measured> = workloads
        .iter()
        .map(|&(t, r)| measure(t, r, reps))
        .collect();
    let headline = series
        .iter()
        .find(|m| (m.targets, m.roles) == HEADLINE)
        .unwrap_or(&series[0]);
    print_headline(headline, reps);
    print_series(&series);
}
