//! `--publish-token-file`: the upload API through which `ota-sign publish --to` publishes a
//! release signed offline. The server holds the online keys (`--online-keys`), so it can sign
//! the snapshot and timestamp of what it accepts; what it accepts is decided by
//! [`ota_repo::upload`] (signatures with the trusted root's thresholds, versions, expiry,
//! delegations, target files against their signed hashes).
//!
//! ```text
//! POST   /api/v1/uploads                          201 {"id", "max_upload_size"}: a staging area
//! PUT    /api/v1/uploads/ID/metadata/N.targets.json   (or N.<role>.json, delegated)     201
//! GET    /api/v1/uploads/ID/needed                200 {"payloads": [{target, file, length}]}
//! PUT    /api/v1/uploads/ID/targets/<file under targets/>                               201
//! POST   /api/v1/uploads/ID/commit                200 {versions}; 422 refused
//! GET    /api/v1/uploads/ID                       200 open, 410 refused (with the reason)
//! DELETE /api/v1/uploads/ID                       204
//! ```
//!
//! Every request needs `Authorization: Bearer TOKEN`; the SHA-256 of the token given is
//! compared in constant time with that of the token file's (401 otherwise, nothing staged).
//! Uploads are staged in `REPO/.uploads/ID/` (0700; the file routes serve only `metadata/`
//! and `targets/`), removed on commit, refusal, `DELETE`, after an hour without a request, and
//! at start-up. An upload larger in total than `--max-upload-size` is refused (413) as soon
//! as a request would take it over, and removed; a refused upload's reason stays available
//! for ten minutes (`GET /api/v1/uploads/ID`, 410), for a client whose connection was closed
//! before it could read the answer. Errors are `{"error": {"kind", "message"}}`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Response, StatusCode};
use ota_repo::error::UploadRefusal;
use ota_repo::online::OnlineSigner;
use ota_repo::upload::{self as library, MAX_UPLOADED_METADATA_LEN, UPLOADS_DIR};
use ota_repo::RepoError as LibraryError;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::response::{json, ResponseBody};

/// The path prefix of the API.
pub const PREFIX: &str = "/api/v1/uploads";
/// Default `--max-upload-size`: 4 GiB.
pub const DEFAULT_MAX_UPLOAD_SIZE: u64 = 4 << 30;
/// An upload without a request for this long is removed.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);
/// How long the reason of a refusal is kept for `GET /api/v1/uploads/ID`.
pub const REFUSAL_KEPT: Duration = Duration::from_secs(600);
/// Uploads open at once; more are answered 503.
pub const MAX_OPEN_UPLOADS: usize = 8;
/// A request body that delivers nothing for this long is abandoned.
pub const BODY_STALL: Duration = Duration::from_secs(60);
/// How often stale uploads are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Largest token file read.
const MAX_TOKEN_FILE_LEN: u64 = 4096;
/// Shortest token accepted (a guessable token would open the repository to anyone).
pub const MIN_TOKEN_LEN: usize = 16;

/// Why `--publish-token-file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read (missing, not a regular file, too large, not text).
    #[error("{0}")]
    Unreadable(#[from] ota_fs::user_file::UserFileError),
    /// The token is empty or too short.
    #[error("{} holds a token of {len} characters; at least {MIN_TOKEN_LEN} are needed", path.display())]
    TooShort {
        /// The token file.
        path: PathBuf,
        /// Its token's length.
        len: usize,
    },
    /// The file holds more than one line.
    #[error("{} holds more than one line; the token is the whole first line", path.display())]
    SeveralLines {
        /// The token file.
        path: PathBuf,
    },
}

/// What the upload API needs: the token (only its SHA-256 is kept), the size limit and the
/// online signer.
#[derive(Clone)]
pub struct UploadSettings {
    token_sha256: [u8; 32],
    /// Most bytes one upload may hold, all files together.
    pub max_upload_size: u64,
    /// Signs the snapshot and timestamp of what is accepted.
    pub signer: Arc<OnlineSigner>,
}

impl std::fmt::Debug for UploadSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSettings")
            .field("token_sha256", &"<redacted>")
            .field("max_upload_size", &self.max_upload_size)
            .field("signer", &self.signer)
            .finish()
    }
}

