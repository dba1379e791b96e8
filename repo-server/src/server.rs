//! Listening socket, connection loop and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{check_repo, Config, RepoError};
use crate::handler;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The repository directory is missing or malformed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
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
}

impl Server {
    /// Validates the repository directory and binds the listen address.
    pub async fn bind(config: Config) -> Result<Self, ServeError> {
        let root = check_repo(&config.repo)?;
        let bind_err = |source| ServeError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Server {
            listener,
            root: Arc::new(root),
            local_addr,
            shutdown_timeout: config.shutdown_timeout,
        })
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
        } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A timer enables hyper's header-read timeout, so idle half-open clients cannot pin
        // connections forever.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        tracing::info!(addr = %local_addr, repo = %root.display(), "serving repository");
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Typically EMFILE: back off briefly instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    // Small metadata responses must not wait for Nagle's algorithm (~40 ms each).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "TCP_NODELAY not set");
                    }
                    let root = Arc::clone(&root);
                    let service = service_fn(move |req| {
                        let root = Arc::clone(&root);
                        async move { Ok::<_, Infallible>(handler::handle(&root, peer, req).await) }
                    });
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "connection ended with error");
                        }
                    });
                }
            }
        }
        drop(listener);
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

/// A server running on a background task, as started by [`serve`].
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    task: JoinHandle<ShutdownOutcome>,
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
    let task = tokio::spawn(server.run(shutdown));
    Ok(RunningServer { local_addr, task })
}
