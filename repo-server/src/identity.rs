//! The identity of a device that presented a verified client certificate (mutual TLS), and the
//! route policy that decides which paths need one.
//!
//! A [`DeviceIdentity`] only ever comes from the TLS layer after rustls' `WebPkiClientVerifier`
//! accepted the device's certificate chain (issued by a `--client-ca` certificate, valid now, not
//! revoked by a `--crl`). The server puts it into every request of that connection as a request
//! extension (`Arc<DeviceIdentity>`); nothing a client sends in HTTP can put one there, so
//! handlers may trust it.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use x509_cert::der::oid::db::rfc4519;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// A device authenticated by its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The subject's common name (CN), if the certificate has one that is text.
    pub common_name: Option<String>,
    /// The subject alternative names, in certificate order (only the kinds listed in
    /// [`SubjectAltNameEntry`]; others are skipped).
    pub subject_alt_names: Vec<SubjectAltNameEntry>,
    /// SHA-256 of the leaf certificate's DER encoding (what `openssl x509 -fingerprint -sha256`
    /// prints); stable for one certificate, changes when the device gets a new one.
    pub sha256: [u8; 32],
}

/// One subject alternative name of a device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltNameEntry {
    /// `dNSName`.
    Dns(String),
    /// `uniformResourceIdentifier` (e.g. a SPIFFE ID or `urn:device:…`).
    Uri(String),
    /// `rfc822Name` (an e-mail address).
    Email(String),
    /// `iPAddress`.
    Ip(IpAddr),
}

impl fmt::Display for SubjectAltNameEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectAltNameEntry::Dns(s) => write!(f, "DNS:{s}"),
            SubjectAltNameEntry::Uri(s) => write!(f, "URI:{s}"),
            SubjectAltNameEntry::Email(s) => write!(f, "email:{s}"),
            SubjectAltNameEntry::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

impl DeviceIdentity {
    /// The identity described by a (verified) leaf certificate in DER.
    ///
    /// Never fails: the fingerprint alone identifies the certificate, so a subject or SAN
    /// extension this parser cannot read just leaves those fields empty.
    pub fn from_leaf_der(der: &[u8]) -> Self {
        let sha256: [u8; 32] = Sha256::digest(der).into();
        let (common_name, subject_alt_names) = match Certificate::from_der(der) {
            Ok(cert) => (common_name(&cert), subject_alt_names(&cert)),
            Err(e) => {
                tracing::debug!(error = %e, "client certificate fields not readable");
                (None, Vec::new())
            }
        };
        DeviceIdentity {
            common_name,
            subject_alt_names,
            sha256,
        }
    }

    /// [`DeviceIdentity::sha256`] as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The subject alternative names joined with `,` (for log lines).
    pub fn subject_alt_names_text(&self) -> String {
        let names: Vec<String> = self
            .subject_alt_names
            .iter()
            .map(ToString::to_string)
            .collect();
        names.join(",")
    }
}

/// The first common name of the subject that is a text string.
pub(crate) fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == rfc4519::CN)
        .find_map(|atv| directory_string(atv.value.tag(), atv.value.value()))
}

/// Text of a DirectoryString-like value (RFC 5280 §4.1.2.4); `None` for other types.
fn directory_string(tag: Tag, bytes: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::TeletexString => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

fn subject_alt_names(cert: &Certificate) -> Vec<SubjectAltNameEntry> {
    let san = match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_critical, san))) => san,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "client certificate SAN extension not readable");
            return Vec::new();
        }
    };
    san.0
        .iter()
        .filter_map(|name| match name {
            GeneralName::DnsName(s) => Some(SubjectAltNameEntry::Dns(s.as_str().to_owned())),
            GeneralName::UniformResourceIdentifier(s) => {
                Some(SubjectAltNameEntry::Uri(s.as_str().to_owned()))
            }
            GeneralName::Rfc822Name(s) => Some(SubjectAltNameEntry::Email(s.as_str().to_owned())),
            GeneralName::IpAddress(o) => ip_address(o.as_bytes()).map(SubjectAltNameEntry::Ip),
            _ => None,
        })
        .collect()
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// Which request paths need a verified device certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePolicy {
    /// No client authentication (plain HTTP, or TLS without `--client-ca`).
    Open,
    /// Every path needs a verified device (`--client-ca`); the TLS handshake already refuses
    /// clients without a certificate, the handler checks again.
    RequireDevice,
    /// `/metadata/` is open (public TUF metadata, e.g. mirrored on a CDN); every other path needs
    /// a verified device (`--client-ca` with `--open-metadata`).
    OpenMetadata,
}

