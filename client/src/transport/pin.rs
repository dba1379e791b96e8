//! Server key pinning: the sha256 of the server's SubjectPublicKeyInfo, checked during the
//! TLS handshake in addition to, or instead of, a CA chain.
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use std::sync::Arc;

/// A pinned server key: sha256 of its DER SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpkiPin([u8; 32]);

impl SpkiPin {
    /// Parse 64 hex digits (either case).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(format!(
                "{} characters; a pin is 64 hex digits (sha256)",
                text.len()
            ));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out)
            .map_err(|_| "not hexadecimal; a pin is 64 hex digits (sha256)".to_string())?;
        Ok(SpkiPin(out))
    }

    /// Lower-case hex, as stored in `config.json`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn matches(&self, spki: &[u8]) -> bool {
        use sha2::Digest;
        sha2::Sha256::digest(spki)[..] == self.0
    }
}

/// The server's key is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("server key does not match the pinned SPKI sha256 (pinned {expected}, server has {found})")]
pub struct PinMismatch {
    /// The pin.
    pub expected: String,
    /// sha256 of the key the server presented.
    pub found: String,
}

/// Verifies the server's end-entity key against a pin; with `ca`, the CA chain and host name
/// as well (both must pass). Without `ca`, any certificate carrying the pinned key is
/// accepted, self-signed or expired: the pin is the server's identity then. The handshake
/// signature is checked in every case, so only the holder of the pinned key gets through.
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    pub(crate) pin: SpkiPin,
    pub(crate) ca: Option<Arc<WebPkiServerVerifier>>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(ca) = &self.ca {
            ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        }
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let spki = cert.public_key().raw;
        if self.pin.matches(spki) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: self.pin.to_hex(),
                    found: crate::pki::spki_sha256(spki),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_as_64_hex_digits() {
        let hex = "AB".repeat(32);
        let pin = SpkiPin::parse(&hex).unwrap();
        assert_eq!(pin.to_hex(), "ab".repeat(32));
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            let err = SpkiPin::parse(bad).unwrap_err();
            assert!(err.contains("64 hex digits"), "{bad}: {err}");
        }
        let spki = b"some key";
        let pin = SpkiPin::parse(&crate::pki::spki_sha256(spki)).unwrap();
        assert!(pin.matches(spki));
        assert!(!pin.matches(b"another key"));
    }
}
