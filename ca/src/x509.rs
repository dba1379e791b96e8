//! Reading what comes from outside (CSRs, certificates, CRLs) with `x509-parser`, and
//! checking the names that go into certificates.
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use rcgen::string::Ia5String;
use rcgen::SanType;
use std::net::IpAddr;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// Longest common name (X.520 ub-common-name).
const MAX_CN: usize = 64;

/// The DER inside `bytes`: the first PEM block with one of `labels`, or `bytes` themselves
/// when they look like DER (a SEQUENCE).
pub(crate) fn pem_or_der(bytes: &[u8], labels: &[&str], what: &str) -> Result<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let hint = format!(
        "expected a PEM file (-----BEGIN {}-----) or DER",
        labels.first().copied().unwrap_or("")
    );
    let pem = match x509_parser::pem::parse_x509_pem(bytes) {
        Ok((_, pem)) => pem,
        Err(e) => return Err(Error::input(format!("{what} is not PEM or DER: {e}"), hint)),
    };
    if !labels.contains(&pem.label.as_str()) {
        return Err(Error::input(
            format!("{what} holds a PEM {:?} block", pem.label),
            hint,
        ));
    }
    Ok(pem.contents)
}

/// Check a device id (the CN of a device certificate): 1–64 of `[A-Za-z0-9._-]`, so it is safe
/// in file names, logs and URLs.
pub fn validate_device_id(cn: &str) -> Result<()> {
    let ok = !cn.is_empty()
        && cn.len() <= MAX_CN
        && cn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::input(
            format!("{cn:?} is not a valid device id (the CSR's CN)"),
            "a device id is 1 to 64 characters of A-Z a-z 0-9 . _ - (make the CSR with -subj /CN=DEVICE-ID)",
        ))
    }
}

/// Check a CA name: 1–64 printable characters (it becomes the CA certificate's CN).
pub(crate) fn validate_ca_name(name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= MAX_CN
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::input(
            format!("{name:?} is not a usable CA name"),
            "give 1 to 64 printable characters, e.g. --name \"Example Fleet CA\"",
        ))
    }
}

/// A DNS name as this CA accepts it for servers: labels of letters, digits and `-`, not
/// starting or ending with `-`, at most 253 characters; a leading `*.` wildcard is allowed.
fn valid_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && name.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// One subject alternative name: what goes into the certificate and its text form.
pub(crate) type San = (SanType, String);

fn ia5(s: &str, what: &str) -> Result<Ia5String> {
    Ia5String::try_from(s).map_err(|_| {
        Error::input(
            format!("{what} {s:?} is not ASCII"),
            "use ASCII (IDNA A-labels for international domain names)",
        )
    })
}

/// The server name given with `--name`: a DNS name or an IP address, as a SAN.
pub(crate) fn server_name_san(name: &str) -> Result<San> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok((SanType::IpAddress(ip), format!("IP:{ip}")));
    }
    if !valid_dns_name(name) {
        return Err(Error::input(
            format!("{name:?} is not a valid host name or IP address"),
            "give the name clients connect to, e.g. --name ota.example.com",
        ));
    }
    let lower = name.to_ascii_lowercase();
    Ok((
        SanType::DnsName(ia5(&lower, "DNS name")?),
        format!("DNS:{lower}"),
    ))
}

/// A `--san` value: `DNS:name` or `IP:address`.
pub(crate) fn parse_san(s: &str) -> Result<San> {
    let bad = || {
        Error::input(
            format!("{s:?} is not a subject alternative name"),
            "write --san DNS:ota.example.com or --san IP:192.0.2.10",
        )
    };
    let (kind, value) = s.split_once(':').ok_or_else(bad)?;
    match kind.to_ascii_uppercase().as_str() {
        "DNS" => {
            if value.parse::<IpAddr>().is_ok() || !valid_dns_name(value) {
                return Err(bad());
            }
            let lower = value.to_ascii_lowercase();
            Ok((
                SanType::DnsName(ia5(&lower, "DNS name")?),
                format!("DNS:{lower}"),
            ))
        }
        "IP" => {
            let ip: IpAddr = value.parse().map_err(|_| bad())?;
            Ok((SanType::IpAddress(ip), format!("IP:{ip}")))
        }
        _ => Err(bad()),
    }
}

