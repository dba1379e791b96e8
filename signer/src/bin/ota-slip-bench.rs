//! ota-slip-bench: the per-device key slips of one release to N devices, published the two
//! ways `ota-sign add --slips` offers, in the same run: one file per device (`files`) and one
//! slip bundle per release read with one Range request (`bundle`). Prints, for each, the time
//! and CPU time to make them, the signer's peak memory, what a CDN must hold and upload (files,
//! bytes, disk blocks), and what a device fetches (requests, bytes, and the index the bundle
//! adds to the signed targets metadata that every device downloads), with the ratios.
//!
//! Each layout runs in a child process of its own (this program re-executed), so its peak
//! memory (VmHWM) and CPU time are its own. The fleet is N random X25519 public keys in an
//! `ota-recipients.json`, read the way `ota-sign add --encrypt-to all-devices` reads it; a few
//! devices have real key pairs and open their slips both ways, so nothing is timed that does
//! not work.
//!
//! Exit codes: 0 success, 1 a run failed or a device could not open its slip, 2 usage.

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::ProgressBar;
use ota_formats::envelope::{
    bundle_path, slip_path, unwrap_key, DataKey, EncryptionInfo, KeySlip, PayloadId, PayloadInfo,
    RecipientPublicKey, RecipientSecretKey, SlipBinding, SlipBundleIndex,
};
use ota_signer::encrypt::{self, SlipLayout};
use ota_signer::recipients::{self, Device, Recipients, Selector};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const TARGET: &str = "gw-1.0.0.img.zst";
/// Devices with real key pairs (their secrets in `secrets.txt`).
const REAL: usize = 16;

