//! Why reading or writing the boot environment failed.
use std::path::PathBuf;
use std::process::ExitStatus;

/// A boot-environment failure. Messages name the tool, variable or file concerned and carry
/// no advice on commands to run (callers add their own).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The backend's tool is not installed (or not on the `PATH` it was looked up in).
    #[error("{tool} was not found on PATH")]
    ToolMissing {
        /// The program name, e.g. `fw_setenv`.
        tool: String,
    },
    /// The tool ran and exited unsuccessfully.
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        /// The program name.
        tool: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to standard error, trimmed.
        stderr: String,
    },
    /// The tool reported success but the environment read back does not hold what was written.
    #[error("{tool} reported success but {env} does not hold the values written")]
    NotApplied {
        /// The program name.
        tool: String,
        /// The environment (as [`crate::boot::BootControl::describe`] names it).
        env: String,
    },
    /// A boot variable is present but does not hold a valid value.
    #[error("{env}: {var}={value:?} is not a valid value ({expected})")]
    Garbage {
        /// The variable.
        var: &'static str,
        /// The value found.
        value: String,
        /// What the variable may hold.
        expected: &'static str,
        /// The environment (as [`crate::boot::BootControl::describe`] names it).
        env: String,
    },
    /// The environment file does not exist (it is created by `BootSpec::init_env`).
    #[error("boot environment {} does not exist", path.display())]
    MissingEnv {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing a file, or starting a tool, failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file or tool.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl BootError {
    /// An [`BootError::Io`] with its context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BootError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A string that is not a [`crate::boot::Slot`] or a [`crate::boot::BootSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not {expected}")]
pub struct ParseError {
    /// The string given.
    pub input: String,
    /// What was expected.
    pub expected: &'static str,
}
