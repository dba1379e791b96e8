//! Device status reports: what a device tells the fleet service about its security state,
//! signed with the device's identity key (the key of its TLS client certificate), as Uptane's
//! version manifests are signed by ECUs.
//!
//! The signature makes a report trustworthy wherever it travels (through proxies, queues,
//! TLS-terminating load balancers): the service verifies it against the key of a device
//! certificate it verified itself, and identifies the device by that certificate, never by
//! what the body claims.
//!
//! Wire format (JSON; the signature is over the canonical JSON of `signed`):
//! ```json
//! {"signed": {"_type": "device-report", "spec_version": "1", "device_id": "gw-0042",
//!             "sequence": 1764246000123, "generated_at": "2026-11-27T12:20:00Z",
//!             "update_state": "idle", "last_error": null,
//!             "installed": {"name": "fw", "version": "1.2.0", "sha256": "…"},
//!             "slots": [{"slot": "a", "version": "1.2.0", "state": "committed"}],
//!             "trusted": {"root_version": 3, "root_expires": "…", "timestamp_expires": "…",
//!                         "snapshot_expires": "…", "targets_expires": "…"},
//!             "certificate_not_after": "2027-11-27T00:00:00Z"},
//!  "signatures": [{"keyid": "…", "sig": "…"}],
//!  "certificate": "-----BEGIN CERTIFICATE-----…"}
//! ```
//!
//! ```
//! use ota_formats::crypto::{EcdsaP256Signer, Signer};
//! use ota_formats::report::{DeviceReport, SignedReport, TrustedReport};
//! let key = EcdsaP256Signer::generate();
//! let now = chrono::Utc::now();
//! let report = DeviceReport::new("gw-0042", 7, now, "idle", TrustedReport::new(1, now));
//! let wire = SignedReport::sign(&report, &key, None)?.to_bytes()?;
//! let back = SignedReport::parse(&wire)?.verify(&key.public_key())?;
//! assert_eq!(back.sequence, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use crate::cjson;
use crate::crypto::{Key, Signature, Signer};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `_type` of a report.
pub const REPORT_TYPE: &str = "device-report";
/// The report format version this code writes and reads.
pub const SPEC_VERSION: &str = "1";
/// Largest report accepted (body bytes); a report is a few kilobytes with a certificate chain.
pub const MAX_REPORT_LEN: usize = 64 * 1024;

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Over [`MAX_REPORT_LEN`].
    #[error("report is {len} bytes, more than the {MAX_REPORT_LEN} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not JSON of the report's shape.
    #[error("malformed report: {0}")]
    Malformed(String),
    /// Another kind of document, or another format version.
    #[error(
        "not a device report of version {SPEC_VERSION}: _type {kind:?}, spec_version {version:?}"
    )]
    WrongType {
        /// Its `_type`.
        kind: String,
        /// Its `spec_version`.
        version: String,
    },
    /// No signature by the device's key.
    #[error("report is not signed by the device key {keyid}")]
    NotSignedByDevice {
        /// Key id of the device's key.
        keyid: String,
    },
    /// A signature by the device's key that does not verify.
    #[error("report signature by the device key {keyid} does not verify")]
    BadSignature {
        /// Key id of the device's key.
        keyid: String,
    },
    /// Signing or key handling failed.
    #[error(transparent)]
    Crypto(#[from] crate::Error),
}

/// One device's state, as it reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Always [`REPORT_TYPE`].
    #[serde(rename = "_type")]
    pub kind: String,
    /// Always [`SPEC_VERSION`].
    pub spec_version: String,
    /// The device id the device believes it has (its certificate's CN). The service checks it
    /// against the certificate and never uses it to identify the device.
    pub device_id: String,
    /// Strictly increasing per device; a report whose sequence is not above the last one
    /// stored is a replay.
    pub sequence: u64,
    /// When the device made the report (its own clock).
    pub generated_at: DateTime<Utc>,
    /// Where an update stands (`idle`, `downloading`, `pending-reboot`, `trial`,
    /// `committed`, `rolled-back`, `failed`, ...).
    pub update_state: String,
    /// The last update attempt's error, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The image installed (single-file devices) or committed (A/B devices).
    #[serde(default)]
    pub installed: Option<InstalledReport>,
    /// Each A/B slot (empty on single-file devices).
    #[serde(default)]
    pub slots: Vec<SlotReport>,
    /// What the device trusts and until when.
    pub trusted: TrustedReport,
    /// The expiry of the device's TLS certificate, if it has one.
    #[serde(default)]
    pub certificate_not_after: Option<DateTime<Utc>>,
}

