//! HTTPS and mutual TLS: loading and checking the certificate files, the rustls server
//! configuration, and reloading it while the server runs.
//!
//! Everything is checked when the server starts, so bad input is a start-up error naming the
//! file, not a server that starts and then fails every handshake: a certificate file without a
//! certificate, a key that does not belong to the certificate, an expired server certificate, a
//! client CA bundle without a usable certificate, a CRL that does not parse or does not come from
//! a client CA. A reload ([`ReloadHandle::reload`], SIGHUP in `ota-server`) reads all files again
//! and swaps the configuration only if every check passes; otherwise the old one stays and the
//! error is logged. CRL files are also re-read when they change on disk (checked every
//! [`CRL_CHECK_INTERVAL`]). Connections keep the configuration they were accepted with; only new
//! handshakes see a new one.
//!
//! Each CRL's signature is verified with the key of the `--client-ca` certificate it names as
//! issuer. A CRL past its nextUpdate is still used but warned about, as is a server certificate
//! that expires within [`CERT_EXPIRY_WARNING`]: at every load and reload, when the condition
//! starts while the server runs, and then every [`EXPIRY_WARN_REPEAT`].

mod crl;
pub(crate) mod device_ca;

pub use crl::{CERT_EXPIRY_WARNING, EXPIRY_WARN_REPEAT};

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ota_fs::user_file::{self, UserFileError};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, RootCertStore, ServerConfig};
use x509_cert::der::Decode;
use x509_cert::Certificate;

use crate::identity::RoutePolicy;

/// Cap for certificate, key and CA files: far above any real chain or bundle, small enough that
/// a wrong path (a disk image, a log) is refused at once.
pub const MAX_PEM_FILE: u64 = 1024 * 1024;
/// Cap for a CRL file: a fleet-wide CRL revoking ~100,000 devices is a few MiB of PEM.
pub const MAX_CRL_FILE: u64 = 32 * 1024 * 1024;
/// How often the CRL files are checked for changes (size, mtime, inode).
pub const CRL_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// ALPN protocols offered, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// TLS settings: the server's certificate and key, and optionally client authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the server certificate, then any intermediates (`--tls-cert`).
    pub cert: PathBuf,
    /// PEM file with the server's private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`--tls-key`).
    pub key: PathBuf,
    /// Mutual TLS: verify device certificates (`--client-ca`).
    pub client_auth: Option<ClientAuthSettings>,
}

/// Mutual-TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuthSettings {
    /// PEM bundle of the CA certificates that issue device certificates (`--client-ca`).
    pub ca: PathBuf,
    /// PEM files with CRLs (each may hold several) of revoked device certificates (`--crl`).
    pub crls: Vec<PathBuf>,
    /// Leave `/metadata/` open to clients without a certificate (`--open-metadata`).
    pub open_metadata: bool,
}

impl TlsSettings {
    /// Settings from the command-line flags, or `None` for plain HTTP (no TLS flag given).
    /// Combinations that make no sense are refused with [`TlsError::Usage`].
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
        crls: Vec<PathBuf>,
        open_metadata: bool,
    ) -> Result<Option<Self>, TlsError> {
        let usage = |message, hint| Err(TlsError::Usage { message, hint });
        let client_auth = match client_ca {
            Some(ca) => Some(ClientAuthSettings {
                ca,
                crls,
                open_metadata,
            }),
            None if !crls.is_empty() => {
                return usage(
                    "--crl needs --client-ca",
                    "a CRL revokes device certificates; give --client-ca CA.pem to verify them",
                )
            }
            None if open_metadata => {
                return usage(
                    "--open-metadata needs --client-ca",
                    "without --client-ca every path is already open",
                )
            }
            None => None,
        };
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsSettings {
                cert,
                key,
                client_auth,
            })),
            (None, None) if client_auth.is_some() => usage(
                "--client-ca needs TLS",
                "give --tls-cert and --tls-key too; client certificates only exist in TLS",
            ),
            (None, None) => Ok(None),
            (Some(_), None) => usage(
                "--tls-cert needs --tls-key",
                "give both --tls-cert CERT.pem and --tls-key KEY.pem",
            ),
            (None, Some(_)) => usage(
                "--tls-key needs --tls-cert",
                "give both --tls-cert CERT.pem and --tls-key KEY.pem",
            ),
        }
    }

    /// Which paths need a verified device certificate under these settings.
    pub fn route_policy(&self) -> RoutePolicy {
        match &self.client_auth {
            None => RoutePolicy::Open,
            Some(c) if c.open_metadata => RoutePolicy::OpenMetadata,
            Some(_) => RoutePolicy::RequireDevice,
        }
    }
}

