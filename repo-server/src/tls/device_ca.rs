//! Verifying device certificates outside the TLS handshake (`--report-ca`): for a server
//! behind a TLS-terminating proxy, status reports carry the device's certificate, verified
//! here against the device CA and the `--crl` files exactly as a mutual-TLS handshake would.
//! CRL files are re-read when they change (checked at most every [`CRL_CHECK_INTERVAL`]),
//! so a revocation takes effect without a restart.
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::RootCertStore;
use x509_cert::Certificate;

use super::{
    build_verifier, load_crls, load_roots, stamp, ClientAuthSettings, FileStamp, TlsError,
    CRL_CHECK_INTERVAL,
};

/// A device CA and its CRLs, as a certificate verifier kept current.
pub(crate) struct DeviceCa {
    settings: ClientAuthSettings,
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    cas: Vec<Certificate>,
    current: RwLock<Arc<dyn ClientCertVerifier>>,
    /// When the CRL files were last looked at, and what they were then.
    checked: Mutex<(Instant, Vec<Option<FileStamp>>)>,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa")
            .field("ca", &self.settings.ca)
            .field("crls", &self.settings.crls)
            .finish_non_exhaustive()
    }
}

impl DeviceCa {
    /// Read the CA bundle and the CRLs (each checked to be signed by a CA of the bundle).
    pub(crate) fn load(ca: PathBuf, crls: Vec<PathBuf>) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (roots, cas) = load_roots("--report-ca", &ca)?;
        let roots = Arc::new(roots);
        let settings = ClientAuthSettings {
            ca,
            crls,
            open_metadata: false,
        };
        let stamps = settings.crls.iter().map(|p| stamp(p)).collect();
        let (loaded, _) = load_crls(&settings.crls, &cas, &provider)?;
        let verifier = build_verifier(&roots, loaded, &settings, &provider)?;
        Ok(DeviceCa {
            settings,
            provider,
            roots,
            cas,
            current: RwLock::new(verifier),
            checked: Mutex::new((Instant::now(), stamps)),
        })
    }

    /// The verifier, with the CRLs re-read first if a file changed.
    pub(crate) fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.reload_if_changed();
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn reload_if_changed(&self) {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.0.elapsed() < CRL_CHECK_INTERVAL {
            return;
        }
        let now: Vec<_> = self.settings.crls.iter().map(|p| stamp(p)).collect();
        checked.0 = Instant::now();
        if now == checked.1 {
            return;
        }
        checked.1 = now;
        let rebuilt =
            load_crls(&self.settings.crls, &self.cas, &self.provider).and_then(|(crls, _)| {
                build_verifier(&self.roots, crls, &self.settings, &self.provider)
            });
        match rebuilt {
            Ok(v) => {
                tracing::info!("CRL file changed; revocation list for reports reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = v;
            }
            Err(e) => {
                tracing::error!(error = %e, hint = e.hint(), "CRL file changed but cannot be used; keeping the previous revocation list")
            }
        }
    }
}
