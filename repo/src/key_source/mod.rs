//! Where a role key comes from, and the [`Signer`] each source gives.
//!
//! An entry of a role in `ota-repo.json` (`key_files`) is one of:
//!
//! - a file name in the keys directory holding a PKCS#8 PEM private key
//!   (`-----BEGIN PRIVATE KEY-----`, [`file`]);
//! - the same encrypted with a passphrase (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2
//!   with scrypt or PBKDF2-HMAC-SHA256 and AES-CBC, as `ota-sign keys encrypt` and
//!   `openssl pkcs8 -topk8 [-scrypt]` write it, [`encrypted`]); the passphrase comes from
//!   [`Secrets`] (`OTA_KEY_PASSPHRASE`, or a prompt in the CLI);
//! - a PKCS#11 URI (RFC 7512 subset, [`pkcs11`]):
//!   `pkcs11:token=LABEL;object=LABEL[;id=%01][?module-path=/usr/lib/softhsm/libsofthsm2.so]`,
//!   the module from `module-path=` or `OTA_PKCS11_MODULE`, the PIN from `pin-source=file:`,
//!   `pin-value=` or `OTA_PKCS11_PIN`. Ed25519 (`CKM_EDDSA`) and ECDSA P-256 (`CKM_ECDSA`
//!   over a SHA-256 digest, the signature converted to DER) keys sign.
//!
//! Every source yields a `Box<dyn Signer + Send + Sync>` ([`open`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ota_repo::key_source::{open, KeyAccess, KeyRef};
//! let access = KeyAccess::from_env(); // OTA_KEY_PASSPHRASE, OTA_PKCS11_MODULE, OTA_PKCS11_PIN
//! let key = KeyRef::parse("pkcs11:token=ota;object=targets-1")?;
//! let opened = open(std::path::Path::new("keys"), &key, &access)?;
//! println!("{} ({:?})", opened.signer.key_id()?, opened.kind);
//! # Ok(())
//! # }
//! ```
use ota_formats::crypto::Signer;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub mod encrypted;
mod error;
pub mod file;
pub mod pkcs11;
pub mod switch;

pub use error::KeySourceError;
pub use pkcs11::Pkcs11Uri;

/// Environment variable with the passphrase of encrypted key files.
pub const ENV_PASSPHRASE: &str = "OTA_KEY_PASSPHRASE";
/// Environment variable with the PKCS#11 module used when a URI has no `module-path=`.
pub const ENV_PKCS11_MODULE: &str = "OTA_PKCS11_MODULE";
/// Environment variable with the PIN used when a URI has no `pin-source=`/`pin-value=`.
pub const ENV_PKCS11_PIN: &str = "OTA_PKCS11_PIN";

/// A signer that can be shared between threads (the server signs from several).
pub type BoxSigner = Box<dyn Signer + Send + Sync>;

/// A secret held in memory that is wiped when dropped.
pub type Secret = Zeroizing<String>;

/// A key entry of `ota-repo.json`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A file in the keys directory (plain or encrypted PKCS#8 PEM).
    File(String),
    /// A key on a PKCS#11 token.
    Pkcs11(Pkcs11Uri),
}

impl KeyRef {
    /// Parse an entry: a `pkcs11:` URI or a plain file name (no directory part).
    pub fn parse(entry: &str) -> Result<Self, KeySourceError> {
        if pkcs11::is_uri(entry) {
            return Pkcs11Uri::parse(entry).map(KeyRef::Pkcs11);
        }
        if crate::config::is_plain_file_name(entry) {
            return Ok(KeyRef::File(entry.to_string()));
        }
        Err(KeySourceError::BadEntry {
            entry: entry.to_string(),
        })
    }

    /// How the key is named in messages: the file name, or the URI without any PIN.
    pub fn display(&self) -> String {
        match self {
            KeyRef::File(f) => f.clone(),
            KeyRef::Pkcs11(u) => u.to_string(),
        }
    }
}

/// What kind of source a loaded key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// An unencrypted PKCS#8 PEM file.
    File,
    /// A passphrase-encrypted PKCS#8 PEM file.
    EncryptedFile,
    /// A key on a PKCS#11 token.
    Pkcs11,
}

