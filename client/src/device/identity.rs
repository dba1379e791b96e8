//! The device's TLS identity for mutual TLS: an ECDSA P-256 key made on the device
//! (`STATE/identity.key`, PKCS#8 PEM, mode 0600, never leaves it), a certificate signing
//! request for the fleet CA (`STATE/identity.csr`), and the certificate the CA issued
//! (`STATE/identity.pem`), checked against the key before it is installed.
use super::config::DeviceConfig;
use super::erase;
use super::error::{state_io, DeviceError, DeviceResult};
use super::state::StateDir;
use crate::pki::{self, CertInfo};
use std::path::{Path, PathBuf};

/// Longest common name (X.520 `ub-common-name`).
pub const MAX_COMMON_NAME_LEN: usize = 64;

/// A new identity key and its signing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRequest {
    /// The CSR file (`STATE/identity.csr`), to be signed by the fleet CA.
    pub csr: PathBuf,
    /// The key file (`STATE/identity.key`).
    pub key: PathBuf,
    /// The subject common name requested.
    pub cn: String,
}

/// Check a common name, the device id in the fleet CA: 1 to 64 of `A-Z a-z 0-9 . _ -`, the
/// rule of `ota-ca issue` (the CA refuses anything else, so the device refuses it first; it is
/// also safe in file names, logs and URLs).
pub fn validate_common_name(cn: &str) -> DeviceResult<()> {
    let ok = !cn.is_empty()
        && cn.len() <= MAX_COMMON_NAME_LEN
        && cn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DeviceError::InvalidSetting {
            setting: "common name",
            reason: format!(
                "{cn:?}: use 1 to {MAX_COMMON_NAME_LEN} characters of A-Z a-z 0-9 . _ -"
            ),
        })
    }
}