impl RoutePolicy {
    /// Whether a request for `path` (the raw URL path) needs a verified device.
    ///
    /// The raw prefix is what [`crate::resolve::parse`] maps to the metadata tree, and it refuses
    /// `..` segments, so `/metadata/../targets/x` cannot reach a target through the open prefix.
    pub fn requires_device(self, path: &str) -> bool {
        match self {
            RoutePolicy::Open => false,
            RoutePolicy::RequireDevice => true,
            RoutePolicy::OpenMetadata => !path.starts_with("/metadata/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_protects_everything_but_metadata_when_asked() {
        assert!(!RoutePolicy::Open.requires_device("/targets/x"));
        assert!(RoutePolicy::RequireDevice.requires_device("/metadata/root.json"));
        assert!(!RoutePolicy::OpenMetadata.requires_device("/metadata/root.json"));
        assert!(RoutePolicy::OpenMetadata.requires_device("/targets/x"));
        assert!(RoutePolicy::OpenMetadata.requires_device("/metadata"));
        assert!(RoutePolicy::OpenMetadata.requires_device("//metadata/x"));
        assert!(RoutePolicy::OpenMetadata.requires_device("/"));
    }

    #[test]
    fn directory_strings_and_ip_addresses() {
        assert_eq!(
            directory_string(Tag::Utf8String, "dev-1".as_bytes()).as_deref(),
            Some("dev-1")
        );
        assert_eq!(
            directory_string(Tag::BmpString, &[0, b'a', 0, b'b']).as_deref(),
            Some("ab")
        );
        assert_eq!(directory_string(Tag::OctetString, b"x"), None);
        assert_eq!(
            ip_address(&[127, 0, 0, 1]),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(ip_address(&[1, 2, 3]), None);
    }

    #[test]
    fn identity_of_a_generated_certificate() {
        use rcgen::{CertificateParams, DnType, KeyPair, SanType};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Fleet");
        params
            .distinguished_name
            .push(DnType::CommonName, "device-42");
        params.subject_alt_names = vec![
            SanType::DnsName("dev42.example".try_into().unwrap()),
            SanType::URI("urn:ota:device:42".try_into().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::IpAddress([10, 0, 0, 42].into()),
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = DeviceIdentity::from_leaf_der(cert.der());
        assert_eq!(id.common_name.as_deref(), Some("device-42"));
        assert_eq!(
            id.subject_alt_names,
            vec![
                SubjectAltNameEntry::Dns("dev42.example".into()),
                SubjectAltNameEntry::Uri("urn:ota:device:42".into()),
                SubjectAltNameEntry::Email("ops@example.com".into()),
                SubjectAltNameEntry::Ip(IpAddr::from([10, 0, 0, 42])),
            ]
        );
        assert_eq!(
            id.subject_alt_names_text(),
            "DNS:dev42.example,URI:urn:ota:device:42,email:ops@example.com,IP:10.0.0.42"
        );
        assert_eq!(id.sha256_hex(), hex::encode(Sha256::digest(cert.der())));
    }

    #[test]
    fn garbage_certificate_still_has_a_fingerprint() {
        let id = DeviceIdentity::from_leaf_der(b"not a certificate");
        assert_eq!(id.common_name, None);
        assert_eq!(id.sha256_hex().len(), 64);
    }
}
