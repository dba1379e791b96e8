//! `ota-sign audit`: verify and show the signing ceremony's audit log
//! ([`ota_repo::ceremony::audit`]).
use crate::Result;
use ota_repo::ceremony::audit::{AuditLog, Entry};
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign audit verify --repo repo
  ota-sign audit verify --repo repo --head 5f0c...e1     # a head recorded earlier must still be in the log
  ota-sign audit show --repo repo --json | jq '.entries[] | select(.event == \"signature\")'

REPO/audit/log.jsonl records every signing request, accepted signature, publication and
refusal of `ota-sign request` and `combine`, one JSON object a line, each line holding the
SHA-256 of the line before (prev_sha256). verify checks the whole chain and names the first
line that breaks it. The chain cannot show a changed last line or lines cut from the end:
record the head (printed here and by combine) elsewhere and pass it with --head.

Exit codes: 0 the chain verifies (an absent log is empty), 4 it is broken, unreadable, or
--head is not in it, 2 bad arguments.";

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Sub,
}

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Check the hash chain; report the first broken line.
    #[command(after_help = EXAMPLE)]
    Verify {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// A head (SHA-256 of a line) recorded earlier that must be in the log.
        #[arg(long, value_name = "SHA256")]
        head: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify, then list the entries.
    #[command(after_help = EXAMPLE)]
    Show {
        /// Repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// Print the entries as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match &self.command {
            Sub::Verify { json, .. } | Sub::Show { json, .. } => *json,
        }
    }
}

/// What `audit verify` and `audit show` report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The log file.
    pub log: PathBuf,
    /// Whether the chain verifies (always true in a report: a broken one is an error).
    pub intact: bool,
    /// Number of entries.
    pub entries_count: usize,
    /// SHA-256 of the last line.
    pub head: String,
    /// The entries (`show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<Entry>>,
}

/// Run `audit`.
pub fn run(a: Args) -> Result<u8> {
    let (repo, head, json, show) = match &a.command {
        Sub::Verify { repo, head, json } => (repo, head.as_deref(), *json, false),
        Sub::Show { repo, json } => (repo, None, *json, true),
    };
    if !repo.is_dir() {
        return Err(ota_repo::RepoError::NoRepository { dir: repo.clone() }.into());
    }
    let log = AuditLog::of_repo(repo);
    let chain = log.verify(head)?;
    let report = Report {
        log: log.path().to_path_buf(),
        intact: true,
        entries_count: chain.entries.len(),
        head: chain.head().to_string(),
        entries: show.then(|| chain.entries.clone()),
    };
    if json {
        super::print_json(&report);
        return Ok(0);
    }
    if show {
        for e in &chain.entries {
            println!(
                "{:>5}  {}  {:<9} {} v{}{}{}{}",
                e.seq,
                e.time.format("%Y-%m-%d %H:%M:%S"),
                format!("{:?}", e.event).to_lowercase(),
                e.role,
                e.version,
                e.signer
                    .as_deref()
                    .map(|s| format!("  by {s}"))
                    .unwrap_or_default(),
                e.keyid
                    .as_deref()
                    .map(|k| format!(" (key {})", ota_repo::keys::short_id(k)))
                    .unwrap_or_default(),
                e.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default(),
            );
        }
    }
    println!(
        "audit log {} verifies: {} entries, head {}",
        report.log.display(),
        report.entries_count,
        report.head
    );
    Ok(0)
}
