//! Where metadata and targets come from: a repository over HTTP(S), or a directory (removable
//! media). A transport is bound to a base location and fetches paths relative to it.
//!
//! Every fetch is bounded: the returned stream fails as soon as more than `max_len` bytes
//! arrive, so a repository sending endless data is cut off early.
//!
//! HTTP fetches are also bounded in time ([`TransferBounds`]): a per-file deadline and a
//! minimum average rate, so a server that trickles bytes (slow retrieval attack) is cut off.
//!
//! Which HTTPS servers are trusted, the device certificate for mutual TLS and a proxy are
//! [`TlsSettings`].
use std::io::{self, Read};
use std::time::{Duration, Instant};

mod dir;
mod http;
mod pin;
mod tls;

pub use dir::DirTransport;
pub use http::{HttpTransport, PostResponse};
pub use pin::{PinMismatch, SpkiPin};
pub use tls::{TlsCause, TlsError, TlsSettings, TlsVersion};

/// Why a fetch failed. "Not found" and "forbidden" are distinct from other failures: both end
/// the root chain normally (see [`TransportError::is_missing`]).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The resource does not exist (HTTP 404, missing file).
    #[error("{location} not found")]
    NotFound {
        /// URL or path requested (the final URL after redirects).
        location: String,
    },
    /// The server refused access to the resource (HTTP 403). Many object stores answer 403
    /// for a file that does not exist, so TUF treats it like "not found" where that matters.
    #[error("{location}: forbidden (HTTP 403)")]
    Forbidden {
        /// URL requested (the final URL after redirects).
        location: String,
    },
    /// The resource is larger than allowed.
    #[error("{location} exceeds the length limit of {limit} bytes")]
    TooLarge {
        /// URL or path requested.
        location: String,
        /// The limit.
        limit: u64,
    },
    /// The transfer broke its time bounds: deadline passed, average rate below the floor,
    /// or no data at all (slow retrieval attack, or a very bad link).
    #[error("fetching {location}: too slow: {reason}")]
    TooSlow {
        /// URL requested (the final URL after redirects).
        location: String,
        /// Which bound was broken, and how much arrived in how long.
        reason: String,
    },
    /// TLS refused the connection: the handshake failed (the server's certificate or key is
    /// not trusted, no common version) or the server refused this device (no client
    /// certificate, or one it does not accept).
    #[error("fetching {location}: {reason}")]
    Tls {
        /// URL requested (the final URL after redirects).
        location: String,
        /// Which side the failure is about.
        cause: TlsCause,
        /// Why, in one phrase (`TLS handshake failed: server certificate not trusted: ...`).
        reason: String,
    },
    /// The transport's TLS settings are unusable (a file, the pin, the proxy).
    #[error(transparent)]
    Settings(#[from] TlsError),
    /// Any other failure (connection, HTTP status, I/O).
    #[error("fetching {location}: {reason}")]
    Other {
        /// URL or path that failed (after redirects, the URL that failed).
        location: String,
        /// What went wrong.
        reason: String,
    },
}

impl TransportError {
    /// Whether the file is missing as far as TUF is concerned: HTTP 404 or 403 (python-tuf
    /// treats both alike, e.g. when the root chain ends).
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            TransportError::NotFound { .. } | TransportError::Forbidden { .. }
        )
    }
}

/// A bounded byte stream of one remote file.
pub type FetchStream = Box<dyn Read + Send>;

/// What identifies one version of a remote file, so that a download can be resumed only
/// while the file is still that version (HTTP `If-Range`).
///
/// Saved beside a partial download (see [`crate::target_download`]); both fields are the
/// header values exactly as the server sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validator {
    /// The strong entity tag (`"..."`; weak `W/` tags are never kept: `If-Range` compares
    /// strongly), if the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The `Last-Modified` date, if the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validator {
    /// A validator from the `ETag` and `Last-Modified` header values of a response (a weak
    /// ETag is dropped).
    pub fn from_headers(etag: Option<&str>, last_modified: Option<&str>) -> Self {
        let etag = etag
            .map(str::trim)
            .filter(|e| e.starts_with('"') && e.ends_with('"') && e.len() >= 2);
        Validator {
            etag: etag.map(str::to_string),
            last_modified: last_modified
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
        }
    }

    /// Whether neither field is known.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }

    /// The `If-Range` value: the strong ETag, else the `Last-Modified` date.
    pub fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// The answer to [`Transport::fetch_range`]: a stream of the file from [`RangedFetch::offset`]
