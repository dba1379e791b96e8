//! `ota-sign init`: role keys and a new, signed repository.
//!
//! Key files already present in the keys directory under the expected names (`root-1.pem`,
//! `targets-1.pem`, ...) are reused, missing ones are generated. That lets the public example
//! keys in `keys-example/` drive demos and tests, and lets an interrupted `init` be re-run.
//! The repository is built in a temp directory beside `--repo` and renamed into place in one
//! step, so it either exists complete or not at all.
use crate::keys;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_formats::metadata::{Root, Signed, Snapshot, Targets, Timestamp};
use ota_fs::atomic;
use ota_fs::mode::{self, PUBLIC_DIR, PUBLIC_FILE};
use ota_repo::config::{CompressionPolicy, RepoConfig, CONFIG_FILE, CONFIG_FORMAT};
use ota_repo::keys::{key_file_name, LoadedKey, RoleKeys};
use ota_repo::policy::{expires_at, Period, ROLES};
use ota_repo::repository::{meta_entry, Repository, METADATA_DIR, TARGETS_DIR};
use ota_repo::rotate::{GeneratedKey, KeyType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const EXAMPLE: &str = "\
Examples:
  ota-sign init --repo repo --keys ~/ota-keys
  ota-sign init --repo repo --keys ~/ota-keys --threshold root=2 --timestamp-expiry 12h
  ota-sign init --repo repo --keys ~/ota-keys --key-count targets=5 --threshold targets=3
  ota-sign init --repo repo --keys ~/ota-keys --key-type ecdsa-p256   # P-256 role keys
  ota-sign init --repo demo-repo --keys keys-example     # reuse the public example keys

Key files already in --keys under the expected names (root-1.pem, targets-1.pem, ...)
are reused; missing ones are generated. Keys are never stored in --repo.";

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// Repository directory to create (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// Directory of the private keys (created 0700; must be outside --repo).
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Expiry period of root metadata.
    #[arg(long, default_value = "365d", value_name = "PERIOD")]
    pub root_expiry: String,
    /// Expiry period of targets metadata.
    #[arg(long, default_value = "90d", value_name = "PERIOD")]
    pub targets_expiry: String,
    /// Expiry period of snapshot metadata.
    #[arg(long, default_value = "7d", value_name = "PERIOD")]
    pub snapshot_expiry: String,
    /// Expiry period of timestamp metadata.
    #[arg(long, default_value = "1d", value_name = "PERIOD")]
    pub timestamp_expiry: String,
    /// Signature threshold of a role, with that many keys (repeatable; default 1 each).
    #[arg(long = "threshold", value_name = "ROLE=N")]
    pub thresholds: Vec<String>,
    /// Number of keys of a role, at least its threshold (repeatable; default: the
    /// threshold): any threshold of them sign, e.g. in a signing ceremony.
    #[arg(long = "key-count", value_name = "ROLE=N")]
    pub key_counts: Vec<String>,
    /// zstd level of targets added later (1-19).
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// zstd window log of targets added later (10-23; 23 = 8 MiB decoder window).
    #[arg(long, default_value_t = 23, value_parser = clap::value_parser!(u32).range(10..=23))]
    pub zstd_window_log: u32,
    /// Snapshot and timestamp are signed online by `ota-server --online-keys`: their keys go
    /// to --online-keys, not --keys, and `add`/`publish` sign targets only.
    #[arg(long)]
    pub online_roles: bool,
    /// Where --online-roles puts the snapshot and timestamp keys (copy this directory, and
    /// only this one, to the server). Default: KEYS-online beside --keys.
    #[arg(long, value_name = "DIR", requires = "online_roles")]
    pub online_keys: Option<PathBuf>,
    /// Type of the keys generated: ed25519 or ecdsa-p256 (keys already in --keys are reused
    /// whatever their type).
    #[arg(long, value_name = "TYPE", default_value = "ed25519")]
    pub key_type: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The directory of `role`'s keys.
    fn key_dir(&self, role: &str) -> PathBuf {
        match self.online_dir() {
            Some(d) if ota_repo::online::ONLINE_ROLES.contains(&role) => d,
            _ => self.keys.clone(),
        }
    }

    /// The online key directory, with --online-roles.
    fn online_dir(&self) -> Option<PathBuf> {
        if !self.online_roles {
            return None;
        }
        Some(
            self.online_keys
                .clone()
                .unwrap_or_else(|| crate::keys::online_dir_beside(&self.keys)),
        )
    }
}

