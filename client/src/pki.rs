//! Certificate and private-key files (PEM): what the TLS settings and the device identity
//! read. Every problem names the file and says what was found instead, so that a wrong file
//! is reported when it is configured, not at the first connection.
use ota_fs::user_file::UserFileError;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Largest certificate, key or CA bundle file read (1 MiB: a full public CA bundle is about
/// 200 KB), so a wrong path such as `/dev/zero` cannot exhaust the device.
pub const MAX_PEM_FILE_LEN: u64 = 1024 * 1024;

/// Why a certificate or key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The file could not be read (missing, not a regular file, too large, permissions).
    #[error(transparent)]
    File(#[from] UserFileError),
    /// The file holds no PEM block of the kind needed.
    #[error("{}: no {wanted} found: {found}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was looked for (`PEM certificate`, `PEM private key`).
        wanted: &'static str,
        /// What the file holds instead.
        found: String,
    },
    /// A PEM block is damaged (bad base64, no end line).
    #[error("{}: damaged PEM: {reason}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `CERTIFICATE` block does not hold a valid X.509 certificate.
    #[error("{}: certificate {index} is not a valid X.509 certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        /// What the parser refused.
        reason: String,
    },
    /// The private key is damaged, encrypted, or of an unsupported type.
    #[error("{}: unusable private key: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The certificate's public key is not the public half of the private key.
    #[error("{} does not match the private key {}: the certificate was issued for another key", cert.display(), key.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate's validity period is over.
    #[error("{}: the certificate expired at {not_after}", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// Its notAfter time (RFC 3339).
        not_after: String,
    },
}

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name, if it has one.
    pub subject_cn: Option<String>,
    /// Start of the validity period.
    pub not_before: chrono::DateTime<chrono::Utc>,
    /// End of the validity period.
    pub not_after: chrono::DateTime<chrono::Utc>,
    /// The DER SubjectPublicKeyInfo (outer SEQUENCE included).
    pub spki: Vec<u8>,
}

impl CertInfo {
    /// Parse a DER certificate; `path` and `index` (1-based) name it in errors.
    pub fn parse(path: &Path, index: usize, der: &[u8]) -> Result<Self, PkiError> {
        let bad = |reason: String| PkiError::BadCertificate {
            path: path.to_path_buf(),
            index,
            reason,
        };
        let (rest, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the certificate", rest.len())));
        }
        let time = |t: &x509_parser::time::ASN1Time| {
            chrono::DateTime::from_timestamp(t.timestamp(), 0)
                .ok_or_else(|| bad(format!("validity time {t} out of range")))
        };
        let validity = cert.validity();
        let subject_cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Ok(CertInfo {
            subject_cn,
            not_before: time(&validity.not_before)?,
            not_after: time(&validity.not_after)?,
            spki: cert.public_key().raw.to_vec(),
        })
    }

    /// Refuse a certificate whose validity ended before `now`. One that is not valid yet is
    /// accepted: a device clock that lags must not lock the device out (the server checks
    /// the validity with its own clock).
    pub fn check_not_expired(
        &self,
        path: &Path,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), PkiError> {
        if now > self.not_after {
            return Err(PkiError::Expired {
                path: path.to_path_buf(),
                not_after: self
                    .not_after
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
        }
        Ok(())
    }

    /// sha256 of the SubjectPublicKeyInfo, lower-case hex: the form of an SPKI pin.
    pub fn spki_sha256(&self) -> String {
        spki_sha256(&self.spki)
    }
}

/// sha256 of a DER SubjectPublicKeyInfo, lower-case hex (64 digits): what
/// `openssl pkey -pubin -outform der | sha256sum` prints for the same key.
pub fn spki_sha256(spki: &[u8]) -> String {
    hex::encode(Sha256::digest(spki))
}

/// The PEM blocks of a file: kind and DER bytes.
type Sections = Vec<(SectionKind, Vec<u8>)>;

/// Read `path` (a regular file, at most [`MAX_PEM_FILE_LEN`]) and split it into PEM blocks
/// of the kinds rustls knows; the file's bytes too, to describe what else it holds.
fn read_sections(path: &Path) -> Result<(Vec<u8>, Sections), PkiError> {
    let bytes = ota_fs::user_file::read(path, MAX_PEM_FILE_LEN)?;
    let mut sections = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let section = item.map_err(|e| PkiError::BadPem {
            path: path.to_path_buf(),
            reason: describe_pem_error(&e),
        })?;
        sections.push(section);
    }
    Ok((bytes, sections))
}

fn describe_pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "no end line {:?}",
            String::from_utf8_lossy(end_marker).trim()
        ),
        E::IllegalSectionStart { line } => format!(
            "malformed begin line {:?}",
            String::from_utf8_lossy(line).trim()
        ),
        E::Base64Decode(why) => format!("bad base64 ({why})"),
        other => other.to_string(),
    }
}

