//! How [`super::HttpTransport`] connects: which servers it trusts (a CA bundle, a pinned
//! server key, or the built-in public roots), the device certificate for mutual TLS, an
//! optional HTTP proxy and the lowest TLS version. [`TlsSettings`] is what a device's
//! `config.json` holds under `"tls"`; [`TlsSettings::client_config`] turns it into the rustls
//! configuration given to ureq, reading and checking every file, so a wrong file is refused
//! when it is configured rather than at the first connection.
use super::pin::{PinMismatch, PinnedVerifier, SpkiPin};
use crate::pki::{self, PkiError};
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, RootCertStore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Lowest TLS version accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 or 1.3 (the default).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    /// Whether this is the default (1.2).
    pub fn is_default(&self) -> bool {
        *self == TlsVersion::default()
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersion::Tls12 => &BOTH,
            TlsVersion::Tls13 => &TLS13_ONLY,
        }
    }
}

impl std::str::FromStr for TlsVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(format!("{s:?}: the minimum TLS version is 1.2 or 1.3")),
        }
    }
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

/// TLS and proxy settings of HTTP(S) fetches. All default: `https://` servers must chain to
/// the built-in public roots (webpki-roots, as ureq does), no client certificate, no proxy,
/// TLS 1.2 or newer.
///
/// Unknown keys are refused: a misspelt security setting must not silently fall back to the
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA certificates the server must chain to (instead of the public
    /// roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// sha256 (64 hex digits) of the server's SubjectPublicKeyInfo. With `ca_bundle`, both
    /// must pass; alone, it replaces the CA check (a self-signed server is accepted if its
    /// key matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_spki_sha256: Option<String>,
    /// PEM certificate (chain) presented to servers that ask for one (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// `http://HOST:PORT` proxy for every request (HTTPS goes through a CONNECT tunnel, so
    /// the proxy never sees the plaintext).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Lowest TLS version accepted.
    #[serde(skip_serializing_if = "TlsVersion::is_default")]
    pub min_version: TlsVersion,
}

/// Why [`TlsSettings`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA bundle file is unusable.
    #[error(transparent)]
    File(#[from] PkiError),
    /// The CA bundle holds certificates, but none usable as a trust anchor.
    #[error("{}: no usable CA certificate ({count} found, none accepted as a trust anchor)", path.display())]
    NoUsableCa {
        /// The bundle.
        path: PathBuf,
        /// Certificates found in it.
        count: usize,
    },
    /// The pin is not 64 hex digits.
    #[error("invalid SPKI pin {pin:?}: {reason}")]
    BadPin {
        /// The pin as given.
        pin: String,
        /// What is wrong.
        reason: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error(
        "mutual TLS needs both a client certificate and its private key; only the {given} is set"
    )]
    IncompleteIdentity {
        /// Which one is set (`certificate` or `private key`).
        given: &'static str,
    },
    /// The proxy URL is not usable.
    #[error("invalid proxy {proxy:?}: {reason}")]
    BadProxy {
        /// The proxy as given.
        proxy: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("building the TLS configuration: {0}")]
    Rustls(String),
}

impl TlsSettings {
    /// Whether every setting is the default (then `config.json` need not mention them).
    pub fn is_default(&self) -> bool {
        *self == TlsSettings::default()
    }

    /// These settings with relative file paths taken relative to `base` (the device state
    /// directory, so that a hand-written `"ca_bundle": "ca.pem"` means the copy there).
    pub fn relative_to(&self, base: &Path) -> TlsSettings {
        let abs = |p: &Option<PathBuf>| p.as_ref().map(|p| base.join(p));
        TlsSettings {
            ca_bundle: abs(&self.ca_bundle),
            client_cert: abs(&self.client_cert),
            client_key: abs(&self.client_key),
            ..self.clone()
        }
    }

    /// The parsed pin, if one is set.
    pub fn pin(&self) -> Result<Option<SpkiPin>, TlsError> {
        self.pin_spki_sha256
            .as_deref()
            .map(|p| {
                SpkiPin::parse(p).map_err(|reason| TlsError::BadPin {
                    pin: p.to_string(),
                    reason,
                })
            })
            .transpose()
    }

