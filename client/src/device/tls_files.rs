//! The TLS files a device depends on live in its state directory: `init` copies the CA
//! bundle to `STATE/ca.pem` and a client certificate and key to `STATE/identity.pem` and
//! `STATE/identity.key` (0600), so the device never depends on files elsewhere (a provisioning
//! mount, a home directory) that may be gone at the next update.
use super::error::{DeviceError, DeviceResult};
use super::state::StateDir;
use crate::pki;
use crate::transport::TlsSettings;
use std::path::Path;

/// Check `tls` completely (every file read and parsed, key matched to certificate, pin,
/// proxy), copy its files into `state`, and return the settings naming the copies (absolute
/// paths). Without a client certificate in `tls`, an identity already installed in `state`
/// (by `enroll`) is used.
///
/// An identity key already in `state` that differs from the one given is replaced only with
/// `force` (it may be the device's enrolled key).
pub(crate) fn import(
    state: &StateDir,
    tls: &TlsSettings,
    force: bool,
) -> DeviceResult<TlsSettings> {
    tls.validate()?;
    let mut out = tls.clone();
    // Stored in one spelling (lower-case hex), whatever was typed.
    out.pin_spki_sha256 = tls.pin()?.map(|p| p.to_hex());
    if let Some(src) = &tls.ca_bundle {
        // Only the certificates are copied; the bundle was checked to hold a usable one.
        let certs = pki::read_ca_certificates(src)?;
        let pem = pki::to_pem("CERTIFICATE", certs.iter().map(|c| c.as_ref()));
        write(
            &state.ca_bundle(),
            pem.as_bytes(),
            ota_fs::mode::PUBLIC_FILE,
        )?;
        out.ca_bundle = Some(state.absolute(&state.ca_bundle()));
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let certs = pki::read_certificates(cert)?;
            let key_bytes = zeroize::Zeroizing::new(
                ota_fs::user_file::read(key, pki::MAX_PEM_FILE_LEN).map_err(pki::PkiError::from)?,
            );
            let own = state.identity_key();
            if !force && is_other_key(&own, &key_bytes) {
                return Err(DeviceError::AlreadyExists { path: own });
            }
            write(&own, &key_bytes, ota_fs::mode::SECRET_FILE)?;
            let pem = pki::to_pem("CERTIFICATE", certs.iter().map(|c| c.as_ref()));
            write(
                &state.identity_cert(),
                pem.as_bytes(),
                ota_fs::mode::PUBLIC_FILE,
            )?;
            out.client_cert = Some(state.absolute(&state.identity_cert()));
            out.client_key = Some(state.absolute(&own));
        }
        (None, None) if enrolled(state) => {
            out.client_cert = Some(state.absolute(&state.identity_cert()));
            out.client_key = Some(state.absolute(&state.identity_key()));
        }
        // No identity, or only half (which `validate` refused already).
        _ => {}
    }
    Ok(out)
}

/// Whether `path` holds a key other than `bytes` (the same bytes may be imported again).
fn is_other_key(path: &Path, bytes: &[u8]) -> bool {
    match std::fs::read(path) {
        Ok(existing) => zeroize::Zeroizing::new(existing).as_slice() != bytes,
        Err(_) => std::fs::symlink_metadata(path).is_ok(),
    }
}

/// Whether `state` holds an identity key with a matching certificate.
fn enrolled(state: &StateDir) -> bool {
    let (cert, key) = (state.identity_cert(), state.identity_key());
    if std::fs::symlink_metadata(&cert).is_err() || std::fs::symlink_metadata(&key).is_err() {
        return false;
    }
    let checked = pki::read_certificates(&cert).and_then(|certs| {
        let k = pki::read_private_key(&key)?;
        pki::check_pair(&cert, &certs, &key, &k)
    });
    match checked {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("not using the installed identity: {e}");
            false
        }
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> DeviceResult<()> {
    ota_fs::atomic::replace(path, bytes, mode).map_err(|e| DeviceError::BadState {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::identity;

    fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        // Comments and a stray key around the certificate are not copied.
        std::fs::write(
            &c,
            format!("comment\n{}{}", cert.pem(), key.serialize_pem()),
        )
        .unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn files_are_copied_in_and_an_enrolled_identity_is_kept() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let (ca, _) = self_signed(src.path(), "ca");
        let (cert, key) = self_signed(src.path(), "device");
        let tls = TlsSettings {
            ca_bundle: Some(ca.clone()),
            pin_spki_sha256: Some("AB".repeat(32)),
            client_cert: Some(cert),
            client_key: Some(key),
            ..TlsSettings::default()
        };
        let out = import(&state, &tls, false).unwrap();
        assert_eq!(
            out.pin_spki_sha256.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(
            out.ca_bundle.as_deref(),
            Some(state.absolute(&state.ca_bundle()).as_path())
        );
        assert!(out.client_key.as_deref().unwrap().is_absolute());
        let copied = std::fs::read_to_string(state.identity_cert()).unwrap();
        assert!(copied.starts_with("-----BEGIN CERTIFICATE-----") && !copied.contains("PRIVATE"));
        #[cfg(unix)]
        assert_eq!(
            ota_fs::mode::of(&state.identity_key()).unwrap(),
            Some(0o600)
        );
        out.validate().unwrap();
        // Importing the same key again is fine; another one needs force.
        import(&state, &tls, false).unwrap();
        let (cert2, key2) = self_signed(src.path(), "device2");
        let other = TlsSettings {
            client_cert: Some(cert2),
            client_key: Some(key2),
            ..tls.clone()
        };
        assert!(matches!(
            import(&state, &other, false),
            Err(DeviceError::AlreadyExists { .. })
        ));
        import(&state, &other, true).unwrap();

        // Enrolled before init: init without a client certificate presents the enrolled one.
        let dir2 = tempfile::tempdir().unwrap();
        let enrolled_state = StateDir::new(dir2.path());
        let req = identity::create(&enrolled_state, "gw-1", false).unwrap();
        let plain = TlsSettings {
            ca_bundle: Some(ca),
            ..TlsSettings::default()
        };
        assert!(import(&enrolled_state, &plain, false)
            .unwrap()
            .client_cert
            .is_none());
        let issuer = rcgen::Issuer::new(
            {
                let mut p = rcgen::CertificateParams::new(Vec::new()).unwrap();
                p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                p
            },
            rcgen::KeyPair::generate().unwrap(),
        );
        let csr = std::fs::read_to_string(&req.csr).unwrap();
        let issued = rcgen::CertificateSigningRequestParams::from_pem(&csr)
            .unwrap()
            .signed_by(&issuer)
            .unwrap();
        let cert_file = src.path().join("issued.pem");
        std::fs::write(&cert_file, issued.pem()).unwrap();
        identity::install_certificate(&enrolled_state, &cert_file).unwrap();
        let out = import(&enrolled_state, &plain, false).unwrap();
        assert!(out.client_cert.is_some() && out.client_key.is_some());
        out.validate().unwrap();
    }
}
