//! Device status reports (`POST /api/v1/reports`): verified ([`verify`]), then stored through
//! the store thread ([`sink`]) in SQLite or PostgreSQL (`ota-fleet`).
//!
//! Answers, JSON with `no-store`: 200 `{"accepted":true,"device_id":…,"sequence":…}`; 400
//! malformed; 403 certificate or signature refused, or the body claims another device; 409 a
//! replay (sequence not above the last stored); 413 too large; 503 store busy or failing
//! (`Retry-After`); 404 when the server takes no reports.
pub mod sink;
pub mod verify;

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use ota_fleet::RecordOutcome;
use rustls::server::danger::ClientCertVerifier;

use crate::identity::DeviceIdentity;
use crate::response::{json, ResponseBody};
use crate::tls::device_ca::DeviceCa;
use crate::tls::TlsState;
use sink::{ReportSink, SinkError};

/// The report route.
pub const PATH: &str = "/api/v1/reports";

/// Where device certificates are verified: the live mutual-TLS verifier (so CRL reloads
/// apply), or `--report-ca` for servers behind a TLS-terminating proxy.
#[derive(Clone, Debug)]
pub(crate) enum DeviceVerifier {
    /// The TLS layer's `--client-ca` verifier.
    Tls(Arc<TlsState>),
    /// `--report-ca` and the `--crl` files.
    Ca(Arc<DeviceCa>),
}

impl DeviceVerifier {
    fn current(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        match self {
            DeviceVerifier::Tls(t) => t.client_verifier(),
            DeviceVerifier::Ca(ca) => Some(ca.verifier()),
        }
    }
}

/// The report service: verification and storage.
#[derive(Clone)]
pub(crate) struct Reports {
    /// Verifies device certificates.
    pub(crate) verifier: DeviceVerifier,
    /// Stores verified reports.
    pub(crate) sink: ReportSink,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports").finish_non_exhaustive()
    }
}

fn refused(status: StatusCode, reason: &str) -> Response<ResponseBody> {
    json(
        status,
        &serde_json::json!({ "accepted": false, "error": reason }),
    )
}

/// Handle one posted report.
pub(crate) async fn handle(
    reports: Option<&Reports>,
    body: Bytes,
    device: Option<&DeviceIdentity>,
) -> Response<ResponseBody> {
    let Some(reports) = reports else {
        return refused(
            StatusCode::NOT_FOUND,
            "this server takes no reports (start it with --client-ca or --report-ca)",
        );
    };
    let Some(verifier) = reports.verifier.current() else {
        return refused(StatusCode::NOT_FOUND, "this server takes no reports");
    };
    let now = chrono::Utc::now();
    let record = match verify::verify(&body, device, &verifier, now) {
        Ok(r) => r,
        Err(r) => {
            tracing::warn!(status = r.status.as_u16(), reason = %r.reason, "report refused");
            return refused(r.status, &r.reason);
        }
    };
    let (device_id, sequence) = (record.device_id.clone(), record.sequence);
    match reports.sink.submit(record).await {
        Ok(RecordOutcome::Stored) => {
            tracing::debug!(device = %device_id, sequence, "report stored");
            json(
                StatusCode::OK,
                &serde_json::json!({"accepted": true, "device_id": device_id, "sequence": sequence}),
            )
        }
        Ok(RecordOutcome::Replayed { last_sequence }) => {
            let reason = format!(
                "replayed report: sequence {sequence} of {device_id} is not above the last stored {last_sequence}"
            );
            tracing::warn!(device = %device_id, sequence, last_sequence, "report refused: replay");
            refused(StatusCode::CONFLICT, &reason)
        }
        Ok(RecordOutcome::Invalid(e)) => refused(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => {
            let mut resp = refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            if matches!(e, SinkError::Busy | SinkError::Store(_)) {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            resp
        }
    }
}
