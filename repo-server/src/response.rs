//! Response bodies (small files whole, larger ones streamed in chunks) and the small fixed responses.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::task::JoinHandle;

use crate::cache_policy;
use crate::file_read;

/// Read size per body frame: large enough for throughput, small enough to bound memory per
/// connection.
const CHUNK: usize = 64 * 1024;

/// Body of every response the server sends.
#[derive(Debug)]
pub struct ResponseBody(Inner);

#[derive(Debug)]
enum Inner {
    Bytes(Option<Bytes>),
    File(FileStream),
}

#[derive(Debug)]
struct FileStream {
    file: Arc<std::fs::File>,
    offset: u64,
    remaining: u64,
    /// A read waiting for the disk on the blocking pool.
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    /// Chunks read from the page cache are split off this buffer.
    buf: BytesMut,
}

impl FileStream {
    /// The next chunk: from the page cache at once, or else from a blocking-pool read.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        let want = usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        if self.pending.is_none() {
            if let Some(chunk) =
                file_read::read_nowait(&self.file, &mut self.buf, self.offset, want)?
            {
                return Poll::Ready(Ok(chunk));
            }
            let (file, offset) = (Arc::clone(&self.file), self.offset);
            self.pending = Some(tokio::task::spawn_blocking(move || {
                file_read::read_blocking(&file, offset, want)
            }));
        }
        let Some(task) = self.pending.as_mut() else {
            return Poll::Pending;
        };
        let done = ready!(Pin::new(task).poll(cx));
        self.pending = None;
        Poll::Ready(done.map_err(io::Error::other).and_then(|r| r))
    }
}

impl ResponseBody {
    /// No body (HEAD, 304, 416).
    pub fn empty() -> Self {
        ResponseBody(Inner::Bytes(None))
    }

    /// A small in-memory body.
    pub fn bytes(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ResponseBody(Inner::Bytes((!b.is_empty()).then_some(b)))
    }

    /// Streams exactly `len` bytes of `file` from `offset` on. If the file turns out to be
    /// shorter (truncated while being served), the body fails and the connection is aborted
    /// rather than sending fewer bytes than `Content-Length` promised.
    pub fn file(file: std::fs::File, offset: u64, len: u64) -> Self {
        ResponseBody(Inner::File(FileStream {
            file: Arc::new(file),
            offset,
            remaining: len,
            pending: None,
            buf: BytesMut::new(),
        }))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().0 {
            Inner::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::File(s) => {
                if s.remaining == 0 {
                    return Poll::Ready(None);
                }
                let chunk = ready!(s.poll_chunk(cx))?;
                if chunk.is_empty() {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being served",
                    ))));
                }
                s.offset += chunk.len() as u64;
                s.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Bytes(b) => b.is_none(),
            Inner::File(s) => s.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::File(s) => SizeHint::with_exact(s.remaining),
        }
    }
}

/// A short plain-text error response; errors are never cached.
pub fn error(status: StatusCode) -> Response<ResponseBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    );
    let mut resp = Response::new(ResponseBody::bytes(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(cache_policy::NO_STORE),
    );
    resp
}

/// The `/healthz` answer: 200 or 503 with one line, never cached.
pub fn health(ok: bool, reason: &str) -> Response<ResponseBody> {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = error(status);
    *resp.body_mut() = ResponseBody::bytes(format!("{reason}\n"));
    resp
}

/// A JSON answer of the API routes (reports, uploads): `value` and a newline, never cached.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::bytes(format!("{value}\n")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(crate::cache_policy::NO_STORE),
    );
    resp
}

/// The Prometheus exposition `text` (never cached).
pub fn metrics(text: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::bytes(text));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(crate::cache_policy::NO_STORE),
    );
    resp
}

/// 405 with the `Allow` header RFC 9110 requires.
pub fn method_not_allowed() -> Response<ResponseBody> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

/// Media type by extension: TUF metadata is JSON, everything else opaque bytes.
pub fn content_type(file_name: &str) -> &'static str {
    if file_name.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

    #[tokio::test]
    async fn file_body_streams_exactly_the_requested_slice() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let body = ResponseBody::file(f, 1000, 150_000);
        assert_eq!(body.size_hint().exact(), Some(150_000));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], &data[1000..151_000]);
    }

    #[tokio::test]
    async fn file_body_fails_when_file_is_shorter_than_promised() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"short").unwrap();
        assert!(ResponseBody::file(f, 0, 10).collect().await.is_err());
    }
}