/// on, and the validator of the version served.
pub struct RangedFetch {
    /// The bytes, from `offset` to the end of the file, capped so that no more than the
    /// `max_len` of the whole file can be read.
    pub stream: FetchStream,
    /// Where in the file the stream starts: the offset asked for (the rest of the same
    /// version, HTTP 206), or 0: the whole file, because the transport cannot resume, the
    /// server ignored the range, the file changed (`If-Range` mismatch), the range was not
    /// satisfiable (416) or the server answered another range than the one asked for.
    pub offset: u64,
    /// The validator of the version served; empty when the transport has none.
    pub validator: Validator,
}

impl std::fmt::Debug for RangedFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedFetch")
            .field("offset", &self.offset)
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

/// A source of repository files, relative to a base location.
pub trait Transport: Send + Sync {
    /// Open `relative` (already percent-encoded, `/`-separated) for reading at most `max_len`
    /// bytes: reading past `max_len` fails with an error whose inner error is [`TooLong`].
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError>;

    /// Open `relative` from byte `offset` on, to resume a download of which the caller holds
    /// the first `offset` bytes, of the version `validator` names (`None`: no validator is
    /// known; the rest is served whatever the version, and the caller's final hash check
    /// catches a change). `max_len` caps the whole file: the stream fails (with [`TooLong`])
    /// once more than `max_len - offset` bytes follow the offset.
    ///
    /// The answer may start at 0 instead (see [`RangedFetch::offset`]); the caller must then
    /// start over with that stream. The default implementation always does: it is a plain
    /// [`Transport::fetch`], so any transport works with resumable downloads, only without
    /// resuming. Each call is one request, held to the transport's time bounds on its own.
    fn fetch_range(
        &self,
        relative: &str,
        offset: u64,
        validator: Option<&Validator>,
        max_len: u64,
    ) -> Result<RangedFetch, TransportError> {
        let _ = (offset, validator);
        Ok(RangedFetch {
            stream: self.fetch(relative, max_len)?,
            offset: 0,
            validator: Validator::default(),
        })
    }

    /// Read the `len` bytes of `relative` from byte `offset` on, in a file of `file_len` bytes
    /// (one HTTP Range request `bytes=offset-(offset+len-1)`): a device's block of a slip
    /// bundle. Returns what arrived, at most `len` bytes: fewer when the file ends early (the
    /// caller checks the length it expects). An answer of more than `len` bytes, or a file
    /// larger than `file_len`, fails with [`TransportError::TooLarge`]; an answer for another
    /// range with [`TransportError::Other`].
    ///
    /// The default implementation reads the file from its start (capped at `file_len`) and
    /// keeps the slice: any transport works, only less economically.
    fn fetch_slice(
        &self,
        relative: &str,
        offset: u64,
        len: u64,
        file_len: u64,
    ) -> Result<Vec<u8>, TransportError> {
        let stream = self.fetch(relative, file_len)?;
        read_slice(stream, offset, len, file_len, || self.location(relative))
    }

    /// Human-readable location of `relative`, for messages.
    fn location(&self, relative: &str) -> String;
}

/// Skip `offset` bytes of `stream` (a whole file capped at `file_len`) and read up to `len`.
pub(crate) fn read_slice(
    mut stream: impl Read,
    offset: u64,
    len: u64,
    file_len: u64,
    location: impl Fn() -> String,
) -> Result<Vec<u8>, TransportError> {
    io::copy(&mut (&mut stream).take(offset), &mut io::sink())
        .map_err(|e| read_error(location(), file_len, &e))?;
    let mut out = Vec::new();
    stream
        .take(len)
        .read_to_end(&mut out)
        .map_err(|e| read_error(location(), file_len, &e))?;
    Ok(out)
}

