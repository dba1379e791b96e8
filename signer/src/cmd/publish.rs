//! `ota-sign publish`: re-sign targets, snapshot and timestamp when due, bumping versions.
use crate::keys;
use crate::lock::RepoLock;
use crate::policy::{health, Health};
use crate::publish::{self, RoleKeys};
use crate::repo::Repository;
use crate::Result;
use chrono::{DateTime, Utc};
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
        }
    } else {
        let mut role_keys = RoleKeys::new();
        for role in needs.roles() {
            let k = keys::load_role(&a.keys, &repo.config, &repo.root.signed, role)?;
            role_keys.insert(role.to_string(), k);
        }
        publish::publish(&repo, repo.working_targets(), needs, &role_keys, now)?
    };
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
