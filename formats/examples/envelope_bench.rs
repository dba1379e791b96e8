//! Benchmark of the envelope: encrypt and decrypt a 256 MiB payload file, the peak memory of a
//! decrypting process, and the time to make per-device key slips for 100,000 devices.
//!
//! ```text
//! cargo run --release -p ota-formats --example envelope_bench [-- --size-mib 256 --devices 100000]
//! ```
//!
//! Decryption runs in a fresh child process (this program re-executed with `decrypt`), reading
//! the encrypted file and writing to a sink, so its VmHWM (peak resident set) shows what a
//! device needs, untouched by the parent's allocations.

use ota_formats::envelope::*;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("decrypt") {
        return child_decrypt(&args[2..]);
    }
    let mut size_mib: u64 = 256;
    let mut devices: usize = 100_000;
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().ok_or("missing value after option")?;
        match arg.as_str() {
            "--size-mib" => size_mib = value.parse()?,
            "--devices" => devices = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    run(size_mib, devices)
}

fn run(size_mib: u64, devices: usize) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir()?;
    let plain_path = dir.path().join("payload.bin");
    let sealed_path = dir.path().join("payload.bin.enc");
    let key_path = dir.path().join("data.key");
    let len = size_mib * 1024 * 1024;

    eprintln!("writing a {size_mib} MiB payload file...");
    let plain_sha = write_payload(&plain_path, len)?;

    let key = DataKey::generate();
    std::fs::write(&key_path, key.expose_secret())?;
    eprintln!("encrypting...");
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&sealed_path)?);
    let info = encrypt_stream(
        File::open(&plain_path)?,
        &mut out,
        &key,
        &EncryptParams::new(len),
    )?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let encrypt_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    encrypt_stream(
        File::open(&plain_path)?,
        std::io::sink(),
        &key,
        &EncryptParams::new(len),
    )?;
    let encrypt_sink_secs = started.elapsed().as_secs_f64();
    std::fs::remove_file(&plain_path)?;

    eprintln!("decrypting in a child process...");
    let exe = std::env::current_exe()?;
    let child = |verify: bool| -> Result<ChildReport, BoxError> {
        let output = Command::new(&exe)
            .arg("decrypt")
            .arg(&sealed_path)
            .arg(&key_path)
            .arg(if verify { "hash" } else { "sink" })
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "decrypt child failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        ChildReport::parse(&String::from_utf8_lossy(&output.stdout))
    };
    let timed = child(false)?;
    let verified = child(true)?;
    if verified.sha256 != plain_sha || timed.bytes != len {
        return Err("decrypted payload differs from the original".into());
    }

    eprintln!("generating {devices} device keys...");
    let recipients = generate_publics(devices, cores);
    let binding = SlipBinding::new("fw/board-a-2.1.bin", info.payload_id);
    eprintln!("wrapping...");
    let started = Instant::now();
    let slips = wrap_keys(&key, &recipients, &binding)?;
    let mut slip_bytes = 0usize;
    for slip in &slips {
        slip_bytes += slip.to_bytes()?.len();
    }
    let slip_secs = started.elapsed().as_secs_f64();
    check_sample_slips(&slips, &recipients, &binding)?;

    let mib = len as f64 / (1024.0 * 1024.0);
    println!();
    println!(
        "envelope bench: {size_mib} MiB payload, chunk {} KiB, {cores} core(s)",
        info.chunk_size / 1024
    );
    println!("| measure                                   | result");
    println!(
        "|-------------------------------------------|------------------------------------------"
    );
    println!(
        "| encrypt, file -> file (incl. fsync)       | {:8.1} MiB/s  ({encrypt_secs:.2} s)",
        mib / encrypt_secs
    );
    println!(
        "| encrypt, file -> sink                     | {:8.1} MiB/s  ({encrypt_sink_secs:.2} s)",
        mib / encrypt_sink_secs
    );
    println!(
        "| decrypt, file -> sink (child process)     | {:8.1} MiB/s  ({:.2} s)",
        mib / timed.secs,
        timed.secs
    );
    println!(
        "| decrypt + sha256 check of the plaintext   | {:8.1} MiB/s  (plaintext matches: yes)",
        mib / verified.secs
    );
    println!(
        "| decrypting process peak RSS (VmHWM)       | {} KiB before, {} KiB after decrypting {size_mib} MiB",
        timed.hwm_before_kib, timed.hwm_after_kib
    );
    println!(
        "| per-device key slips, {devices:>7} devices    | {slip_secs:8.2} s  ({:.0} slips/s, {cores} threads, {:.1} MB of slip files)",
        devices as f64 / slip_secs,
        slip_bytes as f64 / 1e6
    );
    println!(
        "| ciphertext overhead                       | {} bytes ({} chunks x 16 + 80 header)",
        info.ciphertext_len - info.plaintext_len,
        info.plaintext_len
            .div_ceil(u64::from(info.chunk_size))
            .max(1)
    );
    Ok(())
}