    /// The proxy, if one is set. Only `http://` proxies: ureq 2 speaks neither HTTPS to a
    /// proxy nor SOCKS without features this crate does not enable.
    pub fn proxy(&self) -> Result<Option<ureq::Proxy>, TlsError> {
        let Some(p) = &self.proxy else {
            return Ok(None);
        };
        let bad = |reason: String| TlsError::BadProxy {
            proxy: p.clone(),
            reason,
        };
        let url = url::Url::parse(p).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "http" {
            return Err(bad(format!(
                "{}:// proxies are not supported; use http://HOST:PORT",
                url.scheme()
            )));
        }
        if !matches!(url.host_str(), Some(h) if !h.is_empty()) {
            return Err(bad("no host".into()));
        }
        if url.path() != "/" || url.query().is_some() {
            return Err(bad("a proxy URL has no path; use http://HOST:PORT".into()));
        }
        ureq::Proxy::new(p)
            .map(Some)
            .map_err(|e| bad(e.kind().to_string()))
    }

    /// Read and check every file and value: the settings [`TlsSettings::client_config`] and
    /// [`TlsSettings::proxy`] would refuse are refused here.
    pub fn validate(&self) -> Result<(), TlsError> {
        self.proxy()?;
        self.client_config().map(|_| ())
    }

    /// The rustls configuration these settings describe, or `None` when they are all
    /// defaults for TLS (ureq's own configuration is used then: public roots, TLS 1.2+).
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, TlsError> {
        let pin = self.pin()?;
        if self.ca_bundle.is_none()
            && pin.is_none()
            && self.client_cert.is_none()
            && self.client_key.is_none()
            && self.min_version.is_default()
        {
            return Ok(None);
        }
        let provider = pki::provider();
        let roots = match &self.ca_bundle {
            Some(path) => ca_roots(path)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(self.min_version.versions())
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match pin {
            // Without a CA bundle, a pin replaces the chain check; with one, both apply.
            Some(pin) => {
                let ca = match &self.ca_bundle {
                    Some(_) => Some(webpki_verifier(roots, &provider)?),
                    None => None,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                        pin,
                        ca,
                        algorithms: provider.signature_verification_algorithms,
                    }))
            }
            None => builder.with_webpki_verifier(webpki_verifier(roots, &provider)?),
        };
        let config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(TlsError::IncompleteIdentity {
                    given: "certificate",
                })
            }
            (None, Some(_)) => {
                return Err(TlsError::IncompleteIdentity {
                    given: "private key",
                })
            }
            (Some(cert_path), Some(key_path)) => {
                let certs = pki::read_certificates(cert_path)?;
                let key = pki::read_private_key(key_path)?;
                // Checked here to name both files; rustls would only say "keys do not match".
                pki::check_pair(cert_path, &certs, key_path, &key)?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsError::Rustls(e.to_string()))?
            }
        };
        Ok(Some(Arc::new(config)))
    }
}

/// The trust anchors of a CA bundle; at least one must be usable.
fn ca_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = pki::read_ca_certificates(path)?;
    let count = certs.len();
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoUsableCa {
            path: path.to_path_buf(),
            count,
        });
    }
    if ignored > 0 {
        tracing::warn!(
            "{}: {ignored} of {count} certificates are not usable as trust anchors and are ignored",
            path.display()
        );
    }
    Ok(roots)
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))
}

/// Which side a refused TLS connection is about, so that callers can say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsCause {
    /// This device does not trust the server: certificate not issued by a trusted CA,
    /// expired, for another host, or its key is not the pinned one.
    ServerNotTrusted,
    /// The server refused this device: no client certificate, or one it does not accept.
    ClientRefused,
    /// Anything else: no TLS version or parameters in common, a protocol error.
    Other,
}

/// The cause and one phrase for a TLS failure during a connection, if `e` (or an error it
/// wraps) is one: "server certificate not trusted: ...", a pin mismatch, an alert.
pub(crate) fn describe_failure(
    e: &(dyn std::error::Error + 'static),
) -> Option<(TlsCause, String)> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(describe_rustls(r));
        }
        // io::Error hides its payload from `source()` in some wrappings; look inside.
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(describe_rustls(r));
            }
        }
        cur = err.source();
    }
    None
}

/// Why an HTTPS server answered 400, if its page says it is about the client certificate:
/// nginx with `ssl_verify_client on` completes the handshake without one and answers
/// "400 No required SSL certificate was sent" (or "The SSL certificate error").
pub(crate) fn client_certificate_refused(resp: ureq::Response) -> Option<String> {
    use std::io::Read;
    // An error page is small; never read more than this of it.
    let mut page = Vec::new();
    resp.into_reader().take(2048).read_to_end(&mut page).ok()?;
    let page = String::from_utf8_lossy(&page);
    if !page.to_ascii_lowercase().contains("ssl certificate") {
        return None;
    }
    let title = page
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(t, _)| t.trim().trim_start_matches("400").trim())
        .filter(|t| !t.is_empty() && t.len() <= 200 && !t.contains('<'))
        .unwrap_or("client certificate refused");
    Some(format!(
        "the server requires a client certificate it accepts (HTTP 400: {title})"
    ))
}

