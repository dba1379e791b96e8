//! ota-delta-bench: compares our delta patches with bsdiff, xdelta3, zstd --patch-from and
//! HDiffPatch on a corpus of image pairs, printing one table of sizes, times and peak memory.
//!
//! Exit codes: 0 success, 1 a run of ours failed or produced a wrong image, 2 usage error.

use clap::{Parser, Subcommand};
use ota_formats::patch::apply;
use ota_signer::delta::{create_patch, CreateOptions};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "ota-delta-bench",
    about = "Benchmark our delta patches against bsdiff, xdelta3, zstd --patch-from and HDiffPatch",
    after_help = "Example:\n  cargo run --release -p ota-signer --bin ota-delta-bench -- --pairs nrf52,esbuild\n\n\
The corpus is made by ../shared/corpus/fetch.sh (beside the project checkout) (pairs <name>.old/<name>.new).\n\
Peers are run through /usr/bin/time -v (apt-get install -y bsdiff xdelta3 zstd time);\n\
HDiffPatch runs as hdiffz/hpatchz when on PATH, else through its PyPI binding\n\
(pip install hdiffpatch; interpreter from --python). A missing peer is shown as 'missing'."
)]
struct Cli {
    /// Directory holding <pair>.old and <pair>.new.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Only these pairs (comma-separated names), default all.
    #[arg(long, value_delimiter = ',')]
    pairs: Vec<String>,
    /// Skip the peer tools (ours only).
    #[arg(long)]
    no_peers: bool,
    /// Only these tools (comma-separated: ours, full, bsdiff, xdelta3, zstd-patch-from,
    /// hdiffpatch).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// Seconds after which a peer run is killed and reported as timed out.
    #[arg(long, default_value_t = 900)]
    peer_timeout: u64,
    /// Working directory for patches and outputs (default: a temp dir).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Python interpreter with the `hdiffpatch` package, used when hdiffz is not on PATH.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Print the results as JSON lines too.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: Option<Sub>,
}

#[derive(Subcommand)]
enum Sub {
    /// (internal) create one patch, so that it can be timed as its own process.
    #[command(hide = true)]
    Create {
        old: PathBuf,
        new: PathBuf,
        patch: PathBuf,
    },
    /// (internal) apply one patch.
    #[command(hide = true)]
    Apply {
        old: PathBuf,
        patch: PathBuf,
        out: PathBuf,
    },
}

/// Wall time and peak RSS of one process run.
#[derive(Clone, Copy, Default)]
struct Run {
    secs: f64,
    peak_kib: Option<u64>,
}

