//! Refresh benchmark (issue "TUF core", Performance): repositories with many targets spread
//! over delegated roles, built in code and served by a real `ota-server` on 127.0.0.1, refreshed
//! by ota-client from a cold cache (fresh device) and a warm one (a new `Updater` over the same
//! metadata directory), with python-tuf's ngclient as a peer when `OTA_PYTHON` is set.
//!
//! Run: `cargo bench -p ota-tests --bench refresh` (`OTA_BENCH_REPS=N` for more repetitions;
//! each time printed is the median). The bench panics if a refresh makes other requests than
//! expected or resolves the wrong number of targets, so its numbers always describe a correct run.
mod common;

use common::{bootstrap, counting_updater, delegated_repo, one_target_per_role, RequestLog};
use ota_tests::fixture::RepoFixture;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// (targets, roles) of the scaling series; the middle one is the headline workload.
const SERIES: [(usize, usize); 3] = [(1_000, 10), (10_000, 50), (40_000, 200)];
const HEADLINE: (usize, usize) = (10_000, 50);

/// Medians of one workload.
struct Measured {
    targets: usize,
    roles: usize,
    cold_lookup: Duration,
    warm_lookup: Duration,
    cold_all: Duration,
    warm_all: Duration,
    cold_requests: usize,
    warm_requests: usize,
    python: Option<PythonRun>,
}

