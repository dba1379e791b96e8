//! Shared by the refresh benchmark and the refresh regression tests: a large delegated
//! repository built in code, and a transport wrapper that records every request.
#![allow(dead_code)]

use ota_client::transport::{FetchStream, HttpTransport, Transport, TransportError};
use ota_client::{Limits, Updater, UpdaterConfig};
use ota_tests::fixture::RepoFixture;
use ota_tests::RepoHost;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Name of delegated role `i`.
pub fn role_name(i: usize) -> String {
    format!("role-{i:03}")
}

/// Path of target `j` of role `i`.
pub fn target_path(i: usize, j: usize) -> String {
    format!("{}/file-{j:07}.bin", role_name(i))
}

/// A repository whose top-level targets delegates `role-NNN/*` to each of `roles` roles
/// (non-terminating, one key each) and whose `targets` entries are spread evenly over them.
/// Only the metadata is written (the entries describe payloads that are never downloaded), so
/// a million-target repository takes seconds to build, not a million files.
pub fn delegated_repo(targets: usize, roles: usize) -> RepoFixture {
    let mut fx = RepoFixture::new();
    for i in 0..roles {
        let name = role_name(i);
        fx.delegate(&name, &[&format!("{name}/*")], false);
    }
    for n in 0..targets {
        let (i, j) = (n % roles, n / roles);
        let data = format!("payload {i} {j}");
        let entry = ota_formats::metadata::TargetFile::from_bytes(data.as_bytes());
        let role = fx
            .delegated
            .get_mut(&role_name(i))
            .expect("role delegated above");
        role.targets.targets.insert(target_path(i, j), entry);
    }
    fx.publish();
    fx
}

/// One target per role: what a lookup across every delegated role asks for.
pub fn one_target_per_role(roles: usize) -> Vec<String> {
    (0..roles).map(|i| target_path(i, 0)).collect()
}

/// A transport that records the relative path of every fetch before passing it on.
pub struct Counting {
    inner: Box<dyn Transport>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Transport for Counting {
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError> {
        self.log.lock().unwrap().push(relative.to_string());
        self.inner.fetch(relative, max_len)
    }

    fn location(&self, relative: &str) -> String {
        self.inner.location(relative)
    }
}

/// The request log shared between a [`Counting`] transport and the test reading it.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    /// Take (and clear) the recorded requests.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Provision a device metadata directory with the repository's root.
pub fn bootstrap(metadata_dir: &Path, fx: &RepoFixture) {
    Updater::bootstrap(metadata_dir, &fx.root_bytes()).unwrap();
}

/// An updater over `metadata_dir` talking HTTP to `host`, its metadata requests logged in `log`.
pub fn counting_updater(metadata_dir: &Path, host: &dyn RepoHost, log: &RequestLog) -> Updater {
    counting_updater_with(metadata_dir, host, log, Limits::default())
}

/// [`counting_updater`] with other limits.
pub fn counting_updater_with(
    metadata_dir: &Path,
    host: &dyn RepoHost,
    log: &RequestLog,
    limits: Limits,
) -> Updater {
    let metadata = Counting {
        inner: Box::new(HttpTransport::new(&host.metadata_url()).unwrap()),
        log: log.0.clone(),
    };
    let targets = HttpTransport::new(&host.targets_url()).unwrap();
    let mut config = UpdaterConfig::new(metadata_dir, Box::new(metadata), Box::new(targets));
    config.limits = limits;
    Updater::new(config).unwrap()
}
