//! `ota-server`: serve a TUF repository directory over HTTP.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ota_repo_server::logging::{self, LogFormat};
use ota_repo_server::shutdown::ShutdownSignals;
use ota_repo_server::{Config, RepoError, ServeError, Server, ShutdownOutcome};

const AFTER_HELP: &str = "\
Example:
  ota-server --repo ./repo --listen 127.0.0.1:8080
  curl -s http://127.0.0.1:8080/metadata/timestamp.json

URL layout:
  /metadata/<file>   -> REPO/metadata/<file>   (e.g. 1.root.json, timestamp.json, 5.targets.json)
  /targets/<path>    -> REPO/targets/<path>    (e.g. <sha256>.firmware.bin)
  Percent-encoding is decoded once: /metadata/4.role%252Fname.json serves the file 4.role%2Fname.json.

On startup one line 'listening on http://ADDR' (or a JSON object with --json) is printed to stdout;
logs go to stderr. SIGTERM or Ctrl-C stops accepting and lets in-flight requests finish.

Exit codes:
  0  stopped after SIGTERM / Ctrl-C (also if --shutdown-timeout expired; logged as a warning)
  1  unexpected runtime error
  2  usage error, or the repository directory is missing / has no metadata/
  3  the listen address cannot be bound (already in use, not local, no permission)";

/// Serve a TUF repository (metadata and targets) read-only over HTTP.
#[derive(Debug, Parser)]
#[command(name = "ota-server", version, after_help = AFTER_HELP)]
struct Cli {
    /// Repository directory containing metadata/ and targets/.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Address to listen on; port 0 picks a free port (see the startup line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seconds in-flight requests get to finish after SIGTERM / Ctrl-C.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    shutdown_timeout: u64,
    /// Print the startup line as JSON: {"listening":"http://ADDR","addr":"ADDR","repo":"DIR"}.
    #[arg(long)]
    json: bool,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let signals = ShutdownSignals::install();
    let mut config = Config::new(&cli.repo, cli.listen);
    config.shutdown_timeout = Duration::from_secs(cli.shutdown_timeout);
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            let (code, hint) = describe(&e);
            eprintln!("error: {e} (hint: {hint})");
            return ExitCode::from(code);
        }
    };
    let addr = server.local_addr();
    let line = if cli.json {
        serde_json::json!({
            "listening": format!("http://{addr}"),
            "addr": addr.to_string(),
            "repo": cli.repo.display().to_string(),
        })
        .to_string()
    } else {
        format!("listening on http://{addr}")
    };
    let mut stdout = std::io::stdout().lock();
    // Tests and scripts read this line to find the port; a closed stdout must not stop serving.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    drop(stdout);
    match server.run(signals.recv()).await {
        ShutdownOutcome::Graceful | ShutdownOutcome::TimedOut => ExitCode::SUCCESS,
    }
}

/// Exit code and a hint for each startup failure.
fn describe(e: &ServeError) -> (u8, &'static str) {
    match e {
        ServeError::Repo(RepoError::Missing(_) | RepoError::NotADirectory(_)) => {
            (2, "pass --repo the repository directory that contains metadata/")
        }
        ServeError::Repo(RepoError::NoMetadata(_)) => (
            2,
            "a TUF repository needs DIR/metadata/ with at least root.json; did you point at its parent?",
        ),
        ServeError::Repo(RepoError::Io { .. }) => (2, "check the directory's permissions"),
        ServeError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => (
            3,
            "another process listens there; stop it or choose another --listen port (0 = any free port)",
        ),
        ServeError::Bind { .. } => (
            3,
            "use an address of this machine and a port you may bind (e.g. 127.0.0.1:8080)",
        ),
    }
}
