//! Fetching over HTTP and HTTPS (rustls) with ureq.
use super::{
    describe_io, root_io, secs, tls, FetchStream, Limited, Paced, RangedFetch, TlsSettings,
    TransferBounds, Transport, TransportError, Validator,
};
use std::io;
use std::time::{Duration, Instant};

/// A repository served over `http://` or `https://`.
///
/// Paths are appended to the base URL as given: the base is never decoded or normalised,
/// and a missing trailing `/` is added. Every fetch is held to the transport's
/// [`TransferBounds`]. HTTPS servers are verified as its [`TlsSettings`] say (by default
/// against the built-in public roots).
///
/// [`Transport::fetch_range`] sends `Range: bytes=N-` with `If-Range` (the strong ETag, else
/// the `Last-Modified` date) and accepts a `206` only with a `Content-Range` starting at
/// exactly `N` (and an ETag, if any, equal to the one sent); a `200`, a `416` or any other
/// range is answered with the whole file from byte 0.
pub struct HttpTransport {
    base: String,
    agent: ureq::Agent,
    bounds: TransferBounds,
    /// The proxy every request goes through, named in connection failures: with a proxy,
    /// "connection refused" is usually about the proxy, not the server.
    proxy: Option<String>,
}

impl HttpTransport {
    /// A transport for files under `base_url`, with the default bounds
    /// ([`TransferBounds::TARGETS`]).
    pub fn new(base_url: &str) -> Result<Self, TransportError> {
        Self::with_bounds(base_url, TransferBounds::default())
    }

    /// A transport for files under `base_url`, every fetch held to `bounds`.
    pub fn with_bounds(base_url: &str, bounds: TransferBounds) -> Result<Self, TransportError> {
        Self::with_tls(base_url, bounds, &TlsSettings::default())
    }

    /// A transport for files under `base_url`, every fetch held to `bounds`, connecting as
    /// `tls` says (trusted CA or pinned key, client certificate, proxy, TLS version). Every
    /// file `tls` names is read and checked now: [`TransportError::Settings`] names the
    /// unusable one.
    pub fn with_tls(
        base_url: &str,
        bounds: TransferBounds,
        tls: &TlsSettings,
    ) -> Result<Self, TransportError> {
        let parsed = url::Url::parse(base_url).map_err(|e| TransportError::Other {
            location: base_url.to_string(),
            reason: format!("invalid URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TransportError::Other {
                location: base_url.to_string(),
                reason: "only http:// and https:// URLs are supported".into(),
            });
        }
        let mut base = base_url.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            // Every socket read (head and body) waits at most `stall`, so a silent server is
            // noticed quickly and `Paced` checks the rate floor at least that often. A
            // deadline (the request timeout) replaces it where set.
            .timeout_read(bounds.stall.max(Duration::from_millis(1)))
            // Redirects are followed in `get`, to name the URL that failed.
            .redirects(0);
        // Without settings, ureq's own configuration (public roots) stays in place.
        if let Some(config) = tls.client_config()? {
            builder = builder.tls_config(config);
        }
        if let Some(proxy) = tls.proxy()? {
            builder = builder.proxy(proxy);
        }
        let agent = builder.build();
        Ok(HttpTransport {
            base,
            agent,
            bounds,
            proxy: tls.proxy.clone(),
        })
    }

    /// The bounds every fetch is held to.
    pub fn bounds(&self) -> TransferBounds {
        self.bounds
    }
}

/// Most redirects followed for one file.
const MAX_REDIRECTS: u32 = 5;

/// ` (redirected from URL)` when the failing URL is not the one requested.
fn redirect_note(failed: &str, requested: &str) -> String {
    if failed == requested {
        String::new()
    } else {
        format!(" (redirected from {requested})")
    }
}

/// One phrase for a ureq transport failure. ureq's own `Display` repeats the URL and its
/// error kind at each level of wrapping, so the parts are picked out instead.
fn describe_transport(t: &ureq::Transport) -> String {
    use ureq::ErrorKind as K;
    let io = std::error::Error::source(t).and_then(|s| s.downcast_ref::<io::Error>());
    let kind = match t.kind() {
        K::Dns => "DNS lookup failed",
        K::ConnectionFailed if t.message().is_some_and(|m| m.contains("tls")) => {
            "TLS handshake failed"
        }
        K::TooManyRedirects => "too many redirects",
        K::BadStatus => "invalid HTTP status line",
        K::BadHeader => "invalid HTTP header",
        K::InvalidUrl => "invalid URL",
        K::UnknownScheme => "unsupported URL scheme",
        // Connection and I/O failures: the OS error says it all ("connection refused").
        K::ConnectionFailed | K::Io => "",
        _ => "request failed",
    };
    let detail = match io {
        Some(e) => describe_io(e),
        None => t
            .message()
            .map(str::to_string)
            .or_else(|| std::error::Error::source(t).map(|s| s.to_string()))
            .unwrap_or_default(),
    };
    match (kind.is_empty(), detail.is_empty()) {
        (true, true) => t.kind().to_string(),
        (true, false) => detail,
        (false, true) => kind.to_string(),
        (false, false) => format!("{kind}: {detail}"),
    }
}

