//! `ota-sign publish --to URL`: upload a release signed offline to an `ota-server` that holds
//! the online keys (`--online-keys`, `--publish-token-file`), which verifies it and publishes
//! it with a new snapshot and timestamp. The protocol is described in repo-server/README.md
//! ("Publishing by upload"); the server decides, so nothing is verified here beyond finding
//! the files.
//!
//! Steps: `POST /api/v1/uploads` (a staging area), `PUT` the newest `N.targets.json` of the
//! local repository and the delegated metadata it reaches, `GET .../needed` (the server checks
//! the metadata and names the target files it lacks), `PUT` those, `POST .../commit`. A
//! refusal is reported with the server's own words.
use crate::{Error, Result};
use ota_formats::metadata::{RawMetadata, Targets};
use ota_repo::repository::{METADATA_DIR, TARGETS_DIR};
use ota_repo::upload::{parse_metadata_name, MetadataName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable holding the token when `--token-file` is not given.
pub const TOKEN_ENV: &str = "OTA_PUBLISH_TOKEN";

/// Largest token file read.
const MAX_TOKEN_FILE_LEN: u64 = 4096;
/// Largest CA bundle read.
const MAX_CA_FILE_LEN: u64 = 1 << 20;
/// Largest JSON answer read from the server.
const MAX_ANSWER_LEN: u64 = 1 << 20;
/// Largest local metadata file uploaded.
const MAX_METADATA_LEN: u64 = ota_repo::upload::MAX_UPLOADED_METADATA_LEN;

/// The metadata files of the release to upload, found in the local repository.
#[derive(Debug, Clone)]
pub struct Release {
    /// `N.targets.json`, the newest in the local `metadata/`.
    pub targets: PathBuf,
    /// Its version.
    pub targets_version: u64,
    /// Delegated metadata reached from it (the newest version of each role present).
    pub delegated: Vec<PathBuf>,
}

/// Versioned metadata files in `md` by role: role → (version, file name), newest kept.
fn newest_files(md: &Path) -> Result<BTreeMap<String, (u64, String)>> {
    let entries = std::fs::read_dir(md).map_err(|e| {
        Error::repo(
            format!("cannot list {}: {e}", md.display()),
            "pass --repo the repository directory the release was signed in",
        )
    })?;
    let mut newest: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(MetadataName { version, role }) = parse_metadata_name(&name) else {
            continue;
        };
        if newest.get(&role).is_none_or(|(v, _)| version > *v) {
            newest.insert(role, (version, name));
        }
    }
    Ok(newest)
}

fn parse_targets(path: &Path) -> Result<Targets> {
    let bytes = ota_fs::user_file::read(path, MAX_METADATA_LEN).map_err(|e| {
        Error::user_file(
            "metadata file",
            e,
            Error::repo,
            "restore the repository directory from a backup",
        )
    })?;
    RawMetadata::from_bytes(&bytes)
        .and_then(|raw| raw.parse::<Targets>())
        .map_err(|e| {
            Error::repo(
                format!("{}: {e}", path.display()),
                "sign the release again with `ota-sign add` or `ota-sign publish --keys`",
            )
        })
}

/// Find the release in the local repository `repo`: its newest `N.targets.json` and the
/// newest file of each delegated role it (or a delegated role found) delegates to.
pub fn find_release(repo: &Path) -> Result<Release> {
    let md = repo.join(METADATA_DIR);
    if !md.is_dir() {
        return Err(Error::repo(
            format!("{} is not a repository (it has no {METADATA_DIR}/)", repo.display()),
            "pass --repo the repository directory the release was signed in (ota-sign init --online-roles, ota-sign add)",
        ));
    }
    let newest = newest_files(&md)?;
    let Some((targets_version, targets_name)) = newest.get("targets").cloned() else {
        return Err(Error::repo(
            format!("{} holds no N.targets.json", md.display()),
            "sign a release first: ota-sign add --repo DIR --keys KEYS ...",
        ));
    };
    let targets = md.join(&targets_name);
    let mut delegated = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![parse_targets(&targets)?];
    while let Some(t) = queue.pop() {
        let Some(d) = &t.delegations else { continue };
        for (role, (_, file)) in &newest {
            if role == "targets" || seen.contains(role) || d.role(role).is_none() {
                continue;
            }
            seen.insert(role.clone());
            let path = md.join(file);
            queue.push(parse_targets(&path)?);
            delegated.push(path);
        }
    }
    Ok(Release {
        targets,
        targets_version,
        delegated,
    })
}

