//! `ota-sign status`: roles (top-level and delegated), versions, keys, thresholds, the expiry
//! policy of each role (when it expires, from when it is warned about, who re-signs it, what
//! devices do once it expired; see [`crate::expiry`]) and the targets.
use crate::error::EXIT_EXPIRING;
use crate::expiry::{self, SignedBy};
use crate::Result;
use chrono::{DateTime, Utc};
use ota_formats::target_meta::OtaTarget;
use ota_repo::policy::{human_duration, Health, Period, ROLES};
use ota_repo::Repository;
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign status --repo repo
  ota-sign status --repo repo --json | jq '.roles.timestamp.seconds_left'
  ota-sign status --repo repo --json | jq '.roles[] | {expires, warn_from, signed_by, resign}'
  ota-sign status --repo repo --json | jq '.delegated_roles.apps | {version, expires, health}'

For every role: version, threshold and keys, expiry, the start of its warning window (the
last quarter of its period, when `ota-sign publish` re-signs it), who re-signs it (offline
keys with `ota-sign publish`, root only with `--root`; with online roles snapshot and
timestamp are re-signed by `ota-server --online-keys`) and what devices do once it has
expired (they refuse every update). Every ota-sign command that touches a repository prints
a warning for a role inside its warning window.

Delegated roles (`ota-sign delegate`) are listed the same way (JSON: `delegated_roles`), with
their paths, under their own period: `ota-sign publish --keys KEYS` re-signs them with their
own keys once due. Devices load every delegated role, so one that expired makes them refuse
every update, top-level releases included; their warnings set exit code 10 too.

Exit code 10 when a role ota-sign re-signs is inside its warning window or has expired.
Snapshot and timestamp of an online-roles repository are the server's: their state in this
directory is shown as a note and never sets exit code 10. No keys are needed.";

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
    /// Start of the warning window (a quarter of the period before expiry).
    pub warn_from: DateTime<Utc>,
    /// `offline` (ota-sign, with the keys named in `key_files`) or `online` (ota-server
    /// --online-keys).
    pub signed_by: SignedBy,
    /// Key file names of the role (in the `--keys` directory, or the server's
    /// `--online-keys` directory for online roles).
    pub key_files: Vec<String>,
    /// How the role is re-signed.
    pub resign: String,
    /// What devices do once it has expired.
    pub at_expiry: String,
    /// For a delegated role: the role that delegates to it (`targets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated_by: Option<String>,
    /// For a delegated role: the target path patterns delegated to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

impl From<expiry::RoleExpiry> for RoleStatus {
    fn from(e: expiry::RoleExpiry) -> Self {
        RoleStatus {
            version: e.version,
            keyids: e.keyids,
            threshold: e.threshold,
            expires: e.expires,
            period: e.period,
            seconds_left: e.seconds_left,
            health: e.health,
            warn_from: e.warn_from,
            signed_by: e.signed_by,
            key_files: e.keys,
            resign: e.resign,
            at_expiry: e.at_expiry,
            delegated_by: e.delegated_by,
            paths: e.paths,
        }
    }
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
    /// Top-level roles by name.
    pub roles: std::collections::BTreeMap<String, RoleStatus>,
    /// Delegated roles by name (the roles the top-level targets delegate to).
    pub delegated_roles: std::collections::BTreeMap<String, RoleStatus>,
    /// Targets of the top-level targets role.
    pub targets: Vec<TargetStatus>,
    /// Target paths staged by `add --no-publish` and not yet published.
    pub staged: Vec<String>,
    /// Whether snapshot and timestamp are signed online by ota-server.
    pub online_roles: bool,
    /// One line per role that ota-sign re-signs and that needs attention (exit code 10).
    pub warnings: Vec<String>,
    /// Online roles near or past expiry in this directory: the server's to renew.
    pub notes: Vec<String>,
}

/// Run `status`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    let repo = Repository::load(&a.repo)?;
    let mut roles = std::collections::BTreeMap::new();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    for e in expiry::roles(&repo, now) {
        repo.root.signed.role(&e.role).map_err(|err| {
            crate::Error::repo(
                format!("root.json: {err}"),
                "restore the repository from a backup",
            )
        })?;
        if let Some(w) = e.warning() {
            match e.signed_by {
                SignedBy::Offline => warnings.push(w),
                SignedBy::Online => notes.push(format!(
                    "{w} (in this directory; devices see what the server serves)"
                )),
            }
        }
        roles.insert(e.role.clone(), RoleStatus::from(e));
    }
    // In the order devices search them (a BTreeMap in the report, sorted by name).
    let delegated = expiry::delegated(&repo, now)?;
    let order: Vec<String> = delegated.iter().map(|e| e.role.clone()).collect();
    let mut delegated_roles = std::collections::BTreeMap::new();
    for e in delegated {
        warnings.extend(e.warning());
        delegated_roles.insert(e.role.clone(), RoleStatus::from(e));
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
        delegated_roles,
        targets,
        staged,
        online_roles: repo.config.online_roles,
        warnings,
        notes,
    };
    if a.json {
        super::print_json(&report);
    } else {
        println!("repository {}", a.repo.display());
        println!(
            "  {:<9} {:>7} {:>9}  {:<20} {:>12}  {:<8} {:<7} keys",
            "role", "version", "threshold", "expires", "left", "health", "signer"
        );
        let top = ROLES
            .iter()
            .filter_map(|role| report.roles.get(*role).map(|r| (*role, r)));
        let delegated = order
            .iter()
            .filter_map(|role| report.delegated_roles.get(role).map(|r| (role.as_str(), r)));
        let all: Vec<(&str, &RoleStatus)> = top.chain(delegated).collect();
        for (role, r) in &all {
            print_row(role, r);
        }
        println!("expiry policy:");
        for (role, r) in &all {
            let what = match (&r.delegated_by, &r.paths) {
                (Some(by), Some(paths)) => {
                    format!(" (delegated by {by}, paths {})", paths.join(", "))
                }
                (Some(by), None) => format!(" (delegated by {by})"),
                _ => String::new(),
            };
            println!(
                "  {role}{what}: every {}, warned from {}; key files {}; {}; at expiry {}",
                r.period,
                r.warn_from.format("%Y-%m-%d %H:%M UTC"),
                r.key_files.join(", "),
                r.resign,
                r.at_expiry
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
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    Ok(if report.warnings.is_empty() {
        0
    } else {
        EXIT_EXPIRING
    })
}

/// One line of the roles table.
fn print_row(role: &str, r: &RoleStatus) {
    let ids: Vec<&str> = r
        .keyids
        .iter()
        .map(|k| ota_repo::keys::short_id(k))
        .collect();
    println!(
        "  {role:<9} {:>7} {:>5} of {} {:<20} {:>12}  {:<8} {:<7} {}",
        r.version,
        r.threshold,
        r.keyids.len(),
        r.expires.format("%Y-%m-%d %H:%M UTC").to_string(),
        human_duration(chrono::Duration::seconds(r.seconds_left)),
        format!("{:?}", r.health).to_lowercase(),
        format!("{:?}", r.signed_by).to_lowercase(),
        ids.join(" ")
    );
}