/// One role in the report.
#[derive(Debug, Serialize)]
pub struct RoleReport {
    /// Signature threshold.
    pub threshold: u64,
    /// Key ids.
    pub keyids: Vec<String>,
    /// Key file names in the keys directory.
    pub key_files: Vec<String>,
    /// Key files that already existed and were reused.
    pub reused: Vec<String>,
    /// Expiry of the role's first metadata.
    pub expires: DateTime<Utc>,
}

/// What `init` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Repository directory.
    pub repo: PathBuf,
    /// Keys directory.
    pub keys: PathBuf,
    /// The snapshot and timestamp key directory, with --online-roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_keys: Option<PathBuf>,
    /// Roles by name.
    pub roles: BTreeMap<String, RoleReport>,
}

/// Parse a `--*-expiry` flag value.
fn parse_period(s: &str) -> Result<Period> {
    s.parse().map_err(|e: String| {
        Error::input(
            format!("invalid expiry period {e}"),
            "write periods as a number and a unit, e.g. --targets-expiry 90d (units: s m h d w)",
        )
    })
}

fn parse_thresholds(specs: &[String]) -> Result<BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, u64> = ROLES.iter().map(|r| (r.to_string(), 1)).collect();
    for spec in specs {
        let bad = || {
            Error::input(
                format!("invalid --threshold {spec:?}"),
                "write ROLE=N with ROLE one of root, targets, snapshot, timestamp and N from 1 to 16, e.g. --threshold root=2",
            )
        };
        let (role, n) = spec.split_once('=').ok_or_else(bad)?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        if !ROLES.contains(&role.trim()) || !(1..=16).contains(&n) {
            return Err(bad());
        }
        out.insert(role.trim().to_string(), n);
    }
    Ok(out)
}

