//! The process-level shutdown trigger: SIGTERM (service managers, containers) or Ctrl-C.

/// Completes when SIGTERM or SIGINT arrives. If the SIGTERM handler cannot be installed, only
/// Ctrl-C is watched (and a warning logged) rather than failing startup.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot watch Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
            ctrl_c.await;
            tracing::info!("Ctrl-C received, shutting down");
        }
    }
}