impl UploadSettings {
    /// Settings accepting `token`.
    pub fn new(token: &str, max_upload_size: u64, signer: Arc<OnlineSigner>) -> Self {
        UploadSettings {
            token_sha256: Sha256::digest(token.as_bytes()).into(),
            max_upload_size,
            signer,
        }
    }

    /// Settings accepting the token in `path` (its one line, surrounding white space
    /// removed; at least [`MIN_TOKEN_LEN`] characters).
    pub fn from_token_file(
        path: &Path,
        max_upload_size: u64,
        signer: Arc<OnlineSigner>,
    ) -> Result<Self, TokenFileError> {
        let text = ota_fs::user_file::read_to_string(path, MAX_TOKEN_FILE_LEN)?;
        let token = text.trim();
        if token.lines().count() > 1 {
            return Err(TokenFileError::SeveralLines {
                path: path.to_path_buf(),
            });
        }
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(TokenFileError::TooShort {
                path: path.to_path_buf(),
                len: token.chars().count(),
            });
        }
        if let Ok(Some(mode)) = ota_fs::mode::of(path) {
            if mode & 0o077 != 0 {
                tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "the publish token file is readable by other users; chmod 600 it");
            }
        }
        Ok(Self::new(token, max_upload_size, signer))
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`.
    fn authorises(&self, headers: &HeaderMap) -> bool {
        bearer_matches(&self.token_sha256, headers)
    }
}

/// Whether `headers` carry `Authorization: Bearer T` with SHA-256(T) = `expected`. The
/// digests are compared in time independent of where they differ (and of the token's
/// length).
fn bearer_matches(expected: &[u8; 32], headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
    else {
        return false;
    };
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    let diff = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// Parse a size: bytes, or with a unit `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (powers
/// of 1024), e.g. `4GiB`, `500M`, `1000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().map_err(|_| {
        format!("{s:?}: write a number of bytes, optionally with K, M, G or T (e.g. 4GiB)")
    })?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use K, M, G or T)")),
    };
    match n.checked_mul(1u64 << shift) {
        Some(0) | None => Err(format!("{s:?}: must be at least 1 byte and fit in 64 bits")),
        Some(v) => Ok(v),
    }
}

/// An upload being staged.
#[derive(Debug)]
struct Open {
    last: Instant,
    /// Bytes of every staged file by its path in the staging directory.
    files: HashMap<String, u64>,
    /// A request of this upload is in progress.
    busy: bool,
}

impl Open {
    fn bytes(&self) -> u64 {
        self.files.values().sum()
    }
}

/// A refused upload, kept for [`REFUSAL_KEPT`].
#[derive(Debug, Clone)]
struct Refusal {
    at: Instant,
    status: StatusCode,
    kind: &'static str,
    message: String,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<String, Open>,
    refused: HashMap<String, Refusal>,
}

/// The upload API of one server: settings and the uploads in progress.
#[derive(Debug)]
pub(crate) struct Uploads {
    repo: PathBuf,
    dir: PathBuf,
    settings: UploadSettings,
    state: Mutex<State>,
}

