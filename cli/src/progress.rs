//! Progress bars on stderr, hidden when stderr is not a terminal (logs, CI, pipes), so
//! nothing but the bar's owner ever sees them.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn styled(len: Option<u64>, template: &str, msg: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, target());
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(msg.to_string());
    bar
}

/// A byte-counting bar of `len` bytes labelled `msg`.
pub fn bytes_bar(len: u64, msg: &str) -> ProgressBar {
    styled(
        Some(len),
        "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        msg,
    )
}

/// A counting bar of `len` items labelled `msg`.
pub fn count_bar(len: u64, msg: &str) -> ProgressBar {
    styled(
        Some(len),
        "{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        msg,
    )
}

/// A spinner labelled `msg` for work of unknown length (ticks on its own).
pub fn spinner(msg: &str) -> ProgressBar {
    let bar = styled(None, "{spinner} {msg} {elapsed}", msg);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