/// Why the TLS configuration cannot be used. Each message names the flag and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Inconsistent flags.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// The file cannot be read (missing, not a regular file, too large, permissions).
    #[error("{flag}: {source}")]
    Read {
        /// The flag that named the file.
        flag: &'static str,
        /// The underlying error (it names the path).
        source: UserFileError,
    },
    /// The file was read but its content is unusable.
    #[error("{flag} {}: {problem}", path.display())]
    Invalid {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// The private key does not belong to the certificate.
    #[error("--tls-key {} is not the private key of the certificate in --tls-cert {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The server certificate is past its notAfter date.
    #[error("--tls-cert {}: the certificate expired on {not_after}", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// notAfter, as `YYYY-MM-DDTHH:MM:SSZ`.
        not_after: String,
    },
    /// rustls refused the assembled configuration (not expected after the checks above).
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    /// A one-line hint for the operator.
    pub fn hint(&self) -> &'static str {
        match self {
            TlsError::Usage { hint, .. } | TlsError::Invalid { hint, .. } => hint,
            TlsError::Read { .. } => "check the path and that it is a readable regular file",
            TlsError::KeyMismatch { .. } => {
                "the key must be the one the certificate was issued for; compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`"
            }
            TlsError::Expired { .. } => "renew the server certificate",
            TlsError::Config(_) => "check the certificate and key types (RSA, ECDSA P-256/P-384, Ed25519)",
        }
    }
}

/// The TLS state of a running server: the current configuration and what is needed to rebuild
/// it.
pub(crate) struct TlsState {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    current: RwLock<Current>,
    /// Serialises reloads (SIGHUP and CRL changes may coincide) and holds the CRL file stamps
    /// seen by the last load, so an unchanged file is not re-read and a broken one is reported
    /// once per change rather than on every check.
    reload: Mutex<Vec<Option<FileStamp>>>,
    /// When the expiry warnings were last logged.
    warned: Mutex<crl::Warned>,
    /// Unix time (seconds) of the next expiry check; handshakes and the CRL watch trigger it.
    next_expiry_check: AtomicU64,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Current {
    config: Arc<ServerConfig>,
    /// The device-certificate verifier inside `config` (`--client-ca`), also used to verify
    /// the certificates that status reports carry.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    key: Arc<CertifiedKey>,
    roots: Option<Arc<RootCertStore>>,
    /// The `--client-ca` certificates, parsed (to verify CRL signatures on a CRL reload).
    cas: Arc<Vec<Certificate>>,
    expiry: crl::ExpiryInfo,
}

impl TlsState {
    /// Reads and checks every file; the error names the first bad one.
    pub(crate) fn load(settings: TlsSettings) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = crl_stamps(&settings);
        let loaded = load_all(&settings, &provider)?;
        log_loaded(&settings, &loaded, "loaded");
        let state = TlsState {
            settings,
            provider,
            current: RwLock::new(loaded),
            reload: Mutex::new(stamps),
            warned: Mutex::new(crl::Warned::default()),
            next_expiry_check: AtomicU64::new(0),
        };
        state.check_expiry(true);
        Ok(state)
    }

    /// Logs the expiry warnings that are due (all that hold with `fresh`, after a load).
    fn check_expiry(&self, fresh: bool) {
        let now = unix_now();
        self.next_expiry_check
            .store(now + CRL_CHECK_INTERVAL.as_secs(), Ordering::Relaxed);
        let info = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .expiry
            .clone();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if fresh {
            *warned = crl::Warned::default();
        }
        crl::warn_expiry(&info, &mut warned, now);
    }

