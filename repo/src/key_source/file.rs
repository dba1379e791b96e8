//! Key files: a PKCS#8 PEM private key, plain or encrypted with a passphrase.
use super::{encrypted, KeyKind, OpenError, Opened, Secrets};
use crate::keys::MAX_KEY_FILE_LEN;
use ota_formats::crypto::signer_from_key_file;
use ota_fs::user_file;
use std::path::Path;
use zeroize::Zeroizing;

/// Open the key file at `path`: an unencrypted Ed25519 or ECDSA P-256 PKCS#8 PEM key, or one encrypted
/// with a passphrase from `secrets` (asked again after a wrong one, as long as `secrets`
/// gives more).
pub fn open(path: &Path, secrets: &dyn Secrets) -> Result<Opened, OpenError> {
    // Only a regular file, and only so much of it: a FIFO or a link to /dev/zero named as a
    // key must not hang a run that holds the repository lock.
    let bytes =
        Zeroizing::new(user_file::read(path, MAX_KEY_FILE_LEN).map_err(OpenError::Unreadable)?);
    if !encrypted::is_encrypted_pem(&bytes) {
        let signer = signer_from_key_file(&bytes).map_err(OpenError::Invalid)?;
        return Ok(Opened {
            signer,
            kind: KeyKind::File,
        });
    }
    let plain = decrypt_with_retries(path, &bytes, secrets)?;
    let signer = signer_from_key_file(plain.as_bytes()).map_err(OpenError::Invalid)?;
    Ok(Opened {
        signer,
        kind: KeyKind::EncryptedFile,
    })
}

/// The decrypted PEM of an encrypted key file, asking `secrets` until a passphrase fits.
pub fn decrypt_with_retries(
    path: &Path,
    bytes: &[u8],
    secrets: &dyn Secrets,
) -> Result<Zeroizing<String>, OpenError> {
    let parsed = encrypted::parse(path, bytes)?;
    let mut attempt = 0;
    loop {
        let Some(pass) = secrets.passphrase(path, attempt)? else {
            return Err(OpenError::Source(if attempt == 0 {
                super::KeySourceError::PassphraseUnset {
                    path: path.to_path_buf(),
                }
            } else {
                super::KeySourceError::PassphraseWrong {
                    path: path.to_path_buf(),
                }
            }));
        };
        match parsed.decrypt(path, &pass) {
            Ok(pem) => return Ok(pem),
            Err(super::KeySourceError::PassphraseWrong { .. }) => {
                tracing::debug!(path = %path.display(), attempt, "wrong passphrase");
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
