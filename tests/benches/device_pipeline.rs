//! Device pipeline benchmark (issue 15): `ota-client update` of a large compressible image,
//! signed (and encrypted) by the real `ota-sign`, served by the real `ota-server` on
//! 127.0.0.1, installed into a regular file; against the in-memory limit of the same stages
//! (sha256 of the download, ChaCha20-Poly1305 STREAM decryption, zstd decompression, sha256 of
//! the image) run over an in-memory buffer on one core, measured in the same run.
//!
//! Run: `cargo bench -p ota-tests --bench device_pipeline`. Environment: `OTA_BENCH_MB` (image
//! size in MB, default 250), `OTA_BENCH_REPS` (runs of each, default 3; the median is printed),
//! `OTA_BENCH_ZSTD_LEVEL` (the repository's zstd level, default 3 so the image signs in
//! seconds; the window stays the policy's 2^23). Each client run is a child process whose peak
//! RSS comes from `wait4`. The bench panics if an install does not give back the image, so its
//! numbers always describe a correct run.
use ota_formats::envelope::{decrypt_stream, encrypt_stream, DataKey, EncryptParams};
use ota_formats::hash::{sha256_hex, Hashes, StreamVerifier};
use ota_tests::cli::{bin, run};
use ota_tests::tls_server::ServerProcess;
use ota_tests::RepoHost;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NAME_PLAIN: &str = "plain";
const NAME_SECRET: &str = "secret";
const HARDWARE: &str = "bench-board";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A firmware-like image: runs of machine-code-like low-entropy bytes, repeats of earlier
/// blocks with a few changes, zero padding and some incompressible data.
fn image(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const BLOCK: usize = 4096;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let kind = next() % 10;
        let start = out.len();
        match kind {
            // Incompressible (crypto tables, already compressed assets).
            0 => {
                for _ in 0..BLOCK / 8 {
                    out.extend_from_slice(&next().to_le_bytes());
                }
            }
            // An earlier block, a few bytes changed (code repeated with other addresses).
            2..=5 if start >= 16 * BLOCK => {
                let back = (next() as usize % (start / BLOCK).min(1500) + 1) * BLOCK;
                let from = start - back;
                out.extend_from_within(from..from + BLOCK);
                for _ in 0..8 {
                    let at = start + next() as usize % BLOCK;
                    out[at] = next() as u8;
                }
            }
            // Padding.
            6 | 7 => out.resize(start + BLOCK, 0),
            // Low-entropy "instructions": a small alphabet.
            _ => {
                for _ in 0..BLOCK {
                    let r = next();
                    out.push(
                        [0x48, 0x89, 0x8b, 0xe8, 0x0f, 0x00, 0xff, 0xc3][(r & 7) as usize]
                            ^ ((r >> 60) as u8 & 1),
                    );
                }
            }
        }
    }
    out.truncate(len);
    out
}

fn ok(name: &str, args: &[&str]) -> ota_tests::cli::Run {
    let r = run(name, args);
    assert_eq!(r.code, 0, "{name} {args:?}: {r:?}");
    r
}

/// The repository: one plain and one encrypted release of the same image, each its own image
/// line; and one device state for each (the encrypted one with its device key registered).
struct Setup {
    _dir: Option<tempfile::TempDir>,
    repo: PathBuf,
    states: [PathBuf; 2],
    image_len: u64,
    image_sha: String,
}

