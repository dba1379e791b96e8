//! Private keys encrypted at rest with a passphrase: PKCS#8 `EncryptedPrivateKeyInfo`
//! (`-----BEGIN ENCRYPTED PRIVATE KEY-----`) with PBES2, the key derived with scrypt or
//! PBKDF2-HMAC-SHA256 (also -SHA224/384/512), the key encrypted with AES-128/192/256-CBC.
//!
//! That is what `openssl pkcs8 -topk8 -v2 aes-256-cbc` (PBKDF2) and
//! `openssl pkcs8 -topk8 -scrypt` write, and what [`encrypt_pem`] writes. Files whose key
//! derivation would cost more than [`MAX_KDF_MEMORY`] bytes or [`MAX_PBKDF2_ITERATIONS`]
//! rounds are refused before any work, so a crafted file cannot stall a signing run.
use super::KeySourceError;
use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::pbes2::{self, Kdf, Pbkdf2Prf};
use pkcs8::pkcs5::{scrypt, EncryptionScheme};
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo, SecretDocument};
use rand_core::{OsRng, RngCore};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// PEM label of an encrypted PKCS#8 key.
pub const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
/// PEM label of an unencrypted PKCS#8 key.
pub const PLAIN_LABEL: &str = "PRIVATE KEY";

/// Largest scrypt memory (128 · r · N bytes) accepted when reading: 1 GiB.
pub const MAX_KDF_MEMORY: u64 = 1 << 30;
/// Largest PBKDF2 iteration count accepted when reading.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// PBKDF2 iterations written by [`encrypt_pem`] (OWASP's figure for HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// The key derivation [`encrypt_pem`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KdfChoice {
    /// scrypt, N = 2^17, r = 8, p = 1 (128 MiB), the recommended parameters.
    #[default]
    Scrypt,
    /// PBKDF2-HMAC-SHA256 with [`PBKDF2_ITERATIONS`] rounds, for tools without scrypt.
    Pbkdf2,
}

/// Whether the key file bytes hold an encrypted PKCS#8 PEM block.
pub fn is_encrypted_pem(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(pem_block)
        .is_some_and(|(label, _)| label == ENCRYPTED_LABEL)
}

/// A parsed encrypted key file, ready to decrypt.
pub struct EncryptedKey {
    der: Vec<u8>,
}

/// Parse the encrypted key file `bytes` (read from `path`) and check that its scheme is
/// one read here, with bounded cost.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<EncryptedKey, KeySourceError> {
    let damaged = |reason: String| KeySourceError::EncryptedDamaged {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| damaged("not text".into()))?;
    let (label, block) = pem_block(text).ok_or_else(|| damaged("no complete PEM block".into()))?;
    if label != ENCRYPTED_LABEL {
        return Err(damaged(format!("the PEM block is {label:?}")));
    }
    let (_, doc) =
        SecretDocument::from_pem(block).map_err(|e| damaged(format!("bad PEM encoding: {e}")))?;
    let key = EncryptedKey {
        der: doc.as_bytes().to_vec(),
    };
    let info = key.info(path)?;
    check_scheme(path, &info.encryption_algorithm)?;
    Ok(key)
}

impl EncryptedKey {
    fn info(&self, path: &Path) -> Result<EncryptedPrivateKeyInfo<'_>, KeySourceError> {
        EncryptedPrivateKeyInfo::try_from(self.der.as_slice()).map_err(|e| {
            KeySourceError::EncryptedDamaged {
                path: path.to_path_buf(),
                reason: format!("bad EncryptedPrivateKeyInfo structure: {e}"),
            }
        })
    }

    /// Decrypt with `passphrase`: the unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    /// A passphrase that does not decrypt gives [`KeySourceError::PassphraseWrong`].
    pub fn decrypt(
        &self,
        path: &Path,
        passphrase: &str,
    ) -> Result<Zeroizing<String>, KeySourceError> {
        let info = self.info(path)?;
        let wrong = || KeySourceError::PassphraseWrong {
            path: path.to_path_buf(),
        };
        // Without a MAC, a wrong passphrase shows as bad padding or, rarely, as garbage that
        // is not a PKCS#8 structure: both mean the passphrase does not fit.
        let doc = info.decrypt(passphrase.as_bytes()).map_err(|_| wrong())?;
        PrivateKeyInfo::try_from(doc.as_bytes()).map_err(|_| wrong())?;
        doc.to_pem(PLAIN_LABEL, LineEnding::LF)
            .map_err(|e| KeySourceError::EncryptedDamaged {
                path: path.to_path_buf(),
                reason: format!("cannot re-encode the decrypted key: {e}"),
            })
    }
}

fn check_scheme(path: &Path, scheme: &EncryptionScheme<'_>) -> Result<(), KeySourceError> {
    let unsupported = |reason: String| KeySourceError::EncryptedUnsupported {
        path: path.to_path_buf(),
        reason,
    };
    let Some(params) = scheme.pbes2() else {
        return Err(unsupported(format!("PBES1 ({})", scheme.oid())));
    };
    match &params.kdf {
        Kdf::Pbkdf2(p) => {
            if p.prf == Pbkdf2Prf::HmacWithSha1 {
                return Err(unsupported("PBKDF2 with HMAC-SHA1".into()));
            }
            if p.iteration_count > MAX_PBKDF2_ITERATIONS {
                return Err(unsupported(format!(
                    "PBKDF2 with {} iterations (at most {MAX_PBKDF2_ITERATIONS} are read)",
                    p.iteration_count
                )));
            }
        }
        Kdf::Scrypt(p) => {
            let memory = 128u64
                .saturating_mul(u64::from(p.block_size))
                .saturating_mul(p.cost_parameter)
                .saturating_mul(u64::from(p.parallelization.max(1)));
            if memory > MAX_KDF_MEMORY {
                return Err(unsupported(format!(
                    "scrypt with N={} r={} p={} ({memory} bytes; at most {MAX_KDF_MEMORY} are read)",
                    p.cost_parameter, p.block_size, p.parallelization
                )));
            }
        }
        other => return Err(unsupported(format!("key derivation {}", other.oid()))),
    }
    Ok(())
}