/// Marker inside the `io::Error` a [`Limited`] stream returns when the cap is passed.
#[derive(Debug, thiserror::Error)]
#[error("stream exceeds its length limit of {0} bytes")]
pub struct TooLong(pub u64);

/// Whether `e` is the length-cap error of a [`Limited`] stream.
pub fn is_too_long(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLong>())
}

/// A reader that fails once more than `max` bytes were read from `inner`.
pub struct Limited<R> {
    inner: R,
    max: u64,
    seen: u64,
}

impl<R: Read> Limited<R> {
    /// Wrap `inner`, allowing `max` bytes.
    pub fn new(inner: R, max: u64) -> Self {
        Limited {
            inner,
            max,
            seen: 0,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Allow one byte more than the cap so an oversized stream is detected, not truncated.
        let room = (self.max + 1).saturating_sub(self.seen);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if want == 0 {
            return Err(io::Error::other(TooLong(self.max)));
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.seen += n as u64;
        if self.seen > self.max {
            return Err(io::Error::other(TooLong(self.max)));
        }
        Ok(n)
    }
}

/// Time bounds on one HTTP fetch, against slow retrieval attacks: a server (or a man in the
/// middle) that sends a file so slowly that the device never finishes updating.
///
/// Checked on every read of the response, and enforced on the socket as well: each request
/// gets an overall ureq timeout of [`TransferBounds::request_timeout`], so a read that blocks
/// forever (a silent server) is interrupted too. Not applied to [`DirTransport`]: local files
/// cannot trickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferBounds {
    /// Longest one file may take, from sending the request to its last byte; `None` for
    /// no deadline other than what `min_rate` implies.
    pub deadline: Option<Duration>,
    /// Lowest average rate (bytes per second over the whole transfer so far) accepted once
    /// `grace` has passed; 0 disables the floor.
    pub min_rate: u64,
    /// Time from the request before `min_rate` applies (connection set-up, slow start).
    pub grace: Duration,
    /// Longest wait for the next bytes without a deadline (each socket read is bounded by
    /// it), so a server that goes silent is noticed this quickly, not when the average
    /// finally drops below the floor. With a deadline, the deadline bounds every read.
    pub stall: Duration,
}

impl TransferBounds {
    /// Defaults for metadata: small files, so a 30 s deadline per file, plus the rate floor.
    pub const METADATA: TransferBounds = TransferBounds {
        deadline: Some(Duration::from_secs(30)),
        min_rate: 4096,
        grace: Duration::from_secs(10),
        stall: Duration::from_secs(30),
    };
    /// Defaults for targets: no fixed deadline (images may be large), an average of at least
    /// 4 KiB/s after 10 s, and no silence longer than 30 s.
    pub const TARGETS: TransferBounds = TransferBounds {
        deadline: None,
        min_rate: 4096,
        grace: Duration::from_secs(10),
        stall: Duration::from_secs(30),
    };

    /// The overall time one request may take: the deadline (`None` without one; then every
    /// read is bounded by `stall` and the rate floor is checked as the bytes arrive).
    pub fn request_timeout(&self) -> Option<Duration> {
        // Far-future timeouts overflow `Instant` arithmetic inside ureq; a year is "none".
        self.deadline
            .map(|d| d.min(Duration::from_secs(365 * 24 * 3600)))
    }

    /// The broken bound, if any, after `seen` bytes in `elapsed`.
    pub(crate) fn broken(&self, seen: u64, elapsed: Duration) -> Option<String> {
        if let Some(d) = self.deadline {
            if elapsed >= d {
                return Some(format!(
                    "not complete within the {} deadline ({seen} bytes received)",
                    secs(d)
                ));
            }
        }
        if self.min_rate > 0 && elapsed > self.grace {
            // seen / elapsed < min_rate, in integers.
            if u128::from(seen) * 1000 < u128::from(self.min_rate) * elapsed.as_millis() {
                return Some(format!(
                    "{seen} bytes in {}, below the minimum average of {} bytes/s",
                    secs(elapsed),
                    self.min_rate
                ));
            }
        }
        None
    }
}

impl Default for TransferBounds {
    /// [`TransferBounds::TARGETS`]: safe for files of any size.
    fn default() -> Self {
        TransferBounds::TARGETS
    }
}

/// `1.5 s`, `30 s`.
pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// Marker inside the `io::Error` a [`Paced`] stream returns when a time bound is broken.
#[derive(Debug, thiserror::Error)]
#[error("too slow: {reason}")]
pub struct TooSlow {
    /// The URL being read (after redirects).
    pub location: String,
    /// Which bound was broken.
    pub reason: String,
}

/// The time-bound error of a [`Paced`] stream, if `e` is one.
pub fn too_slow(e: &io::Error) -> Option<&TooSlow> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<TooSlow>())
}

