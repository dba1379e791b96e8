//! `ota-sign add`: compress a firmware image, list it as a target with signed `custom.ota`
//! metadata, and publish new targets, snapshot and timestamp metadata.
use crate::compress;
use crate::delta::CreateOptions;
use crate::delta_target::{self, PatchReport};
use crate::encrypt::{self, SlipLayout};
use crate::keys;
use crate::recipients::parse_selectors;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_cli::progress::bytes_bar;
use ota_formats::hash::Hashes;
use ota_formats::metadata::TargetFile;
use ota_formats::target_meta::{self, Compression, ImageInfo, OtaTarget};
use ota_formats::version::Version;
use ota_repo::delegation::{self, RolePublished, RoleSigners};
use ota_repo::keys::RoleKeys;
use ota_repo::lock::RepoLock;
use ota_repo::publish;
use ota_repo::repository::{target_file_path, Repository, TARGETS_DIR};
use ota_repo::rotate::KeyDirs;
use ota_repo::targets::{
    check_newer, check_path_free, check_same_version_same_image, newest_version, place_target_file,
};
use serde::Serialize;
use serde_json::Map;
use std::path::{Path, PathBuf};

const EXAMPLE: &str = "\
Examples:
  ota-sign add --repo repo --keys ~/ota-keys build/fw.img --name gateway-fw --version 1.2.0 --hardware board-a,board-b
  ota-sign withdraw --repo repo --keys ~/ota-keys gateway-fw@1.3.0      # a bad release, then:
  ota-sign add --repo repo --keys ~/ota-keys fw-1.2.1.img --name gateway-fw --version 1.2.1 --hardware board-a --rollback-from 1.3.0
  ota-sign add --repo repo --no-publish modem.img --name modem-fw --version 3.0.0 --hardware board-a
  ota-sign publish --repo repo --keys ~/ota-keys         # signs the staged targets as one release
  ota-sign add --repo repo --keys ~/ota-keys fw.img --name gw --version 1.3.0 --hardware board-a --encrypt-to group:board-a,device:lab-1
  ota-sign add --repo repo --keys ~/ota-keys fw-1.2.0.img --name gateway-fw --version 1.2.0 --hardware board-a --delta-from-previous 2
  ota-sign add --repo repo --keys ~/ota-keys fw.img --name gw --version 1.4.0 --hardware board-a --encrypt-to hardware --delta-from gw@1.3.0 --base-image fw-1.3.0.img

The target is published as NAME-VERSION.img.zst (zstd, window at most 8 MiB) and stored as
targets/<sha256>.NAME-VERSION.img.zst. A version must be newer (semver) than every published
version of NAME unless --allow-downgrade is given.

Devices never install a release older than the one they run, with one exception: a release
signed with --rollback-from VERSION (recorded as custom.ota.rollback_from) is installed by the
devices that run exactly VERSION. VERSION must be newer than --version, must have been
published, and must be withdrawn first (`ota-sign withdraw NAME@VERSION`, or those devices
would update to it again); the rollback release must be at least the newest listed version of
NAME (devices that roll back would otherwise update on to that one). A release made with
--allow-downgrade carries no such consent: no device that runs a newer version installs it
(only devices below it, or new ones, do).

--encrypt-to RECIPIENTS (see `ota-sign recipients --help`) encrypts the compressed target under
a fresh data key: group:NAME embeds a key slip for the group in the signed metadata,
device:NAME and all-devices write one slip file per device at
targets/NAME-VERSION.img.zst.slips/<recipient-id>.slip, and hardware means group:H for every
--hardware id H (each must have a group of that name).

--delta-from NAME@VERSION (repeatable) and --delta-from-previous N also publish patches from
those earlier releases as NAME-VERSION.from-BASEVERSION.patch targets (encrypted like the full
target), but only those clearly smaller than the full image. The base image is decompressed
from the repository; for an encrypted (or missing) base pass its plaintext with --base-image.
Devices whose installed image is the base download the patch; the others the full image.