struct PythonRun {
    cold: Duration,
    warm: Duration,
    cold_requests: u64,
    warm_requests: u64,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One device run: refresh, then `work`; returns the time and the metadata requests made.
fn timed(
    dir: &std::path::Path,
    server: &TestServer,
    work: &mut dyn FnMut(&mut ota_client::Updater),
) -> (Duration, Vec<String>) {
    let log = RequestLog::default();
    let start = Instant::now();
    let mut up = counting_updater(dir, server, &log);
    up.refresh().unwrap();
    work(&mut up);
    (start.elapsed(), log.take())
}

fn measure(targets: usize, roles: usize, reps: usize) -> Measured {
    let fx = delegated_repo(targets, roles);
    let server = TestServer::start(fx.path());
    let lookups = one_target_per_role(roles);
    let expected_cold = roles + 4; // 2.root.json probe, timestamp, snapshot, targets, each role
    let expected_warm = vec!["2.root.json".to_string(), "timestamp.json".to_string()];
    let mut lookup = |up: &mut ota_client::Updater| {
        for t in &lookups {
            assert!(up.get_target_info(t).unwrap().is_some(), "{t} not found");
        }
    };
    let mut all = |up: &mut ota_client::Updater| {
        assert_eq!(up.all_targets().unwrap().len(), targets);
    };
    let (mut cl, mut wl, mut ca, mut wa) = (vec![], vec![], vec![], vec![]);
    let (mut cold_requests, mut warm_requests) = (0, 0);
    for _ in 0..reps {
        for (work, cold, warm) in [
            (&mut lookup as &mut dyn FnMut(&mut _), &mut cl, &mut wl),
            (&mut all as &mut dyn FnMut(&mut _), &mut ca, &mut wa),
        ] {
            let device = tempfile::tempdir().unwrap();
            bootstrap(device.path(), &fx);
            let (t, req) = timed(device.path(), &server, work);
            assert_eq!(req.len(), expected_cold, "cold requests: {req:?}");
            cold.push(t);
            cold_requests = req.len();
            let (t, req) = timed(device.path(), &server, work);
            assert_eq!(req, expected_warm, "warm refresh re-downloaded metadata");
            warm.push(t);
            warm_requests = req.len();
        }
    }
    let python = python_run(&fx, &server, roles);
    Measured {
        targets,
        roles,
        cold_lookup: median(cl),
        warm_lookup: median(wl),
        cold_all: median(ca),
        warm_all: median(wa),
        cold_requests,
        warm_requests,
        python,
    }
}

/// python-tuf on the same repository and server, or `None` when `OTA_PYTHON` is not set.
fn python_run(fx: &RepoFixture, server: &TestServer, roles: usize) -> Option<PythonRun> {
    let python = std::env::var_os("OTA_PYTHON")?;
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root.json");
    std::fs::write(&root, fx.root_bytes()).unwrap();
    let list = work.path().join("targets.txt");
    std::fs::write(&list, one_target_per_role(roles).join("\n")).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/ngclient_refresh.py");
    let out = Command::new(python)
        .arg(script)
        .arg(server.metadata_url())
        .arg(server.targets_url())
        .arg(&root)
        .arg(&list)
        .arg(work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secs = |k: &str| Duration::from_secs_f64(v[k].as_f64().unwrap());
    Some(PythonRun {
        cold: secs("cold_s"),
        warm: secs("warm_s"),
        cold_requests: v["cold_requests"].as_u64().unwrap(),
        warm_requests: v["warm_requests"].as_u64().unwrap(),
    })
}

fn print_headline(m: &Measured, reps: usize) {
    println!(
        "refresh: {} targets over {} delegated roles, ota-server on 127.0.0.1, median of {reps}",
        m.targets, m.roles
    );
    println!(
        "{:<11} {:<5} {:<34} {:>9} {:>9}",
        "client", "cache", "work", "ms", "requests"
    );
    let lookups = format!("refresh + get_target_info x{}", m.roles);
    let all = format!("refresh + all_targets ({})", m.targets);
    let row = |client: &str, cache: &str, work: &str, d: Duration, req: String| {
        println!("{client:<11} {cache:<5} {work:<34} {:>9.1} {req:>9}", ms(d));
    };
    row(
        "ota-client",
        "cold",
        &lookups,
        m.cold_lookup,
        m.cold_requests.to_string(),
    );
    row(
        "ota-client",
        "warm",
        &lookups,
        m.warm_lookup,
        m.warm_requests.to_string(),
    );
    row(
        "ota-client",
        "cold",
        &all,
        m.cold_all,
        m.cold_requests.to_string(),
    );
    row(
        "ota-client",
        "warm",
        &all,
        m.warm_all,
        m.warm_requests.to_string(),
    );
    match &m.python {
        Some(p) => {
            row(
                "python-tuf",
                "cold",
                &lookups,
                p.cold,
                p.cold_requests.to_string(),
            );
            row(
                "python-tuf",
                "warm",
                &lookups,
                p.warm,
                p.warm_requests.to_string(),
            );
        }
        None => println!("python-tuf  skipped: set OTA_PYTHON to a python with `tuf` installed"),
    }
}

fn print_series(series: &[Measured]) {
    println!();
    println!(
        "scaling: refresh + all_targets; growth = time per target / the first row's (1.0 = linear)"
    );
    println!(
        "{:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9} {:>9}",
        "targets",
        "roles",
        "cold ms",
        "warm ms",
        "cold µs/t",
        "warm µs/t",
        "growth",
        "growth",
        "py cold",
        "py warm"
    );
    println!(
        "{:>64} {:>7} {:>7} {:>9} {:>9}",
        "", "cold", "warm", "ms*", "ms*"
    );
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
    let (base_cold, base_warm) = (
        per(series[0].cold_all, series[0].targets),
        per(series[0].warm_all, series[0].targets),
    );
    for m in series {
        let (c, w) = (per(m.cold_all, m.targets), per(m.warm_all, m.targets));
        let py = |f: fn(&PythonRun) -> Duration| {
            m.python
                .as_ref()
                .map_or("-".to_string(), |p| format!("{:.1}", ms(f(p))))
        };
        println!(
            "{:>7} {:>5} {:>9.1} {:>9.1} {:>9.2} {:>9.2} {:>7.2} {:>7.2} {:>9} {:>9}",
            m.targets,
            m.roles,
            ms(m.cold_all),
            ms(m.warm_all),
            c,
            w,
            c / base_cold,
            w / base_warm,
            py(|p| p.cold),
            py(|p| p.warm),
        );
    }
    println!(
        "* python-tuf: refresh + get_targetinfo of one target per role (it has no all_targets)"
    );
}

fn main() {
    let reps = std::env::var("OTA_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    // `OTA_BENCH_SERIES=10000x50,...` runs other workloads (e.g. one, under a profiler).
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
