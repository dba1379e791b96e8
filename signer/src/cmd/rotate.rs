//! `ota-sign rotate`: change the keys or the threshold of one top-level role, making exactly
//! one new root version signed by the old and the new root keys, and re-sign what the change
//! requires ([`ota_repo::rotate`]); or stage the new root unsigned for a signing ceremony.
use crate::keys;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_formats::metadata::Root;
use ota_repo::delegation;
use ota_repo::rotate::{self, KeyDirs, Request, RoleChange, RotateError, Rotated};
use std::path::PathBuf;

const EXAMPLE: &str = "\
Examples:
  ota-sign rotate --repo repo --keys ~/ota-keys --role targets --generate --remove-key 3f1c9a0b
  ota-sign rotate --repo repo --keys ~/ota-keys --role root --generate --key-type ecdsa-p256
  ota-sign rotate --repo repo --keys ~/ota-keys --role root --add-key alice-root.pub --threshold 2
  ota-sign rotate --repo repo --keys ~/ota-keys --role timestamp --generate --remove-key 9d2e41aa --json
  ota-sign rotate --repo repo --keys ~/ota-keys --role root --add-key hsm.pub --remove-key 3f1c9a0b --stage

ROLE is root, targets, snapshot or timestamp, or a role delegated by the top-level targets
(`ota-sign delegate`). Delegated roles have their keys listed by the targets metadata, not by
root: their rotation makes no new root but a new targets version with the role's new keys and
threshold (signed by the targets keys), a new version of the role signed by its new keys (the
threshold of the new set), then snapshot, and the timestamp last. --expires is then the expiry
period of the role's new version; --stage does not apply.
  ota-sign rotate --repo repo --keys ~/ota-keys --role apps --generate --remove-key 5be0c1d2

Each call makes exactly one new root version. It is signed by the threshold of the current
root's root keys AND the threshold of the new root's own root keys, so devices can follow it
from any earlier root. The role whose keys change is re-signed under the new root, and what
lists it after it (targets -> snapshot -> timestamp); the timestamp is replaced last.

--generate makes a new key (ed25519 unless --key-type ecdsa-p256) saved 0600 in the key
directory as the next ROLE-N.pem. --add-key takes a public key file whose private key stays
with its holder: PEM SubjectPublicKeyInfo (openssl pkey -in KEY -pubout) or a TUF key object
in JSON; it is listed in ota-repo.json as the next ROLE-N.pem, where the holder puts the key
to sign with ota-sign. --remove-key takes a key id or its first 8+ hex digits, as
`ota-sign status` shows them. The files of removed keys are left on disk: destroy them.

With online roles (`init --online-roles`), snapshot and timestamp keys are read from and
written to --online-keys (default: KEYS-online beside --keys); copy that directory to the
server and restart ota-server after rotating them.

--stage writes the new root unsigned to REPO/ota-staged-root.json (the `signed` part of the
root metadata, as JSON) when the keys it needs are not all here: a signing ceremony collects
the signatures and publishes it. A generated key is saved as usual; nothing is published.

--resume finishes a rotation that stopped after writing its new root (a crash or a full disk
between N.root.json and timestamp.json): every other command then refuses the repository with
\"the publication of root vN was interrupted\". It verifies root N again as the successor of
N-1, re-signs what it requires with the keys in --keys and publishes, like the rotation would
have; on a consistent repository it changes nothing.
  ota-sign rotate --repo repo --keys ~/ota-keys --resume

Compromised keys: see signer/RECOVERY.md.

Exit codes: 0 rotated (or staged), 1 a write failed part-way, 2 bad input (role, key id,
threshold, public key file, last key of a role), 3 keys (not enough keys of the current or the
new root, or of a role to re-sign), 4 repository (missing, corrupt, locked, a root already
staged).";

