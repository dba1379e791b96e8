//! `ota-sign publish`: re-sign targets, snapshot and timestamp when due, bumping versions.
use crate::keys;
use crate::Result;
use chrono::{DateTime, Utc};
use ota_repo::lock::RepoLock;
use ota_repo::policy::{health, Health};
use ota_repo::publish;
use ota_repo::Repository;
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign publish --repo repo --keys ~/ota-keys            # re-sign what expires soon
  ota-sign publish --repo repo --keys ~/ota-keys --force    # re-sign targets, snapshot, timestamp
  ota-sign publish --repo repo --keys ~/ota-keys --root     # also extend root (root keys needed)

Targets staged with `ota-sign add --no-publish` are signed and published.
A role is re-signed when under a quarter of its expiry period is left (or it expired); a new
targets implies a new snapshot, which implies a new timestamp. Root is re-signed only with --root
(its keys stay offline otherwise). Only the keys of the roles being signed are needed. Run it from cron (e.g. daily) to keep the repository fresh.";

/// Arguments of `publish`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the private keys.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Re-sign targets, snapshot and timestamp even if none is due.
    #[arg(long)]
    pub force: bool,
    /// Also sign a new root version (same keys, new expiry); needs the root keys.
    #[arg(long)]
    pub root: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `publish` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether anything was signed.
    pub changed: bool,
    /// Versions after the run.
    #[serde(flatten)]
    pub published: publish::Published,
}

/// Run `publish`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    keys::check_outside_repo(&a.keys, &a.repo)?;
    let _lock = RepoLock::acquire(&a.repo)?;
    let repo = Repository::load(&a.repo)?;
    let mut needs = publish::plan(&repo, repo.staged.is_some(), a.force, now);
    needs.root = a.root;
    let published = if needs.is_empty() {
        publish::Published {
            signed: Vec::new(),
            root_version: repo.root.signed.version,
            targets_version: repo.targets.signed.version,
            snapshot_version: repo.snapshot.signed.version,
            timestamp_version: repo.timestamp.signed.version,
            warnings: Vec::new(),
        }
    } else {
        let role_keys = keys::load_roles(&a.keys, &repo, &needs.roles())?;
        let signers = ota_repo::keys::role_signers(&role_keys);
        publish::publish(&repo, repo.working_targets(), needs, &signers, now)?
    };
    for w in &published.warnings {
        crate::warn(w);
    }
    let report = Report {
        changed: !published.signed.is_empty(),
        published,
    };
    if a.json {
        super::print_json(&report);
    } else if report.changed {
        println!(
            "re-signed {}: root v{}, targets v{}, snapshot v{}, timestamp v{}",
            report.published.signed.join(", "),
            report.published.root_version,
            report.published.targets_version,
            report.published.snapshot_version,
            report.published.timestamp_version
        );
    } else {
        println!("nothing to do: every role has more than a quarter of its period left (use --force to re-sign anyway)");
    }
    let root_health = health(repo.root.signed.expires, repo.config.period("root"), now);
    if !a.root && root_health != Health::Ok {
        crate::warn(&format!(
            "root expires {}: sign a new root with `ota-sign publish --root` (needs the root keys)",
            repo.root.signed.expires.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    Ok(0)
}