/// Encrypt the unencrypted PKCS#8 PEM key `plain` with `passphrase`: an
/// `-----BEGIN ENCRYPTED PRIVATE KEY-----` PEM (PBES2, AES-256-CBC, key derived by `kdf`,
/// random salt and IV). `plain` must be a `PRIVATE KEY` PEM block.
pub fn encrypt_pem(
    plain: &[u8],
    passphrase: &str,
    kdf: KdfChoice,
) -> Result<Zeroizing<String>, KeySourceError> {
    let fail = |reason: String| KeySourceError::Encrypt { reason };
    let text = std::str::from_utf8(plain).map_err(|_| fail("the key is not PEM text".into()))?;
    let (label, block) = pem_block(text).ok_or_else(|| fail("the key is not PEM".into()))?;
    if label != PLAIN_LABEL {
        return Err(fail(format!(
            "the key is a {label:?} PEM block, not an unencrypted PKCS#8 PRIVATE KEY"
        )));
    }
    let (_, doc) =
        SecretDocument::from_pem(block).map_err(|e| fail(format!("bad PEM encoding: {e}")))?;
    let info = PrivateKeyInfo::try_from(doc.as_bytes())
        .map_err(|e| fail(format!("bad PKCS#8 structure: {e}")))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);
    let params = match kdf {
        KdfChoice::Scrypt => {
            pbes2::Parameters::scrypt_aes256cbc(scrypt::Params::recommended(), &salt, &iv)
        }
        KdfChoice::Pbkdf2 => {
            pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
        }
    }
    .map_err(|e| fail(e.to_string()))?;
    let enc = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    enc.to_pem(ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(|e| fail(e.to_string()))
}

/// The first PEM block of `text`: its label and the text from `-----BEGIN` to the end of
/// the matching `-----END` line (text around it, such as comments, is ignored).
fn pem_block(text: &str) -> Option<(&str, &str)> {
    const BEGIN: &str = "-----BEGIN ";
    let start = text.find(BEGIN)?;
    let after = &text[start + BEGIN.len()..];
    let label = &after[..after.find("-----")?];
    if label.contains('\n') {
        return None;
    }
    let end_marker = format!("-----END {label}-----");
    let end = start + text[start..].find(&end_marker)? + end_marker.len();
    Some((label, &text[start..end]))
}

/// Path-free parse and decrypt, for callers that hold the bytes only (tests, tools).
pub fn decrypt_pem(bytes: &[u8], passphrase: &str) -> Result<Zeroizing<String>, KeySourceError> {
    let path = PathBuf::from("(key)");
    parse(&path, bytes)?.decrypt(&path, passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_formats::crypto::{Ed25519Signer, Signer};

    fn plain() -> (Ed25519Signer, String) {
        let k = Ed25519Signer::generate();
        let pem = k.to_pkcs8_pem().unwrap();
        (k, pem)
    }

    #[test]
    fn both_kdfs_round_trip_and_wrong_passphrases_are_told() {
        let (k, pem) = plain();
        for kdf in [KdfChoice::Scrypt, KdfChoice::Pbkdf2] {
            let enc = encrypt_pem(pem.as_bytes(), "correct horse", kdf).unwrap();
            assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
            assert!(is_encrypted_pem(enc.as_bytes()));
            assert!(!is_encrypted_pem(pem.as_bytes()));
            let back = decrypt_pem(enc.as_bytes(), "correct horse").unwrap();
            let s = Ed25519Signer::from_pkcs8_pem(&back).unwrap();
            assert_eq!(s.key_id().unwrap(), k.key_id().unwrap());
            assert!(matches!(
                decrypt_pem(enc.as_bytes(), "wrong"),
                Err(KeySourceError::PassphraseWrong { .. })
            ));
        }
    }

    #[test]
    fn damaged_files_are_told_apart_from_wrong_passphrases() {
        let (_, pem) = plain();
        let enc = encrypt_pem(pem.as_bytes(), "pw", KdfChoice::Pbkdf2).unwrap();
        let lines: Vec<&str> = enc.lines().collect();
        // Truncated: the END line is gone.
        let truncated = lines[..lines.len() - 1].join("\n");
        // Cut in the middle: base64 and DER no longer parse.
        let cut = format!(
            "{}\n{}\n{}\n",
            lines[0],
            &lines[1][..10],
            lines[lines.len() - 1]
        );
        for bad in [truncated, cut] {
            let e = decrypt_pem(bad.as_bytes(), "pw").unwrap_err();
            assert!(matches!(e, KeySourceError::EncryptedDamaged { .. }), "{e}");
        }
        assert!(matches!(
            encrypt_pem(enc.as_bytes(), "pw", KdfChoice::Scrypt),
            Err(KeySourceError::Encrypt { .. })
        ));
    }
}
