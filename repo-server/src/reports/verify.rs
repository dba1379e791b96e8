//! Checking a posted status report: its certificate chain against the device CA (and CRLs),
//! its signature against that certificate's key, and its claimed device id against the
//! certificate. The device is identified by the verified certificate, never by the body.
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use hyper::StatusCode;
use ota_fleet::ReportRecord;
use ota_formats::crypto::Key;
use ota_formats::report::{ReportError, SignedReport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

use crate::identity::DeviceIdentity;

/// Why a report was refused: the HTTP status and a reason for the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 (malformed), 403 (not this device's, bad certificate), 413 (too large).
    pub status: StatusCode,
    /// One line for the device and the log.
    pub reason: String,
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// Verify `body`, posted over a connection whose verified client certificate is `connection`
/// (mutual TLS) or none, at `now`.
pub fn verify(
    body: &[u8],
    connection: Option<&DeviceIdentity>,
    verifier: &Arc<dyn ClientCertVerifier>,
    now: DateTime<Utc>,
) -> Result<ReportRecord, Refusal> {
    let signed = SignedReport::parse(body).map_err(|e| match e {
        ReportError::TooLarge { .. } => refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        e => refuse(StatusCode::BAD_REQUEST, e.to_string()),
    })?;
    let pem = signed.certificate.as_deref().ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "the report carries no device certificate",
        )
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                format!("device certificate: {e:?}"),
            )
        })?;
    let (leaf, intermediates) = chain.split_first().ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "the report's certificate field holds no certificate",
        )
    })?;
    let identity = DeviceIdentity::from_leaf_der(leaf.as_ref());
    if let Some(conn) = connection {
        // Over mutual TLS the report must be the connection's own device's: a device may not
        // relay another device's reports through its own authenticated connection.
        if conn.sha256 != identity.sha256 {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "the report is for certificate {} but the connection authenticated {}",
                    identity.sha256_hex(),
                    conn.sha256_hex()
                ),
            ));
        }
    }
    let unix = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now.timestamp()).unwrap_or(0),
    ));
    verifier
        .verify_client_cert(leaf, intermediates, unix)
        .map_err(|e| {
            refuse(
                StatusCode::FORBIDDEN,
                format!("device certificate refused: {}", describe(&e)),
            )
        })?;
    let cert = Certificate::from_der(leaf.as_ref()).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("device certificate does not parse: {e}"),
        )
    })?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("device key: {e}")))?;
    let key = Key::ecdsa_p256_from_spki_der(&spki).map_err(|e| {
        refuse(
            StatusCode::FORBIDDEN,
            format!("device certificate key cannot sign reports: {e}"),
        )
    })?;
    let report = signed.verify(&key).map_err(|e| match e {
        ReportError::NotSignedByDevice { .. } | ReportError::BadSignature { .. } => {
            refuse(StatusCode::FORBIDDEN, e.to_string())
        }
        e => refuse(StatusCode::BAD_REQUEST, e.to_string()),
    })?;
    let device_id = identity.common_name.clone().ok_or_else(|| {
        refuse(
            StatusCode::FORBIDDEN,
            "the device certificate has no common name (the device id)",
        )
    })?;
    if report.device_id != device_id {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "the report claims device {:?} but is signed with the certificate of {device_id:?}",
                report.device_id
            ),
        ));
    }
    let not_after = cert.tbs_certificate.validity.not_after.to_unix_duration();
    let installed_version = report.installed.as_ref().map(|i| i.version.clone());
    Ok(ReportRecord {
        device_id,
        cert_sha256: identity.sha256_hex(),
        cert_not_after: i64::try_from(not_after.as_secs())
            .ok()
            .and_then(|s| Utc.timestamp_opt(s, 0).single()),
        sequence: report.sequence,
        generated_at: report.generated_at,
        received_at: now,
        update_state: report.update_state.clone(),
        last_error: report.last_error.clone(),
        installed_version,
        root_version: report.trusted.root_version,
        metadata_expires: Some(report.trusted.earliest_expiry()),
        // Parsed as JSON above, so valid UTF-8.
        report_json: String::from_utf8_lossy(body).into_owned(),
    })
}

/// A rustls certificate error in words.
fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::Revoked) => "revoked".into(),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "expired".into()
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => "not issued by the device CA".into(),
        rustls::Error::InvalidCertificate(C::BadSignature) => {
            "its signature does not verify with the device CA's key (another CA of the same name?)"
                .into()
        }
        other => other.to_string(),
    }
}
