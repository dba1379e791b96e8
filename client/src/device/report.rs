//! Status reports: the device's security state (versions per slot, update state, last error,
//! trusted root version and metadata expiry, certificate expiry), signed with its identity
//! key and posted to the fleet service (`ota-server`'s `/api/v1/reports` by default).
//!
//! Each report carries a sequence number above every earlier one of this device, so the
//! service can refuse replays: the larger of the last number sent plus one and the clock in
//! milliseconds, which survives a reset state directory as long as the clock is sane. The
//! number is saved before the report leaves, so a crash never reuses it.
use super::error::{state_io, DeviceError, DeviceResult};
use super::identity;
use super::session::Device;
use super::state::StateDir;
use crate::pki;
use chrono::{DateTime, Utc};
use ota_formats::crypto::EcdsaP256Signer;
use ota_formats::report::{DeviceReport, InstalledReport, SignedReport, SlotReport, TrustedReport};
use serde::Serialize;

/// Largest service answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// A report the service accepted.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSent {
    /// Where it went.
    pub url: String,
    /// Its sequence number.
    pub sequence: u64,
    /// The device id it was signed for (the certificate's CN).
    pub device_id: String,
    /// The HTTP status of the answer.
    pub status: u16,
}

impl Device {
    /// Send reports to `url` (for this session; `config.json` is unchanged).
    pub fn set_report_url(&mut self, url: &str) -> DeviceResult<()> {
        let parsed = url::Url::parse(url).map_err(|e| DeviceError::InvalidSetting {
            setting: "report URL",
            reason: format!("{url:?}: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DeviceError::InvalidSetting {
                setting: "report URL",
                reason: format!("{url:?} is not http(s)"),
            });
        }
        self.config.report_url = Some(url.to_string());
        Ok(())
    }

