//! The process-level shutdown trigger: SIGTERM (service managers, containers) or SIGINT (Ctrl-C).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Installed SIGTERM/SIGINT handlers.
///
/// Install them *before* announcing readiness: a signal that arrives between the announcement
/// and installation would otherwise kill the process with the default action instead of
/// shutting it down gracefully.
#[derive(Debug)]
pub struct ShutdownSignals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl ShutdownSignals {
    /// Installs the handlers; must run inside a Tokio runtime. A handler that cannot be installed
    /// is logged and skipped rather than failing startup.
    pub fn install() -> Self {
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch {name}");
                None
            }
        };
        ShutdownSignals {
            term: install(SignalKind::terminate(), "SIGTERM"),
            int: install(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Completes when either signal arrives.
    pub async fn recv(mut self) {
        async fn next(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.term) => tracing::info!("SIGTERM received, shutting down"),
            () = next(&mut self.int) => tracing::info!("SIGINT received, shutting down"),
        }
    }
}

/// Installs the handlers now and completes when SIGTERM or SIGINT arrives.
pub async fn signal_received() {
    ShutdownSignals::install().recv().await;
}