impl Uploads {
    /// Set up the API for the repository `repo` (canonical): create `REPO/.uploads` (0700)
    /// and remove whatever an earlier run left in it; stale uploads are then removed every
    /// minute. Call within the Tokio runtime.
    pub(crate) fn start(repo: &Path, settings: UploadSettings) -> std::io::Result<Arc<Self>> {
        let dir = repo.join(UPLOADS_DIR);
        ota_fs::mode::create_dir_all(&dir, ota_fs::mode::SECRET_DIR)?;
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match gone {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale upload")
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %dir.display(), "removed uploads left by an earlier run");
        }
        let uploads = Arc::new(Uploads {
            repo: repo.to_path_buf(),
            dir,
            settings,
            state: Mutex::new(State::default()),
        });
        let weak = Arc::downgrade(&uploads);
        tokio::spawn(sweep_forever(weak));
        Ok(uploads)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a few map operations; a panicking holder leaves them consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn staging(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Remove uploads idle for [`STALE_AFTER`], refusals older than [`REFUSAL_KEPT`], and
    /// directories in `.uploads` that no upload owns.
    async fn sweep(self: &Arc<Self>) {
        let now = Instant::now();
        let stale: Vec<String> = {
            let mut st = self.state();
            st.refused
                .retain(|_, r| now.duration_since(r.at) < REFUSAL_KEPT);
            let stale: Vec<String> = st
                .open
                .iter()
                .filter(|(_, o)| !o.busy && now.duration_since(o.last) >= STALE_AFTER)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &stale {
                st.open.remove(id);
            }
            stale
        };
        let up = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&up.dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Checked now, not from a list made before: an upload is registered before
                // its directory is made, so a directory of no open upload is an orphan.
                if up.state().open.contains_key(&name) {
                    continue;
                }
                let expired = stale.contains(&name);
                match std::fs::remove_dir_all(entry.path()) {
                    Ok(()) if expired => {
                        tracing::info!(upload = %name, "removed an upload idle for an hour")
                    }
                    Ok(()) => tracing::debug!(upload = %name, "removed an orphan upload directory"),
                    Err(e) => {
                        tracing::warn!(upload = %name, error = %e, "cannot remove a stale upload")
                    }
                }
            }
        })
        .await;
    }

    /// Refuse upload `id`: forget it, remove its staging directory, keep the reason.
    async fn refuse(
        &self,
        id: &str,
        peer: SocketAddr,
        status: StatusCode,
        kind: &'static str,
        message: String,
    ) -> Response<ResponseBody> {
        tracing::warn!(%peer, upload = %id, status = status.as_u16(), reason = %message, "publication refused");
        {
            let mut st = self.state();
            st.open.remove(id);
            st.refused.insert(
                id.to_string(),
                Refusal {
                    at: Instant::now(),
                    status,
                    kind,
                    message: message.clone(),
                },
            );
        }
        self.remove_staging(id).await;
        api_error(status, kind, &message)
    }

    async fn remove_staging(&self, id: &str) {
        let staging = self.staging(id);
        let removed = tokio::task::spawn_blocking(move || library::discard(&staging)).await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(upload = %id, error = %e, "cannot remove the staging directory");
        }
    }
}

async fn sweep_forever(uploads: Weak<Uploads>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(u) = uploads.upgrade() else { return };
        u.sweep().await;
    }
}

/// Whether `path` belongs to the upload API.
pub(crate) fn is_api_path(path: &str) -> bool {
    path == PREFIX || path.starts_with(&format!("{PREFIX}/"))
}

/// The JSON error answer.
fn api_error(status: StatusCode, kind: &str, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({"error": {"kind": kind, "message": message}});
    let mut resp = json(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

/// An error answer not yet rendered (small, unlike a response).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    fn response(&self) -> Response<ResponseBody> {
        api_error(self.status, self.kind, &self.message)
    }
}

/// A request of the API, routed.
enum Route {
    Create,
    Status(String),
    Abort(String),
    Needed(String),
    Commit(String),
    Put {
        id: String,
        /// `metadata` or `targets`.
        kind: &'static str,
        /// The file's path under that directory.
        name: String,
    },
}

