//! `ota-sign publish`: re-sign targets, delegated roles, snapshot and timestamp when due
//! (the same rule for all: [`ota_repo::publish::is_due`]), bumping versions;
//! with `--to URL`, upload the release signed offline to the server holding the online keys
//! ([`crate::upload`]).
use crate::keys;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_repo::delegation;
use ota_repo::lock::RepoLock;
use ota_repo::policy::{health, Health};
use ota_repo::publish;
use ota_repo::Repository;
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign publish --repo repo --keys ~/ota-keys            # re-sign what expires soon
  ota-sign publish --repo repo --keys ~/ota-keys --force    # re-sign targets, delegated roles, snapshot, timestamp
  ota-sign publish --repo repo --keys ~/ota-keys --root     # also extend root (root keys needed)

Targets staged with `ota-sign add --no-publish` are signed and published.
A role is re-signed when under a quarter of its expiry period is left (or it expired); a new
targets implies a new snapshot, which implies a new timestamp. Root is re-signed only with --root
(its keys stay offline otherwise). Only the keys of the roles being signed are needed. Run it from cron (e.g. daily) to keep the repository fresh.

Delegated roles (`ota-sign delegate`) follow the same rule under their own period: a role that
is due is re-signed as its next version (same targets, new expiry) by its keys ROLE-N.pem in
--keys, and the snapshot lists it; --force re-signs every delegated role too. Devices load every
delegated role, so one that expired makes them refuse every update. A role whose keys are not at
hand is refused (exit 3, naming it and its missing key files) and nothing is written. With online
roles delegated roles are not re-signed here (the snapshot is the server's).

Publishing to a server (online roles: `ota-sign init --online-roles`, `ota-server --online-keys
KEYS-ONLINE --publish-token-file TOKEN`):
  ota-sign add --repo repo --keys ~/ota-keys fw.img --name gw --version 1.3.0 --hardware board-a
  ota-sign publish --repo repo --to https://updates.example.com:8443 --token-file ~/publish.token \
      --cacert ca.pem
  OTA_PUBLISH_TOKEN=... ota-sign publish --repo repo --to https://updates.example.com:8443 --json

--to uploads the newest N.targets.json of the repository (signed offline by `add`), the delegated
metadata it reaches, and the target files the server does not have yet; the server verifies them
against its trusted root and published versions, then publishes them with a new snapshot and
timestamp, or refuses and publishes nothing. No keys are needed. Exit codes of --to: 0 published,
2 bad arguments or token, 4 local repository, 5 the server refused a targets version not above its
published one, 6 server unreachable or unexpected answer, 7 refused by the server (token, signatures,
threshold, expiry, target files, size limit; the server's reason is in the error line).";

/// Arguments of `publish`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the private keys (not with --to).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "to",
        conflicts_with = "to"
    )]
    pub keys: Option<PathBuf>,
    /// Re-sign targets, every delegated role, snapshot and timestamp even if none is due.
    #[arg(long, conflicts_with = "to")]
    pub force: bool,
    /// Also sign a new root version (same keys, new expiry); needs the root keys.
    #[arg(long, conflicts_with = "to")]
    pub root: bool,
    /// Upload the release signed offline in --repo to this ota-server (https://HOST:PORT) and
    /// have it published there.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// With --to: file holding the server's publish token (else $OTA_PUBLISH_TOKEN).
    #[arg(long, value_name = "FILE", requires = "to")]
    pub token_file: Option<PathBuf>,
    /// With --to: PEM file of the CA that issued the server's certificate (else the public
    /// roots).
    #[arg(long, value_name = "PEM", requires = "to")]
    pub cacert: Option<PathBuf>,
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
    /// Delegated roles re-signed (their new versions); empty when none was due.
    pub delegated: Vec<delegation::Renewed>,
}

/// Run `publish`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    if let Some(url) = &a.to {
        return upload(&a, url);
    }
    let Some(key_dir) = &a.keys else {
        return Err(Error::input(
            "--keys is missing",
            "pass --keys DIR to sign, or --to URL to upload to a server",
        ));
    };
    keys::check_outside_repo(key_dir, &a.repo)?;
    let _lock = RepoLock::acquire(&a.repo)?;
    let repo = Repository::load(&a.repo)?;
    let mut plan = publish::plan_with_delegated(&repo, repo.staged.is_some(), a.force, now)?;
    plan.needs.root = a.root;
    let (published, delegated) = if plan.is_empty() {
        let unchanged = publish::Published {
            signed: Vec::new(),
            root_version: repo.root.signed.version,
            targets_version: repo.targets.signed.version,
            snapshot_version: repo.snapshot.signed.version,
            timestamp_version: repo.timestamp.signed.version,
            warnings: Vec::new(),
        };
        (unchanged, Vec::new())
    } else {
        // Every key, top-level and delegated, before anything is written.
        let role_keys = keys::load_roles(key_dir, &repo, &plan.needs.roles())?;
        let secrets = keys::CliSecrets::default();
        let access = keys::access(&secrets);
        let mut renewals = Vec::new();
        for due in plan.delegated {
            let r = delegation::load_renewal(&repo, key_dir, due, &access)?;
            keys::warn_open(key_dir, r.keys());
            renewals.push(r);
        }
        let signers = ota_repo::keys::role_signers(&role_keys);
        delegation::publish_with_renewals(
            &repo,
            repo.working_targets(),
            plan.needs,
            &renewals,
            &signers,
            now,
        )?
    };
    for w in &published.warnings {
        crate::warn(w);
    }
    let report = Report {
        changed: !published.signed.is_empty(),
        published,
        delegated,
    };
    if a.json {
        super::print_json(&report);
    } else if report.changed {
        let delegated: String = report
            .delegated
            .iter()
            .map(|r| {
                format!(
                    ", {} v{} (expires {})",
                    r.role,
                    r.version,
                    r.expires.format("%Y-%m-%d %H:%M UTC")
                )
            })
            .collect();
        println!(
            "re-signed {}: root v{}, targets v{}{delegated}, snapshot v{}, timestamp v{}",
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

/// `publish --to URL`.
fn upload(a: &Args, url: &str) -> Result<u8> {
    let token = crate::upload::read_token(a.token_file.as_deref())?;
    let up = crate::upload::Uploader::new(url, token, a.cacert.as_deref())?;
    let report = crate::upload::publish(&up, &a.repo)?;
    if a.json {
        super::print_json(&report);
    } else {
        let p = &report.published;
        let delegated: String = p
            .delegated
            .iter()
            .map(|(role, v)| format!(", {role} v{v}"))
            .collect();
        println!(
            "published on {}: targets v{}{delegated}, snapshot v{}, timestamp v{} ({} target file(s), {} bytes uploaded)",
            report.server,
            p.targets_version,
            p.snapshot_version,
            p.timestamp_version,
            report.payloads_uploaded.len(),
            report.bytes_uploaded
        );
    }
    Ok(0)
}
