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

/// A command line clap refuses (or `--help`/`--version`); JSON too when `--json` was given.
fn usage_error(e: clap::Error) -> ExitCode {
    ExitCode::from(ota_cli::report::clap_failure(&e, "ota-sign", "input"))
}
