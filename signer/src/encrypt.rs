//! Encryption of a compressed target for its recipients (the envelope of
//! `ota_formats::envelope`, specified in `formats/ENVELOPE.md`).
//!
//! The zstd stream is encrypted under a fresh data key into a temp file next to its final
//! place, streaming (memory bounded by one 64 KiB chunk), then decrypted once more and compared
//! with the compressed hash. Group slips go into the signed metadata; per-device slips are
//! written into a temp directory, flushed to disk, and renamed to `<target>.slips/` in one
//! step, before the payload and the metadata that reference them.
use crate::compress::Compressed;
use crate::recipients::{DeviceList, Resolved, RECIPIENTS_FILE};
use crate::{Error, Result};
use indicatif::ProgressBar;
use ota_formats::envelope::{
    block_bits_for, block_of, bundle_header, bundle_path, bundle_record, decrypt_stream_checked,
    encrypt_stream, record_id, slip_path, wrap_key, DataKey, EncryptParams, EncryptionInfo,
    KeySlip, RecipientPublicKey, SlipBinding, SlipBundleIndex, SlipSealer, RECORD_LEN,
};
use ota_formats::hash::HashingWriter;
use ota_fs::atomic::{self, PendingFile, TEMP_PREFIX};
use ota_fs::mode::{self, PUBLIC_DIR, PUBLIC_FILE};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// Device keys handed to a slip worker at a time (bounds memory and paces the progress bar).
const SLIP_BATCH: usize = 1024;

/// Suffix of the per-device slip directory of a target (`<target>.slips`).
pub const SLIPS_DIR_SUFFIX: &str = ".slips";

/// An encrypted target waiting in a temp file, with its metadata (slips still to add).
#[derive(Debug)]
pub struct Encrypted {
    /// The encrypted file, in the shape of a compressed one so it is placed the same way:
    /// `length`/`sha256` are the encrypted bytes', the image fields stay the plain image's.
    pub target: Compressed,
    /// `custom.ota.encryption`, without slips yet.
    pub info: EncryptionInfo,
    /// The data key (wiped on drop).
    pub key: DataKey,
}

/// Directory of the per-device slips of `target_path` in the repository's targets directory.
pub fn slips_dir(targets_dir: &Path, target_path: &str) -> PathBuf {
    targets_dir.join(format!("{target_path}{SLIPS_DIR_SUFFIX}"))
}