/// Route `method` `path` (below [`PREFIX`]); `Err` is the answer to give.
fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let bad = |msg: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", msg);
    let mut segments = Vec::new();
    for raw in rest.split('/').skip(1) {
        let Ok(s) = percent_decode_str(raw).decode_utf8() else {
            return Err(bad("the path is not UTF-8"));
        };
        if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
            return Err(bad("empty, dot, slash, backslash or NUL path segment"));
        }
        segments.push(s.into_owned());
    }
    let not_allowed = || {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            "method not allowed here",
        )
    };
    let id = |s: &String| -> Result<String, ApiError> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(s.clone())
        } else {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such upload",
            ))
        }
    };
    match segments.as_slice() {
        [] if method == Method::POST => Ok(Route::Create),
        [u] if method == Method::GET => Ok(Route::Status(id(u)?)),
        [u] if method == Method::DELETE => Ok(Route::Abort(id(u)?)),
        [u, n] if n == "needed" && method == Method::GET => Ok(Route::Needed(id(u)?)),
        [u, c] if c == "commit" && method == Method::POST => Ok(Route::Commit(id(u)?)),
        [] | [_] => Err(not_allowed()),
        [_, n] if n == "needed" || n == "commit" => Err(not_allowed()),
        [u, k, name @ ..] if !name.is_empty() && (k == "metadata" || k == "targets") => {
            if method != Method::PUT {
                return Err(not_allowed());
            }
            let id = id(u)?;
            let name = name.join("/");
            let kind = if k == "metadata" {
                if library::parse_metadata_name(&name).is_none() {
                    return Err(bad(
                        "metadata files are N.targets.json or N.ROLE.json (ROLE percent-encoded)",
                    ));
                }
                "metadata"
            } else {
                if !library::is_safe_relative_path(&name) {
                    return Err(bad("not a safe path under targets/"));
                }
                "targets"
            };
            Ok(Route::Put { id, kind, name })
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such resource",
        )),
    }
}

/// Handle a request under [`PREFIX`].
pub(crate) async fn handle<B>(
    up: &Arc<Uploads>,
    peer: SocketAddr,
    req: Request<B>,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !up.settings.authorises(req.headers()) {
        let given = req.headers().contains_key(AUTHORIZATION);
        tracing::warn!(%peer, path = %req.uri().path(), token_given = given, "publication refused: missing or wrong token");
        return api_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            if given {
                "the publish token is wrong"
            } else {
                "no publish token (Authorization: Bearer TOKEN)"
            },
        );
    }
    let route = match route(req.method(), req.uri().path()) {
        Ok(r) => r,
        Err(e) => return e.response(),
    };
    match route {
        Route::Create => create(up, peer).await,
        Route::Status(id) => status(up, &id),
        Route::Abort(id) => abort(up, &id).await,
        Route::Needed(id) => needed(up, peer, &id).await,
        Route::Commit(id) => commit(up, peer, &id).await,
        Route::Put { id, kind, name } => put(up, peer, &id, kind, &name, req.into_body()).await,
    }
}

async fn create(up: &Arc<Uploads>, peer: SocketAddr) -> Response<ResponseBody> {
    let mut raw = [0u8; 16];
    if let Err(e) = rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut raw) {
        tracing::error!(error = %e, "no randomness for an upload id");
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no randomness available",
        );
    }
    let id = hex::encode(raw);
    {
        // Registered (busy) before its directory exists, so the sweep never takes the
        // directory for an orphan.
        let mut st = up.state();
        if st.open.len() >= MAX_OPEN_UPLOADS {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                &format!("{MAX_OPEN_UPLOADS} uploads are open already; finish or abandon one"),
            );
        }
        st.open.insert(
            id.clone(),
            Open {
                last: Instant::now(),
                files: HashMap::new(),
                busy: true,
            },
        );
    }
    let busy = Busy { up, id: id.clone() };
    let staging = up.staging(&id);
    let made = tokio::task::spawn_blocking(move || {
        std::fs::create_dir(&staging)?;
        ota_fs::mode::set(&staging, ota_fs::mode::SECRET_DIR)?;
        for sub in ["metadata", "targets"] {
            std::fs::create_dir(staging.join(sub))?;
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    if let Err(e) = made.map_err(std::io::Error::other).and_then(|r| r) {
        up.state().open.remove(&id);
        drop(busy);
        up.remove_staging(&id).await;
        tracing::error!(error = %e, dir = %up.dir.display(), "cannot create a staging directory");
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("cannot create a staging directory: {e}"),
        );
    }
    drop(busy);
    tracing::info!(%peer, upload = %id, "upload opened");
    let mut resp = json(
        StatusCode::CREATED,
        &serde_json::json!({"id": id, "max_upload_size": up.settings.max_upload_size}),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{PREFIX}/{id}")) {
        resp.headers_mut().insert(hyper::header::LOCATION, v);
    }
    resp
}

/// The answer for an id that is not open: its refusal, or 404.
fn gone(up: &Uploads, id: &str) -> ApiError {
    match up.state().refused.get(id) {
        Some(r) => ApiError::new(
            StatusCode::GONE,
            r.kind,
            format!("{} (HTTP {})", r.message, r.status.as_u16()),
        ),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such upload (finished, abandoned, or removed after an hour without requests)",
        ),
    }
}

