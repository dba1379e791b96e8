//! `--online-keys DIR`: the server holds the snapshot and timestamp keys (and no others) and
//! keeps the repository valid while it is left alone: it re-signs the timestamp and snapshot
//! before they expire and publishes each targets version the release machine signed offline.
//! The work is [`ota_repo::online::OnlineSigner`]; this module runs it on its own thread
//! (file I/O and signing are blocking) at a fixed interval.
use ota_repo::online::OnlineSigner;
use ota_repo::RepoError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the repository is checked: often enough for the shortest sensible timestamp
/// period, cheap enough (one load and verification of the metadata) to do forever.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Load the online keys of `repo` from `keys`; refuses a directory holding root or targets
/// keys, keys that root does not authorise, or too few of them.
pub fn load(keys: &Path, repo: &Path) -> Result<OnlineSigner, RepoError> {
    OnlineSigner::load(keys, repo)
}

/// Re-sign what is due every [`CHECK_INTERVAL`], for the life of the process.
pub fn spawn(signer: Arc<OnlineSigner>, repo: PathBuf) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("online-signer".into())
        .spawn(move || loop {
            match signer.renew(&repo, chrono::Utc::now()) {
                Ok(Some(p)) => tracing::info!(
                    signed = ?p.signed,
                    targets = p.targets_version,
                    snapshot = p.snapshot_version,
                    timestamp = p.timestamp_version,
                    "online roles re-signed"
                ),
                Ok(None) => {}
                // A release machine holding the lock, or a repository being repaired: try
                // again at the next tick; what is published stays valid until it expires.
                Err(RepoError::Locked { .. }) => tracing::debug!("repository locked; retrying"),
                Err(e) => tracing::warn!(error = %e, "online signing failed; retrying"),
            }
            std::thread::sleep(CHECK_INTERVAL);
        })
        .map(|_| ())
}
