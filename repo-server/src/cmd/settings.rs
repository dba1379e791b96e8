//! The serving settings: command-line flags over the `--config` file over the defaults.
use std::net::SocketAddr;
use std::path::PathBuf;

use ota_repo_server::config_file::FileConfig;
use ota_repo_server::logging::LogFormat;
use ota_repo_server::ReportSettings;

use crate::ServeArgs;

/// Every serving setting, resolved.
#[derive(Debug)]
pub struct Settings {
    pub repo: PathBuf,
    pub listen: SocketAddr,
    pub shutdown_timeout: u64,
    pub header_timeout: u64,
    pub max_connections: Option<u32>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    /// CRLs for the TLS layer (`--client-ca`).
    pub crl: Vec<PathBuf>,
    pub open_metadata: bool,
    pub online_keys: Option<PathBuf>,
    pub reports: Option<ReportSettings>,
    pub publish_token_file: Option<PathBuf>,
    pub max_upload_size: u64,
    pub json: bool,
    pub log_format: LogFormat,
    pub verbose: u8,
}

/// A usage problem: the message and a hint.
pub type Usage = (String, String);

impl Settings {
    /// Merge the flags over the configuration file (if any) over the defaults.
    pub fn resolve(a: ServeArgs) -> Result<Settings, Usage> {
        let file = match &a.config {
            Some(path) => FileConfig::load(path).map_err(|e| {
                (
                    e.to_string(),
                    "keys are the long flag names without dashes in front (e.g. tls-cert = \"server.pem\"); see ota-server --help".to_string(),
                )
            })?,
            None => FileConfig::default(),
        };
        let repo = a.repo.or(file.repo).ok_or_else(|| {
            (
                "no repository: give --repo DIR (or repo = \"DIR\" in --config)".to_string(),
                "the directory that contains metadata/ and targets/".to_string(),
            )
        })?;
        let log_format = match (a.log_format, file.log_format.as_deref()) {
            (Some(f), _) => f,
            (None, None | Some("text")) => LogFormat::Text,
            (None, Some("json")) => LogFormat::Json,
            (None, Some(other)) => {
                return Err((
                    format!(
                        "configuration file: log-format {other:?} is neither \"text\" nor \"json\""
                    ),
                    "use log-format = \"text\" or \"json\"".into(),
                ))
            }
        };
        let client_ca = a.client_ca.or(file.client_ca);
        let report_ca = a.report_ca.or(file.report_ca);
        let crl = if a.crl.is_empty() {
            file.crl.unwrap_or_default()
        } else {
            a.crl
        };
        let database = a.database.or(file.database);
        let reports = match (&client_ca, &report_ca) {
            (None, None) => {
                if database.is_some() {
                    return Err((
                        "--database needs --client-ca or --report-ca".into(),
                        "reports are verified against the device CA; give the CA that issues device certificates".into(),
                    ));
                }
                None
            }
            _ => Some(ReportSettings {
                database: database.unwrap_or_else(|| crate::cmd::devices::default_database(&repo)),
                report_ca: report_ca.clone(),
                crls: if report_ca.is_some() {
                    crl.clone()
                } else {
                    Vec::new()
                },
            }),
        };
        // Without --client-ca the CRLs only serve --report-ca.
        let tls_crl = if client_ca.is_some() {
            crl
        } else if report_ca.is_some() {
            Vec::new()
        } else {
            crl
        };
        let file_max = file.max_connections;
        if file_max == Some(0) {
            return Err((
                "configuration file: max-connections must be at least 1".into(),
                "remove it for the default".into(),
            ));
        }
        if file.header_timeout == Some(0) {
            return Err((
                "configuration file: header-timeout must be at least 1".into(),
                "remove it for the default (10 s)".into(),
            ));
        }
        Ok(Settings {
            repo,
            listen: a
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            shutdown_timeout: a.shutdown_timeout.or(file.shutdown_timeout).unwrap_or(10),
            header_timeout: a.header_timeout.or(file.header_timeout).unwrap_or(10),
            max_connections: a.max_connections.or(file_max),
            tls_cert: a.tls_cert.or(file.tls_cert),
            tls_key: a.tls_key.or(file.tls_key),
            client_ca,
            crl: tls_crl,
            open_metadata: a.open_metadata || file.open_metadata.unwrap_or(false),
            online_keys: a.online_keys.or(file.online_keys),
            reports,
            max_upload_size: match (a.max_upload_size, &file.max_upload_size) {
                (Some(n), _) => n,
                (None, Some(text)) => ota_repo_server::upload::parse_size(text).map_err(|e| {
                    (
                        format!("configuration file: max-upload-size {text:?}: {e}"),
                        "give a size such as \"4G\" or \"512M\"".to_string(),
                    )
                })?,
                (None, None) => ota_repo_server::upload::DEFAULT_MAX_UPLOAD_SIZE,
            },
            publish_token_file: a.publish_token_file.or(file.publish_token_file),
            json: a.json,
            log_format,
            verbose: a.verbose,
        })
    }
}