/// What a file without the wanted blocks holds, in words.
fn describe_content(bytes: &[u8], sections: &[(SectionKind, Vec<u8>)]) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return "the file is empty".into();
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        // DER starts with a SEQUENCE tag: the usual mistake is a binary certificate.
        return if bytes.first() == Some(&0x30) {
            "the file is binary (DER?); PEM text is required".into()
        } else {
            "the file is binary, not PEM text".into()
        };
    };
    let mut labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .filter_map(|l| l.strip_suffix("-----"))
        .collect();
    labels.dedup();
    if labels.is_empty() && sections.is_empty() {
        return "the file holds no PEM block".into();
    }
    format!("the file holds only {}", labels.join(", "))
}

/// The certificates of a PEM file, in file order, each checked to parse as X.509. At least
/// one is required.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = read_ca_certificates(path)?;
    for (i, der) in certs.iter().enumerate() {
        CertInfo::parse(path, i + 1, der)?;
    }
    Ok(certs)
}

/// The certificates of a CA bundle without parsing them here: which of them are usable as
/// trust anchors is for the caller to decide (a system bundle may hold a few odd ones).
pub fn read_ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let (bytes, sections) = read_sections(path)?;
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if certs.is_empty() {
        return Err(PkiError::Missing {
            path: path.to_path_buf(),
            wanted: "PEM certificate (BEGIN CERTIFICATE)",
            found: describe_content(&bytes, &sections),
        });
    }
    Ok(certs)
}

/// The one private key of a PEM file (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or PKCS#1
/// `RSA PRIVATE KEY`), checked to be usable for signing.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let (bytes, sections) = read_sections(path)?;
    let mut keys = sections.iter().filter_map(|(kind, der)| {
        let key = match kind {
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.clone().into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.clone().into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.clone().into()),
            _ => return None,
        };
        Some(key)
    });
    let Some(key) = keys.next() else {
        let mut found = describe_content(&bytes, &sections);
        if bytes
            .windows(b"ENCRYPTED PRIVATE KEY".len())
            .any(|w| w == b"ENCRYPTED PRIVATE KEY")
        {
            found.push_str(" (a passphrase-protected key: store it unencrypted, mode 0600)");
        }
        return Err(PkiError::Missing {
            path: path.to_path_buf(),
            wanted: "PEM private key",
            found,
        });
    };
    if keys.next().is_some() {
        return Err(PkiError::BadKey {
            path: path.to_path_buf(),
            reason: "the file holds several private keys; keep only the device's".into(),
        });
    }
    key_spki(path, &key)?;
    Ok(key)
}