impl HttpTransport {
    /// GET `location`, following redirects here rather than in ureq: ureq 2 reports a failed
    /// redirect under the first URL, and the operator needs the one that failed.
    ///
    /// With `range` (`Range` and optional `If-Range` values, sent to every hop), a `416`
    /// answer is returned as a response, not an error: the caller starts over.
    fn get(
        &self,
        location: &str,
        start: Instant,
        timeout: Option<Duration>,
        range: Option<(&str, Option<&str>)>,
    ) -> Result<ureq::Response, TransportError> {
        let mut url = location.to_string();
        let mut hops = 0;
        loop {
            let note = redirect_note(&url, location);
            let mut request = self.agent.get(&url);
            if let Some((bytes, if_range)) = range {
                request = request.set("Range", bytes);
                if let Some(v) = if_range {
                    request = request.set("If-Range", v);
                }
            }
            if let Some(t) = timeout {
                // Bounds the response head and every socket read, across redirects: ureq
                // sets the socket timeout to the time left before each read, so a silent
                // server cannot block forever.
                request = request.timeout(t.saturating_sub(start.elapsed()));
            }
            let resp = match request.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(400, resp)) if url.starts_with("https:") => {
                    // nginx refuses a missing or unaccepted client certificate with a 400
                    // page after the handshake; say so instead of "HTTP status 400".
                    return Err(match tls::client_certificate_refused(resp) {
                        Some(reason) => TransportError::Tls {
                            location: url,
                            cause: tls::TlsCause::ClientRefused,
                            reason: format!("{reason}{note}"),
                        },
                        None => TransportError::Other {
                            location: url,
                            reason: format!("HTTP status 400{note}"),
                        },
                    });
                }
                Err(ureq::Error::Status(416, resp)) if range.is_some() => return Ok(resp),
                Err(ureq::Error::Status(code, _)) => {
                    return Err(match code {
                        404 => TransportError::NotFound { location: url },
                        403 => TransportError::Forbidden { location: url },
                        _ => TransportError::Other {
                            location: url,
                            reason: format!("HTTP status {code}{note}"),
                        },
                    })
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(self.transport_error(&t, url, &note, start, timeout))
                }
            };
            if !(300..400).contains(&resp.status()) {
                return Ok(resp);
            }
            let other = |reason: String| TransportError::Other {
                location: url.clone(),
                reason: format!("{reason}{note}"),
            };
            if hops >= MAX_REDIRECTS {
                return Err(other(format!("more than {MAX_REDIRECTS} redirects")));
            }
            let status = resp.status();
            let next = resp
                .header("Location")
                .ok_or_else(|| format!("HTTP status {status} without a Location"))
                .and_then(|to| {
                    url::Url::parse(&url)
                        .and_then(|base| base.join(to))
                        .map_err(|e| format!("redirect to an invalid URL {to:?}: {e}"))
                })
                .map_err(other)?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(other(format!("redirect to a non-HTTP URL {next}")));
            }
            tracing::debug!(from = %url, to = %next, "redirect");
            url = next.to_string();
            hops += 1;
        }
    }

    /// The error for a failed request of `failed` (the URL actually requested).
    fn transport_error(
        &self,
        t: &ureq::Transport,
        failed: String,
        note: &str,
        start: Instant,
        timeout: Option<Duration>,
    ) -> TransportError {
        // An untrusted server or a refused client certificate: say which, not "I/O error".
        if let Some((cause, reason)) = std::error::Error::source(t).and_then(tls::describe_failure)
        {
            return TransportError::Tls {
                location: failed,
                cause,
                reason: format!("TLS handshake failed: {reason}{note}"),
            };
        }
        let timed_out = std::error::Error::source(t)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|e| {
                matches!(
                    root_io(e).kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                )
            });
        // Our request timeout ran out while waiting for the response head (a failed
        // connect is "unreachable", not "slow").
        let elapsed = start.elapsed();
        if timed_out
            && t.kind() != ureq::ErrorKind::ConnectionFailed
            && timeout.is_some_and(|t| elapsed >= t)
        {
            let reason = self
                .bounds
                .broken(0, elapsed)
                .unwrap_or_else(|| format!("no response within {}", secs(elapsed)));
            return TransportError::TooSlow {
                location: failed,
                reason: format!("{reason}{note}"),
            };
        }
        let via = match &self.proxy {
            Some(p) => format!(" (through the proxy {p})"),
            None => String::new(),
        };
        TransportError::Other {
            location: failed,
            reason: format!("{}{via}{note}", describe_transport(t)),
        }
    }
}

