//! `ota-sign withdraw`: remove a release from the targets devices see, as a new targets
//! version. Devices that have not installed it never will; devices running it stay on it
//! until a newer release, or a signed rollback (`ota-sign add --rollback-from VERSION`).
use crate::keys;
use crate::release::{listed_versions, parse_spec, release_paths};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_repo::keys::RoleKeys;
use ota_repo::lock::RepoLock;
use ota_repo::publish;
use ota_repo::repository::{target_file_path, Repository, TARGETS_DIR};
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign withdraw --repo repo --keys ~/ota-keys gateway-fw@1.3.0
  ota-sign withdraw --repo repo --keys ~/ota-keys gateway-fw@1.3.0 --delete-file --json
  # then, to move the devices that run 1.3.0 back to a good release:
  ota-sign add --repo repo --keys ~/ota-keys fw-1.2.1.img --name gateway-fw --version 1.2.1 \\
      --hardware board-a --rollback-from 1.3.0

The release (its full image and the patches that produce it) is removed from the targets
metadata, which is signed and published as a new version (with online roles the server
publishes it). Devices that have not installed it never will. Devices running it keep it: a
device never installs an older release unless that release is signed as a rollback from the
version it runs (`ota-sign add --rollback-from`). Patches from the withdrawn version to newer
releases stay, so devices running it still update by delta.

The target files stay in the repository (a device in the middle of downloading it still
finishes) unless --delete-file is given; then they and their key slips are deleted after the
new metadata is published.

Exit codes: 0 withdrawn, 2 not listed or bad NAME@VERSION, staged targets pending, 3 keys,
4 repository, 1 a write failed part-way (see `ota-sign --help`).";

/// Arguments of `withdraw`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// The release to withdraw.
    #[arg(value_name = "NAME@VERSION")]
    pub release: String,
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the private keys (targets; snapshot and timestamp without online roles).
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Also delete the target files (and key slips) once the new metadata is published.
    #[arg(long)]
    pub delete_file: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `withdraw` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Image name.
    pub name: String,
    /// Withdrawn version.
    pub version: String,
    /// Target paths removed from the metadata (full image first, then patches).
    pub withdrawn: Vec<String>,
    /// Files deleted (with --delete-file).
    pub deleted_files: Vec<PathBuf>,
    /// Versions of the image still listed, newest first.
    pub still_listed: Vec<String>,
    /// New metadata versions.
    pub published: publish::Published,
}

/// Run `withdraw`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    let (name, version) = parse_spec(&a.release, "withdraw")?;
    keys::check_outside_repo(&a.keys, &a.repo)?;
    let _lock = RepoLock::acquire(&a.repo)?;
    let repo = Repository::load(&a.repo)?;
    if let Some(staged) = &repo.staged {
        if staged.targets != repo.targets.signed.targets {
            return Err(Error::input(
                "the repository has targets staged by `ota-sign add --no-publish` that are not published yet",
                "publish them first (`ota-sign publish`) or delete ota-staged.json, then withdraw",
            ));
        }
    }
    let mut targets = repo.targets.signed.clone();
    let (full, patches) = release_paths(&targets.targets, &name, &version);
    if full.is_empty() {
        let listed: Vec<String> = listed_versions(&targets.targets, &name)
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(Error::input(
            format!("{name} {version} is not listed in the repository's targets"),
            if listed.is_empty() {
                format!("no release of {name} is listed (`ota-sign status` shows the targets)")
            } else {
                format!("listed versions of {name}: {}", listed.join(", "))
            },
        ));
    }
    let withdrawn: Vec<String> = full.into_iter().chain(patches).collect();
    let mut removed = Vec::new();
    for path in &withdrawn {
        if let Some(t) = targets.targets.remove(path) {
            removed.push((path.clone(), t));
        }
    }

    let needs = publish::plan(&repo, true, false, now);
    let role_keys: RoleKeys = keys::load_roles(&a.keys, &repo, &needs.roles())?;
    let signers = ota_repo::keys::role_signers(&role_keys);
    let still_listed = listed_versions(&targets.targets, &name)
        .iter()
        .map(ToString::to_string)
        .collect();
    let published = publish::publish(&repo, targets, needs, &signers, now)?;
    for w in &published.warnings {
        crate::warn(w);
    }

    // After the commit point: the metadata no longer lists these files.
    let mut deleted_files = Vec::new();
    if a.delete_file {
        let targets_dir = repo.dir.join(TARGETS_DIR);
        for (path, t) in &removed {
            let Some(sha256) = t.hashes.get("sha256") else {
                continue;
            };
            let file = target_file_path(&repo.dir, path, sha256);
            match std::fs::remove_file(&file) {
                Ok(()) => deleted_files.push(file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => crate::warn(&format!(
                    "withdrawn, but cannot delete {}: {e}",
                    file.display()
                )),
            }
            let bundle = targets_dir.join(ota_formats::envelope::bundle_path(path));
            match std::fs::remove_file(&bundle) {
                Ok(()) => deleted_files.push(bundle),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => crate::warn(&format!(
                    "withdrawn, but cannot delete {}: {e}",
                    bundle.display()
                )),
            }
            let slips = crate::encrypt::slips_dir(&targets_dir, path);
            if slips.is_dir() {
                match std::fs::remove_dir_all(&slips) {
                    Ok(()) => deleted_files.push(slips),
                    Err(e) => crate::warn(&format!(
                        "withdrawn, but cannot delete {}: {e}",
                        slips.display()
                    )),
                }
            }
        }
    }

    let report = Report {
        name,
        version: version.to_string(),
        withdrawn,
        deleted_files,
        still_listed,
        published,
    };
    if a.json {
        super::print_json(&report);
    } else {
        println!(
            "withdrew {} {}: {}",
            report.name,
            report.version,
            report.withdrawn.join(", ")
        );
        println!(
            "published targets v{}{}",
            report.published.targets_version,
            if repo.config.online_roles {
                " (the server publishes it with its next snapshot)".to_string()
            } else {
                format!(
                    ", snapshot v{}, timestamp v{}",
                    report.published.snapshot_version, report.published.timestamp_version
                )
            }
        );
        println!(
            "devices that have not installed {v} never will; devices running it stay on it until a newer release or `ota-sign add ... --rollback-from {v}`",
            v = report.version
        );
        for f in &report.deleted_files {
            println!("deleted {}", f.display());
        }
    }
    Ok(0)
}
