//! ota-compress-bench: `ota-sign add`'s compression of one image (compress, then the
//! decompress-and-hash check), single-threaded (as before) and as `ota-sign add` does it now (on
//! every core), in the same run, against the zstd CLI at the same level and window, the
//! hardware limit (speedup = cores) and the parallel ceiling of the machine at that moment (the
//! image cut in independent pieces compressed side by side, nothing shared: no use of the cores
//! does less work). Prints times, CPU time, target sizes, peak memory and the ratios.
//!
//! Each run is a child process of its own, so that its peak memory is its own. On a shared
//! machine, `--repeat N` runs everything N times round-robin and keeps each run's fastest.
//!
//! Exit codes: 0 success, 1 a run failed or the multithreaded target breaks a limit (larger
//! than 1% over the single-threaded one, a window over the policy's, not giving the image
//! back), 2 usage error.

use clap::{Parser, Subcommand};
use indicatif::ProgressBar;
use ota_repo::config::CompressionPolicy;
use ota_signer::compress::{self, Threads};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "ota-compress-bench",
    about = "Benchmark ota-sign add's compression: single-threaded vs all cores vs the zstd CLI",
    after_help = "Example:\n  cargo run --release -p ota-signer --bin ota-compress-bench -- --synthetic-mib 96\n\n\
Without --image, the input is a synthetic firmware image made of the binaries and libraries\n\
under /usr/bin and /usr/lib (4 KiB aligned, a few bytes changed per block, with zero and\n\
random stretches), the same for the same files. The zstd CLI peer runs when `zstd` is on PATH."
)]
struct Cli {
    /// Image to compress (default: a synthetic one, see --synthetic-mib).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Size of the synthetic image, MiB.
    #[arg(long, default_value_t = 96)]
    synthetic_mib: u64,
    /// zstd level (default: the repository default).
    #[arg(long)]
    level: Option<i32>,
    /// Window log (default: the repository default).
    #[arg(long)]
    window_log: Option<u32>,
    /// Threads of the parallel ceiling, the zstd CLI peer and --mt runs (default: as many as
    /// ota-sign add's workers for this image).
    #[arg(long)]
    workers: Option<u32>,
    /// More multithreaded runs, comma-separated: JOB_MIB:OVERLAP_LOG each (0: zstd's choice;
    /// e.g. 0:0 is zstd's defaults, 0:9 whole-window overlap).
    #[arg(long, value_delimiter = ',')]
    mt: Vec<String>,
    /// Skip the zstd CLI peer.
    #[arg(long)]
    no_peer: bool,
    /// Rounds of all runs; each run shows its fastest round.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Skip the parallel ceiling run.
    #[arg(long)]
    no_ceiling: bool,
    /// Working directory (default: a temp dir).
    #[arg(long)]
    work: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Sub>,
}

#[derive(Subcommand)]
enum Sub {
    /// (internal) one run, as its own process; prints one JSON line. MODE: single, add,
    /// mt:WORKERS:JOB_BYTES:OVERLAP_LOG or pieces:N.
    #[command(hide = true)]
    One {
        image: PathBuf,
        dir: PathBuf,
        level: i32,
        window_log: u32,
        mode: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.cmd {
        Some(Sub::One {
            image,
            dir,
            level,
            window_log,
            mode,
        }) => {
            let policy = CompressionPolicy {
                level: *level,
                window_log: *window_log,
            };
            match one(image, dir, policy, mode) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        None => bench(&cli),
    }
}

/// One run in this process: what `ota-sign add` does to the image before placing it (compress,
/// then decompress and hash), or the parallel ceiling (`pieces:N`).
fn one(image: &Path, dir: &Path, policy: CompressionPolicy, mode: &str) -> Result<String, String> {
    let parts: Vec<&str> = mode.split(':').collect();
    let num = |i: usize| -> Result<u32, String> {
        parts
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("bad mode {mode:?}"))
    };
    if parts[0] == "pieces" {
        return pieces(image, policy, num(1)?);
    }
    let (file, len) = compress::open_image(image).map_err(|e| e.to_string())?;
    let threads = match parts[0] {
        "single" => Threads::SINGLE,
        "add" => Threads::for_image(len, policy.window_log),
        "mt" => Threads {
            workers: num(1)?,
            job_size: num(2)?,
            overlap_log: num(3)?,
        },
        _ => return Err(format!("bad mode {mode:?}")),
    };
    let bar = ProgressBar::hidden();
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let c = compress::compress_with(file, image, dir, policy, threads, &bar)
        .map_err(|e| e.to_string())?;
    let compress_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    compress::verify_round_trip(&c, policy.window_log, &bar).map_err(|e| e.to_string())?;
    let verify_s = t.elapsed().as_secs_f64();
    let cpu = cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    let mut head = [0u8; 32];
    let n = std::fs::File::open(c.file.path())
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| e.to_string())?;
    let window = compress::frame_window_size(&head[..n]);
    Ok(serde_json::json!({
        "workers": threads.workers,
        "job_size": threads.job_size,
        "overlap_log": threads.overlap_log,
        "compress_s": compress_s,
        "verify_s": verify_s,
        "cpu_s": cpu,
        "length": c.length,
        "window": window,
        "peak_kib": peak_kib(),
    })
    .to_string())
}

