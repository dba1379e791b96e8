//! `ota-sign export`: a self-contained copy of what devices see, for removable media: the
//! full root chain, the current timestamp, snapshot and targets (and delegated targets),
//! the chosen releases' target files with their patches and key slips. A device installs
//! from it with `ota-client update --from DIR`, verified exactly as over the network.
//!
//! The copy is made from the bytes as published (never re-serialised) and checked the way a
//! device checks them (signatures, versions, lengths, hashes) before anything is written;
//! target files are written first and `metadata/timestamp.json` last, so an interrupted
//! export leaves a copy that devices refuse rather than a half one they accept.
use crate::release::{image_names, listed_versions, parse_spec, release_paths, TargetMap};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_formats::hash::StreamVerifier;
use ota_formats::metadata::TargetFile;
use ota_formats::trust::TrustedSet;
use ota_formats::version::Version;
use ota_fs::mode::{PUBLIC_DIR, PUBLIC_FILE};
use ota_fs::user_file;
use ota_repo::repository::{
    target_file_path, Repository, MAX_METADATA_LEN, METADATA_DIR, TARGETS_DIR,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const EXAMPLE: &str = "\
Examples:
  ota-sign export --repo repo --to /media/usb/ota
  ota-sign export --repo repo --to /media/usb/ota --target gateway-fw@1.3.0 --target modem-fw@2.0.1 --json
  # on the device, with the stick mounted:
  ota-client update --state /var/lib/ota --from /media/usb/ota --install-to /data/firmware.img

DIR must be empty (it is created if missing). It receives metadata/ (1.root.json up to the
current root, root.json, timestamp.json, the current N.snapshot.json, N.targets.json and
delegated targets) and targets/ (the chosen releases' files, the patches producing them, and
per-device key slips). Without --target, the newest release of each image is exported.

Devices accept the copy only while its metadata is unexpired (delegated roles' included: devices
load every delegated role): the timestamp's period
(`ota-sign init --timestamp-expiry`) bounds how long the media stays usable, and a device
that has already seen newer metadata refuses an older copy (rollback). Export again after
`ota-sign publish`.

Exit codes: 0 exported, 2 DIR not empty or bad --target, 4 repository (corrupt, expired),
1 a write failed part-way (see `ota-sign --help`).";

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Empty (or missing) directory to write the copy to, e.g. on removable media.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// A release to include (repeatable); default: the newest release of each image.
    #[arg(long = "target", value_name = "NAME@VERSION")]
    pub targets: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One exported release.
#[derive(Debug, Serialize)]
pub struct ExportedRelease {
    /// Image name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Target paths copied (full image, then patches).
    pub targets: Vec<String>,
}

/// What `export` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The copy.
    pub to: PathBuf,
    /// Root version (the chain 1..N is included).
    pub root_version: u64,
    /// Timestamp version.
    pub timestamp_version: u64,
    /// Snapshot version.
    pub snapshot_version: u64,
    /// Targets version.
    pub targets_version: u64,
    /// Delegated targets roles copied.
    pub delegated_roles: Vec<String>,
    /// Releases copied.
    pub releases: Vec<ExportedRelease>,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Expiry of each role in the copy (top-level and delegated).
    pub expires: BTreeMap<String, DateTime<Utc>>,
    /// Devices refuse the copy from this time on (the earliest expiry).
    pub usable_until: DateTime<Utc>,
}

/// The metadata to copy, verified as a device verifies it (but at `now`, by the caller).
struct Chain {
    /// `N.root.json` bytes, from version 1.
    roots: Vec<Vec<u8>>,
    timestamp: Vec<u8>,
    /// File name and bytes of the snapshot, top-level targets and delegated targets.
    versioned: Vec<(String, Vec<u8>)>,
    delegated: Vec<String>,
    set: TrustedSet,
}

fn read_md(path: &Path) -> Result<Vec<u8>> {
    user_file::read(path, MAX_METADATA_LEN).map_err(|e| {
        Error::user_file(
            "repository file",
            e,
            Error::repo,
            "restore the repository directory from a backup",
        )
    })
}

fn refused(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::repo(
        format!("{}: {e}", path.display()),
        "restore the repository directory from a backup (ota-sign never leaves a half-written one)",
    )
}