fn status(up: &Uploads, id: &str) -> Response<ResponseBody> {
    let st = up.state();
    match st.open.get(id) {
        Some(o) => json(
            StatusCode::OK,
            &serde_json::json!({"id": id, "state": "open", "bytes": o.bytes(), "files": o.files.len()}),
        ),
        None => {
            drop(st);
            gone(up, id).response()
        }
    }
}

/// Marks an upload busy for the life of a request; clears the mark (and records activity)
/// when dropped, however the request ends.
struct Busy<'a> {
    up: &'a Uploads,
    id: String,
}

impl<'a> Busy<'a> {
    /// Take upload `id` for one request; `Err` is the answer when it is not open or busy.
    fn take(up: &'a Uploads, id: &str) -> Result<Self, ApiError> {
        let mut st = up.state();
        match st.open.get_mut(id) {
            Some(o) if o.busy => Err(ApiError::new(
                StatusCode::CONFLICT,
                "busy",
                "another request of this upload is in progress",
            )),
            Some(o) => {
                o.busy = true;
                o.last = Instant::now();
                Ok(Busy {
                    up,
                    id: id.to_string(),
                })
            }
            None => {
                drop(st);
                Err(gone(up, id))
            }
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(o) = self.up.state().open.get_mut(&self.id) {
            o.busy = false;
            o.last = Instant::now();
        }
    }
}

async fn abort(up: &Uploads, id: &str) -> Response<ResponseBody> {
    let busy = match Busy::take(up, id) {
        Ok(b) => b,
        Err(e) => return e.response(),
    };
    up.state().open.remove(id);
    drop(busy);
    up.remove_staging(id).await;
    tracing::info!(upload = %id, "upload abandoned");
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// The answer (and log line) for a library error of upload `id`: a refusal removes the
/// upload; anything else is the server's problem.
async fn library_error(
    up: &Uploads,
    peer: SocketAddr,
    id: &str,
    e: LibraryError,
) -> Response<ResponseBody> {
    match (e.upload_refusal(), &e) {
        (Some(UploadRefusal::Version), _) => {
            up.refuse(
                id,
                peer,
                StatusCode::UNPROCESSABLE_ENTITY,
                "version",
                e.to_string(),
            )
            .await
        }
        (Some(UploadRefusal::Content), _) => {
            up.refuse(
                id,
                peer,
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused",
                e.to_string(),
            )
            .await
        }
        (None, LibraryError::Locked { .. }) => {
            tracing::warn!(%peer, upload = %id, "publication failed: the repository stayed locked");
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                &format!("{e}; retry the publication later"),
            )
        }
        (None, _) => {
            tracing::error!(%peer, upload = %id, error = %e, "publication failed");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &e.to_string(),
            )
        }
    }
}

async fn needed(up: &Arc<Uploads>, peer: SocketAddr, id: &str) -> Response<ResponseBody> {
    let busy = match Busy::take(up, id) {
        Ok(b) => b,
        Err(e) => return e.response(),
    };
    let (repo, staging) = (up.repo.clone(), up.staging(id));
    let checked = tokio::task::spawn_blocking(move || {
        let live = ota_repo::Repository::load(&repo)?;
        library::check(&live, &staging, chrono::Utc::now())
    })
    .await;
    drop(busy);
    match checked {
        Ok(Ok(c)) => {
            let missing: Vec<&library::Payload> = c.missing().collect();
            tracing::info!(%peer, upload = %id, targets = c.targets.signed.version, delegated = c.delegated.len(), payloads_needed = missing.len(), "upload metadata verified");
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "targets_version": c.targets.signed.version,
                    "delegated": c.delegated.iter().map(|d| (d.role.clone(), d.version)).collect::<std::collections::BTreeMap<_, _>>(),
                    "unchanged": c.unchanged,
                    "payloads": missing,
                    "present": c.payloads.len() - missing.len(),
                }),
            )
        }
        Ok(Err(e)) => library_error(up, peer, id, e).await,
        Err(e) => {
            tracing::error!(upload = %id, error = %e, "verification task failed");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "verification task failed",
            )
        }
    }
}

