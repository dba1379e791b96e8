//! `ota-server`: serve a TUF repository directory over HTTP.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

mod cmd;
use ota_repo_server::log_batch;
use ota_repo_server::logging::{self, LogFormat};
use ota_repo_server::shutdown::ShutdownSignals;
use ota_repo_server::{
    Config, ReloadHandle, RepoError, ServeError, Server, ShutdownOutcome, TlsSettings,
    UploadSettings,
};
use tokio::signal::unix::{signal, Signal, SignalKind};

const AFTER_HELP: &str = "\
Example:
  ota-server --repo ./repo --listen 127.0.0.1:8080
  curl -s http://127.0.0.1:8080/metadata/timestamp.json
  ota-server --repo ./repo --listen 0.0.0.0:8080 --max-connections 2000 --header-timeout 5

Online roles (the repository never expires while left alone):
  ota-server --repo ./repo --online-keys ./keys-online   # snapshot + timestamp keys only

Publishing by upload (the release machine need not share the repository directory):
  head -c 32 /dev/urandom | base64 > publish.token; chmod 600 publish.token
  ota-server --repo ./repo --online-keys ./keys-online --publish-token-file publish.token \
             --max-upload-size 8GiB --tls-cert server.pem --tls-key server.key
  ota-sign publish --repo ./release-repo --to https://repo.example:8443 --token-file publish.token \
             --cacert ca.pem                # on the release machine
  The server verifies each release against its root and published versions and publishes it
  with a new snapshot and timestamp, or refuses it (the reason goes back to ota-sign).

Device status reports (POST /api/v1/reports, signed by each device's identity key):
  ota-server --repo ./repo ... --client-ca devices-ca.pem      # stored in ./repo.fleet.sqlite
  ota-server --repo ./repo --report-ca devices-ca.pem --crl revoked.crl.pem \
             --database postgres://ota:secret@db.internal/fleet   # behind a TLS proxy, PostgreSQL
  ota-server devices --repo ./repo --expiring-within 30 --silent-for 7 --json

Configuration file (TOML, keys named like the flags; flags given on the command line win):
  ota-server --config /etc/ota/ota-server.toml
  ota-server --config /etc/ota/ota-server.toml --listen 127.0.0.1:9000

HTTPS and mutual TLS:
  ota-server --repo ./repo --listen 0.0.0.0:8443 --tls-cert server.pem --tls-key server.key
  curl --cacert ca.pem https://repo.example:8443/metadata/timestamp.json
  ota-server --repo ./repo --listen 0.0.0.0:8443 --tls-cert server.pem --tls-key server.key \\
             --client-ca devices-ca.pem --crl revoked.crl.pem --open-metadata
  curl --cacert ca.pem --cert device.pem --key device.key https://repo.example:8443/targets/x
  kill -HUP $(pidof ota-server)     # re-read certificate, key, client CA and CRLs

  TLS 1.2 and 1.3 only; ALPN h2 and http/1.1. With --client-ca every path needs a device
  certificate issued by that CA (not expired, not revoked by a --crl); --open-metadata leaves
  /metadata/ open to clients without one (they get 403 elsewhere). A presented certificate that
  fails verification always fails the handshake. SIGHUP reloads all TLS files; a reload that
  fails is logged and the previous certificates stay. --crl files are also re-read within a few
  seconds of changing. Established connections keep their session.

URL layout:
  /metadata/<file>   -> REPO/metadata/<file>   (e.g. 1.root.json, timestamp.json, 5.targets.json)
  /healthz           -> 200 while timestamp.json is unexpired, else 503 saying why
  /metrics           -> Prometheus metrics: requests, bytes, errors by route and status, time
                        left until each role expires, reports received, resident memory
  /api/v1/reports    -> POST a device status report (with --client-ca or --report-ca)
  /targets/<path>    -> REPO/targets/<path>    (e.g. <sha256>.firmware.bin)
  /api/v1/uploads    -> the upload API of ota-sign publish --to (with --publish-token-file; its own
                        Bearer token, no device certificate needed); staged in REPO/.uploads, never served
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
  2    usage error (unknown flag, bad value, inconsistent TLS flags), a configuration file
       that cannot be read or has an unknown key or a wrong value, a report database that
       cannot be opened (unreachable, locked, corrupt, newer schema), --online-keys holding a
       root or targets key (or keys root does not authorise), --publish-token-file without
       --online-keys or with a token file that is unreadable or holds under 16 characters,
       REPO/.uploads that cannot be created, the repository directory
       is missing, not a directory, unreadable or has no metadata/, or a TLS file is unusable
       (not PEM, no certificate, key not matching the certificate, expired server certificate,
       no usable CA certificate, CRL that does not parse or is not from a --client-ca)
  3    the listen address cannot be bound (already in use, not local, no permission)
  101  internal error (a panic; a bug, please report it)

  Example: ota-server --repo /nonexistent; echo $?   # prints the error and hint, then 2";

/// Serve a TUF repository (metadata and targets) over HTTP or HTTPS, take device status
/// reports, and list the devices that reported.
#[derive(Debug, Parser)]
#[command(name = "ota-server", version, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List the devices that reported, flagging expiring trust or certificates and silence.
    Devices(cmd::devices::Args),
}

