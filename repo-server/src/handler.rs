//! One request in, one response out: method check, path resolution, conditionals, ranges.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use http_body::Body;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};

use crate::cache_policy;
use crate::etag;
use crate::file_cache::{FileCache, Validators, SMALL_FILE};
use crate::identity::{DeviceIdentity, RoutePolicy};
use crate::metrics::{self, Metrics};
use crate::range::{self, RangeOutcome};
use crate::reports::{self, Reports};
use crate::resolve::{self, OpenError, OpenedFile, PathError, RequestPath};
use crate::response::{self, ResponseBody};

/// Handles a request and writes the one access-log line.
///
/// `policy` decides whether the path needs a verified device; the device, if the connection
/// has one, is the `Arc<DeviceIdentity>` request extension that only the TLS layer inserts.
pub(crate) async fn handle<B>(
    repo: &Arc<Repo>,
    policy: RoutePolicy,
    peer: SocketAddr,
    req: Request<B>,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let device = req.extensions().get::<Arc<DeviceIdentity>>().cloned();
    if let Some(d) = &device {
        tracing::debug!(
            %peer,
            path = %path,
            device_cn = d.common_name.as_deref(),
            device_sans = %d.subject_alt_names_text(),
            device_sha256 = %d.sha256_hex(),
            "request from verified device"
        );
    }
    let uploads = repo
        .uploads
        .as_ref()
        .filter(|_| crate::upload::is_api_path(&path));
    let resp = if let Some(uploads) = uploads {
        // Authenticated by its own token, so a publisher needs no device certificate.
        crate::upload::handle(uploads, peer, req).await
    } else if device.is_none() && policy.requires_device(&path) {
        // Only reachable without a certificate under --open-metadata (otherwise the handshake
        // already refused the client); checked here too so no other path can skip it.
        tracing::warn!(%peer, path = %path, reason = "no client certificate", "refused: this path needs a verified device certificate");
        response::error(StatusCode::FORBIDDEN)
    } else if path == reports::PATH {
        if method != Method::POST {
            let mut resp = response::method_not_allowed();
            resp.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        match read_body(req.into_body(), ota_formats::report::MAX_REPORT_LEN).await {
            Ok(body) => reports::handle(repo.reports.as_ref(), body, device.as_deref()).await,
            Err(status) => response::error(status),
        }
    } else if path == metrics::PATH && (method == Method::GET || method == Method::HEAD) {
        response::metrics(repo.metrics.render(&repo.root, chrono::Utc::now()))
    } else {
        respond(repo, &method, &path, req.headers()).await
    };
    // Planned body size; a client hanging up mid-transfer is logged by the connection task.
    let bytes = resp.body().size_hint().exact().unwrap_or(0);
    repo.metrics
        .record(metrics::route_of(&path), resp.status().as_u16(), bytes);
    let device_sha256 = device.as_ref().map(|d| d.sha256_hex());
    tracing::info!(
        %peer,
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        bytes,
        duration_us = micros(started.elapsed()),
        device_cn = device.as_ref().and_then(|d| d.common_name.as_deref()),
        device_sha256 = device_sha256.as_deref(),
        "request"
    );
    resp
}

/// A request body of at most `limit` bytes: 413 beyond it, 400 if the client broke off.
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, StatusCode>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    if body.size_hint().lower() > limit as u64 {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => {
            tracing::debug!(error = %e, "request body not received");
            Err(StatusCode::BAD_REQUEST)
        }
    }
}

