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
            hint: cli_hint(&e).unwrap_or_else(|| e.hint()),
            code: e.category().exit_code(),
            kind: e.category().kind(),
        }
    }
}

/// Hints that name the commands to run, where the library's hint can only describe the fix.
fn cli_hint(e: &DeviceError) -> Option<String> {
    use ota_client::transport::{TlsCause, TransportError};
    match e {
        DeviceError::Tuf(ota_client::Error::Transport(TransportError::Tls { cause, .. })) => {
            Some(match cause {
                TlsCause::ServerNotTrusted => "the server is not one this device trusts: compare the CA bundle and pinned key it was initialised with (`ota-client status`; --ca-bundle, --pin-spki) with the server's certificate, and check the device clock; nothing was changed",
                TlsCause::ClientRefused => "the server requires a client certificate it accepts: `ota-client enroll --state DIR --name DEVICE-ID`, have the fleet CA sign DIR/identity.csr (`ota-ca issue`), then `ota-client enroll --state DIR --cert CERT.pem`; nothing was changed",
                TlsCause::Other => "the TLS connection failed: check --tls-min (config.json \"tls\".min_version) and the server's TLS setup; nothing was changed",
            }
            .into())
        }
        _ => None,
    }
}