/// A verified certificate signing request: what the CA takes from it.
pub(crate) struct DeviceRequest {
    /// The subject's CN (not yet validated as a device id).
    pub cn: String,
    /// Requested subject alternative names.
    pub sans: Vec<San>,
    /// The public key.
    pub public_key: rcgen::SubjectPublicKeyInfo,
}

const CSR_HINT: &str = "make the CSR with the device's own key, e.g. openssl req -new -key device.key -subj /CN=DEVICE-ID -out device.csr";

/// Parse a CSR (PEM or DER) and verify its self-signature: the request must be signed by the
/// key it carries, which proves that whoever asks holds that key. Only the CN and the subject
/// alternative names are taken from it; the certificate's profile (key usage, extended key
/// usage, CA flag) is decided by the CA, whatever else the request asks for.
pub(crate) fn parse_csr(bytes: &[u8]) -> Result<DeviceRequest> {
    let der = pem_or_der(
        bytes,
        &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
        "the CSR",
    )?;
    let csr = match X509CertificationRequest::from_der(&der) {
        Ok(([], csr)) => csr,
        Ok(_) => {
            return Err(Error::input(
                "the CSR has trailing bytes after the request",
                CSR_HINT,
            ))
        }
        Err(e) => {
            return Err(Error::input(
                format!("the CSR is not a valid PKCS#10 certificate signing request: {e}"),
                CSR_HINT,
            ))
        }
    };
    if csr.verify_signature().is_err() {
        return Err(Error::input(
            "the CSR's signature does not verify with the public key it contains (the request is damaged or was signed with another key)",
            CSR_HINT,
        ));
    }
    let info = &csr.certification_request_info;
    let cns: Vec<_> = info.subject.iter_common_name().collect();
    let cn = match cns.as_slice() {
        [one] => one.as_str().map_err(|_| {
            Error::input(
                "the CSR's CN is not a readable string",
                "use a UTF-8 or printable string CN (openssl req -subj /CN=DEVICE-ID does)",
            )
        })?,
        [] => {
            return Err(Error::input(
                "the CSR has no CN (the device id)",
                "make the CSR with -subj /CN=DEVICE-ID",
            ))
        }
        _ => {
            return Err(Error::input(
                "the CSR has more than one CN",
                "make the CSR with exactly one CN, the device id",
            ))
        }
    };
    let spki = &info.subject_pki;
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() < 2048 => {
            return Err(Error::input(
                format!(
                    "the CSR's RSA key has {} bits; at least 2048 are required",
                    rsa.key_size()
                ),
                "use an ECDSA P-256 key (openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256)",
            ))
        }
        Ok(_) => {}
        Err(e) => {
            return Err(Error::input(
                format!("the CSR's public key cannot be read: {e}"),
                CSR_HINT,
            ))
        }
    }
    let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki.raw).map_err(|_| {
        Error::input(
            "the CSR's key type is not supported",
            "use ECDSA P-256 or P-384, Ed25519, or RSA of at least 2048 bits",
        )
    })?;
    let mut sans = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                sans.push(csr_san(name)?);
            }
        }
    }
    Ok(DeviceRequest {
        cn: cn.to_string(),
        sans,
        public_key,
    })
}

