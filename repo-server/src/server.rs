//! Listening socket, connection loop and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{self, check_repo, Config, RepoError};
use crate::conn::{self, ConnState, Ended, Registration, Registry, TrackedBody, TrackedIo};
use crate::handler::{self, Repo};
use crate::identity::{DeviceIdentity, RoutePolicy};
use crate::reports::sink::{ReportSink, SinkError};
use crate::reports::{DeviceVerifier, Reports};
use crate::tls::device_ca::DeviceCa;
use crate::tls::{self, ReloadHandle, TlsError, TlsState};
use crate::upload::Uploads;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The repository directory is missing or malformed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The TLS flags or files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Reports were asked for without a device CA to verify them with.
    #[error("status reports need a device CA: give --client-ca (mutual TLS) or --report-ca")]
    ReportsWithoutCa,
    /// The report store cannot be opened.
    #[error(transparent)]
    ReportStore(#[from] SinkError),
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
}

/// The report service: the device CA (`--report-ca`, else the TLS layer's `--client-ca`) and
/// the store, opened (and migrated) now so that a bad database stops the start.
fn open_reports(
    settings: &crate::config::ReportSettings,
    tls: Option<&Arc<TlsState>>,
) -> Result<Reports, ServeError> {
    let verifier = match (&settings.report_ca, tls) {
        (Some(ca), _) => {
            DeviceVerifier::Ca(Arc::new(DeviceCa::load(ca.clone(), settings.crls.clone())?))
        }
        (None, Some(t)) if t.client_verifier().is_some() => DeviceVerifier::Tls(Arc::clone(t)),
        _ => return Err(ServeError::ReportsWithoutCa),
    };
    let sink = ReportSink::start(&settings.database)?;
    Ok(Reports { verifier, sink })
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// Every in-flight connection finished within the grace period.
    Graceful,
    /// The grace period ran out; the remaining connections were dropped.
    TimedOut,
}

/// A bound, not yet running server. Binding first lets callers learn the real port (for `:0`)
/// before serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    root: Arc<PathBuf>,
    local_addr: SocketAddr,
    shutdown_timeout: Duration,
    header_timeout: Duration,
    max_connections: usize,
    tls: Option<Arc<TlsState>>,
    reports: Option<Reports>,
    uploads: Option<Arc<Uploads>>,
}