/// Writes `len` pseudo-random bytes (xorshift, so compressed-looking data) in 1 MiB pieces
/// and returns their sha256.
fn write_payload(path: &Path, len: u64) -> Result<[u8; 32], BoxError> {
    let mut out = BufWriter::new(File::create(path)?);
    let mut hasher = Sha256::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(hasher.finalize().into())
}

fn generate_publics(count: usize, threads: usize) -> Vec<RecipientPublicKey> {
    let per = count.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..count)
            .step_by(per)
            .map(|start| {
                let n = per.min(count - start);
                scope.spawn(move || {
                    (0..n)
                        .map(|_| RecipientSecretKey::generate().public_key().clone())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

fn check_sample_slips(
    slips: &[KeySlip],
    recipients: &[RecipientPublicKey],
    binding: &SlipBinding,
) -> Result<(), BoxError> {
    if slips.len() != recipients.len() {
        return Err("wrong number of slips".into());
    }
    for (slip, recipient) in slips.iter().zip(recipients).step_by(997) {
        if slip.recipient != recipient.id() || slip.target != binding.target {
            return Err("slip for the wrong recipient".into());
        }
    }
    Ok(())
}

/// Child mode: `decrypt <sealed> <key file> sink|hash`. Prints one line of `name=value`.
fn child_decrypt(args: &[String]) -> Result<(), BoxError> {
    let [sealed, key_file, mode] = args else {
        return Err("usage: envelope_bench decrypt <sealed> <key file> sink|hash".into());
    };
    let mut raw = [0u8; DATA_KEY_LEN];
    File::open(key_file)?.read_exact(&mut raw)?;
    let key = DataKey::from_bytes(raw);
    let hwm_before = vm_hwm_kib()?;
    let input = File::open(sealed)?;
    let started = Instant::now();
    let (bytes, sha) = if mode == "hash" {
        let mut sink = HashSink(Sha256::new());
        let n = decrypt_stream(input, &mut sink, &key)?;
        (n, hex::encode(sink.0.finalize()))
    } else {
        (
            decrypt_stream(input, std::io::sink(), &key)?,
            String::from("-"),
        )
    };
    let secs = started.elapsed().as_secs_f64();
    let hwm_after = vm_hwm_kib()?;
    println!(
        "secs={secs} bytes={bytes} hwm_before={hwm_before} hwm_after={hwm_after} sha256={sha}"
    );
    Ok(())
}

struct HashSink(Sha256);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Peak resident set size of this process, from /proc/self/status.
fn vm_hwm_kib() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmHWM line")?
        .parse()?;
    Ok(kib)
}

struct ChildReport {
    secs: f64,
    bytes: u64,
    hwm_before_kib: u64,
    hwm_after_kib: u64,
    sha256: [u8; 32],
}

impl ChildReport {
    fn parse(line: &str) -> Result<Self, BoxError> {
        let field = |name: &str| -> Result<&str, BoxError> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| format!("child output lacks {name}: {line}").into())
        };
        let mut sha256 = [0u8; 32];
        if let Ok(bytes) = hex::decode(field("sha256")?) {
            if bytes.len() == 32 {
                sha256.copy_from_slice(&bytes);
            }
        }
        Ok(Self {
            secs: field("secs")?.parse()?,
            bytes: field("bytes")?.parse()?,
            hwm_before_kib: field("hwm_before")?.parse()?,
            hwm_after_kib: field("hwm_after")?.parse()?,
            sha256,
        })
    }
}