/// An installed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledReport {
    /// Image name (target name without version).
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of the image, hex.
    pub sha256: String,
}

/// One A/B slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotReport {
    /// `a` or `b`.
    pub slot: String,
    /// Version in the slot, if known.
    #[serde(default)]
    pub version: Option<String>,
    /// The slot's state (`committed`, `trial`, `failed`, `empty`, ...).
    pub state: String,
}

/// The device's trusted TUF metadata: versions and expiry, so that a service notices devices
/// whose trust is about to lapse (a device whose metadata expired updates nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedReport {
    /// Version of the trusted root.
    pub root_version: u64,
    /// Expiry of the trusted root.
    pub root_expires: DateTime<Utc>,
    /// Expiry of the trusted timestamp, if the device has one.
    #[serde(default)]
    pub timestamp_expires: Option<DateTime<Utc>>,
    /// Expiry of the trusted snapshot, if the device has one.
    #[serde(default)]
    pub snapshot_expires: Option<DateTime<Utc>>,
    /// Expiry of the trusted top-level targets, if the device has one.
    #[serde(default)]
    pub targets_expires: Option<DateTime<Utc>>,
}

impl TrustedReport {
    /// Only a root so far.
    pub fn new(root_version: u64, root_expires: DateTime<Utc>) -> Self {
        TrustedReport {
            root_version,
            root_expires,
            timestamp_expires: None,
            snapshot_expires: None,
            targets_expires: None,
        }
    }

    /// The first of the expiry times: when the device's trust lapses unless it refreshes.
    pub fn earliest_expiry(&self) -> DateTime<Utc> {
        [
            self.timestamp_expires,
            self.snapshot_expires,
            self.targets_expires,
        ]
        .into_iter()
        .flatten()
        .fold(self.root_expires, DateTime::min)
    }
}

impl DeviceReport {
    /// A report with the required fields; the others empty.
    pub fn new(
        device_id: &str,
        sequence: u64,
        generated_at: DateTime<Utc>,
        update_state: &str,
        trusted: TrustedReport,
    ) -> Self {
        DeviceReport {
            kind: REPORT_TYPE.into(),
            spec_version: SPEC_VERSION.into(),
            device_id: device_id.into(),
            sequence,
            generated_at,
            update_state: update_state.into(),
            last_error: None,
            installed: None,
            slots: Vec::new(),
            trusted,
            certificate_not_after: None,
        }
    }
}

/// A report with its signatures, as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedReport {
    /// The report, kept as received: the signature covers exactly these bytes' canonical
    /// form, including fields this version does not know.
    pub signed: Value,
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
    /// The device's certificate chain (PEM, leaf first), for services that do not see the
    /// device's TLS connection (behind a TLS-terminating proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

impl SignedReport {
    /// Sign `report` with the device key.
    pub fn sign(
        report: &DeviceReport,
        key: &dyn Signer,
        certificate: Option<String>,
    ) -> Result<Self, ReportError> {
        let signed = serde_json::to_value(report)
            .map_err(|e| ReportError::Malformed(format!("cannot encode the report: {e}")))?;
        let msg = cjson::to_vec(&signed)?;
        Ok(SignedReport {
            signatures: vec![key.sign(&msg)?],
            signed,
            certificate,
        })
    }