#[derive(Parser)]
#[command(
    name = "ota-slip-bench",
    about = "Per-device key slips for N devices: one file per device vs one slip bundle",
    after_help = "Example:\n  cargo run --release -p ota-signer --bin ota-slip-bench -- --devices 1000000\n\n\
Needs about 5 KiB of disk per device for the files layout (one file system block each)."
)]
struct Cli {
    /// Number of devices.
    #[arg(long, default_value_t = 100_000)]
    devices: usize,
    /// Work directory (default: a temporary directory in the current one).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Subcommand)]
enum Child {
    /// (internal) make the slips of the repository in DIR one way and report.
    Run {
        repo: PathBuf,
        #[arg(value_enum)]
        layout: Layout,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Layout {
    Files,
    Bundle,
}

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.child {
        Some(Child::Run { repo, layout }) => child(repo, *layout),
        None => parent(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ota-slip-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// What a child reports, one `key=value` per line.
#[derive(Default, Debug)]
struct Measured {
    wall_s: f64,
    cpu_s: f64,
    peak_kib: u64,
    files: u64,
    bytes: u64,
    disk_bytes: u64,
    index_json: u64,
    fetch_avg: f64,
    fetch_max: u64,
}

fn parent(cli: &Cli) -> Result<(), BoxError> {
    let base = match &cli.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::tempdir_in(d)?
        }
        None => tempfile::tempdir_in(".")?,
    };
    let n = cli.devices.max(REAL);
    eprintln!("writing a fleet of {n} devices...");
    let started = Instant::now();
    let fleet = base.path().join("fleet");
    std::fs::create_dir_all(fleet.join("targets"))?;
    write_fleet(&fleet, n)?;
    eprintln!("  {:.1} s", started.elapsed().as_secs_f64());
    let exe = std::env::current_exe()?;
    let mut results = Vec::new();
    for (layout, name) in [(Layout::Files, "files"), (Layout::Bundle, "bundle")] {
        // A fresh copy of the fleet's directory each time (the slips go into targets/).
        let repo = base.path().join(name);
        std::fs::create_dir_all(repo.join("targets"))?;
        std::fs::hard_link(recipients::path(&fleet), recipients::path(&repo))?;
        std::fs::copy(fleet.join("secrets.txt"), repo.join("secrets.txt"))?;
        eprintln!("{name}: making {n} slips...");
        let out = Command::new(&exe)
            .args(["run", &repo.display().to_string(), name])
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "{name} run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        results.push(parse(&String::from_utf8_lossy(&out.stdout))?);
        let _ = layout;
        std::fs::remove_dir_all(&repo)?;
    }
    print_table(n, &results[0], &results[1]);
    Ok(())
}

/// `ota-recipients.json` with `n` devices, the first [`REAL`] with key pairs whose secrets
/// go to `secrets.txt`, the others random public keys (any 32 bytes are an X25519 key).
fn write_fleet(dir: &Path, n: usize) -> Result<(), BoxError> {
    let mut secrets = String::new();
    let mut devices = Vec::with_capacity(n);
    let mut raw = vec![0u8; 32 * n];
    getrandom(&mut raw)?;
    for i in 0..n {
        let public = if i < REAL {
            let s = RecipientSecretKey::generate();
            secrets.push_str(&format!("{}\n", s.to_text().as_str()));
            s.public_key().clone()
        } else {
            RecipientPublicKey::from_bytes(&raw[32 * i..32 * i + 32])?
        };
        devices.push(Device {
            name: format!("dev-{i:08}"),
            recipient_id: public.id(),
            public_key: public,
            group: None,
        });
    }
    let r = Recipients {
        devices,
        ..Recipients::default()
    };
    r.save(dir)?;
    std::fs::write(dir.join("secrets.txt"), secrets)?;
    Ok(())
}

fn getrandom(buf: &mut [u8]) -> Result<(), BoxError> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)?;
    Ok(())
}

/// A child: resolve `all-devices` from the repository as `ota-sign add` does, make the slips
/// one way, then look at what a CDN and a device get.
fn child(repo: &Path, layout: Layout) -> Result<(), BoxError> {
    let resolved = recipients::resolve(repo, &[Selector::AllDevices], &[])?;
    let key = DataKey::generate();
    let mut info = EncryptionInfo::new(&PayloadInfo {
        payload_id: PayloadId([7; 16]),
        chunk_size: 65536,
        plaintext_len: 1,
        ciphertext_len: 1,
    });
    let targets = repo.join("targets");
    let bar = ProgressBar::hidden();
    let cpu0 = cpu_seconds()?;
    let started = Instant::now();
    let (path, count) = match layout {
        Layout::Files => {
            encrypt::write_device_slips(&key, &mut info, &targets, TARGET, &resolved.devices, &bar)?
        }
        Layout::Bundle => {
            encrypt::write_slip_bundle(&key, &mut info, &targets, TARGET, &resolved.devices, &bar)?
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds()? - cpu0;
    let peak_kib = peak_kib()?;
    if count != resolved.devices.len() {
        return Err(format!("{count} slips for {} devices", resolved.devices.len()).into());
    }
    let _ = SlipLayout::Files;
    let mut m = Measured {
        wall_s,
        cpu_s,
        peak_kib,
        ..Measured::default()
    };
    // What the CDN holds.
    if path.is_dir() {
        for e in std::fs::read_dir(&path)? {
            let meta = e?.metadata()?;
            m.files += 1;
            m.bytes += meta.len();
            m.disk_bytes += meta.blocks() * 512;
        }
    } else {
        let meta = std::fs::metadata(&path)?;
        m.files = 1;
        m.bytes = meta.len();
        m.disk_bytes = meta.blocks() * 512;
    }
    // What devices fetch: the real ones open their slips; the fetch sizes are the same for all.
    let binding = SlipBinding::new(TARGET, info.payload_id);
    let secrets = std::fs::read_to_string(repo.join("secrets.txt"))?;
    let mut fetched = Vec::new();
    for line in secrets.lines() {
        let secret = RecipientSecretKey::from_text(line)?;
        let slip = match &info.slip_bundle {
            None => {
                let bytes = std::fs::read(targets.join(slip_path(TARGET, &secret.id())))?;
                fetched.push(bytes.len() as u64);
                KeySlip::from_bytes(&bytes)?
            }
            Some(index) => {
                m.index_json = serde_json::to_vec(index)?.len() as u64;
                let block = range(&targets.join(bundle_path(TARGET)), index, &secret)?;
                fetched.push(block.len() as u64);
                index
                    .find(&secret.id(), &block, &binding)?
                    .ok_or("a device's slip is missing from its block")?
            }
        };
        let got = unwrap_key(&slip, &secret, &binding)?;
        if got.expose_secret() != key.expose_secret() {
            return Err("a device got another data key".into());
        }
    }
    if let Some(index) = &info.slip_bundle {
        // Block sizes over the whole id space, not only the sampled devices'.
        fetched = block_sizes(index)?;
    }
    m.fetch_max = fetched.iter().copied().max().unwrap_or(0);
    m.fetch_avg = fetched.iter().sum::<u64>() as f64 / fetched.len().max(1) as f64;
    println!(
        "wall_s={}\ncpu_s={}\npeak_kib={}\nfiles={}\nbytes={}\ndisk_bytes={}\nindex_json={}\nfetch_avg={}\nfetch_max={}",
        m.wall_s, m.cpu_s, m.peak_kib, m.files, m.bytes, m.disk_bytes, m.index_json, m.fetch_avg, m.fetch_max
    );
    Ok(())
}

/// The one Range request of a device: its block of the bundle.
fn range(
    bundle: &Path,
    index: &SlipBundleIndex,
    secret: &RecipientSecretKey,
) -> Result<Vec<u8>, BoxError> {
    let (_, at, len) = index.block_for(&secret.id())?;
    let mut f = std::fs::File::open(bundle)?;
    f.seek(SeekFrom::Start(at))?;
    let mut block = vec![0u8; usize::try_from(len)?];
    f.read_exact(&mut block)?;
    Ok(block)
}

/// The length of every block of the bundle (what the device owning an id in it fetches).
fn block_sizes(index: &SlipBundleIndex) -> Result<Vec<u64>, BoxError> {
    let blocks = 1u32 << index.block_bits;
    (0..blocks)
        .map(|k| {
            // An id whose top bits are k.
            let mut id = [0u8; 16];
            let top = if index.block_bits == 0 {
                0
            } else {
                k << (32 - u32::from(index.block_bits))
            };
            id[..4].copy_from_slice(&top.to_be_bytes());
            Ok(index.block_for(&ota_formats::envelope::RecipientId(id))?.2)
        })
        .collect()
}

fn status_field(name: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .ok_or("no such field in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("bad /proc/self/status")?
        .parse()?)
}

fn peak_kib() -> Result<u64, BoxError> {
    status_field("VmHWM:")
}

/// User + system CPU time of this process (all threads), from /proc/self/stat.
fn cpu_seconds() -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').ok_or("bad /proc/self/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let utime: u64 = fields.get(11).ok_or("bad /proc/self/stat")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("bad /proc/self/stat")?.parse()?;
    Ok((utime + stime) as f64 / 100.0)
}

fn parse(text: &str) -> Result<Measured, BoxError> {
    let mut m = Measured::default();
    for line in text.lines() {
        let (k, v) = line.split_once('=').ok_or("bad child report")?;
        match k {
            "wall_s" => m.wall_s = v.parse()?,
            "cpu_s" => m.cpu_s = v.parse()?,
            "peak_kib" => m.peak_kib = v.parse()?,
            "files" => m.files = v.parse()?,
            "bytes" => m.bytes = v.parse()?,
            "disk_bytes" => m.disk_bytes = v.parse()?,
            "index_json" => m.index_json = v.parse()?,
            "fetch_avg" => m.fetch_avg = v.parse()?,
            "fetch_max" => m.fetch_max = v.parse()?,
            _ => {}
        }
    }
    Ok(m)
}

fn print_table(n: usize, files: &Measured, bundle: &Measured) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nslip bench: {n} devices, {cores} cores (files = one file per device, bundle = one file per release)");
    let _ = writeln!(out, "| measure                                  | files          | bundle         | files / bundle |");
    let _ = writeln!(out, "|------------------------------------------|----------------|----------------|----------------|");
    let mut row = |what: &str, a: String, b: String, r: f64| {
        let _ = writeln!(out, "| {what:<40} | {a:>14} | {b:>14} | {r:>13.1}x |");
    };
    row(
        "signer: time to make and publish",
        format!("{:.1} s", files.wall_s),
        format!("{:.1} s", bundle.wall_s),
        ratio(files.wall_s, bundle.wall_s),
    );
    row(
        "signer: CPU time (all threads)",
        format!("{:.1} s", files.cpu_s),
        format!("{:.1} s", bundle.cpu_s),
        ratio(files.cpu_s, bundle.cpu_s),
    );
    row(
        "signer: peak RSS",
        format!("{:.1} MiB", files.peak_kib as f64 / 1024.0),
        format!("{:.1} MiB", bundle.peak_kib as f64 / 1024.0),
        ratio(files.peak_kib as f64, bundle.peak_kib as f64),
    );
    row(
        "CDN: files to upload and hold",
        files.files.to_string(),
        bundle.files.to_string(),
        ratio(files.files as f64, bundle.files as f64),
    );
    row(
        "CDN: bytes published",
        format!("{:.1} MB", files.bytes as f64 / 1e6),
        format!("{:.1} MB", bundle.bytes as f64 / 1e6),
        ratio(files.bytes as f64, bundle.bytes as f64),
    );
    row(
        "CDN: disk used (file system blocks)",
        format!("{:.1} MB", files.disk_bytes as f64 / 1e6),
        format!("{:.1} MB", bundle.disk_bytes as f64 / 1e6),
        ratio(files.disk_bytes as f64, bundle.disk_bytes as f64),
    );
    row(
        "CDN: origin fetches if each device asks once",
        files.files.to_string(),
        "1 per edge".into(),
        ratio(files.files as f64, 1.0),
    );
    row(
        "device: requests for its slip",
        "1".into(),
        "1 (Range)".into(),
        1.0,
    );
    row(
        "device: slip bytes fetched (average)",
        format!("{:.0} B", files.fetch_avg),
        format!("{:.0} B", bundle.fetch_avg),
        ratio(files.fetch_avg, bundle.fetch_avg),
    );
    row(
        "device: slip bytes fetched (largest)",
        format!("{} B", files.fetch_max),
        format!("{} B", bundle.fetch_max),
        ratio(files.fetch_max as f64, bundle.fetch_max as f64),
    );
    row(
        "every device: index in targets metadata",
        "0 B".into(),
        format!("{} B", bundle.index_json),
        0.0,
    );
}