/// A reader that enforces [`TransferBounds`] on `inner`, measured from a start instant
/// (the request, so a slow response head counts too).
pub struct Paced<R> {
    inner: R,
    location: String,
    bounds: TransferBounds,
    start: Instant,
    seen: u64,
}

impl<R: Read> Paced<R> {
    /// Wrap `inner`, the body of `location`, whose request was sent at `start`.
    pub fn new(inner: R, location: String, bounds: TransferBounds, start: Instant) -> Self {
        Paced {
            inner,
            location,
            bounds,
            start,
            seen: 0,
        }
    }

    fn fail(&self, reason: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            TooSlow {
                location: self.location.clone(),
                reason,
            },
        )
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            // End of data: a complete file is never refused for its pace.
            Ok(0) => Ok(0),
            Ok(n) => {
                self.seen += n as u64;
                match self.bounds.broken(self.seen, self.start.elapsed()) {
                    Some(reason) => Err(self.fail(reason)),
                    None => Ok(n),
                }
            }
            // The socket timeout (the request timeout) interrupted a blocked read.
            Err(e) if is_timeout(&e) => {
                let elapsed = self.start.elapsed();
                let reason = self.bounds.broken(self.seen, elapsed).unwrap_or_else(|| {
                    format!(
                        "no data for too long ({} bytes received in {})",
                        self.seen,
                        secs(elapsed)
                    )
                });
                Err(self.fail(reason))
            }
            Err(e) => Err(e),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        root_io(e).kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The innermost `io::Error` of `e`: ureq wraps I/O errors in its own error, which it may
/// wrap in an `io::Error` again.
pub(crate) fn root_io(e: &io::Error) -> &io::Error {
    let deeper = e.get_ref().and_then(|inner| {
        if let Some(u) = inner.downcast_ref::<ureq::Error>() {
            std::error::Error::source(u)
        } else if let Some(t) = inner.downcast_ref::<ureq::Transport>() {
            std::error::Error::source(t)
        } else {
            inner.source()
        }
    });
    match deeper.and_then(|d| d.downcast_ref::<io::Error>()) {
        Some(d) => root_io(d),
        None => e,
    }
}

/// One short phrase for an I/O failure, without the wrappers' repeated context.
pub(crate) fn describe_io(e: &io::Error) -> String {
    let e = root_io(e);
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::ConnectionAborted => "connection closed by the server".into(),
        io::ErrorKind::UnexpectedEof => "connection closed before the end of the file".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        _ => match e.get_ref() {
            // A wrapped non-I/O error (e.g. TLS): its own message, without the io wrapper.
            Some(inner) => inner.to_string(),
            None => e.to_string(),
        },
    }
}

/// The [`TransportError`] for a failed read of the stream of `location` (capped at
/// `max_len`): too large, too slow (naming the URL actually read), or another failure
/// described once.
pub fn read_error(location: String, max_len: u64, e: &io::Error) -> TransportError {
    if is_too_long(e) {
        TransportError::TooLarge {
            location,
            limit: max_len,
        }
    } else if let Some(slow) = too_slow(e) {
        TransportError::TooSlow {
            location: slow.location.clone(),
            reason: slow.reason.clone(),
        }
    } else {
        TransportError::Other {
            location,
            reason: describe_io(e),
        }
    }
}