async fn commit(up: &Arc<Uploads>, peer: SocketAddr, id: &str) -> Response<ResponseBody> {
    let busy = match Busy::take(up, id) {
        Ok(b) => b,
        Err(e) => return e.response(),
    };
    let bytes = up.state().open.get(id).map_or(0, Open::bytes);
    let (repo, staging, signer) = (
        up.repo.clone(),
        up.staging(id),
        Arc::clone(&up.settings.signer),
    );
    let started = Instant::now();
    let done = tokio::task::spawn_blocking(move || {
        library::commit(&repo, &staging, &signer, chrono::Utc::now())
    })
    .await;
    // The library removed the staging directory, whatever the outcome.
    up.state().open.remove(id);
    drop(busy);
    match done {
        Ok(Ok(c)) => {
            tracing::info!(
                %peer,
                upload = %id,
                targets = c.published.targets_version,
                snapshot = c.published.snapshot_version,
                timestamp = c.published.timestamp_version,
                delegated = ?c.delegated,
                payloads = c.payloads,
                payload_bytes = c.payload_bytes,
                uploaded_bytes = bytes,
                duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "publication accepted"
            );
            match serde_json::to_value(&c) {
                Ok(v) => json(StatusCode::OK, &v),
                Err(e) => api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &format!("published, but cannot encode the answer: {e}"),
                ),
            }
        }
        Ok(Err(e)) => library_error(up, peer, id, e).await,
        Err(e) => {
            tracing::error!(upload = %id, error = %e, "publication task failed");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "publication task failed",
            )
        }
    }
}