/// A role name as a file name segment (percent-encoding all but `A-Za-z0-9_.~-`, as
/// clients do).
fn encode_role(role: &str) -> String {
    let mut out = String::new();
    for b in role.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Read and verify the published metadata: the root chain, `timestamp.json` (read once), the
/// snapshot it lists, the targets that lists and the delegated roles reachable from it.
fn read_chain(md: &Path) -> Result<Chain> {
    let first = md.join("1.root.json");
    let bytes = read_md(&first)?;
    let mut set = TrustedSet::new_ignoring_expiry(&bytes).map_err(|e| refused(&first, e))?;
    let mut roots = vec![bytes];
    loop {
        let path = md.join(format!("{}.root.json", set.root().version + 1));
        if !path.exists() {
            break;
        }
        let bytes = read_md(&path)?;
        set.update_root(&bytes).map_err(|e| refused(&path, e))?;
        roots.push(bytes);
    }
    let ts_path = md.join("timestamp.json");
    let timestamp = read_md(&ts_path)?;
    set.update_timestamp(&timestamp)
        .map_err(|e| refused(&ts_path, e))?;
    let snap_version = set
        .snapshot_meta()
        .map_err(|e| refused(&ts_path, e))?
        .version;
    let snap_name = format!("{snap_version}.snapshot.json");
    let snap_path = md.join(&snap_name);
    let snap = read_md(&snap_path)?;
    set.update_snapshot(&snap, false)
        .map_err(|e| refused(&snap_path, e))?;
    let mut versioned = vec![(snap_name, snap)];
    let listed = |set: &TrustedSet, role: &str| {
        set.snapshot().and_then(|s| {
            s.signed()
                .meta
                .get(&format!("{role}.json"))
                .map(|m| m.version)
        })
    };
    let Some(targets_version) = listed(&set, "targets") else {
        return Err(refused(&snap_path, "targets.json is not listed"));
    };
    let name = format!("{targets_version}.targets.json");
    let path = md.join(&name);
    let bytes = read_md(&path)?;
    set.update_targets(&bytes).map_err(|e| refused(&path, e))?;
    versioned.push((name, bytes));
    // Delegated roles, breadth-first from the top-level targets.
    let mut delegated = Vec::new();
    let mut queue = vec!["targets".to_string()];
    while let Some(parent) = queue.pop() {
        let children: Vec<String> = set
            .targets_role(&parent)
            .and_then(|t| t.signed().delegations.as_ref())
            .and_then(|d| d.roles.as_ref())
            .map(|roles| roles.iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default();
        for child in children {
            if set.targets_role(&child).is_some() {
                continue;
            }
            let Some(version) = listed(&set, &child) else {
                continue;
            };
            let name = format!("{version}.{}.json", encode_role(&child));
            let path = md.join(&name);
            let bytes = read_md(&path)?;
            set.update_delegated_targets(&bytes, &child, &parent)
                .map_err(|e| refused(&path, e))?;
            versioned.push((name, bytes));
            delegated.push(child.clone());
            queue.push(child);
        }
    }
    Ok(Chain {
        roots,
        timestamp,
        versioned,
        delegated,
        set,
    })
}

/// Every target of every loaded role (the top-level role's entry wins for a path listed
/// twice, as a device's search would find it first).
fn all_targets(set: &TrustedSet) -> TargetMap {
    let mut out = set
        .top_targets()
        .map(|t| t.signed().targets.clone())
        .unwrap_or_default();
    for role in set.all_targets() {
        for (path, file) in &role.signed().targets {
            out.entry(path.clone()).or_insert_with(|| file.clone());
        }
    }
    out
}

/// The releases to copy: the `--target` ones, else the newest of each image.
fn choose(targets: &TargetMap, specs: &[String]) -> Result<Vec<ExportedRelease>> {
    let mut wanted: Vec<(String, Version)> = Vec::new();
    if specs.is_empty() {
        for name in image_names(targets) {
            if let Some(v) = listed_versions(targets, &name).into_iter().next() {
                wanted.push((name, v));
            }
        }
    } else {
        for spec in specs {
            wanted.push(parse_spec(spec, "--target")?);
        }
    }
    let mut out: Vec<ExportedRelease> = Vec::new();
    for (name, version) in wanted {
        let (full, patches) = release_paths(targets, &name, &version);
        if full.is_empty() {
            let listed: Vec<String> = listed_versions(targets, &name)
                .iter()
                .map(ToString::to_string)
                .collect();
            return Err(Error::input(
                format!("--target {name}@{version}: not listed in the published targets"),
                if listed.is_empty() {
                    format!("no release of {name} is published")
                } else {
                    format!("published versions of {name}: {}", listed.join(", "))
                },
            ));
        }
        if !out
            .iter()
            .any(|r| r.name == name && Version::parse(&r.version).is_ok_and(|v| v == version))
        {
            out.push(ExportedRelease {
                name,
                version: version.to_string(),
                targets: full.into_iter().chain(patches).collect(),
            });
        }
    }
    Ok(out)
}

/// `path` with its longest existing ancestor resolved (links, `..`), the rest appended.
fn resolved(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

/// `to` must be an empty directory (created when missing), outside the repository.
fn prepare_dest(to: &Path, repo: &Path) -> Result<()> {
    {
        if resolved(to).starts_with(resolved(repo)) {
            return Err(Error::input(
                format!("--to {} is inside the repository", to.display()),
                "export to a directory of its own, e.g. on the removable media",
            ));
        }
    }
    match std::fs::read_dir(to) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::input(
                    format!("--to {} is not empty", to.display()),
                    "export to an empty directory (an old copy mixed with a new one could hold files of both)",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::input(
                format!("--to {}: {e}", to.display()),
                "pass a directory (empty, or one to create)",
            ))
        }
    }
    for d in [
        to.to_path_buf(),
        to.join(METADATA_DIR),
        to.join(TARGETS_DIR),
    ] {
        ota_fs::mode::create_dir_all(&d, PUBLIC_DIR).map_err(|e| Error::write(&d, e))?;
    }
    Ok(())
}

/// Copy the file of target `path` from the repository to the copy, checking its signed
/// length and hashes on the way. Returns the bytes written.
fn copy_target(repo: &Path, to: &Path, path: &str, file: &TargetFile) -> Result<u64> {
    let Some(sha256) = file.hashes.get("sha256") else {
        return Err(refused(
            Path::new(path),
            "the target lists no sha256, so its file cannot be found",
        ));
    };
    let src = target_file_path(repo, path, sha256);
    let dest = target_file_path(to, path, sha256);
    if let Some(parent) = dest.parent() {
        ota_fs::mode::create_dir_all(parent, PUBLIC_DIR).map_err(|e| Error::write(parent, e))?;
    }
    let mut input = user_file::open(&src).map_err(|e| {
        Error::user_file(
            "target file",
            e,
            Error::repo,
            "restore the repository from a backup",
        )
    })?;
    let mut verifier =
        StreamVerifier::new(&file.hashes, file.length).map_err(|e| refused(&src, e))?;
    let dir = ota_fs::atomic::parent(&dest).map_err(|e| Error::write(&dest, e))?;
    let mut tmp = ota_fs::atomic::temp_in(dir).map_err(|e| Error::write(&dest, e))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf).map_err(|e| refused(&src, e))?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]).map_err(|e| refused(&src, e))?;
        tmp.write_all(&buf[..n])
            .map_err(|e| Error::write(&dest, e))?;
    }
    verifier.finish().map_err(|e| refused(&src, e))?;
    ota_fs::atomic::persist_new(tmp, &dest, PUBLIC_FILE).map_err(|e| Error::write(&dest, e))?;
    Ok(file.length)
}