/// The setup in `OTA_BENCH_DIR` when that holds one of the same size and level (made there
/// otherwise), else in a temporary directory.
fn setup(mb: u64, level: u64) -> Setup {
    let (dir, d) = match std::env::var_os("OTA_BENCH_DIR") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let stamp = d.join("setup.txt");
    let want = format!("{mb} {level}");
    if let Ok(text) = std::fs::read_to_string(&stamp) {
        let mut lines = text.lines();
        if lines.next() == Some(want.as_str()) {
            if let (Some(len), Some(sha)) = (lines.next(), lines.next()) {
                eprintln!("reusing the signed repository in {}", d.display());
                return Setup {
                    _dir: dir,
                    repo: d.join("repo"),
                    states: [d.join("state-plain"), d.join("state-secret")],
                    image_len: len.parse().unwrap(),
                    image_sha: sha.to_string(),
                };
            }
        }
    }
    for sub in ["repo", "keys", "work", "state-plain", "state-secret"] {
        let _ = std::fs::remove_dir_all(d.join(sub));
    }
    std::fs::create_dir_all(&d).unwrap();
    let image = image((mb * 1_000_000) as usize);
    let t = Instant::now();
    let d = d.as_path();
    let (repo, keys, work) = (d.join("repo"), d.join("keys"), d.join("work"));
    std::fs::create_dir(&work).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let level = level.to_string();
    ok(
        "ota-sign",
        &[
            "init",
            "--repo",
            &s(&repo),
            "--keys",
            &s(&keys),
            "--zstd-level",
            &level,
            "--zstd-window-log",
            "23",
        ],
    );
    let root = repo.join("metadata/1.root.json");
    let states = [d.join("state-plain"), d.join("state-secret")];
    for (state, name) in states.iter().zip([NAME_PLAIN, NAME_SECRET]) {
        ok(
            "ota-client",
            &[
                "init",
                "--state",
                &s(state),
                "--root",
                &s(&root),
                "--server",
                "http://127.0.0.1:9", // replaced in config.json once the server listens
                "--hardware",
                HARDWARE,
                "--name",
                name,
            ],
        );
    }
    let keygen = ok(
        "ota-client",
        &["keygen", "--state", &s(&states[1]), "--json"],
    )
    .json();
    let public = keygen["public_key"].as_str().unwrap();
    ok(
        "ota-sign",
        &["recipients", "add", "--repo", &s(&repo), "dev-0", public],
    );
    let file = work.join("fw.img");
    std::fs::write(&file, &image).unwrap();
    for (name, extra) in [(NAME_PLAIN, None), (NAME_SECRET, Some("device:dev-0"))] {
        let mut args = vec![
            "add".to_string(),
            "--repo".into(),
            s(&repo),
            "--keys".into(),
            s(&keys),
            s(&file),
            "--name".into(),
            name.into(),
            "--version".into(),
            "1.0.0".into(),
            "--hardware".into(),
            HARDWARE.into(),
        ];
        if let Some(to) = extra {
            args.extend(["--encrypt-to".into(), to.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok("ota-sign", &args);
    }
    std::fs::remove_file(&file).unwrap();
    eprintln!("signed in {:.1} s", t.elapsed().as_secs_f64());
    let (image_len, image_sha) = (image.len() as u64, sha256_hex(&image));
    std::fs::write(&stamp, format!("{want}\n{image_len}\n{image_sha}\n")).unwrap();
    Setup {
        _dir: dir,
        repo,
        states,
        image_len,
        image_sha,
    }
}

/// The largest file under `repo/targets` whose name contains `name-`: the release's payload.
fn wire_file(repo: &Path, name: &str) -> PathBuf {
    let prefix = format!("{name}-");
    std::fs::read_dir(repo.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap().to_string_lossy().contains(&prefix))
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap_or_else(|| panic!("no payload of {name} in {}", repo.display()))
}

/// Wall time, CPU time (user + system) and peak RSS of one child process.
struct ChildRun {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

/// First argument of this bench run as the measuring helper (see [`run_measured`]).
const HELPER: &str = "--device-pipeline-measure";

/// Runs `program args` through a fresh copy of this bench binary, which spawns it and reports
/// what `wait4` says. Linux carries the RSS high-water mark of the process that forks over
/// to the child's `ru_maxrss`, and this process holds the image buffers of the limit: the
/// helper, a new process image with a few MiB resident, keeps that out of the measurement.
fn run_measured(program: &Path, args: &[&std::ffi::OsStr]) -> ChildRun {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg(HELPER)
        .arg(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(out.status.success() && nums.len() == 3, "helper: {out:?}");
    ChildRun {
        wall: Duration::from_nanos(nums[0]),
        cpu: Duration::from_nanos(nums[1]),
        max_rss_kib: nums[2],
    }
}

/// The helper: spawn argv[2..], wait for it with `wait4`, print "wall_ns cpu_ns maxrss_kib";
/// exit 1 (its stderr passed on) if it failed.
fn helper(args: &[std::ffi::OsString]) -> ! {
    let start = Instant::now();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not waited for yet; both pointers are valid for the call.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(got, pid, "wait4: {}", io::Error::last_os_error());
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            let _ = io::Read::read_to_string(&mut e, &mut err);
        }
        eprintln!("{:?} failed ({status:#x}): {err}", args[0]);
        std::process::exit(1);
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    println!("{} {} {}", wall.as_nanos(), cpu.as_nanos(), usage.ru_maxrss);
    std::process::exit(0);
}

/// One `ota-client update` from a fresh copy of `state` (metadata refresh from the root,
/// download, verify, decrypt, decompress, install) into a new file.
fn update_once(state: &Path, server: &str, scratch: &Path, setup: &Setup) -> ChildRun {
    let run_dir = scratch.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(run_dir.join("slot")).unwrap();
    let fresh = run_dir.join("state");
    copy_dir(state, &fresh);
    set_server(&fresh, server);
    let dest = run_dir.join("slot/firmware.img");
    let r = run_measured(
        &bin("ota-client"),
        &[
            "update".as_ref(),
            "--state".as_ref(),
            fresh.as_os_str(),
            "--install-to".as_ref(),
            dest.as_os_str(),
        ],
    );
    let installed = std::fs::metadata(&dest).unwrap().len();
    assert_eq!(installed, setup.image_len, "installed image length");
    let mut v = StreamVerifier::new(&sha(&setup.image_sha), setup.image_len).unwrap();
    v.update_from(&mut std::fs::File::open(&dest).unwrap())
        .unwrap()
        .unwrap();
    v.finish().expect("the installed image is the signed one");
    r
}

fn set_server(state: &Path, url: &str) {
    let path = state.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        config.get("server").is_some(),
        "no server in {}",
        path.display()
    );
    config["server"] = serde_json::Value::String(url.to_string());
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn sha(hex: &str) -> Hashes {
    [("sha256".to_string(), hex.to_string())].into()
}

/// A writer that only hashes and counts (the image sha256 of the limit).
struct HashSink(StreamVerifier);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .update(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The in-memory limit on this thread: sha256 of `wire`, then (if `key`) decryption, zstd
/// decompression (window capped as on the device) and the image sha256, from memory to
/// nowhere.
fn limit_once(wire: &[u8], wire_sha: &str, key: Option<&DataKey>, setup: &Setup) -> Duration {
    let start = Instant::now();
    let mut v = StreamVerifier::new(&sha(wire_sha), wire.len() as u64).unwrap();
    v.update(wire).unwrap();
    v.finish().unwrap();
    let sink = HashSink(StreamVerifier::new(&sha(&setup.image_sha), setup.image_len).unwrap());
    let mut dec = zstd::stream::write::Decoder::new(sink).unwrap();
    dec.window_log_max(23).unwrap();
    match key {
        Some(key) => {
            decrypt_stream(wire, &mut dec, key).unwrap();
        }
        None => dec.write_all(wire).unwrap(),
    }
    dec.flush().unwrap();
    dec.into_inner().0.finish().unwrap();
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == HELPER) {
        helper(&args[1..]);
    }
    // `cargo bench` passes --bench; nothing else is taken.
    let mb = env_or("OTA_BENCH_MB", 250);
    let reps = env_or("OTA_BENCH_REPS", 3).max(1) as usize;
    let level = env_or("OTA_BENCH_ZSTD_LEVEL", 3);

    eprintln!(
        "building binaries, a {mb} MB image, and signing it (zstd level {level}, window 2^23) ..."
    );
    let setup = setup(mb, level);
    let server = ServerProcess::spawn(&setup.repo, &[]);
    let scratch = tempfile::tempdir().unwrap();

    // The limit's input: the plain release's zstd frame from the signer, and the same frame
    // encrypted under a bench key (the device's key slip is not needed to measure the stages;
    // the chunk size and lengths are those of the release).
    let zst = std::fs::read(wire_file(&setup.repo, NAME_PLAIN)).unwrap();
    let enc_len = std::fs::metadata(wire_file(&setup.repo, NAME_SECRET))
        .unwrap()
        .len();
    let key = DataKey::generate();
    let mut enc = Vec::with_capacity(zst.len() + zst.len() / 500 + 1024);
    encrypt_stream(
        &zst[..],
        &mut enc,
        &key,
        &EncryptParams::new(zst.len() as u64),
    )
    .unwrap();
    let (zst_sha, enc_sha) = (sha256_hex(&zst), sha256_hex(&enc));

    println!(
        "device pipeline: {mb} MB image -> {:.1} MB zstd (level {level}, window 8 MiB), {:.1} MB encrypted; \
         ota-server on 127.0.0.1, `ota-client update --install-to FILE`, median of {reps}",
        zst.len() as f64 / 1e6,
        enc_len as f64 / 1e6
    );
    println!("(timings are noisy when other work shares the CPU; the ratio is from this run)");
    println!(
        "{:<12} {:>11} {:>11} {:>11} {:>11} {:>7} {:>9} {:>12}",
        "mode", "ours s", "ours GB/s", "limit s", "limit GB/s", "ratio", "CPU s", "peak RSS"
    );
    for (mode, state, wire, wire_sha, key) in [
        ("encrypted", &setup.states[1], &enc, &enc_sha, Some(&key)),
        ("plain", &setup.states[0], &zst, &zst_sha, None),
    ] {
        let (mut ours, mut limits, mut cpu, mut rss) = (vec![], vec![], vec![], 0u64);
        for _ in 0..reps {
            limits.push(limit_once(wire, wire_sha, key, &setup));
            let r = update_once(state, &server.url(), scratch.path(), &setup);
            ours.push(r.wall);
            cpu.push(r.cpu);
            rss = rss.max(r.max_rss_kib);
        }
        let (o, l) = (median(ours), median(limits));
        println!(
            "{:<12} {:>11.3} {:>11.3} {:>11.3} {:>11.3} {:>6.2}x {:>9.3} {:>8.1} MiB",
            mode,
            o.as_secs_f64(),
            gbps(setup.image_len, o),
            l.as_secs_f64(),
            gbps(setup.image_len, l),
            l.as_secs_f64() / o.as_secs_f64(),
            median(cpu).as_secs_f64(),
            rss as f64 / 1024.0,
        );
    }
    println!("ratio = limit time / ours (goal: at least 0.80); peak RSS of the ota-client process (goal: at most 8 MiB)");
}