/// `PUT`: stream the body into the staging file `kind/name`, within the limits.
async fn put<B>(
    up: &Arc<Uploads>,
    peer: SocketAddr,
    id: &str,
    kind: &'static str,
    name: &str,
    body: B,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let busy = match Busy::take(up, id) {
        Ok(b) => b,
        Err(e) => return e.response(),
    };
    let key = format!("{kind}/{name}");
    let max = up.settings.max_upload_size;
    // What the upload holds without this file (a file sent again replaces the earlier one).
    let others = up
        .state()
        .open
        .get(id)
        .map_or(0, |o| o.bytes() - o.files.get(&key).copied().unwrap_or(0));
    let file_limit = if kind == "metadata" {
        MAX_UPLOADED_METADATA_LEN
    } else {
        u64::MAX
    };
    let over = |len: u64| -> Option<String> {
        if len > file_limit {
            Some(format!(
                "{key} is larger than the limit of {file_limit} bytes for a metadata file"
            ))
        } else if others.saturating_add(len) > max {
            Some(format!(
                "the upload is larger than the server's limit of {max} bytes (--max-upload-size)"
            ))
        } else {
            None
        }
    };
    let mut body = pin!(body);
    // A declared length over the limit is refused before a byte is read.
    if let Some(reason) = over(body.size_hint().lower()) {
        drop(busy);
        return up
            .refuse(id, peer, StatusCode::PAYLOAD_TOO_LARGE, "too_large", reason)
            .await;
    }
    let path = up.staging(id).join(&key);
    let file = async {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::File::create(&path).await
    }
    .await;
    let mut file = match file {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(upload = %id, file = %key, error = %e, "cannot create a staged file");
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("cannot stage {key}: {e}"),
            );
        }
    };
    let mut written: u64 = 0;
    let failure: Option<(StatusCode, String)> = loop {
        let frame = match tokio::time::timeout(BODY_STALL, body.as_mut().frame()).await {
            Err(_) => {
                break Some((
                    StatusCode::REQUEST_TIMEOUT,
                    format!("no data for {} s", BODY_STALL.as_secs()),
                ))
            }
            Ok(None) => break None,
            Ok(Some(Err(e))) => {
                break Some((
                    StatusCode::BAD_REQUEST,
                    format!("the request body broke off: {}", e.into()),
                ))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        written += data.len() as u64;
        if let Some(reason) = over(written) {
            drop(file);
            drop(busy);
            return up
                .refuse(id, peer, StatusCode::PAYLOAD_TOO_LARGE, "too_large", reason)
                .await;
        }
        if let Err(e) = file.write_all(&data).await {
            break Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write {key}: {e}"),
            ));
        }
    };
    let failure = match failure {
        Some(f) => Some(f),
        None => match file.flush().await.and(file.sync_all().await) {
            Ok(()) => None,
            Err(e) => Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write {key}: {e}"),
            )),
        },
    };
    drop(file);
    if let Some((status, reason)) = failure {
        // The file is incomplete; the upload stays open for another try.
        let _ = tokio::fs::remove_file(&path).await;
        if let Some(o) = up.state().open.get_mut(id) {
            o.files.remove(&key);
        }
        tracing::warn!(%peer, upload = %id, file = %key, status = status.as_u16(), reason = %reason, "upload of a file failed");
        let kind = if status.is_server_error() {
            "internal"
        } else {
            "bad_request"
        };
        return api_error(status, kind, &reason);
    }
    if let Some(o) = up.state().open.get_mut(id) {
        o.files.insert(key.clone(), written);
    }
    drop(busy);
    tracing::debug!(%peer, upload = %id, file = %key, bytes = written, "file staged");
    json(
        StatusCode::CREATED,
        &serde_json::json!({"file": key, "length": written}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2 k"), Ok(2048));
        for bad in ["", "0", "x", "1.5G", "4XB", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_refuse_traversal_and_bad_names() {
        let id = "0123456789abcdef0123456789abcdef";
        let put = |p: &str| route(&Method::PUT, &format!("{PREFIX}/{id}/{p}"));
        assert!(matches!(
            put("metadata/2.targets.json"),
            Ok(Route::Put {
                kind: "metadata",
                ..
            })
        ));
        assert!(
            matches!(put("metadata/2.a%252Fb.json"), Ok(Route::Put { name, .. }) if name == "2.a%2Fb.json")
        );
        assert!(
            matches!(put("targets/sub/ab.fw.img"), Ok(Route::Put { kind: "targets", name, .. }) if name == "sub/ab.fw.img")
        );
        for bad in [
            "metadata/timestamp.json",
            "metadata/1.root.json",
            "metadata/x/2.targets.json",
            "targets/../x",
            "targets/%2e%2e/x",
            "targets/a%2Fb",
            "targets/a//b",
            "targets/a%00",
        ] {
            let status = put(bad).err().map(|e| e.status);
            assert!(
                matches!(
                    status,
                    Some(StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND)
                ),
                "{bad}: {status:?}"
            );
        }
        assert!(route(&Method::GET, &format!("{PREFIX}/../x")).is_err());
        assert!(matches!(route(&Method::POST, PREFIX), Ok(Route::Create)));
        assert!(matches!(
            route(&Method::POST, &format!("{PREFIX}/{id}/commit")),
            Ok(Route::Commit(_))
        ));
        assert!(route(&Method::GET, &format!("{PREFIX}/{id}/commit")).is_err());
        assert!(route(&Method::GET, &format!("{PREFIX}/NOTANID")).is_err());
        assert!(is_api_path(PREFIX) && is_api_path(&format!("{PREFIX}/x")));
        assert!(!is_api_path("/api/v1/uploadsx") && !is_api_path("/metadata/x"));
    }

    #[test]
    fn only_the_right_bearer_token_authorises() {
        let expected: [u8; 32] = Sha256::digest(b"correct horse battery staple").into();
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            bearer_matches(&expected, &h)
        };
        assert!(with("Bearer correct horse battery staple"));
        assert!(with("bearer  correct horse battery staple "));
        assert!(!with("Bearer correct horse battery stapl"));
        assert!(!with("Bearer correct horse battery staple!"));
        assert!(!with("Basic correct horse battery staple"));
        assert!(!with("correct horse battery staple"));
        assert!(!bearer_matches(&expected, &HeaderMap::new()));
    }
}