    /// Runs the periodic expiry check if it is time (cheap otherwise: one atomic load).
    fn maybe_check_expiry(&self) {
        let now = unix_now();
        let next = self.next_expiry_check.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_expiry_check
                .compare_exchange(
                    next,
                    now + CRL_CHECK_INTERVAL.as_secs(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.check_expiry(false);
        }
    }

    /// The settings this state was loaded from.
    pub(crate) fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration for a new handshake.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        // A server without CRL files has no watch task: handshakes drive the expiry warnings.
        self.maybe_check_expiry();
        // A panic while holding the lock cannot leave a half-written `Current` (it is replaced
        // whole), so a poisoned lock is still usable.
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&current.config)
    }

    /// The current device-certificate verifier (`--client-ca`, with the CRLs as last loaded).
    pub(crate) fn client_verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.verifier.clone()
    }

    fn lock_reload(&self) -> MutexGuard<'_, Vec<Option<FileStamp>>> {
        self.reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn install(&self, new: Current) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// Reads all files again and swaps the configuration if they pass every check; otherwise
    /// logs the error and keeps serving with the old one.
    pub(crate) fn reload_all(&self, trigger: &str) -> Result<(), TlsError> {
        let mut stamps = self.lock_reload();
        // Stat before reading: a file replaced meanwhile then looks changed at the next check.
        *stamps = crl_stamps(&self.settings);
        match load_all(&self.settings, &self.provider) {
            Ok(new) => {
                log_loaded(&self.settings, &new, trigger);
                self.install(new);
                drop(stamps);
                self.check_expiry(true);
                Ok(())
            }
            Err(e) => {
                tracing::error!(trigger, error = %e, hint = e.hint(), "TLS reload failed; keeping the previous certificates");
                Err(e)
            }
        }
    }

    /// Re-reads the CRLs if a CRL file changed since the last load, keeping the current server
    /// certificate (which may be half-way through being replaced; it changes on SIGHUP only).
    pub(crate) fn reload_crls_if_changed(&self) {
        self.maybe_check_expiry();
        let Some(client) = &self.settings.client_auth else {
            return;
        };
        let mut stamps = self.lock_reload();
        let now = crl_stamps(&self.settings);
        if now == *stamps {
            return;
        }
        *stamps = now;
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(roots) = current.roots.clone() else {
            return;
        };
        let rebuilt =
            load_crls(&client.crls, &current.cas, &self.provider).and_then(|(crls, dates)| {
                let verifier = build_verifier(&roots, crls.clone(), client, &self.provider)?;
                let config = assemble(&self.provider, &current.key, Some(Arc::clone(&verifier)))?;
                Ok((config, verifier, crls, dates))
            });
        match rebuilt {
            Ok((config, verifier, crls, dates)) => {
                tracing::info!(
                    files = client.crls.len(),
                    crls = crls.len(),
                    "CRL file changed; revocation list reloaded"
                );
                let expiry = crl::ExpiryInfo {
                    crls: dates,
                    ..current.expiry.clone()
                };
                self.install(Current {
                    config,
                    verifier: Some(verifier),
                    expiry,
                    ..current
                });
                drop(stamps);
                self.check_expiry(true);
            }
            Err(e) => {
                tracing::error!(error = %e, hint = e.hint(), "CRL file changed but cannot be used; keeping the previous revocation list");
            }
        }
    }
}

/// A cheap way for library users (and `ota-server`'s SIGHUP handler) to reload the TLS files.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    pub(crate) state: Arc<TlsState>,
}

impl ReloadHandle {
    /// Reads the certificate, key, client CA and CRL files again. On success new handshakes use
    /// them; on failure the error is logged and returned and the previous configuration stays.
    /// Established connections are not affected either way. Blocking (reads files).
    pub fn reload(&self) -> Result<(), TlsError> {
        self.state.reload_all("reload")
    }

    /// Like [`ReloadHandle::reload`], naming what triggered it in the log (e.g. `"SIGHUP"`).
    pub fn reload_for(&self, trigger: &str) -> Result<(), TlsError> {
        self.state.reload_all(trigger)
    }
}

fn log_loaded(settings: &TlsSettings, loaded: &Current, trigger: &str) {
    let leaf = loaded.key.end_entity_cert().ok();
    let fingerprint = leaf.map(|c| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(c.as_ref()))
    });
    let not_after = leaf
        .and_then(|c| Certificate::from_der(c.as_ref()).ok())
        .map(|c| {
            c.tbs_certificate
                .validity
                .not_after
                .to_date_time()
                .to_string()
        });
    tracing::info!(
        trigger,
        cert = %settings.cert.display(),
        sha256 = fingerprint.as_deref(),
        not_after = not_after.as_deref(),
        client_ca = settings.client_auth.as_ref().map(|c| c.ca.display().to_string()),
        crl_files = settings.client_auth.as_ref().map_or(0, |c| c.crls.len()),
        "TLS certificates"
    );
}

