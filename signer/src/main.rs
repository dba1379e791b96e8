//! `ota-sign`: see `ota-sign --help`. The work is done in the `ota_signer` library.
use clap::Parser;
use ota_signer::cmd::{run, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // -v wins over RUST_LOG; without either, only warnings.
    ota_cli::logging::init(cli.verbose, "warn");
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("hint: {}", e.hint());
            ExitCode::from(e.exit_code())
        }
    }
}
