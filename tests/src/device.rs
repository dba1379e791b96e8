//! A simulated device for library-level tests: a metadata directory bootstrapped with a
//! repository's root, and a downloads directory, talking HTTP to a [`crate::RepoHost`].
use crate::RepoHost;
use ota_client::{Updater, UpdaterConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A device's TUF state on disk.
pub struct TestDevice {
    dir: tempfile::TempDir,
    metadata_url: String,
    targets_url: String,
}

impl TestDevice {
    /// Provision a device with `root` (the trusted root bytes) for the repository at `host`.
    pub fn new(root: &[u8], host: &dyn RepoHost) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = TestDevice {
            dir,
            metadata_url: host.metadata_url(),
            targets_url: host.targets_url(),
        };
        Updater::bootstrap(&d.metadata_dir(), root).unwrap();
        d
    }

    /// Trusted metadata directory.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.path().join("metadata")
    }

    /// Verified downloads directory.
    pub fn downloads_dir(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    /// A fresh updater over the device's state (as after a reboot).
    pub fn updater(&self) -> Updater {
        let config =
            UpdaterConfig::http(self.metadata_dir(), &self.metadata_url, &self.targets_url)
                .unwrap();
        Updater::new(config).unwrap()
    }

    /// Refresh, then download `target` into the downloads directory.
    pub fn fetch(&self, target: &str) -> ota_client::Result<PathBuf> {
        let mut up = self.updater();
        up.refresh()?;
        let info =
            up.get_target_info(target)?
                .ok_or_else(|| ota_client::Error::TargetNotFound {
                    path: target.to_string(),
                })?;
        up.download_target(&info, &self.downloads_dir())
    }

    /// Every file of the device's state (metadata and downloads) with its bytes.
    pub fn snapshot_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        collect(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

fn collect(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(base, &p, out);
        } else {
            out.insert(
                p.strip_prefix(base).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
}