fn load_all(settings: &TlsSettings, provider: &Arc<CryptoProvider>) -> Result<Current, TlsError> {
    let key = load_certified_key(&settings.cert, &settings.key, provider)?;
    let mut expiry = crl::ExpiryInfo {
        cert: settings.cert.clone(),
        cert_not_after: key
            .end_entity_cert()
            .ok()
            .and_then(|c| Certificate::from_der(c.as_ref()).ok())
            .map(|c| {
                let t = c.tbs_certificate.validity.not_after;
                (t.to_unix_duration().as_secs(), t.to_date_time().to_string())
            }),
        crls: Vec::new(),
    };
    let (verifier, roots, cas) = match &settings.client_auth {
        Some(client) => {
            let (roots, cas) = load_roots("--client-ca", &client.ca)?;
            let roots = Arc::new(roots);
            let (crls, dates) = load_crls(&client.crls, &cas, provider)?;
            expiry.crls = dates;
            warn_cas_without_crl(client, &roots, &crls);
            let verifier = build_verifier(&roots, crls, client, provider)?;
            (Some(verifier), Some(roots), cas)
        }
        None => (None, None, Vec::new()),
    };
    let config = assemble(provider, &key, verifier.clone())?;
    Ok(Current {
        config,
        verifier,
        key,
        roots,
        cas: Arc::new(cas),
        expiry,
    })
}

fn unix_now() -> u64 {
    // Before 1970 only with a broken clock; then nothing counts as expired.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The rustls configuration: TLS 1.3 and 1.2 only (rustls has no older versions and only AEAD
/// suites with forward secrecy), ALPN `h2` and `http/1.1`.
///
/// Without client authentication, sessions are resumed from stateless tickets (ChaCha20-Poly1305
/// under a random in-memory key, rotated every 6 hours). rustls' default is only a 256-entry
/// server-side cache, and with two TLS 1.3 tickets stored per handshake the next ~128 handshakes
/// evicted a client's session, so in a fleet a device coming back was almost never resumed. The
/// ticket key belongs to this configuration: a reload (new certificate) starts a new one, so no
/// session made under the old certificate is resumed, as before. The cache stays for TLS 1.2
/// clients that do not take tickets.
fn assemble(
    provider: &Arc<CryptoProvider>,
    key: &Arc<CertifiedKey>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let client_auth = verifier.is_some();
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(key))));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    if client_auth {
        // A resumed session skips certificate verification, so a device revoked (or expired)
        // after its first handshake could go on resuming. Full handshakes only.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    } else {
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::Config(format!("cannot make a session ticket key: {e}")))?;
    }
    Ok(Arc::new(config))
}

fn build_verifier(
    roots: &Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    client: &ClientAuthSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), Arc::clone(provider))
            .with_crls(crls)
            // Devices are leaves; their CA's own revocation is the CA operator's business (and
            // would need a CRL from the root for every intermediate).
            .only_check_end_entity_revocation();
    if client.open_metadata {
        // Clients without a certificate may complete the handshake; the handler then refuses
        // every path but /metadata/. A certificate that *is* presented is still verified.
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| TlsError::Invalid {
        flag: "--client-ca",
        path: client.ca.clone(),
        problem: format!("cannot verify client certificates with it: {e}"),
        hint: "give the PEM certificates of the CA(s) that issue device certificates",
    })
}

/// Reads the PEM sections of a file; a file with no PEM at all is described.
fn pem_sections(
    flag: &'static str,
    path: &Path,
    limit: u64,
    hint: &'static str,
) -> Result<Vec<(SectionKind, Vec<u8>)>, TlsError> {
    let bytes = user_file::read(path, limit).map_err(|source| TlsError::Read { flag, source })?;
    let invalid = |problem: String| TlsError::Invalid {
        flag,
        path: path.to_path_buf(),
        problem,
        hint,
    };
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let problem = if bytes.is_empty() {
            "the file is empty".to_owned()
        } else if bytes.first() == Some(&0x30) {
            "not PEM (it looks like binary DER; convert it with `openssl x509 -inform der` or `openssl pkey -inform der`)".to_owned()
        } else {
            "not PEM (no -----BEGIN line)".to_owned()
        };
        return Err(invalid(problem));
    }
    let mut reader: &[u8] = &bytes;
    let mut sections = Vec::new();
    loop {
        match pem::from_buf(&mut reader) {
            Ok(Some(section)) => sections.push(section),
            Ok(None) => break,
            Err(e) => return Err(invalid(format!("damaged PEM: {}", pem_error(&e)))),
        }
    }
    if sections.is_empty() && contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(TlsError::Invalid {
            flag,
            path: path.to_path_buf(),
            problem: "the private key is encrypted".to_owned(),
            hint: "ota-server needs an unencrypted key file readable only by its user: openssl pkey -in KEY -out PLAIN.pem",
        });
    }
    Ok(sections)
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "no -----END {}----- line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { .. } => "malformed -----BEGIN line".to_owned(),
        other => other.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn kind_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "other",
    }
}

