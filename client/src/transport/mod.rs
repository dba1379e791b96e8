//! Where metadata and targets come from: a repository over HTTP(S), or a directory (removable
//! media). A transport is bound to a base location and fetches paths relative to it.
//!
//! Every fetch is bounded: the returned stream fails as soon as more than `max_len` bytes
//! arrive, so a repository sending endless data is cut off early.
use std::io::{self, Read};

mod dir;
mod http;

pub use dir::DirTransport;
pub use http::HttpTransport;

/// Why a fetch failed. "Not found" is distinct: it ends the root chain normally.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The resource does not exist (HTTP 403/404, missing file).
    #[error("{location} not found")]
    NotFound {
        /// URL or path requested.
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
    /// Any other failure (connection, HTTP status, I/O).
    #[error("fetching {location}: {reason}")]
    Other {
        /// URL or path requested.
        location: String,
        /// What went wrong.
        reason: String,
    },
}

/// A bounded byte stream of one remote file.
pub type FetchStream = Box<dyn Read + Send>;

/// A source of repository files, relative to a base location.
pub trait Transport: Send + Sync {
    /// Open `relative` (already percent-encoded, `/`-separated) for reading at most `max_len`
    /// bytes: reading past `max_len` fails with an error whose inner error is [`TooLong`].
    fn fetch(&self, relative: &str, max_len: u64) -> Result<FetchStream, TransportError>;

    /// Human-readable location of `relative`, for messages.
    fn location(&self, relative: &str) -> String;
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

/// Fetch a whole file of at most `max_len` bytes into memory.
pub fn fetch_bytes(
    transport: &dyn Transport,
    relative: &str,
    max_len: u64,
) -> Result<Vec<u8>, TransportError> {
    let mut stream = transport.fetch(relative, max_len)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).map_err(|e| {
        let location = transport.location(relative);
        if is_too_long(&e) {
            TransportError::TooLarge {
                location,
                limit: max_len,
            }
        } else {
            TransportError::Other {
                location,
                reason: e.to_string(),
            }
        }
    })?;
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
}
