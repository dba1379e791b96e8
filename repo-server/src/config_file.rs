//! The TOML configuration file (`ota-server --config FILE`): the same settings as the
//! command-line flags, named like them (`tls-cert`, `max-connections`, ...); a flag given on
//! the command line wins over the file. An unknown key or a value of the wrong type is refused
//! with the file, line and key named, so a typo never silently falls back to a default.
//! Relative paths in the file are relative to the file's directory.
//!
//! ```toml
//! repo = "/srv/ota/repo"
//! listen = "0.0.0.0:8443"
//! tls-cert = "server.pem"
//! tls-key = "server.key"
//! client-ca = "devices-ca.pem"
//! crl = ["revoked.crl.pem"]
//! open-metadata = true
//! online-keys = "/etc/ota/online-keys"
//! database = "postgres://ota@db.internal/fleet"
//! ```
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Largest configuration file read.
pub const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// Every setting of the file; each may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// `--repo`.
    pub repo: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--shutdown-timeout` (seconds).
    pub shutdown_timeout: Option<u64>,
    /// `--header-timeout` (seconds).
    pub header_timeout: Option<u64>,
    /// `--max-connections`.
    pub max_connections: Option<u32>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--client-ca`.
    pub client_ca: Option<PathBuf>,
    /// `--crl` (a list).
    pub crl: Option<Vec<PathBuf>>,
    /// `--open-metadata`.
    pub open_metadata: Option<bool>,
    /// `--online-keys`.
    pub online_keys: Option<PathBuf>,
    /// `--database`.
    pub database: Option<String>,
    /// `--report-ca`.
    pub report_ca: Option<PathBuf>,
    /// `--log-format` (`text` or `json`).
    pub log_format: Option<String>,
    /// `--publish-token-file`.
    pub publish_token_file: Option<PathBuf>,
    /// `--max-upload-size` (e.g. `"4G"`).
    pub max_upload_size: Option<String>,
}

/// Why the configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Missing, not a regular file, too large, unreadable.
    #[error("configuration file: {0}")]
    Read(#[from] ota_fs::user_file::UserFileError),
    /// Not TOML, an unknown key, a wrong type.
    #[error("configuration file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (with line and column).
        reason: String,
    },
}

impl FileConfig {
    /// Read and check `path`; relative paths inside become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = ota_fs::user_file::read_to_string(path, MAX_CONFIG_FILE)?;
        let mut config = Self::parse(&text).map_err(|reason| ConfigFileError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base);
        Ok(config)
    }

    /// Parse TOML text; the error says where and what.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            // toml's message spans lines (it quotes the source); one line for the CLI.
            e.to_string()
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|'))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(": ")
        })
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(v) = p {
                if v.is_relative() {
                    *v = base.join(&*v);
                }
            }
        };
        fix(&mut self.repo);
        fix(&mut self.tls_cert);
        fix(&mut self.tls_key);
        fix(&mut self.client_ca);
        fix(&mut self.online_keys);
        fix(&mut self.report_ca);
        fix(&mut self.publish_token_file);
        for c in self.crl.iter_mut().flatten() {
            if c.is_relative() {
                *c = base.join(&*c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_like_the_flags_and_paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ota-server.toml");
        std::fs::write(
            &file,
            "repo = \"repo\"\nlisten = \"127.0.0.1:9000\"\ncrl = [\"a.pem\", \"/abs/b.pem\"]\nopen-metadata = true\nmax-connections = 5\n",
        )
        .unwrap();
        let c = FileConfig::load(&file).unwrap();
        assert_eq!(c.repo, Some(dir.path().join("repo")));
        assert_eq!(c.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(
            c.crl,
            Some(vec![dir.path().join("a.pem"), PathBuf::from("/abs/b.pem")])
        );
        assert_eq!((c.open_metadata, c.max_connections), (Some(true), Some(5)));
    }

    #[test]
    fn unknown_keys_wrong_types_and_syntax_errors_are_refused_by_name() {
        let e = FileConfig::parse("repo = \"r\"\ntls_cert = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown field `tls_cert`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = FileConfig::parse("max-connections = \"many\"").unwrap_err();
        assert!(
            e.contains("max-connections") || e.contains("invalid type"),
            "{e}"
        );
        let e = FileConfig::parse("listen = \"nowhere\"").unwrap_err();
        assert!(e.contains("listen") || e.contains("invalid"), "{e}");
        assert!(FileConfig::parse("repo = ").is_err());
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
    }
}