/// The number of keys of each role: `--key-count ROLE=N`, else the role's threshold.
fn parse_key_counts(
    specs: &[String],
    thresholds: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, u64>> {
    let mut out = thresholds.clone();
    for spec in specs {
        let bad = |why: &str| {
            Error::input(
                format!("invalid --key-count {spec:?}: {why}"),
                "write ROLE=N with ROLE one of root, targets, snapshot, timestamp and N from the role's threshold to 32, e.g. --key-count targets=5 --threshold targets=3",
            )
        };
        let (role, n) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
        let role = role.trim();
        let n: u64 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        let Some(threshold) = thresholds.get(role).copied() else {
            return Err(bad("unknown role"));
        };
        if n < threshold || n > 32 {
            return Err(bad(&format!(
                "the {role} threshold is {threshold}, so N must be from {threshold} to 32"
            )));
        }
        out.insert(role.to_string(), n);
    }
    Ok(out)
}

fn check_repo_dir(dir: &Path) -> Result<()> {
    if Repository::exists(dir) {
        return Err(Error::repo(
            format!("a repository already exists in {}", dir.display()),
            "init never overwrites a repository; use `ota-sign add` or `ota-sign publish` on it, or choose a new --repo",
        ));
    }
    if dir.exists() {
        let empty = dir.is_dir()
            && std::fs::read_dir(dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if !empty {
            return Err(Error::input(
                format!("{} exists and is not an empty directory", dir.display()),
                "choose a new or empty directory for --repo",
            ));
        }
    }
    Ok(())
}

/// Load or generate `counts[role]` keys of every role; returns them and the newly generated
/// ones.
fn role_keys(
    dir_of: &dyn Fn(&str) -> PathBuf,
    counts: &BTreeMap<String, u64>,
    key_type: KeyType,
) -> Result<(RoleKeys, Vec<String>)> {
    let mut all = BTreeMap::new();
    let mut generated = Vec::new();
    for role in ROLES {
        let n = counts.get(role).copied().unwrap_or(1);
        let dir = &dir_of(role);
        let mut keys = Vec::new();
        for i in 1..=n as usize {
            let file = key_file_name(role, i);
            let key = if dir.join(&file).exists() {
                tracing::info!(file, "reusing existing key");
                keys::load_key(dir, &file)?
            } else {
                generated.push(file.clone());
                LoadedKey::from_generated(file, GeneratedKey::generate(key_type)?)
            };
            if all
                .values()
                .flatten()
                .chain(keys.iter())
                .any(|k: &LoadedKey| k.keyid == key.keyid)
            {
                return Err(Error::keys(
                    format!("key file {} holds a key already used by another role or file", dir.join(&key.file).display()),
                    "give every role its own keys: remove the duplicate file and re-run init to generate a new key",
                ));
            }
            keys.push(key);
        }
        all.insert(role.to_string(), keys);
    }
    Ok((all, generated))
}

/// The signed files of a new repository, by path relative to the repository directory.
fn build_files(
    keys: &RoleKeys,
    thresholds: &BTreeMap<String, u64>,
    periods: &BTreeMap<String, Period>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let fail = |e: ota_formats::Error| {
        Error::keys(
            format!("cannot sign: {e}"),
            "report this bug; nothing was written",
        )
    };
    let period = |role: &str| periods[role];
    let signers = |role: &str| ota_repo::keys::as_signers(&keys[role]);
    let mut root = Root::new(1, expires_at(now, period("root")));
    for role in ROLES {
        for k in &keys[role] {
            root.add_key(role, k.signer.public_key()).map_err(fail)?;
        }
        if let Some(r) = root.roles.get_mut(role) {
            r.threshold = thresholds[role];
        }
    }
    let root_bytes = Signed::sign(root, &signers("root"))
        .and_then(|s| s.to_bytes())
        .map_err(fail)?;
    let targets = Targets::new(1, expires_at(now, period("targets")));
    let targets_bytes = Signed::sign(targets, &signers("targets"))
        .and_then(|s| s.to_bytes())
        .map_err(fail)?;
    let mut snapshot = Snapshot::new(1, expires_at(now, period("snapshot")));
    snapshot
        .meta
        .insert("targets.json".into(), meta_entry(1, &targets_bytes));
    let snapshot_bytes = Signed::sign(snapshot, &signers("snapshot"))
        .and_then(|s| s.to_bytes())
        .map_err(fail)?;
    let timestamp = Timestamp::new(
        1,
        expires_at(now, period("timestamp")),
        meta_entry(1, &snapshot_bytes),
    );
    let timestamp_bytes = Signed::sign(timestamp, &signers("timestamp"))
        .and_then(|s| s.to_bytes())
        .map_err(fail)?;
    Ok(vec![
        (format!("{METADATA_DIR}/1.root.json"), root_bytes.clone()),
        (format!("{METADATA_DIR}/root.json"), root_bytes),
        (format!("{METADATA_DIR}/1.targets.json"), targets_bytes),
        (format!("{METADATA_DIR}/1.snapshot.json"), snapshot_bytes),
        (format!("{METADATA_DIR}/timestamp.json"), timestamp_bytes),
    ])
}

/// Write the repository into a temp directory beside `dir`, then rename it into place.
fn write_repo(dir: &Path, files: &[(String, Vec<u8>)], config: &[u8]) -> Result<()> {
    // Absolute, so `--repo .` or `--repo x/` have a parent to build beside.
    let dir = &keys::resolve(dir)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Every directory of the published tree gets its mode exactly, whatever the umask: a web
    // server running as another user must be able to enter them (a repository copied with
    // `cp -a` keeps these modes).
    mode::create_dir_all(&parent, PUBLIC_DIR).map_err(|e| Error::write(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".ota-init-")
        .tempdir_in(&parent)
        .map_err(|e| Error::write(&parent, e))?;
    let t = tmp.path();
    for sub in [METADATA_DIR, TARGETS_DIR] {
        let d = t.join(sub);
        std::fs::create_dir(&d)
            .and_then(|()| mode::set(&d, PUBLIC_DIR))
            .map_err(|e| Error::write(&d, e))?;
    }
    for (rel, bytes) in files {
        let p = t.join(rel);
        atomic::write_new(&p, bytes, PUBLIC_FILE).map_err(|e| Error::write(&p, e))?;
    }
    let cfg = t.join(CONFIG_FILE);
    atomic::write_new(&cfg, config, PUBLIC_FILE).map_err(|e| Error::write(&cfg, e))?;
    mode::set(t, PUBLIC_DIR).map_err(|e| Error::write(t, e))?;
    atomic::sync_dir(t).map_err(|e| Error::write(t, e))?;
    // rename(2) replaces an empty directory, so an existing empty --repo works too.
    std::fs::rename(t, dir).map_err(|e| Error::write(dir, e))?;
    let _kept = tmp.keep();
    atomic::sync_dir(&parent).map_err(|e| Error::write(&parent, e))
}

/// Run `init`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    // Validate everything before writing anything.
    let periods: BTreeMap<String, Period> = [
        ("root", &a.root_expiry),
        ("targets", &a.targets_expiry),
        ("snapshot", &a.snapshot_expiry),
        ("timestamp", &a.timestamp_expiry),
    ]
    .into_iter()
    .map(|(r, s)| parse_period(s).map(|p| (r.to_string(), p)))
    .collect::<Result<_>>()?;
    let thresholds = parse_thresholds(&a.thresholds)?;
    check_repo_dir(&a.repo)?;
    let online = a.online_dir();
    for dir in std::iter::once(&a.keys).chain(online.as_ref()) {
        keys::check_outside_repo(dir, &a.repo)?;
        if dir.exists() && !dir.is_dir() {
            return Err(Error::keys(
                format!("keys path {} is not a directory", dir.display()),
                "pass a directory with --keys (and --online-keys)",
            ));
        }
    }
    let counts = parse_key_counts(&a.key_counts, &thresholds)?;
    let key_type: KeyType = super::flags::key_type(&a.key_type)?;
    let (keys, generated) = role_keys(&|role| a.key_dir(role), &counts, key_type)?;
    let files = build_files(&keys, &thresholds, &periods, now)?;
    let config = RepoConfig {
        format: CONFIG_FORMAT,
        expiry: periods.clone(),
        key_files: keys
            .iter()
            .map(|(r, ks)| (r.clone(), ks.iter().map(|k| k.file.clone()).collect()))
            .collect(),
        compression: CompressionPolicy {
            level: a.zstd_level,
            window_log: a.zstd_window_log,
        },
        online_roles: a.online_roles,
        extra: Default::default(),
    }
    .to_bytes()?;

    for dir in std::iter::once(&a.keys).chain(online.as_ref()) {
        keys::ensure_key_dir(dir)?;
    }
    for (role, role_keys) in &keys {
        for k in role_keys.iter().filter(|k| generated.contains(&k.file)) {
            ota_repo::keys::save_generated(&a.key_dir(role), k)?;
        }
    }
    write_repo(&a.repo, &files, &config)?;

    let report = Report {
        repo: a.repo.clone(),
        keys: a.keys.clone(),
        online_keys: online.clone(),
        roles: keys
            .iter()
            .map(|(role, ks)| {
                (
                    role.clone(),
                    RoleReport {
                        threshold: thresholds[role],
                        keyids: ks.iter().map(|k| k.keyid.clone()).collect(),
                        key_files: ks.iter().map(|k| k.file.clone()).collect(),
                        reused: ks
                            .iter()
                            .filter(|k| !generated.contains(&k.file))
                            .map(|k| k.file.clone())
                            .collect(),
                        expires: expires_at(now, periods[role]),
                    },
                )
            })
            .collect(),
    };
    if a.json {
        super::print_json(&report);
    } else {
        println!("created repository {}", a.repo.display());
        for role in ROLES {
            let r = &report.roles[role];
            let reused = if r.reused.is_empty() {
                String::new()
            } else {
                format!(" (reused: {})", r.reused.join(", "))
            };
            println!(
                "  {role:<9} threshold {} of {} key(s), expires {} ({}){reused}",
                r.threshold,
                r.keyids.len(),
                r.expires.format("%Y-%m-%d %H:%M UTC"),
                periods[role],
            );
        }
        println!(
            "keys in {} (keep them secret, back them up)",
            a.keys.display()
        );
    }
    Ok(0)
}