/// The crypto provider of every TLS connection and key check: *ring*, as ureq uses.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// PEM text of DER `blocks` labelled `label` (`CERTIFICATE`), 64 base64 characters a line.
pub fn to_pem<'a>(label: &str, blocks: impl IntoIterator<Item = &'a [u8]>) -> String {
    use base64::Engine;
    let mut out = String::new();
    for der in blocks {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for line in b64.as_bytes().chunks(64) {
            // Base64 output is ASCII.
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
    }
    out
}

/// The DER SubjectPublicKeyInfo of a private key (ECDSA P-256/P-384, Ed25519, RSA).
pub fn key_spki(path: &Path, key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, PkiError> {
    let bad = |reason: String| PkiError::BadKey {
        path: path.to_path_buf(),
        reason,
    };
    let signing = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| bad(e.to_string()))?;
    let spki = signing
        .public_key()
        .ok_or_else(|| bad("its public key cannot be derived (unsupported key type)".into()))?;
    Ok(spki.as_ref().to_vec())
}

/// Check that the first certificate of `certs` (from `cert_path`) is for `key` (from
/// `key_path`).
pub fn check_pair(
    cert_path: &Path,
    certs: &[CertificateDer<'_>],
    key_path: &Path,
    key: &PrivateKeyDer<'_>,
) -> Result<CertInfo, PkiError> {
    let leaf = certs.first().ok_or_else(|| PkiError::Missing {
        path: cert_path.to_path_buf(),
        wanted: "PEM certificate (BEGIN CERTIFICATE)",
        found: "no certificate".into(),
    })?;
    let info = CertInfo::parse(cert_path, 1, leaf)?;
    if info.spki != key_spki(key_path, key)? {
        return Err(PkiError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn cert_and_key() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["device".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn certificates_keys_and_what_else_a_file_holds() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key();
        let cert_path = write(d.path(), "c.pem", cert.as_bytes());
        let key_path = write(d.path(), "k.pem", key.as_bytes());
        let certs = read_certificates(&cert_path).unwrap();
        let again = write(
            d.path(),
            "again.pem",
            to_pem("CERTIFICATE", certs.iter().map(|c| c.as_ref())).as_bytes(),
        );
        assert_eq!(read_certificates(&again).unwrap(), certs);
        let k = read_private_key(&key_path).unwrap();
        let info = check_pair(&cert_path, &certs, &key_path, &k).unwrap();
        assert_eq!(info.spki_sha256().len(), 64);
        info.check_not_expired(&cert_path, chrono::Utc::now())
            .unwrap();
        let err = info
            .check_not_expired(&cert_path, info.not_after + chrono::Duration::days(1))
            .unwrap_err();
        assert!(err.to_string().contains("expired at"), "{err}");

        // A key where a certificate is expected, and the reverse.
        let err = read_certificates(&key_path).unwrap_err().to_string();
        assert!(err.contains("holds only PRIVATE KEY"), "{err}");
        let err = read_private_key(&cert_path).unwrap_err().to_string();
        assert!(err.contains("no PEM private key found"), "{err}");
        assert!(err.contains("holds only CERTIFICATE"), "{err}");

        // Another key: mismatch named with both files.
        let (_, other_key) = cert_and_key();
        let other_path = write(d.path(), "o.pem", other_key.as_bytes());
        let other = read_private_key(&other_path).unwrap();
        let err = check_pair(&cert_path, &certs, &other_path, &other).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");

        // Empty, binary, damaged and non-X.509 contents.
        let empty = write(d.path(), "e.pem", b"\n");
        assert!(read_certificates(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let der = write(d.path(), "c.der", certs[0].as_ref());
        assert!(read_certificates(&der)
            .unwrap_err()
            .to_string()
            .contains("binary (DER?)"));
        let cut = write(d.path(), "cut.pem", &cert.as_bytes()[..cert.len() - 30]);
        assert!(matches!(
            read_certificates(&cut).unwrap_err(),
            PkiError::BadPem { .. }
        ));
        let junk = write(
            d.path(),
            "j.pem",
            b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        );
        assert!(matches!(
            read_certificates(&junk).unwrap_err(),
            PkiError::BadCertificate { index: 1, .. }
        ));
        let junk_key = write(
            d.path(),
            "jk.pem",
            b"-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n",
        );
        assert!(matches!(
            read_private_key(&junk_key).unwrap_err(),
            PkiError::BadKey { .. }
        ));
        assert!(matches!(
            read_certificates(&d.path().join("absent.pem")).unwrap_err(),
            PkiError::File(_)
        ));
    }
}
