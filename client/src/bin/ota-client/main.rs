//! `ota-client`: the device CLI. See `ota-client --help`; the work is done by
//! `ota_client::device`.
use clap::Parser;
use std::process::ExitCode;

mod check;
mod enroll;
mod failure;
mod hints;
mod init;
mod keygen;
mod keys;
mod mark_good;
mod progress;
mod reenroll;
mod report;
mod simulate_boot;
mod status;
mod update;

use failure::Failure;

/// The exit code table, documented in every `--help` and in client/README.md.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    success (check: an update is available; update: it was installed, or written to
       the inactive slot and a reboot is needed)
  100  nothing to do: up to date, or a trial boot is pending (update)
  2    usage, configuration or state directory problem
  3    network error or server unreachable
  4    verification refused (signatures, rollback, expiry, hashes, decryption)
  5    local install I/O failure"
    };
}
pub(crate) use exit_codes;

/// Exit code when there is nothing to do.
pub const UP_TO_DATE: u8 = 100;

/// OTA device client: verified (TUF) firmware updates with optional decryption.
#[derive(Debug, Parser)]
#[command(name = "ota-client", version, after_help = concat!(
    "Examples:\n",
    "  ota-client init --state /var/lib/ota --root root.json --server https://updates.example.com --hardware board-a\n",
    "  ota-client check --state /var/lib/ota\n",
    "  ota-client update --state /var/lib/ota --install-to /data/firmware.img\n",
    "  ota-client update --state /var/lib/ota     # A/B: write the inactive slot, reboot, then:\n",
    "  ota-client mark-good --state /var/lib/ota  # from the health check after boot\n",
    "  ota-client keygen --state /var/lib/ota    # encrypted releases: give the otapub1... key to the release owner\n",
    "  ota-client keys import-group --state /var/lib/ota --name board-a group-board-a.otasec\n",
    "  ota-client enroll --state /var/lib/ota --name gw-0042   # mutual TLS: key + CSR for the fleet CA\n",
    "  ota-client enroll --state /var/lib/ota --cert gw-0042.pem\n",
    "  ota-client reenroll --state /var/lib/ota                # new owner: new identity and keys\n",
    "  ota-client report --state /var/lib/ota                  # signed status report to the service\n\n",
    exit_codes!()
))]
struct Cli {
    /// More logging on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a device state directory: configuration and trusted root.
    Init(Box<init::Args>),
    /// Refresh metadata and show the update for this device, if any.
    Check(check::Args),
    /// Download, verify, decrypt, decompress and install the update.
    Update(update::Args),
    /// Commit the running slot after a good boot (A/B devices).
    MarkGood(mark_good::Args),
    /// Apply the boot loader's slot rule to the boot environment, as a reboot would (A/B
    /// development and tests).
    SimulateBoot(simulate_boot::Args),
    /// Create this device's decryption key pair.
    Keygen(keygen::Args),
    /// Import group secret keys and list the decryption keys held.
    Keys(keys::Args),
    /// Show the installed version, trusted root version and server.
    Status(status::Args),
    /// Post the signed status report (versions, update state, trust expiry) to the service.
    Report(report::Args),
    /// Make the TLS identity key and signing request, or install the issued certificate.
    Enroll(enroll::Args),
    /// New owner: destroy the identity, device and group keys; make new identity and device keys.
    Reenroll(reenroll::Args),
}

impl Command {
    /// Whether the command was asked for JSON output (errors are then JSON too).
    fn json(&self) -> bool {
        match self {
            Command::Init(a) => a.json,
            Command::Check(a) => a.json,
            Command::Update(a) => a.json,
            Command::MarkGood(a) => a.json,
            Command::SimulateBoot(a) => a.json,
            Command::Keygen(a) => a.json,
            Command::Keys(a) => match &a.command {
                keys::KeysCommand::ImportGroup(a) => a.json,
                keys::KeysCommand::List(a) => a.json,
            },
            Command::Status(a) => a.json,
            Command::Report(a) => a.json,
            Command::Enroll(a) => a.json,
            Command::Reenroll(a) => a.json,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A refused command line; JSON too when `--json` was given.
        Err(e) => return ExitCode::from(ota_cli::report::clap_failure(&e, "ota-client", "usage")),
    };
    // -v wins over RUST_LOG; without either, only warnings. Colour only on a terminal.
    ota_cli::logging::init(cli.verbose, "warn");
    let json = cli.command.json();
    let result = match cli.command {
        Command::Init(a) => init::run(*a),
        Command::Check(a) => check::run(a),
        Command::Update(a) => update::run(a),
        Command::MarkGood(a) => mark_good::run(a),
        Command::SimulateBoot(a) => simulate_boot::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Keys(a) => keys::run(a),
        Command::Status(a) => status::run(a),
        Command::Report(a) => report::run(a),
        Command::Enroll(a) => enroll::run(a),
        Command::Reenroll(a) => reenroll::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            eprintln!("hint: {}", f.hint);
            if json {
                // Scripts parse stdout: every outcome of a --json command is JSON there.
                ota_cli::report::print_error_json(f.kind, &f.message, &f.hint, f.code);
            }
            ExitCode::from(f.code)
        }
    }
}

/// Print `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

#[cfg(test)]
mod tests {

    #[test]
    fn exit_code_table_is_in_help() {
        use clap::CommandFactory;
        let help = super::Cli::command().render_long_help().to_string();
        assert!(help.contains(exit_codes!()), "{help}");
        for sub in [
            "init",
            "check",
            "update",
            "mark-good",
            "simulate-boot",
            "keygen",
            "status",
            "keys",
            "keys import-group",
            "keys list",
            "enroll",
            "reenroll",
        ] {
            let mut cmd = super::Cli::command();
            let mut found = &mut cmd;
            for part in sub.split(' ') {
                found = found.find_subcommand_mut(part).unwrap();
            }
            let help = found.render_long_help().to_string();
            assert!(
                help.contains("Examples:") && help.contains("Exit codes:"),
                "{sub}: {help}"
            );
        }
    }
}