impl Server {
    /// Validates the repository directory, loads and checks the TLS files (if any) and binds
    /// the listen address.
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let root = check_repo(&config.repo)?;
        let tls = match config.tls {
            // Small files, read once at startup; not worth a blocking-pool hop.
            Some(settings) => Some(Arc::new(TlsState::load(settings)?)),
            None => None,
        };
        let reports = match &config.reports {
            Some(r) => Some(open_reports(r, tls.as_ref())?),
            None => None,
        };
        let bind_err = |source| ServeError::Bind {
            addr: config.listen,
            source,
        };
        let listener = listen(config.listen).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        // Once the address is ours: it clears what an earlier run left in REPO/.uploads.
        let uploads = match config.upload {
            Some(settings) => {
                Some(
                    Uploads::start(&root, settings).map_err(|source| RepoError::Io {
                        path: root.join(ota_repo::upload::UPLOADS_DIR),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Server {
            listener,
            root: Arc::new(root),
            local_addr,
            shutdown_timeout: config.shutdown_timeout,
            header_timeout: config.header_timeout,
            max_connections: config.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            tls,
            reports,
            uploads,
        })
    }

    /// Reloads the TLS files on demand (`ota-server` calls it on SIGHUP); `None` without TLS.
    pub fn reload_handle(&self) -> Option<ReloadHandle> {
        self.tls.as_ref().map(|state| ReloadHandle {
            state: Arc::clone(state),
        })
    }

    /// Whether connections use TLS (the URL scheme is `https`).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address actually bound (with the real port when port 0 was requested).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to the configured timeout) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownOutcome {
        let Server {
            listener,
            root,
            local_addr,
            shutdown_timeout,
            header_timeout,
            max_connections,
            tls,
            reports,
            uploads,
        } = self;
        let policy = tls
            .as_ref()
            .map_or(RoutePolicy::Open, |t| t.settings().route_policy());
        let shared = Arc::new(Shared {
            repo: Arc::new(Repo::new(root.as_ref().clone(), reports).with_uploads(uploads)),
            policy,
            // No hyper timer: the header timeout is enforced per connection by
            // `conn::supervise`, which (unlike hyper's HTTP/1-only `header_read_timeout`) also
            // covers the TLS handshake, the protocol preface and HTTP/2.
            builder: auto::Builder::new(TokioExecutor::new()),
            header_timeout,
            tls: tls.clone(),
        });
        // Tells connections still in their TLS handshake that the server is stopping (they are
        // not hyper connections yet, so the graceful-shutdown signal cannot reach them).
        let (stopping_tx, stopping_rx) = watch::channel(false);
        let crl_watch = tls.as_ref().and_then(spawn_crl_watch);
        let graceful = GracefulShutdown::new();
        let registry = Arc::new(Registry::default());
        let slots = Arc::new(Semaphore::new(max_connections));
        let mut accept_errors = RateLimited::new(LOG_INTERVAL);
        let mut at_limit = RateLimited::new(LOG_INTERVAL);
        let mut backoff = MIN_BACKOFF;
        warn_if_fds_short(max_connections);
        tokio::pin!(shutdown);
        tracing::info!(
            addr = %local_addr,
            repo = %root.display(),
            max_connections,
            header_timeout = ?header_timeout,
            tls = tls.is_some(),
            client_auth = ?policy,
            "serving repository"
        );
        'accept: loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => {
                    backoff = MIN_BACKOFF;
                    a
                }
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!(error = %e, "accept: connection gone before it was accepted");
                    continue;
                }
                Err(e) => {
                    // Typically EMFILE/ENFILE. Closing an idle connection frees a descriptor;
                    // backing off (up to 1 s) avoids spinning, and the log is rate-limited so
                    // it cannot flood the disk while the condition lasts.
                    registry.evict_idle();
                    if let Some(suppressed) = accept_errors.ready() {
                        tracing::warn!(error = %e, suppressed, retry_in = ?backoff, "accept failed");
                    }
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            // Take a connection slot. At the limit, close an idle connection to make room; if
            // every connection is busy, wait without accepting more (the kernel's listen
            // backlog holds further clients meanwhile).
            let permit = match Arc::clone(&slots).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if let Some(suppressed) = at_limit.ready() {
                        tracing::warn!(
                            max_connections,
                            suppressed,
                            "connection limit reached; closing idle connections to make room"
                        );
                    }
                    loop {
                        registry.evict_idle();
                        tokio::select! {
                            biased;
                            () = &mut shutdown => break 'accept,
                            p = Arc::clone(&slots).acquire_owned() => match p {
                                Ok(p) => break p,
                                // Never closed; treated as a stop request to stay total.
                                Err(_) => break 'accept,
                            },
                            () = registry.idle_changed() => {}
                        }
                    }
                }
            };
            // Small metadata responses must not wait for Nagle's algorithm (~40 ms each).
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "TCP_NODELAY not set");
            }
            let registration = registry.register();
            tokio::spawn(serve_connection(
                Arc::clone(&shared),
                stream,
                peer,
                registration,
                permit,
                graceful.watcher(),
                stopping_rx.clone(),
            ));
        }
        drop(listener);
        let _ = stopping_tx.send(true);
        if let Some(task) = crl_watch {
            task.abort();
        }
        tracing::info!(
            connections = graceful.count(),
            "stopped accepting; waiting for in-flight requests"
        );
        match tokio::time::timeout(shutdown_timeout, graceful.shutdown()).await {
            Ok(()) => {
                tracing::info!("shutdown complete");
                ShutdownOutcome::Graceful
            }
            Err(_) => {
                tracing::warn!(timeout = ?shutdown_timeout, "grace period over; dropping remaining connections");
                ShutdownOutcome::TimedOut
            }
        }
    }
}

/// What every connection task needs.
struct Shared {
    repo: Arc<Repo>,
    policy: RoutePolicy,
    builder: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
    tls: Option<Arc<TlsState>>,
}

/// One accepted connection: the TLS handshake (if configured), then HTTP, both under the
/// header timeout and the connection limit's eviction.
async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    registration: Registration,
    permit: OwnedSemaphorePermit,
    watcher: Watcher,
    mut stopping: watch::Receiver<bool>,
) {
    let state = Arc::clone(registration.state());
    drive_connection(&shared, stream, peer, &state, watcher, &mut stopping).await;
    // Unregister before freeing the slot, so the next eviction sees this one gone.
    drop(registration);
    drop(permit);
}