/// "it holds PRIVATE KEY" / "it holds no PEM block this server knows".
fn holds(sections: &[(SectionKind, Vec<u8>)]) -> String {
    if sections.is_empty() {
        return "it holds no PEM block of a known type".to_owned();
    }
    let mut names: Vec<&str> = sections.iter().map(|(k, _)| kind_name(*k)).collect();
    names.dedup();
    format!("it holds {}", names.join(", "))
}

/// Parses certificates, naming the block that fails.
fn parse_certs(
    flag: &'static str,
    path: &Path,
    sections: &[(SectionKind, Vec<u8>)],
    hint: &'static str,
) -> Result<Vec<(CertificateDer<'static>, Certificate)>, TlsError> {
    sections
        .iter()
        .filter(|(k, _)| *k == SectionKind::Certificate)
        .enumerate()
        .map(|(i, (_, der))| match Certificate::from_der(der) {
            Ok(c) => Ok((CertificateDer::from(der.clone()), c)),
            Err(e) => Err(TlsError::Invalid {
                flag,
                path: path.to_path_buf(),
                problem: format!(
                    "CERTIFICATE block {} is not an X.509 certificate: {e}",
                    i + 1
                ),
                hint,
            }),
        })
        .collect()
}

fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    const CERT_HINT: &str =
        "--tls-cert takes the server certificate in PEM (-----BEGIN CERTIFICATE-----), then any intermediates";
    const KEY_HINT: &str =
        "--tls-key takes the server's private key in PEM (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)";
    let sections = pem_sections("--tls-cert", cert_path, MAX_PEM_FILE, CERT_HINT)?;
    let certs = parse_certs("--tls-cert", cert_path, &sections, CERT_HINT)?;
    let Some((_, leaf)) = certs.first() else {
        return Err(TlsError::Invalid {
            flag: "--tls-cert",
            path: cert_path.to_path_buf(),
            problem: format!("no certificate ({})", holds(&sections)),
            hint: CERT_HINT,
        });
    };
    check_validity(cert_path, leaf)?;

    let key_sections = pem_sections("--tls-key", key_path, MAX_PEM_FILE, KEY_HINT)?;
    let key = key_sections
        .iter()
        .find_map(|(kind, der)| PrivateKeyDer::from_pem(*kind, der.clone()))
        .ok_or_else(|| TlsError::Invalid {
            flag: "--tls-key",
            path: key_path.to_path_buf(),
            problem: format!("no private key ({})", holds(&key_sections)),
            hint: KEY_HINT,
        })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Invalid {
                flag: "--tls-key",
                path: key_path.to_path_buf(),
                problem: format!("unusable private key: {e}"),
                hint: "use an RSA (2048+ bits), ECDSA P-256/P-384 or Ed25519 key",
            })?;
    let chain: Vec<CertificateDer<'static>> = certs.into_iter().map(|(der, _)| der).collect();
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            })
        }
        // The key cannot report its public half (not the case for the ring provider): nothing
        // to compare, the first handshake will tell.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            tracing::warn!(key = %key_path.display(), "cannot check that the key matches the certificate");
        }
        Err(e) => {
            return Err(TlsError::Invalid {
                flag: "--tls-cert",
                path: cert_path.to_path_buf(),
                problem: format!("unusable certificate: {e}"),
                hint: CERT_HINT,
            })
        }
    }
    Ok(Arc::new(certified))
}

