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
  ota-server --repo ./repo --listen 0.0.0.0:8080 --max-connections 2000 --header-timeout 5

URL layout:
  /metadata/<file>   -> REPO/metadata/<file>   (e.g. 1.root.json, timestamp.json, 5.targets.json)
  /targets/<path>    -> REPO/targets/<path>    (e.g. <sha256>.firmware.bin)
  Percent-encoding is decoded once: /metadata/4.role%252Fname.json serves the file 4.role%2Fname.json.

On startup one line 'listening on http://ADDR' (or a JSON object with --json) is printed to stdout;
logs go to stderr. SIGTERM or Ctrl-C stops accepting and lets in-flight requests finish.

Connections: one with no request in progress is closed if no complete request head arrives within
--header-timeout (after connecting, or after its previous response). At --max-connections the
longest-idle connection without a request in progress is closed to make room (never-sent-a-byte
ones first); if all are busy, new clients wait in the listen backlog until one ends.

Exit codes:
  0    stopped after SIGTERM / Ctrl-C (also if --shutdown-timeout expired; logged as a warning);
       also --help and --version
  1    the async runtime could not be started (no threads or memory available)
  2    usage error (unknown flag, bad value), or the repository directory is missing, not a
       directory, unreadable or has no metadata/
  3    the listen address cannot be bound (already in use, not local, no permission)
  101  internal error (a panic; a bug, please report it)

  Example: ota-server --repo /nonexistent; echo $?   # prints the error and hint, then 2";

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
    /// Seconds a connection with no request in progress may take to deliver a complete request
    /// head (after connecting or after its previous response) before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Most connections served at once [default: half of (open-file soft limit - 64), at most
    /// 10000; 480 for ulimit -n 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
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
    config.header_timeout = Duration::from_secs(cli.header_timeout);
    if let Some(n) = cli.max_connections {
        // u32 always fits in usize on the 32- and 64-bit targets this runs on.
        config.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
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