/// The parallel ceiling: the image cut in `n` pieces, each compressed on a thread of its own
/// by a single-threaded encoder at the same level and window, nothing shared and nothing
/// overlapping. No way of using `n` threads does less work, so no multithreaded run can
/// beat this time on this machine at this moment.
fn pieces(image: &Path, policy: CompressionPolicy, n: u32) -> Result<String, String> {
    let data = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let n = usize::try_from(n.max(1)).unwrap_or(1);
    let piece = data.len().div_ceil(n).max(1);
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let lengths: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(piece)
            .map(|chunk| {
                s.spawn(move || -> std::io::Result<u64> {
                    let mut enc = zstd::stream::write::Encoder::new(Counter(0), policy.level)?;
                    enc.window_log(policy.window_log)?;
                    enc.include_checksum(true)?;
                    enc.set_pledged_src_size(Some(chunk.len() as u64))?;
                    enc.write_all(chunk)?;
                    Ok(enc.finish()?.0)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("a piece's thread panicked".to_string()),
            })
            .collect()
    });
    let compress_s = t.elapsed().as_secs_f64();
    let cpu = cpu_secs().zip(cpu0).map(|(b, a)| b - a);
    let mut length = 0;
    for l in lengths {
        length += l?;
    }
    Ok(serde_json::json!({
        "workers": n,
        "compress_s": compress_s,
        "cpu_s": cpu,
        "length": length,
        "peak_kib": peak_kib(),
    })
    .to_string())
}

/// Counts what is written, keeps nothing.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU time of this process, all threads (Linux: /proc/self/stat, in USER_HZ = 1/100 s).
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident memory of this process (Linux: VmHWM).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What one run measured.
#[derive(Default, Clone)]
struct Row {
    name: String,
    workers: String,
    compress_s: f64,
    verify_s: Option<f64>,
    cpu_s: Option<f64>,
    length: u64,
    window: Option<u64>,
    peak_kib: Option<u64>,
}

impl Row {
    fn total(&self) -> f64 {
        self.compress_s + self.verify_s.unwrap_or(0.0)
    }
}