/// Refuses an expired server certificate (every client would refuse it); warns about one that
/// is not valid yet (likely clock skew on this machine or the issuer's).
fn check_validity(path: &Path, cert: &Certificate) -> Result<(), TlsError> {
    let validity = &cert.tbs_certificate.validity;
    // Before 1970 only with a broken clock; then nothing counts as expired.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    if validity.not_after.to_unix_duration() < now {
        return Err(TlsError::Expired {
            path: path.to_path_buf(),
            not_after: validity.not_after.to_date_time().to_string(),
        });
    }
    if validity.not_before.to_unix_duration() > now {
        tracing::warn!(
            cert = %path.display(),
            not_before = %validity.not_before.to_date_time(),
            "the server certificate is not valid yet; clients will refuse it until then (check the clock)"
        );
    }
    Ok(())
}

/// The CA certificates as a webpki root store, and parsed (those the store took).
fn load_roots(
    flag: &'static str,
    path: &Path,
) -> Result<(RootCertStore, Vec<Certificate>), TlsError> {
    const HINT: &str = "give the PEM certificate(s) of the CA(s) that issue device certificates";
    let sections = pem_sections(flag, path, MAX_PEM_FILE, HINT)?;
    let mut roots = RootCertStore::empty();
    let mut cas = Vec::new();
    let mut refused = Vec::new();
    for (i, (_, der)) in sections
        .iter()
        .filter(|(k, _)| *k == SectionKind::Certificate)
        .enumerate()
    {
        if let Err(e) = roots.add(CertificateDer::from(der.as_slice())) {
            refused.push(format!("block {}: {e}", i + 1));
        } else if let Ok(c) = Certificate::from_der(der) {
            cas.push(c);
        }
    }
    if roots.is_empty() {
        let problem = if refused.is_empty() {
            format!("no CA certificate ({})", holds(&sections))
        } else {
            format!("no usable CA certificate ({})", refused.join("; "))
        };
        return Err(TlsError::Invalid {
            flag,
            path: path.to_path_buf(),
            problem,
            hint: HINT,
        });
    }
    for r in refused {
        tracing::warn!(flag, path = %path.display(), "skipped a certificate: {r}");
    }
    Ok((roots, cas))
}

/// The CRLs of `paths`, each checked to parse and to be signed by one of `cas`, with their
/// dates.
fn load_crls(
    paths: &[PathBuf],
    cas: &[Certificate],
    provider: &CryptoProvider,
) -> Result<
    (
        Vec<CertificateRevocationListDer<'static>>,
        Vec<crl::CrlDates>,
    ),
    TlsError,
> {
    const HINT: &str =
        "--crl takes PEM CRLs (-----BEGIN X509 CRL-----) issued by a --client-ca certificate, e.g. from `ota-ca crl` or `openssl ca -gencrl`";
    let mut all = Vec::new();
    let mut dates = Vec::new();
    for path in paths {
        let invalid = |problem: String| TlsError::Invalid {
            flag: "--crl",
            path: path.clone(),
            problem,
            hint: HINT,
        };
        let sections = pem_sections("--crl", path, MAX_CRL_FILE, HINT)?;
        let crls: Vec<&Vec<u8>> = sections
            .iter()
            .filter(|(k, _)| *k == SectionKind::Crl)
            .map(|(_, der)| der)
            .collect();
        if crls.is_empty() {
            return Err(invalid(format!("no CRL ({})", holds(&sections))));
        }
        for (i, der) in crls.into_iter().enumerate() {
            webpki::OwnedCertRevocationList::from_der(der)
                .map_err(|e| invalid(format!("X509 CRL block {} does not parse: {e}", i + 1)))?;
            // A CRL from another CA would never apply, and with it loaded the devices of our
            // CA would still be checked against nothing; one signed by another key under our
            // CA's name would make webpki refuse every device of that CA. Refuse both here.
            let (issuer, next_update, next_update_text) =
                crl::verify(der, cas, &provider.signature_verification_algorithms).map_err(
                    |problem| {
                        invalid(match problem {
                            crl::SignatureProblem::UnknownIssuer => format!(
                                "X509 CRL block {} is not issued by a --client-ca certificate",
                                i + 1
                            ),
                            crl::SignatureProblem::WrongKey { issuer } => format!(
                                "X509 CRL block {} names {issuer} as its issuer but its signature does not verify with the key of that --client-ca certificate (signed by another key)",
                                i + 1
                            ),
                            crl::SignatureProblem::Unparsable(e) => {
                                format!("X509 CRL block {} does not parse: {e}", i + 1)
                            }
                        })
                    },
                )?;
            all.push(CertificateRevocationListDer::from(der.clone()));
            dates.push(crl::CrlDates {
                file: path.clone(),
                block: i + 1,
                issuer,
                next_update,
                next_update_text,
            });
        }
    }
    Ok((all, dates))
}