/// Arguments of `rotate`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Repository directory.
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the private keys.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// The role whose keys change: root, targets, snapshot, timestamp or a delegated role.
    #[arg(
        long,
        value_name = "ROLE",
        required_unless_present = "resume",
        default_value = "",
        hide_default_value = true
    )]
    pub role: String,
    /// Finish a rotation interrupted after its new root was written (no other change).
    #[arg(long, conflicts_with_all = ["generate", "add_key", "remove_key", "threshold", "expires", "stage"])]
    pub resume: bool,
    /// Generate a new key for the role (saved 0600 as the next ROLE-N.pem).
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
    /// Add the public key in FILE (PEM SubjectPublicKeyInfo or TUF key JSON); repeatable.
    #[arg(long = "add-key", value_name = "FILE")]
    pub add_key: Vec<PathBuf>,
    /// Remove the key with this id (or unique prefix of 8+ hex digits); repeatable.
    #[arg(long = "remove-key", value_name = "KEYID")]
    pub remove_key: Vec<String>,
    /// The role's new signature threshold.
    #[arg(long, value_name = "N")]
    pub threshold: Option<u64>,
    /// Expiry period of the new root (default: the repository's root period).
    #[arg(long, value_name = "PERIOD")]
    pub expires: Option<String>,
    /// The online key directory of an online-roles repository (default: KEYS-online).
    #[arg(long, value_name = "DIR")]
    pub online_keys: Option<PathBuf>,
    /// Write the new root unsigned to REPO/ota-staged-root.json instead of signing it.
    #[arg(long)]
    pub stage: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The online key directory: --online-keys, else KEYS-online beside --keys.
    fn online_dir(&self) -> PathBuf {
        self.online_keys
            .clone()
            .unwrap_or_else(|| keys::online_dir_beside(&self.keys))
    }

    fn request(&self) -> Result<Request> {
        let expires = super::flags::period(self.expires.as_deref())?;
        let generate = if self.generate {
            Some(super::flags::key_type(&self.key_type)?)
        } else {
            None
        };
        Ok(Request {
            role: self.role.trim().to_string(),
            generate,
            add: self.add_key.clone(),
            remove: self.remove_key.clone(),
            threshold: self.threshold,
            expires,
            stage: self.stage,
        })
    }
}

/// Run `rotate`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    let role = a.role.trim();
    if !a.resume && !role.is_empty() && !Root::TOP_LEVEL.contains(&role) {
        return run_delegated(&a, now);
    }
    keys::check_outside_repo(&a.keys, &a.repo)?;
    let dirs = KeyDirs {
        keys: a.keys.clone(),
        online: Some(a.online_dir()),
    };
    let secrets = keys::CliSecrets::default();
    let done = if a.resume {
        match rotate::resume(&a.repo, &dirs, &keys::access(&secrets), now)? {
            Some(done) => done,
            None => {
                if a.json {
                    super::print_json(&serde_json::json!({"resumed": false}));
                } else {
                    println!("nothing to resume: the repository verifies as it is");
                }
                return Ok(0);
            }
        }
    } else {
        let req = a.request()?;
        rotate::rotate_with(&a.repo, &dirs, &req, &keys::access(&secrets), now)?
    };
    for w in &done.warnings {
        crate::warn(w);
    }
    if a.json {
        super::print_json(&done);
    } else {
        print_human(&a, &done);
    }
    Ok(0)
}

/// `rotate --role ROLE` for a role delegated by the top-level targets: no new root
/// ([`ota_repo::delegation::rotate_with`]).
fn run_delegated(a: &Args, now: DateTime<Utc>) -> Result<u8> {
    let req = a.request()?;
    keys::check_outside_repo(&a.keys, &a.repo)?;
    let dirs = KeyDirs {
        keys: a.keys.clone(),
        online: Some(super::delegate::online_dir(&a.keys, a.online_keys.as_ref())),
    };
    let secrets = keys::CliSecrets::default();
    let done = delegation::rotate_with(&a.repo, &dirs, &req, &keys::access(&secrets), now)?;
    for w in &done.warnings {
        crate::warn(w);
    }
    if a.json {
        super::print_json(&done);
        return Ok(0);
    }
    println!("{}", change_line(&done.change));
    let p = &done.published;
    println!(
        "published {} v{} (expires {}); signed targets v{}, snapshot v{}, timestamp v{}; root unchanged (v{})",
        done.role,
        done.version,
        done.expires.format("%Y-%m-%d %H:%M UTC"),
        p.targets_version,
        p.snapshot_version,
        p.timestamp_version,
        done.root_version
    );
    for f in &done.retired_files {
        println!("retired key file (destroy it): {}", f.display());
    }
    for f in &done.expected_files {
        println!(
            "the holder of an added key puts its private key at {} to sign with ota-sign",
            f.display()
        );
    }
    Ok(0)
}

/// `ROLE: threshold T of N key(s); added: ...; removed: ...`
fn change_line(c: &RoleChange) -> String {
    let short = ota_repo::keys::short_id;
    let added: Vec<String> = c
        .added
        .iter()
        .map(|k| {
            let file = k.file.as_deref().unwrap_or("no key file");
            let how = if k.generated { ", generated" } else { "" };
            format!("{} ({} {file}{how})", short(&k.keyid), k.keytype)
        })
        .collect();
    let removed: Vec<&str> = c.removed.iter().map(|k| short(k)).collect();
    format!(
        "{}: threshold {} of {} key(s); added: {}; removed: {}",
        c.role,
        c.threshold,
        c.keyids.len(),
        if added.is_empty() {
            "-".into()
        } else {
            added.join(", ")
        },
        if removed.is_empty() {
            "-".into()
        } else {
            removed.join(", ")
        },
    )
}

