//! One verified device report, as the server hands it to the store, and what became of it.

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest sequence and root version a store keeps: both databases store signed 64-bit
/// integers, and mapping larger values would break the ordering replay refusal relies on.
pub const MAX_STORED_INTEGER: u64 = i64::MAX as u64;

/// A device report whose signature and device certificate the server has verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// The verified certificate's CN, never the body's claim.
    pub device_id: String,
    /// Hex SHA-256 fingerprint of the device certificate.
    pub cert_sha256: String,
    /// When the device certificate expires.
    pub cert_not_after: Option<DateTime<Utc>>,
    /// The device's monotonically increasing report counter.
    pub sequence: u64,
    /// When the device generated the report (device clock).
    pub generated_at: DateTime<Utc>,
    /// When the server received it (server clock).
    pub received_at: DateTime<Utc>,
    /// The device's update state, e.g. "idle", "trial", "pending-reboot", "failed".
    pub update_state: String,
    /// The device's last update error, if any.
    pub last_error: Option<String>,
    /// The committed/installed firmware version.
    pub installed_version: Option<String>,
    /// The version of the device's trusted TUF root.
    pub root_version: u64,
    /// The earliest expiry of the device's trusted metadata.
    pub metadata_expires: Option<DateTime<Utc>>,
    /// The full signed report document as received, kept verbatim.
    pub report_json: String,
}

/// What [`crate::ReportStore::record`] did with one report of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Kept: it is now the device's latest report.
    Stored,
    /// Refused: its sequence is not above the device's last stored one; nothing changed.
    Replayed {
        /// The device's last stored sequence (including earlier reports of the same batch).
        last_sequence: u64,
    },
    /// Refused: a value no store can keep faithfully; nothing changed, the rest of the batch
    /// is unaffected (one device cannot make a whole batch fail).
    Invalid(InvalidReport),
}

/// Why a report cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidReport {
    /// The device id is empty.
    #[error("empty device id")]
    EmptyDeviceId,
    /// A counter exceeds what the databases store ([`MAX_STORED_INTEGER`]).
    #[error("device {device_id:?}: {field} {value} is above {max}", max = MAX_STORED_INTEGER)]
    TooLarge {
        /// The device.
        device_id: String,
        /// "sequence" or "root_version".
        field: &'static str,
        /// The value given.
        value: u64,
    },
    /// A text contains a NUL character, which PostgreSQL text cannot hold.
    #[error("device {device_id:?}: {field} contains a NUL character")]
    NulCharacter {
        /// The device (escaped in the message).
        device_id: String,
        /// The field.
        field: &'static str,
    },
    /// A timestamp lies outside years 1..=9999, which both databases store alike.
    #[error("device {device_id:?}: {field} {value} is outside years 1 to 9999")]
    TimeOutOfRange {
        /// The device.
        device_id: String,
        /// The field.
        field: &'static str,
        /// The value given.
        value: DateTime<Utc>,
    },
}

impl ReportRecord {
    /// Checks that both backends can store this report exactly; the server may call it before
    /// queueing a report, `record` calls it for each report anyway.
    pub fn validate(&self) -> Result<(), InvalidReport> {
        if self.device_id.is_empty() {
            return Err(InvalidReport::EmptyDeviceId);
        }
        let device_id = || self.device_id.clone();
        for (field, value) in [
            ("sequence", self.sequence),
            ("root_version", self.root_version),
        ] {
            if value > MAX_STORED_INTEGER {
                return Err(InvalidReport::TooLarge {
                    device_id: device_id(),
                    field,
                    value,
                });
            }
        }
        let texts = [
            ("device_id", Some(&self.device_id)),
            ("cert_sha256", Some(&self.cert_sha256)),
            ("update_state", Some(&self.update_state)),
            ("last_error", self.last_error.as_ref()),
            ("installed_version", self.installed_version.as_ref()),
            ("report_json", Some(&self.report_json)),
        ];
        for (field, text) in texts {
            if text.is_some_and(|t| t.contains('\0')) {
                return Err(InvalidReport::NulCharacter {
                    device_id: device_id(),
                    field,
                });
            }
        }
        let times = [
            ("cert_not_after", self.cert_not_after),
            ("generated_at", Some(self.generated_at)),
            ("received_at", Some(self.received_at)),
            ("metadata_expires", self.metadata_expires),
        ];
        for (field, time) in times {
            if let Some(value) = time.filter(|t| !(1..=9999).contains(&t.year())) {
                return Err(InvalidReport::TimeOutOfRange {
                    device_id: device_id(),
                    field,
                    value,
                });
            }
        }
        Ok(())
    }
}

/// Timestamps are kept to the microsecond (PostgreSQL's resolution); SQLite is given the same
/// truncation so that both backends read back identical values.
pub(crate) fn stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Reads back a count or sequence; both databases store them signed, and only a hand-edited
/// row can hold a negative one.
pub(crate) fn stored_u64(
    value: i64,
    field: &str,
    database: &str,
    device_id: &str,
) -> Result<u64, crate::StoreError> {
    u64::try_from(value).map_err(|_| crate::StoreError::BadRow {
        database: database.to_owned(),
        device_id: device_id.to_owned(),
        detail: format!("{field} {value} is negative"),
    })
}