/// Encrypt the compressed target under a fresh data key into a temp file in `dest_dir`.
pub fn encrypt(c: Compressed, dest_dir: &Path, bar: &ProgressBar) -> Result<Encrypted> {
    let key = DataKey::generate();
    let tmp = atomic::temp_in(dest_dir).map_err(|e| Error::write(dest_dir, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let werr = |e: io::Error| Error::write(&tmp_path, e);
    let src = File::open(c.file.path()).map_err(|e| Error::write(c.file.path(), e))?;
    let mut out = HashingWriter::new(BufWriter::new(tmp.as_file().try_clone().map_err(werr)?));
    let reader = bar.wrap_read(BufReader::with_capacity(1 << 20, src));
    let payload = encrypt_stream(reader, &mut out, &key, &EncryptParams::new(c.length))
        .map_err(|e| Error::write(&tmp_path, e))?;
    let (buffered, out) = out.finish();
    let inner = buffered.into_inner().map_err(|e| werr(e.into_error()))?;
    inner.sync_all().map_err(werr)?;
    if out.length != payload.ciphertext_len {
        return Err(Error::write(
            &tmp_path,
            format!(
                "wrote {} bytes, the envelope says {}",
                out.length, payload.ciphertext_len
            ),
        ));
    }
    let target = Compressed {
        file: tmp,
        length: out.length,
        sha256: out.sha256_hex(),
        image_length: c.image_length,
        image_sha256: c.image_sha256.clone(),
    };
    Ok(Encrypted {
        target,
        info: EncryptionInfo::new(&payload),
        key,
    })
}

/// Decrypt the encrypted temp file and check it gives back the compressed stream
/// (`length`, `sha256`), so a target is never published that its recipients cannot read.
pub fn verify(e: &Encrypted, length: u64, sha256: &str, bar: &ProgressBar) -> Result<()> {
    let path = e.target.file.path();
    let fail = |why: String| Error::Io {
        msg: format!(
            "encrypted target {} does not decrypt to the compressed image: {why}",
            path.display()
        ),
        hint: "nothing was published; re-run the command, and check the disk if it happens again"
            .into(),
    };
    let file = File::open(path).map_err(|err| fail(err.to_string()))?;
    let mut sink = HashingWriter::new(io::sink());
    let reader = bar.wrap_read(BufReader::with_capacity(1 << 20, file));
    decrypt_stream_checked(reader, &mut sink, &e.key, &e.info)
        .map_err(|err| fail(err.to_string()))?;
    let (_, got) = sink.finish();
    if !got.matches(length, sha256) {
        return Err(fail(format!(
            "got {} bytes with sha256 {}",
            got.length,
            got.sha256_hex()
        )));
    }
    Ok(())
}

/// Wrap the data key for every group (slips go into `info.slips`).
pub fn add_group_slips(
    e: &mut Encrypted,
    target_path: &str,
    groups: &[(String, RecipientPublicKey)],
) -> Result<()> {
    let binding = e.info.binding(target_path);
    for (name, key) in groups {
        let slip = wrap_key(&e.key, key, &binding).map_err(|err| {
            Error::input(
                format!("cannot wrap the data key for group {name}: {err}"),
                "check the group's public key in ota-recipients.json",
            )
        })?;
        e.info.slips.push(slip);
    }
    Ok(())
}

/// Remove slip temp directories left by crashed runs. Call only while holding the lock.
pub fn remove_stale_slip_dirs(targets_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(targets_dir) else {
        return;
    };
    for e in entries.flatten() {
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            tracing::debug!(path = %e.path().display(), "removing a slip directory of a crashed run");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Write one slip file per device into a temp directory of `targets_dir`, flush them all
/// to disk, and rename the directory to `<target>.slips`. Sets `info.device_slips`.
///
/// A streaming pipeline: this thread reads the devices (all of them are read from
/// `ota-recipients.json` as they come, never held) and hands batches of keys through a short
/// queue to one sealing worker per core; one writer thread creates the files (creating files
/// in one directory is serialised by the kernel anyway; several writers only spin on its
/// lock). Memory is a few batches whatever the fleet size.
///
/// Returns the directory and the number of slips. Any existing `<target>.slips` must have
/// been dealt with by the caller (it is never replaced).
pub fn write_device_slips(
    key: &DataKey,
    info: &mut EncryptionInfo,
    targets_dir: &Path,
    target_path: &str,
    devices: &DeviceList,
    bar: &ProgressBar,
) -> Result<(PathBuf, u64)> {
    let final_dir = slips_dir(targets_dir, target_path);
    let tmp_dir = targets_dir.join(format!(
        "{TEMP_PREFIX}slips-{}-{}",
        std::process::id(),
        info.payload_id
    ));
    // Published: 0755 exactly, whatever the umask, so a web server user can enter it.
    std::fs::create_dir(&tmp_dir)
        .and_then(|()| mode::set(&tmp_dir, PUBLIC_DIR))
        .map_err(|err| Error::write(&tmp_dir, err))?;
    let binding = SlipBinding::new(target_path, info.payload_id);
    let result = fill_slip_dir(key, &binding, &tmp_dir, devices, bar);
    let count = match result {
        Ok(n) => n,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&tmp_dir);
            return Err(err);
        }
    };
    std::fs::rename(&tmp_dir, &final_dir).map_err(|err| Error::write(&final_dir, err))?;
    atomic::sync_dir(targets_dir).map_err(|err| Error::write(targets_dir, err))?;
    info.device_slips = true;
    Ok((final_dir, count))
}

/// The pipeline of [`write_device_slips`] into `dir`, flushed to disk; the number of slips.
fn fill_slip_dir(
    key: &DataKey,
    binding: &SlipBinding,
    dir: &Path,
    devices: &DeviceList,
    bar: &ProgressBar,
) -> Result<u64> {
    let out = SlipDir::open(dir)?;
    let started = Instant::now();
    let count = seal_all(key, binding, devices, bar, |batch| {
        batch.iter().try_for_each(|slip| out.write(slip))
    })?;
    let wrote = started.elapsed();
    // One file-system flush instead of one fsync per file (100,000 fsyncs take minutes).
    rustix::fs::syncfs(&out.fd).map_err(|err| Error::write(dir, io::Error::from(err)))?;
    tracing::debug!(
        slips = count,
        wrap_and_write_s = wrote.as_secs_f64(),
        sync_s = (started.elapsed() - wrote).as_secs_f64(),
        "per-device slips"
    );
    Ok(count)
}

/// Wrap `key` for every device of `devices`, bound to `binding`, and hand the slips in
/// batches to `sink`, which runs on one writer thread. This thread reads the devices (a
/// streamed list is never held) and hands batches of keys through a short queue to one
/// sealing worker per core. Returns the number of slips `sink` took.
pub fn seal_all(
    key: &DataKey,
    binding: &SlipBinding,
    devices: &DeviceList,
    bar: &ProgressBar,
    mut sink: impl FnMut(&[KeySlip]) -> Result<()> + Send,
) -> Result<u64> {
    let sealer = SlipSealer::new(key, binding).map_err(|err| {
        Error::input(
            format!("cannot wrap the data key for {}: {err}", binding.target),
            "report this bug",
        )
    })?;
    let written = AtomicU64::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 16));
    let (keys_tx, keys_rx) = mpsc::sync_channel::<Vec<RecipientPublicKey>>(2 * workers);
    let (slips_tx, slips_rx) = mpsc::sync_channel::<Vec<KeySlip>>(2 * workers);
    let keys_rx = Mutex::new(keys_rx);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    let fail = |err: Error| {
        failed.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = failure.lock() {
            slot.get_or_insert(err);
        }
    };
    let read = std::thread::scope(|scope| {
        for _ in 0..workers {
            let slips_tx = slips_tx.clone();
            scope.spawn(|| {
                let slips_tx = slips_tx;
                loop {
                    let batch = match keys_rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    // Closed: all batches are done. After a failure, keep draining so the
                    // reader never blocks.
                    let Ok(batch) = batch else { return };
                    if failed.load(Ordering::SeqCst) {
                        continue;
                    }
                    let sealed: Result<Vec<KeySlip>> = batch
                        .iter()
                        .map(|key| {
                            sealer.seal(key).map_err(|err| {
                                Error::input(
                                    format!(
                                        "cannot wrap the data key for device key {}: {err}",
                                        key.id()
                                    ),
                                    "check the device keys in ota-recipients.json",
                                )
                            })
                        })
                        .collect();
                    match sealed {
                        Ok(slips) => {
                            if slips_tx.send(slips).is_err() {
                                return;
                            }
                        }
                        Err(err) => fail(err),
                    }
                }
            });
        }
        drop(slips_tx);
        let sink = &mut sink;
        scope.spawn(|| {
            for batch in slips_rx {
                if failed.load(Ordering::SeqCst) {
                    continue;
                }
                if let Err(err) = sink(&batch) {
                    fail(err);
                    continue;
                }
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                bar.inc(batch.len() as u64);
            }
        });
        let read = devices.for_each_batch(SLIP_BATCH, |batch| {
            if failed.load(Ordering::SeqCst) {
                return Err(Error::input("stopped", "-"));
            }
            keys_tx
                .send(batch)
                .map_err(|_| Error::input("the slip workers stopped", "-"))
        });
        drop(keys_tx);
        read
    });
    if let Some(err) = failure.into_inner().ok().flatten() {
        return Err(err);
    }
    read?;
    Ok(written.into_inner())
}

