//! Errors of the CA, each with a hint for the operator and an exit code of the CLI.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 2 | usage or bad input: arguments, a CSR (unreadable, bad signature, bad CN), a name, an existing directory for `init`, a serial that this CA did not issue, a CN that already has a valid certificate |
//! | 3 | the CA directory: missing, incomplete, corrupt (`ca.key` not matching `ca.pem`, bad `index.json`), or locked by another `ota-ca` run |
//! | 4 | I/O: a file could not be written (or read for another reason than being absent) |
//!
//! With `--json`, a failure also prints `{"error": {"kind", "message", "hint", "exit_code"}}` on
//! stdout, `kind` being [`Error::kind`].
use ota_fs::user_file::UserFileError;
use std::path::Path;

/// Result with the CA error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, grouped by what the operator must fix. Each variant carries the message
/// (one line) and a hint with the next step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or input files (exit 2).
    #[error("{msg}")]
    Input {
        /// What is wrong.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// The CA directory is missing, incomplete, corrupt or locked (exit 3).
    #[error("{msg}")]
    Ca {
        /// What is wrong.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// A read or write failed (exit 4).
    #[error("{msg}")]
    Io {
        /// What failed.
        msg: String,
        /// What to do about it.
        hint: String,
    },
}

impl Error {
    /// Bad input.
    pub fn input(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Input {
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    /// A problem with the CA directory.
    pub fn ca(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Ca {
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    /// A failed write of `path`.
    pub fn write(path: &Path, e: impl std::fmt::Display) -> Self {
        Error::Io {
            msg: format!("cannot write {}: {e}", path.display()),
            hint: "check free space and permissions; files are replaced atomically, so the CA directory still holds its previous state and the command can be re-run".into(),
        }
    }

    /// A file the operator named (CSR, certificate) that cannot be read: bad input.
    pub fn user_file(what: &str, e: UserFileError) -> Self {
        let hint = match &e {
            UserFileError::NotRegular { .. } => {
                format!("{what} must be a regular file (or a link to one)")
            }
            UserFileError::TooLarge { .. } => {
                format!("no real {what} is that large; check the path")
            }
            _ => "check the path".to_string(),
        };
        Error::input(format!("{what} {e}"), hint)
    }

    /// One of the CA directory's own files that cannot be read: missing means an incomplete
    /// CA directory (exit 3), anything else is an I/O failure (exit 4).
    pub fn ca_file(e: UserFileError) -> Self {
        match e {
            UserFileError::NotFound { path } => {
                let hint = if path.ends_with(crate::INDEX_FILE) {
                    "an interrupted `ota-ca init` leaves no index.json: if no certificate was ever issued from this directory, remove it and run init again; otherwise restore index.json from a backup"
                } else {
                    "point --dir at a directory made by `ota-ca init`"
                };
                Error::ca(
                    format!("{} is missing: not a complete CA directory", path.display()),
                    hint,
                )
            }
            UserFileError::NotRegular { .. } | UserFileError::TooLarge { .. } | UserFileError::NotText { .. } => Error::ca(
                format!("CA file {e}"),
                "the CA directory is corrupt; restore it from a backup",
            ),
            UserFileError::Io { .. } => Error::Io {
                msg: e.to_string(),
                hint: "check the permissions of the CA directory (it is meant to be readable by its owner only)".into(),
            },
        }
    }

    /// The stable, lower-case word for the error class in `--json` error output: `input`,
    /// `ca` or `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Input { .. } => "input",
            Error::Ca { .. } => "ca",
            Error::Io { .. } => "io",
        }
    }

    /// The hint shown under the message.
    pub fn hint(&self) -> &str {
        match self {
            Error::Input { hint, .. } | Error::Ca { hint, .. } | Error::Io { hint, .. } => hint,
        }
    }

    /// The documented exit code of the CLI for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input { .. } => 2,
            Error::Ca { .. } => 3,
            Error::Io { .. } => 4,
        }
    }
}
