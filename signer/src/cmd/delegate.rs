//! `ota-sign delegate`: delegate target paths from the top-level targets to a new role with
//! its own keys, publishing the new targets version, the role's first (empty) metadata, a
//! snapshot listing it and the timestamp ([`ota_repo::delegation`]).
use crate::keys;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_repo::delegation::{self, DelegateRequest, Delegated, DelegationError};
use ota_repo::rotate::KeyDirs;
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign delegate --repo repo --keys ~/ota-keys --role apps --paths 'apps-*' --generate
  ota-sign delegate --repo repo --keys ~/ota-keys --role modem --paths 'modem-*' --paths 'modem/*' \\
      --generate --key-type ecdsa-p256 --add-key vendor.pub --threshold 2 --terminating --expires 180d --json
  ota-sign add --repo repo --keys ~/ota-keys apps-2.1.0.img --name apps --version 2.1.0 --hardware board-a --role apps
  ota-sign rotate --repo repo --keys ~/ota-keys --role apps --generate --remove-key 3f1c9a0b

The top-level targets then trust ROLE, signed by its own keys, for the target paths that match
a --paths pattern ('*' matches within one path segment: 'apps-*' matches apps-2.1.0.img.zst,
not apps/x). Devices search the top-level targets first, then the delegated roles in the order
they were made; with --terminating a search that reaches ROLE stops there. Targets are added
under the role with `ota-sign add --role ROLE`; its keys change with `ota-sign rotate --role
ROLE` (a new targets version, not a new root).

One call publishes, in this order: ROLE's first metadata (1.ROLE.json, no targets), a new
targets version with the delegation, a snapshot listing both, the timestamp last. Root does not
change.

--generate makes a key for the role (ed25519 unless --key-type ecdsa-p256) saved 0600 in the
key directory as ROLE-1.pem. --add-key takes a public key file whose private key stays with
its holder (PEM SubjectPublicKeyInfo or a TUF key object in JSON); it is listed in
ota-repo.json as the next ROLE-N.pem, where the holder puts the key to sign with ota-sign.
The threshold (default 1) of ROLE's keys must be at hand: the first metadata is signed now.
--expires is ROLE's expiry period (default: the targets period), kept in ota-repo.json.

Refused, with nothing written: a top-level role name or a role delegated already, no --paths,
no key, a threshold of 0 or above the number of keys, a private key given to --add-key, targets
staged with `add --no-publish` (publish them first).

Exit codes: 0 delegated, 1 a write failed part-way, 2 bad input (role name, paths, threshold,
public key file), 3 keys (not enough keys of the role, or targets, snapshot or timestamp keys
missing), 4 repository (missing, corrupt, locked, targets staged).";

/// Arguments of `delegate`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the private keys.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Name of the new delegated role (letters, digits, '_', '-', '.').
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// Target path pattern delegated to the role ('*' within one path segment); repeatable.
    #[arg(long = "paths", value_name = "PATTERN", num_args = 1.., required = true)]
    pub paths: Vec<String>,
    /// Generate a key for the role (saved 0600 as ROLE-N.pem).
    #[arg(long)]
    pub generate: bool,
    /// Type of the generated key: ed25519 or ecdsa-p256.
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "ed25519",
        requires = "generate"
    )]
    pub key_type: String,
    /// Authorise the public key in FILE (PEM SubjectPublicKeyInfo or TUF key JSON); repeatable.
    #[arg(long = "add-key", value_name = "FILE")]
    pub add_key: Vec<PathBuf>,
    /// Signatures of the role's keys required (default 1).
    #[arg(long, value_name = "N")]
    pub threshold: Option<u64>,
    /// A device's search for a target that reaches this role stops here.
    #[arg(long)]
    pub terminating: bool,
    /// Expiry period of the role's metadata (default: the targets period).
    #[arg(long, value_name = "PERIOD")]
    pub expires: Option<String>,
    /// The online key directory of an online-roles repository (default: KEYS-online).
    #[arg(long, value_name = "DIR")]
    pub online_keys: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    fn request(&self) -> Result<DelegateRequest> {
        let expires = super::flags::period(self.expires.as_deref())?;
        let generate = if self.generate {
            Some(super::flags::key_type(&self.key_type)?)
        } else {
            None
        };
        Ok(DelegateRequest {
            role: self.role.trim().to_string(),
            paths: self.paths.clone(),
            generate,
            add: self.add_key.clone(),
            threshold: self.threshold,
            terminating: self.terminating,
            expires,
        })
    }
}

