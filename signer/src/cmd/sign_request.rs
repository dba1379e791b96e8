//! `ota-sign sign-request`: one key holder signs a request with one key, on their own
//! (air-gapped) machine, and hands back a detached signature file. No repository is needed.
use super::ceremony::{print_request, EXIT_CODES};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use ota_repo::ceremony::{DetachedSignature, SigningRequest};
use serde::Serialize;
use std::path::{Path, PathBuf};

const EXAMPLE: &str = "\
Examples:
  ota-sign sign-request targets-v7.request.json --key /media/alice/targets-2.pem --signer-name alice --out alice.sig.json
  ota-sign sign-request root-v3.request.json --key root-1.pem --trusted-root my-root-v2.json --json

The request file's own hash and content are checked, and what it changes is printed (targets
with their lengths and hashes, keys and thresholds, expiry): read it before handing the
signature back. The key is read like every ota-sign key (a PEM file, an encrypted one, or a
pkcs11: URI) and must be one of the keys the request lists. The signature file holds the key
id, the signature, the request's hash, role and version, the signer's name (default: the key
file's name) and the time; `ota-sign combine` checks it against the request.

The release machine that wrote the request is not trusted for who may sign it: with
--trusted-root (a root.json you kept from the last ceremony or read off a device) the request
must have been made under exactly that root and name exactly the keys and thresholds it sets
(for a root request, the proposed root's too), or nothing is signed.";

/// Arguments of `sign-request`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{EXIT_CODES}"))]
pub struct Args {
    /// The request file (from `ota-sign request`).
    #[arg(value_name = "REQUEST")]
    pub request: PathBuf,
    /// Your private key: a key file, or a pkcs11: URI.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// Your name, recorded in the signature and the audit log (default: the key file's name).
    #[arg(long, value_name = "NAME")]
    pub signer_name: Option<String>,
    /// The signature file to write (default: beside the request, REQUEST.KEYID.sig.json);
    /// never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A root metadata file you trust (kept from the last ceremony, or read off a device):
    /// refuse the request unless it was made under this root and names exactly the keys and
    /// thresholds it sets.
    #[arg(long, value_name = "ROOT.json")]
    pub trusted_root: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `sign-request` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The signature file written.
    pub signature: PathBuf,
    /// What it holds.
    #[serde(flatten)]
    pub detached: DetachedSignature,
    /// The summary the signer saw.
    pub summary: Vec<String>,
    /// The version of the `--trusted-root` the request was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<u64>,
}

/// The key directory and entry to load `key` with: a `pkcs11:` URI as it is, a file by its
/// directory and name.
fn key_location(key: &Path) -> Result<(PathBuf, String)> {
    let text = key.to_string_lossy();
    if text.starts_with("pkcs11:") {
        return Ok((PathBuf::from("."), text.into_owned()));
    }
    let name = key
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::input(
                format!("--key {} names no file", key.display()),
                "pass the path of your key file, e.g. --key /media/usb/targets-2.pem",
            )
        })?;
    let dir = match key.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// Run `sign-request`.
pub fn run(a: Args, now: DateTime<Utc>) -> Result<u8> {
    let req = SigningRequest::read(&a.request)?;
    if req.changes.expires.to <= now {
        crate::warn(&format!(
            "{} expires at {}, which has passed: combine will refuse it",
            req.describe(),
            req.changes.expires.to.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    let trusted_root = match &a.trusted_root {
        Some(path) => {
            let bytes = ota_fs::user_file::read(path, ota_repo::repository::MAX_METADATA_LEN)
                .map_err(|e| {
                    Error::user_file(
                        "trusted root",
                        e,
                        Error::input,
                        "pass the root.json you kept from the last ceremony",
                    )
                })?;
            Some(req.check_trusted_root(&bytes)?)
        }
        None => None,
    };
    let (dir, entry) = key_location(&a.key)?;
    let key = crate::keys::load_key(&dir, &entry)?;
    let signers = ota_repo::keys::as_signers(std::slice::from_ref(&key));
    let Some(signer) = signers.first() else {
        return Err(Error::keys("no key loaded", "report this bug"));
    };
    let name = a.signer_name.clone().unwrap_or_else(|| {
        Path::new(&entry)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(entry.clone())
    });
    let detached = DetachedSignature::sign(&req, *signer, Some(&name), now)?;
    let out = a.out.clone().unwrap_or_else(|| {
        let stem = a
            .request
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = stem.strip_suffix(".json").unwrap_or(&stem);
        let stem = stem.strip_suffix(".request").unwrap_or(stem);
        a.request.with_file_name(format!(
            "{stem}.{}.sig.json",
            ota_repo::keys::short_id(&detached.keyid)
        ))
    });
    if !a.json {
        print_request(&req);
    }
    detached.write(&out)?;
    let report = Report {
        signature: out,
        detached,
        summary: req.summary.clone(),
        trusted_root,
    };
    if a.json {
        super::print_json(&report);
    } else {
        println!(
            "signed {} with key {} as {:?}: {}",
            req.describe(),
            ota_repo::keys::short_id(&report.detached.keyid),
            name,
            report.signature.display()
        );
    }
    Ok(0)
}