--role ROLE lists the target (and its patches) in delegated role ROLE (`ota-sign delegate`)
instead of the top-level targets: the role's next version is signed by its keys (ROLE-N.pem
in --keys), then snapshot and timestamp; the top-level targets do not change. Every target
path must match the role's --paths patterns, and the version must be newer than those of NAME
in the role and in the top-level targets. Not with --no-publish or --rollback-from.
  ota-sign add --repo repo --keys ~/ota-keys apps-2.1.0.img --name apps --version 2.1.0 --hardware board-a --role apps";

/// Arguments of `add`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// The firmware image file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the private keys (targets, snapshot and timestamp keys are used).
    #[arg(long, value_name = "DIR", required_unless_present = "no_publish")]
    pub keys: Option<PathBuf>,
    /// Image name (letters, digits, '.', '_', '-').
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Image version (semantic version, e.g. 1.2.3 or 2.0.0-rc.1).
    #[arg(long, value_name = "SEMVER")]
    pub version: String,
    /// Hardware ids the image installs on (comma-separated or repeated).
    #[arg(
        long = "hardware",
        value_name = "ID[,ID..]",
        value_delimiter = ',',
        required = true
    )]
    pub hardware: Vec<String>,
    /// Accept a version that is not newer than the published ones. No device running a newer
    /// version installs it (only devices below it, or new ones): to move devices back, use
    /// --rollback-from.
    #[arg(long, conflicts_with = "rollback_from")]
    pub allow_downgrade: bool,
    /// Sign a deliberate rollback: devices running VERSION (newer than --version, withdrawn
    /// with `ota-sign withdraw`) install this release (comma-separated or repeated).
    #[arg(
        long = "rollback-from",
        value_name = "VERSION[,VERSION..]",
        value_delimiter = ','
    )]
    pub rollback_from: Vec<String>,
    /// Only stage the target (no keys needed); `ota-sign publish` signs all staged targets
    /// as one release.
    #[arg(long)]
    pub no_publish: bool,
    /// Encrypt for these recipients: a comma list of group:NAME, device:NAME, all-devices,
    /// hardware (the groups named like the --hardware ids).
    #[arg(long, value_name = "RECIPIENTS")]
    pub encrypt_to: Option<String>,
    /// How per-device slips are published: `files`, one file per device (all clients), or
    /// `bundle`, one file per release that devices read with one Range request (clients
    /// that know slip bundles; older ones skip such a release).
    #[arg(long, value_name = "LAYOUT", value_enum, default_value_t = SlipLayout::Files)]
    pub slips: SlipLayout,
    /// Also publish a patch from this earlier release of NAME (NAME@VERSION; repeatable).
    #[arg(long = "delta-from", value_name = "NAME@VERSION")]
    pub delta_from: Vec<String>,
    /// Also publish patches from the last N releases of NAME before this version.
    #[arg(long, value_name = "N")]
    pub delta_from_previous: Option<usize>,
    /// Plaintext image of a delta base (needed when the base target is encrypted or missing;
    /// matched to its base by sha256; repeatable).
    #[arg(long = "base-image", value_name = "FILE")]
    pub base_images: Vec<PathBuf>,
    /// Diff LZ4-compressed streams (such as a kernel inside a root filesystem) as they are,
    /// not decompressed: larger patches, but applying them needs no 33 MiB of LZ4 buffers.
    #[arg(long)]
    pub delta_no_expand: bool,
    /// List the target in this delegated role instead of the top-level targets.
    #[arg(long, value_name = "ROLE", conflicts_with_all = ["no_publish", "rollback_from"])]
    pub role: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How an encrypted target was made available.
#[derive(Debug, Serialize)]
pub struct EncryptionReport {
    /// Groups whose slips are embedded in the metadata.
    pub groups: Vec<String>,
    /// Number of per-device slip files.
    pub device_slips: u64,
    /// Where the per-device slips are, if any: their directory, or the slip bundle.
    pub slips_dir: Option<PathBuf>,
}

