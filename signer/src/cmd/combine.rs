//! `ota-sign combine`: check the detached signatures of a request against it and the
//! repository, and publish once every threshold is met ([`ota_repo::ceremony::combine`]).
use super::ceremony::EXIT_CODES;
use crate::keys;
use crate::Result;
use chrono::{DateTime, Utc};
use ota_repo::ceremony::combine::{self, Outcome, PublishKeys};
use ota_repo::ceremony::SigningRequest;
use ota_repo::rotate::KeyDirs;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign combine --repo repo --keys ~/ota-keys targets-v7.request.json alice.sig.json bob.sig.json carol.sig.json
  ota-sign combine --repo repo root-v3.request.json sigs/*.sig.json --json

Each signature file must be for this request (its hash), by a key that may sign it, and must
verify over the request's content; one bad file refuses the whole run. A key counts once; a
second file by the same key is reported. The request must still apply: the repository's
version of the role, its root and keys must be those it was made over (else: stale request).

Below a threshold nothing is published and the error says how many valid signatures there
are of how many needed. At the thresholds: targets are published as N.targets.json, then a new
snapshot and timestamp signed with the keys in --keys (with online roles the server signs
those, and --keys is not needed); root as a rotation publishes it: N.root.json and root.json, the
roles whose keys it changes re-signed with the keys in --keys (keys a staged rotation generated
included; snapshot and timestamp keys from --online-keys with online roles), timestamp.json
last, and ota-repo.json updated to name the new keys. Accepted signatures, the publication and refusals
are recorded in REPO/audit/log.jsonl; a refusal changes no metadata.";

/// Arguments of `combine`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{EXIT_CODES}"))]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the keys publishing needs: snapshot and timestamp for targets (not with
    /// online roles); for a root, those of the roles whose keys it changes.
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// The online key directory of an online-roles repository, for a root that changes the
    /// snapshot or timestamp keys (default: KEYS-online).
    #[arg(long, value_name = "DIR")]
    pub online_keys: Option<PathBuf>,
    /// The request file.
    #[arg(value_name = "REQUEST")]
    pub request: PathBuf,
    /// The signature files (from `ota-sign sign-request`).
    #[arg(value_name = "SIGNATURE", required = true)]
    pub signatures: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `combine`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    if let Some(k) = &a.keys {
        keys::check_outside_repo(k, &a.repo)?;
    }
    let request = SigningRequest::read(&a.request)?;
    let secrets = keys::CliSecrets::default();
    let access = keys::access(&secrets);
    let dirs = a.keys.as_ref().map(|k| KeyDirs {
        keys: k.clone(),
        online: Some(
            a.online_keys
                .clone()
                .unwrap_or_else(|| keys::online_dir_beside(k)),
        ),
    });
    let publish_keys = PublishKeys {
        dirs,
        access: &access,
    };
    let outcome = combine::combine(&a.repo, &request, &a.signatures, &publish_keys, now)?;
    for d in &outcome.tally.duplicates {
        crate::warn(&format!("not counted again: {}", d.describe()));
    }
    for w in &outcome.published.warnings {
        crate::warn(w);
    }
    if a.json {
        super::print_json(&outcome);
    } else {
        print(&outcome);
    }
    Ok(0)
}

fn print(o: &Outcome) {
    let p = &o.published;
    println!(
        "published {} v{} ({}): root v{}, targets v{}, snapshot v{}, timestamp v{}",
        o.role,
        o.version,
        o.tally
            .thresholds
            .iter()
            .map(|t| format!("{} {} of {} needed", t.name, t.valid, t.threshold))
            .collect::<Vec<_>>()
            .join(", "),
        p.root_version,
        p.targets_version,
        p.snapshot_version,
        p.timestamp_version
    );
    for s in &o.tally.accepted {
        println!(
            "  signed by {} (key {}) at {}: {}",
            s.signer.as_deref().unwrap_or("(no name)"),
            ota_repo::keys::short_id(&s.keyid),
            s.time.format("%Y-%m-%d %H:%M:%S UTC"),
            s.file.display()
        );
    }
    if !p.signed.contains(&"snapshot".to_string()) && o.role.as_str() == "targets" {
        println!("  the server holding the online keys publishes it with its next snapshot");
    }
    for c in &o.changes {
        println!(
            "  {}: threshold {} of {} key(s), {} added, {} removed",
            c.role,
            c.threshold,
            c.keyids.len(),
            c.added.len(),
            c.removed.len()
        );
    }
    for f in &o.retired_files {
        println!("retired key file (destroy it): {}", f.display());
    }
    for f in &o.expected_files {
        println!(
            "the holder of an added key puts its private key at {} to sign with ota-sign",
            f.display()
        );
    }
    if let Some(h) = &o.audit_head {
        println!("audit log head {h}");
    }
}
