//! Which boot-environment backend a device uses, as a string in its `config.json`.
use super::env_file::EnvFile;
use super::error::{BootError, ParseError};
use super::grub::GrubEnv;
use super::uboot::UbootEnv;
use super::BootControl;
use crate::storage::Storage;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// A boot-environment backend: `uboot`, `uboot:FW_ENV_CONFIG`, `grub:ENVFILE` or
/// `file:ENVFILE` (the same string for [`FromStr`], [`fmt::Display`] and serde).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSpec {
    /// U-Boot's environment through `fw_printenv`/`fw_setenv`.
    Uboot {
        /// The `fw_env.config` passed with `-c` (our extension); `None`: the tools' default,
        /// `/etc/fw_env.config`.
        config: Option<PathBuf>,
    },
    /// A GRUB environment block through `grub-editenv`.
    Grub {
        /// The block file.
        env: PathBuf,
    },
    /// A plain `key=value` file.
    File {
        /// The file.
        env: PathBuf,
    },
}

impl BootSpec {
    /// The backend.
    pub fn open(&self) -> Box<dyn BootControl> {
        match self {
            BootSpec::Uboot { config } => Box::new(UbootEnv::new(config.clone())),
            BootSpec::Grub { env } => Box::new(GrubEnv::new(env)),
            BootSpec::File { env } => Box::new(EnvFile::new(env)),
        }
    }

    /// The backend, with a plain environment file replaced through `storage` (the other
    /// backends write through their tools).
    pub fn open_with(&self, storage: Arc<dyn Storage>) -> Box<dyn BootControl> {
        match self {
            BootSpec::File { env } => Box::new(EnvFile::new(env).with_storage(storage)),
            other => other.open(),
        }
    }

    /// For `file:` and `grub:`, create the environment holding the default variables when it
    /// does not exist (true if created); an existing one is never overwritten. For U-Boot,
    /// nothing (the board's environment exists): false.
    pub fn init_env(&self) -> Result<bool, BootError> {
        match self {
            BootSpec::Uboot { .. } => Ok(false),
            BootSpec::Grub { env } => GrubEnv::new(env).create(),
            BootSpec::File { env } => EnvFile::new(env).create(),
        }
    }
}

const EXPECTED: &str = "a boot control (uboot, uboot:FW_ENV_CONFIG, grub:ENVFILE or file:ENVFILE)";

impl FromStr for BootSpec {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError {
            input: s.to_string(),
            expected: EXPECTED,
        };
        if s == "uboot" {
            return Ok(BootSpec::Uboot { config: None });
        }
        let (kind, path) = s.split_once(':').ok_or_else(bad)?;
        if path.is_empty() {
            return Err(bad());
        }
        let path = PathBuf::from(path);
        match kind {
            "uboot" => Ok(BootSpec::Uboot { config: Some(path) }),
            "grub" => Ok(BootSpec::Grub { env: path }),
            "file" => Ok(BootSpec::File { env: path }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for BootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootSpec::Uboot { config: None } => f.write_str("uboot"),
            BootSpec::Uboot { config: Some(c) } => write!(f, "uboot:{}", c.display()),
            BootSpec::Grub { env } => write!(f, "grub:{}", env.display()),
            BootSpec::File { env } => write!(f, "file:{}", env.display()),
        }
    }
}

impl serde::Serialize for BootSpec {
    /// The [`fmt::Display`] string; a path that is not UTF-8 cannot be serialized.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let path = match self {
            BootSpec::Uboot { config } => config.as_deref(),
            BootSpec::Grub { env } | BootSpec::File { env } => Some(env.as_path()),
        };
        if path.is_some_and(|p| p.to_str().is_none()) {
            return Err(serde::ser::Error::custom("boot control path is not UTF-8"));
        }
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for BootSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for (s, spec) in [
            ("uboot", BootSpec::Uboot { config: None }),
            (
                "uboot:/etc/fw_env.config",
                BootSpec::Uboot {
                    config: Some("/etc/fw_env.config".into()),
                },
            ),
            (
                "grub:/boot/grub/grubenv",
                BootSpec::Grub {
                    env: "/boot/grub/grubenv".into(),
                },
            ),
            (
                "file:rel/a:b.env",
                BootSpec::File {
                    env: "rel/a:b.env".into(),
                },
            ),
        ] {
            assert_eq!(s.parse::<BootSpec>().unwrap(), spec);
            assert_eq!(spec.to_string(), s);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<BootSpec>(&json).unwrap(), spec);
        }
    }

    #[test]
    fn bad_strings_are_refused() {
        for s in [
            "", "uboot:", "grub", "grub:", "file:", "efi:/x", "UBOOT", " uboot",
        ] {
            let err = s.parse::<BootSpec>().unwrap_err();
            assert_eq!(err.input, s);
            assert!(err.to_string().contains("grub:ENVFILE"), "{err}");
        }
        assert!(serde_json::from_str::<BootSpec>("\"grub\"").is_err());
    }

    #[test]
    fn init_env_creates_file_once_and_uboot_does_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("boot.env");
        let spec = BootSpec::File { env: p.clone() };
        assert!(spec.init_env().unwrap());
        std::fs::write(&p, "ota_slot=b\n").unwrap();
        assert!(!spec.init_env().unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "ota_slot=b\n");
        assert_eq!(spec.open().read().unwrap().ota_slot, crate::boot::Slot::B);
        let uboot = BootSpec::Uboot {
            config: Some(d.path().join("none.config")),
        };
        assert!(!uboot.init_env().unwrap());
    }
}