/// `Error::write` of `path`, for `map_err`.
fn werr(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |err| Error::write(path, err)
}

/// Records of a slip bundle per spill file while it is written (about 1.5 MB, sorted in
/// memory one spill at a time).
const SPILL_RECORDS: u64 = 16384;
/// Records per block of a slip bundle that a device fetches (about 96 KiB).
pub const BUNDLE_BLOCK_RECORDS: u64 = 1024;

/// Write every device's slip into one file, `<target>.slipbundle` in `targets_dir` (see
/// `ota_formats::envelope::SlipBundleIndex`), and set `info.slip_bundle` to its index.
///
/// The slips are made by [`seal_all`] and spread by the top bits of their recipient id
/// over spill files (ids are SHA-256 prefixes, so evenly); each spill is then sorted in
/// memory and appended: memory stays about one spill whatever the fleet size. Returns the
/// bundle's path and the number of slips. An existing bundle is never replaced.
pub fn write_slip_bundle(
    key: &DataKey,
    info: &mut EncryptionInfo,
    targets_dir: &Path,
    target_path: &str,
    devices: &DeviceList,
    bar: &ProgressBar,
) -> Result<(PathBuf, u64)> {
    let dest = targets_dir.join(bundle_path(target_path));
    let n = devices.len();
    let records = u32::try_from(n).map_err(|_| {
        Error::input(
            format!("{n} devices do not fit a slip bundle"),
            "split the fleet into groups",
        )
    })?;
    let bits = block_bits_for(n, BUNDLE_BLOCK_RECORDS);
    let spill_bits = block_bits_for(n, SPILL_RECORDS).min(bits);
    let mut spills = (0..1usize << spill_bits)
        .map(|_| tempfile::tempfile_in(targets_dir).map(|f| BufWriter::with_capacity(16 << 10, f)))
        .collect::<io::Result<Vec<_>>>()
        .map_err(werr(targets_dir))?;
    let binding = SlipBinding::new(target_path, info.payload_id);
    let started = Instant::now();
    let count = seal_all(key, &binding, devices, bar, |batch| {
        for slip in batch {
            spills[block_of(&slip.recipient, spill_bits)]
                .write_all(&bundle_record(slip))
                .map_err(werr(targets_dir))?;
        }
        Ok(())
    })?;
    let sealed = started.elapsed();
    if count != n {
        return Err(Error::write(
            targets_dir,
            format!("{count} slips made for {n} devices"),
        ));
    }
    let mut out = PendingFile::new(&dest, PUBLIC_FILE).map_err(werr(&dest))?;
    let header = bundle_header(&binding, records).map_err(|err| Error::write(&dest, err))?;
    let mut w = BufWriter::with_capacity(1 << 20, out.file_mut());
    w.write_all(&header).map_err(werr(&dest))?;
    let mut starts = vec![0u32; 1 << bits];
    let mut next_block = 0usize;
    let mut at = 0u32;
    for spill in spills {
        let mut file = spill
            .into_inner()
            .map_err(|e| Error::write(targets_dir, e.into_error()))?;
        file.seek(io::SeekFrom::Start(0))
            .map_err(werr(targets_dir))?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).map_err(werr(targets_dir))?;
        let mut part: Vec<[u8; RECORD_LEN]> = raw
            .chunks_exact(RECORD_LEN)
            .map(|c| {
                let mut r = [0u8; RECORD_LEN];
                r.copy_from_slice(c);
                r
            })
            .collect();
        drop(raw);
        part.sort_unstable();
        for (i, r) in part.iter().enumerate() {
            if i > 0 && part[i - 1][..16] == r[..16] {
                return Err(Error::repo(
                    format!(
                        "two devices in {RECIPIENTS_FILE} have the public key {}",
                        record_id(r)
                    ),
                    format!("remove one of them (ota-sign recipients remove) or restore {RECIPIENTS_FILE} from your backup"),
                ));
            }
            let k = block_of(&record_id(r), bits);
            while next_block <= k {
                starts[next_block] = at;
                next_block += 1;
            }
            w.write_all(r).map_err(werr(&dest))?;
            at += 1;
        }
    }
    for s in starts.iter_mut().skip(next_block) {
        *s = at;
    }
    w.flush().map_err(werr(&dest))?;
    drop(w);
    out.commit_new().map_err(|err| {
        if err.kind() == io::ErrorKind::AlreadyExists {
            Error::policy(
                format!("{} already exists", dest.display()),
                "publish the image under a new version",
            )
        } else {
            Error::write(&dest, err)
        }
    })?;
    tracing::debug!(
        slips = count,
        block_bits = bits,
        seal_s = sealed.as_secs_f64(),
        sort_and_write_s = (started.elapsed() - sealed).as_secs_f64(),
        "slip bundle"
    );
    info.slip_bundle = Some(SlipBundleIndex::new(n, header.len() as u64, bits, &starts));
    Ok((dest, count))
}

