//! The subcommands of `ota-sign`, one module each, over the library modules.
use crate::Result;
use chrono::{DateTime, Utc};
use clap::{ArgAction, Parser, Subcommand};
use serde::Serialize;

pub mod add;
pub mod audit;
pub mod ceremony;
pub mod combine;
pub mod delegate;
pub mod export;
pub mod flags;
pub mod init;
pub mod keys;
pub mod publish;
pub mod recipients;
pub mod request;
pub mod rotate;
pub mod sign_request;
pub mod status;
pub mod withdraw;

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   a write failed part-way (the repository still serves its previous state)
  2   usage or bad input (arguments, firmware file, image name, version, hardware id,
      a target name already taken by another image or version, recipients)
  3   keys: missing, unreadable, not a usable Ed25519 key, not authorised for the role in
      root.json, or inside the repository
  4   repository: missing, corrupt (incl. ota-recipients.json), already existing (init), or
      locked by another ota-sign run (.ota-sign.lock)
  5   version policy: the version is not newer than the published (or staged) ones, or it
      is already published with another image (publish --to: the server refused a targets
      version not above its published one)
  6   publish --to: the server cannot be reached (connection, TLS, timeout) or answered
      something unexpected
  7   publish --to: the server refused the publication (wrong or missing token, signatures
      or threshold, expiry, target files not as signed, --max-upload-size); its reason is
      in the error line
  10  status: a role has under a quarter of its expiry period left, or has expired

With --json, a failure also prints on stdout
  {\"error\": {\"kind\": \"input|keys|repo|policy|io|network|refused\", \"message\", \"hint\", \"exit_code\"}}

Example:
  ota-sign init --repo repo --keys ~/ota-keys
  ota-sign add --repo repo --keys ~/ota-keys fw.img --name gateway-fw --version 1.2.0 --hardware board-a
  ota-sign status --repo repo
  ota-sign publish --repo repo --to https://updates.example.com:8443 --token-file publish.token";

/// `ota-sign`: create and sign OTA update repositories (TUF, consistent snapshots), offline.
#[derive(Debug, Parser)]
#[command(name = "ota-sign", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// More logs on stderr (-v: debug, -vv: trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Sign as if it were this time (RFC 3339, e.g. 2030-01-01T00:00:00Z). For tests and
    /// reproducible fixtures.
    #[arg(long, global = true, hide = true, value_name = "TIME", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create role keys and a new signed repository.
    Init(init::Args),
    /// Add a firmware image as a target and publish it.
    Add(add::Args),
    /// Re-sign targets, snapshot and timestamp when they change or expire soon, or upload a
    /// release to a server holding the online keys (--to).
    Publish(publish::Args),
    /// Show roles, versions, keys, thresholds and expiry; exit 10 when a role is due.
    Status(status::Args),
    /// Manage the devices and groups that encrypted targets are for (public keys).
    Recipients(recipients::Args),
    /// Change a role's keys or threshold: one new root signed by the old and the new root
    /// keys, and what the change requires re-signed (or staged for a signing ceremony).
    Rotate(rotate::Args),
    /// Delegate target paths to a new role with its own keys (a new targets version, the
    /// role's first metadata, snapshot and timestamp).
    Delegate(delegate::Args),
    /// Remove a release from the targets devices see (devices that run it keep it).
    Withdraw(withdraw::Args),
    /// Copy what devices see (metadata, chosen releases) to a directory, e.g. removable media.
    Export(export::Args),
    /// Write a signing request: the next targets or root, unsigned, with a summary of what
    /// changes and who must sign (multi-party signing ceremony).
    Request(request::Args),
    /// Sign a request with one key (no repository needed) into a detached signature file.
    SignRequest(sign_request::Args),
    /// Check the signatures of a request and publish it once its thresholds are met.
    Combine(combine::Args),
    /// Verify or show the signing ceremony's hash-chained audit log.
    Audit(audit::Args),
    /// Protect role keys: encrypt a key file with a passphrase, or switch a role to a key on
    /// a PKCS#11 token (HSM).
    Keys(keys::Args),
}

