//! `ota-server devices`: the devices that reported, with their last report and what needs
//! attention (trust or certificate expiring, silence).
use std::path::PathBuf;
use std::process::ExitCode;

use ota_fleet::{flags, Flag};

/// Exit code when at least one device is flagged (for monitoring from cron).
pub const FLAGGED: u8 = 10;

const AFTER_HELP: &str = "\
Examples:
  ota-server devices --repo ./repo                      # the default SQLite store beside ./repo
  ota-server devices --database postgres://ota@db.example/fleet --json
  ota-server devices --repo ./repo --expiring-within 14 --silent-for 3 --flagged

Flags: metadata-expiring / metadata-expired (the device's trusted TUF metadata; it updates
nothing once expired), certificate-expiring / certificate-expired (its reports and mutual TLS
stop), not-reporting (no report for --silent-for days).

Exit codes:
  0    listed, no device flagged
  10   listed, at least one device flagged
  2    usage error, or the database cannot be opened (unreachable, locked, corrupt, newer schema)";

/// Arguments of `devices`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Repository directory; the store is the SQLite file beside it (REPO.fleet.sqlite).
    #[arg(long, value_name = "DIR", required_unless_present = "database")]
    pub repo: Option<PathBuf>,
    /// The report database: postgres://USER:PASSWORD@HOST/DB or a SQLite file path.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Flag devices whose trusted metadata or certificate expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub expiring_within: u32,
    /// Flag devices that have not reported for this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub silent_for: u32,
    /// List flagged devices only.
    #[arg(long)]
    pub flagged: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The default SQLite store of a repository: a file beside it, never inside the published tree.
pub fn default_database(repo: &std::path::Path) -> String {
    let name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let parent = repo.parent().unwrap_or(std::path::Path::new("."));
    parent
        .join(format!("{name}.fleet.sqlite"))
        .display()
        .to_string()
}

fn flag_name(f: &Flag) -> &'static str {
    match f {
        Flag::MetadataExpiring { .. } => "metadata-expiring",
        Flag::MetadataExpired { .. } => "metadata-expired",
        Flag::CertificateExpiring { .. } => "certificate-expiring",
        Flag::CertificateExpired { .. } => "certificate-expired",
        Flag::NotReporting { .. } => "not-reporting",
    }
}

fn date(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Run `devices`.
pub fn run(a: Args) -> ExitCode {
    // clap requires one of the two.
    let database = a
        .database
        .clone()
        .or_else(|| a.repo.as_deref().map(default_database))
        .unwrap_or_default();
    let fail = |message: String, hint: &str| {
        eprintln!("error: {message}");
        eprintln!("hint: {hint}");
        if a.json {
            println!(
                "{}",
                serde_json::json!({"error": {"kind": "database", "message": message, "hint": hint, "code": 2}})
            );
        }
        ExitCode::from(2)
    };
    let mut store = match ota_fleet::open(&database) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                e.to_string(),
                "check --database (or --repo: the store is REPO.fleet.sqlite beside it)",
            )
        }
    };
    let devices = match store.devices() {
        Ok(d) => d,
        Err(e) => return fail(e.to_string(), "the database could not be read"),
    };
    let now = chrono::Utc::now();
    let within = chrono::Duration::days(i64::from(a.expiring_within));
    let silent = chrono::Duration::days(i64::from(a.silent_for));
    let rows: Vec<_> = devices
        .iter()
        .map(|d| (d, flags(d, now, within, silent)))
        .filter(|(_, f)| !a.flagged || !f.is_empty())
        .collect();
    let flagged = devices
        .iter()
        .filter(|d| !flags(d, now, within, silent).is_empty())
        .count();
    if a.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(d, f)| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("flags".into(), serde_json::to_value(f).unwrap_or_default());
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"devices": list, "total": devices.len(), "flagged": flagged})
        );
    } else {
        println!(
            "{:<24} {:<12} {:<15} {:>5} {:<11} {:<11} {:<20} FLAGS",
            "DEVICE", "VERSION", "STATE", "ROOT", "TRUST-EXP", "CERT-EXP", "LAST-SEEN"
        );
        for (d, f) in &rows {
            let names: Vec<&str> = f.iter().map(flag_name).collect();
            println!(
                "{:<24} {:<12} {:<15} {:>5} {:<11} {:<11} {:<20} {}",
                d.device_id,
                d.last.installed_version.as_deref().unwrap_or("-"),
                d.last.update_state,
                d.last.root_version,
                date(d.last.metadata_expires),
                date(d.last.cert_not_after),
                d.last_seen.format("%Y-%m-%d %H:%M:%S"),
                if names.is_empty() {
                    "-".into()
                } else {
                    names.join(",")
                }
            );
        }
        println!("{} devices, {flagged} flagged", devices.len());
    }
    if flagged > 0 {
        ExitCode::from(FLAGGED)
    } else {
        ExitCode::SUCCESS
    }
}