    /// The JSON to send.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ReportError> {
        serde_json::to_vec(self)
            .map_err(|e| ReportError::Malformed(format!("cannot encode the report: {e}")))
    }

    /// Parse a received report (not verified yet).
    pub fn parse(bytes: &[u8]) -> Result<Self, ReportError> {
        if bytes.len() > MAX_REPORT_LEN {
            return Err(ReportError::TooLarge { len: bytes.len() });
        }
        serde_json::from_slice(bytes).map_err(|e| ReportError::Malformed(e.to_string()))
    }

    /// The report, if a signature by `device_key` verifies over it and it is a report of this
    /// format version.
    pub fn verify(&self, device_key: &Key) -> Result<DeviceReport, ReportError> {
        let keyid = device_key.key_id()?;
        let mut found = false;
        let msg = cjson::to_vec(&self.signed)?;
        for sig in self.signatures.iter().filter(|s| s.keyid == keyid) {
            found = true;
            let Ok(raw) = hex::decode(&sig.sig) else {
                continue;
            };
            if device_key.verify(&keyid, &msg, &raw)? {
                return parse_report(&self.signed);
            }
        }
        Err(if found {
            ReportError::BadSignature { keyid }
        } else {
            ReportError::NotSignedByDevice { keyid }
        })
    }
}

fn parse_report(signed: &Value) -> Result<DeviceReport, ReportError> {
    let kind = signed.get("_type").and_then(Value::as_str).unwrap_or("");
    let version = signed
        .get("spec_version")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != REPORT_TYPE || version != SPEC_VERSION {
        return Err(ReportError::WrongType {
            kind: kind.into(),
            version: version.into(),
        });
    }
    DeviceReport::deserialize(signed).map_err(|e| ReportError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::EcdsaP256Signer;

    fn report() -> DeviceReport {
        let now = Utc::now();
        let mut r = DeviceReport::new("gw-1", 5, now, "idle", TrustedReport::new(2, now));
        r.trusted.timestamp_expires = Some(now - chrono::Duration::hours(1));
        r
    }

    #[test]
    fn a_signed_report_verifies_and_round_trips() {
        let key = EcdsaP256Signer::generate();
        let r = report();
        let wire = SignedReport::sign(&r, &key, Some("PEM".into()))
            .unwrap()
            .to_bytes()
            .unwrap();
        let parsed = SignedReport::parse(&wire).unwrap();
        assert_eq!(parsed.certificate.as_deref(), Some("PEM"));
        assert_eq!(parsed.verify(&key.public_key()).unwrap(), r);
        assert_eq!(
            r.trusted.earliest_expiry(),
            r.trusted.timestamp_expires.unwrap()
        );
    }

    #[test]
    fn another_key_a_changed_body_or_another_type_is_refused() {
        let key = EcdsaP256Signer::generate();
        let other = EcdsaP256Signer::generate();
        let signed = SignedReport::sign(&report(), &key, None).unwrap();
        assert!(matches!(
            signed.verify(&other.public_key()),
            Err(ReportError::NotSignedByDevice { .. })
        ));
        let mut changed = signed.clone();
        changed.signed["sequence"] = 6.into();
        assert!(matches!(
            changed.verify(&key.public_key()),
            Err(ReportError::BadSignature { .. })
        ));
        // Signed, but not a report: another document's signature must not pass as one.
        let mut wrong = DeviceReport::new(
            "gw-1",
            1,
            Utc::now(),
            "idle",
            TrustedReport::new(1, Utc::now()),
        );
        wrong.kind = "root".into();
        let signed = SignedReport::sign(&wrong, &key, None).unwrap();
        assert!(matches!(
            signed.verify(&key.public_key()),
            Err(ReportError::WrongType { .. })
        ));
        assert!(matches!(
            SignedReport::parse(&vec![b' '; MAX_REPORT_LEN + 1]),
            Err(ReportError::TooLarge { .. })
        ));
        assert!(matches!(
            SignedReport::parse(b"{\"signed\": 1}"),
            Err(ReportError::Malformed(_))
        ));
    }
}