fn print_human(a: &Args, done: &Rotated) {
    for c in &done.changes {
        println!("{}", change_line(c));
    }
    if let Some(staged) = &done.staged {
        println!(
            "staged root v{} unsigned in {}; nothing was published: sign it in a signing ceremony",
            done.root_version,
            staged.display()
        );
        return;
    }
    if let Some(p) = &done.published {
        println!(
            "published root v{} (expires {}); signed {}: targets v{}, snapshot v{}, timestamp v{}",
            done.root_version,
            done.root_expires.format("%Y-%m-%d %H:%M UTC"),
            p.signed.join(", "),
            p.targets_version,
            p.snapshot_version,
            p.timestamp_version
        );
    }
    for f in &done.retired_files {
        println!("retired key file (destroy it): {}", f.display());
    }
    for f in &done.expected_files {
        println!(
            "the holder of an added key puts its private key at {} to sign with ota-sign",
            f.display()
        );
    }
    let online = ota_repo::online::ONLINE_ROLES;
    if done
        .changes
        .iter()
        .any(|c| online.contains(&c.role.as_str()))
        && a.online_dir().is_dir()
    {
        println!(
            "if ota-server signs snapshot and timestamp: copy {} to it and restart it",
            a.online_dir().display()
        );
    }
}

/// The CLI's class, wording and hint for a refused rotation (`msg` is the library's message).
pub fn error(msg: String, e: &RotateError) -> Error {
    use RotateError as R;
    match e {
        R::UnknownRole { .. } => Error::input(
            msg,
            "pass --role root, targets, snapshot or timestamp, or the name of a role made with `ota-sign delegate`",
        ),
        R::Delegation(d) => super::delegate::error(msg, d),
        R::DelegatedRole { .. } => Error::input(
            msg,
            "leave out --stage: a delegated role's rotation signs a new targets version (targets keys) and the role's new version (its new keys), no root",
        ),
        R::NothingToChange { .. } => Error::input(
            msg,
            "give --generate, --add-key, --remove-key or --threshold (to extend root's expiry only: ota-sign publish --root)",
        ),
        R::UnknownKeyId { .. } | R::AmbiguousKeyId { .. } => Error::input(
            msg,
            "`ota-sign status --repo REPO` lists each role's key ids; give a full id or its first 8+ hex digits, enough to name one key",
        ),
        R::KeyOfOtherRole { other, .. } => {
            Error::input(msg, format!("to remove it from role {other}, pass --role {other}"))
        }
        R::KeyAlreadyListed { .. } => Error::input(msg, "the key is authorised already; add another key"),
        R::KeyOfAnotherRole { .. } => Error::input(
            msg,
            "give every role its own keys: generate one for this role with --generate",
        ),
        R::LastKey { .. } => Error::input(
            msg,
            "add the new key in the same call (--generate or --add-key): the old key goes and the new one comes in one new root",
        ),
        R::ThresholdZero { .. } => Error::input(msg, "a threshold is at least 1"),
        R::ThresholdAboveKeys { .. } => Error::input(
            msg,
            "lower --threshold, or add keys in the same call",
        ),
        R::PublicKeyUnreadable { .. } | R::PublicKeyInvalid { .. } => Error::input(
            msg,
            "give the public key as PEM (openssl pkey -in KEY -pubout) or as a TUF key object in JSON ({\"keytype\", \"scheme\", \"keyval\": {\"public\"}})",
        ),
        R::PublicKeyIsPrivate { .. } => Error::input(
            msg,
            "never pass a private key around: extract its public key (openssl pkey -in KEY -pubout -out KEY.pub) and give that",
        ),
        R::NotEnoughKeys { .. } => Error::keys(
            msg,
            "bring the missing key files into the key directory (each holder of a threshold key), or pass --stage to write the new root unsigned for a signing ceremony",
        ),
        R::StagedRootPending { .. } => Error::repo(
            msg,
            "finish the staged rotation (its signing ceremony publishes it) or delete REPO/ota-staged-root.json to abandon it",
        ),
        R::StagedRootCorrupt { .. } => Error::repo(
            msg,
            "delete REPO/ota-staged-root.json to abandon the staged rotation, then stage it again",
        ),
        R::RootVersion { .. } => Error::input(
            msg,
            "the repository's root changed since the root was staged: abandon it and stage the rotation again",
        ),
        R::RootNotSigned { .. } => Error::keys(
            msg,
            "a new root needs the threshold of the current root's root keys and of its own: collect the missing signatures",
        ),
        R::NoOnlineKeyDir => Error::input(msg, "pass --online-keys DIR"),
    }
}