/// The directory slip files are created in, by name relative to its open descriptor (no path
/// walk per file).
struct SlipDir {
    path: PathBuf,
    fd: OwnedFd,
    /// Whether the umask takes bits off 0644, so every file needs an fchmod.
    chmod: bool,
}

impl SlipDir {
    fn open(path: &Path) -> Result<Self> {
        let err = |e: rustix::io::Errno| Error::write(path, io::Error::from(e));
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        // What the umask leaves of 0644, seen on a probe file.
        let probe = ".umask-probe";
        let file =
            rustix::fs::openat(&fd, probe, CREATE_FLAGS, Mode::from(PUBLIC_FILE)).map_err(err)?;
        let got = rustix::fs::fstat(&file).map_err(err)?.st_mode & 0o7777;
        drop(file);
        rustix::fs::unlinkat(&fd, probe, AtFlags::empty()).map_err(err)?;
        Ok(SlipDir {
            path: path.to_path_buf(),
            fd,
            chmod: got != PUBLIC_FILE,
        })
    }

    /// Create `<id>.slip` (the file part of `slip_path(target, id)`) with the slip's bytes,
    /// mode 0644 exactly.
    fn write(&self, slip: &KeySlip) -> Result<()> {
        // The agreed layout: targets/<slip_path(target, id)>, in targets/<target>.slips.
        let rel = slip_path(&slip.target, &slip.recipient);
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let path = || self.path.join(name);
        let bytes = slip.to_bytes().map_err(|err| Error::write(&path(), err))?;
        let created = rustix::fs::openat(&self.fd, name, CREATE_FLAGS, Mode::from(PUBLIC_FILE))
            .map_err(io::Error::from)
            .and_then(|fd| {
                if self.chmod {
                    rustix::fs::fchmod(&fd, Mode::from(PUBLIC_FILE))?;
                }
                File::from(fd).write_all(&bytes)
            });
        created.map_err(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists {
                Error::repo(
                    format!(
                        "two devices in {RECIPIENTS_FILE} have the public key {}",
                        slip.recipient
                    ),
                    format!("remove one of them (ota-sign recipients remove) or restore {RECIPIENTS_FILE} from your backup"),
                )
            } else {
                Error::write(&path(), err)
            }
        })
    }
}