/// Fetch a whole file of at most `max_len` bytes into memory.
pub fn fetch_bytes(
    transport: &dyn Transport,
    relative: &str,
    max_len: u64,
) -> Result<Vec<u8>, TransportError> {
    let mut stream = transport.fetch(relative, max_len)?;
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .map_err(|e| read_error(transport.location(relative), max_len, &e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_allows_exact_and_refuses_more() {
        let mut ok = Vec::new();
        Limited::new(&b"abcd"[..], 4).read_to_end(&mut ok).unwrap();
        assert_eq!(ok, b"abcd");
        let mut big = Vec::new();
        let err = Limited::new(&b"abcde"[..], 4)
            .read_to_end(&mut big)
            .unwrap_err();
        assert!(is_too_long(&err));
    }

    /// Yields one byte per `every`, `len` bytes in all.
    struct Trickle {
        left: usize,
        every: Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 || buf.is_empty() {
                return Ok(0);
            }
            std::thread::sleep(self.every);
            buf[0] = b'x';
            self.left -= 1;
            Ok(1)
        }
    }

    fn paced(len: usize, every_ms: u64, bounds: TransferBounds) -> Paced<Trickle> {
        let inner = Trickle {
            left: len,
            every: Duration::from_millis(every_ms),
        };
        Paced::new(inner, "http://h/f".into(), bounds, Instant::now())
    }

    const NO_BOUNDS: TransferBounds = TransferBounds {
        deadline: None,
        min_rate: 0,
        grace: Duration::ZERO,
        stall: Duration::from_secs(60),
    };

    #[test]
    fn paced_stream_stops_at_the_deadline() {
        let bounds = TransferBounds {
            deadline: Some(Duration::from_millis(300)),
            ..NO_BOUNDS
        };
        let start = Instant::now();
        let err = paced(1000, 20, bounds)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(600));
        let slow = too_slow(&err).unwrap();
        assert_eq!(slow.location, "http://h/f");
        assert!(slow.reason.contains("deadline"), "{}", slow.reason);
        let e = read_error("x".into(), 10, &err);
        assert!(matches!(e, TransportError::TooSlow { .. }), "{e}");
        assert!(
            e.to_string().starts_with("fetching http://h/f: too slow: "),
            "{e}"
        );
    }

    #[test]
    fn paced_stream_enforces_the_rate_floor_after_the_grace_period() {
        let bounds = TransferBounds {
            min_rate: 1000,
            grace: Duration::from_millis(200),
            ..NO_BOUNDS
        };
        // 50 bytes/s: fine during the grace period, refused right after it.
        let mut r = paced(1000, 20, bounds);
        let start = Instant::now();
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(too_slow(&err)
            .unwrap()
            .reason
            .contains("minimum average of 1000 bytes/s"));
        // A fast stream passes, and so does a slow one that ends within the grace period.
        let mut out = Vec::new();
        paced(5, 20, bounds).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"xxxxx");
        let fast = Paced::new(&[7u8; 100_000][..], String::new(), bounds, Instant::now());
        let mut all = Vec::new();
        Limited::new(fast, 100_000).read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 100_000);
    }

    #[test]
    fn request_timeout_is_the_deadline() {
        // Targets: no overall timeout; reads are bounded by `stall`, the floor by `Paced`.
        assert_eq!(TransferBounds::TARGETS.request_timeout(), None);
        assert_eq!(
            TransferBounds::METADATA.request_timeout(),
            Some(Duration::from_secs(30))
        );
        let huge = TransferBounds {
            deadline: Some(Duration::MAX),
            ..NO_BOUNDS
        };
        assert_eq!(
            huge.request_timeout(),
            Some(Duration::from_secs(365 * 24 * 3600))
        );
    }

    #[test]
    fn io_errors_are_described_once_through_ureq_wrappers() {
        // ureq wraps a socket error in its own error, then in an io::Error again.
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let wrapped = io::Error::new(io::ErrorKind::ConnectionReset, ureq::Error::from(reset));
        assert_eq!(describe_io(&wrapped), "connection reset by the server");
        let e = read_error("http://h/f".into(), 10, &wrapped);
        assert_eq!(
            e.to_string(),
            "fetching http://h/f: connection reset by the server"
        );
        assert!(TransportError::Forbidden {
            location: "u".into()
        }
        .is_missing());
        assert_eq!(
            TransportError::Forbidden {
                location: "http://h/f".into()
            }
            .to_string(),
            "http://h/f: forbidden (HTTP 403)"
        );
    }
}