fn bench(cli: &Cli) -> ExitCode {
    let defaults = CompressionPolicy::default();
    let policy = CompressionPolicy {
        level: cli.level.unwrap_or(defaults.level),
        window_log: cli.window_log.unwrap_or(defaults.window_log),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp;
    let work = match &cli.work {
        Some(w) => w.clone(),
        None => match tempfile::tempdir() {
            Ok(t) => {
                tmp = t;
                tmp.path().to_path_buf()
            }
            Err(e) => {
                eprintln!("error: cannot create a temp dir: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("error: cannot create {}: {e}", work.display());
        return ExitCode::from(2);
    }
    let (image, what) = match &cli.image {
        Some(p) => (p.clone(), p.display().to_string()),
        None => {
            let p = work.join("synthetic.img");
            match synthetic(&p, cli.synthetic_mib << 20) {
                Ok(files) => (
                    p,
                    format!("synthetic, {files} files from /usr/bin and /usr/lib"),
                ),
                Err(e) => {
                    eprintln!("error: cannot make the synthetic image: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let (len, sha) = match std::fs::File::open(&image).and_then(|f| {
        let mut h = Sha256::new();
        let n = std::io::copy(&mut std::io::BufReader::new(f), &mut h)?;
        Ok((n, hex::encode(h.finalize())))
    }) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", image.display());
            return ExitCode::from(2);
        }
    };
    let add = Threads::for_image(len, policy.window_log);
    let workers = cli.workers.unwrap_or(add.workers.max(1));
    println!(
        "ota-compress-bench: level {}, window 2^{} ({} MiB), {cores} cores",
        policy.level,
        policy.window_log,
        (1u64 << policy.window_log) >> 20
    );
    println!(
        "input: {what}: {:.1} MiB, sha256 {}",
        len as f64 / 1048576.0,
        &sha[..16]
    );
    println!(
        "ota-sign add's threads for it: {} workers, {:.1} MiB jobs, overlap log {}",
        add.workers,
        f64::from(add.job_size) / 1048576.0,
        add.overlap_log
    );

    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ota-compress-bench"));
    let ours = |name: &str, mode: &str| -> Result<Row, String> {
        eprintln!("running {name} ...");
        let out = Command::new(&me)
            .arg("one")
            .arg(&image)
            .arg(&work)
            .args([policy.level.to_string(), policy.window_log.to_string()])
            .arg(mode)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", me.display()))?;
        if !out.status.success() {
            return Err(format!("{name} failed ({})", out.status));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("{name}: {e}"))?;
        Ok(Row {
            name: name.to_string(),
            workers: v["workers"].as_u64().map_or("-".into(), |w| w.to_string()),
            compress_s: v["compress_s"].as_f64().unwrap_or(f64::NAN),
            verify_s: v["verify_s"].as_f64(),
            cpu_s: v["cpu_s"].as_f64(),
            length: v["length"].as_u64().unwrap_or(0),
            window: v["window"].as_u64(),
            peak_kib: v["peak_kib"].as_u64(),
        })
    };

    let mut runs = vec![
        (
            "ours, single thread (before)".to_string(),
            "single".to_string(),
        ),
        (
            "ours, ota-sign add (all cores)".to_string(),
            "add".to_string(),
        ),
    ];
    for spec in &cli.mt {
        let Some((Ok(job), Ok(overlap))) = spec
            .split_once(':')
            .map(|(j, o)| (j.parse::<u32>(), o.parse::<u32>()))
        else {
            eprintln!("error: --mt {spec:?} is not JOB_MIB:OVERLAP_LOG");
            return ExitCode::from(2);
        };
        runs.push((
            format!("ours, jobs {job} MiB, overlap {overlap}"),
            format!("mt:{workers}:{}:{overlap}", job.saturating_mul(1 << 20)),
        ));
    }
    if !cli.no_ceiling {
        runs.push((
            format!("ceiling: {workers} independent pieces"),
            format!("pieces:{workers}"),
        ));
    }
    // Round after round, so that a busy spell of the (shared) machine hits every run alike;
    // each run keeps its fastest round.
    let peers: Vec<(&str, String)> = if cli.no_peer {
        Vec::new()
    } else {
        vec![
            ("zstd CLI, single thread", "--single-thread".to_string()),
            ("zstd CLI, all cores", format!("-T{workers}")),
        ]
    };
    let mut best: Vec<Option<Row>> = vec![None; runs.len() + peers.len()];
    for round in 1..=cli.repeat.max(1) {
        eprintln!("round {round}");
        for (i, (name, mode)) in runs.iter().enumerate() {
            match ours(name, mode) {
                Ok(r) => keep_fastest(&mut best[i], r),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        for (i, (name, arg)) in peers.iter().enumerate() {
            match peer(name, &image, &work, policy, arg) {
                Some(mut r) => {
                    r.workers = arg.clone();
                    keep_fastest(&mut best[runs.len() + i], r);
                }
                None => eprintln!("{name}: missing (no zstd on PATH)"),
            }
        }
    }
    let rows: Vec<Row> = best.into_iter().flatten().collect();
    let single = rows[0].clone();
    let ours_add = rows[1].clone();

    println!();
    println!(
        "{:<38} {:>15} {:>10} {:>9} {:>8} {:>7} {:>7} {:>13} {:>9} {:>8} {:>8}",
        "run",
        "workers",
        "compress s",
        "verify s",
        "total s",
        "cpu s",
        "MiB/s",
        "target bytes",
        "size",
        "speedup",
        "peak MiB"
    );
    for r in &rows {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:<38} {:>15} {:>10.2} {:>9} {:>8.2} {:>7} {:>7.2} {:>13} {:>+8.2}% {:>7.2}x {:>8}",
            r.name,
            r.workers,
            r.compress_s,
            opt(r.verify_s, 2),
            r.total(),
            opt(r.cpu_s, 1),
            len as f64 / 1048576.0 / r.total(),
            r.length,
            pct(r.length, single.length),
            single.total() / r.total(),
            r.peak_kib
                .map_or("-".to_string(), |k| format!("{:.0}", k as f64 / 1024.0)),
        );
    }
    println!(
        "(fastest of {} round(s); size and speedup against ours, single thread; total = \
         compress + verify; the ceiling and the zstd CLI do not verify)",
        cli.repeat.max(1)
    );
    println!();
    let speedup = single.total() / ours_add.total();
    println!(
        "ota-sign add: {speedup:.2}x the single-threaded speed (compress + verify); hardware \
         limit {cores}.00x ({cores} cores): {:.0}% of it",
        speedup / cores as f64 * 100.0
    );
    if let Some(c) = rows.iter().find(|r| r.name.starts_with("ceiling")) {
        let ceiling = single.compress_s / c.compress_s;
        println!(
            "  parallel ceiling on this machine now ({} independent pieces, nothing shared): \
             {ceiling:.2}x; ota-sign add's compression {:.2}x = {:.0}% of it",
            c.workers,
            single.compress_s / ours_add.compress_s,
            single.compress_s / ours_add.compress_s / ceiling * 100.0
        );
    }
    if let (Some(s), Some(m)) = (single.cpu_s, ours_add.cpu_s) {
        // What a busy shared machine cannot hide: the extra CPU work of the parallel jobs.
        println!(
            "  CPU work: {:+.1}% over single-threaded; so on {cores} idle cores at most {:.2}x",
            (m / s - 1.0) * 100.0,
            cores as f64 * s / m
        );
    }
    if let Some(p) = rows.iter().find(|r| r.name.starts_with("zstd CLI, all")) {
        println!(
            "  against the zstd CLI {}: {:.2}x its speed (our compress alone {:.2}x), target {:+.3}%",
            p.workers,
            p.compress_s / ours_add.total(),
            p.compress_s / ours_add.compress_s,
            pct(ours_add.length, p.length)
        );
    }
    println!(
        "  target {:+.3}% vs single-threaded (limit +1%); verify {:.1}% of the total",
        pct(ours_add.length, single.length),
        ours_add.verify_s.unwrap_or(0.0) / ours_add.total() * 100.0,
    );
    let mut failed = false;
    for m in rows
        .iter()
        .filter(|r| r.window.is_some() || r.verify_s.is_some())
    {
        let window_ok = m.window.is_some_and(|w| w <= 1u64 << policy.window_log);
        println!(
            "  {}: frame window {} bytes (policy 2^{} = {}): {}; decoded with window_log_max {} \
             to the image's sha256",
            m.name,
            m.window.map_or("?".to_string(), |w| w.to_string()),
            policy.window_log,
            1u64 << policy.window_log,
            if window_ok { "ok" } else { "OVER" },
            policy.window_log,
        );
        failed |= !window_ok;
    }
    if ours_add.length as f64 > single.length as f64 * 1.01 {
        failed = true;
    }
    if failed {
        eprintln!("error: a target breaks a limit (see above)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Keep the faster of `slot` and `r`.
fn keep_fastest(slot: &mut Option<Row>, r: Row) {
    if slot.as_ref().is_none_or(|s| r.total() < s.total()) {
        *slot = Some(r);
    }
}

/// `a` against `b`, percent.
fn pct(a: u64, b: u64) -> f64 {
    (a as f64 / b as f64 - 1.0) * 100.0
}

/// The zstd CLI at the same level and window, timed (and its peak memory through
/// /usr/bin/time when there); None when there is no zstd on PATH.
fn peer(
    name: &str,
    image: &Path,
    work: &Path,
    policy: CompressionPolicy,
    extra: &str,
) -> Option<Row> {
    let version = Command::new("zstd").arg("-V").output().ok()?;
    let version = String::from_utf8_lossy(&version.stdout);
    let version = version
        .split_whitespace()
        .find(|w| w.starts_with('v'))
        .unwrap_or("")
        .trim_end_matches(',');
    eprintln!("running {name} {version} ...");
    let out = work.join("peer.zst");
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "%M", "zstd"]);
        c
    } else {
        Command::new("zstd")
    };
    cmd.arg(format!("-{}", policy.level))
        .arg(format!("--zstd=wlog={}", policy.window_log))
        .arg(extra)
        .args(["-q", "-f", "-o"])
        .arg(&out)
        .arg(image)
        .stdout(Stdio::null());
    let t = Instant::now();
    let o = cmd.output().ok()?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        eprintln!(
            "{name} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return None;
    }
    let peak_kib = String::from_utf8_lossy(&o.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok());
    let length = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    Some(Row {
        name: format!("{name} {version}"),
        compress_s: secs,
        length,
        peak_kib,
        ..Row::default()
    })
}

/// xorshift64*: the synthetic image's variations, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Regular files under `dir`, recursively (symlinks not followed), sorted.
fn files_under(dir: &Path, out: &mut Vec<(PathBuf, u64)>, depth: u32) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() && depth < 4 {
            files_under(&e.path(), out, depth + 1);
        } else if t.is_file() {
            if let Ok(m) = e.metadata() {
                // Skip the tiny and the huge: a root filesystem is mostly mid-sized files.
                if (4096..=(16 << 20)).contains(&m.len()) {
                    out.push((e.path(), m.len()));
                }
            }
        }
    }
}

/// Write a firmware-like image of `size` bytes to `path`: real binaries and libraries in a
/// shuffled order, each 4 KiB aligned with a few bytes changed per block (a build that differs),
/// and every 8 MiB a stretch of random bytes (compressed assets) and one of zeros (free
/// space). Returns how many files went in.
fn synthetic(path: &Path, size: u64) -> std::io::Result<usize> {
    let mut files = Vec::new();
    files_under(Path::new("/usr/bin"), &mut files, 0);
    files_under(Path::new("/usr/lib"), &mut files, 0);
    if files.is_empty() {
        return Err(std::io::Error::other(
            "no files under /usr/bin and /usr/lib",
        ));
    }
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    for i in (1..files.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        files.swap(i, j);
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut written = 0u64;
    let mut next_filler = 8u64 << 20;
    let mut used = 0usize;
    let mut buf = Vec::new();
    let mut i = 0usize;
    while written < size {
        let (file, _) = &files[i % files.len()];
        i += 1;
        buf.clear();
        if std::fs::File::open(file)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .is_err()
        {
            continue;
        }
        used += 1;
        for block in buf.chunks_mut(4096) {
            for _ in 0..(rng.next() % 4) {
                let at = (rng.next() % block.len() as u64) as usize;
                block[at] = rng.next() as u8;
            }
        }
        let pad = (4096 - buf.len() % 4096) % 4096;
        buf.resize(buf.len() + pad, 0);
        if written >= next_filler {
            next_filler += 8 << 20;
            let random: Vec<u8> = (0..(256 << 10) / 8)
                .flat_map(|_| rng.next().to_le_bytes())
                .collect();
            buf.extend_from_slice(&random);
            buf.resize(buf.len() + (128 << 10), 0);
        }
        let take = buf.len().min((size - written) as usize);
        out.write_all(&buf[..take])?;
        written += take as u64;
    }
    out.flush()?;
    Ok(used)
}
