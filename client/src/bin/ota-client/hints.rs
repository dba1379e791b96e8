//! The `hint:` line of each library error: what the operator runs or checks next. The
//! library's errors say what went wrong; only the CLI knows its own commands.
use ota_client::device::DeviceError;
use ota_formats::envelope::EnvelopeError;

/// One line telling the operator what to do about `e`.
pub fn hint(e: &DeviceError) -> String {
    use ota_client::transport::TransportError;
    match e {
            DeviceError::NotInitialized { state } => format!(
                "run `ota-client init --state {} --root ROOT.json --server URL --hardware ID` first",
                state.display()
            ),
            DeviceError::AlreadyExists { .. } => {
                "pass --force to replace it (this discards the existing state)".into()
            }
            DeviceError::InvalidSetting { setting, .. } => format!(
                "pass a valid {setting} (see `ota-client init --help`)"
            ),
            DeviceError::BadState { path, .. } | DeviceError::StateIo { path, .. } => format!(
                "check {} (permissions, disk space, or re-run `ota-client init --force`)",
                path.display()
            ),
            DeviceError::NoDeviceKey { .. } => {
                "run `ota-client keygen --state DIR` and have the release encrypted to the printed public key, or import the group's key with `ota-client keys import-group`".into()
            }
            DeviceError::InvalidGroupKey { .. } => {
                "pass the one-line otasec1... file written by `ota-sign recipients group-create` (KEYS/group-NAME.otasec)".into()
            }
            DeviceError::Tls(_) => {
                "fix the TLS settings: the files named under \"tls\" in config.json must be PEM certificates and keys that belong together, the pin 64 hex digits, the proxy http://HOST:PORT".into()
            }
            DeviceError::Certificate(ota_client::pki::PkiError::KeyMismatch { .. }) => {
                "install the certificate issued for this device's own certificate signing request (identity.csr); a certificate made for another request or device cannot be used".into()
            }
            DeviceError::Certificate(ota_client::pki::PkiError::Expired { .. }) => {
                "have the CA issue a new certificate for the device's signing request (or check the device clock)".into()
            }
            DeviceError::Certificate(_) => {
                "pass the PEM certificate (BEGIN CERTIFICATE) the CA issued for this device".into()
            }
            DeviceError::NoIdentityKey { .. } => {
                "create the identity key and its signing request first, then have the CA sign that request".into()
            }
            DeviceError::NoIdentityCertificate { .. } => {
                "enrol the device first: `ota-client enroll --name ID`, have the fleet CA issue identity.csr, then `ota-client enroll --cert CERT.pem`".into()
            }
            DeviceError::Report(_) => {
                "status reports are signed with the P-256 identity key that `ota-client enroll` makes; re-enrol if the key is of another type".into()
            }
            DeviceError::ReportRefused { status: 409, .. } => {
                "the service already holds a newer report of this device; check the device clock and STATE/report-sequence".into()
            }
            DeviceError::ReportRefused { status: 403, .. } => {
                "the service does not accept this device's certificate or signature: check that it is issued by the fleet CA the service trusts, unexpired and not revoked".into()
            }
            DeviceError::ReportRefused { status: 404, .. } => {
                "this server takes no reports: point `report --url` (or report_url in config.json) at the fleet service".into()
            }
            DeviceError::ReportRefused { .. } => {
                "the service could not take the report now; it is sent again after the next update attempt".into()
            }
            DeviceError::Tuf(ota_client::Error::Transport(TransportError::Tls { cause, .. })) => {
                use ota_client::transport::TlsCause;
                match cause {
                    TlsCause::ServerNotTrusted => "the server is not one this device trusts: compare the CA bundle and pinned key it was initialised with (`ota-client status`; --ca-bundle, --pin-spki) with the server's certificate, and check the device clock; nothing was changed",
                    TlsCause::ClientRefused => "the server requires a client certificate it accepts: `ota-client enroll --state DIR --name DEVICE-ID`, have the fleet CA sign DIR/identity.csr (`ota-ca issue`), then `ota-client enroll --state DIR --cert CERT.pem`; nothing was changed",
                    TlsCause::Other => "the TLS connection failed: check --tls-min (config.json \"tls\".min_version) and the server's TLS setup; nothing was changed",
                }
                .into()
            }
            DeviceError::Tuf(ota_client::Error::Transport(e)) if e.to_string().contains("through the proxy") => {
                "check that the proxy (config.json \"tls\".proxy) is running and lets this device CONNECT to the server's port, and that the server is reachable from it; nothing was changed".into()
            }
            DeviceError::Tuf(ota_client::Error::Transport(_)) | DeviceError::SlipFetch { .. } => {
                "check the server URL in config.json and that the server is reachable; nothing was changed".into()
            }
            DeviceError::Tuf(ota_client::Error::Io { path, .. }) => {
                format!("check {} (permissions, disk space)", path.display())
            }
            DeviceError::Tuf(ota_client::Error::CorruptTrustedRoot { .. }) => {
                "the device's own copy of the trusted root is damaged (storage or a hand edit), not an attack: re-provision it with `ota-client init --force --root ROOT.json` using the root you shipped".into()
            }
            DeviceError::Tuf(ota_client::Error::ExpiredMetadata { .. }) => {
                "check this device's clock first (`date -u`): a clock far in the future makes valid metadata look expired; if the clock is right, the repository was not re-signed in time: report it to the release owner. Nothing was installed".into()
            }
            DeviceError::ClockWrong { .. } => {
                "set the device clock (NTP, or the RTC and its battery): expiry was checked at the newest time this device has already seen, never at an earlier one; if the clock is right, the repository was not re-signed in time: report it to the release owner. Nothing was installed".into()
            }
            DeviceError::TimeFloor(_) => {
                "check STATE/time-floor.json (it holds {\"time_floor\": \"RFC 3339 time\"}; `ota-client init --force` resets it together with the trusted metadata)".into()
            }
            DeviceError::NoRepositoryCopy { .. } => {
                "pass the directory that `ota-sign export --to DIR` wrote (it holds metadata/ and targets/), and check that the media is mounted".into()
            }
            DeviceError::InstallPathNotRegular { .. } => {
                "--install-to replaces a regular file; block devices and partitions need an A/B slot installer, and links or special files are refused so that they are never replaced".into()
            }
            DeviceError::AmbiguousImage { .. } => {
                "a device follows one image line: choose it with `ota-client init --force --name NAME` (or edit image_name in config.json)".into()
            }
            DeviceError::Decrypt {
                source: EnvelopeError::NoSlipForRecipient(_),
                ..
            } => "this device is not a recipient of the release: encrypt it to this device (`ota-client keys list` shows its key ids) or to a group whose key it holds".into(),
            DeviceError::InstallIo { path, .. } => format!(
                "check that {} is writable and has free space; the old image was left in place",
                path.display()
            ),
            _ => "the update was refused for security reasons and nothing was installed; report it to the release owner".into(),
        }
}