/// Copy the per-device key slips of target `path`, if it has any (slip files, or its slip
/// bundle). Returns (files, bytes).
fn copy_slips(repo: &Path, to: &Path, path: &str) -> Result<(usize, u64)> {
    let bundle = repo
        .join(TARGETS_DIR)
        .join(ota_formats::envelope::bundle_path(path));
    if bundle.is_file() {
        let dest = to
            .join(TARGETS_DIR)
            .join(ota_formats::envelope::bundle_path(path));
        let mut src = user_file::open(&bundle).map_err(|err| {
            Error::user_file(
                "slip bundle",
                err,
                Error::repo,
                "restore the repository from a backup",
            )
        })?;
        let mut out = ota_fs::atomic::PendingFile::new(&dest, PUBLIC_FILE)
            .map_err(|e| Error::write(&dest, e))?;
        let bytes = std::io::copy(&mut src, out.file_mut()).map_err(|e| Error::write(&dest, e))?;
        out.commit_new().map_err(|e| Error::write(&dest, e))?;
        return Ok((1, bytes));
    }
    let src = crate::encrypt::slips_dir(&repo.join(TARGETS_DIR), path);
    let Ok(entries) = std::fs::read_dir(&src) else {
        return Ok((0, 0));
    };
    let dest = crate::encrypt::slips_dir(&to.join(TARGETS_DIR), path);
    ota_fs::mode::create_dir_all(&dest, PUBLIC_DIR).map_err(|e| Error::write(&dest, e))?;
    let (mut files, mut bytes) = (0, 0);
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().ends_with(".slip") {
            continue;
        }
        let data = user_file::read(&e.path(), 64 * 1024).map_err(|err| {
            Error::user_file(
                "key slip",
                err,
                Error::repo,
                "restore the repository from a backup",
            )
        })?;
        let out = dest.join(&name);
        ota_fs::atomic::write_new(&out, &data, PUBLIC_FILE)
            .map_err(|err| Error::write(&out, err))?;
        files += 1;
        bytes += data.len() as u64;
    }
    Ok((files, bytes))
}