impl HttpTransport {
    /// The capped, paced body of `resp` (the answer to a request sent at `start`), of which at
    /// most `cap` bytes are accepted.
    fn body(
        &self,
        resp: ureq::Response,
        start: Instant,
        cap: u64,
    ) -> Result<FetchStream, TransportError> {
        let final_url = resp.get_url().to_string();
        // Refuse early when the server announces more than allowed; the stream is capped anyway.
        if let Some(len) = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            if len > cap {
                return Err(TransportError::TooLarge {
                    location: final_url,
                    limit: cap,
                });
            }
        }
        let paced = Paced::new(resp.into_reader(), final_url, self.bounds, start);
        Ok(Box::new(Limited::new(paced, cap)))
    }

    /// The whole file, for [`Transport::fetch_range`]: a new request without `Range`.
    fn whole(&self, relative: &str, max_len: u64) -> Result<RangedFetch, TransportError> {
        let location = self.location(relative);
        tracing::debug!(url = %location, "GET");
        let start = Instant::now();
        let resp = self.get(&location, start, self.bounds.request_timeout(), None)?;
        let validator = validator_of(&resp);
        Ok(RangedFetch {
            stream: self.body(resp, start, max_len)?,
            offset: 0,
            validator,
        })
    }
}

/// The validator of a response: its strong `ETag` and its `Last-Modified`.
fn validator_of(resp: &ureq::Response) -> Validator {
    Validator::from_headers(resp.header("ETag"), resp.header("Last-Modified"))
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL may be `*`): `(first, last, total)`.
fn content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let (unit, rest) = value.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (span, total) = rest.trim().split_once('/')?;
    let (first, last) = span.trim().split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some((first, last, total))
}

impl Transport for HttpTransport {
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError> {
        let location = self.location(relative);
        tracing::debug!(url = %location, "GET");
        let start = Instant::now();
        let timeout = self.bounds.request_timeout();
        let resp = self.get(&location, start, timeout, None)?;
        self.body(resp, start, max_len)
    }

    fn fetch_range(
        &self,
        relative: &str,
        offset: u64,
        validator: Option<&Validator>,
        max_len: u64,
    ) -> Result<RangedFetch, TransportError> {
        if offset == 0 || offset >= max_len {
            return self.whole(relative, max_len);
        }
        let location = self.location(relative);
        let range = format!("bytes={offset}-");
        let if_range = validator.and_then(Validator::if_range);
        tracing::debug!(url = %location, range = %range, if_range = ?if_range, "GET");
        let start = Instant::now();
        let resp = self.get(
            &location,
            start,
            self.bounds.request_timeout(),
            Some((&range, if_range)),
        )?;
        let served = validator_of(&resp);
        let restart = |why: &str| {
            tracing::info!(url = %location, offset, "{why}: downloading the whole file again");
        };
        match resp.status() {
            206 => {}
            416 => {
                restart("range not satisfiable (416)");
                return self.whole(relative, max_len);
            }
            _ => {
                // 200: the server ignores ranges, or If-Range says the file changed.
                restart("server sent the whole file");
                return Ok(RangedFetch {
                    stream: self.body(resp, start, max_len)?,
                    offset: 0,
                    validator: served,
                });
            }
        }
        let range = resp.header("Content-Range").and_then(content_range);
        let Some((_, last, total)) = range.filter(|(first, ..)| *first == offset) else {
            restart("206 with another range than the one asked for");
            return self.whole(relative, max_len);
        };
        if total.is_some_and(|t| t > max_len) || last >= max_len {
            return Err(TransportError::TooLarge {
                location: resp.get_url().to_string(),
                limit: max_len,
            });
        }
        // A 206 carries the ETag of the version it comes from: it must be the one we hold.
        let sent = validator.and_then(|v| v.etag.as_ref());
        if let (Some(sent), Some(got)) = (sent, served.etag.as_ref()) {
            if sent != got {
                restart("206 of another version (ETag changed)");
                return self.whole(relative, max_len);
            }
        }
        let mut kept = validator.cloned().unwrap_or_default();
        if served.etag.is_some() {
            kept.etag = served.etag;
        }
        if served.last_modified.is_some() {
            kept.last_modified = served.last_modified;
        }
        Ok(RangedFetch {
            stream: self.body(resp, start, max_len - offset)?,
            offset,
            validator: kept,
        })
    }