impl Command {
    /// Whether the command was given `--json` (its failure is then reported as JSON too).
    pub fn json(&self) -> bool {
        match self {
            Command::Init(a) => a.json,
            Command::Add(a) => a.json,
            Command::Publish(a) => a.json,
            Command::Status(a) => a.json,
            Command::Rotate(a) => a.json,
            Command::Delegate(a) => a.json,
            Command::Withdraw(a) => a.json,
            Command::Export(a) => a.json,
            Command::Request(a) => a.json,
            Command::SignRequest(a) => a.json,
            Command::Combine(a) => a.json,
            Command::Audit(a) => a.json(),
            Command::Keys(a) => a.json(),
            Command::Recipients(a) => match &a.command {
                recipients::Sub::Add { json, .. }
                | recipients::Sub::Import { json, .. }
                | recipients::Sub::Remove { json, .. }
                | recipients::Sub::List { json, .. }
                | recipients::Sub::GroupCreate { json, .. } => *json,
            },
        }
    }
}

/// Report a failed command: `error:` and `hint:` lines on stderr and, with `--json`, the
/// JSON error object of [`ota_cli::report`] on stdout. Returns the exit code.
pub fn report_error(e: &crate::Error, json: bool) -> u8 {
    if json {
        ota_cli::report::print_error_json(e.kind(), &e.to_string(), e.hint(), e.exit_code());
    }
    eprintln!("error: {e}");
    eprintln!("hint: {}", e.hint());
    e.exit_code()
}

fn parse_now(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

impl Command {
    /// The repository a command touches, for the expiry warnings that follow it
    /// ([`crate::expiry::warn_for`]); `None` for `status` (it reports expiry itself) and
    /// for commands without one.
    pub fn repo_for_expiry_warnings(&self) -> Option<std::path::PathBuf> {
        match self {
            Command::Init(a) => Some(a.repo.clone()),
            Command::Add(a) => Some(a.repo.clone()),
            Command::Publish(a) => Some(a.repo.clone()),
            Command::Rotate(a) => Some(a.repo.clone()),
            Command::Delegate(a) => Some(a.repo.clone()),
            Command::Withdraw(a) => Some(a.repo.clone()),
            Command::Export(a) => Some(a.repo.clone()),
            Command::Request(a) => Some(a.repo.clone()),
            Command::Combine(a) => Some(a.repo.clone()),
            Command::Recipients(a) => match &a.command {
                recipients::Sub::Add { repo, .. }
                | recipients::Sub::Import { repo, .. }
                | recipients::Sub::Remove { repo, .. }
                | recipients::Sub::List { repo, .. }
                | recipients::Sub::GroupCreate { repo, .. } => Some(repo.clone()),
            },
            _ => None,
        }
    }
}

/// Run the parsed command; returns the exit code of a successful run (0, or 10 for `status`).
/// A command that touches a repository is followed by a warning on stderr for every role
/// inside its expiry warning window (see [`crate::expiry`]).
pub fn run(cli: Cli) -> Result<u8> {
    let now = cli.now.unwrap_or_else(Utc::now);
    let repo = cli.command.repo_for_expiry_warnings();
    let result = run_command(cli.command, now);
    if let Some(dir) = repo {
        crate::expiry::warn_for(&dir, now);
    }
    result
}

fn run_command(command: Command, now: DateTime<Utc>) -> Result<u8> {
    match command {
        Command::Init(a) => init::run(a, now),
        Command::Add(a) => add::run(a, now),
        Command::Publish(a) => publish::run(a, now),
        Command::Status(a) => status::run(a, now),
        Command::Recipients(a) => recipients::run(a),
        Command::Rotate(a) => rotate::run(a, now),
        Command::Delegate(a) => delegate::run(a, now),
        Command::Withdraw(a) => withdraw::run(a, now),
        Command::Export(a) => export::run(a, now),
        Command::Request(a) => request::run(a, now),
        Command::SignRequest(a) => sign_request::run(a, now),
        Command::Combine(a) => combine::run(a, now),
        Command::Audit(a) => audit::run(a),
        Command::Keys(a) => keys::run(a, now),
    }
}

/// Print a report as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => crate::warn(&format!("cannot encode the JSON report: {e}")),
    }
}