/// Time until the response head was ready (the body streams afterwards).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn respond(
    repo: &Arc<Repo>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<ResponseBody> {
    if method != Method::GET && method != Method::HEAD {
        return response::method_not_allowed();
    }
    if path == crate::health::PATH {
        let root = repo.root.clone();
        let verdict =
            tokio::task::spawn_blocking(move || crate::health::check(&root, chrono::Utc::now()))
                .await;
        return match verdict {
            Ok(h) => response::health(h.ok, &h.reason),
            Err(_) => response::error(StatusCode::INTERNAL_SERVER_ERROR),
        };
    }
    let req_path = match resolve::parse(path) {
        Ok(p) => p,
        Err(PathError::NotFound) => return response::error(StatusCode::NOT_FOUND),
        Err(e @ PathError::Malformed(_)) => {
            tracing::warn!(path, reason = %e, "refused request path");
            return response::error(StatusCode::BAD_REQUEST);
        }
    };
    let key = req_path.key();
    let on_disk = req_path.under(&repo.root);
    // Only files directly in `metadata/` or `targets/` are cached: the lstat that revalidates a
    // hit does not check intermediate directories, which could since have become symlinks
    // leading out of the tree. Directly in the tree, the file is inside whatever the tree
    // resolves to, which is the boundary.
    let cacheable = req_path.segments.len() == 1;
    // One lstat on this thread: cheaper than a trip to the blocking pool (see file_cache).
    if let Some(hit) = cacheable
        .then(|| repo.cache.lookup(&key, &on_disk))
        .flatten()
    {
        let body = Source::Small(hit.body.clone());
        return serve_file(method, headers, &req_path, &hit.validators, body);
    }
    let task_repo = Arc::clone(repo);
    let lookup = req_path.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let mut f = resolve::open(&task_repo.root, &lookup)?;
        let validators = Validators::of(&f.meta);
        let source = match read_small(&mut f)? {
            Some(body) => {
                if cacheable {
                    task_repo.cache.insert(key, &on_disk, &f.meta, body.clone());
                }
                Source::Small(body)
            }
            None => Source::File(f.file),
        };
        tracing::debug!(file = %f.path.display(), "resolved");
        Ok::<_, OpenError>((validators, source))
    })
    .await;
    match opened {
        Ok(Ok((validators, source))) => serve_file(method, headers, &req_path, &validators, source),
        Ok(Err(OpenError::NotFound)) => response::error(StatusCode::NOT_FOUND),
        Ok(Err(OpenError::Io(e))) => {
            tracing::error!(path, error = %e, "cannot open file");
            response::error(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(e) => {
            tracing::error!(path, error = %e, "file lookup task failed");
            response::error(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The repository being served, its small-file cache, and the services beside it.
#[derive(Debug)]
pub(crate) struct Repo {
    /// Canonical repository directory.
    pub(crate) root: PathBuf,
    cache: FileCache,
    /// The upload API, if the server takes uploads.
    pub(crate) uploads: Option<Arc<crate::upload::Uploads>>,
    /// Status reports, if the server takes them.
    pub(crate) reports: Option<Reports>,
    /// Request counters for `/metrics`.
    pub(crate) metrics: Metrics,
}

impl Repo {
    pub(crate) fn new(root: PathBuf, reports: Option<Reports>) -> Self {
        let metrics = Metrics::with_reports(reports.as_ref().map(|r| Arc::clone(r.sink.stats())));
        Repo {
            root,
            cache: FileCache::default(),
            uploads: None,
            reports,
            metrics,
        }
    }

    /// This repository with the upload API `uploads`.
    pub(crate) fn with_uploads(mut self, uploads: Option<Arc<crate::upload::Uploads>>) -> Self {
        self.uploads = uploads;
        self
    }
}

/// Where a response body comes from.
enum Source {
    /// A small file read whole (cached or just read).
    Small(Bytes),
    /// A larger file, streamed from the open file.
    File(std::fs::File),
}

/// The content of a small file (all metadata, key slips), read in the blocking task that
/// opened it, so headers and body leave in one write and the cache can keep it. Published
/// files are replaced by rename, never rewritten in place, so the open file keeps the length
/// its `fstat` gave.
fn read_small(f: &mut OpenedFile) -> Result<Option<Bytes>, OpenError> {
    use std::io::Read;
    let len = f.meta.len();
    if len > SMALL_FILE {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    (&mut f.file).take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(OpenError::Io(std::io::Error::other(format!(
            "{} changed length while read",
            f.path.display()
        ))));
    }
    Ok(Some(buf.into()))
}

fn serve_file(
    method: &Method,
    headers: &HeaderMap,
    req_path: &RequestPath,
    file: &Validators,
    source: Source,
) -> Response<ResponseBody> {
    let len = file.len;
    let tag = file.etag.as_str();

    let mut resp = Response::new(ResponseBody::empty());
    let h = resp.headers_mut();
    if let Some(v) = &file.etag_value {
        h.insert(ETAG, v.clone());
    }
    if let Some(v) = &file.last_modified {
        h.insert(LAST_MODIFIED, v.clone());
    }
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(cache_policy::for_path(req_path)),
    );
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    if not_modified(headers, tag, file.mtime_secs) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return resp;
    }

    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(response::content_type(req_path.file_name())),
    );

    // Range handling is only defined for GET (RFC 9110 §14.2); HEAD describes the full body.
    let outcome = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if method == Method::GET && if_range_allows(headers, tag) => {
            range::evaluate(r, len)
        }
        _ => RangeOutcome::Full,
    };
    let start = match outcome {
        RangeOutcome::Full => 0,
        RangeOutcome::Partial { start, end } => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            insert(
                resp.headers_mut(),
                CONTENT_RANGE,
                &format!("bytes {start}-{end}/{len}"),
            );
            start
        }
        RangeOutcome::Unsatisfiable => {
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let h = resp.headers_mut();
            insert(h, CONTENT_RANGE, &format!("bytes */{len}"));
            h.insert(
                CACHE_CONTROL,
                HeaderValue::from_static(cache_policy::NO_STORE),
            );
            h.remove(CONTENT_TYPE);
            insert(h, CONTENT_LENGTH, "0");
            return resp;
        }
    };
    let body_len = outcome.body_len(len);
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    if method == Method::GET && body_len > 0 {
        match source {
            Source::Small(all) => {
                // `start + body_len <= len` (range::evaluate), and `all` holds exactly `len` bytes.
                let (from, to) = (start as usize, (start + body_len) as usize);
                *resp.body_mut() = ResponseBody::bytes(all.slice(from..to));
            }
            Source::File(file) => *resp.body_mut() = ResponseBody::file(file, start, body_len),
        }
    }
    resp
}

/// RFC 9110 §13.2.2 order: `If-None-Match` wins; `If-Modified-Since` only without it.
fn not_modified(headers: &HeaderMap, tag: &str, mtime_secs: i64) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH) {
        return inm.to_str().is_ok_and(|v| etag::none_match_hits(v, tag));
    }
    let Some(since) = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
    else {
        return false;
    };
    i64::try_from(since.as_secs()).is_ok_and(|since| mtime_secs <= since)
}

/// No `If-Range`, or one that names the current representation.
fn if_range_allows(headers: &HeaderMap, tag: &str) -> bool {
    match headers.get(IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| etag::if_range_matches(v, tag)),
    }
}

/// Inserts a header whose value we built ourselves; values that are not valid header text are
/// skipped rather than panicking (they cannot occur for the ASCII we format).
fn insert(h: &mut HeaderMap, name: hyper::header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}
