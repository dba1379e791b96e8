//! U-Boot's environment through `fw_printenv` / `fw_setenv` (Debian `libubootenv-tool`).
//!
//! Reading lists the whole environment (`fw_printenv [-c CONFIG]`; an absent variable takes
//! its default). Writing sets all four variables in one `fw_setenv [-c CONFIG] -s SCRIPT`
//! call, so the environment (and its redundant copy, if configured) is written once; the
//! script holds one `name=value` line per variable, the format libubootenv reads (lines
//! without `=` are silently ignored by it). The environment is then read back: a tool that
//! reported success without storing the values is an error, not a silent no-op.
use super::error::BootError;
use super::tool::{listing_pairs, Tool};
use super::vars::BootVars;
use super::BootControl;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The configuration file the tools read when none is given.
pub const DEFAULT_CONFIG: &str = "/etc/fw_env.config";

/// A U-Boot environment, located by an `fw_env.config`.
#[derive(Debug, Clone)]
pub struct UbootEnv {
    config: Option<PathBuf>,
    printenv: Tool,
    setenv: Tool,
}

impl UbootEnv {
    /// The environment that `config` describes (`None`: the tools' default,
    /// [`DEFAULT_CONFIG`]); the tools are looked up on `PATH`.
    pub fn new(config: Option<PathBuf>) -> Self {
        UbootEnv {
            config,
            printenv: Tool::new("fw_printenv"),
            setenv: Tool::new("fw_setenv"),
        }
    }

    /// Look `fw_printenv` and `fw_setenv` up on `path` (a `PATH`-style list of directories)
    /// instead of the process's `PATH`.
    pub fn with_search_path(mut self, path: impl Into<OsString>) -> Self {
        let path = path.into();
        self.printenv = self.printenv.with_search_path(path.clone());
        self.setenv = self.setenv.with_search_path(path);
        self
    }

    /// The `fw_env.config` given, if any.
    pub fn config(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    fn config_args(&self) -> Vec<&OsStr> {
        match &self.config {
            Some(c) => vec![OsStr::new("-c"), c.as_os_str()],
            None => Vec::new(),
        }
    }
}

impl BootControl for UbootEnv {
    fn read(&self) -> Result<BootVars, BootError> {
        let out = self.printenv.run(self.config_args())?;
        BootVars::from_pairs(listing_pairs(&out), &self.describe())
    }

    fn write(&self, vars: &BootVars) -> Result<(), BootError> {
        vars.validate(&self.describe())?;
        let dir = tempfile::tempdir()
            .map_err(|e| BootError::io("creating a temp dir for the fw_setenv script", e))?;
        let script = dir.path().join("ota-boot-vars");
        let text: String = vars
            .to_pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        std::fs::write(&script, text)
            .map_err(|e| BootError::io(format!("writing {}", script.display()), e))?;
        let mut args = self.config_args();
        args.extend([OsStr::new("-s"), script.as_os_str()]);
        self.setenv.run(args)?;
        if self.read()? != *vars {
            return Err(BootError::NotApplied {
                tool: self.setenv.name().to_string(),
                env: self.describe(),
            });
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let config = self.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
        format!("U-Boot environment of {}", config.display())
    }
}