/// The publish token: the first line of `token_file`, or else `$OTA_PUBLISH_TOKEN`.
pub fn read_token(token_file: Option<&Path>) -> Result<String> {
    let token = match token_file {
        Some(path) => ota_fs::user_file::read_to_string(path, MAX_TOKEN_FILE_LEN)
            .map_err(|e| {
                Error::user_file(
                    "token file",
                    e,
                    Error::input,
                    "pass --token-file the file holding the server's publish token",
                )
            })?
            .trim()
            .to_string(),
        None => std::env::var(TOKEN_ENV)
            .map(|t| t.trim().to_string())
            .unwrap_or_default(),
    };
    if token.is_empty() {
        return Err(Error::input(
            match token_file {
                Some(p) => format!("token file {} is empty", p.display()),
                None => format!("no publish token: neither --token-file nor {TOKEN_ENV} is given"),
            },
            format!("pass --token-file FILE (or set {TOKEN_ENV}) with the token of the server's --publish-token-file"),
        ));
    }
    if token.contains(['\r', '\n']) || !token.is_ascii() {
        return Err(Error::input(
            "the publish token must be one line of ASCII text",
            "write the token alone on the first line of the file",
        ));
    }
    Ok(token)
}

/// A rustls configuration trusting the CA certificates in `pem`.
fn tls_config(pem: &Path) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |msg: String| {
        Error::input(
            msg,
            "pass --cacert the PEM file of the CA that issued the server's certificate (ota-ca's ca.pem)",
        )
    };
    let bytes = ota_fs::user_file::read(pem, MAX_CA_FILE_LEN).map_err(|e| {
        Error::user_file(
            "CA file",
            e,
            Error::input,
            "pass --cacert the PEM file of the server's CA",
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| bad(format!("{}: damaged PEM: {e}", pem.display())))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("{}: unusable CA certificate: {e}", pem.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!("{} holds no PEM certificate", pem.display())));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A target file the server asks for.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NeededFile {
    /// The target path.
    pub target: String,
    /// The file under `targets/`.
    pub file: String,
    /// Its signed length.
    pub length: u64,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Needed {
    payloads: Vec<NeededFile>,
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    kind: String,
    message: String,
}

/// The versions the server published.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Published {
    /// Targets version.
    pub targets_version: u64,
    /// Snapshot version.
    pub snapshot_version: u64,
    /// Timestamp version.
    pub timestamp_version: u64,
    /// New delegated metadata: role → version.
    #[serde(default)]
    pub delegated: BTreeMap<String, u64>,
}

/// A connection to one server's upload API.
pub struct Uploader {
    agent: ureq::Agent,
    base: url::Url,
    token: String,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// What to do about a failed request, by the server's answer.
fn server_error(server: &str, status: u16, body: &str) -> Error {
    let parsed: Option<ErrorBody> = serde_json::from_str::<ErrorAnswer>(body)
        .ok()
        .map(|a| a.error);
    let (kind, message) = match parsed {
        Some(e) => (e.kind, e.message),
        None => (
            String::new(),
            format!(
                "HTTP {status}: {}",
                body.lines().next().unwrap_or("").trim()
            ),
        ),
    };
    let refused =
        |hint: &str| Error::refused(format!("{server} refused the publication: {message}"), hint);
    match (status, kind.as_str()) {
        (401, _) => refused(&format!(
            "check the token (--token-file or {TOKEN_ENV}): it must be the one in the server's --publish-token-file"
        )),
        (413, _) | (_, "too_large") => refused(
            "the release is larger than the server's --max-upload-size: raise that limit on the server",
        ),
        (_, "version") => Error::policy(
            format!("{server} refused the publication: {message}"),
            "sign a new targets version above the published one on the release machine (ota-sign add, or ota-sign publish --keys KEYS --force), then publish again",
        ),
        (422 | 410, _) => refused(
            "nothing was published; fix the release on the release machine (signed with this repository's targets keys, target files as signed) and publish again",
        ),
        _ => Error::network(
            format!("{server} answered HTTP {status}: {message}"),
            "check that --to names an ota-server started with --publish-token-file and --online-keys, and its log",
        ),
    }
}

impl Uploader {
    /// A client for the server at `url` (`https://` or `http://`), trusting the CA
    /// certificates in `cacert` (else the public roots).
    pub fn new(url: &str, token: String, cacert: Option<&Path>) -> Result<Self> {
        let mut base = url::Url::parse(url).map_err(|e| {
            Error::input(
                format!("--to {url:?} is not a URL: {e}"),
                "write the server's URL, e.g. --to https://updates.example.com:8443",
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::input(
                format!("--to {url:?} is not an http:// or https:// URL"),
                "write the server's URL, e.g. --to https://updates.example.com:8443",
            ));
        }
        if base.scheme() == "http" {
            crate::warn(
                "the publish token crosses the network in clear text over http://; use https://",
            );
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            // A stalled transfer fails; the commit answer may take minutes (hashing).
            .timeout_write(Duration::from_secs(120))
            .timeout_read(Duration::from_secs(30 * 60))
            .redirects(0);
        if let Some(pem) = cacert {
            builder = builder.tls_config(tls_config(pem)?);
        }
        Ok(Uploader {
            agent: builder.build(),
            base,
            token,
        })
    }

    fn server(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `BASE/api/v1/uploads[/segment...]`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> String {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(["api", "v1", "uploads"]);
            for s in segments {
                p.push(s);
            }
        }
        u.to_string()
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        self.agent
            .request(method, url)
            .set("Authorization", &format!("Bearer {}", self.token))
    }

    /// Turn a ureq result into the answer's body, or the error to report.
    fn answer(&self, result: std::result::Result<ureq::Response, ureq::Error>) -> Result<String> {
        let read = |resp: ureq::Response| {
            let mut body = String::new();
            let _ = resp
                .into_reader()
                .take(MAX_ANSWER_LEN)
                .read_to_string(&mut body);
            body
        };
        match result {
            Ok(resp) => Ok(read(resp)),
            Err(ureq::Error::Status(status, resp)) => {
                Err(server_error(&self.server(), status, &read(resp)))
            }
            Err(ureq::Error::Transport(t)) => Err(Error::network(
                format!("cannot reach {}: {t}", self.server()),
                "check the URL, that the server runs, and the CA (--cacert) for https://",
            )),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, body: &str) -> Result<T> {
        serde_json::from_str(body).map_err(|e| {
            Error::network(
                format!(
                    "{} gave an answer that is not what the upload API sends: {e}",
                    self.server()
                ),
                "check that --to names an ota-server of this version",
            )
        })
    }

    /// Open a new upload; returns its id.
    pub fn create(&self) -> Result<String> {
        let body = self.answer(self.request("POST", &self.url(&[])).call())?;
        Ok(self.json::<Created>(&body)?.id)
    }

    /// Upload `path` as `kind` (`metadata` or `targets`) file `name` (segments split at `/`),
    /// counting the bytes sent on `bar`.
    pub fn put_file(
        &self,
        id: &str,
        kind: &str,
        name: &str,
        path: &Path,
        bar: &indicatif::ProgressBar,
    ) -> Result<()> {
        let file = ota_fs::user_file::open(path).map_err(|e| {
            Error::user_file(
                "file to upload",
                e,
                Error::repo,
                "the local repository lacks a file of the release; sign it again with ota-sign add",
            )
        })?;
        let len = file
            .metadata()
            .map_err(|e| {
                Error::repo(
                    format!("cannot read {}: {e}", path.display()),
                    "check the file",
                )
            })?
            .len();
        let mut segments = vec![id, kind];
        segments.extend(name.split('/'));
        let url = self.url(&segments);
        let result = self
            .request("PUT", &url)
            .set("Content-Length", &len.to_string())
            .set("Content-Type", "application/octet-stream")
            .send(bar.wrap_read(file));
        match self.answer(result) {
            Ok(_) => Ok(()),
            // The server may have refused the upload and closed the connection before the
            // body was sent (a size limit): it keeps the reason for a while.
            Err(e @ Error::Network { .. }) => Err(self.refusal(id).unwrap_or(e)),
            Err(e) => Err(e),
        }
    }

    /// Why the server refused upload `id`, if it did.
    fn refusal(&self, id: &str) -> Option<Error> {
        match self.answer(self.request("GET", &self.url(&[id])).call()) {
            Err(e @ (Error::Refused { .. } | Error::Policy { .. })) => Some(e),
            _ => None,
        }
    }

    /// Have the server check the uploaded metadata and name the target files it lacks.
    pub fn needed(&self, id: &str) -> Result<Vec<NeededFile>> {
        let body = self.answer(self.request("GET", &self.url(&[id, "needed"])).call())?;
        Ok(self.json::<Needed>(&body)?.payloads)
    }

    /// Publish upload `id`.
    pub fn commit(&self, id: &str) -> Result<Published> {
        let body = self.answer(self.request("POST", &self.url(&[id, "commit"])).call())?;
        self.json(&body)
    }

    /// Abandon upload `id` (best effort: the server removes stale uploads anyway).
    pub fn abort(&self, id: &str) {
        if let Err(e) = self.request("DELETE", &self.url(&[id])).call() {
            tracing::debug!(error = %e, "abandoning the upload failed");
        }
    }
}

/// What `publish --to` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The server.
    pub server: String,
    /// Versions the server published.
    #[serde(flatten)]
    pub published: Published,
    /// Metadata files uploaded.
    pub metadata_files: Vec<String>,
    /// Target files uploaded (those the server lacked).
    pub payloads_uploaded: Vec<NeededFile>,
    /// Their total size.
    pub bytes_uploaded: u64,
}

/// Upload the release in the local repository `repo` through `up`.
pub fn publish(up: &Uploader, repo: &Path) -> Result<Report> {
    let release = find_release(repo)?;
    tracing::info!(targets = %release.targets.display(), delegated = release.delegated.len(), "release found");
    let id = up.create()?;
    match upload(up, repo, &release, &id) {
        Ok(report) => Ok(report),
        Err(e) => {
            // A refused upload is gone already; anything else is abandoned here.
            if !matches!(e, Error::Refused { .. } | Error::Policy { .. }) {
                up.abort(&id);
            }
            Err(e)
        }
    }
}

fn upload(up: &Uploader, repo: &Path, release: &Release, id: &str) -> Result<Report> {
    let hidden = indicatif::ProgressBar::hidden();
    let mut metadata_files = Vec::new();
    for path in std::iter::once(&release.targets).chain(&release.delegated) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        up.put_file(id, METADATA_DIR, &name, path, &hidden)?;
        metadata_files.push(name);
    }
    let needed = up.needed(id)?;
    let total: u64 = needed.iter().map(|n| n.length).sum();
    let bar = ota_cli::progress::bytes_bar(total, "uploading");
    let local = repo.join(TARGETS_DIR);
    for n in &needed {
        bar.set_message(n.target.clone());
        up.put_file(id, TARGETS_DIR, &n.file, &local.join(&n.file), &bar)?;
    }
    bar.finish_and_clear();
    let published = up.commit(id)?;
    Ok(Report {
        server: up.server(),
        published,
        metadata_files,
        bytes_uploaded: total,
        payloads_uploaded: needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_repo::upload::metadata_file_name;

    #[test]
    fn server_errors_keep_the_servers_words_and_pick_the_exit_code() {
        let body = r#"{"error":{"kind":"refused","message":"uploaded 2.targets.json is not signed by enough targets keys"}}"#;
        let e = server_error("https://s", 422, body);
        assert_eq!(e.exit_code(), 7);
        assert_eq!(
            e.to_string(),
            "https://s refused the publication: uploaded 2.targets.json is not signed by enough targets keys"
        );
        let body = r#"{"error":{"kind":"version","message":"not newer"}}"#;
        assert_eq!(server_error("https://s", 422, body).exit_code(), 5);
        assert_eq!(server_error("https://s", 401, "{}").exit_code(), 7);
        let e = server_error("https://s", 502, "Bad Gateway\n");
        assert_eq!(e.exit_code(), 6);
        assert!(e.to_string().contains("HTTP 502: Bad Gateway"), "{e}");
    }

    #[test]
    fn the_newest_targets_and_the_delegated_roles_it_reaches_are_found() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join(METADATA_DIR);
        std::fs::create_dir(&md).unwrap();
        let expires = chrono::Utc::now();
        let write = |name: &str, t: &Targets| {
            let signed = ota_formats::metadata::Signed {
                signed: t.clone(),
                signatures: Vec::new(),
            };
            std::fs::write(md.join(name), signed.to_bytes().unwrap()).unwrap();
        };
        let mut top = Targets::new(3, expires);
        top.delegations = Some(ota_formats::metadata::Delegations {
            keys: BTreeMap::new(),
            roles: Some(vec![ota_formats::metadata::DelegatedRole {
                name: "a/b".into(),
                keyids: Vec::new(),
                threshold: 1,
                terminating: false,
                paths: None,
                path_hash_prefixes: None,
                extra: Default::default(),
            }]),
            succinct_roles: None,
            extra: Default::default(),
        });
        write("2.targets.json", &Targets::new(2, expires));
        write("3.targets.json", &top);
        write("1.a%2Fb.json", &Targets::new(1, expires));
        write("2.a%2Fb.json", &Targets::new(2, expires));
        write("5.other.json", &Targets::new(5, expires));
        let r = find_release(d.path()).unwrap();
        assert_eq!(r.targets_version, 3);
        assert_eq!(r.delegated, [md.join("2.a%2Fb.json")]);
        assert_eq!(metadata_file_name("a/b", 2), "2.a%2Fb.json");
    }
}
