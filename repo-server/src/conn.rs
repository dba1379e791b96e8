//! Per-connection bookkeeping behind the connection limit and the header timeout.
//!
//! hyper's own `header_read_timeout` is not enough: `hyper_util`'s `auto::Builder` first reads
//! the protocol preface to choose HTTP/1 or HTTP/2 and applies no timeout while doing so, so a
//! client that never sends a byte was never closed; HTTP/2 has no header timeout at all. Instead
//! every connection is supervised here with one rule for both protocols: while no request is in
//! progress, a complete request head must arrive within the header timeout.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// All live connections, so the accept loop can pick one to close when the limit is reached.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    /// Signalled whenever a connection becomes idle, i.e. evictable.
    became_idle: Notify,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // The map stays consistent even if a holder panicked (every update is one insert/remove).
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a newly accepted connection; it is unregistered when the guard drops.
    pub(crate) fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(Arc::clone(self)));
        self.lock().insert(id, Arc::clone(&state));
        Registration {
            registry: Arc::clone(self),
            id,
            state,
        }
    }

    /// Number of registered connections.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Asks the best idle connection to close: one that never sent a byte before one that did,
    /// and among those the one idle longest. Returns false if none is idle, or if an earlier
    /// eviction is still winding down (its slot is about to be freed; one at a time is enough).
    pub(crate) fn evict_idle(&self) -> bool {
        let conns = self.lock();
        if conns.values().any(|c| c.evicted.load(Ordering::Acquire)) {
            return true;
        }
        let victim = conns
            .values()
            .filter_map(|c| c.eviction_rank().map(|rank| (rank, c)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, c)| c);
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::Release);
                c.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Completes when some connection may have become idle since the last call.
    pub(crate) async fn idle_changed(&self) {
        self.became_idle.notified().await;
    }
}

/// Keeps a connection registered; dropping it removes the connection from the registry.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
    state: Arc<ConnState>,
}

impl Registration {
    /// The shared state of this connection.
    pub(crate) fn state(&self) -> &Arc<ConnState> {
        &self.state
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// What the server knows about one connection's activity.
#[derive(Debug)]
pub(crate) struct ConnState {
    registry: Arc<Registry>,
    accepted: Instant,
    got_bytes: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds after `accepted` when the connection last became idle or wrote response
    /// bytes; the header timeout counts from here.
    idle_mark_ms: AtomicU64,
    evicted: AtomicBool,
    /// Wakes the supervisor: eviction, or the last request in progress finished.
    wake: Notify,
}

impl ConnState {
    fn new(registry: Arc<Registry>) -> Self {
        ConnState {
            registry,
            accepted: Instant::now(),
            got_bytes: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_mark_ms: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn mark_idle_now(&self) {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_mark_ms.store(ms, Ordering::Release);
    }

    fn idle_since(&self) -> Instant {
        let ms = self.idle_mark_ms.load(Ordering::Acquire);
        self.accepted
            .checked_add(Duration::from_millis(ms))
            .unwrap_or(self.accepted)
    }

    /// Sort key for eviction (lower goes first), or `None` while a request is in progress.
    fn eviction_rank(&self) -> Option<(bool, Instant)> {
        if self.in_flight.load(Ordering::Acquire) > 0 || self.evicted.load(Ordering::Acquire) {
            return None;
        }
        Some((self.got_bytes.load(Ordering::Acquire), self.idle_since()))
    }

    /// Called when hyper hands a parsed request to the service; the guard lives as long as the
    /// response body, so the connection counts as busy until the body was sent or abandoned.
    pub(crate) fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            state: Arc::clone(self),
        }
    }
}

/// Marks one request as in progress on its connection.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    state: Arc<ConnState>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let s = &self.state;
        // Mark before decrementing so a supervisor that sees 0 also sees the new idle start.
        s.mark_idle_now();
        if s.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.wake.notify_one();
            s.registry.became_idle.notify_one();
        }
    }
}

/// How a supervised connection ended.
pub(crate) enum Ended<T> {
    /// The connection future completed (client closed, error, graceful shutdown).
    Finished(T),
    /// No request head arrived within the header timeout while idle.
    TimedOut,
    /// Closed to make room for a new connection at the connection limit.
    Evicted,
}

