//! `tracing` subscriber setup for the binary: human-readable or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber. `verbose` 0 = info, 1 = debug, 2+ = trace; `RUST_LOG`
/// overrides it. Logs go to stderr so stdout carries only the startup line.
pub fn init(format: LogFormat, verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Dependencies stay at info unless asked for explicitly; their debug output is noise here.
        EnvFilter::new(format!("info,ota_repo_server={level},ota_server={level}"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Worker threads write their lines in batches; see `log_batch` (needs its runtime hooks).
        .with_writer(crate::log_batch::BatchedStderr)
        // Colour only on a terminal, never with NO_COLOR: log files get no escape codes.
        .with_ansi(ota_cli::logging::stderr_colour());
    // A second init (e.g. in tests) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
