//! The multi-party offline signing ceremony: the next version of targets or root is signed
//! by several key holders, each on their own (air-gapped) machine with only their own key,
//! and published once every threshold is met; an audit log records each step.
//!
//! 1. [`request`]: on the release machine, [`SigningRequest::create`] makes the request
//!    file: the unsigned metadata ([`next`]), its hash, who may sign, the thresholds, and a
//!    summary of what changes ([`summary`]);
//! 2. [`signature`]: each key holder checks the request (against a root they trust:
//!    [`trusted`]) and makes a detached signature file with [`DetachedSignature::sign`] (no
//!    repository needed);
//! 3. [`combine`]: back on the release machine, [`combine::combine`] checks the request
//!    still applies and each signature against it ([`tally`]), and publishes when the
//!    thresholds are met ([`publish`]), else changes no metadata;
//! 4. [`audit`]: the hash-chained, append-only log of requests, signatures, publications and
//!    refusals, `REPO/audit/log.jsonl`.
//!
//! Errors are [`CeremonyError`] ([`error`]), which wraps [`crate::RepoError`].
pub mod audit;
pub mod combine;
pub mod error;
pub mod next;
pub mod publish;
pub mod request;
pub mod signature;
pub mod summary;
pub mod tally;
pub mod trusted;

pub use error::{CeremonyError, ThresholdCount};
pub use request::{CeremonyRole, SigningRequest};
pub use signature::DetachedSignature;

/// Decode a hex string (signatures in files are hex).
fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("not hex at offset {i}"))
        })
        .collect()
}
