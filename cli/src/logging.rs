//! Logs on stderr through `tracing`: colour (ANSI escape codes) only when stderr is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>), so log files and
//! pipes never receive escape codes.
use std::io::IsTerminal;

/// Whether logs and messages on stderr may be coloured: stderr is a terminal and `NO_COLOR`
/// is not set to a non-empty value.
pub fn stderr_colour() -> bool {
    colour_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// The rule itself, for testing: a terminal, and no non-empty `NO_COLOR`.
pub fn colour_allowed(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && !matches!(no_color, Some(v) if !v.is_empty())
}

/// The filter for `-v` counted `verbose` times: 0 keeps `RUST_LOG` or `default`, 1 is
/// `debug`, more is `trace`.
pub fn filter(verbose: u8, default: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        1 => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    }
}

/// Install the stderr logger for a command-line tool (`-v` counted `verbose` times; without
/// `-v`, `RUST_LOG` or `default` decides). Returns quietly if a logger is already installed.
pub fn init(verbose: u8, default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose, default))
        .with_writer(std::io::stderr)
        .with_ansi(stderr_colour())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_allowed(true, None));
        assert!(colour_allowed(true, Some(OsStr::new(""))));
        assert!(!colour_allowed(true, Some(OsStr::new("1"))));
        assert!(!colour_allowed(false, None));
    }
}