/// The online key directory: `online`, else KEYS-online beside `keys`.
pub(crate) fn online_dir(keys: &std::path::Path, online: Option<&PathBuf>) -> PathBuf {
    online.cloned().unwrap_or_else(|| {
        let mut name = keys.file_name().unwrap_or_default().to_os_string();
        name.push("-online");
        keys.with_file_name(name)
    })
}

/// Run `delegate`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    let req = a.request()?;
    keys::check_outside_repo(&a.keys, &a.repo)?;
    let dirs = KeyDirs {
        keys: a.keys.clone(),
        online: Some(online_dir(&a.keys, a.online_keys.as_ref())),
    };
    let secrets = keys::CliSecrets::default();
    let done = delegation::delegate_with(&a.repo, &dirs, &req, &keys::access(&secrets), now)?;
    for w in &done.warnings {
        crate::warn(w);
    }
    if a.json {
        super::print_json(&done);
    } else {
        print_human(&done);
    }
    Ok(0)
}

fn print_human(d: &Delegated) {
    let short = ota_repo::keys::short_id;
    let keys: Vec<String> = d
        .added
        .iter()
        .map(|k| {
            let file = k.file.as_deref().unwrap_or("no key file");
            let how = if k.generated { ", generated" } else { "" };
            format!("{} ({} {file}{how})", short(&k.keyid), k.keytype)
        })
        .collect();
    println!(
        "delegated {} to {}{}: threshold {} of {} key(s): {}",
        d.paths.join(", "),
        d.role,
        if d.terminating { " (terminating)" } else { "" },
        d.threshold,
        d.keyids.len(),
        keys.join(", ")
    );
    let p = &d.published;
    println!(
        "published {} v{} (expires {}, period {}); signed targets v{}, snapshot v{}, timestamp v{}",
        d.role,
        d.version,
        d.expires.format("%Y-%m-%d %H:%M UTC"),
        d.period,
        p.targets_version,
        p.snapshot_version,
        p.timestamp_version
    );
    for f in &d.expected_files {
        println!(
            "the holder of an added key puts its private key at {} to sign with ota-sign",
            f.display()
        );
    }
    println!(
        "add targets under it with: ota-sign add ... --role {}",
        d.role
    );
}

/// The CLI's class, wording and hint for a refused delegation (`msg` is the library's
/// message).
pub fn error(msg: String, e: &DelegationError) -> Error {
    use DelegationError as D;
    match e {
        D::TopLevelName { .. } | D::BadName { .. } => Error::input(
            msg,
            "name the role with letters, digits, '_', '-' or '.', starting with a letter or digit, e.g. --role apps",
        ),
        D::AlreadyDelegated { role, .. } => Error::input(
            msg,
            format!("choose another name, or change its keys with: ota-sign rotate --role {role}"),
        ),
        D::NotDelegated { .. } => Error::input(
            msg,
            "name a role made with `ota-sign delegate` (its name is in the targets metadata's delegations)",
        ),
        D::NoPaths { .. } | D::BadPath { .. } => Error::input(
            msg,
            "give the target paths it is trusted for as relative patterns, e.g. --paths 'apps-*' ('*' matches within one path segment)",
        ),
        D::NoKeys { .. } => Error::input(
            msg,
            "give it a key: --generate, or --add-key PUBLIC_KEY_FILE",
        ),
        D::SuccinctRoles { .. } => Error::repo(
            msg,
            "edit hash-bin delegations with the tool that made them",
        ),
        D::TargetsStaged { .. } => Error::repo(
            msg,
            "publish the staged targets first (ota-sign publish), then run this again",
        ),
        D::PathNotDelegated { role, .. } => Error::input(
            msg,
            format!("use a target name that matches the paths of role {role}, or add it to the top-level targets (without --role)"),
        ),
        D::ShadowedByTargets { .. } => Error::input(
            msg,
            "withdraw it from the top-level targets first, or publish the image under a new version",
        ),
    }
}