/// What `add` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Target path in metadata.
    pub target: String,
    /// File in the repository.
    pub file: PathBuf,
    /// Length of the target file (compressed, and encrypted if asked).
    pub length: u64,
    /// sha256 of the target file.
    pub sha256: String,
    /// Recipients, when encrypted.
    pub encryption: Option<EncryptionReport>,
    /// The signed custom metadata.
    pub ota: OtaTarget,
    /// Newest version of the same name published before, if any.
    pub previous_version: Option<String>,
    /// New metadata versions (absent with --no-publish).
    pub published: Option<publish::Published>,
    /// With --role: the delegated role's new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated: Option<RolePublished>,
    /// Whether the target was only staged.
    pub staged: bool,
    /// Patches requested with --delta-from / --delta-from-previous, published or not.
    pub deltas: Vec<PatchReport>,
}

fn bad_input(e: ota_formats::Error, hint: &str) -> Error {
    let msg = match e {
        ota_formats::Error::Invalid { what, reason } => format!("invalid {what} {reason}"),
        other => other.to_string(),
    };
    Error::input(msg, hint)
}

/// The `--rollback-from` versions of a rollback release `name` `version`, checked: each
/// newer than `version`, published once (listed now or in an earlier targets version) and
/// withdrawn since, and `version` at least the newest listed version of `name` (`previous`),
/// so devices that roll back stay there.
fn check_rollback(
    repo: &Repository,
    targets: &ota_formats::metadata::Targets,
    name: &str,
    version: &Version,
    previous: Option<&Version>,
    from: &[String],
) -> Result<Vec<String>> {
    if let Some(prev) = previous.filter(|p| version < *p) {
        return Err(Error::policy(
            format!("{name} {prev} is listed, newer than the rollback release {version}: devices that roll back would update to {prev} again"),
            format!("withdraw {prev} too (`ota-sign withdraw {name}@{prev}`), or roll back to {prev}"),
        ));
    }
    let mut out = Vec::new();
    for v in from {
        let v = v.trim();
        let parsed = Version::parse(v).map_err(|e| {
            Error::input(
                format!("--rollback-from {v:?}: {e}"),
                "name the version devices roll back from, e.g. --rollback-from 1.3.0",
            )
        })?;
        if parsed <= *version {
            return Err(Error::input(
                format!("--rollback-from {v} is not newer than --version {version}"),
                "a rollback goes from a newer version to this older release",
            ));
        }
        if !crate::release::release_paths(&targets.targets, name, &parsed)
            .0
            .is_empty()
        {
            return Err(Error::policy(
                format!("{name} {v} is still listed: devices would roll back from it and then update to it again"),
                format!("withdraw it first: ota-sign withdraw --repo DIR --keys KEYS {name}@{v}"),
            ));
        }
        if !crate::release::ever_published(repo, name, &parsed) {
            return Err(Error::input(
                format!("--rollback-from {v}: {name} {v} was never published in this repository"),
                "check the version devices run (`ota-sign status`, the device's `ota-client status`)",
            ));
        }
        if !out
            .iter()
            .any(|o: &String| Version::parse(o).is_ok_and(|o| o == parsed))
        {
            out.push(v.to_string());
        }
    }
    Ok(out)
}

/// Place the compressed file under its final name; an identical file already there (from
/// an earlier, interrupted run) is kept.
fn place(c: compress::Compressed, dest: &Path) -> Result<()> {
    Ok(place_target_file(c.file, c.length, &c.sha256, dest)?)
}