/// Make a new identity key and a CSR with subject `CN=cn`. Refuses to replace an existing
/// key unless `force`; with `force` the old key is destroyed (overwritten, then removed) and
/// its certificate removed, and `config.json` stops using them until a new certificate is
/// installed.
pub fn create(state: &StateDir, cn: &str, force: bool) -> DeviceResult<SigningRequest> {
    validate_common_name(cn)?;
    let key_path = state.identity_key();
    if !force && std::fs::symlink_metadata(&key_path).is_ok() {
        return Err(DeviceError::AlreadyExists { path: key_path });
    }
    std::fs::create_dir_all(state.root()).map_err(|e| state_io(state.root(), e))?;
    let failed = |reason: String| DeviceError::BadState {
        path: key_path.clone(),
        reason,
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| failed(format!("generating the key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    // The default names the subject "rcgen self signed cert": only the CN is requested.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| failed(format!("making the signing request: {e}")))?;
    let key_pem = zeroize::Zeroizing::new(key.serialize_pem());

    // Stop using the old identity before destroying it, so that an interrupted run leaves a
    // configuration without a client certificate rather than one naming missing files.
    forget(state)?;
    let write = |path: &Path, bytes: &[u8], mode| {
        ota_fs::atomic::replace(path, bytes, mode).map_err(|e| DeviceError::BadState {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    write(&key_path, key_pem.as_bytes(), ota_fs::mode::SECRET_FILE)?;
    write(
        &state.identity_csr(),
        csr.as_bytes(),
        ota_fs::mode::PUBLIC_FILE,
    )?;
    tracing::info!(cn, "new identity key and signing request");
    Ok(SigningRequest {
        csr: state.identity_csr(),
        key: key_path,
        cn: cn.to_string(),
    })
}

/// Install `cert_file` (PEM, the leaf first, intermediates after it) as `STATE/identity.pem`
/// after checking that it parses, has not expired, and is for `STATE/identity.key`; then,
/// if the device is initialised, `config.json` uses it as the client certificate.
pub fn install_certificate(state: &StateDir, cert_file: &Path) -> DeviceResult<CertInfo> {
    let key_path = state.identity_key();
    if std::fs::symlink_metadata(&key_path).is_err() {
        return Err(DeviceError::NoIdentityKey { path: key_path });
    }
    let certs = pki::read_certificates(cert_file)?;
    let key = pki::read_private_key(&key_path)?;
    let info = pki::check_pair(cert_file, &certs, &key_path, &key)?;
    info.check_not_expired(cert_file, chrono::Utc::now())?;
    if chrono::Utc::now() < info.not_before {
        tracing::warn!(
            not_before = %info.not_before,
            "the certificate is not valid yet by this device's clock"
        );
    }
    // Re-encoded from the parsed certificates: whatever else the file held (comments, a
    // key) is not copied into a world-readable file.
    let pem = pki::to_pem("CERTIFICATE", certs.iter().map(|c| c.as_ref()));
    let path = state.identity_cert();
    ota_fs::atomic::replace(&path, pem.as_bytes(), ota_fs::mode::PUBLIC_FILE).map_err(|e| {
        DeviceError::BadState {
            path: path.clone(),
            reason: e.to_string(),
        }
    })?;
    adopt(state)?;
    Ok(info)
}

/// The installed certificate, if any.
pub fn certificate(state: &StateDir) -> DeviceResult<Option<CertInfo>> {
    let path = state.identity_cert();
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let certs = pki::read_certificates(&path)?;
    match certs.first() {
        Some(leaf) => Ok(Some(CertInfo::parse(&path, 1, leaf)?)),
        None => Ok(None),
    }
}

/// The common name of the current identity: the installed certificate's, else the pending
/// signing request's.
pub fn current_name(state: &StateDir) -> Option<String> {
    if let Ok(Some(info)) = certificate(state) {
        if info.subject_cn.is_some() {
            return info.subject_cn;
        }
    }
    let bytes = ota_fs::user_file::read(&state.identity_csr(), pki::MAX_PEM_FILE_LEN).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).ok()?;
    use x509_parser::prelude::FromDer;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .ok()?;
    let cn = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

/// Whether `a` and `b` name the same file location (their directories resolved).
fn same_location(a: &Path, b: &Path) -> bool {
    let dir = |p: &Path| {
        p.parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| d.canonicalize().ok())
    };
    a.file_name() == b.file_name() && dir(a).is_some() && dir(a) == dir(b)
}

/// Stop using the identity files in `config.json` (if the device is initialised and uses
/// them), then destroy the key and remove the certificate and request.
pub(crate) fn destroy(state: &StateDir) -> DeviceResult<()> {
    forget(state)?;
    let key = state.identity_key();
    erase::destroy_secret(&key).map_err(|e| state_io(&key, e))?;
    for path in [state.identity_cert(), state.identity_csr()] {
        erase::remove_if_present(&path).map_err(|e| state_io(&path, e))?;
    }
    Ok(())
}

/// Remove the identity from `config.json`'s TLS settings (when it is there), and remove the
/// certificate: it belongs to the key being replaced.
fn forget(state: &StateDir) -> DeviceResult<()> {
    let cert = state.identity_cert();
    erase::remove_if_present(&cert).map_err(|e| state_io(&cert, e))?;
    let Some(mut config) = load_if_initialised(state)? else {
        return Ok(());
    };
    let resolved = config.tls.relative_to(state.root());
    let uses =
        |p: &Option<PathBuf>, own: PathBuf| p.as_deref().is_some_and(|p| same_location(p, &own));
    if uses(&resolved.client_key, state.identity_key())
        || uses(&resolved.client_cert, state.identity_cert())
    {
        config.tls.client_cert = None;
        config.tls.client_key = None;
        config.save(state)?;
    }
    Ok(())
}

/// Make `config.json` (if the device is initialised) present the installed identity, and
/// check the resulting TLS settings.
fn adopt(state: &StateDir) -> DeviceResult<()> {
    let Some(mut config) = load_if_initialised(state)? else {
        return Ok(());
    };
    config.tls.client_cert = Some(state.absolute(&state.identity_cert()));
    config.tls.client_key = Some(state.absolute(&state.identity_key()));
    config.tls.relative_to(state.root()).validate()?;
    config.save(state)
}

fn load_if_initialised(state: &StateDir) -> DeviceResult<Option<DeviceConfig>> {
    match DeviceConfig::load(state) {
        Ok(c) => Ok(Some(c)),
        Err(DeviceError::NotInitialized { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new CA.
    fn ca() -> rcgen::Issuer<'static, rcgen::KeyPair> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        rcgen::Issuer::new(params, key)
    }

    /// A certificate for the request at `csr`, valid until `until_year`.
    fn sign(csr: &Path, until_year: i32) -> String {
        let pem = std::fs::read_to_string(csr).unwrap();
        let mut req = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        req.params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        req.params.not_after = rcgen::date_time_ymd(until_year, 1, 1);
        req.signed_by(&ca()).unwrap().pem()
    }

    #[test]
    fn common_names() {
        for ok in ["device-0042", "gw_7.b", &"x".repeat(64)] {
            validate_common_name(ok).unwrap();
        }
        for bad in ["", "two words", "tab\there", "é", "a/b", &"x".repeat(65)] {
            assert!(matches!(
                validate_common_name(bad),
                Err(DeviceError::InvalidSetting { .. })
            ));
        }
    }

    #[test]
    fn enroll_install_and_replace_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        assert!(matches!(
            install_certificate(&state, &dir.path().join("none.pem")),
            Err(DeviceError::NoIdentityKey { .. })
        ));
        let req = create(&state, "device-1", false).unwrap();
        assert_eq!(req.cn, "device-1");
        assert_eq!(current_name(&state).as_deref(), Some("device-1"));
        #[cfg(unix)]
        assert_eq!(ota_fs::mode::of(&req.key).unwrap(), Some(0o600));
        assert!(matches!(
            create(&state, "device-1", false),
            Err(DeviceError::AlreadyExists { .. })
        ));

        // The device is initialised: installing the certificate makes config.json use it.
        DeviceConfig::new("https://u.example", "b", None)
            .unwrap()
            .save(&state)
            .unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, sign(&req.csr, 2999)).unwrap();
        let info = install_certificate(&state, &cert).unwrap();
        assert_eq!(info.subject_cn.as_deref(), Some("device-1"));
        assert_eq!(certificate(&state).unwrap().unwrap(), info);
        let tls = DeviceConfig::load(&state).unwrap().tls;
        assert!(same_location(
            tls.client_cert.as_deref().unwrap(),
            &state.identity_cert()
        ));
        assert!(tls.client_key.unwrap().is_absolute());

        // Expired, for another key, not a certificate: refused, the installed one kept.
        let expired = dir.path().join("expired.pem");
        std::fs::write(&expired, sign(&req.csr, 2001)).unwrap();
        let err = install_certificate(&state, &expired).unwrap_err();
        assert!(
            err.to_string().contains("expired at 2001-01-01T00:00:00Z"),
            "{err}"
        );
        let other = StateDir::new(dir.path().join("other"));
        let other_req = create(&other, "device-2", false).unwrap();
        let foreign = dir.path().join("foreign.pem");
        std::fs::write(&foreign, sign(&other_req.csr, 2999)).unwrap();
        let err = install_certificate(&state, &foreign).unwrap_err();
        assert!(
            matches!(
                err,
                DeviceError::Certificate(pki::PkiError::KeyMismatch { .. })
            ),
            "{err}"
        );
        assert_eq!(err.category().exit_code(), 2);
        let err = install_certificate(&state, &req.key).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        assert_eq!(certificate(&state).unwrap().unwrap(), info);

        // A new key: the old certificate goes, and config.json stops presenting it.
        let old_key = std::fs::read(&req.key).unwrap();
        let again = create(&state, "device-1b", true).unwrap();
        assert_ne!(std::fs::read(&again.key).unwrap(), old_key);
        assert!(!state.identity_cert().exists());
        let tls = DeviceConfig::load(&state).unwrap().tls;
        assert!(tls.client_cert.is_none() && tls.client_key.is_none());
        assert_eq!(current_name(&state).as_deref(), Some("device-1b"));

        destroy(&state).unwrap();
        assert!(!state.identity_key().exists() && !state.identity_csr().exists());
        assert_eq!(current_name(&state), None);
    }
}