fn csr_san(name: &GeneralName<'_>) -> Result<San> {
    Ok(match name {
        GeneralName::DNSName(s) => (SanType::DnsName(ia5(s, "DNS name")?), format!("DNS:{s}")),
        GeneralName::URI(s) => (SanType::URI(ia5(s, "URI")?), format!("URI:{s}")),
        GeneralName::RFC822Name(s) => (
            SanType::Rfc822Name(ia5(s, "e-mail address")?),
            format!("email:{s}"),
        ),
        GeneralName::IPAddress(b) => {
            let ip = match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()),
                n => {
                    return Err(Error::input(
                        format!("the CSR has an IP address SAN of {n} bytes"),
                        CSR_HINT,
                    ))
                }
            };
            (SanType::IpAddress(ip), format!("IP:{ip}"))
        }
        other => {
            return Err(Error::input(
                format!(
                    "the CSR asks for a subject alternative name this CA does not issue: {other}"
                ),
                "only DNS, IP, URI and e-mail names are issued; make the CSR without the others",
            ))
        }
    })
}

/// What the CA needs to know of a certificate.
pub(crate) struct CertInfo {
    /// Serial, normalised lower-case hex.
    pub serial: String,
    /// The subject's first CN, if any.
    pub cn: Option<String>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Whether basicConstraints says CA:TRUE.
    pub is_ca: bool,
    /// The subject public key (the BIT STRING's content).
    pub public_key: Vec<u8>,
}

/// Parse a DER certificate.
pub(crate) fn cert_info(der: &[u8], what: &str) -> Result<CertInfo> {
    let cert = match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => cert,
        Ok(_) => {
            return Err(Error::input(
                format!("{what} has trailing bytes after the certificate"),
                "give the certificate alone, PEM or DER",
            ))
        }
        Err(e) => {
            return Err(Error::input(
                format!("{what} is not an X.509 certificate: {e}"),
                "give a certificate, PEM (-----BEGIN CERTIFICATE-----) or DER",
            ))
        }
    };
    let serial = crate::index::normalize_serial(&hex::encode(cert.raw_serial()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    let not_after = timestamp(cert.validity().not_after.timestamp());
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    Ok(CertInfo {
        serial,
        cn,
        not_after,
        is_ca,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// What `crl.pem` says about itself.
#[derive(Debug, Clone)]
pub(crate) struct CrlFacts {
    pub number: u128,
    pub this_update: DateTime<Utc>,
    pub next_update: Option<DateTime<Utc>>,
}

/// Parse a DER CRL (none of its signature is checked: it is the CA's own file, used for its
/// number and period).
pub(crate) fn crl_facts(der: &[u8]) -> Option<CrlFacts> {
    let (_, crl) = x509_parser::parse_x509_crl(der).ok()?;
    let bytes = crl.crl_number()?.to_bytes_be();
    if bytes.len() > 16 {
        return None;
    }
    let number = bytes.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b));
    Some(CrlFacts {
        number,
        this_update: timestamp(crl.last_update().timestamp()),
        next_update: crl.next_update().map(|t| timestamp(t.timestamp())),
    })
}

fn timestamp(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        for ok in ["dev-0001", "a", "A.b_c-9", &"x".repeat(64)] {
            validate_device_id(ok).unwrap();
        }
        for bad in ["", "dev 1", "dev/1", "dév", &"x".repeat(65), "a\n"] {
            assert!(validate_device_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sans_and_server_names() {
        assert_eq!(
            parse_san("DNS:Ota.Example.com").unwrap().1,
            "DNS:ota.example.com"
        );
        assert_eq!(parse_san("ip:127.0.0.1").unwrap().1, "IP:127.0.0.1");
        assert_eq!(parse_san("IP:::1").unwrap().1, "IP:::1");
        for bad in [
            "ota.example.com",
            "DNS:",
            "DNS:a..b",
            "IP:300.1.1.1",
            "URI:x",
            "DNS:-a.b",
        ] {
            assert!(parse_san(bad).is_err(), "{bad:?}");
        }
        assert_eq!(server_name_san("localhost").unwrap().1, "DNS:localhost");
        assert_eq!(server_name_san("10.0.0.1").unwrap().1, "IP:10.0.0.1");
        assert!(server_name_san("a b").is_err());
    }
}
