//! `ota-sign request`: write the signing request for the next version of targets or root, for
//! key holders to sign one by one (`sign-request`) and `combine` to publish.
use super::ceremony::{needs, parse_expires, print_request, EXIT_CODES};
use crate::Result;
use chrono::{DateTime, Utc};
use ota_repo::ceremony::audit::{AuditLog, Event, NewEntry};
use ota_repo::ceremony::request::{ThresholdSet, STAGED_ROOT_FILE};
use ota_repo::ceremony::summary::Changes;
use ota_repo::ceremony::{CeremonyError, CeremonyRole, SigningRequest};
use ota_repo::lock::RepoLock;
use ota_repo::Repository;
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign add --repo repo --no-publish fw.img --name gw --version 1.3.0 --hardware board-a
  ota-sign request --repo repo --role targets --out targets-v7.request.json
  ota-sign request --repo repo --role root --expires 365d --json
  ota-sign request --repo repo --role targets --expires 90d      # re-sign the published targets

The request holds the next version of the role, unsigned: for targets what `add --no-publish`
staged (or, with --expires and nothing staged, the published targets with a new expiry); for
root the root staged in REPO/ota-staged-root.json by `ota-sign rotate --stage`, else the
current root with a new version and expiry. It also holds its SHA-256, which keys may sign and
how many must (for root: the current root's threshold of root keys AND the new root's), and a
summary of what changes, printed here too. The request is recorded in REPO/audit/log.jsonl.
--expires is a period from now (90d) or an RFC 3339 time; default: the role's period.

Next: each key holder runs `ota-sign sign-request REQUEST --key KEYFILE --out SIG.json` on
their own machine, then `ota-sign combine --repo REPO REQUEST SIG.json...` publishes.";

/// Arguments of `request`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{EXIT_CODES}"))]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// The role to sign: targets or root.
    #[arg(long, value_name = "ROLE", value_parser = ["targets", "root"])]
    pub role: String,
    /// The request file to write (default: ROLE-vVERSION.request.json here); never
    /// overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Expiry of the new metadata: a period from now (90d) or an RFC 3339 time.
    #[arg(long, value_name = "PERIOD|TIME")]
    pub expires: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `request` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The request file written.
    pub request: PathBuf,
    /// The role.
    pub role: CeremonyRole,
    /// The version to publish.
    pub version: u64,
    /// The version it builds on.
    pub base_version: u64,
    /// SHA-256 of the request.
    pub request_sha256: String,
    /// SHA-256 of the bytes each key signs.
    pub signed_sha256: String,
    /// Thresholds, every one to be met.
    pub thresholds: Vec<ThresholdSet>,
    /// What changes.
    pub changes: Changes,
    /// The summary lines.
    pub summary: Vec<String>,
    /// The root came from ota-staged-root.json.
    pub staged_root: bool,
    /// The audit log's head after recording the request.
    pub audit_head: String,
}

/// Run `request`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    let role = CeremonyRole::parse(&a.role)?;
    let expires = parse_expires(a.expires.as_deref(), now)?;
    let _lock = RepoLock::acquire(&a.repo)?;
    let repo = Repository::load(&a.repo)?;
    let req = SigningRequest::create(&repo, role, expires, now)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{role}-v{}.request.json", req.version)));
    // Checked before the audit entry; the write below still never replaces a file.
    if out.exists() {
        return Err(CeremonyError::OutputExists { path: out }.into());
    }
    let audit_head =
        AuditLog::of_repo(&a.repo).append(&[NewEntry::about(&req, Event::Request)], now)?;
    req.write(&out)?;
    let report = Report {
        request: out,
        role,
        version: req.version,
        base_version: req.base.version,
        request_sha256: req.request_sha256.clone(),
        signed_sha256: req.signed_sha256.clone(),
        thresholds: req.thresholds.clone(),
        changes: req.changes.clone(),
        summary: req.summary.clone(),
        staged_root: role == CeremonyRole::Root && a.repo.join(STAGED_ROOT_FILE).exists(),
        audit_head,
    };
    if a.json {
        super::print_json(&report);
        return Ok(0);
    }
    print_request(&req);
    println!("written to {}", report.request.display());
    println!(
        "next: each key holder signs it with `ota-sign sign-request {} --key KEYFILE --out NAME.sig.json`,",
        report.request.display()
    );
    println!(
        "      then `ota-sign combine --repo {} {} SIG.json...` publishes once {} signed",
        a.repo.display(),
        report.request.display(),
        needs(&req.thresholds)
    );
    Ok(0)
}