/// Run `add`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    // Validate everything before writing anything.
    target_meta::validate_name(&a.name).map_err(|e| {
        bad_input(
            e,
            "name the image with letters, digits, '.', '_' or '-', e.g. --name gateway-fw",
        )
    })?;
    let version = Version::parse(&a.version).map_err(|e| {
        Error::input(
            format!("invalid version {:?}: {e}", a.version),
            "use a semantic version MAJOR.MINOR.PATCH, e.g. --version 1.2.3",
        )
    })?;
    let mut hardware_ids: Vec<String> = Vec::new();
    for id in &a.hardware {
        let id = id.trim();
        target_meta::validate_hardware_id(id).map_err(|e| {
            bad_input(
                e,
                "list hardware ids separated by commas, e.g. --hardware board-a,board-b",
            )
        })?;
        if !hardware_ids.iter().any(|h| h == id) {
            hardware_ids.push(id.to_string());
        }
    }
    let selectors = a.encrypt_to.as_deref().map(parse_selectors).transpose()?;
    let (image, image_len) = compress::open_image(&a.file)?;
    if let Some(k) = &a.keys {
        keys::check_outside_repo(k, &a.repo)?;
    }
    let _lock = RepoLock::acquire(&a.repo)?;
    let repo = Repository::load(&a.repo)?;
    let role = a.role.as_deref().map(str::trim);
    // With --role the working set is the delegated role's published targets.
    let mut targets = match role {
        Some(r) => delegation::load_role(&repo, r)?.signed,
        None => repo.working_targets(),
    };

    let warn_version = |path: &str, e: &dyn std::fmt::Display| {
        crate::warn(&format!(
            "target {path}: {e}; ignored for the version check"
        ))
    };
    let mut previous = newest_version(&targets, &a.name, |path, e| warn_version(path, e));
    if role.is_some() {
        // Devices see both: the version must be newer than the top-level ones too.
        let top = newest_version(&repo.working_targets(), &a.name, |path, e| {
            warn_version(path, e)
        });
        previous = previous.max(top);
    }
    let rollback_from = if a.rollback_from.is_empty() {
        check_newer(&a.name, &version, previous.as_ref(), a.allow_downgrade)?;
        Vec::new()
    } else {
        check_rollback(
            &repo,
            &targets,
            &a.name,
            &version,
            previous.as_ref(),
            &a.rollback_from,
        )?
    };
    let target_path = format!("{}-{version}.img.zst", a.name);
    let targets_dir = repo.dir.join(TARGETS_DIR);
    let bases = delta_target::resolve_bases(
        &targets,
        &a.name,
        &version,
        &a.delta_from,
        a.delta_from_previous,
    )?;
    if bases.is_empty() && !a.base_images.is_empty() {
        return Err(Error::input(
            "--base-image is given but no delta base is",
            "add --delta-from NAME@VERSION or --delta-from-previous N",
        ));
    }
    let patch_paths: Vec<String> = bases
        .iter()
        .map(|b| delta_target::patch_target_path(&a.name, &version.to_string(), &b.ota.version))
        .collect();
    for path in std::iter::once(&target_path).chain(&patch_paths) {
        check_path_free(&targets, path, &a.name, &version.to_string())?;
    }
    if let Some(r) = role {
        let paths: Vec<&str> = std::iter::once(&target_path)
            .chain(&patch_paths)
            .map(String::as_str)
            .collect();
        delegation::check_target_paths(&repo, r, &paths)?;
    }
    let recipients = match &selectors {
        Some(sel) => {
            encrypt::remove_stale_slip_dirs(&targets_dir);
            let resolved = crate::recipients::resolve(&repo.dir, sel, &hardware_ids)?;
            for path in std::iter::once(&target_path).chain(&patch_paths) {
                let dir = match a.slips {
                    SlipLayout::Files => encrypt::slips_dir(&targets_dir, path),
                    SlipLayout::Bundle => {
                        targets_dir.join(ota_formats::envelope::bundle_path(path))
                    }
                };
                if !resolved.devices.is_empty() && dir.exists() {
                    if targets.targets.contains_key(path) {
                        return Err(Error::policy(
                            format!("{path} is already listed, with per-device slips in {} that its release needs", dir.display()),
                            "publish the image under a new version",
                        ));
                    }
                    // Left by a run that crashed before its metadata was published.
                    let removed = if dir.is_dir() {
                        std::fs::remove_dir_all(&dir)
                    } else {
                        std::fs::remove_file(&dir)
                    };
                    removed.map_err(|e| Error::write(&dir, e))?;
                }
            }
            Some(resolved)
        }
        None => None,
    };

    let needs = publish::plan(&repo, true, false, now);
    let role_keys = match (&a.keys, a.no_publish, role) {
        (Some(dir), false, None) => keys::load_roles(dir, &repo, &needs.roles())?,
        _ => RoleKeys::new(),
    };
    // The delegated role's keys, and snapshot and timestamp keys, before anything is written.
    let delegated_signers = match (&a.keys, role) {
        (Some(dir), Some(r)) => {
            let dirs = KeyDirs {
                keys: dir.clone(),
                online: Some(super::delegate::online_dir(dir, None)),
            };
            let secrets = keys::CliSecrets::default();
            Some(RoleSigners::load(&repo, &dirs, r, &keys::access(&secrets))?)
        }
        _ => None,
    };

    // Base images before any target file: a missing or wrong base writes nothing.
    let base_images = delta_target::base_images(&repo.dir, &targets_dir, &bases, &a.base_images)?;

    // Write: the target file first, then the metadata (see publish).
    let policy = repo.config.compression;
    tracing::info!(file = %a.file.display(), level = policy.level, window_log = policy.window_log, "compressing");
    let bar = bytes_bar(image_len, "compressing");
    let compressed = compress::compress(image, &a.file, &targets_dir, policy, &bar)?;
    bar.finish_and_clear();
    let bar = bytes_bar(compressed.image_length, "verifying");
    compress::verify_round_trip(&compressed, policy.window_log, &bar)?;
    bar.finish_and_clear();
    // Only now is the image's hash known; nothing is placed yet.
    check_same_version_same_image(
        &targets,
        &a.name,
        &version,
        compressed.image_length,
        &compressed.image_sha256,
    )?;

    let mut ota = OtaTarget::new(
        a.name.clone(),
        version.to_string(),
        hardware_ids,
        ImageInfo::new(compressed.image_length, compressed.image_sha256.clone()),
        Compression::Zstd,
    )
    .map_err(|e| bad_input(e, "check --name, --version and --hardware"))?;
    ota.rollback_from = rollback_from;
    // Encrypted: slips first (files written here), then the payload, then the metadata.
    let (file, encryption) = match &recipients {
        Some(r) => {
            let (e, slips_dir) =
                encrypt::encrypt_for(compressed, &targets_dir, &target_path, r, a.slips)?;
            ota.encryption = Some(serde_json::to_value(&e.info).map_err(|err| {
                Error::input(
                    format!("cannot encode the encryption metadata: {err}"),
                    "report this bug",
                )
            })?);
            let report = EncryptionReport {
                groups: r.groups.iter().map(|(n, _)| n.clone()).collect(),
                device_slips: r.devices.len(),
                slips_dir,
            };
            (e.target, Some(report))
        }
        None => (compressed, None),
    };
    let compressed = file;
    let entry = TargetFile {
        length: compressed.length,
        hashes: Hashes::from([("sha256".to_string(), compressed.sha256.clone())]),
        custom: Some(
            ota.to_custom(None)
                .map_err(|e| bad_input(e, "report this bug"))?,
        ),
        extra: Map::new(),
    };
    let (length, sha256) = (compressed.length, compressed.sha256.clone());

    // Patches, all built (and encrypted) before any file is placed, so a failure here
    // leaves no new target file behind.
    let opts = CreateOptions {
        expand: !a.delta_no_expand,
        ..CreateOptions::default()
    };
    let mut deltas = Vec::new();
    let mut patch_files = Vec::new();
    for (base, img) in bases.iter().zip(&base_images) {
        let (file, mut report) =
            delta_target::build(base, img.path(), &a.file, &ota, &targets_dir, &opts)?;
        let Some(file) = file else {
            deltas.push(report);
            continue;
        };
        let mut meta = delta_target::patch_meta(&ota, base, &report.method)?;
        let file = match &recipients {
            Some(r) => {
                let (e, _) = encrypt::encrypt_for(file, &targets_dir, &report.target, r, a.slips)?;
                meta.encryption = Some(serde_json::to_value(&e.info).map_err(|err| {
                    Error::input(
                        format!("cannot encode the encryption metadata: {err}"),
                        "report this bug",
                    )
                })?);
                e.target
            }
            None => file,
        };
        let entry = TargetFile {
            length: file.length,
            hashes: Hashes::from([("sha256".to_string(), file.sha256.clone())]),
            custom: Some(
                meta.to_custom(None)
                    .map_err(|e| bad_input(e, "report this bug"))?,
            ),
            extra: Map::new(),
        };
        report.length = Some(file.length);
        report.sha256 = Some(file.sha256.clone());
        patch_files.push((report.target.clone(), file, entry));
        deltas.push(report);
    }
    drop(base_images);

    // Every file in place before the metadata that lists it (see publish).
    let dest = target_file_path(&repo.dir, &target_path, &sha256);
    place(compressed, &dest)?;
    targets.targets.insert(target_path.clone(), entry);
    for (path, file, entry) in patch_files {
        let file_dest = target_file_path(&repo.dir, &path, &file.sha256);
        place(file, &file_dest)?;
        targets.targets.insert(path, entry);
    }
    let mut delegated = None;
    let published = if a.no_publish {
        publish::stage(&repo, &targets)?;
        None
    } else if let Some(signers) = &delegated_signers {
        let done = delegation::publish_targets(&repo, signers, targets, now)?;
        for w in &done.published.warnings {
            crate::warn(w);
        }
        let published = done.published.clone();
        delegated = Some(done);
        Some(published)
    } else {
        let signers = ota_repo::keys::role_signers(&role_keys);
        let published = publish::publish(&repo, targets, needs, &signers, now)?;
        for w in &published.warnings {
            crate::warn(w);
        }
        Some(published)
    };

    let report = Report {
        target: target_path,
        file: dest,
        length,
        sha256,
        encryption,
        ota,
        previous_version: previous.map(|v| v.to_string()),
        staged: published.is_none(),
        published,
        delegated,
        deltas,
    };
    if a.json {
        super::print_json(&report);
    } else {
        let ratio = report.length as f64 * 100.0 / report.ota.image.length.max(1) as f64;
        let how = if report.encryption.is_some() {
            "compressed and encrypted"
        } else {
            "compressed"
        };
        println!(
            "added {} ({} bytes, {} {how}, {ratio:.1}%)",
            report.target, report.ota.image.length, report.length
        );
        if !report.ota.rollback_from.is_empty() {
            println!(
                "rollback: devices running {} install this release",
                report.ota.rollback_from.join(" or ")
            );
        }
        if let Some(e) = &report.encryption {
            println!(
                "encrypted for {} group(s) ({}) and {} device(s){}",
                e.groups.len(),
                e.groups.join(", "),
                e.device_slips,
                e.slips_dir
                    .as_ref()
                    .map(|d| format!("; slips in {}", d.display()))
                    .unwrap_or_default()
            );
        }
        for d in &report.deltas {
            match (&d.reason, d.length) {
                (None, Some(len)) => println!(
                    "added patch {} ({len} bytes, {:.1}% of the full image)",
                    d.target,
                    d.patch_length as f64 * 100.0 / d.full_length.max(1) as f64
                ),
                (reason, _) => println!(
                    "patch from {} not published: {}",
                    d.base_version,
                    reason.as_deref().unwrap_or("not worth it")
                ),
            }
        }
        match (&report.published, &report.delegated) {
            (_, Some(d)) => println!(
                "published {} v{}, snapshot v{}, timestamp v{}",
                d.role, d.version, d.published.snapshot_version, d.published.timestamp_version
            ),
            (Some(p), None) => println!(
                "published targets v{}, snapshot v{}, timestamp v{}",
                p.targets_version, p.snapshot_version, p.timestamp_version
            ),
            (None, None) => println!("staged; run `ota-sign publish` to sign and publish it"),
        }
    }
    Ok(0)
}