/// The body of [`serve_connection`]; returning closes the connection.
async fn drive_connection(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    state: &Arc<ConnState>,
    watcher: Watcher,
    stopping: &mut watch::Receiver<bool>,
) {
    // Below TLS, so handshake bytes count as activity exactly like HTTP bytes do.
    let io = TrackedIo::new(stream, Arc::clone(state));
    match &shared.tls {
        None => serve_http(shared, TokioIo::new(io), peer, None, state, watcher).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            // The handshake is supervised like a request head: a client that connects and
            // never finishes it is closed after the header timeout, and it can be evicted.
            let handshake = conn::supervise(acceptor.accept(io), state, shared.header_timeout);
            let ended = tokio::select! {
                ended = handshake => ended,
                _ = stopping.wait_for(|s| *s) => {
                    tracing::debug!(%peer, "server stopping; closed a connection during its TLS handshake");
                    return;
                }
            };
            match ended {
                Ended::Finished(Ok(stream)) => {
                    let device = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| Arc::new(DeviceIdentity::from_leaf_der(leaf.as_ref())));
                    if let Some(d) = &device {
                        tracing::debug!(
                            %peer,
                            device_cn = d.common_name.as_deref(),
                            device_sans = %d.subject_alt_names_text(),
                            device_sha256 = %d.sha256_hex(),
                            "verified device certificate"
                        );
                    }
                    serve_http(shared, TokioIo::new(stream), peer, device, state, watcher).await;
                }
                Ended::Finished(Err(e)) => tls::log_handshake_failure(peer, &e),
                Ended::TimedOut => {
                    tracing::debug!(%peer, timeout = ?shared.header_timeout, "closed connection: TLS handshake not completed in time");
                }
                Ended::Evicted => {
                    tracing::debug!(%peer, "closed a connection in its TLS handshake to make room at the connection limit");
                }
            }
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on an established connection (plain or TLS).
async fn serve_http<I>(
    shared: &Shared,
    io: I,
    peer: SocketAddr,
    device: Option<Arc<DeviceIdentity>>,
    state: &Arc<ConnState>,
    watcher: Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn_state = Arc::clone(state);
    let repo = Arc::clone(&shared.repo);
    let policy = shared.policy;
    let service = service_fn(move |mut req| {
        let guard = conn_state.begin_request();
        let repo = Arc::clone(&repo);
        if let Some(d) = &device {
            req.extensions_mut().insert(Arc::clone(d));
        }
        async move {
            let resp = handler::handle(&repo, policy, peer, req).await;
            Ok::<_, Infallible>(resp.map(|body| TrackedBody::new(body, guard)))
        }
    });
    let conn = shared.builder.serve_connection(io, service).into_owned();
    let conn = watcher.watch(conn);
    match conn::supervise(conn, state, shared.header_timeout).await {
        Ended::Finished(Ok(())) => {}
        Ended::Finished(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended with error");
        }
        Ended::TimedOut => {
            tracing::debug!(%peer, timeout = ?shared.header_timeout, "closed idle connection: no request head in time");
        }
        Ended::Evicted => {
            tracing::debug!(%peer, "closed idle connection to make room at the connection limit");
        }
    }
}

/// Re-reads the CRL files when they change, so a revocation takes effect without a restart or
/// SIGHUP. `None` when there are no CRL files to watch.
fn spawn_crl_watch(tls: &Arc<TlsState>) -> Option<JoinHandle<()>> {
    let has_crls = tls
        .settings()
        .client_auth
        .as_ref()
        .is_some_and(|c| !c.crls.is_empty());
    if !has_crls {
        return None;
    }
    let tls = Arc::clone(tls);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(tls::CRL_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let tls = Arc::clone(&tls);
            // stat() and, on a change, reading and parsing the CRL: blocking file work.
            let _ = tokio::task::spawn_blocking(move || tls.reload_crls_if_changed()).await;
        }
    }))
}

/// Pending connections the kernel queues for us (capped by `net.core.somaxconn`). Larger than
/// the usual 128 so that a burst, or the pause while an idle connection is closed at the
/// connection limit, does not make the kernel drop SYNs (clients would retry only after 1 s).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds like `TcpListener::bind` (with `SO_REUSEADDR`, so a restart need not wait for
/// TIME_WAIT), but with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// First pause after a failed `accept`; doubled on each further failure.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause after a failed `accept`.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning of each kind per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Errors that concern only the one connection being accepted (it was reset before we got to
/// it); the listener itself is fine, so accept again right away.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Warns at startup when the open-file limit cannot carry `max_connections` connections (so
/// `accept` or file opens would fail with EMFILE before the limit is reached).
fn warn_if_fds_short(max_connections: usize) {
    let Some(soft) = config::nofile_soft_limit() else {
        return;
    };
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(config::FD_RESERVE);
    if soft < needed {
        tracing::warn!(
            max_connections,
            nofile_soft_limit = soft,
            "the open-file limit is below 2 x max_connections + {}; raise ulimit -n or lower --max-connections",
            config::FD_RESERVE
        );
    }
}

/// Lets a repeating warning through at most once per interval and counts what it held back.
struct RateLimited {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    fn new(interval: Duration) -> Self {
        RateLimited {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(number suppressed since the last one)` if this occurrence should be logged.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A server running on a background task, as started by [`serve`].
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    reload: Option<ReloadHandle>,
    task: JoinHandle<ShutdownOutcome>,
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reloads the TLS files on demand; `None` without TLS.
    pub fn reload_handle(&self) -> Option<ReloadHandle> {
        self.reload.clone()
    }

    /// Waits until the server has shut down (after the shutdown future completed).
    pub async fn wait(self) -> ShutdownOutcome {
        // The task only ends by returning; a panic inside it would be a bug, reported as a timeout.
        self.task.await.unwrap_or(ShutdownOutcome::TimedOut)
    }
}

/// Binds and starts serving on a spawned task; returns once the socket is listening.
pub async fn serve<F>(config: Config, shutdown: F) -> Result<RunningServer, ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let server = Server::bind(config).await?;
    let local_addr = server.local_addr();
    let reload = server.reload_handle();
    let task = tokio::spawn(server.run(shutdown));
    Ok(RunningServer {
        local_addr,
        reload,
        task,
    })
}