    /// This device's state now, signed with its identity key. `last_error` overrides the
    /// error recorded in the A/B state (the caller's attempt just failed with it).
    pub fn status_report(&self, last_error: Option<String>) -> DeviceResult<SignedReport> {
        let cert_path = self.state().identity_cert();
        let cert = identity::certificate(self.state())?.ok_or_else(|| {
            DeviceError::NoIdentityCertificate {
                path: cert_path.clone(),
            }
        })?;
        let key_path = self.state().identity_key();
        let key_pem = ota_fs::user_file::read_to_string(&key_path, 64 * 1024).map_err(|e| {
            DeviceError::BadState {
                path: key_path.clone(),
                reason: e.to_string(),
            }
        })?;
        let key = EcdsaP256Signer::from_pkcs8_pem(&key_pem).map_err(|e| DeviceError::BadState {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        let now = Utc::now();
        let root = self.updater().trusted().root().signed();
        let mut trusted = TrustedReport::new(root.version, root.expires);
        self.trusted_expiry(&mut trusted);
        let device_id = cert.subject_cn.clone().unwrap_or_default();
        let sequence = next_sequence(self.state(), now)?;
        let mut report = DeviceReport::new(&device_id, sequence, now, "idle", trusted);
        report.certificate_not_after = Some(cert.not_after);
        match &self.config().slots {
            Some(_) => {
                let s = self.slot_status()?;
                report.update_state = s.update_state.to_string();
                report.last_error = last_error.or(s.last_error);
                for (name, view) in [("a", &s.slots.a), ("b", &s.slots.b)] {
                    report.slots.push(SlotReport {
                        slot: name.into(),
                        version: view.version.clone(),
                        state: serde_json::to_value(view.state)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                    });
                }
            }
            None => {
                if last_error.is_some() {
                    report.update_state = "failed".into();
                }
                report.last_error = last_error;
            }
        }
        report.installed = self.floor()?.map(|i| InstalledReport {
            name: i.name,
            version: i.version,
            sha256: i.image_sha256,
        });
        let chain = pki::read_certificates(&cert_path)?;
        let pem = pki::to_pem("CERTIFICATE", chain.iter().map(|c| c.as_ref()));
        Ok(SignedReport::sign(&report, &key, Some(pem))?)
    }

    /// Post `report` to [`super::DeviceConfig::report_url`] over the device's TLS settings
    /// (its client certificate included).
    pub fn send_report(&self, report: &SignedReport) -> DeviceResult<ReportSent> {
        let url = self.config().report_url();
        let transport = crate::transport::HttpTransport::with_tls(
            &url,
            crate::transport::TransferBounds::METADATA,
            &self.config().tls_settings(self.state()),
        )
        .map_err(|e| DeviceError::Tuf(crate::Error::Transport(e)))?;
        let body = report.to_bytes()?;
        let answer = transport
            .post("application/json", &body, MAX_ANSWER)
            .map_err(|e| DeviceError::Tuf(crate::Error::Transport(e)))?;
        let sequence = report.signed["sequence"].as_u64().unwrap_or(0);
        if !(200..300).contains(&answer.status) {
            return Err(DeviceError::ReportRefused {
                url,
                status: answer.status,
                reason: refusal_reason(&answer.body),
            });
        }
        Ok(ReportSent {
            url,
            sequence,
            device_id: report.signed["device_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            status: answer.status,
        })
    }

    /// Expiry of the timestamp, snapshot and targets the device trusts: the verified ones of
    /// this run, else the cached copies (stored only after they verified).
    fn trusted_expiry(&self, t: &mut TrustedReport) {
        let set = self.updater().trusted();
        t.timestamp_expires = set.timestamp().map(|v| v.signed().expires);
        t.snapshot_expires = set.snapshot().map(|v| v.signed().expires);
        t.targets_expires = set.top_targets().map(|v| v.signed().expires);
        let cached = |role: &str| cached_expiry(self.state(), role);
        t.timestamp_expires = t.timestamp_expires.or_else(|| cached("timestamp"));
        t.snapshot_expires = t.snapshot_expires.or_else(|| cached("snapshot"));
        t.targets_expires = t.targets_expires.or_else(|| cached("targets"));
    }
}

/// `signed.expires` of the cached metadata of `role`, if readable.
fn cached_expiry(state: &StateDir, role: &str) -> Option<DateTime<Utc>> {
    let path = state.metadata().join(format!("{role}.json"));
    let bytes = ota_fs::user_file::read(&path, 256 << 20).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("signed")?.get("expires")?.as_str()?.parse().ok()
}

/// The service's reason: the `error` of a JSON answer, else the text (first line, bounded).
fn refusal_reason(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return e.to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        "no reason given".into()
    } else {
        line.chars().take(300).collect()
    }
}

/// The next sequence number, saved before use (`STATE/report-sequence`).
fn next_sequence(state: &StateDir, now: DateTime<Utc>) -> DeviceResult<u64> {
    let path = state.root().join("report-sequence");
    let last = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(state_io(&path, e)),
    };
    let clock = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    let next = last.saturating_add(1).max(clock);
    ota_fs::atomic::replace(
        &path,
        next.to_string().as_bytes(),
        ota_fs::mode::PUBLIC_FILE,
    )
    .map_err(|e| DeviceError::BadState {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_only_grow_even_when_the_clock_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let now = Utc::now();
        let a = next_sequence(&state, now).unwrap();
        let b = next_sequence(&state, now - chrono::Duration::days(365)).unwrap();
        let c = next_sequence(&state, now).unwrap();
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a, u64::try_from(now.timestamp_millis()).unwrap());
    }

    #[test]
    fn refusal_reasons_come_from_json_or_text() {
        assert_eq!(
            refusal_reason(br#"{"error":"replayed report"}"#),
            "replayed report"
        );
        assert_eq!(refusal_reason(b"Forbidden\nmore"), "Forbidden");
        assert_eq!(refusal_reason(b""), "no reason given");
    }
}