/// The serving flags (the default command).
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file with any of the settings below (keys named like the flags).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Repository directory containing metadata/ and targets/ (required here or in --config).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (see the startup line) [default:
    /// 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after SIGTERM / Ctrl-C [default: 10].
    #[arg(long, value_name = "SECS")]
    shutdown_timeout: Option<u64>,
    /// Seconds a connection with no request in progress may take to deliver a complete request
    /// head (after connecting or after its previous response) before it is closed [default: 10].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: Option<u64>,
    /// Most connections served at once [default: half of (open-file soft limit - 64), at most
    /// 10000; 480 for ulimit -n 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Serve HTTPS with this PEM certificate (then any intermediates). Needs --tls-key.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1; not encrypted).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: require device certificates issued by a CA in this PEM bundle.
    #[arg(long, value_name = "PEM")]
    client_ca: Option<PathBuf>,
    /// PEM file of CRLs revoking device certificates (repeatable; re-read when it changes).
    #[arg(long, value_name = "PEM")]
    crl: Vec<PathBuf>,
    /// With --client-ca: serve /metadata/ to clients without a certificate too (403 elsewhere).
    #[arg(long)]
    open_metadata: bool,
    /// Directory with the snapshot and timestamp keys only (`ota-sign init --online-roles`):
    /// re-sign them before they expire and publish targets versions signed offline.
    #[arg(long, value_name = "DIR")]
    online_keys: Option<PathBuf>,
    /// Verify the certificates that status reports carry against this device CA (PEM), for a
    /// server behind a TLS-terminating proxy; --crl files apply. Default: --client-ca.
    #[arg(long, value_name = "PEM")]
    report_ca: Option<PathBuf>,
    /// Where status reports are stored: a SQLite file or postgres://USER:PASSWORD@HOST/DB
    /// [default with --client-ca or --report-ca: REPO.fleet.sqlite beside the repository].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Print the startup line as JSON: {"listening":"http://ADDR","addr":"ADDR","repo":"DIR"}
    /// (https:// with TLS).
    #[arg(long)]
    json: bool,
    /// Log line format on stderr [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Take releases uploaded by `ota-sign publish --to` (/api/v1/uploads), from clients
    /// presenting the token in this file (one line, at least 16 characters). Needs
    /// --online-keys: the server signs the snapshot and timestamp of what it accepts.
    #[arg(long, value_name = "FILE")]
    publish_token_file: Option<PathBuf>,
    /// Most bytes one upload may hold, all its files together (suffix K, M, G or T: powers of
    /// 1024) [default: 4GiB].
    #[arg(long, value_name = "SIZE", value_parser = ota_repo_server::upload::parse_size)]
    max_upload_size: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::Devices(a)) = cli.command {
        return cmd::devices::run(a);
    }
    let cli = match cmd::settings::Settings::resolve(cli.serve) {
        Ok(s) => s,
        Err((message, hint)) => {
            eprintln!("error: {message} (hint: {hint})");
            return ExitCode::from(2);
        }
    };
    if cli.publish_token_file.is_some() && cli.online_keys.is_none() {
        eprintln!(
            "error: --publish-token-file needs --online-keys (hint: the server signs a new snapshot and timestamp for each release it accepts; give it the directory `ota-sign init --online-roles` wrote with the snapshot and timestamp keys)"
        );
        return ExitCode::from(2);
    }
    logging::init(cli.log_format, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Log lines are batched per worker and written when it runs out of work.
        .on_thread_park(log_batch::on_park)
        .on_thread_stop(log_batch::on_stop)
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

async fn run(cli: cmd::settings::Settings) -> ExitCode {
    let tls = match TlsSettings::from_flags(
        cli.tls_cert.clone(),
        cli.tls_key.clone(),
        cli.client_ca.clone(),
        cli.crl.clone(),
        cli.open_metadata,
    ) {
        Ok(t) => t,
        Err(e) => return fail(&ServeError::Tls(e)),
    };
    let signals = ShutdownSignals::install();
    // Installed before the startup line, like the shutdown signals: a SIGHUP right after it
    // must reload, not kill the process (SIGHUP's default action). Plain HTTP leaves SIGHUP
    // alone, as before.
    let hangup = if tls.is_some() {
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; TLS files will not be reloaded on it");
                None
            }
        }
    } else {
        None
    };
    // Before binding: a key directory with offline keys must never start serving.
    let online = match &cli.online_keys {
        None => None,
        Some(dir) => match ota_repo_server::online::load(dir, &cli.repo) {
            Ok(s) => Some(std::sync::Arc::new(s)),
            Err(e) => {
                eprintln!(
                    "error: --online-keys {}: {e} (hint: give the server only the directory `ota-sign init --online-roles` wrote for snapshot and timestamp keys)",
                    dir.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut config = Config::new(&cli.repo, cli.listen);
    config.tls = tls;
    config.shutdown_timeout = Duration::from_secs(cli.shutdown_timeout);
    config.header_timeout = Duration::from_secs(cli.header_timeout);
    config.reports = cli.reports.clone();
    if let (Some(file), Some(signer)) = (&cli.publish_token_file, &online) {
        match UploadSettings::from_token_file(file, cli.max_upload_size, signer.clone()) {
            Ok(s) => config.upload = Some(s),
            Err(e) => {
                eprintln!(
                    "error: --publish-token-file {}: {e} (hint: write one line of at least {} random characters, e.g. `head -c 32 /dev/urandom | base64 > {}`, mode 600)",
                    file.display(),
                    ota_repo_server::upload::MIN_TOKEN_LEN,
                    file.display()
                );
                return ExitCode::from(2);
            }
        }
        if config.tls.is_none() {
            tracing::warn!("uploads over plain HTTP: the publish token crosses the network in clear text; serve HTTPS (--tls-cert, --tls-key)");
        }
    }
    if let Some(n) = cli.max_connections {
        // u32 always fits in usize on the 32- and 64-bit targets this runs on.
        config.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if let Some(signer) = online {
        if let Err(e) = ota_repo_server::online::spawn(signer, cli.repo.clone()) {
            eprintln!("error: cannot start the online signer: {e}");
            return ExitCode::from(1);
        }
    }
    if let (Some(hangup), Some(handle)) = (hangup, server.reload_handle()) {
        tokio::spawn(reload_on_sighup(hangup, handle));
    }
    let addr = server.local_addr();
    let scheme = if server.is_tls() { "https" } else { "http" };
    let line = if cli.json {
        serde_json::json!({
            "listening": format!("{scheme}://{addr}"),
            "addr": addr.to_string(),
            "repo": cli.repo.display().to_string(),
        })
        .to_string()
    } else {
        format!("listening on {scheme}://{addr}")
    };
    let mut stdout = std::io::stdout().lock();
    // Tests and scripts read this line to find the port; a closed stdout must not stop serving.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    drop(stdout);
    match server.run(signals.recv()).await {
        ShutdownOutcome::Graceful | ShutdownOutcome::TimedOut => ExitCode::SUCCESS,
    }
}

/// Prints the one-line startup error with its hint and returns its exit code.
fn fail(e: &ServeError) -> ExitCode {
    let (code, hint) = describe(e);
    eprintln!("error: {e} (hint: {hint})");
    ExitCode::from(code)
}

/// Reloads the TLS files on every SIGHUP. Failures are logged by the reload itself.
async fn reload_on_sighup(mut hangup: Signal, handle: ReloadHandle) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading TLS certificates");
        let handle = handle.clone();
        // Reading and parsing files blocks; keep it off the request-serving threads.
        let _ = tokio::task::spawn_blocking(move || handle.reload_for("SIGHUP")).await;
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
        ServeError::Tls(e) => (2, e.hint()),
        ServeError::ReportsWithoutCa => (
            2,
            "give --client-ca or --report-ca with the CA that issues device certificates",
        ),
        ServeError::ReportStore(_) => (
            2,
            "check --database: a SQLite file in a writable directory, or a reachable postgres:// server with the right credentials",
        ),
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