fn describe_rustls(e: &rustls::Error) -> (TlsCause, String) {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let untrusted = |why: String| {
        (
            TlsCause::ServerNotTrusted,
            format!("server certificate not trusted: {why}"),
        )
    };
    match e {
        E::InvalidCertificate(c) => match c {
            C::UnknownIssuer => untrusted("not issued by a trusted CA (unknown issuer)".into()),
            C::BadSignature => untrusted("bad signature in its chain".into()),
            C::Expired | C::ExpiredContext { .. } => {
                untrusted("expired (or this device's clock is wrong)".into())
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                untrusted("not valid yet (or this device's clock is wrong)".into())
            }
            C::Revoked => untrusted("revoked".into()),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                untrusted("issued for another host name".into())
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                untrusted("not issued for TLS servers".into())
            }
            C::Other(other) => match other.0.downcast_ref::<PinMismatch>() {
                Some(pin) => (TlsCause::ServerNotTrusted, pin.to_string()),
                None => untrusted(other.to_string()),
            },
            other => untrusted(format!("{other:?}")),
        },
        E::AlertReceived(alert) => {
            let (cause, why) = match alert {
                A::CertificateRequired => (
                    TlsCause::ClientRefused,
                    "it requires a client certificate (mutual TLS)",
                ),
                A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied => (
                    TlsCause::ClientRefused,
                    "it does not accept this device's certificate",
                ),
                A::CertificateExpired => (
                    TlsCause::ClientRefused,
                    "it says this device's certificate expired",
                ),
                A::CertificateRevoked => (
                    TlsCause::ClientRefused,
                    "it says this device's certificate was revoked",
                ),
                A::ProtocolVersion => (TlsCause::Other, "no TLS version in common"),
                A::HandshakeFailure => (TlsCause::Other, "no TLS parameters in common"),
                _ => (TlsCause::Other, ""),
            };
            let text = if why.is_empty() {
                format!("the server ended the handshake (alert {alert:?})")
            } else {
                format!("the server refused the connection: {why} (alert {alert:?})")
            };
            (cause, text)
        }
        E::PeerIncompatible(p) => (
            TlsCause::Other,
            format!("the server's TLS is incompatible: {p:?}"),
        ),
        other => (TlsCause::Other, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn put(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn defaults_need_no_configuration_and_serialise_to_nothing() {
        let s = TlsSettings::default();
        assert!(s.is_default());
        assert!(s.client_config().unwrap().is_none());
        assert!(s.proxy().unwrap().is_none());
        assert_eq!(serde_json::to_string(&s).unwrap(), "{}");
        let tls13 = TlsSettings {
            min_version: TlsVersion::Tls13,
            ..TlsSettings::default()
        };
        assert!(tls13.client_config().unwrap().is_some());
        assert_eq!(
            serde_json::to_value(&tls13).unwrap(),
            serde_json::json!({"min_version": "1.3"})
        );
        let err = serde_json::from_str::<TlsSettings>(r#"{"ca_bundel": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(serde_json::from_str::<TlsSettings>(r#"{"min_version": "1.1"}"#).is_err());
        assert_eq!("1.3".parse::<TlsVersion>().unwrap(), TlsVersion::Tls13);
        assert!("1.1".parse::<TlsVersion>().is_err());
    }

    #[test]
    fn a_good_configuration_builds() {
        let f = Files::new();
        let (ca, _) = self_signed("ca");
        let (cert, key) = self_signed("device");
        let s = TlsSettings {
            ca_bundle: Some(f.put("ca.pem", &ca)),
            pin_spki_sha256: Some("0".repeat(64)),
            client_cert: Some(f.put("id.pem", &cert)),
            client_key: Some(f.put("id.key", &key)),
            proxy: Some("http://proxy.example:3128".into()),
            min_version: TlsVersion::Tls13,
        };
        s.validate().unwrap();
        assert!(s
            .client_config()
            .unwrap()
            .unwrap()
            .client_auth_cert_resolver
            .has_certs());
        let rel = TlsSettings {
            ca_bundle: Some("ca.pem".into()),
            ..TlsSettings::default()
        }
        .relative_to(f.dir.path());
        assert_eq!(rel.ca_bundle.unwrap(), f.dir.path().join("ca.pem"));
    }

    #[test]
    fn unusable_settings_are_refused_naming_the_file_and_the_problem() {
        let f = Files::new();
        let (ca, ca_key) = self_signed("ca");
        let (cert, key) = self_signed("device");
        let (_, other_key) = self_signed("other");
        let ca_path = f.put("ca.pem", &ca);
        let cert_path = f.put("id.pem", &cert);
        let key_path = f.put("id.key", &key);
        let err = |s: TlsSettings| s.validate().unwrap_err();

        // A CA bundle that holds a key, nothing, or a certificate that does not parse.
        let e = err(TlsSettings {
            ca_bundle: Some(f.put("k.pem", &ca_key)),
            ..Default::default()
        });
        assert!(matches!(e, TlsError::File(PkiError::Missing { .. })), "{e}");
        assert!(e.to_string().contains("k.pem"), "{e}");
        let e = err(TlsSettings {
            ca_bundle: Some(f.put("empty.pem", "")),
            ..Default::default()
        });
        assert!(e.to_string().contains("the file is empty"), "{e}");
        let e = err(TlsSettings {
            ca_bundle: Some(f.put(
                "junk.pem",
                "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
            )),
            ..Default::default()
        });
        assert!(matches!(e, TlsError::NoUsableCa { count: 1, .. }), "{e}");

        // Bad pins.
        for pin in ["abc", &"z".repeat(64), ""] {
            let e = err(TlsSettings {
                pin_spki_sha256: Some(pin.into()),
                ..Default::default()
            });
            assert!(matches!(e, TlsError::BadPin { .. }), "{e}");
        }

        // A certificate file that is a key, a key that is a certificate, a key for another
        // certificate, one half of the pair.
        let e = err(TlsSettings {
            client_cert: Some(key_path.clone()),
            client_key: Some(key_path.clone()),
            ..Default::default()
        });
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = err(TlsSettings {
            client_cert: Some(cert_path.clone()),
            client_key: Some(cert_path.clone()),
            ..Default::default()
        });
        assert!(e.to_string().contains("no PEM private key"), "{e}");
        let e = err(TlsSettings {
            client_cert: Some(cert_path.clone()),
            client_key: Some(f.put("other.key", &other_key)),
            ..Default::default()
        });
        assert!(
            matches!(e, TlsError::File(PkiError::KeyMismatch { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("id.pem") && e.to_string().contains("other.key"));
        let e = err(TlsSettings {
            client_cert: Some(cert_path.clone()),
            ..Default::default()
        });
        assert!(matches!(
            e,
            TlsError::IncompleteIdentity {
                given: "certificate"
            }
        ));
        let e = err(TlsSettings {
            client_key: Some(key_path),
            ca_bundle: Some(ca_path),
            ..Default::default()
        });
        assert!(matches!(
            e,
            TlsError::IncompleteIdentity {
                given: "private key"
            }
        ));
        let e = err(TlsSettings {
            client_cert: Some(f.dir.path().join("missing.pem")),
            client_key: Some(f.dir.path().join("missing.key")),
            ..Default::default()
        });
        assert!(e.to_string().contains("missing.pem does not exist"), "{e}");

        // Proxies.
        for proxy in [
            "socks5://h:1",
            "https://h:1",
            "not a url",
            "http://h:1/path",
        ] {
            let e = err(TlsSettings {
                proxy: Some(proxy.into()),
                ..Default::default()
            });
            assert!(matches!(e, TlsError::BadProxy { .. }), "{proxy}: {e}");
        }
    }

    #[test]
    fn handshake_failures_are_described() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let (cause, got) = describe_failure(&io).unwrap();
        assert_eq!(cause, TlsCause::ServerNotTrusted);
        assert!(got.starts_with("server certificate not trusted"), "{got}");
        let pin = rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
            rustls::OtherError(Arc::new(PinMismatch {
                expected: "aa".into(),
                found: "bb".into(),
            })),
        ));
        let (cause, got) = describe_failure(&pin).unwrap();
        assert_eq!(cause, TlsCause::ServerNotTrusted);
        assert!(got.contains("does not match the pinned"), "{got}");
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let (cause, got) = describe_failure(&alert).unwrap();
        assert_eq!(cause, TlsCause::ClientRefused);
        assert!(got.contains("requires a client certificate"), "{got}");
        assert!(describe_failure(&std::io::Error::other("plain")).is_none());
    }
}
