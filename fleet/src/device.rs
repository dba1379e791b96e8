//! What the store knows about one device: when it was seen, and its latest report.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ReportRecord;

/// One device as `ota-server devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSummary {
    /// The device id (its certificate's CN).
    pub device_id: String,
    /// When the server received the device's first stored report.
    pub first_seen: DateTime<Utc>,
    /// When the server received the device's latest report.
    pub last_seen: DateTime<Utc>,
    /// How many reports of the device are stored.
    pub reports: u64,
    /// The latest report (highest sequence), without the document itself
    /// ([`crate::ReportStore::latest_report`] returns that).
    pub last: LatestReport,
}

/// The fields of a device's latest report, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatestReport {
    /// The report's sequence.
    pub sequence: u64,
    /// Hex SHA-256 fingerprint of the device certificate that signed it.
    pub cert_sha256: String,
    /// When that certificate expires.
    pub cert_not_after: Option<DateTime<Utc>>,
    /// Device clock at generation.
    pub generated_at: DateTime<Utc>,
    /// Server clock at reception (equals the summary's `last_seen`).
    pub received_at: DateTime<Utc>,
    /// The update state.
    pub update_state: String,
    /// The last update error, if any.
    pub last_error: Option<String>,
    /// The committed/installed firmware version.
    pub installed_version: Option<String>,
    /// The version of the device's trusted TUF root.
    pub root_version: u64,
    /// The earliest expiry of the device's trusted metadata.
    pub metadata_expires: Option<DateTime<Utc>>,
}

impl From<&ReportRecord> for LatestReport {
    fn from(r: &ReportRecord) -> Self {
        LatestReport {
            sequence: r.sequence,
            cert_sha256: r.cert_sha256.clone(),
            cert_not_after: r.cert_not_after,
            generated_at: r.generated_at,
            received_at: r.received_at,
            update_state: r.update_state.clone(),
            last_error: r.last_error.clone(),
            installed_version: r.installed_version.clone(),
            root_version: r.root_version,
            metadata_expires: r.metadata_expires,
        }
    }
}