/// With CRLs given, a device whose CA has no CRL is refused ("revocation status unknown");
/// warn about such CAs at load time rather than let it surprise at the first handshake.
fn warn_cas_without_crl(
    client: &ClientAuthSettings,
    roots: &RootCertStore,
    crls: &[CertificateRevocationListDer<'static>],
) {
    if crls.is_empty() {
        return;
    }
    let issuers: Vec<Vec<u8>> = crls
        .iter()
        .filter_map(|der| webpki::OwnedCertRevocationList::from_der(der).ok())
        .map(|c| webpki::CertRevocationList::from(c).issuer().to_vec())
        .collect();
    let uncovered = roots
        .roots
        .iter()
        .filter(|ta| !issuers.iter().any(|i| i.as_slice() == ta.subject.as_ref()))
        .count();
    if uncovered > 0 {
        tracing::warn!(
            client_ca = %client.ca.display(),
            uncovered,
            "some --client-ca certificates have no CRL in --crl; devices they issued will be refused (revocation status unknown)"
        );
    }
}

/// What identifies a file's current content cheaply: a replaced or rewritten file changes at
/// least one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    // Follows symlinks, so swapping a link (as Kubernetes does for mounted secrets) counts.
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

fn crl_stamps(settings: &TlsSettings) -> Vec<Option<FileStamp>> {
    settings
        .client_auth
        .iter()
        .flat_map(|c| c.crls.iter())
        .map(|p| stamp(p))
        .collect()
}

/// Logs a failed handshake: client-certificate refusals at warn with a plain reason, other TLS
/// errors at info, a peer that just went away at debug.
pub(crate) fn log_handshake_failure(peer: SocketAddr, e: &io::Error) {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        tracing::debug!(%peer, error = %e, "TLS handshake aborted");
        return;
    };
    match refusal_reason(tls) {
        Some(reason) => {
            tracing::warn!(%peer, reason, error = %tls, "client certificate refused");
        }
        None => tracing::info!(%peer, error = %tls, "TLS handshake failed"),
    }
}

/// Why a device certificate was refused, in words; `None` if the error is not about it.
fn refusal_reason(e: &rustls::Error) -> Option<&'static str> {
    Some(match e {
        rustls::Error::NoCertificatesPresented => "no client certificate",
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "not issued by a --client-ca certificate",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not valid yet"
            }
            CertificateError::Revoked => "revoked (listed in a --crl file)",
            CertificateError::UnknownRevocationStatus => {
                "revocation status unknown (no --crl from its issuer)"
            }
            CertificateError::BadSignature => "bad signature",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "not a client certificate (extended key usage)"
            }
            _ => "invalid certificate",
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_combinations() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            TlsSettings::from_flags(None, None, None, vec![], false).unwrap(),
            None
        );
        for (cert, key, ca, crls, open, want) in [
            (
                p("c"),
                None,
                None,
                vec![],
                false,
                "--tls-cert needs --tls-key",
            ),
            (
                None,
                p("k"),
                None,
                vec![],
                false,
                "--tls-key needs --tls-cert",
            ),
            (None, None, p("ca"), vec![], false, "--client-ca needs TLS"),
            (
                p("c"),
                p("k"),
                None,
                vec![PathBuf::from("x")],
                false,
                "--crl needs --client-ca",
            ),
            (
                p("c"),
                p("k"),
                None,
                vec![],
                true,
                "--open-metadata needs --client-ca",
            ),
        ] {
            let e = TlsSettings::from_flags(cert, key, ca, crls, open).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        let s = TlsSettings::from_flags(p("c"), p("k"), p("ca"), vec![], true)
            .unwrap()
            .unwrap();
        assert_eq!(s.route_policy(), RoutePolicy::OpenMetadata);
    }

    #[test]
    fn non_pem_files_are_described() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pem");
        for (content, want) in [
            (&b""[..], "empty"),
            (&[0x30, 0x82, 1, 2][..], "binary DER"),
            (&b"hello"[..], "no -----BEGIN line"),
            (&b"-----BEGIN CERTIFICATE-----\nAAAA\n"[..], "no -----END CERTIFICATE----- line"),
            (
                &b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"[..],
                "encrypted",
            ),
        ] {
            std::fs::write(&f, content).unwrap();
            let e = pem_sections("--tls-key", &f, MAX_PEM_FILE, "h").unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
