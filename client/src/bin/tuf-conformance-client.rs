//! Client under test for the TUF conformance suite (github:theupdateframework/tuf-conformance),
//! speaking its CLI protocol (CLIENT-CLI.md). Exit codes: 0 success, 1 any failure.
use clap::{Parser, Subcommand};
use ota_client::metadata_cache::MetadataCache;
use ota_client::{Updater, UpdaterConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    about = "TUF client driven by the tuf-conformance test suite",
    after_help = "Example:\n  tuf-conformance-client --metadata-dir /tmp/md \
--metadata-url http://127.0.0.1:8080/repo/metadata/ refresh"
)]
struct Cli {
    /// Directory of trusted metadata.
    #[arg(long, global = true)]
    metadata_dir: Option<PathBuf>,
    /// Base URL of the repository metadata.
    #[arg(long, global = true)]
    metadata_url: Option<String>,
    /// Target path to download (repeatable; processed in order).
    #[arg(long = "target-name", global = true)]
    target_names: Vec<String>,
    /// Directory for downloaded targets.
    #[arg(long, global = true)]
    target_dir: Option<PathBuf>,
    /// Base URL of the repository targets.
    #[arg(long, global = true)]
    target_base_url: Option<String>,
    /// More logging (repeatable).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store TRUSTED_ROOT as the trusted root (no network).
    Init {
        /// File holding the initial root.json.
        trusted_root: PathBuf,
    },
    /// Refresh the top-level metadata.
    Refresh,
    /// Refresh, then download each --target-name.
    Download,
}

fn required<T>(v: Option<T>, flag: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("{flag} is required"))
}

fn run(cli: Cli) -> Result<(), String> {
    let metadata_dir = required(cli.metadata_dir, "--metadata-dir")?;
    match cli.command {
        Command::Init { trusted_root } => {
            let bytes = std::fs::read(&trusted_root)
                .map_err(|e| format!("{}: {e}", trusted_root.display()))?;
            let cache = MetadataCache::open(&metadata_dir).map_err(|e| e.to_string())?;
            cache.store("root", &bytes).map_err(|e| e.to_string())
        }
        Command::Refresh => {
            let url = required(cli.metadata_url, "--metadata-url")?;
            let config =
                UpdaterConfig::http(&metadata_dir, &url, &url).map_err(|e| e.to_string())?;
            let mut updater = Updater::new(config).map_err(|e| e.to_string())?;
            updater.refresh().map_err(|e| e.to_string())
        }
        Command::Download => {
            let url = required(cli.metadata_url, "--metadata-url")?;
            let targets_url = required(cli.target_base_url, "--target-base-url")?;
            let target_dir = required(cli.target_dir, "--target-dir")?;
            let config = UpdaterConfig::http(&metadata_dir, &url, &targets_url)
                .map_err(|e| e.to_string())?;
            let mut updater = Updater::new(config).map_err(|e| e.to_string())?;
            updater.refresh().map_err(|e| e.to_string())?;
            for name in &cli.target_names {
                let target = updater
                    .get_target_info(name)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("target {name} not found"))?;
                let cached = updater
                    .find_cached_target(&target, &target_dir)
                    .map_err(|e| e.to_string())?;
                if cached.is_none() {
                    updater
                        .download_target(&target, &target_dir)
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ota_cli::logging::init(cli.verbose, "warn");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tuf-conformance-client: {e}");
            ExitCode::from(1)
        }
    }
}
