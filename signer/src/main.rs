//! `ota-sign`: see `ota-sign --help`. The work is done in the `ota_signer` library.
use clap::Parser;
use ota_signer::cmd::{report_error, run, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // -v wins over RUST_LOG; without either, only warnings.
    ota_cli::logging::init(cli.verbose, "warn");
    let json = cli.command.json();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => ExitCode::from(report_error(&e, json)),
    }
}

/// A command line clap refuses (or `--help`/`--version`). When the words include `--json`, a
/// script is reading stdout: it gets the JSON error object (kind `input`, exit 2) too.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = e.exit_code();
    let wants_json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if code != 0 && wants_json {
        // clap's message: the lines before the usage, as one line.
        let detail = e.render().to_string();
        let message = detail
            .lines()
            .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let message = match message.strip_prefix("error: ") {
            Some(m) => m.to_string(),
            None if message.is_empty() => "invalid command line".to_string(),
            None => message,
        };
        let hint = match e.kind() {
            ErrorKind::MissingRequiredArgument | ErrorKind::MissingSubcommand => {
                "see `ota-sign --help` and `ota-sign COMMAND --help` for the arguments"
            }
            _ => "see `ota-sign --help` and `ota-sign COMMAND --help`",
        };
        ota_cli::report::print_error_json("input", &message, hint, u8::try_from(code).unwrap_or(2));
    }
    // clap's own rendering (usage, help or version) on its usual stream.
    let _ = e.print();
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}
