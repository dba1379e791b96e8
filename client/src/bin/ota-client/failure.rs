//! What the CLI prints on failure: one `error:` line, one `hint:` line, an exit code.
use ota_client::device::DeviceError;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// The `error:` line.
    pub message: String,
    /// The `hint:` line.
    pub hint: String,
    /// Exit code (see the table in `--help`).
    pub code: u8,
    /// The error class for `--json` (`usage`, `state`, `network`, `refused`, `install_io`).
    pub kind: &'static str,
}

impl Failure {
    /// A usage or configuration problem (exit 2).
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: hint.into(),
            code: 2,
            kind: "usage",
        }
    }
}

impl From<DeviceError> for Failure {
    fn from(e: DeviceError) -> Self {
        Failure {
            message: e.to_string(),
            hint: crate::hints::hint(&e),
            code: e.category().exit_code(),
            kind: e.category().kind(),
        }
    }
}
