//! `ota-sign status`: roles, versions, keys, thresholds, expiry and the targets.
use crate::error::EXIT_EXPIRING;
use crate::Result;
use chrono::{DateTime, Utc};
use ota_formats::target_meta::OtaTarget;
use ota_repo::policy::{health, human_duration, Health, Period, ROLES};
use ota_repo::Repository;
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign status --repo repo
  ota-sign status --repo repo --json | jq '.roles.timestamp.seconds_left'

Exit code 10 when a role has under a quarter of its expiry period left or has expired
(run `ota-sign publish` for targets, snapshot and timestamp). No keys are needed.";

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One role's status.
#[derive(Debug, Serialize)]
pub struct RoleStatus {
    /// Current version.
    pub version: u64,
    /// Authorised key ids.
    pub keyids: Vec<String>,
    /// Signature threshold.
    pub threshold: u64,
    /// Expiry time.
    pub expires: DateTime<Utc>,
    /// Expiry period from the repository policy.
    pub period: Period,
    /// Seconds until expiry (negative once expired).
    pub seconds_left: i64,
    /// ok, expiring (under a quarter of the period left) or expired.
    pub health: Health,
}

/// One target's status.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// Target path.
    pub path: String,
    /// Length of the target file.
    pub length: u64,
    /// Our custom metadata, when present.
    pub ota: Option<OtaTarget>,
}

/// What `status` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Repository directory.
    pub repo: PathBuf,
    /// Time of the check.
    pub now: DateTime<Utc>,
    /// Roles by name.
    pub roles: std::collections::BTreeMap<String, RoleStatus>,
    /// Targets.
    pub targets: Vec<TargetStatus>,
    /// Target paths staged by `add --no-publish` and not yet published.
    pub staged: Vec<String>,
    /// One line per role that needs attention.
    pub warnings: Vec<String>,
}

/// Run `status`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    let repo = Repository::load(&a.repo)?;
    let mut roles = std::collections::BTreeMap::new();
    let mut warnings = Vec::new();
    for role in ROLES {
        let (version, expires) = match role {
            "root" => (repo.root.signed.version, repo.root.signed.expires),
            "targets" => (repo.targets.signed.version, repo.targets.signed.expires),
            "snapshot" => (repo.snapshot.signed.version, repo.snapshot.signed.expires),
            _ => (repo.timestamp.signed.version, repo.timestamp.signed.expires),
        };
        let rk = repo.root.signed.role(role).map_err(|e| {
            crate::Error::repo(
                format!("root.json: {e}"),
                "restore the repository from a backup",
            )
        })?;
        let period = repo.config.period(role);
        let h = health(expires, period, now);
        let left = expires - now;
        let fix = if role == "root" {
            "run `ota-sign publish --root` (needs the root keys)"
        } else {
            "run `ota-sign publish`"
        };
        match h {
            Health::Ok => {}
            Health::Expiring => warnings.push(format!(
                "{role} expires in {} (under a quarter of its {period} period): {fix}",
                human_duration(left)
            )),
            Health::Expired => warnings.push(format!(
                "{role} expired {} ago; clients reject the repository: {fix}",
                human_duration(-left)
            )),
        }
        roles.insert(
            role.to_string(),
            RoleStatus {
                version,
                keyids: rk.keyids.clone(),
                threshold: rk.threshold,
                expires,
                period,
                seconds_left: left.num_seconds(),
                health: h,
            },
        );
    }
    let targets = repo
        .targets
        .signed
        .targets
        .iter()
        .map(|(path, t)| TargetStatus {
            path: path.clone(),
            length: t.length,
            ota: OtaTarget::from_custom(t.custom.as_ref()).ok().flatten(),
        })
        .collect();
    let staged = match &repo.staged {
        Some(st) => st
            .targets
            .iter()
            .filter(|(p, t)| repo.targets.signed.targets.get(*p) != Some(t))
            .map(|(p, _)| p.clone())
            .collect(),
        None => Vec::new(),
    };
    let report = Report {
        repo: a.repo.clone(),
        now,
        roles,
        targets,
        staged,
        warnings,
    };
    if a.json {
        super::print_json(&report);
    } else {
        println!("repository {}", a.repo.display());
        println!(
            "  {:<9} {:>7} {:>9}  {:<20} {:>12}  {:<8} keys",
            "role", "version", "threshold", "expires", "left", "health"
        );
        for role in ROLES {
            let r = &report.roles[role];
            let ids: Vec<&str> = r
                .keyids
                .iter()
                .map(|k| ota_repo::keys::short_id(k))
                .collect();
            println!(
                "  {role:<9} {:>7} {:>5} of {} {:<20} {:>12}  {:<8} {}",
                r.version,
                r.threshold,
                r.keyids.len(),
                r.expires.format("%Y-%m-%d %H:%M UTC").to_string(),
                human_duration(chrono::Duration::seconds(r.seconds_left)),
                format!("{:?}", r.health).to_lowercase(),
                ids.join(" ")
            );
        }
        println!("targets: {}", report.targets.len());
        for t in &report.targets {
            match &t.ota {
                Some(o) => println!(
                    "  {}  {} {}  hardware {}  {} bytes",
                    t.path,
                    o.name,
                    o.version,
                    o.hardware_ids.join(","),
                    t.length
                ),
                None => println!("  {}  {} bytes", t.path, t.length),
            }
        }
    }
    if !report.staged.is_empty() && !a.json {
        println!(
            "staged, not yet published (run `ota-sign publish`): {}",
            report.staged.join(", ")
        );
    }
    for w in &report.warnings {
        crate::warn(w);
    }
    Ok(if report.warnings.is_empty() {
        0
    } else {
        EXIT_EXPIRING
    })
}