enum Outcome {
    Ok {
        size: u64,
        create: Run,
        apply: Option<Run>,
        verified: bool,
    },
    Missing,
    Failed(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Sub::Create { old, new, patch }) => {
            match create_patch(&old, &new, &CreateOptions::default()) {
                Ok((bytes, info)) => {
                    if let Err(e) = std::fs::write(&patch, &bytes) {
                        eprintln!("error: cannot write {}: {e}", patch.display());
                        return ExitCode::from(1);
                    }
                    eprintln!(
                        "chosen {:?}/{:?}/{:?} {} bytes (full {} bytes, publish: {})",
                        info.chosen.method,
                        info.chosen.filter,
                        info.chosen.codec,
                        info.chosen.len,
                        info.full_len,
                        info.worth_publishing()
                    );
                    for c in &info.candidates {
                        eprintln!(
                            "  candidate {:?}/{:?}/{:?}/{:?}: {}",
                            c.method, c.filter, c.matcher, c.codec, c.len
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Some(Sub::Apply { old, patch, out }) => {
            let r = (|| -> Result<(), String> {
                let base =
                    std::fs::File::open(&old).map_err(|e| format!("{}: {e}", old.display()))?;
                let p =
                    std::fs::File::open(&patch).map_err(|e| format!("{}: {e}", patch.display()))?;
                let o =
                    std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
                let stats = apply(base, std::io::BufReader::new(p), std::io::BufWriter::new(o))
                    .map_err(|e| e.to_string())?;
                eprintln!("applied: {stats:?}");
                Ok(())
            })();
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        None => bench(&cli),
    }
}

fn default_corpus() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    cache.join("ota-delta-corpus/files")
}

fn bench(cli: &Cli) -> ExitCode {
    let corpus = cli.corpus.clone().unwrap_or_else(default_corpus);
    let mut names: Vec<String> = match std::fs::read_dir(&corpus) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".old"))
                    .map(str::to_owned)
            })
            .filter(|n| corpus.join(format!("{n}.new")).exists())
            .collect(),
        Err(e) => {
            eprintln!("error: cannot read corpus {}: {e}", corpus.display());
            eprintln!("hint: run ../shared/corpus/fetch.sh (beside the project checkout) or pass --corpus DIR");
            return ExitCode::from(2);
        }
    };
    names.sort_by_key(|n| {
        std::fs::metadata(corpus.join(format!("{n}.new")))
            .map(|m| m.len())
            .unwrap_or(0)
    });
    if !cli.pairs.is_empty() {
        names.retain(|n| cli.pairs.contains(n));
    }
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
    let _ = std::fs::create_dir_all(&work);
    let have_time = Path::new("/usr/bin/time").exists();
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ota-delta-bench"));
    let timeout = Duration::from_secs(cli.peer_timeout);
    let want = |t: &str| cli.tools.is_empty() || cli.tools.iter().any(|x| x == t);
    let skip_peer = |t: &str| cli.no_peers || !want(t);
    let mut rows = Vec::new();
    let mut failed = false;
    let hdp = hdiffpatch_runner(&cli.python);
    println!("| pair | new size | zstd -19 full | ours | bsdiff | xdelta3 -9 -S djw | zstd -19 --long=31 --patch-from | HDiffPatch -m ({}) | ours / best peer |", hdp.as_ref().map_or("missing", |h| h.label));
    println!("|---|---|---|---|---|---|---|---|---|");
    for name in &names {
        let old = corpus.join(format!("{name}.old"));
        let new = corpus.join(format!("{name}.new"));
        let new_len = std::fs::metadata(&new).map(|m| m.len()).unwrap_or(0);
        let new_sha = sha_file(&new);
        let p = |s: &str| work.join(format!("{name}.{s}"));
        let s = |p: &Path| p.to_string_lossy().into_owned();
        eprintln!("[{name}] ours");
        let ours = if !want("ours") {
            Outcome::Missing
        } else {
            run_pair(
                have_time,
                timeout,
                (
                    me.to_string_lossy().as_ref(),
                    &["create", &s(&old), &s(&new), &s(&p("ours.patch"))],
                ),
                Some((
                    me.to_string_lossy().as_ref(),
                    &["apply", &s(&old), &s(&p("ours.patch")), &s(&p("ours.out"))],
                )),
                &p("ours.patch"),
                &p("ours.out"),
                &new_sha,
            )
        };
        if want("ours") && !matches!(ours, Outcome::Ok { verified: true, .. }) {
            failed = true;
        }
        let mut peers: Vec<(&str, Outcome)> = Vec::new();
        let full = if skip_peer("full") {
            Outcome::Missing
        } else {
            eprintln!("[{name}] zstd -19");
            run_pair(
                have_time,
                timeout,
                (
                    "zstd",
                    &["-19", "-q", "-f", &s(&new), "-o", &s(&p("full.zst"))],
                ),
                None,
                &p("full.zst"),
                &p("-"),
                &new_sha,
            )
        };
        if !skip_peer("bsdiff") {
            eprintln!("[{name}] bsdiff");
            peers.push((
                "bsdiff",
                run_pair(
                    have_time,
                    timeout,
                    ("bsdiff", &[&s(&old), &s(&new), &s(&p("bsdiff"))]),
                    Some((
                        "bspatch",
                        &[&s(&old), &s(&p("bsdiff.out")), &s(&p("bsdiff"))],
                    )),
                    &p("bsdiff"),
                    &p("bsdiff.out"),
                    &new_sha,
                ),
            ));
        }
        if !skip_peer("xdelta3") {
            eprintln!("[{name}] xdelta3");
            peers.push((
                "xdelta3",
                run_pair(
                    have_time,
                    timeout,
                    (
                        "xdelta3",
                        &[
                            "-9",
                            "-S",
                            "djw",
                            "-f",
                            "-e",
                            "-s",
                            &s(&old),
                            &s(&new),
                            &s(&p("xd3")),
                        ],
                    ),
                    Some((
                        "xdelta3",
                        &["-d", "-f", "-s", &s(&old), &s(&p("xd3")), &s(&p("xd3.out"))],
                    )),
                    &p("xd3"),
                    &p("xd3.out"),
                    &new_sha,
                ),
            ));
        }
        if !skip_peer("zstd-patch-from") {
            eprintln!("[{name}] zstd --patch-from");
            let pf = format!("--patch-from={}", s(&old));
            peers.push((
                "zstd-patch-from",
                run_pair(
                    have_time,
                    timeout,
                    (
                        "zstd",
                        &[
                            "-19",
                            "--long=31",
                            "-q",
                            "-f",
                            &pf,
                            &s(&new),
                            "-o",
                            &s(&p("zpf")),
                        ],
                    ),
                    Some((
                        "zstd",
                        &[
                            "-d",
                            "--long=31",
                            "-q",
                            "-f",
                            &pf,
                            &s(&p("zpf")),
                            "-o",
                            &s(&p("zpf.out")),
                        ],
                    )),
                    &p("zpf"),
                    &p("zpf.out"),
                    &new_sha,
                ),
            ));
        }
        if !skip_peer("hdiffpatch") {
            eprintln!("[{name}] HDiffPatch");
            let outcome = match &hdp {
                None => Outcome::Missing,
                Some(h) => {
                    let (pp, po) = (s(&p("hdp")), s(&p("hdp.out")));
                    let (c, a) = h.commands(&s(&old), &s(&new), &pp, &po);
                    let cargs: Vec<&str> = c[1..].iter().map(String::as_str).collect();
                    let aargs: Vec<&str> = a[1..].iter().map(String::as_str).collect();
                    run_pair(
                        have_time,
                        timeout,
                        (&c[0], &cargs),
                        Some((&a[0], &aargs)),
                        &p("hdp"),
                        &p("hdp.out"),
                        &new_sha,
                    )
                }
            };
            peers.push(("hdiffpatch", outcome));
        }
        let best_peer = peers
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Ok {
                    size,
                    verified: true,
                    ..
                } => Some(*size),
                _ => None,
            })
            .min();
        let ratio = match (&ours, best_peer) {
            (Outcome::Ok { size, .. }, Some(b)) if b > 0 => {
                format!("{:.3}", *size as f64 / b as f64)
            }
            _ => "n/a".into(),
        };
        let cell = |o: &Outcome| fmt_outcome(o);
        let peer_cell = |k: &str| {
            peers
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, o)| cell(o))
                .unwrap_or_else(|| "skipped".into())
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {ratio} |",
            group(new_len),
            if cli.no_peers {
                "skipped".into()
            } else {
                cell(&full)
            },
            cell(&ours),
            peer_cell("bsdiff"),
            peer_cell("xdelta3"),
            peer_cell("zstd-patch-from"),
            peer_cell("hdiffpatch"),
        );
        let peer_json = |k: &str| {
            peers
                .iter()
                .find(|(n, _)| *n == k)
                .map_or("null".into(), |(_, o)| json_size(o))
        };
        if cli.json {
            rows.push(format!(
                "{{\"pair\":\"{name}\",\"new\":{new_len},\"ours\":{},\"full_zstd19\":{},\"bsdiff\":{},\"xdelta3\":{},\"zstd_patch_from\":{},\"hdiffpatch\":{},\"ratio\":\"{ratio}\"}}",
                json_size(&ours),
                json_size(&full),
                peer_json("bsdiff"),
                peer_json("xdelta3"),
                peer_json("zstd-patch-from"),
                peer_json("hdiffpatch"),
            ));
        }
    }
    println!("\nCells: patch bytes (c = create wall s / peak RSS, a = apply wall s / peak RSS); 'missing' = tool not installed.");
    for r in rows {
        println!("{r}");
    }
    if failed {
        eprintln!("error: at least one of our patches failed or did not reproduce the new image");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Creates an HDiffPatch patch with the PyPI binding: in-memory suffix-array diff (what
/// `hdiffz -m` does), keeping the smallest of its lzma2, lzma and zstd outputs.
const HDP_PY: &str = r#"
import sys, hdiffpatch as h
mode, a, b, c = sys.argv[1:5]
if mode == "create":
    o, n = open(a, "rb").read(), open(b, "rb").read()
    best = min((h.diff(o, n, k, validate=False) for k in ("lzma2", "lzma", "zstd")), key=len)
    open(c, "wb").write(best)
else:
    open(c, "wb").write(h.apply(open(a, "rb").read(), open(b, "rb").read()))
"#;

/// How HDiffPatch is run: its own CLI or the Python binding.
struct Hdp {
    label: &'static str,
    python: Option<String>,
}

impl Hdp {
    /// The create and apply command lines (program first).
    fn commands(&self, old: &str, new: &str, patch: &str, out: &str) -> (Vec<String>, Vec<String>) {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match &self.python {
            None => (
                v(&["hdiffz", "-m", "-f", "-c-lzma2-9-16m", old, new, patch]),
                v(&["hpatchz", "-f", old, patch, out]),
            ),
            Some(py) => (
                v(&[py, "-c", HDP_PY, "create", old, new, patch]),
                v(&[py, "-c", HDP_PY, "apply", old, patch, out]),
            ),
        }
    }
}

/// HDiffPatch if available: `hdiffz`/`hpatchz` on PATH, else `python -c 'import hdiffpatch'`.
fn hdiffpatch_runner(python: &str) -> Option<Hdp> {
    if on_path("hdiffz") && on_path("hpatchz") {
        return Some(Hdp {
            label: "hdiffz lzma2",
            python: None,
        });
    }
    let ok = Command::new(python)
        .args(["-c", "import hdiffpatch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Hdp {
        label: "PyPI binding, best of lzma2/lzma/zstd",
        python: Some(python.to_string()),
    })
}

fn json_size(o: &Outcome) -> String {
    match o {
        Outcome::Ok { size, .. } => size.to_string(),
        _ => "null".into(),
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_run(r: &Run) -> String {
    match r.peak_kib {
        Some(k) if k >= 10 * 1024 => format!("{:.1}s/{}M", r.secs, k / 1024),
        Some(k) => format!("{:.1}s/{:.1}M", r.secs, k as f64 / 1024.0),
        None => format!("{:.1}s", r.secs),
    }
}

fn fmt_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Missing => "missing/skipped".into(),
        Outcome::Failed(why) => format!("failed: {why}"),
        Outcome::Ok {
            size,
            create,
            apply,
            verified,
        } => {
            let mut s = format!("{} (c {}", group(*size), fmt_run(create));
            if let Some(a) = apply {
                s.push_str(&format!(", a {}", fmt_run(a)));
            }
            s.push(')');
            if !verified {
                s.push_str(" WRONG OUTPUT");
            }
            s
        }
    }
}

fn sha_file(p: &Path) -> Option<[u8; 32]> {
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(h.finalize().into())
}

fn on_path(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Runs `create` (and `apply` if given), checks the applied output against `new_sha`.
fn run_pair(
    have_time: bool,
    timeout: Duration,
    create: (&str, &[&str]),
    apply: Option<(&str, &[&str])>,
    patch: &Path,
    out: &Path,
    new_sha: &Option<[u8; 32]>,
) -> Outcome {
    if !on_path(create.0) || apply.is_some_and(|a| !on_path(a.0)) {
        return Outcome::Missing;
    }
    let c = match timed(have_time, timeout, create.0, create.1) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    let size = std::fs::metadata(patch).map(|m| m.len()).unwrap_or(0);
    let (a, verified) = match apply {
        Some((tool, args)) => match timed(have_time, timeout, tool, args) {
            Ok(r) => {
                let ok = new_sha.is_some() && sha_file(out) == *new_sha;
                let _ = std::fs::remove_file(out);
                (Some(r), ok)
            }
            Err(e) => return Outcome::Failed(format!("apply: {e}")),
        },
        None => (None, true),
    };
    Outcome::Ok {
        size,
        create: c,
        apply: a,
        verified,
    }
}

/// Runs one command under `/usr/bin/time -v` (when present) and returns wall time and peak RSS.
fn timed(have_time: bool, timeout: Duration, tool: &str, args: &[&str]) -> Result<Run, String> {
    let mut cmd = if have_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-v").arg(tool).args(args);
        c
    } else {
        let mut c = Command::new(tool);
        c.args(args);
        c
    };
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {tool}: {e}"))?;
    let pid = child.id();
    // Read stderr on a thread so a chatty tool cannot block on a full pipe.
    let mut err_pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = std::io::Read::read_to_string(p, &mut s);
        }
        s
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > timeout => {
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{pid}")])
                    .status();
                let _ = child.wait();
                return Err(format!("timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        let last = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        return Err(format!("{tool} exited with {status}: {last}"));
    }
    let peak_kib = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok());
    for l in stderr
        .lines()
        .filter(|l| l.starts_with("chosen") || l.starts_with("  candidate"))
    {
        eprintln!("    {l}");
    }
    Ok(Run { secs, peak_kib })
}