    fn fetch_slice(
        &self,
        relative: &str,
        offset: u64,
        len: u64,
        file_len: u64,
    ) -> Result<Vec<u8>, TransportError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let location = self.location(relative);
        let last = offset.saturating_add(len - 1);
        let range = format!("bytes={offset}-{last}");
        tracing::debug!(url = %location, range = %range, "GET");
        let start = Instant::now();
        let resp = self.get(
            &location,
            start,
            self.bounds.request_timeout(),
            Some((&range, None)),
        )?;
        let url = resp.get_url().to_string();
        match resp.status() {
            206 => {}
            416 => {
                // The file ends before `offset`: nothing of the slice arrived.
                tracing::info!(url = %location, range = %range, "range not satisfiable (416)");
                return Ok(Vec::new());
            }
            _ => {
                // 200: the server ignores ranges; read through the file (capped at its size).
                tracing::info!(url = %location, "server ignores ranges: reading the file up to the slice");
                let stream = self.body(resp, start, file_len)?;
                return super::read_slice(stream, offset, len, file_len, || url.clone());
            }
        }
        match resp.header("Content-Range").and_then(content_range) {
            Some((first, end, total)) if first == offset && end <= last => {
                if total.is_some_and(|t| t > file_len) {
                    return Err(TransportError::TooLarge {
                        location: url,
                        limit: file_len,
                    });
                }
            }
            other => {
                return Err(TransportError::Other {
                    location: url,
                    reason: format!("asked for {range}, the server answered {other:?}"),
                })
            }
        }
        let mut out = Vec::new();
        self.body(resp, start, len)?
            .read_to_end(&mut out)
            .map_err(|e| super::read_error(url, len, &e))?;
        Ok(out)
    }

    fn location(&self, relative: &str) -> String {
        format!("{}{}", self.base, relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed_strictly() {
        assert_eq!(
            content_range("bytes 100-199/200"),
            Some((100, 199, Some(200)))
        );
        assert_eq!(content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(content_range("BYTES  0-0/1"), Some((0, 0, Some(1))));
        for bad in [
            "bytes */200",
            "bytes 9-5/200",
            "bytes 0-200/200",
            "items 0-1/2",
            "bytes 0-1",
            "bytes a-1/2",
            "",
        ] {
            assert_eq!(content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn weak_etags_are_not_validators() {
        let v = Validator::from_headers(Some("W/\"abc\""), None);
        assert!(v.is_empty());
        let v = Validator::from_headers(Some("\"abc\""), Some("Sat, 01 Jan 2000 00:00:00 GMT"));
        assert_eq!(v.if_range(), Some("\"abc\""));
        let v = Validator::from_headers(None, Some("Sat, 01 Jan 2000 00:00:00 GMT"));
        assert_eq!(v.if_range(), Some("Sat, 01 Jan 2000 00:00:00 GMT"));
    }
}

/// The answer to [`HttpTransport::post`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostResponse {
    /// HTTP status (any: a refusal's status and body are the caller's to interpret).
    pub status: u16,
    /// The response body, at most the requested cap.
    pub body: Vec<u8>,
}

impl HttpTransport {
    /// POST `body` to the base URL itself (e.g. a report endpoint), held to the metadata
    /// request deadline. Any HTTP status is returned with its body (capped at `max_response`
    /// bytes); redirects are not followed (a POST must not be re-sent elsewhere silently).
    pub fn post(
        &self,
        content_type: &str,
        body: &[u8],
        max_response: u64,
    ) -> Result<PostResponse, TransportError> {
        use std::io::Read;
        let url = self.base.trim_end_matches('/').to_string();
        let start = Instant::now();
        let timeout = TransferBounds::METADATA.request_timeout();
        let mut request = self.agent.post(&url).set("Content-Type", content_type);
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let resp = match request.send_bytes(body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                return Err(self.transport_error(&t, url, "", start, timeout))
            }
        };
        let status = resp.status();
        let mut out = Vec::new();
        resp.into_reader()
            .take(max_response)
            .read_to_end(&mut out)
            .map_err(|e| TransportError::Other {
                location: url.clone(),
                reason: format!("reading the response: {}", describe_io(&e)),
            })?;
        Ok(PostResponse { status, body: out })
    }
}