/// Drives `conn` until it finishes, stays idle past `header_timeout`, or is evicted. Returning
/// early drops (and so closes) the connection; that only happens while no request is in
/// progress, so no response is cut short.
pub(crate) async fn supervise<F: Future>(
    conn: F,
    state: &ConnState,
    header_timeout: Duration,
) -> Ended<F::Output> {
    tokio::pin!(conn);
    loop {
        if state.evicted.load(Ordering::Acquire) {
            if state.in_flight.load(Ordering::Acquire) == 0 {
                return Ended::Evicted;
            }
            // A request arrived just after we were picked: serve it and let the accept loop
            // pick again rather than cut it off.
            state.evicted.store(false, Ordering::Release);
            state.registry.became_idle.notify_one();
        }
        // While busy there is no deadline; the request guard wakes us when it is done.
        let deadline = if state.in_flight.load(Ordering::Acquire) == 0 {
            state.idle_since().checked_add(header_timeout)
        } else {
            None
        };
        tokio::select! {
            out = &mut conn => return Ended::Finished(out),
            () = state.wake.notified() => {}
            () = sleep_until(deadline) => {
                let idle = state.in_flight.load(Ordering::Acquire) == 0;
                // Written bytes may have moved the mark; recheck before closing.
                let expired = state
                    .idle_since()
                    .checked_add(header_timeout)
                    .is_some_and(|d| d <= Instant::now());
                if idle && expired {
                    return Ended::TimedOut;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The client socket, noting the first byte received (idle connections that never sent one
/// are evicted first) and every byte written (a slow reader still draining the end of a
/// response is not idle).
#[derive(Debug)]
pub(crate) struct TrackedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    seen_bytes: bool,
}

impl<T> TrackedIo<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>) -> Self {
        TrackedIo {
            inner,
            state,
            seen_bytes: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !this.seen_bytes && buf.filled().len() > before {
            this.seen_bytes = true;
            this.state.got_bytes.store(true, Ordering::Release);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> TrackedIo<T> {
    fn note_written(&self, res: &Poll<io::Result<usize>>) {
        if matches!(res, Poll::Ready(Ok(n)) if *n > 0) {
            self.state.mark_idle_now();
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note_written(&res);
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note_written(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as in progress until hyper drops it.
#[derive(Debug)]
pub(crate) struct TrackedBody<B> {
    inner: B,
    _guard: RequestGuard,
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(inner: B, guard: RequestGuard) -> Self {
        TrackedBody {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn idle_connection_times_out_but_busy_one_does_not() {
        rt().block_on(async {
            let registry = Arc::new(Registry::default());
            let timeout = Duration::from_millis(100);
            let reg = registry.register();
            let started = Instant::now();
            let ended = supervise(std::future::pending::<()>(), reg.state(), timeout).await;
            assert!(matches!(ended, Ended::TimedOut));
            assert!(started.elapsed() >= timeout);

            let reg = registry.register();
            let guard = reg.state().begin_request();
            let release = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                drop(guard);
            });
            let started = Instant::now();
            let ended = supervise(std::future::pending::<()>(), reg.state(), timeout).await;
            assert!(matches!(ended, Ended::TimedOut));
            // Busy for 300 ms, then idle for the full timeout.
            assert!(started.elapsed() >= Duration::from_millis(400));
            release.await.unwrap();
        });
    }

    #[test]
    fn eviction_prefers_silent_then_longest_idle_and_skips_busy() {
        let registry = Arc::new(Registry::default());
        let busy = registry.register();
        let _guard = busy.state().begin_request();
        let talked = registry.register();
        talked.state().got_bytes.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_millis(5));
        let silent_old = registry.register();
        std::thread::sleep(Duration::from_millis(5));
        let silent_new = registry.register();

        assert!(registry.evict_idle());
        assert!(silent_old.state().evicted.load(Ordering::Acquire));
        // While that eviction winds down no second connection is picked.
        assert!(registry.evict_idle());
        assert!(!silent_new.state().evicted.load(Ordering::Acquire));
        drop(silent_old);
        assert!(registry.evict_idle());
        assert!(silent_new.state().evicted.load(Ordering::Acquire));
        drop(silent_new);
        assert!(registry.evict_idle());
        assert!(talked.state().evicted.load(Ordering::Acquire));
        drop(talked);
        assert!(!registry.evict_idle(), "a busy connection is never evicted");
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn eviction_of_a_connection_that_just_got_busy_is_withdrawn() {
        rt().block_on(async {
            let registry = Arc::new(Registry::default());
            let reg = registry.register();
            assert!(registry.evict_idle());
            let _guard = reg.state().begin_request();
            let conn = tokio::time::sleep(Duration::from_millis(50));
            let ended = supervise(conn, reg.state(), Duration::from_millis(10)).await;
            assert!(matches!(ended, Ended::Finished(())));
            assert!(!reg.state().evicted.load(Ordering::Acquire));
        });
    }
}