/// Flags of a new slip file: never an existing one.
const CREATE_FLAGS: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::CLOEXEC);

/// How the per-device slips of a release are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SlipLayout {
    /// One file per device, `<target>.slips/<recipient-id>.slip` (every client reads them).
    #[default]
    Files,
    /// One file per release, `<target>.slipbundle`, indexed in the signed metadata; a device
    /// fetches one block of it with a Range request (clients from this version on).
    Bundle,
}

/// Encrypt for `recipients`: the whole pipeline between compression and placing the file.
/// Returns the encrypted target and where its device slips are (directory or bundle).
pub fn encrypt_for(
    compressed: Compressed,
    targets_dir: &Path,
    target_path: &str,
    recipients: &Resolved,
    layout: SlipLayout,
) -> Result<(Encrypted, Option<PathBuf>)> {
    let (length, sha256) = (compressed.length, compressed.sha256.clone());
    let bar = ota_cli::progress::bytes_bar(length, "encrypting");
    let mut e = encrypt(compressed, targets_dir, &bar)?;
    bar.finish_and_clear();
    let bar = ota_cli::progress::bytes_bar(e.target.length, "checking");
    verify(&e, length, &sha256, &bar)?;
    bar.finish_and_clear();
    add_group_slips(&mut e, target_path, &recipients.groups)?;
    let mut place = None;
    if !recipients.devices.is_empty() {
        let bar = ota_cli::progress::count_bar(recipients.devices.len(), "key slips");
        let (key, info, devices) = (&e.key, &mut e.info, &recipients.devices);
        let (p, n) = match layout {
            SlipLayout::Files => {
                write_device_slips(key, info, targets_dir, target_path, devices, &bar)?
            }
            SlipLayout::Bundle => {
                write_slip_bundle(key, info, targets_dir, target_path, devices, &bar)?
            }
        };
        bar.finish_and_clear();
        tracing::info!(path = %p.display(), slips = n, ?layout, "per-device slips written");
        place = Some(p);
    }
    Ok((e, place))
}