/// Refuse metadata that has expired at `now`, delegated roles' included (devices load every
/// delegated role): devices would refuse the copy.
fn expiry(
    set: &TrustedSet,
    delegated: &[String],
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, DateTime<Utc>>> {
    let mut out = BTreeMap::new();
    out.insert("root".to_string(), set.root().signed().expires);
    if let Some(t) = set.timestamp() {
        out.insert("timestamp".into(), t.signed().expires);
    }
    if let Some(s) = set.snapshot() {
        out.insert("snapshot".into(), s.signed().expires);
    }
    if let Some(t) = set.top_targets() {
        out.insert("targets".into(), t.signed().expires);
    }
    for role in delegated {
        if let Some(t) = set.targets_role(role) {
            out.insert(role.clone(), t.signed().expires);
        }
    }
    for (role, expires) in &out {
        if *expires <= now {
            return Err(Error::repo(
                format!("{role} expired at {expires}: devices would refuse the copy"),
                "re-sign it (`ota-sign publish --keys KEYS` re-signs top-level and delegated roles, or let the online server renew snapshot and timestamp), then export again",
            ));
        }
    }
    Ok(out)
}

/// Run `export`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    // A repository that loads (config, verified metadata, target files present).
    let repo = Repository::load(&a.repo)?;
    let chain = read_chain(&repo.metadata_dir())?;
    let expires = expiry(&chain.set, &chain.delegated, now)?;
    let targets = all_targets(&chain.set);
    let releases = choose(&targets, &a.targets)?;
    prepare_dest(&a.to, &a.repo)?;

    let (mut files, mut bytes) = (0usize, 0u64);
    // Target files first, then the metadata that lists them, timestamp.json last.
    for r in &releases {
        for path in &r.targets {
            let Some(file) = targets.get(path) else {
                continue;
            };
            bytes += copy_target(&repo.dir, &a.to, path, file)?;
            let (n, b) = copy_slips(&repo.dir, &a.to, path)?;
            files += 1 + n;
            bytes += b;
        }
    }
    let md = a.to.join(METADATA_DIR);
    let mut write = |name: &str, data: &[u8]| -> Result<()> {
        let path = md.join(name);
        ota_fs::atomic::write_new(&path, data, PUBLIC_FILE).map_err(|e| Error::write(&path, e))?;
        files += 1;
        bytes += data.len() as u64;
        Ok(())
    };
    for (i, root) in chain.roots.iter().enumerate() {
        write(&format!("{}.root.json", i + 1), root)?;
    }
    if let Some(newest) = chain.roots.last() {
        write("root.json", newest)?;
    }
    for (name, data) in &chain.versioned {
        write(name, data)?;
    }
    write("timestamp.json", &chain.timestamp)?;
    for d in [a.to.join(TARGETS_DIR), md.clone(), a.to.clone()] {
        ota_fs::atomic::sync_dir(&d).map_err(|e| Error::write(&d, e))?;
    }
    // The copy as written, checked once more as a device will check it.
    let check = read_chain(&md)?;
    if check.timestamp != chain.timestamp || check.roots.len() != chain.roots.len() {
        return Err(refused(&md, "the copy does not read back as written"));
    }

    let usable_until = expires.values().min().copied().unwrap_or(now);
    let report = Report {
        to: a.to.clone(),
        root_version: chain.set.root().signed().version,
        timestamp_version: chain.set.timestamp().map_or(0, |t| t.signed().version),
        snapshot_version: chain.set.snapshot().map_or(0, |s| s.signed().version),
        targets_version: chain.set.top_targets().map_or(0, |t| t.signed().version),
        delegated_roles: chain.delegated,
        releases,
        files,
        bytes,
        expires,
        usable_until,
    };
    if usable_until - now < chrono::Duration::days(7) {
        crate::warn(&format!(
            "devices accept this copy only until {} ({} from now, when its metadata expires); use it before then or export again",
            usable_until.format("%Y-%m-%d %H:%M UTC"),
            ota_repo::policy::human_duration(usable_until - now)
        ));
    }
    if a.json {
        super::print_json(&report);
    } else {
        println!("exported to {}:", report.to.display());
        for r in &report.releases {
            println!("  {} {} ({})", r.name, r.version, r.targets.join(", "));
        }
        println!(
            "root v1..v{}, timestamp v{}, snapshot v{}, targets v{}; {} files, {} bytes",
            report.root_version,
            report.timestamp_version,
            report.snapshot_version,
            report.targets_version,
            report.files,
            report.bytes
        );
        println!(
            "devices accept it until {}",
            report.usable_until.format("%Y-%m-%d %H:%M UTC")
        );
    }
    Ok(0)
}
