//! CRL signatures and dates, and the expiry warnings of a running server.
//!
//! webpki checks a CRL's signature only when a device certificate from that CA is verified
//! (and then refuses the device, "revocation status unknown"), and it does not expose that
//! check. So each CRL is verified here when it is loaded, with the key of the `--client-ca`
//! certificate it names as issuer and the provider's signature algorithms (the same ones webpki
//! uses): a CRL made with another key under the same CA name is refused at start-up, and kept
//! out by a reload, instead of turning every device of that CA away at its next handshake.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustls::crypto::WebPkiSupportedAlgorithms;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, Encode, Header, Reader, SliceReader};
use x509_cert::Certificate;

/// A server certificate that expires within this time is warned about.
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// How often a warning about a lapsed CRL or an expiring server certificate is repeated while
/// the condition lasts (it is logged at once when it starts and at every load or reload).
pub const EXPIRY_WARN_REPEAT: Duration = Duration::from_secs(3600);

/// The dates of a loaded CRL that matter while the server runs.
#[derive(Debug, Clone)]
pub(crate) struct CrlDates {
    pub file: PathBuf,
    /// 1-based position of the CRL in its file.
    pub block: usize,
    /// The issuer's name, for the log (`CN=...`).
    pub issuer: String,
    /// nextUpdate as seconds since the epoch (`None`: the CRL has none).
    pub next_update: Option<u64>,
    pub next_update_text: Option<String>,
}

/// Why a CRL's signature was not accepted.
pub(crate) enum SignatureProblem {
    /// No `--client-ca` certificate has the CRL's issuer name.
    UnknownIssuer,
    /// A CA with that name exists but the signature does not verify with its key.
    WrongKey { issuer: String },
    /// The CRL does not parse (x509-cert is stricter than webpki in a few corners).
    Unparsable(String),
}

/// Verifies `der` (one CRL) against the CA certificates and returns its dates.
pub(crate) fn verify(
    der: &[u8],
    cas: &[Certificate],
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(String, Option<u64>, Option<String>), SignatureProblem> {
    let crl =
        CertificateList::from_der(der).map_err(|e| SignatureProblem::Unparsable(e.to_string()))?;
    let tbs = tbs_bytes(der).map_err(|e| SignatureProblem::Unparsable(e.to_string()))?;
    let issuer = crl.tbs_cert_list.issuer.to_string();
    let sig_alg = contents(&crl.signature_algorithm)
        .map_err(|e| SignatureProblem::Unparsable(e.to_string()))?;
    let Some(signature) = crl.signature.as_bytes() else {
        return Err(SignatureProblem::Unparsable(
            "the signature is not a whole number of bytes".into(),
        ));
    };
    let mut named = false;
    for ca in cas
        .iter()
        .filter(|ca| ca.tbs_certificate.subject == crl.tbs_cert_list.issuer)
    {
        named = true;
        let spki = &ca.tbs_certificate.subject_public_key_info;
        let Ok(key_alg) = contents(&spki.algorithm) else {
            continue;
        };
        let Some(public_key) = spki.subject_public_key.as_bytes() else {
            continue;
        };
        let verified = algs.all.iter().any(|alg| {
            alg.signature_alg_id().as_ref() == sig_alg.as_slice()
                && alg.public_key_alg_id().as_ref() == key_alg.as_slice()
                && alg.verify_signature(public_key, tbs, signature).is_ok()
        });
        if verified {
            let next = crl.tbs_cert_list.next_update;
            return Ok((
                issuer,
                next.map(|t| t.to_unix_duration().as_secs()),
                next.map(|t| t.to_date_time().to_string()),
            ));
        }
    }
    Err(if named {
        SignatureProblem::WrongKey { issuer }
    } else {
        SignatureProblem::UnknownIssuer
    })
}

/// The exact bytes of the tbsCertList (what the signature covers).
fn tbs_bytes(der: &[u8]) -> x509_cert::der::Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    Header::decode(&mut reader)?;
    reader.tlv_bytes()
}

/// An AlgorithmIdentifier as pki-types compares it: the DER contents, without the SEQUENCE
/// tag and length.
fn contents<T: Encode>(value: &T) -> x509_cert::der::Result<Vec<u8>> {
    let der = value.to_der()?;
    let mut reader = SliceReader::new(&der)?;
    let header = Header::decode(&mut reader)?;
    Ok(reader.read_slice(header.length)?.to_vec())
}

/// What the expiry warnings need to know about the loaded configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExpiryInfo {
    pub cert: PathBuf,
    /// notAfter of the server certificate, seconds since the epoch, and as text.
    pub cert_not_after: Option<(u64, String)>,
    pub crls: Vec<CrlDates>,
}

/// When each warning was last logged, so that it repeats every [`EXPIRY_WARN_REPEAT`] and
/// not at every check.
#[derive(Debug, Default)]
pub(crate) struct Warned {
    cert: Option<Instant>,
    crls: Option<Instant>,
}

fn due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.duration_since(t) >= EXPIRY_WARN_REPEAT)
}

/// Logs the warnings whose condition holds at `unix_now` and that are due; `warned` records
/// them. A condition that no longer holds is forgotten, so it is logged at once if it returns.
pub(crate) fn warn_expiry(info: &ExpiryInfo, warned: &mut Warned, unix_now: u64) {
    let now = Instant::now();
    let expiring = info
        .cert_not_after
        .as_ref()
        .filter(|(t, _)| *t <= unix_now + CERT_EXPIRY_WARNING.as_secs());
    match expiring {
        Some((t, text)) if due(warned.cert, now) => {
            warned.cert = Some(now);
            if *t <= unix_now {
                tracing::warn!(
                    cert = %info.cert.display(),
                    not_after = %text,
                    "the server certificate has expired; clients refuse it: renew it and reload (SIGHUP)"
                );
            } else {
                let days_left = (*t - unix_now) / 86_400;
                tracing::warn!(
                    cert = %info.cert.display(),
                    not_after = %text,
                    days_left,
                    "the server certificate expires within 14 days: renew it and reload (SIGHUP)"
                );
            }
        }
        Some(_) => {}
        None => warned.cert = None,
    }
    let lapsed: Vec<&CrlDates> = info
        .crls
        .iter()
        .filter(|c| c.next_update.is_some_and(|t| t < unix_now))
        .collect();
    if lapsed.is_empty() {
        warned.crls = None;
    } else if due(warned.crls, now) {
        warned.crls = Some(now);
        for c in lapsed {
            tracing::warn!(
                crl = %c.file.display(),
                block = c.block,
                issuer = %c.issuer,
                next_update = c.next_update_text.as_deref(),
                "a --crl is past its nextUpdate and is still used: publish a fresh CRL (`ota-ca crl`) and copy it over this file"
            );
        }
    }
}