/// Where the secrets that unlock keys come from. The library never prompts; a command line
/// implements this to ask on its terminal.
pub trait Secrets {
    /// The passphrase of the encrypted key file `path`. `attempt` counts from 0; a later
    /// attempt follows a passphrase that did not decrypt the file. `Ok(None)`: no (further)
    /// passphrase is available.
    fn passphrase(&self, path: &Path, attempt: u32) -> Result<Option<Secret>, KeySourceError>;

    /// The user PIN of the PKCS#11 token labelled `token`, when the URI gives none.
    /// Asked once per key: a wrong PIN is never retried (tokens lock after a few).
    fn pin(&self, token: &str) -> Result<Option<Secret>, KeySourceError>;
}

/// Secrets from the environment only: `OTA_KEY_PASSPHRASE` and `OTA_PKCS11_PIN`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvSecrets;

impl Secrets for EnvSecrets {
    fn passphrase(&self, _path: &Path, attempt: u32) -> Result<Option<Secret>, KeySourceError> {
        Ok(if attempt == 0 {
            env_secret(ENV_PASSPHRASE)
        } else {
            None
        })
    }

    fn pin(&self, _token: &str) -> Result<Option<Secret>, KeySourceError> {
        Ok(env_secret(ENV_PKCS11_PIN))
    }
}

/// A non-empty environment variable as a secret.
pub fn env_secret(name: &str) -> Option<Secret> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Zeroizing::new)
}

/// What opening keys needs besides the entry: the secrets and the default PKCS#11 module.
pub struct KeyAccess<'a> {
    /// Passphrases and PINs.
    pub secrets: &'a dyn Secrets,
    /// The module for URIs without `module-path=` (`OTA_PKCS11_MODULE`).
    pub module: Option<PathBuf>,
}

impl std::fmt::Debug for KeyAccess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAccess")
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl KeyAccess<'static> {
    /// Secrets and module from the environment ([`EnvSecrets`], `OTA_PKCS11_MODULE`).
    pub fn from_env() -> Self {
        KeyAccess::new(&EnvSecrets)
    }
}

impl<'a> KeyAccess<'a> {
    /// `secrets`, with the module from `OTA_PKCS11_MODULE`.
    pub fn new(secrets: &'a dyn Secrets) -> Self {
        KeyAccess {
            secrets,
            module: std::env::var_os(ENV_PKCS11_MODULE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// An opened key: its signer and where it came from.
pub struct Opened {
    /// The signer.
    pub signer: BoxSigner,
    /// The kind of source.
    pub kind: KeyKind,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("public", &self.signer.public_key())
            .field("kind", &self.kind)
            .finish()
    }
}

/// Why [`open`] failed: a key file problem (reported with its path by
/// [`crate::keys`]) or a key source problem.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The key file cannot be read.
    #[error("key file {0}")]
    Unreadable(ota_fs::user_file::UserFileError),
    /// The (decrypted) key file does not hold a usable key.
    #[error("the key file {0}")]
    Invalid(ota_formats::crypto::KeyFileError),
    /// An encrypted file or a token failed.
    #[error(transparent)]
    Source(KeySourceError),
}

impl From<KeySourceError> for OpenError {
    fn from(e: KeySourceError) -> Self {
        OpenError::Source(e)
    }
}

/// Open the key `key` (a file relative to `dir`, or a token key).
pub fn open(dir: &Path, key: &KeyRef, access: &KeyAccess<'_>) -> Result<Opened, OpenError> {
    match key {
        KeyRef::File(name) => file::open(&dir.join(name), access.secrets),
        KeyRef::Pkcs11(uri) => Ok(Opened {
            signer: Box::new(pkcs11::open(uri, access)?),
            kind: KeyKind::Pkcs11,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_files_or_uris() {
        assert_eq!(
            KeyRef::parse("targets-1.pem").unwrap(),
            KeyRef::File("targets-1.pem".into())
        );
        assert!(matches!(
            KeyRef::parse("pkcs11:token=ota;object=t1").unwrap(),
            KeyRef::Pkcs11(_)
        ));
        assert!(matches!(
            KeyRef::parse("../x.pem"),
            Err(KeySourceError::BadEntry { .. })
        ));
        assert!(matches!(
            KeyRef::parse("pkcs11:token=ota;bogus=1"),
            Err(KeySourceError::UriSyntax { .. })
        ));
    }
}
